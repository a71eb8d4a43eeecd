//! `kthw bench pod` end to end, as root: a tiny run (2 iterations, 1 round) names every
//! party, gives the ratio and the target verdict, shows the phase table, and leaves
//! nothing behind.
//!
//! It runs the `kthw` binary rather than calling `kthw_pods::bench` from a test thread:
//! the benchmark moves itself into a private mount namespace, which `unshare` does for
//! the calling *thread* only, while `/proc/self/mountinfo` (read to find the cgroup
//! layout and the mounts) shows the *main* thread's mounts. The CLI is one thread.

use std::path::Path;
use std::process::Command;

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

// A tiny `kthw bench pod` measures ours, crun and runc, prints the ratio to two crun
// runs with a verdict and the phases of our pod start, and leaves no pod, mount,
// interface or cgroup behind (its own line says `ok`).
#[test]
fn bench_pod_names_every_party_and_a_ratio() {
    require!(Need::Root, Need::Overlayfs, Need::Command("crun"), Need::Command("runc"));
    let bins = Path::new(KTHW).parent().unwrap();
    if !bins.join("kthw-pause").is_file() || !bins.join("kthw-cni-bridge").is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo).args(["build", "-p", "kthw-pods", "--bins"]).status().unwrap();
        assert!(ok.success(), "cargo build -p kthw-pods --bins");
    }
    let home = TestHome::new();
    let out = Command::new(KTHW)
        .args(["bench", "pod", "-n", "2", "--rounds", "1", "--profile"])
        .env("KTHW_HOME", home.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit 1 is a missed target (a debug build may miss it), not an error: then the
    // table is there and stderr has no `Error:`.
    assert!(!stderr.contains("Error"), "kthw bench pod failed:\n{stderr}\n{stdout}");
    for party in ["kthw pod ", "crun run x2 ", "runc run x2 ", "kthw teardown "] {
        let line = stdout.lines().find(|l| l.starts_with(party)).unwrap_or_else(|| panic!("no {party:?}:\n{stdout}"));
        let median: f64 = line.split_whitespace().nth(party.split_whitespace().count()).unwrap().parse().unwrap();
        assert!(median > 0.0, "{line}");
    }
    let ratio = stdout.lines().find(|l| l.starts_with("ratio of medians kthw pod/(2 x crun) ")).expect(&stdout);
    let value: f64 = ratio.split_whitespace().nth(7).unwrap().parse().unwrap();
    assert!(value > 0.0 && value.is_finite(), "{ratio}");
    let target = stdout.lines().find(|l| l.starts_with("target  kthw pod <= 1.0x")).expect(&stdout);
    assert!(target.ends_with("MET") || target.ends_with("MISSED"), "{target}");
    assert_eq!(out.status.success(), target.ends_with("MET"), "the exit code follows the target:\n{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("CNI ADD (kthw-bridge)")), "no phase table:\n{stdout}");
    let left = stdout.lines().find(|l| l.starts_with("left behind:")).expect(&stdout);
    assert!(left.ends_with("ok"), "{left}");
    // And the benchmark's own node is gone from the host: its bridge was there, now it is not.
    let node = stdout.lines().find(|l| l.starts_with("our node:")).expect(&stdout);
    let bridge = node.split("bridge ").nth(1).and_then(|b| b.split([',', ' ']).next()).expect(node);
    assert!(bridge.ends_with("cni0"), "{node}");
    assert!(!Path::new("/sys/class/net").join(bridge).exists(), "{bridge} is left: {node}");
    let _ = Command::new(KTHW).args(["reset", "--force"]).env("KTHW_HOME", home.path()).output();
}
