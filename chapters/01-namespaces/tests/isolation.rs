//! System tests: each proves an isolation property by looking at the real processes,
//! not just that a call returned Ok. They need root; elsewhere they are skipped (and
//! under CI=true they fail), see `kthw_lab::systest`.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use kthw_lab::host::Namespace;
use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_namespaces::{Error, IdMap, Process, Spec, Stdio, exec, inspect};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A pipe whose write end goes to the child as stdout.
fn pipe() -> (std::fs::File, OwnedFd) {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (std::fs::File::from(rd), wr)
}

/// Runs the spec with stdout captured; returns (exit code, stdout).
fn output(spec: Spec) -> (i32, String) {
    let (mut rd, wr) = pipe();
    let process = spec.stdout(wr).spawn().unwrap();
    let mut out = String::new();
    rd.read_to_string(&mut out).unwrap();
    (process.wait().unwrap(), out)
}

fn sh(script: &str) -> Spec {
    Spec::new(["sh", "-c", script])
}

/// Polls `f` until it returns true or 5 seconds pass.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The host PIDs of every process in the PID namespace whose inode is `ns`.
fn processes_in(ns: u64) -> Vec<Pid> {
    let mut pids: Vec<Pid> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .map(Pid::from_raw)
        .filter(|p| inspect::inode(*p, Namespace::Pid).ok() == Some(ns))
        .collect();
    pids.sort();
    pids
}

fn zombies_in(ns: u64) -> usize {
    processes_in(ns)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| inspect::state_of(&s) == Some('Z'))
        })
        .count()
}

fn pid_ns(process: &Process) -> u64 {
    inspect::inode(process.pid(), Namespace::Pid).unwrap()
}

// Inside a new PID and mount namespace, /proc lists only the container's processes:
// our init is PID 1, the command is PID 2, and none of the host's PIDs appear.
#[test]
fn pid_namespace_sees_only_its_own_processes() {
    require!(Need::Root, Need::Namespace(Namespace::Pid), Need::Namespace(Namespace::Mount));
    let script = "echo $$; for p in /proc/[0-9]*; do echo ${p#/proc/}; done";
    let (code, out) = output(sh(script).namespace(Namespace::Pid).namespace(Namespace::Mount));
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("2"), "the command is PID 2 under our init: {out}");
    let pids: Vec<i32> = lines.map(|l| l.parse().unwrap()).collect();
    assert!(pids.contains(&1) && pids.contains(&2), "{pids:?}");
    assert!(pids.len() <= 3 && pids.iter().all(|p| *p <= 3), "host processes leaked in: {pids:?}");
    let host_pids = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().parse::<i32>().is_ok())
        .count();
    assert!(host_pids > 10, "the host sees many more ({host_pids})");
}

// Without our init the command itself is PID 1.
#[test]
fn without_init_the_command_is_pid_1() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let (code, out) = output(sh("echo $$").namespace(Namespace::Pid).without_init());
    assert_eq!((code, out.as_str()), (0, "1\n"));
}

// The first process's host PID is PID 1 inside: NSpid lists both.
#[test]
fn first_process_is_pid_1_in_nspid() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let process = Spec::new(["sleep", "30"]).namespace(Namespace::Pid).spawn().unwrap();
    let nspid = inspect::nspid(process.pid()).unwrap();
    assert_eq!(nspid, [process.pid().as_raw(), 1]);
}

// A host name set in a new UTS namespace is seen inside, and the host keeps its own.
#[test]
fn hostname_set_inside_is_invisible_outside() {
    require!(Need::Root, Need::Namespace(Namespace::Uts));
    let before = kthw_lab::host::hostname();
    let process = Spec::new(["sleep", "30"]).namespace(Namespace::Uts).hostname("kthw-inside").spawn().unwrap();
    assert_eq!(inspect::hostname_of(process.pid()).unwrap(), "kthw-inside");
    assert_eq!(kthw_lab::host::hostname(), before);
    assert_ne!(before, "kthw-inside");
    let (_, out) = output(Spec::new(["hostname"]).namespace(Namespace::Uts).hostname("other"));
    assert_eq!(out, "other\n");
}

// A new network namespace has only lo (and we brought it up); the host has more.
#[test]
fn new_network_namespace_has_only_lo() {
    require!(Need::Root, Need::Namespace(Namespace::Net));
    let process = Spec::new(["sleep", "30"]).namespace(Namespace::Net).spawn().unwrap();
    assert_eq!(inspect::interfaces_of(process.pid()).unwrap(), ["lo"]);
    assert_ne!(
        inspect::inode(process.pid(), Namespace::Net).unwrap(),
        inspect::inode(Pid::this(), Namespace::Net).unwrap()
    );
    // IFF_UP is bit 0 of the flags in /sys/class/net/lo/flags; sysfs shows the network
    // namespace of whoever mounted it, so read it in a new mount namespace with a new sysfs.
    let (code, out) = output(
        sh("mount -t sysfs sysfs /sys && cat /sys/class/net/lo/flags && ls /sys/class/net")
            .namespace(Namespace::Net)
            .namespace(Namespace::Mount),
    );
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    let flags = u32::from_str_radix(lines.next().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is up");
    assert_eq!(lines.collect::<Vec<_>>(), ["lo"]);
}

// In a user namespace the command is root inside and uid 100000 outside: the host sees
// an unprivileged process, which cannot write where only the host's root may.
#[test]
fn user_namespace_maps_root_inside_to_unprivileged_outside() {
    require!(Need::Root, Need::Namespace(Namespace::User));
    let process = Spec::new(["sleep", "30"]).namespace(Namespace::User).spawn().unwrap();
    let pid = process.pid();
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(uid_map.split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    let gid_map = std::fs::read_to_string(format!("/proc/{pid}/gid_map")).unwrap();
    assert_eq!(gid_map.split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    assert_eq!(inspect::status_field(pid, "Uid").unwrap().split_whitespace().collect::<Vec<_>>(), ["100000"; 4]);
    assert_eq!(inspect::status_field(pid, "Groups").unwrap(), "", "the host's supplementary groups are dropped");

    let dir = tempfile::tempdir().unwrap(); // owned by the host's root, mode 0700
    let target = dir.path().join("file");
    let script = format!(
        "id -u; cat /proc/self/uid_map; touch {} 2>/dev/null || echo denied; hostname evil 2>/dev/null || echo denied",
        target.display()
    );
    let before = kthw_lab::host::hostname();
    let (code, out) = output(sh(&script).namespace(Namespace::User));
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {out}");
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    assert_eq!(lines[2..], ["denied", "denied"], "no privilege on the host: {out}");
    assert!(!target.exists());
    assert_eq!(kthw_lab::host::hostname(), before);
}

// A custom map is written as given.
#[test]
fn custom_id_maps_are_written() {
    require!(Need::Root, Need::Namespace(Namespace::User));
    let map = IdMap { inside: 0, outside: 200_000, count: 1000 };
    let (_, out) =
        output(sh("cat /proc/self/uid_map /proc/self/gid_map").namespace(Namespace::User).uid_map(map).gid_map(map));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "200000", "1000", "0", "200000", "1000"]);
}

// An orphan re-parented to our init is reaped: no zombie stays in the namespace.
#[test]
fn init_reaps_orphaned_zombies() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    // The subshell exits at once, so `sleep 0.1` is orphaned and re-parented to PID 1.
    let process = sh("(sleep 0.1 &); exec sleep 30").namespace(Namespace::Pid).spawn().unwrap();
    let ns = pid_ns(&process);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(zombies_in(ns), 0);
    assert_eq!(processes_in(ns).len(), 2, "init and sleep 30");
}

// Without our init, PID 1 is `sleep`, which never waits: the orphan stays a zombie.
#[test]
fn without_init_zombies_pile_up() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let process = sh("(sleep 0.1 &); exec sleep 30").namespace(Namespace::Pid).without_init().spawn().unwrap();
    let ns = pid_ns(&process);
    eventually("the orphan is a zombie", || zombies_in(ns) == 1);
}

// SIGTERM sent to our init reaches the command, and init exits with its status.
#[test]
fn init_forwards_sigterm_to_the_command() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let mut process = Spec::new(["sleep", "30"]).namespace(Namespace::Pid).spawn().unwrap();
    let ns = pid_ns(&process);
    eventually("sleep runs under init", || processes_in(ns).len() == 2);
    process.signal(Signal::SIGTERM).unwrap();
    let mut code = None;
    eventually("init exits", || {
        code = process.try_wait().unwrap();
        code.is_some()
    });
    assert_eq!(code, Some(128 + 15), "sleep was killed by SIGTERM");
}

// Without our init, PID 1 (`sleep`, no handler) never sees SIGTERM: the kernel drops
// it. This is why `docker stop` waits 10 seconds and then sends SIGKILL.
#[test]
fn without_init_pid_1_ignores_sigterm() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let mut process = Spec::new(["sleep", "30"]).namespace(Namespace::Pid).without_init().spawn().unwrap();
    process.signal(Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(process.try_wait().unwrap(), None, "still running");
    process.signal(Signal::SIGKILL).unwrap();
    assert_eq!(process.wait().unwrap(), 128 + 9);
}

// A mount made inside a new mount namespace stays inside (propagation is private), and
// the namespace's /proc is a new filesystem, not the host's.
#[test]
fn mounts_inside_stay_inside() {
    require!(Need::Root, Need::Namespace(Namespace::Mount), Need::Namespace(Namespace::Pid));
    let dir = tempfile::tempdir().unwrap();
    let script = format!("mount -t tmpfs kthw-test-tmpfs {} && exec sleep 30", dir.path().display());
    let process = sh(&script).namespace(Namespace::Mount).namespace(Namespace::Pid).spawn().unwrap();
    let inside = format!("/proc/{}/mountinfo", process.pid());
    eventually("the tmpfs is mounted inside", || std::fs::read_to_string(&inside).unwrap().contains("kthw-test-tmpfs"));
    assert!(!std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains("kthw-test-tmpfs"));
    let proc_dev = |text: &str| {
        text.lines()
            .rev()
            .find(|l| l.split(' ').nth(4) == Some("/proc"))
            .and_then(|l| l.split(' ').nth(2))
            .unwrap()
            .to_string()
    };
    let ours = proc_dev(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    assert_ne!(proc_dev(&std::fs::read_to_string(&inside).unwrap()), ours);
}

// `exec` joins exactly the target's namespaces: the inodes seen inside are the target's.
#[test]
fn exec_joins_the_same_namespaces() {
    require!(Need::Root, Need::Namespace(Namespace::User), Need::Namespace(Namespace::Pid));
    let kinds = [Namespace::User, Namespace::Ipc, Namespace::Uts, Namespace::Net, Namespace::Pid, Namespace::Mount];
    let spec = kinds.iter().fold(Spec::new(["sleep", "30"]), |s, ns| s.namespace(*ns)).hostname("joined");
    let target = spec.spawn().unwrap();
    let script = "hostname; id -u; echo $$; for n in user ipc uts net pid mnt; do readlink /proc/self/ns/$n; done";
    let (mut rd, wr) = pipe();
    let joined = exec::spawn(
        target.pid(),
        &["sh".into(), "-c".into(), script.into()],
        Stdio { stdout: Some(wr), ..Stdio::default() },
    )
    .unwrap();
    let mut out = String::new();
    rd.read_to_string(&mut out).unwrap();
    assert_eq!(joined.wait().unwrap(), 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["joined", "0"], "{out}");
    assert!(lines[2].parse::<i32>().unwrap() > 2, "a new PID inside the target's namespace: {out}");
    for (line, ns) in lines[3..].iter().zip(kinds) {
        let want = inspect::inode(target.pid(), ns).unwrap();
        assert_eq!(*line, format!("{}:[{want}]", ns.proc_name()), "{out}");
        assert_ne!(want, inspect::inode(Pid::this(), ns).unwrap());
    }
}

// A command that does not exist fails before anything is created.
#[test]
fn missing_command_is_a_clear_error() {
    require!(Need::Root);
    let err = Spec::new(["no-such-command-kthw"]).namespace(Namespace::Uts).spawn().unwrap_err();
    assert!(matches!(err, Error::CommandNotFound { .. }), "{err}");
}

// A child that cannot exec reports the step and errno, and leaves no pid file behind.
#[test]
fn exec_failure_names_the_step_and_leaves_nothing() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let pid_file = dir.path().join("pid");
    for spec in [Spec::new([script.to_str().unwrap()]), Spec::new([script.to_str().unwrap()]).namespace(Namespace::Pid)]
    {
        let err = spec.pid_file(&pid_file).spawn().unwrap_err();
        assert!(err.to_string().contains("the child failed to run the command (execve): EACCES"), "{err}");
        assert!(err.to_string().contains("chmod +x"), "{err}");
        assert!(!pid_file.exists());
    }
}

// The pid file holds the host PID of the namespace's PID 1 and is removed at exit.
#[test]
fn pid_file_holds_the_host_pid_and_is_removed() {
    require!(Need::Root, Need::Namespace(Namespace::Pid));
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let process = Spec::new(["sleep", "30"]).namespace(Namespace::Pid).pid_file(&pid_file).spawn().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), format!("{}\n", process.pid()));
    process.signal(Signal::SIGTERM).unwrap();
    assert_eq!(process.wait().unwrap(), 143);
    assert!(!pid_file.exists());
}

// A System V message queue made in a new IPC namespace is invisible on the host, and
// goes away with the namespace.
#[test]
fn ipc_objects_stay_in_their_namespace() {
    require!(Need::Root, Need::Namespace(Namespace::Ipc), Need::Command("ipcmk"));
    let (code, out) = output(sh("ipcmk -Q >/dev/null && cat /proc/sysvipc/msg").namespace(Namespace::Ipc));
    assert_eq!(code, 0, "{out}");
    let queues: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(queues.len(), 1, "exactly our queue inside: {out}");
    let key = queues[0].split_whitespace().next().unwrap();
    let host = std::fs::read_to_string("/proc/sysvipc/msg").unwrap();
    assert!(!host.lines().skip(1).any(|l| l.split_whitespace().next() == Some(key)), "key {key} leaked: {host}");
}
