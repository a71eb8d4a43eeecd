//! Lab 02's reference answer (`labs/02-cgroups/solution.sh`) passes the checker, the
//! checker fails on an untouched machine, and `solution.sh cleanup` leaves nothing.

use std::path::PathBuf;
use std::process::Command;

use kthw_cgroups::lab;
use kthw_lab::host::CgroupLayout;
use kthw_lab::lab::{Context, StageResult};
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

fn solution() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../labs/02-cgroups/solution.sh")
}

/// Runs `solution.sh` with this test's KTHW_HOME, so it uses the test's instance name.
fn run_solution(home: &TestHome, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(solution())
        .args(args)
        .env("KTHW_HOME", home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bash")
}

/// Undoes the lab even when an assertion fails.
struct Cleanup<'a>(&'a TestHome);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = run_solution(self.0, &["cleanup"]);
    }
}

// The checker fails on a machine where the lab was not done, passes after the
// reference answer (which may run twice), and cleanup removes every trace.
#[test]
fn solution_passes_the_checker_and_cleans_up() {
    require!(Need::Root, Need::Controller("memory"), Need::Controller("pids"), Need::Command("bash"));
    let home = TestHome::new();
    let _cleanup = Cleanup(&home);
    let ctx = Context { paths: home.paths.clone() };

    let before = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    assert!(!before.passed);
    assert_eq!(before.stages[0].result, StageResult::Fail);
    assert!(before.stages[0].likely_cause.as_deref().unwrap_or("").contains("mkdir -p"));

    for _ in 0..2 {
        let out = run_solution(&home, &[]);
        assert!(out.status.success(), "solution.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let after = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    let stages: Vec<_> = after.stages.iter().map(|s| (s.name.as_str(), s.result, s.detail.as_str())).collect();
    assert!(after.passed, "{stages:#?}");

    let out = run_solution(&home, &["cleanup"]);
    assert!(out.status.success());
    let layout = CgroupLayout::detect().unwrap();
    let left: Vec<_> =
        layout.mounts.iter().map(|m| m.path.join(home.paths.cgroup_root())).filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!home.paths.lab().join(lab::SLEEPER_PID_FILE).exists());
}
