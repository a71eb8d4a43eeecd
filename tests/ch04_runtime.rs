//! Chapter 4, low level, end to end: the real `kthw runtime ...` commands (like runc's),
//! and interoperability with Debian's runc both ways. The transcript of the lifecycle is
//! the book's listing (`chapters/04-runtime/tests/snapshots/`). What each container must
//! have inside is proven by the chapter's own tests (`chapters/04-runtime/tests/oci.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kthw_cgroups::Cgroup;
use kthw_lab::host::CgroupLayout;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use regex::Regex;
use serde_json::Value;

mod transcript;

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

/// A terminal session with one test's KTHW_HOME; removes its containers and cgroups at drop.
struct Session {
    home: TestHome,
    text: String,
}

impl Session {
    fn new() -> Session {
        Session { home: TestHome::new(), text: String::new() }
    }

    fn kthw(&mut self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(KTHW);
        command.args(args).env("KTHW_HOME", self.home.path()).stdin(std::process::Stdio::null());
        let shown = args
            .iter()
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a.to_string() })
            .collect::<Vec<_>>()
            .join(" ");
        let shown = shown.replace(&self.home.path().display().to_string(), "$HOME");
        transcript::record(&mut self.text, &mut command, &shown)
    }

    /// Like [`Session::kthw`], for `create`: the container inherits the command's stdout and
    /// stderr (as with runc) and keeps them open, so they go to files, not to pipes that
    /// the test would wait on until the container exits.
    fn kthw_detached(&mut self, args: &[&str]) -> std::process::ExitStatus {
        let (out, err) = (self.dir("create.out"), self.dir("create.err"));
        let status = Command::new(KTHW)
            .args(args)
            .env("KTHW_HOME", self.home.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let shown = args.join(" ").replace(&self.home.path().display().to_string(), "$HOME");
        self.text.push_str(&format!("# kthw {shown}\n"));
        self.text.push_str(&std::fs::read_to_string(&out).unwrap());
        self.text.push_str(&std::fs::read_to_string(&err).unwrap());
        status
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn state(&mut self, id: &str) -> Value {
        let out = self.kthw(&["runtime", "state", id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn finish(&self) -> String {
        let rules = [
            (regex::escape(&self.home.path().display().to_string()), "$$HOME".to_string()),
            (r#""pid": [1-9]\d*"#.into(), r#""pid": [PID]"#.into()),
            (r"(?m)^(c1\s+)\d+ +".into(), "${1}[PID]    ".into()),
        ];
        rules.iter().fold(self.text.clone(), |text, (from, to)| {
            Regex::new(from).unwrap().replace_all(&text, to.as_str()).into_owned()
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let rt = kthw_runtime::Runtime::for_paths(&self.home.paths);
        for state in rt.list().unwrap_or_default() {
            let _ = rt.delete(&state.id, true);
        }
        if let Ok(layout) = CgroupLayout::detect()
            && let Ok(cg) = Cgroup::open(&layout, self.home.paths.cgroup_root())
        {
            let _ = cg.delete();
        }
    }
}

fn edit(bundle: &Path, f: impl FnOnce(&mut Value)) {
    let path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut spec);
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// `kthw runtime` creates, starts, signals and deletes a container as runc does, and
// `state` shows created, running, then stopped.
#[test]
fn runtime_lifecycle_like_runc() {
    require!(Need::Root);
    let mut s = Session::new();
    let bundle = s.dir("bundle").display().to_string();
    assert!(s.kthw(&["runtime", "spec", "--bundle", &bundle, "--busybox", "--", "sleep", "1000"]).status.success());
    let pid_file = s.dir("c1.pid").display().to_string();
    let status = s.kthw_detached(&["runtime", "create", "--bundle", &bundle, "--pid-file", &pid_file, "c1"]);
    assert!(status.success(), "{}", s.text);
    let created = s.state("c1");
    assert_eq!(created["status"], "created");
    assert_eq!(created["pid"].to_string(), std::fs::read_to_string(&pid_file).unwrap());
    assert!(s.kthw(&["runtime", "start", "c1"]).status.success());
    assert_eq!(s.state("c1")["status"], "running");
    s.kthw(&["runtime", "list"]);
    assert!(!s.kthw(&["runtime", "delete", "c1"]).status.success(), "a running container needs --force");
    assert!(s.kthw(&["runtime", "kill", "c1", "KILL"]).status.success());
    // The init's parent (`create`) has exited, so the host's init reaps it.
    let pid = created["pid"].as_i64().unwrap();
    wait_until("the init to go", || !Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(s.state("c1")["status"], "stopped");
    assert!(s.kthw(&["runtime", "delete", "c1"]).status.success());
    s.kthw(&["runtime", "list"]);
    let mut settings = insta::Settings::clone_current();
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("../chapters/04-runtime/tests/snapshots");
    settings.bind(|| insta::assert_snapshot!("runtime_lifecycle", s.finish()));
}

// `kthw runtime run` exits with the container's exit code; a bad bundle is a clear error.
#[test]
fn runtime_run_exit_code_and_errors() {
    require!(Need::Root);
    let mut s = Session::new();
    let bundle = s.dir("bundle").display().to_string();
    assert!(
        s.kthw(&["runtime", "spec", "-b", &bundle, "--busybox", "--", "sh", "-c", "echo hi; exit 3"]).status.success()
    );
    let out = s.kthw(&["runtime", "run", "-b", &bundle, "r1"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = s.kthw(&["runtime", "run", "-b", "/nonexistent-bundle", "r2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-bundle"), "{out:?}");
    let out = s.kthw(&["runtime", "kill", "r3", "NOPE"]);
    assert!(!out.status.success());
    assert!(s.kthw(&["runtime", "list", "--format", "json"]).stdout.starts_with(b"[]"));
}

// Ours runs a bundle written by `runc spec` (terminal off, a busybox root).
#[test]
fn ours_runs_a_runc_spec_bundle() {
    require!(Need::Root, Need::Command("runc"));
    let mut s = Session::new();
    let bundle = s.dir("runc-bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let status = Command::new("runc").arg("spec").current_dir(&bundle).status().unwrap();
    assert!(status.success());
    kthw_runtime::spec::busybox_rootfs(&bundle.join("rootfs")).unwrap();
    edit(&bundle, |spec| {
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(["sh", "-c", "hostname; echo $$; exit 5"]);
    });
    let out = s.kthw(&["runtime", "run", "-b", &bundle.display().to_string(), "from-runc"]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "runc\n1\n");
}

// `runc run` runs a bundle written by `kthw runtime spec --busybox`.
#[test]
fn runc_runs_our_spec_bundle() {
    require!(Need::Root, Need::Command("runc"));
    let mut s = Session::new();
    let bundle = s.dir("our-bundle");
    let b = bundle.display().to_string();
    assert!(
        s.kthw(&["runtime", "spec", "-b", &b, "--busybox", "--", "sh", "-c", "grep CapEff /proc/self/status; exit 6"])
            .status
            .success()
    );
    // Our instance's cgroup, so a failed test leaves nothing that `kthw reset` misses.
    let cgroup = format!("/{}/runc-test", s.home.paths.cgroup_root());
    edit(&bundle, |spec| spec["linux"]["cgroupsPath"] = cgroup.clone().into());
    let out = Command::new("runc")
        .args(["--root", &s.dir("runc-state").display().to_string(), "run", "-b", &b, "ours"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    let docker = format!("{:016x}", kthw_runtime::security::cap_bits(kthw_runtime::spec::DOCKER_DEFAULT_CAPS).unwrap());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("CapEff:\t{docker}\n"));
}
