//! Lab 1: a long-running process in its own namespaces, checked from the outside.
//!
//! The learner starts `sleep infinity` with `kthw ns run --uts --pid --mount --net
//! --hostname lab01 --pid-file …/01-sleeper.pid`, then mounts a tmpfs inside it with
//! `kthw ns exec`. Every stage looks at the real process through `/proc` (and, for
//! the host name, by joining its UTS namespace); none trusts a file the learner wrote,
//! except the pid file that says which process to look at.
//!
//! What real graders do differently: the CKA exam's scripts run `crictl inspect` and
//! `nsenter` against the candidate's containers; the idea — inspect state, not output —
//! is the same.

use kthw_lab::host::Namespace;
use kthw_lab::lab::{Context, Failure, Lab, Outcome, Stage};
use nix::unistd::Pid;

use crate::inspect;

/// The pid file the learner writes with `--pid-file`, under the lab directory.
pub const PID_FILE: &str = "01-sleeper.pid";
/// The host name the sleeper must have.
pub const HOSTNAME: &str = "lab01";
/// Where the learner mounts a tmpfs named [`HOSTNAME`] with `kthw ns exec`.
pub const EXEC_MOUNT: &str = "/mnt";

/// Lab 1's stages, in the order of the lab sheet.
pub fn lab() -> Lab {
    Lab {
        id: "01",
        title: "Namespaces",
        sheet: "labs/01-namespaces/README.md",
        stages: vec![
            Stage::new(
                "the sleeper runs and its PID is in the pid file",
                "ch01-namespaces.md#starting-a-process-in-new-namespaces",
                |ctx| {
                    let pid = sleeper(ctx)?;
                    Ok(format!("process {pid} runs: {}", inspect::command_of(pid.as_raw())))
                },
            ),
            Stage::new(
                "it has a UTS namespace of its own, with host name lab01",
                "ch01-namespaces.md#the-uts-namespace",
                check_uts,
            ),
            Stage::new(
                "it is PID 1 of a PID namespace of its own",
                "ch01-namespaces.md#the-pid-namespace-and-pid-1",
                check_pid,
            ),
            Stage::new(
                "it has a mount namespace with a /proc of its own",
                "ch01-namespaces.md#the-mount-namespace",
                check_mount,
            ),
            Stage::new("its network namespace has only lo", "ch01-namespaces.md#the-network-namespace", check_net),
            Stage::new(
                "a tmpfs mounted at /mnt with `kthw ns exec` is visible inside only",
                "ch01-namespaces.md#joining-namespaces-with-setns",
                check_exec_mount,
            ),
        ],
    }
}

/// The sleeper's PID, read from the pid file, if that process runs.
fn sleeper(ctx: &Context) -> Result<Pid, Failure> {
    let path = ctx.paths.lab().join(PID_FILE);
    let start = "start it with `kthw ns run --uts --pid --mount --net --hostname lab01 --pid-file PIDFILE -- sleep infinity &` (see step 1 of the lab sheet)";
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::new(
            format!("cannot read {}: {e}", path.display()),
            start.replace("PIDFILE", &path.display().to_string()),
        )
    })?;
    let pid: i32 = text.trim().parse().map_err(|_| {
        Failure::new(
            format!("{} holds {:?}, not a PID", path.display(), text.trim()),
            "let kthw write it with --pid-file",
        )
    })?;
    let pid = Pid::from_raw(pid);
    if !inspect::is_running(pid) {
        return Err(Failure::new(
            format!("process {pid} (from {}) is not running", path.display()),
            "it has exited or was killed; start it again (step 1)",
        ));
    }
    Ok(pid)
}

/// Fails unless `pid`'s namespace of this kind differs from the host's: PID 1's, or
/// the checker's own where PID 1's cannot be read (inside some sandboxes).
fn own_namespace(pid: Pid, ns: Namespace, flag: &str) -> Result<u64, Failure> {
    let theirs = inspect::inode(pid, ns).map_err(|e| Failure::new(e.to_string(), "is the process still running?"))?;
    let host = inspect::inode(Pid::from_raw(1), ns)
        .or_else(|_| inspect::inode(Pid::this(), ns))
        .map_err(|e| Failure::new(e.to_string(), "run the checker as root"))?;
    if theirs == host {
        return Err(Failure::new(
            format!("process {pid} is in the host's {ns} namespace ({ns}:[{host}])"),
            format!("start it with {flag}"),
        ));
    }
    Ok(theirs)
}

fn check_uts(ctx: &Context) -> Outcome {
    let pid = sleeper(ctx)?;
    let inode = own_namespace(pid, Namespace::Uts, "--uts")?;
    let name = inspect::hostname_of(pid).map_err(|e| Failure::new(e.to_string(), "run the checker as root"))?;
    if name != HOSTNAME {
        return Err(Failure::new(format!("its host name is {name:?}"), "start it with --hostname lab01"));
    }
    let host = kthw_lab::host::hostname();
    if host == HOSTNAME {
        return Err(Failure::new(
            "the host itself is called lab01 too",
            "you renamed the host: set its name back with `hostname OLDNAME`",
        ));
    }
    Ok(format!("uts:[{inode}] differs from the host's; host name inside is {name:?}, outside {host:?}"))
}

fn check_pid(ctx: &Context) -> Outcome {
    let pid = sleeper(ctx)?;
    let inode = own_namespace(pid, Namespace::Pid, "--pid")?;
    let pids = inspect::nspid(pid).map_err(|e| Failure::new(e.to_string(), "is the process still running?"))?;
    if pids.last() != Some(&1) {
        return Err(Failure::new(
            format!("NSpid of {pid} is {pids:?}: it is not PID 1 inside"),
            "write the PID of the namespace's first process: use --pid-file, not $!",
        ));
    }
    Ok(format!("pid:[{inode}]; NSpid {pids:?}: PID {pid} outside is PID 1 inside"))
}

/// The device (major:minor) of the filesystem mounted last at `/proc` in a mountinfo.
fn proc_device(mountinfo: &str) -> Option<String> {
    mountinfo
        .lines()
        .rev()
        .filter(|l| {
            l.split(' ').nth(4) == Some("/proc") && l.split(" - ").nth(1).is_some_and(|r| r.starts_with("proc "))
        })
        .find_map(|l| l.split(' ').nth(2).map(str::to_string))
}

fn check_mount(ctx: &Context) -> Outcome {
    let pid = sleeper(ctx)?;
    let inode = own_namespace(pid, Namespace::Mount, "--mount")?;
    let read = |p: String| {
        std::fs::read_to_string(&p)
            .map_err(|e| Failure::new(format!("cannot read {p}: {e}"), "run the checker as root"))
    };
    let inside = proc_device(&read(format!("/proc/{pid}/mountinfo"))?);
    let outside = proc_device(&read("/proc/self/mountinfo".into())?);
    match inside {
        Some(dev) if Some(&dev) != outside.as_ref() => {
            Ok(format!("mnt:[{inode}]; its /proc is filesystem {dev}, the host's is {}", outside.unwrap_or_default()))
        }
        _ => Err(Failure::new(
            "its /proc is the host's /proc",
            "start it with both --mount and --pid: kthw mounts a new /proc only then",
        )),
    }
}

fn check_net(ctx: &Context) -> Outcome {
    let pid = sleeper(ctx)?;
    let inode = own_namespace(pid, Namespace::Net, "--net")?;
    let links =
        inspect::interfaces_of(pid).map_err(|e| Failure::new(e.to_string(), "is the process still running?"))?;
    if links != ["lo"] {
        return Err(Failure::new(
            format!("its interfaces are {links:?}"),
            "a new network namespace has only lo; did something add interfaces to it?",
        ));
    }
    Ok(format!("net:[{inode}] has only lo"))
}

/// Whether a mountinfo text has a tmpfs named `source` mounted at `point`.
fn has_tmpfs(mountinfo: &str, point: &str, source: &str) -> bool {
    mountinfo.lines().any(|l| {
        let mut right = l.split(" - ").nth(1).unwrap_or("").split(' ');
        l.split(' ').nth(4) == Some(point) && right.next() == Some("tmpfs") && right.next() == Some(source)
    })
}

fn check_exec_mount(ctx: &Context) -> Outcome {
    let pid = sleeper(ctx)?;
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let outside = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !has_tmpfs(&inside, EXEC_MOUNT, HOSTNAME) {
        return Err(Failure::new(
            format!("no tmpfs named lab01 is mounted at /mnt in process {pid}'s mount namespace"),
            format!("run `kthw ns exec {pid} -- mount -t tmpfs lab01 /mnt` (step 4)"),
        ));
    }
    if has_tmpfs(&outside, EXEC_MOUNT, HOSTNAME) {
        return Err(Failure::new(
            "the tmpfs lab01 is mounted at /mnt on the host too",
            "you mounted it on the host (run `umount /mnt` here), or its mounts are not private",
        ));
    }
    Ok(format!("tmpfs lab01 at /mnt is in process {pid}'s mount namespace and not on the host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSIDE: &str = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
40 22 0:45 / /proc rw,nosuid,nodev,noexec - proc proc rw
41 30 0:46 / /mnt rw - tmpfs lab01 rw
";

    // The /proc that counts is the one mounted last (ours, over the host's).
    #[test]
    fn proc_device_is_the_top_mount() {
        assert_eq!(proc_device(INSIDE).as_deref(), Some("0:45"));
        assert_eq!(proc_device("1 0 8:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    // The exec stage wants a tmpfs with the right source at the right place.
    #[test]
    fn tmpfs_is_found_by_place_and_source() {
        assert!(has_tmpfs(INSIDE, "/mnt", "lab01"));
        assert!(!has_tmpfs(INSIDE, "/mnt", "other"));
        assert!(!has_tmpfs(INSIDE, "/tmp", "lab01"));
    }

    // Without a pid file, the first stage says how to start the sleeper.
    #[test]
    fn missing_pid_file_says_how_to_start() {
        let home = kthw_lab::systest::TestHome::new();
        let ctx = Context { paths: home.paths.clone() };
        let report = kthw_lab::lab::run(&lab(), &ctx, |_| {});
        assert!(!report.passed);
        let first = &report.stages[0];
        assert!(first.likely_cause.as_deref().unwrap_or("").contains("kthw ns run --uts --pid"), "{first:?}");
        assert!(report.stages[1..].iter().all(|s| s.result == kthw_lab::lab::StageResult::Skipped));
    }
}
