//! End-to-end tests of `kthw doctor` on the real machine.

use std::process::Command;

use kthw_lab::host::{CgroupLayout, Kernel};
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

fn doctor(home: &TestHome, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kthw"))
        .arg("doctor")
        .args(args)
        .env("KTHW_HOME", home.path())
        .output()
        .expect("run kthw doctor")
}

// On a prepared machine (the README's test command prepares it), the doctor passes, and
// its output is the book's reference answer for this cgroup mode.
#[test]
fn doctor_passes_on_a_prepared_machine() {
    require!(Need::Root, Need::Command("iptables"));
    let home = TestHome::new();
    let out = doctor(&home, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "kthw doctor failed:\n{text}");
    let mode = CgroupLayout::detect().unwrap().mode;
    let kernel = Kernel::current().unwrap().release;
    let mut settings = kthw_lab::snapshot::settings();
    settings.add_filter(&regex::escape(&kernel), "[KERNEL]");
    settings.add_filter(&format!(r"host {},", regex::escape(&kthw_lab::host::hostname())), "host [HOST],");
    settings.add_filter(r"\d+\.\d (GiB|MiB)", "[SIZE]");
    settings.add_filter(r"\(iptables v[0-9.]+ \((nf_tables|legacy)\)", "iptables [VERSION]");
    settings.add_filter(r"iptables v[0-9.]+ \((nf_tables|legacy)\)", "iptables [VERSION]");
    settings.set_snapshot_suffix(mode.to_string());
    settings.bind(|| insta::assert_snapshot!("doctor", text));
}

// `--json` gives the same checks as data, and `passed` agrees with the exit code.
#[test]
fn doctor_json_matches_exit_code() {
    let home = TestHome::new();
    let out = doctor(&home, &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    assert_eq!(report["passed"].as_bool(), Some(out.status.success()));
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["name"] == "cgroup layout"));
    for check in checks {
        assert!(["ok", "warn", "fail"].contains(&check["status"].as_str().unwrap()), "{check}");
        if check["status"] != "ok" {
            assert!(check["fix"].is_string(), "a {} check without a fix: {check}", check["status"]);
        }
    }
}

// Made to lack privileges (`unshare --user`: root in name only), the doctor fails and says why.
#[test]
fn doctor_without_privileges_fails_with_reasons() {
    require!(Need::Command("unshare"));
    let home = TestHome::new();
    let out = Command::new("unshare")
        .args(["--user", env!("CARGO_BIN_EXE_kthw"), "doctor"])
        .env("KTHW_HOME", home.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  root"), "{text}");
    assert!(text.contains("not root: namespaces, cgroups, mounts and iptables need root"), "{text}");
    assert!(text.contains("fix: run as root: `sudo kthw doctor`"), "{text}");
    assert!(text.contains("fix the failures above"), "{text}");
}
