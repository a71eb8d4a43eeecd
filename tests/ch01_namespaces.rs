//! Chapter 1 end to end: the real `kthw ns ...` commands, whose output the book shows.
//! Each snapshot is a short terminal session; what changes from run to run (PIDs,
//! namespace inodes, the host's name, the binary's path) is redacted. The snapshots live
//! beside the chapter's crate, in `chapters/01-namespaces/tests/snapshots/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kthw_lab::host::Namespace;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

mod transcript;

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A terminal session: each command as the reader types it, then its output.
#[derive(Default)]
struct Session {
    text: String,
    /// Values to hide, with their placeholder (longest first when applied).
    redact: BTreeMap<String, String>,
}

impl Session {
    /// Runs `kthw ARGS` and records `# kthw ARGS` (a root prompt) and its output.
    fn kthw(&mut self, args: &[&str]) -> std::process::Output {
        self.kthw_shown(args, &args.join(" "))
    }

    /// Like [`kthw`](Self::kthw), but shows `shown` as the arguments.
    fn kthw_shown(&mut self, args: &[&str], shown: &str) -> std::process::Output {
        transcript::record(&mut self.text, Command::new(KTHW).args(args), shown)
    }

    /// Records a line typed at the prompt and the output we observed for it.
    fn note(&mut self, typed: &str, output: &str) {
        self.text.push_str(&format!("# {typed}\n{output}"));
    }

    fn hide(&mut self, value: impl ToString, placeholder: &str) {
        self.redact.insert(value.to_string(), placeholder.to_string());
    }

    /// The text with every namespace inode replaced by `[ns-N]` in order of first
    /// appearance (so equal inodes stay visibly equal), and the other redactions.
    fn finish(&self) -> String {
        let mut text = self.text.replace(KTHW, "kthw");
        let mut values: Vec<_> = self.redact.iter().collect();
        values.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        for (value, placeholder) in values {
            text = text.replace(value.as_str(), placeholder);
        }
        let inode = regex::Regex::new(r"\b(40265\d{5})\b( *)").unwrap();
        let mut seen: Vec<String> = Vec::new();
        inode
            .replace_all(&text, |c: &regex::Captures| {
                let n = seen.iter().position(|s| s == &c[1]).unwrap_or_else(|| {
                    seen.push(c[1].to_string());
                    seen.len() - 1
                });
                let label = format!("[ns-{}]", n + 1);
                // In a table (spaces follow), keep the column as wide as the inode was.
                if c[2].is_empty() { label } else { format!("{label:<width$}", width = c[0].len()) }
            })
            .into_owned()
    }

    fn snapshot(&self, name: &str) {
        let text = self.finish();
        // kthw's standard redactions; PIDs are hidden by value above.
        let mut settings = kthw_lab::snapshot::settings();
        settings.set_snapshot_path("../chapters/01-namespaces/tests/snapshots");
        settings.bind(|| insta::assert_snapshot!(name, text));
    }
}

/// `kthw ns run ... --pid-file F -- CMD` in the background; killed (with everything in
/// its namespaces, through the parent-death signal) when dropped.
struct Background {
    child: Child,
    pid: i32,
}

impl Background {
    fn start(args: &[&str], pid_file: &Path) -> Background {
        let _ = std::fs::remove_file(pid_file);
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let child = Command::new(KTHW)
            .args(["ns", "run"])
            .args(&args[..split])
            .args(["--pid-file", pid_file.to_str().unwrap()])
            .args(&args[split..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start kthw ns run");
        // From here on, a failed assertion drops `bg`, which kills and reaps kthw.
        let mut bg = Background { child, pid: 0 };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|s| s.trim().parse().ok()) {
                bg.pid = pid;
                return bg;
            }
            assert!(Instant::now() < deadline, "no pid file from kthw ns run {args:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pid_file(home: &TestHome, name: &str) -> PathBuf {
    std::fs::create_dir_all(home.path()).unwrap();
    home.path().join(name)
}

// A host name set inside a new UTS namespace; the host keeps its own.
#[test]
fn ns_run_uts() {
    require!(Need::Root, Need::Namespace(Namespace::Uts));
    let mut s = Session::default();
    let out = s.kthw(&["ns", "run", "--uts", "--hostname", "inside", "--", "hostname"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "inside\n");
    let host = kthw_lab::host::hostname();
    s.note("hostname", &format!("{host}\n"));
    s.hide(format!("\n{host}\n"), "\n[the host's name]\n");
    s.snapshot("ns_run_uts");
}

// In a new PID namespace our init is PID 1 and the command is PID 2; with a new mount
// namespace too, /proc is new and `ps` sees only those two.
#[test]
fn ns_run_pid() {
    require!(Need::Root, Need::Namespace(Namespace::Pid), Need::Namespace(Namespace::Mount));
    let mut s = Session::default();
    let script = r#"echo "\$\$ is $$"; echo "/proc/self is $(readlink /proc/self)""#;
    let shown = format!("ns run --pid -- sh -c '{script}'");
    let out = s.kthw_shown(&["ns", "run", "--pid", "--", "sh", "-c", script], &shown);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let host_pid = text.lines().nth(1).unwrap().rsplit(' ').next().unwrap().to_string();
    assert!(host_pid.parse::<i32>().unwrap() > 3, "the host's /proc shows a host PID: {text}");
    s.hide(format!("is {host_pid}\n"), "is [a host PID]\n");
    let shown = format!("ns run --pid --mount -- sh -c '{script}'");
    let out = s.kthw_shown(&["ns", "run", "--pid", "--mount", "--", "sh", "-c", script], &shown);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "$$ is 2\n/proc/self is 3\n");
    let out = s.kthw(&["ns", "run", "--pid", "--mount", "--", "ps", "-e"]);
    let ps = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ps.lines().count(), 3, "a header, init and ps: {ps}");
    s.snapshot("ns_run_pid");
}

// A new network namespace has only lo, which we brought up.
#[test]
fn ns_run_net() {
    require!(Need::Root, Need::Namespace(Namespace::Net), Need::Command("ip"));
    let mut s = Session::default();
    let out = s.kthw(&["ns", "run", "--net", "--", "ip", "-brief", "link"]);
    let links = String::from_utf8_lossy(&out.stdout);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.starts_with("lo ") && links.contains(",UP,"), "{links}");
    s.snapshot("ns_run_net");
}

// Root inside a user namespace is uid 100000 outside.
#[test]
fn ns_run_user() {
    require!(Need::Root, Need::Namespace(Namespace::User));
    let mut s = Session::default();
    let out = s.kthw(&["ns", "run", "--user", "--", "id"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("uid=0(root) gid=0(root)"));
    let out = s.kthw(&["ns", "run", "--user", "--", "cat", "/proc/self/uid_map"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    let out = s.kthw(&["ns", "run", "--user", "--", "hostname", "evil"]);
    assert_eq!(out.status.code(), Some(1), "root inside may not rename the host");
    assert_ne!(kthw_lab::host::hostname(), "evil");
    let home = TestHome::new();
    let bg = Background::start(&["--user", "--", "sleep", "30"], &pid_file(&home, "user.pid"));
    s.note("kthw ns run --user --pid-file /tmp/u.pid -- sleep 30 &", "");
    let out = Command::new("ps").args(["-o", "user,group,args", "-p", &bg.pid.to_string()]).output().unwrap();
    let ps = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(ps.lines().nth(1).unwrap().starts_with("100000 "), "unprivileged outside: {ps}");
    s.note("ps -o user,group,args -p $(cat /tmp/u.pid)   # on the host", &ps);
    s.snapshot("ns_run_user");
}

// Without an init, an orphan stays a zombie; with ours it is reaped. Seen from inside
// with `kthw ns exec ... ps`.
#[test]
fn ns_zombies() {
    require!(Need::Root, Need::Namespace(Namespace::Pid), Need::Namespace(Namespace::Mount), Need::Command("ps"));
    let home = TestHome::new();
    let mut s = Session::default();
    let script = "(sleep 0.1 &); exec sleep 30";
    for (flags, zombies) in [(&["--no-init"][..], 1), (&[][..], 0)] {
        let file = pid_file(&home, "zombie.pid");
        let mut args = vec!["--pid", "--mount"];
        args.extend(flags);
        args.extend(["--", "sh", "-c", script]);
        let bg = Background::start(&args, &file);
        s.note(
            &format!(
                "kthw ns run --pid --mount {}--pid-file /tmp/z.pid -- sh -c '{script}' &",
                flags.iter().map(|f| format!("{f} ")).collect::<String>()
            ),
            "",
        );
        std::thread::sleep(Duration::from_millis(500));
        let pid = bg.pid.to_string();
        let out = s.kthw_shown(
            &["ns", "exec", &pid, "--", "ps", "-o", "pid,ppid,stat,comm"],
            "ns exec $(cat /tmp/z.pid) -- ps -o pid,ppid,stat,comm",
        );
        let ps = String::from_utf8_lossy(&out.stdout);
        let zombie = |l: &&str| l.split_whitespace().nth(2).is_some_and(|stat| stat.starts_with('Z'));
        assert_eq!(ps.lines().filter(zombie).count(), zombies, "{ps}");
    }
    s.snapshot("ns_zombies");
}

// SIGTERM to the namespace's PID 1: ignored by `sleep` as PID 1, forwarded by our init.
#[test]
fn ns_sigterm() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let home = TestHome::new();
    let mut s = Session::default();
    for (flags, forwarded) in [(&["--no-init"][..], false), (&[][..], true)] {
        let file = pid_file(&home, "term.pid");
        let mut args = vec!["--pid"];
        args.extend(flags);
        args.extend(["--", "sleep", "30"]);
        let mut bg = Background::start(&args, &file);
        std::thread::sleep(Duration::from_millis(200));
        s.note(
            &format!(
                "kthw ns run --pid {}--pid-file /tmp/s.pid -- sleep 30 &",
                flags.iter().map(|f| format!("{f} ")).collect::<String>()
            ),
            "",
        );
        kill_term(bg.pid);
        let deadline = Instant::now() + Duration::from_secs(1);
        let status = loop {
            if let Some(status) = bg.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let result = match status {
            Some(st) => format!("[kthw ns run exited with status {}]\n", st.code().unwrap()),
            None => "[one second later, sleep still runs]\n".to_string(),
        };
        s.note("kill -TERM $(cat /tmp/s.pid)", &result);
        assert_eq!(status.is_some(), forwarded, "{result}");
        if let Some(st) = status {
            assert_eq!(st.code(), Some(143));
        }
    }
    s.snapshot("ns_sigterm");
}

fn kill_term(pid: i32) {
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
}

// `ns show` compares two processes; `ns ls` lists namespaces like lsns; `ns exec` joins them.
#[test]
fn ns_show_ls_exec() {
    require!(Need::Root, Need::Namespace(Namespace::Pid), Need::Namespace(Namespace::Net), Need::Command("ip"));
    let home = TestHome::new();
    let file = pid_file(&home, "sleeper.pid");
    let bg = Background::start(
        &["--uts", "--pid", "--mount", "--net", "--hostname", "lab01", "--", "sleep", "infinity"],
        &file,
    );
    let pid = bg.pid.to_string();
    let me = std::process::id().to_string();
    let mut s = Session::default();
    s.note(
        "kthw ns run --uts --pid --mount --net --hostname lab01 --pid-file /tmp/sleeper.pid -- sleep infinity &",
        "",
    );
    s.hide(format!("{:<13}", format!("PID {pid}")), &format!("{:<13}", "PID [sleeper]"));
    s.hide(format!("{:<13}", format!("PID {me}")), &format!("{:<13}", "PID [shell]"));
    let out = s.kthw_shown(&["ns", "show", &pid, &me], "ns show $(cat /tmp/sleeper.pid) $$");
    let show = String::from_utf8_lossy(&out.stdout).into_owned();
    for kind in ["mnt", "uts", "pid", "net"] {
        assert!(show.lines().any(|l| l.starts_with(kind) && l.ends_with("different")), "{show}");
    }
    for kind in ["ipc", "user", "cgroup"] {
        assert!(show.lines().any(|l| l.starts_with(kind) && l.ends_with("same")), "{show}");
    }

    // `ns ls` lists the whole machine; the session shows the sleeper's rows only.
    let out = Command::new(KTHW).args(["ns", "ls"]).output().unwrap();
    let ls = String::from_utf8_lossy(&out.stdout).into_owned();
    let theirs = kthw_namespaces::inspect::namespaces_of(kthw_namespaces::Pid::from_raw(bg.pid)).unwrap();
    let host = kthw_namespaces::inspect::namespaces_of(kthw_namespaces::Pid::this()).unwrap();
    let own: Vec<String> = theirs.iter().filter(|n| !host.contains(n)).map(|n| n.inode.to_string()).collect();
    assert_eq!(own.len(), 4, "{theirs:?}");
    let mut rows: Vec<&str> = ls.lines().take(1).collect();
    rows.extend(ls.lines().filter(|l| own.iter().any(|i| l.trim_start().starts_with(i.as_str()))));
    assert_eq!(rows.len(), 5, "{ls}");
    assert!(
        rows[1..].iter().all(|r| r.contains(" 2 ") && r.ends_with("sleep infinity")),
        "two processes each: {rows:?}"
    );
    s.note("kthw ns ls | grep -e NPROCS -e sleep", &rows.iter().map(|r| format!("{r}\n")).collect::<String>());
    s.hide(format!(" {:>7} ", pid), &format!(" {:>7} ", "[PID]"));
    s.hide(file.display(), "/tmp/sleeper.pid");

    let out = s.kthw_shown(&["ns", "exec", &pid, "--", "hostname"], "ns exec $(cat /tmp/sleeper.pid) -- hostname");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lab01\n");
    let out = s.kthw_shown(
        &["ns", "exec", &pid, "--", "ip", "-brief", "link"],
        "ns exec $(cat /tmp/sleeper.pid) -- ip -brief link",
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("lo "));
    let out = s.kthw_shown(
        &["ns", "exec", &pid, "--", "ps", "-o", "pid,ppid,comm"],
        "ns exec $(cat /tmp/sleeper.pid) -- ps -o pid,ppid,comm",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kthw-init"));
    s.snapshot("ns_show_ls_exec");
}

// Mistakes give errors that say what, why and how to fix, and exit non-zero.
#[test]
fn ns_errors() {
    require!(Need::Root);
    let mut s = Session::default();
    let out = s.kthw(&["ns", "run", "--hostname", "box", "--", "hostname"]);
    assert!(!out.status.success());
    let out = s.kthw(&["ns", "run", "--pid", "--", "no-such-command"]);
    assert!(!out.status.success());
    s.hide(std::env::var("PATH").unwrap_or_default(), "$PATH");
    let out = s.kthw(&["ns", "run", "--uts", "--", "/etc/passwd"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("EACCES"));
    let out = s.kthw(&["ns", "exec", "999999999", "--", "sh"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no process 999999999"));
    let out = s.kthw(&["ns", "run", "--no-init", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "clap: --no-init requires --pid");
    s.snapshot("ns_errors");
}

// The command's exit code is kthw's exit code.
#[test]
fn ns_run_exits_with_the_command_status() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    for flags in [&["--uts"][..], &["--pid"][..], &["--pid", "--no-init"][..]] {
        let out =
            Command::new(KTHW).args(["ns", "run"]).args(flags).args(["--", "sh", "-c", "exit 7"]).output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{flags:?}");
    }
}

// Lab 1: the reference answer passes every stage; after its cleanup, the first stage fails.
#[test]
fn lab_01_passes_after_the_reference_answer() {
    require!(Need::Root, Need::Namespace(Namespace::Pid), Need::Namespace(Namespace::Net));
    let home = TestHome::new();
    let solution = repo().join("labs/01-namespaces/solution.sh");
    let run = |arg: Option<&str>| {
        let out = Command::new(&solution).args(arg).env("KTHW", KTHW).env("KTHW_HOME", home.path()).output().unwrap();
        assert!(out.status.success(), "solution.sh {arg:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    struct Cleanup<'a>(&'a dyn Fn(Option<&str>));
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            (self.0)(Some("cleanup"));
        }
    }
    run(None);
    let _cleanup = Cleanup(&run);
    run(None); // idempotent: a second run changes nothing and still succeeds
    let check = || Command::new(KTHW).args(["lab", "check", "01"]).env("KTHW_HOME", home.path()).output().unwrap();
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let pid = std::fs::read_to_string(home.paths.lab().join("01-sleeper.pid")).unwrap().trim().to_string();
    let mut s = Session { text: format!("# kthw lab check 01\n{text}"), ..Session::default() };
    s.hide(format!("process {pid} "), "process [PID] ");
    s.hide(format!("process {pid}'s"), "process [PID]'s");
    s.hide(format!("PID {pid} "), "PID [PID] ");
    s.hide(format!("[{pid}, 1]"), "[[PID], 1]");
    s.hide(format!("outside \"{}\"", kthw_lab::host::hostname()), "outside \"[the host's name]\"");
    let dev = regex::Regex::new(r"filesystem \d+:\d+, the host's is \d+:\d+").unwrap();
    s.text = dev.replace(&s.text, "filesystem [DEV], the host's is [DEV]").into_owned();
    s.snapshot("lab_check_01");
    drop(_cleanup);
    let out = check();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  the sleeper runs"));
}

// As an ordinary user, `ns run` and `ns exec` refuse with what to do, and start nothing.
#[test]
fn ns_run_and_exec_need_root() {
    require!(Need::Root, Need::Command("setpriv"));
    for args in [&["ns", "run", "--uts", "--", "true"][..], &["ns", "exec", "1", "--", "true"][..]] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", KTHW])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("needs root (CAP_SYS_ADMIN), but you are uid 65534; run it with sudo"), "{err}");
    }
}

// A namespace kind the kernel refuses is named, with why and how to fix. The limit is
// set to 0 inside a throw-away user namespace (these sysctls are per user namespace),
// so the host's limit is untouched.
#[test]
fn an_unavailable_namespace_is_named_with_the_fix() {
    require!(Need::Root, Need::Namespace(Namespace::User), Need::Command("unshare"));
    let script = format!("echo 0 > /proc/sys/user/max_uts_namespaces && exec {KTHW} ns run --uts --pid -- true");
    let out = Command::new("unshare").args(["--user", "--map-root-user", "sh", "-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot create a new uts namespace: ENOSPC"), "{err}");
    assert!(err.contains("sysctl -w user.max_uts_namespaces=10000"), "{err}");
}
