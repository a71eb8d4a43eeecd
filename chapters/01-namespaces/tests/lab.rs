//! The lab checker, tested against known-good and known-bad sleepers (as codecrafters'
//! tester is tested against good and bad programs). Needs root.

use kthw_lab::host::Namespace;
use kthw_lab::lab::{Context, StageResult};
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_namespaces::{Process, Spec, Stdio, exec, lab};

/// Starts `sleep infinity` with these namespaces, its pid file where the checker looks.
fn sleeper(home: &TestHome, namespaces: &[Namespace]) -> Process {
    std::fs::create_dir_all(home.paths.lab()).unwrap();
    let spec = namespaces.iter().fold(Spec::new(["sleep", "infinity"]), |s, ns| s.namespace(*ns));
    let spec = if namespaces.contains(&Namespace::Uts) { spec.hostname(lab::HOSTNAME) } else { spec };
    spec.pid_file(home.paths.lab().join(lab::PID_FILE)).spawn().unwrap()
}

fn mount_tmpfs_inside(process: &Process) {
    let cmd: Vec<String> = ["mount", "-t", "tmpfs", "lab01", "/mnt"].map(String::from).to_vec();
    assert_eq!(exec::spawn(process.pid(), &cmd, Stdio::default()).unwrap().wait().unwrap(), 0);
}

fn check(home: &TestHome) -> kthw_lab::lab::Report {
    kthw_lab::lab::run(&lab::lab(), &Context { paths: home.paths.clone() }, |_| {})
}

const ALL: [Namespace; 4] = [Namespace::Uts, Namespace::Pid, Namespace::Mount, Namespace::Net];

// The reference answer, done through the library, passes every stage.
#[test]
fn a_correct_sleeper_passes() {
    require!(Need::Root, Need::Namespace(Namespace::Pid), Need::Namespace(Namespace::Net));
    let home = TestHome::new();
    let process = sleeper(&home, &ALL);
    mount_tmpfs_inside(&process);
    let report = check(&home);
    assert!(report.passed, "{report:#?}");
}

// A sleeper without --net fails at the network stage, and says to add --net.
#[test]
fn a_sleeper_without_net_fails_at_the_network_stage() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let home = TestHome::new();
    let process = sleeper(&home, &ALL[..3]);
    mount_tmpfs_inside(&process);
    let report = check(&home);
    let failed: Vec<_> = report.stages.iter().filter(|s| s.result == StageResult::Fail).collect();
    assert_eq!(failed.len(), 1, "{report:#?}");
    assert_eq!(failed[0].name, "its network namespace has only lo");
    assert_eq!(failed[0].likely_cause.as_deref(), Some("start it with --net"));
}

// Without the tmpfs mounted by `kthw ns exec`, only the last stage fails.
#[test]
fn without_the_exec_mount_the_last_stage_fails() {
    require!(Need::Root, Need::Namespace(Namespace::Pid), Need::Namespace(Namespace::Net));
    let home = TestHome::new();
    let _process = sleeper(&home, &ALL);
    let report = check(&home);
    let last = report.stages.last().unwrap();
    assert_eq!(last.result, StageResult::Fail, "{report:#?}");
    assert!(last.likely_cause.as_deref().unwrap().contains("kthw ns exec"), "{last:?}");
    assert!(report.stages[..5].iter().all(|s| s.result == StageResult::Pass), "{report:#?}");
}

// A sleeper started without --pid is not PID 1, and the PID stage
// says so; a dead sleeper fails the first stage.
#[test]
fn a_sleeper_without_pid_fails_and_a_dead_one_fails_first() {
    require!(Need::Root, Need::Namespace(Namespace::Uts));
    let home = TestHome::new();
    let process = sleeper(&home, &[Namespace::Uts]);
    let report = check(&home);
    assert_eq!(report.stages[1].result, StageResult::Pass, "{report:#?}");
    assert_eq!(report.stages[2].result, StageResult::Fail);
    assert_eq!(report.stages[2].likely_cause.as_deref(), Some("start it with --pid"));
    // Leave the pid file, kill the process: the first stage now fails.
    let pid = process.detach();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    nix::sys::wait::waitpid(pid, None).unwrap();
    let report = check(&home);
    assert_eq!(report.stages[0].result, StageResult::Fail);
    assert!(report.stages[0].detail.contains("is not running"), "{:?}", report.stages[0]);
}
