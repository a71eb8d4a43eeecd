//! Lab 05's reference answer (`labs/05-pods/solution.sh`) passes the checker with our CNI
//! plugin and with Debian's, the checker fails on an untouched machine and when a step
//! is undone, the plugins cannot be changed under running pods, and
//! `solution.sh cleanup` leaves no pod, veth, mount or cgroup behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kthw_lab::lab::{Context, Report, StageResult};
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_pods::{cni, lab};

fn solution() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../labs/05-pods/solution.sh")
}

fn kthw(kthw: &Path, home: &TestHome, args: &[&str]) -> Output {
    Command::new(kthw).args(args).env("KTHW_HOME", home.path()).stdin(Stdio::null()).output().expect("run kthw")
}

fn run_solution(kthw: &Path, home: &TestHome, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(solution())
        .args(args)
        .env("KTHW", kthw)
        .env("KTHW_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run bash")
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Undoes the lab even when an assertion fails: the reference cleanup, then `kthw reset`
/// of the test's instance for anything left (the bridge, a stray cgroup or mount).
struct Cleanup<'a>(&'a Path, &'a TestHome);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = run_solution(self.0, self.1, &["cleanup"]);
        let _ = kthw(self.0, self.1, &["reset", "--force"]);
    }
}

/// Debian's plugins, through the one place that decides about missing prerequisites:
/// a skip saying how to install them, or a failure under CI=true.
fn debian_plugins() -> bool {
    const PACKAGE: &str = "containernetworking-plugins";
    kthw_lab::systest::can_run(&[
        Need::File { path: "/usr/lib/cni/bridge", package: PACKAGE },
        Need::File { path: "/usr/lib/cni/host-local", package: PACKAGE },
        Need::File { path: "/usr/lib/cni/loopback", package: PACKAGE },
    ])
}

/// The insta settings for the checker's output: the test's instance, subnet, PIDs,
/// namespace inodes, Debian's random veth names and the times hidden.
fn settings(home: &TestHome) -> insta::Settings {
    let instance = &home.paths.instance;
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&format!(r"\b{instance}"), "kthw");
    settings.add_filter(r"\b10\.200\.\d+\.", "10.200.0.");
    settings.add_filter(r"NSpid \d+ 1\b", "NSpid [PID] 1");
    settings.add_filter(r"(net|mnt|ipc|uts):\[\d+\]", "$1:[INODE]");
    settings.add_filter(r"\bveth[0-9a-f]{8}\b", "veth[RANDOM]");
    settings.add_filter(r"\b\d+ ms\b", "[N] ms");
    for (regex, replacement) in kthw_lab::snapshot::FILTERS {
        settings.add_filter(regex, *replacement);
    }
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings
}

fn render(report: &Report) -> String {
    let text: Vec<String> = report.stages.iter().map(kthw_lab::lab::render_stage).collect();
    text.join("\n") + "\n"
}

fn check(ctx: &Context) -> Report {
    kthw_lab::lab::run(&lab::lab(), ctx, |_| {})
}

fn assert_passed(report: &Report) {
    let stages: Vec<_> = report.stages.iter().map(|s| (s.name.as_str(), s.result, s.detail.as_str())).collect();
    assert!(report.passed, "{stages:#?}");
}

// The checker fails on a fresh machine, naming the import step; passes after the
// reference answer with our plugin and again with Debian's (the second run replaces the
// pods: the answer is idempotent); fails when step 6's file is gone; refuses to change
// the plugins under running pods; and cleanup leaves no pod, veth, mount or cgroup.
#[test]
fn solution_passes_the_checker_with_both_plugins_and_cleans_up() {
    require!(
        Need::Root,
        Need::Overlayfs,
        Need::Command("bash"),
        Need::Command("busybox"),
        Need::Command("curl"),
        Need::Command("ip"),
        Need::Command("nsenter")
    );
    if !debian_plugins() {
        return;
    }
    let Some(kthw_bin) = kthw_lab::systest::kthw_binary("cargo build -p kthw -p kthw-pods --bins") else { return };
    let home = TestHome::new();
    let _cleanup = Cleanup(&kthw_bin, &home);
    let ctx = Context { paths: home.paths.clone() };

    let before = check(&ctx);
    assert!(!before.passed);
    assert_eq!(before.stages[0].result, StageResult::Fail);
    assert_eq!(before.stages[0].name, "pods web and logger run");
    assert!(before.stages[0].likely_cause.as_deref().unwrap_or("").contains("kthw image import"), "{before:#?}");

    // Our plugin, kthw-bridge.
    assert_success("solution.sh", &run_solution(&kthw_bin, &home, &[]));
    let ours = check(&ctx);
    assert_passed(&ours);
    settings(&home).bind(|| insta::assert_snapshot!("lab_check_05", render(&ours)));

    // Undo step 6: its file is gone, and the checker says so.
    let saved = home.paths.lab().join(lab::LOCALHOST_FILE);
    std::fs::remove_file(&saved).unwrap();
    let broken = check(&ctx);
    let failed = broken.stages.iter().position(|s| s.result == StageResult::Fail).expect("a stage fails");
    assert_eq!(broken.stages[failed].name, "the sidecar reached the app over the pod's localhost", "{broken:#?}");
    assert_eq!(broken.stages[failed].book_section.as_deref(), Some("ch05-pods.md#the-pods-namespaces"));

    // While pods run, the plugins cannot be changed: their addresses belong to kthw-bridge.
    let refused = kthw(&kthw_bin, &home, &["pod", "network", "--plugins", "debian"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cannot change while pods exist") && stderr.contains("kthw pod rm"), "{stderr}");

    // Debian's plugins, selected by the answer after it removed the pods.
    assert_success("solution.sh debian", &run_solution(&kthw_bin, &home, &["debian"]));
    let debian = check(&ctx);
    assert_passed(&debian);
    let bridge = debian.stages.iter().find(|s| s.name == "each pod IP is on the bridge").unwrap();
    assert!(bridge.detail.ends_with("bridge (IPAM host-local), loopback"), "{}", bridge.detail);
    settings(&home).bind(|| insta::assert_snapshot!("lab_check_05_debian", render(&debian)));

    assert_success("solution.sh cleanup", &run_solution(&kthw_bin, &home, &["cleanup"]));
    let pods: Vec<PathBuf> =
        std::fs::read_dir(home.paths.pods()).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert_eq!(pods, Vec::<PathBuf>::new(), "cleanup leaves no pod");
    let plan = kthw_lab::reset::plan(&home.paths).unwrap();
    assert_eq!(plan.mounts, Vec::<PathBuf>::new(), "cleanup leaves no mount");
    assert!(plan.cgroups.is_empty(), "cleanup leaves no cgroup: {:?}", plan.cgroups);
    let bridge = cni::bridge_name(&home.paths);
    assert!(plan.links.iter().all(|l| *l == bridge), "only the bridge is left: {:?}", plan.links);
    let veths = Command::new("ip").args(["-o", "link", "show", "master", &bridge]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&veths.stdout).trim(), "", "no veth is left on {bridge}");
    let network = kthw(&kthw_bin, &home, &["pod", "network"]);
    assert!(String::from_utf8_lossy(&network.stdout).contains("plugins kthw-bridge"), "cleanup selects ours again");
}
