//! Chapter 4 end to end: the real `kthw run`, `ps`, `logs`, `exec`, `stop`, `rm`, ...
//! commands, each a new process, as a learner types them.
//!
//! What only the binary can show is tested here: the exit code of `kthw run`, a detached
//! container outliving the CLI that started it, `ps` from a fresh process, a killed
//! supervisor being reported, the errors of bad flags, and `-it` through a real pty. The
//! library's own tests (`chapters/04-runtime/tests/engine.rs`) cover volumes, limits,
//! networking and `rm`'s cleanup in detail.
//!
//! Every test has its own KTHW_HOME and removes its containers and runs `kthw reset` for
//! its instance when it ends, also when it fails.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

/// A test's KTHW_HOME with a `busybox` image in its store.
struct Lab {
    home: TestHome,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab { home: TestHome::new() };
        let bundle = lab.home.path().join("bb");
        let bundle = bundle.to_str().unwrap();
        lab.ok(&["runtime", "spec", "--busybox", "-b", bundle]);
        lab.ok(&["image", "import", &format!("{bundle}/rootfs"), "busybox"]);
        lab
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KTHW);
        c.args(args).env("KTHW_HOME", self.home.path()).stdin(Stdio::null());
        c
    }

    fn kthw(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run kthw")
    }

    /// Runs `kthw ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kthw(args);
        assert!(out.status.success(), "kthw {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `kthw ARGS` until its stdout contains `text`.
    fn wait_for(&self, args: &[&str], text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = String::from_utf8_lossy(&self.kthw(args).stdout).into_owned();
            if out.contains(text) {
                return out;
            }
            assert!(Instant::now() < deadline, "kthw {args:?} never showed {text:?}; last: {out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect is JSON");
        v[0].clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let ids = String::from_utf8_lossy(&self.kthw(&["ps", "-aq"]).stdout).into_owned();
        for id in ids.split_whitespace() {
            let _ = self.kthw(&["rm", "-f", id]);
        }
        if let Ok(plan) = kthw_lab::reset::plan(&self.home.paths) {
            for problem in kthw_lab::reset::apply(&plan) {
                eprintln!("cleanup: {problem}");
            }
        }
    }
}

// `kthw run` prints the container's stdout and stderr and exits with its exit code.
#[test]
fn run_streams_output_and_returns_the_exit_code() {
    require!(Need::Root, Need::Overlayfs, Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    let out = lab.kthw(&["run", "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
    // -i passes our stdin to the container.
    let mut child = lab.cmd(&["run", "-i", "--network", "none", "busybox", "tr", "a-z", "A-Z"]);
    let mut child = child.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");
    let ps = lab.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (3)") && ps.contains("Exited (0)"), "{ps}");
}

// A detached container keeps running after `kthw run -d` exits; `ps` (a new process)
// shows it running, `logs` has its output, `stop` records 137 and ps shows it.
#[test]
fn detached_container_outlives_the_cli() {
    require!(Need::Root, Need::Overlayfs, Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    let id = lab.ok(&["run", "-d", "--name", "bg", "busybox", "sh", "-c", "echo started; exec sleep 1000"]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d prints the id: {id}");
    let ps = lab.wait_for(&["ps"], "Up ");
    assert!(ps.contains(&id[..12]) && ps.contains(" bg\n"), "{ps}");
    lab.wait_for(&["logs", "bg"], "started\n");
    let pid = lab.inspect("bg")["State"]["Pid"].as_i64().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm, "sleep\n", "the container's init runs on the host as pid {pid}");
    let out = lab.kthw(&["stop", "-t", "1", "bg"]);
    assert!(out.status.success());
    assert!(lab.ok(&["ps", "-a"]).contains("Exited (137)"));
    assert_eq!(lab.inspect("bg")["State"]["ExitCode"], 137);
    assert!(!lab.ok(&["ps"]).contains("bg"), "ps without -a hides it");
    let events = lab.ok(&["events"]);
    for action in ["create", "start", "die", "stop"] {
        assert!(events.contains(&format!(" container {action} {id} ")), "{action} in {events}");
    }
}

// exec runs in the container's namespaces: same host name, pid 1 is the container's
// init; its exit code is exec's.
#[test]
fn exec_runs_in_the_same_namespaces() {
    require!(Need::Root, Need::Overlayfs, Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    lab.ok(&["run", "-d", "--name", "box", "--hostname", "boxhost", "busybox", "sleep", "1000"]);
    assert_eq!(lab.ok(&["exec", "box", "hostname"]), "boxhost\n");
    assert_eq!(lab.ok(&["exec", "box", "cat", "/proc/1/comm"]), "sleep\n");
    let out = lab.kthw(&["exec", "box", "sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9));
}

// A supervisor killed with SIGKILL is reported as dead, not hidden as running or exited.
#[test]
fn a_killed_supervisor_is_reported() {
    require!(Need::Root, Need::Overlayfs, Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    lab.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]);
    let supervisor = lab.inspect("orphan")["Supervisor"]["Pid"].as_i64().unwrap();
    assert!(supervisor > 0);
    assert!(Command::new("kill").args(["-9", &supervisor.to_string()]).status().unwrap().success());
    let ps = lab.wait_for(&["ps"], "Supervisor died");
    assert!(ps.contains("orphan"), "{ps}");
    let state = &lab.inspect("orphan")["State"];
    assert_eq!(state["Status"], "dead");
    assert!(state["Error"].as_str().unwrap().contains("supervisor"), "{state}");
    lab.ok(&["rm", "-f", "orphan"]);
    assert!(!lab.ok(&["ps", "-a"]).contains("orphan"));
}

// Bad flags are refused before anything is created, with a message that says what to write.
#[test]
fn bad_flags_are_clear_errors() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    for (flags, expect) in [
        (&["-p", "abc"][..], "-p abc"),
        (&["-e", "NOEQUALS"][..], "NAME=VALUE"),
        (&["--memory", "lots"][..], "--memory"),
        (&["-v", "relative:/data"][..], "absolute"),
        (&["--name", "bad name"][..], "--name"),
    ] {
        let mut args = vec!["run"];
        args.extend(flags);
        args.extend(["busybox", "true"]);
        let out = lab.kthw(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expect), "{flags:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = lab.kthw(&["run", "nosuchimage", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchimage"));
    assert_eq!(lab.ok(&["ps", "-aq"]), "", "no container was made");
}

// `kthw run -it` gives the shell a real terminal of the container's (/dev/pts/0): it runs
// interactively and its exit code comes back.
#[test]
fn run_it_gives_a_real_terminal() {
    require!(Need::Root, Need::Overlayfs, Need::Command("script"), Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    // `script` runs kthw on a new pty, as a terminal emulator would; we type into it.
    let line = format!("{KTHW} run -it --rm busybox sh");
    let mut child = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("KTHW_HOME", lab.home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"tty; echo hi-$((40+2)); exit 3\n").unwrap();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "the shell did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let out = waiter.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("hi-42"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(lab.ok(&["ps", "-aq"]), "", "--rm removed it");
}

// commit, system df and system prune: a container's changes become an image; prune
// removes stopped containers.
#[test]
fn commit_df_and_prune() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    lab.ok(&["run", "--name", "maker", "--network", "none", "busybox", "sh", "-c", "echo made > /made"]);
    assert!(lab.ok(&["commit", "maker", "made"]).starts_with("made:latest sha256:"));
    assert_eq!(lab.ok(&["run", "--rm", "--network", "none", "made", "cat", "/made"]), "made\n");
    let df = lab.ok(&["system", "df"]);
    assert!(df.contains("Images") && df.contains("Containers") && df.contains("maker"), "{df}");
    let pruned = lab.ok(&["system", "prune"]);
    assert!(pruned.contains("Deleted Containers:") && pruned.contains("Total reclaimed space"), "{pruned}");
    assert_eq!(lab.ok(&["ps", "-aq"]), "");
}
