//! The system-test helper: one place that decides whether a test that needs root, Linux
//! or a kernel feature can run here.
//!
//! A system test starts with [`require!`](crate::require) and the list of what it needs:
//!
//! ```no_run
//! use kthw_lab::require;
//! use kthw_lab::systest::Need;
//! use kthw_lab::host::Namespace;
//!
//! #[test]
//! fn hostname_set_inside_is_invisible_outside() {
//!     require!(Need::Root, Need::Namespace(Namespace::Uts));
//!     // ... the test proper ...
//! }
//! ```
//!
//! If everything is there, the test runs. If something is missing:
//! - under `CI=true` the test **fails**, naming what is missing: CI must never pass by
//!   skipping the tests that matter;
//! - elsewhere (a learner's laptop, a `cargo test` as a normal user) it is **skipped**
//!   with a message saying how to run it: as root, or inside the lab VM.
//!
//! What real projects do differently: runc's integration tests (bats) call `requires root`
//! and skip; Kubernetes' e2e framework uses `e2eskipper.SkipUnlessXxx`. Neither fails when
//! run in CI without the prerequisite, which is how skipped tests hide regressions.

use std::fmt;
use std::path::Path;

use crate::host::{self, CgroupLayout, CgroupMode, Namespace};

/// Something a system test needs from the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0.
    Root,
    /// A namespace of this kind can really be created.
    Namespace(Namespace),
    /// This cgroup controller is mounted in some hierarchy (v1 or v2).
    Controller(&'static str),
    /// The machine uses this cgroup mode (for tests of one backend).
    CgroupMode(CgroupMode),
    /// overlayfs can be mounted.
    Overlayfs,
    /// This program is on `PATH` (e.g. `runc`, `iptables`, `busybox`).
    Command(&'static str),
    /// This file exists, installed by that Debian package (e.g. a CNI plugin in
    /// `/usr/lib/cni`, which is not on `PATH`).
    File { path: &'static str, package: &'static str },
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Root => write!(f, "root"),
            Need::Namespace(ns) => write!(f, "a new {ns} namespace"),
            Need::Controller(c) => write!(f, "the {c} cgroup controller"),
            Need::CgroupMode(m) => write!(f, "cgroup mode {m}"),
            Need::Overlayfs => write!(f, "overlayfs"),
            Need::Command(c) => write!(f, "the `{c}` command"),
            Need::File { path, package } => write!(f, "{path} (Debian package {package})"),
        }
    }
}

impl Need {
    /// `Ok` if the machine has it, else why not.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Need::Root if host::is_root() => Ok(()),
            Need::Root => Err(format!("you are uid {}, not root", nix::unistd::geteuid())),
            Need::Namespace(ns) => host::try_namespace(*ns).map_err(|e| format!("unshare({ns}) failed: {e}")),
            Need::Controller(c) => match CgroupLayout::detect() {
                Ok(l) if l.hierarchy_for(c).is_some() => Ok(()),
                Ok(l) => Err(format!("no {} hierarchy holds the {c} controller", l.mode)),
                Err(e) => Err(e.to_string()),
            },
            Need::CgroupMode(want) => match CgroupLayout::detect() {
                Ok(l) if l.mode == *want => Ok(()),
                Ok(l) => Err(format!("this machine's cgroup mode is {}", l.mode)),
                Err(e) => Err(e.to_string()),
            },
            Need::Overlayfs => {
                // One folder per probe: tests run in parallel threads of one process, and a
                // probe deletes its folder when done.
                static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let scratch = std::env::temp_dir().join(format!("kthw-overlay-probe-{}-{n}", std::process::id()));
                host::try_overlayfs(&scratch).map_err(|e| format!("mounting overlay failed: {e}"))
            }
            Need::Command(c) => host::which(c).map(|_| ()).ok_or_else(|| format!("`{c}` is not on PATH")),
            Need::File { path, package } if !Path::new(path).exists() => {
                Err(format!("{path} is missing: apt-get install {package}"))
            }
            Need::File { .. } => Ok(()),
        }
    }
}

/// What [`decide`] concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Everything is there: run the test.
    Run,
    /// Skip the test, printing this message.
    Skip(String),
    /// Fail the test with this message (under `CI=true`).
    Fail(String),
}

/// Decides whether `test` can run, given what is `missing` and whether this is CI.
/// Pure, so the policy itself is unit-tested.
pub fn decide(test: &str, missing: &[(Need, String)], ci: bool) -> Decision {
    if missing.is_empty() {
        return Decision::Run;
    }
    let reasons: Vec<String> = missing.iter().map(|(need, why)| format!("needs {need}: {why}")).collect();
    let reasons = reasons.join("; ");
    if ci {
        Decision::Fail(format!(
            "system test {test} cannot run and CI=true forbids skipping it: {reasons}. \
             Install what is missing in the README's test command."
        ))
    } else {
        let how = if missing.iter().any(|(n, _)| *n == Need::Root) {
            "run it as root (`sudo -E cargo test`), or inside the lab VM (`vagrant ssh server`, see vagrant/README.md)"
        } else {
            "run it inside the lab VM (`vagrant ssh server`, see vagrant/README.md), where every chapter's needs are installed"
        };
        Decision::Skip(format!("SKIPPED {test}: {reasons}. To run it, {how}."))
    }
}

/// Checks `needs` for the current test and applies [`decide`]: `true` to run; `false`
/// after printing a skip message; panics under `CI=true`. Use it through [`require!`](crate::require).
pub fn can_run(needs: &[Need]) -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    let missing: Vec<(Need, String)> =
        needs.iter().filter_map(|n| n.check().err().map(|why| (n.clone(), why))).collect();
    match decide(test, &missing, is_ci()) {
        Decision::Run => true,
        Decision::Skip(msg) => {
            eprintln!("{msg}");
            false
        }
        Decision::Fail(msg) => panic!("{msg}"),
    }
}

/// Whether we run under CI (`CI=true`, as GitHub Actions, GitLab and kthw's `.ci/run` set it).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The `kthw` binary for a test that runs it (a lab's `solution.sh`, say): `$KTHW`, or
/// the one cargo built beside the test binary (`cargo test --workspace` builds it).
/// `None` after printing a skip that says to run `build` first; under `CI=true` a
/// missing binary fails the test instead, as [`require!`](crate::require) does.
///
/// # Panics
/// Under `CI=true`, when there is no binary.
pub fn kthw_binary(build: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("KTHW").map(std::path::PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let candidate = exe.parent()?.parent()?.join("kthw");
        candidate.is_file().then_some(candidate)
    });
    if found.is_none() {
        assert!(!is_ci(), "CI must build the kthw binary before this test (cargo test --workspace)");
        eprintln!("SKIPPED: no kthw binary; run `{build}` first or set KTHW");
    }
    found
}

/// A fresh `KTHW_HOME` for one test: its own state directories and instance name, so
/// system tests run side by side without sharing a bridge, a chain or a cgroup. The
/// folder is removed when the value is dropped (host-wide leftovers are the test's to
/// clean, for example with [`crate::reset`]).
#[derive(Debug)]
pub struct TestHome {
    /// The paths and instance name of this test.
    pub paths: crate::Paths,
    dir: std::path::PathBuf,
}

impl TestHome {
    /// Creates `$TMPDIR/kthw-test-<pid>-<n>`.
    ///
    /// # Panics
    /// If the folder cannot be created (a broken test machine).
    pub fn new() -> TestHome {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kthw-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary KTHW_HOME");
        TestHome { paths: crate::Paths::under(&dir), dir }
    }

    /// The folder to pass as `KTHW_HOME`.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Default for TestHome {
    fn default() -> Self {
        TestHome::new()
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a system test: returns from the test (skipping it) unless every need is met;
/// fails it instead under `CI=true`. See the [module docs](crate::systest).
#[macro_export]
macro_rules! require {
    ($($need:expr),+ $(,)?) => {
        if !$crate::systest::can_run(&[$($need),+]) {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // A file a package installs is there or not; if not, the reason names the package.
    #[test]
    fn a_missing_file_names_its_package() {
        let missing = Need::File { path: "/no/such/kthw-plugin", package: "kthw-example" };
        assert_eq!(missing.check(), Err("/no/such/kthw-plugin is missing: apt-get install kthw-example".into()));
        assert_eq!(Need::File { path: "/", package: "base-files" }.check(), Ok(()));
    }

    // A test whose needs are all met runs, in CI or not.
    #[test]
    fn nothing_missing_runs() {
        assert_eq!(decide("t", &[], true), Decision::Run);
        assert_eq!(decide("t", &[], false), Decision::Run);
    }

    // Outside CI a test that lacks root is skipped, and the message says how to run it.
    #[test]
    fn missing_root_outside_ci_skips_with_how_to() {
        let missing = [(Need::Root, "you are uid 1000, not root".to_string())];
        let Decision::Skip(msg) = decide("ns::hostname", &missing, false) else { panic!("expected a skip") };
        assert!(msg.contains("ns::hostname"), "{msg}");
        assert!(msg.contains("needs root: you are uid 1000"), "{msg}");
        assert!(msg.contains("sudo -E cargo test"), "{msg}");
        assert!(msg.contains("lab VM"), "{msg}");
    }

    // Under CI=true a missing prerequisite fails the test, with the reason.
    #[test]
    fn missing_anything_under_ci_fails() {
        let missing = [(Need::Command("runc"), "`runc` is not on PATH".to_string())];
        let Decision::Fail(msg) = decide("rt::interop", &missing, true) else { panic!("expected a failure") };
        assert!(msg.contains("CI=true"), "{msg}");
        assert!(msg.contains("needs the `runc` command: `runc` is not on PATH"), "{msg}");
    }

    // A command that surely exists is found; one that surely does not is reported.
    #[test]
    fn command_needs_look_at_path() {
        assert!(Need::Command("sh").check().is_ok());
        let err = Need::Command("no-such-program-kthw").check().unwrap_err();
        assert!(err.contains("not on PATH"));
    }
}
