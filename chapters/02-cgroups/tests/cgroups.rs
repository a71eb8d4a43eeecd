//! System tests of chapter 2: each proves a limit by running into it, on whichever cgroup
//! version the machine has (v1 or hybrid here, v2 in the lab VMs). They need root. The
//! output of the `kthw cgroup` commands is checked in the repository's
//! `tests/ch02_cgroups.rs`, which runs the binary.
//!
//! Every test works under its own instance name (from `TestHome`), and an `Instance`
//! guard deletes that whole cgroup tree even when an assertion fails half-way.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use kthw_cgroups::cgroup::process_cgroup;
use kthw_cgroups::{Cgroup, Limits, Stats, Version};
use kthw_lab::host::CgroupLayout;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// Tests that measure CPU time run one at a time, so they do not take CPU from each other.
static CPU_BOUND: Mutex<()> = Mutex::new(());

/// One test's cgroup tree, `<mount>/<instance>/...` in every hierarchy, deleted at drop.
struct Instance {
    home: TestHome,
    layout: CgroupLayout,
}

impl Instance {
    fn new() -> Instance {
        Instance { home: TestHome::new(), layout: CgroupLayout::detect().expect("cgroup layout") }
    }

    /// `<instance>/<name>`, the path of a test cgroup.
    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.home.paths.cgroup_root())
    }

    fn create(&self, name: &str, limits: &Limits) -> Cgroup {
        let cg = Cgroup::create(&self.layout, &self.path(name)).expect("create cgroup");
        cg.apply(limits).expect("apply limits");
        cg
    }

    /// Whatever of ours is left in any hierarchy.
    fn leftovers(&self) -> Vec<PathBuf> {
        let root = self.home.paths.cgroup_root();
        self.layout.mounts.iter().map(|m| m.path.join(root)).filter(|p| p.exists()).collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(cg) = Cgroup::open(&self.layout, self.home.paths.cgroup_root()) {
            let _ = cg.delete();
        }
    }
}

/// Forks a child that joins `cg` (writing `0` to its `cgroup.procs` files, as
/// `kthw cgroup run` does) and then runs `body`, exiting with its result. The child only
/// makes system calls: it is forked from a multi-threaded test harness.
fn spawn_in(cg: &Cgroup, body: fn() -> i32) -> Pid {
    let files = cg.join_files().expect("open cgroup.procs");
    let fds: Vec<i32> = files.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    // SAFETY: the child makes only async-signal-safe calls and ends with `_exit`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => unsafe {
            // Not the harness's output pipes: a child that outlived a failed test would
            // keep `cargo test | ...` waiting for their end.
            for fd in 0..3 {
                libc::close(fd);
            }
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(120);
                }
            }
            libc::_exit(body())
        },
        ForkResult::Parent { child } => child,
    }
}

fn monotonic_ms() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// Spins for 1.5 s of wall time: all the CPU it is given, no more.
fn busy_1500ms() -> i32 {
    let start = monotonic_ms();
    while monotonic_ms() - start < 1500 {
        std::hint::spin_loop();
    }
    0
}

fn busy_forever() -> i32 {
    loop {
        std::hint::spin_loop();
    }
}

fn sleep_forever() -> i32 {
    pause_forever()
}

fn pause_forever() -> ! {
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}

/// Forks until the kernel refuses; each child sleeps. Returns how many forks worked, or
/// 200+ if fork failed with something other than `EAGAIN` (the pids limit's error).
fn fork_until_refused() -> i32 {
    let mut forked = 0;
    loop {
        // SAFETY: the grandchildren only pause and exit.
        match unsafe { libc::fork() } {
            0 => pause_forever(),
            -1 => return if nix::errno::Errno::last() == nix::errno::Errno::EAGAIN { forked } else { 201 },
            _ => forked += 1,
        }
        if forked > 150 {
            return 202;
        }
    }
}

fn cpu_usage_us(cg: &Cgroup) -> u64 {
    Stats::read(cg).cpu.expect("cpu accounting").usage_us
}

fn wait_exit(pid: Pid) -> WaitStatus {
    waitpid(pid, None).expect("waitpid")
}

fn args(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

// A memory hog under `kthw cgroup run --memory 32M` is killed by the OOM killer at the
// limit, the run says so, exits 137 (128 + SIGKILL), and leaves no cgroup behind.
#[test]
fn memory_hog_is_oom_killed_and_reported() {
    require!(Need::Root, Need::Controller("memory"));
    let inst = Instance::new();
    let hog = ["sh", "-c", r#"a=x; while :; do a="$a$a"; done"#];
    let limits = Limits::parse(Some("32M"), None, None, None).unwrap();
    let report = kthw_cgroups::run::run(&inst.layout, &inst.home.paths, &args(&hog), &limits).expect("run");

    assert!(report.oom_killed, "no OOM kill reported: {report:?}");
    assert_eq!(report.exit_code(), 137);
    let memory = report.stats.memory.as_ref().expect("memory stats");
    assert_eq!(memory.max, Some(32 << 20));
    assert!(memory.oom_kills.unwrap_or(1) >= 1);
    if let Some(peak) = memory.peak {
        assert!(peak > 30 << 20 && peak <= 32 << 20, "peak {peak} should be at the limit");
    }
    assert!(inst.leftovers().is_empty(), "left behind: {:?}", inst.leftovers());
}

// The limits written by `apply` are in the files of the running version: v1's
// memory.limit_in_bytes and cpu.cfs_quota_us, or v2's memory.max and cpu.max.
#[test]
fn limits_land_in_the_files_of_the_running_version() {
    require!(Need::Root, Need::Controller("memory"), Need::Controller("pids"), Need::Controller("cpu"));
    let inst = Instance::new();
    let cg = inst.create("files", &Limits::parse(Some("64M"), Some("0.5"), Some("20"), Some("0")).unwrap());
    match cg.version() {
        Version::V1 => {
            assert_eq!(cg.read("memory", "memory.limit_in_bytes").as_deref(), Some("67108864"));
            assert_eq!(cg.read("cpu", "cpu.cfs_quota_us").as_deref(), Some("50000"));
            assert_eq!(cg.read("cpu", "cpu.cfs_period_us").as_deref(), Some("100000"));
        }
        Version::V2 => {
            assert_eq!(cg.read("memory", "memory.max").as_deref(), Some("67108864"));
            assert_eq!(cg.read("cpu", "cpu.max").as_deref(), Some("50000 100000"));
        }
    }
    assert_eq!(cg.read("pids", "pids.max").as_deref(), Some("20"));
    assert_eq!(cg.read("cpuset", "cpuset.cpus").as_deref(), Some("0"));
    cg.delete().unwrap();
    assert!(Cgroup::open(&inst.layout, &inst.path("files")).is_err(), "the cgroup is gone");
}

// A fork loop in a cgroup with pids.max 20 stops at the limit: fork fails with EAGAIN
// after 19 children (the loop itself is the 20th process).
#[test]
fn fork_loop_stops_at_the_pids_limit() {
    require!(Need::Root, Need::Controller("pids"));
    let inst = Instance::new();
    let cg = inst.create("forks", &Limits::parse(None, None, Some("20"), None).unwrap()).guard();
    let child = spawn_in(&cg, fork_until_refused);
    match wait_exit(child) {
        WaitStatus::Exited(_, forked) => assert_eq!(forked, 19, "forks before EAGAIN (200+ = another error)"),
        other => panic!("the fork loop ended with {other:?}"),
    }
    let pids = Stats::read(&cg).pids.expect("pids stats");
    assert_eq!((pids.current, pids.max), (19, Some(20)), "the sleeping children remain, at the limit");
    cg.delete().expect("delete kills the children");
    assert!(inst.leftovers().iter().all(|p| !p.join("forks").exists()));
}

// Under --cpus 0.5 a busy loop gets about half the CPU time it gets without a limit
// (0.3 to 0.7 of it: the machine is shared), never more than its quota, and the cgroup
// counts throttled periods.
#[test]
fn cpu_quota_halves_cpu_time() {
    require!(Need::Root, Need::Controller("cpu"));
    let _one_at_a_time = CPU_BOUND.lock().unwrap_or_else(|e| e.into_inner());
    let inst = Instance::new();
    let mut tries = Vec::new();
    // A busy neighbour can starve the unlimited run too, and in an emulated VM the guest
    // kernel charges CPU time in lumps (a vCPU the host paused comes back with the time
    // already spent), so one run can overshoot the quota. Any one of five clean runs proves it.
    for attempt in 0..5 {
        let free = inst.create(&format!("free{attempt}"), &Limits::default()).guard();
        let half =
            inst.create(&format!("half{attempt}"), &Limits::parse(None, Some("0.5"), None, None).unwrap()).guard();
        wait_exit(spawn_in(&free, busy_1500ms));
        wait_exit(spawn_in(&half, busy_1500ms));
        let (unlimited, limited) = (cpu_usage_us(&free), cpu_usage_us(&half));
        let throttled = Stats::read(&half).cpu.unwrap().throttled.unwrap_or(0);
        let ratio = limited as f64 / unlimited as f64;
        // The quota is a ceiling: 0.5 CPU for 1.5 s, plus one period of slack; and the
        // kernel says it held the loop back (throttled periods).
        if limited <= 850_000 && (0.3..=0.7).contains(&ratio) && throttled > 0 {
            return;
        }
        tries.push((ratio, unlimited, limited, throttled));
    }
    // A ratio says something only if the unlimited loop got most of a CPU (1.5 s of it
    // is all of one). On a machine so loaded that it did not, half a CPU is more than
    // the loop could get anyway; a tenth of a CPU still binds, so prove that instead.
    let busiest = tries.iter().map(|&(_, unlimited, _, _)| unlimited).max().unwrap_or(0);
    assert!(
        busiest < 1_100_000,
        "no run of five had limited <= 850 ms, limited/unlimited in 0.3..0.7 and throttled > 0; \
         (ratio, unlimited µs, limited µs, throttled periods): {tries:?}"
    );
    eprintln!("cpu_quota_halves_cpu_time: too busy for a ratio ({tries:?}); checking --cpus 0.1");
    let mut tenths = Vec::new();
    for attempt in 0..3 {
        let tenth =
            inst.create(&format!("tenth{attempt}"), &Limits::parse(None, Some("0.1"), None, None).unwrap()).guard();
        wait_exit(spawn_in(&tenth, busy_1500ms));
        let stats = Stats::read(&tenth).cpu.unwrap();
        // 0.1 CPU for 1.5 s, plus a period of slack; held back by the quota, not the load.
        if stats.usage_us <= 250_000 && stats.throttled.unwrap_or(0) > 0 && stats.usage_us * 2 < busiest {
            return;
        }
        tenths.push(stats);
    }
    panic!("--cpus 0.1 did not bind in 3 runs: {tenths:?}; the unlimited runs were {tries:?}");
}

// Freezing stops a busy process (its CPU time stands still) and thawing resumes it.
#[test]
fn freeze_stops_progress_and_thaw_resumes() {
    require!(Need::Root, Need::Controller("cpu"));
    let _one_at_a_time = CPU_BOUND.lock().unwrap_or_else(|e| e.into_inner());
    let inst = Instance::new();
    let cg = inst.create("frozen", &Limits::default()).guard();
    let child = spawn_in(&cg, busy_forever);
    std::thread::sleep(Duration::from_millis(200));

    cg.freeze().expect("freeze");
    assert_eq!(cg.is_frozen(), Some(true));
    assert!(Stats::read(&cg).render().contains("freezer  frozen"));
    let before = cpu_usage_us(&cg);
    std::thread::sleep(Duration::from_millis(500));
    let frozen_for = cpu_usage_us(&cg) - before;
    assert!(frozen_for < 10_000, "a frozen process ran for {frozen_for} µs");

    cg.thaw().expect("thaw");
    assert_eq!(cg.is_frozen(), Some(false));
    let before = cpu_usage_us(&cg);
    std::thread::sleep(Duration::from_millis(500));
    let thawed_for = cpu_usage_us(&cg) - before;
    assert!(thawed_for > 50_000, "a thawed busy process ran for only {thawed_for} µs");

    cg.delete().expect("delete");
    assert!(matches!(wait_exit(child), WaitStatus::Signaled(_, nix::sys::signal::SIGKILL, _)));
}

// --cpuset 0 pins the process to CPU 0: the kernel narrows its affinity when it joins.
#[test]
fn cpuset_pins_to_cpu_zero() {
    require!(Need::Root, Need::Controller("cpuset"));
    let inst = Instance::new();
    let cg = inst.create("pinned", &Limits::parse(None, None, None, Some("0")).unwrap()).guard();
    let child = spawn_in(&cg, sleep_forever);
    std::thread::sleep(Duration::from_millis(100));
    let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap();
    let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim);
    assert_eq!(allowed, Some("0"));
    let pid = u32::try_from(child.as_raw()).unwrap();
    assert_eq!(process_cgroup(pid, cg.version(), "cpuset").as_deref(), Some(cg.path()));
    cg.delete().unwrap();
    wait_exit(child);
}

// Deleting a cgroup that still has processes, a child cgroup and a frozen state
// leaves nothing: no directory in any hierarchy, and the processes are dead.
#[test]
fn delete_leaves_nothing_behind() {
    require!(Need::Root);
    let inst = Instance::new();
    let parent = inst.create("tree", &Limits::default());
    let child_cg = inst.create("tree/leaf", &Limits::default());
    let a = spawn_in(&child_cg, sleep_forever);
    let b = spawn_in(&child_cg, busy_forever);
    // Both join before they run; on a loaded machine that can take a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while parent.procs().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child_cg.dir_for("freezer").is_some() {
        child_cg.freeze().unwrap();
    }
    assert_eq!(parent.procs().len(), 2, "procs() counts the cgroups below too");

    Cgroup::open(&inst.layout, inst.home.paths.cgroup_root()).unwrap().delete().expect("delete");
    for pid in [a, b] {
        assert!(matches!(wait_exit(pid), WaitStatus::Signaled(_, nix::sys::signal::SIGKILL, _)));
    }
    assert!(inst.leftovers().is_empty(), "left behind: {:?}", inst.leftovers());
}

// The stats of a live cgroup show the limits as set and a usage that is really counted.
#[test]
fn stats_show_limits_and_usage() {
    require!(Need::Root, Need::Controller("memory"), Need::Controller("pids"), Need::Controller("cpu"));
    let inst = Instance::new();
    let cg = inst.create("lab02", &Limits::parse(Some("64M"), Some("0.5"), Some("20"), None).unwrap()).guard();
    let child = spawn_in(&cg, sleep_forever);
    std::thread::sleep(Duration::from_millis(100));
    let stats = Stats::read(&cg);
    assert_eq!(stats.pids.as_ref().map(|p| (p.current, p.max)), Some((1, Some(20))));
    let memory = stats.memory.as_ref().expect("memory stats");
    assert_eq!(memory.max, Some(64 << 20));
    assert!(memory.current <= 64 << 20);
    assert_eq!(stats.cpu.as_ref().and_then(|c| c.quota).map(|q| q.quota_us), Some(50_000));
    assert_eq!(stats.frozen, if cg.dir_for("freezer").is_some() { Some(false) } else { None });
    cg.delete().unwrap();
    wait_exit(child);
}

// A CPU limit shows up in `kthw cgroup run`'s report, and the command stays under it.
#[test]
fn run_reports_cpu_throttling() {
    require!(Need::Root, Need::Controller("cpu"));
    let _one_at_a_time = CPU_BOUND.lock().unwrap_or_else(|e| e.into_inner());
    let inst = Instance::new();
    let busy = ["timeout", "1", "sh", "-c", "while :; do :; done"];
    let limits = Limits::parse(None, Some("0.5"), Some("20"), None).unwrap();
    let started = std::time::Instant::now();
    let report = kthw_cgroups::run::run(&inst.layout, &inst.home.paths, &args(&busy), &limits).expect("run");
    // Measured, not assumed to be 1 s: under emulation (the lab VMs) starting `sh` alone
    // takes a good part of a second, and the quota applies to the whole time.
    let wall_us = u64::try_from(started.elapsed().as_micros()).unwrap();
    assert_eq!(report.exit_code(), 124, "timeout's status when it had to stop the command");
    assert!(!report.oom_killed);
    let cpu = report.stats.cpu.as_ref().unwrap();
    assert_eq!(cpu.quota.map(|q| (q.quota_us, q.period_us)), Some((50_000, 100_000)), "{cpu:?}");
    assert!(
        cpu.usage_us <= wall_us / 2 + 150_000,
        "0.5 CPU for {wall_us} us of wall time, plus a period and a half of slack: {cpu:?}"
    );
    assert!(inst.leftovers().is_empty());
}

// A limit that the kernel refuses is an error naming the file and the likely cause, and
// the cgroup `kthw cgroup run` made for it is gone afterwards.
#[test]
fn refused_limits_are_explained_and_cleaned_up() {
    require!(Need::Root, Need::Controller("cpuset"));
    let inst = Instance::new();
    let limits = Limits::parse(None, None, None, Some("4095")).unwrap();
    let err = kthw_cgroups::run::run(&inst.layout, &inst.home.paths, &args(&["true"]), &limits).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cpuset.cpus") && text.contains("Those CPUs do not exist"), "{text}");
    assert!(inst.leftovers().is_empty(), "left behind: {:?}", inst.leftovers());
}
