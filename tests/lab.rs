//! End-to-end tests of the lab checker (`kthw lab ...`) and of lab 0's reference answer.

use std::path::Path;
use std::process::{Command, Output};

use kthw_lab::host::CgroupLayout;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

fn kthw(home: &TestHome, args: &[&str]) -> Output {
    Command::new(KTHW).args(args).env("KTHW_HOME", home.path()).output().expect("run kthw")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// `kthw lab list` shows lab 00 with its sheet.
#[test]
fn lab_list_shows_lab_00() {
    let out = kthw(&TestHome::new(), &["lab", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().next().unwrap().starts_with("00  Your lab machine"), "{text}");
    assert!(text.contains("labs/00-lab/README.md"));
    for line in text.lines() {
        let sheet = line.split_whitespace().last().unwrap();
        assert!(repo().join(sheet).is_file(), "the sheet {sheet} of `{line}` does not exist");
    }
}

// After the reference answer, lab 00 passes, and its JSON report has the documented shape.
#[test]
fn lab_00_passes_after_the_reference_answer() {
    require!(Need::Root, Need::Command("iptables"), Need::Command("sysctl"));
    let home = TestHome::new();
    let solution = Command::new(repo().join("labs/00-lab/solution.sh"))
        .env("KTHW", KTHW)
        .env("KTHW_HOME", home.path())
        .output()
        .unwrap();
    assert!(solution.status.success(), "solution.sh failed: {}", String::from_utf8_lossy(&solution.stderr));

    let json_path = home.path().join("report.json");
    let out = kthw(&home, &["lab", "check", "00", "--json", json_path.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "lab 00 failed:\n{text}");
    assert!(text.ends_with("Lab 00 PASSED: 5/5 stages\n"), "{text}");

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report["format"], "kthw.lab.report/v1");
    assert_eq!(report["chapter"], "00");
    assert_eq!(report["passed"], true);
    assert_eq!(report["cgroup_mode"], CgroupLayout::detect().unwrap().mode.to_string());
    assert!(report["stages"].as_array().unwrap().iter().all(|s| s["result"] == "pass"));

    let mut settings = kthw_lab::snapshot::settings();
    settings.add_filter(r"\d+ checks, no failure, \d+ warnings", "[N] checks, no failure, [N] warnings");
    settings.set_snapshot_suffix(CgroupLayout::detect().unwrap().mode.to_string());
    settings.bind(|| insta::assert_snapshot!("lab_check_00", text));

    let cleanup = Command::new(repo().join("labs/00-lab/solution.sh"))
        .arg("cleanup")
        .env("KTHW", KTHW)
        .env("KTHW_HOME", home.path())
        .status()
        .unwrap();
    assert!(cleanup.success());
}

// Without the saved report, lab 00 fails at that stage, names the book section to reread
// and the likely cause, and exits 1.
#[test]
fn lab_00_without_the_saved_report_fails_there() {
    require!(Need::Root, Need::Command("iptables"));
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim() != "1" {
        eprintln!("SKIPPED: needs net.ipv4.ip_forward=1 so that the stages before the report pass");
        assert!(!kthw_lab::systest::is_ci(), "CI must run with IP forwarding on (scripts/test.sh sets it)");
        return;
    }
    let home = TestHome::new();
    let out = kthw(&home, &["lab", "check", "00", "--json", "-"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], false);
    let stages = report["stages"].as_array().unwrap();
    let failed = stages.iter().find(|s| s["result"] == "fail").unwrap();
    assert_eq!(failed["name"], "your doctor report is saved");
    assert_eq!(failed["book_section"], "ch00-lab-machine.md#saving-the-report");
    assert!(failed["likely_cause"].as_str().unwrap().contains("kthw doctor --json >"), "{failed}");
}

// The report format table in labs/README.md lists exactly the fields the report has.
#[test]
fn labs_readme_documents_every_report_field() {
    let readme = std::fs::read_to_string(repo().join("labs/README.md")).unwrap();
    let documented: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .flat_map(|l| {
            let cell = l.split(" |").next().unwrap_or("");
            cell.split(", ").map(|f| f.trim_matches('`').to_string()).collect::<Vec<_>>()
        })
        .collect();
    let report = kthw_lab::lab::run(
        &kthw_lab::lab::Lab {
            id: "99",
            title: "t",
            sheet: "s",
            stages: vec![kthw_lab::lab::Stage::new("s", "a.md#b", |_| {
                Err(kthw_lab::lab::Failure::new("saw", "cause"))
            })],
        },
        &kthw_lab::lab::Context { paths: kthw_lab::Paths::default() },
        |_| {},
    );
    let json = serde_json::to_value(report).unwrap();
    let mut actual: std::collections::BTreeSet<String> = json.as_object().unwrap().keys().cloned().collect();
    actual.extend(json["stages"][0].as_object().unwrap().keys().cloned());
    assert_eq!(documented, actual, "labs/README.md and kthw_lab::lab::Report disagree");
}
