//! Lab 03's reference answer (`labs/03-rootfs/solution.sh`) passes the checker, the
//! checker fails on an untouched machine, and `solution.sh cleanup` leaves nothing.

use std::path::PathBuf;
use std::process::Command;

use kthw_lab::lab::{Context, StageResult};
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_rootfs::lab;

fn solution() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../labs/03-rootfs/solution.sh")
}

fn run_solution(kthw: &PathBuf, home: &TestHome, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(solution())
        .args(args)
        .env("KTHW", kthw)
        .env("KTHW_HOME", home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bash")
}

/// Undoes the lab even when an assertion fails.
struct Cleanup<'a>(&'a PathBuf, &'a TestHome);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = run_solution(self.0, self.1, &["cleanup"]);
    }
}

// The checker fails on a fresh machine, passes after the reference answer (run twice:
// it is idempotent), and cleanup unmounts and removes everything.
#[test]
fn solution_passes_the_checker_and_cleans_up() {
    require!(Need::Root, Need::Overlayfs, Need::Command("bash"));
    let Some(kthw) = kthw_lab::systest::kthw_binary("cargo build") else { return };
    let home = TestHome::new();
    let _cleanup = Cleanup(&kthw, &home);
    let ctx = Context { paths: home.paths.clone() };

    let before = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    assert!(!before.passed);
    assert_eq!(before.stages[0].result, StageResult::Fail);
    assert!(before.stages[0].likely_cause.as_deref().unwrap_or("").contains("kthw image import"));

    for _ in 0..2 {
        let out = run_solution(&kthw, &home, &[]);
        assert!(out.status.success(), "solution.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let after = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    let stages: Vec<_> = after.stages.iter().map(|s| (s.name.as_str(), s.result, s.detail.as_str())).collect();
    assert!(after.passed, "{stages:#?}");
    let text: Vec<String> = after.stages.iter().map(kthw_lab::lab::render_stage).collect();
    let text = text.join("\n") + "\n";
    let mut settings = kthw_lab::snapshot::settings();
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[SHORT-ID]");
    settings.bind(|| insta::assert_snapshot!("lab_check_03", text));

    // Undo one step: the upper dir loses its whiteout, and the checker says so.
    let upper = home.paths.state.join("rootfs/lab03/upper/bin/ls");
    std::fs::remove_file(&upper).unwrap();
    let broken = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    assert_eq!(broken.stages[2].result, StageResult::Fail, "{:#?}", broken.stages[2]);

    let out = run_solution(&kthw, &home, &["cleanup"]);
    assert!(out.status.success());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(home.path().to_str().unwrap()), "cleanup leaves no mount");
    assert!(Store::open(home.paths.images()).unwrap().refs().unwrap().is_empty());
}

use kthw_rootfs::Store;
