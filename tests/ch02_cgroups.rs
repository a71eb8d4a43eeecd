//! Chapter 2 end to end: the real `kthw cgroup ...` commands, whose output the book shows.
//! Each snapshot is a short terminal session; what changes from run to run (usage numbers,
//! PIDs, the test's instance name, the cgroup version) is redacted. The snapshots live
//! beside the chapter's crate, in `chapters/02-cgroups/tests/snapshots/`.
//!
//! The limits themselves are proven by the chapter's own system tests
//! (`chapters/02-cgroups/tests/cgroups.rs`); these check that the CLI reports them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kthw_cgroups::{Cgroup, Limits};
use kthw_lab::host::CgroupLayout;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use regex::Regex;

mod transcript;

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

/// A terminal session run with one test's KTHW_HOME, so its cgroups are its own.
struct Session {
    home: TestHome,
    text: String,
}

impl Session {
    fn new() -> Session {
        Session { home: TestHome::new(), text: String::new() }
    }

    /// Runs `kthw ARGS`, records `# kthw ARGS` and the output (the command's stdout, then
    /// kthw's report on stderr), and the exit status when it is not 0.
    fn kthw(&mut self, args: &[&str], shown: &str) -> std::process::Output {
        let mut command = Command::new(KTHW);
        command.args(args).env("KTHW_HOME", self.home.path());
        transcript::record(&mut self.text, &mut command, shown)
    }

    fn instance(&self) -> &str {
        &self.home.paths.instance
    }

    /// The session with run-to-run values replaced by names.
    fn finish(&self) -> String {
        let rules = [
            (regex::escape(self.instance()), "kthw"),
            (r"run-\d+".into(), "run-[PID]"),
            (r"\((v1|v2|hybrid)\)".into(), "([MODE])"),
            (r"(current|peak) [0-9.]+ (B|KiB|MiB|GiB)".into(), "$1 [SIZE]"),
            (r"used [0-9.]+ s".into(), "used [TIME]"),
            (r"throttled \d+ of \d+ periods \([0-9.]+ s\)".into(), "throttled [N] of [N] periods ([TIME])"),
            (r"memory\.(oom_control|events) oom_kill".into(), "[OOM FILE] oom_kill"),
        ];
        rules.iter().fold(self.text.clone(), |text, (from, to)| {
            Regex::new(from).expect("valid pattern").replace_all(&text, *to).into_owned()
        })
    }

    fn snapshot(&self, name: &str) {
        let mut settings = insta::Settings::clone_current();
        settings.set_omit_expression(true);
        settings.set_prepend_module_to_snapshot(false);
        settings.set_snapshot_path("../chapters/02-cgroups/tests/snapshots");
        settings.bind(|| insta::assert_snapshot!(name, self.finish()));
    }

    /// Nothing of this session's instance is left in any hierarchy.
    fn assert_no_leftovers(&self) {
        let layout = CgroupLayout::detect().unwrap();
        let left: Vec<_> = layout.mounts.iter().map(|m| m.path.join(self.instance())).filter(|p| p.exists()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(layout) = CgroupLayout::detect() {
            if let Ok(cg) = Cgroup::open(&layout, self.instance()) {
                let _ = cg.delete();
            }
        }
    }
}

// A memory hog under --memory 32M is OOM killed; kthw says so and exits 137.
#[test]
fn cgroup_run_reports_the_oom_kill() {
    require!(Need::Root, Need::Controller("memory"));
    let mut s = Session::new();
    let hog = r#"a=x; while :; do a="$a$a"; done"#;
    let out = s.kthw(
        &["cgroup", "run", "--memory", "32M", "--", "sh", "-c", hog],
        &format!("cgroup run --memory 32M -- sh -c '{hog}'"),
    );
    assert_eq!(out.status.code(), Some(137));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OOM killed"));
    s.assert_no_leftovers();
    s.snapshot("cgroup_run_oom");
}

// CPU, pids and cpuset limits show in the command's own behaviour and in kthw's report.
#[test]
fn cgroup_run_applies_cpu_pids_and_cpuset_limits() {
    require!(Need::Root, Need::Controller("cpu"), Need::Controller("pids"), Need::Controller("cpuset"));
    let mut s = Session::new();
    let busy = "while :; do :; done";
    let out = s.kthw(
        &["cgroup", "run", "--cpus", "0.5", "--", "timeout", "1", "sh", "-c", busy],
        &format!("cgroup run --cpus 0.5 -- timeout 1 sh -c '{busy}'"),
    );
    assert_eq!(out.status.code(), Some(124), "timeout stopped the loop");
    let forks = "for i in 1 2 3 4 5 6; do sleep 1 & done; wait";
    let out = s.kthw(
        &["cgroup", "run", "--pids", "5", "--", "sh", "-c", forks],
        &format!("cgroup run --pids 5 -- sh -c '{forks}'"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fork"), "the sixth fork fails");
    let out = s.kthw(
        &["cgroup", "run", "--cpuset", "0", "--", "grep", "Cpus_allowed_list", "/proc/self/status"],
        "cgroup run --cpuset 0 -- grep Cpus_allowed_list /proc/self/status",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Cpus_allowed_list:\t0");
    s.assert_no_leftovers();
    s.snapshot("cgroup_run_limits");
}

// `kthw cgroup stat` shows a cgroup's limits and usage, by its path or its directory.
#[test]
fn cgroup_stat_shows_limits_and_usage() {
    require!(Need::Root, Need::Controller("memory"), Need::Controller("pids"), Need::Controller("cpu"));
    let mut s = Session::new();
    let layout = CgroupLayout::detect().unwrap();
    let path = format!("/{}/lab02", s.instance());
    let cg = Cgroup::create(&layout, &path).unwrap().guard();
    cg.apply(&Limits::parse(Some("64M"), Some("0.5"), Some("20"), None).unwrap()).unwrap();
    let mut sleeper: Child = Command::new("sleep").arg("100").stdout(Stdio::null()).spawn().unwrap();
    cg.add_process(sleeper.id()).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let out = s.kthw(&["cgroup", "stat", &path], &format!("cgroup stat {path}"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("limit 64.0 MiB") && text.contains("pids     current 1, limit 20"), "{text}");
    cg.delete().unwrap();
    let _ = sleeper.wait();
    s.snapshot("cgroup_stat");
}

// Bad values and unknown cgroups are errors that say what is wrong and how to fix it.
#[test]
fn cgroup_errors_say_what_and_how_to_fix() {
    require!(Need::Root);
    let mut s = Session::new();
    for (args, shown) in [
        (vec!["cgroup", "run", "--memory", "1.5G", "--", "true"], "cgroup run --memory 1.5G -- true"),
        (vec!["cgroup", "run", "--cpus", "0", "--", "true"], "cgroup run --cpus 0 -- true"),
        (vec!["cgroup", "run", "--pids", "0", "--", "true"], "cgroup run --pids 0 -- true"),
        (vec!["cgroup", "stat", "/kthw/nope"], "cgroup stat /kthw/nope"),
    ] {
        let out = s.kthw(&args, shown);
        assert_eq!(out.status.code(), Some(1), "{shown}");
    }
    s.assert_no_leftovers();
    s.snapshot("cgroup_errors");
}
