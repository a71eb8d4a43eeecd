//! Lab 04's reference answer (`labs/04-runtime/solution.sh`) passes the checker, the
//! checker fails on an untouched machine and when a step is undone, and
//! `solution.sh cleanup` leaves no container, veth, rule, cgroup or mount behind.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kthw_lab::lab::{Context, StageResult};
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_runtime::lab;

/// The host port the test publishes instead of the sheet's 8004, so that it never meets
/// another test's (or the learner's) rule for 8004. The snapshot shows 8004 again.
const PORT: &str = "18404";

fn solution() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../labs/04-runtime/solution.sh")
}

fn run_solution(kthw: &PathBuf, home: &TestHome, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(solution())
        .args(args)
        .env("KTHW", kthw)
        .env("KTHW_HOME", home.path())
        .env("LAB04_PORT", PORT)
        .stdin(Stdio::null())
        .output()
        .expect("run bash")
}

/// Undoes the lab even when an assertion fails: the reference cleanup, then `kthw reset`
/// of the test's instance for anything left (the bridge, our chains, a stray cgroup).
struct Cleanup<'a>(&'a PathBuf, &'a TestHome);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = run_solution(self.0, self.1, &["cleanup"]);
        match kthw_lab::reset::plan(&self.1.paths) {
            Ok(plan) => {
                let problems = kthw_lab::reset::apply(&plan);
                if !problems.is_empty() {
                    eprintln!("reset after the lab test: {problems:?}");
                }
            }
            Err(e) => eprintln!("reset after the lab test: {e}"),
        }
    }
}

/// Lines of `iptables -t TABLE -S` that mention a container of ours.
fn container_rules(table: &str, instance: &str) -> Vec<String> {
    let out = Command::new("iptables").args(["-w", "5", "-t", table, "-S"]).output().expect("run iptables");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.to_uppercase().contains(&instance.to_uppercase()) && l.contains("container="))
        .map(str::to_string)
        .collect()
}

/// The insta settings for the lab's output: the test's instance, subnet and port shown
/// as a learner's default installation has them, PIDs hidden, then kthw's standard
/// redactions. cgroup v1's file name is shown as v2's, the lab VMs' mode, so one snapshot
/// serves both.
fn settings(home: &TestHome) -> insta::Settings {
    let instance = &home.paths.instance;
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&format!(r"\b{instance}"), "kthw");
    settings.add_filter(&format!(r"\b{}", instance.to_uppercase()), "KTHW");
    settings.add_filter(r"\b10\.77\.\d+\.", "10.77.0.");
    settings.add_filter(&format!(r":{PORT}\b"), ":8004");
    settings.add_filter(&format!(r"--dport {PORT}\b"), "--dport 8004");
    settings.add_filter(r"\bpid \d+", "pid [PID]");
    settings.add_filter(r"memory\.limit_in_bytes", "memory.max");
    for (regex, replacement) in kthw_lab::snapshot::FILTERS {
        settings.add_filter(regex, *replacement);
    }
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings
}

// The checker fails on a fresh machine, passes after the reference answer (run twice:
// it is idempotent), fails when the exec step's file is gone, and cleanup leaves no
// container, veth, DNAT rule, cgroup or mount.
#[test]
fn solution_passes_the_checker_and_cleans_up() {
    require!(
        Need::Root,
        Need::Overlayfs,
        Need::Command("bash"),
        Need::Command("busybox"),
        Need::Command("curl"),
        Need::Command("ip"),
        Need::Command("iptables"),
        Need::Command("nsenter")
    );
    let Some(kthw) = kthw_lab::systest::kthw_binary("cargo build -p kthw") else { return };
    let home = TestHome::new();
    let _cleanup = Cleanup(&kthw, &home);
    let ctx = Context { paths: home.paths.clone() };

    let before = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    assert!(!before.passed);
    assert_eq!(before.stages[0].result, StageResult::Fail);
    assert!(before.stages[0].likely_cause.as_deref().unwrap_or("").contains("kthw image import"), "{before:#?}");

    for _ in 0..2 {
        let out = run_solution(&kthw, &home, &[]);
        assert!(
            out.status.success(),
            "solution.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    let stages: Vec<_> = after.stages.iter().map(|s| (s.name.as_str(), s.result, s.detail.as_str())).collect();
    assert!(after.passed, "{stages:#?}");
    let text: Vec<String> = after.stages.iter().map(kthw_lab::lab::render_stage).collect();
    let text = text.join("\n") + "\n";
    settings(&home).bind(|| insta::assert_snapshot!("lab_check_04", text));

    // Undo one step: the file that `kthw exec` wrote is gone, and the checker says so.
    let containers = home.paths.containers();
    let ps = std::fs::read_dir(&containers)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bundle/rootfs").join(lab::PS_FILE))
        .find(|p| p.is_file())
        .expect("the container's rootfs has www/ps.txt");
    std::fs::remove_file(&ps).unwrap();
    let broken = kthw_lab::lab::run(&lab::lab(), &ctx, |_| {});
    let exec = broken.stages.iter().position(|s| s.result == StageResult::Fail).expect("a stage fails");
    assert_eq!(broken.stages[exec].name, "kthw exec ran inside the container", "{:#?}", broken.stages);
    assert_eq!(broken.stages[exec].book_section.as_deref(), Some("ch04-runtime.md#exec"));

    let out = run_solution(&kthw, &home, &["cleanup"]);
    assert!(out.status.success(), "cleanup failed: {}", String::from_utf8_lossy(&out.stderr));
    // Only the engine's lock file may stay: no container folder.
    let left: Vec<PathBuf> = std::fs::read_dir(&containers)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    assert_eq!(left, Vec::<PathBuf>::new(), "no container is left in {}", containers.display());
    let plan = kthw_lab::reset::plan(&home.paths).unwrap();
    assert_eq!(plan.mounts, Vec::<PathBuf>::new(), "cleanup leaves no mount");
    let veths: Vec<&String> = plan.links.iter().filter(|l| **l != home.paths.name("0")).collect();
    assert!(veths.is_empty(), "cleanup leaves no veth: {veths:?}");
    let cgroups: Vec<_> =
        plan.cgroups.iter().filter(|c| c.file_name().is_some_and(|n| n != home.paths.instance.as_str())).collect();
    assert!(cgroups.is_empty(), "cleanup leaves no container cgroup: {cgroups:?}");
    for table in ["nat", "filter"] {
        assert_eq!(container_rules(table, &home.paths.instance), Vec::<String>::new(), "no {table} rule is left");
    }
}
