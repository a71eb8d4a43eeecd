//! `kthw cgroup run`: run one command in a fresh cgroup with limits, like
//! `docker run --rm --memory 64M --cpus 0.5 --pids-limit 20 --cpuset-cpus 0` without
//! the image and the namespaces. It creates `<instance>/run-<pid>`, starts the command
//! inside it, waits, says whether the OOM killer struck, and deletes the cgroup.
//!
//! What the real tools do differently: runc starts `runc init`, puts it in the cgroup,
//! and only then execs the user's program (as we do between `fork` and `exec`); crun on
//! v2 can use `clone3(CLONE_INTO_CGROUP)`, which creates the child directly in the cgroup.
//! Docker watches for OOM kills with an inotify/eventfd on the memory files and reports
//! `"OOMKilled": true` in `docker inspect`; we look at the counters once, at exit.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};

use kthw_lab::Paths;
use kthw_lab::host::CgroupLayout;

use crate::cgroup::{Cgroup, Version};
use crate::limits::{Limits, human_bytes};
use crate::stats::Stats;
use crate::{Error, Result};

/// What happened to a command run by [`run`].
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The command line, for messages.
    pub command: String,
    /// The cgroup it ran in (deleted by now).
    pub cgroup: String,
    pub status: ExitStatus,
    /// Whether the OOM killer killed a process of the cgroup.
    pub oom_killed: bool,
    /// The counter that shows the OOM kill, e.g. `memory.events oom_kill 1`.
    pub oom_evidence: Option<String>,
    /// The usage at exit, read just before the cgroup was deleted.
    pub stats: Stats,
}

impl RunReport {
    /// The exit code to pass on, as a shell does: the command's own code, or 128 plus
    /// the signal that killed it (137 for SIGKILL, the OOM killer's signal).
    pub fn exit_code(&self) -> u8 {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => u8::try_from(code).unwrap_or(1),
            (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
            (None, None) => 1,
        }
    }

    /// What `kthw cgroup run` prints to stderr when the command is done.
    pub fn render(&self) -> String {
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig} ({})", signal_name(sig)),
            (None, None) => "ended".into(),
        };
        let mut out = format!("kthw: `{}` ran in cgroup {} and {how}\n", self.command, self.cgroup);
        if self.oom_killed {
            let limit = self.stats.memory.as_ref().and_then(|m| m.max).map(human_bytes).unwrap_or("?".into());
            let evidence = self.oom_evidence.as_deref().unwrap_or("");
            out.push_str(&format!("kthw: OOM killed: the cgroup reached its memory limit of {limit} ({evidence})\n"));
        }
        out.push_str(&self.stats.render());
        out
    }
}

// ANCHOR: run
/// Runs `command` in a new cgroup under the instance's cgroup root with `limits`,
/// waits for it, and deletes the cgroup (killing anything the command left running).
///
/// # Errors
/// Not root, a limit this machine cannot set, a command that cannot be started.
pub fn run(layout: &CgroupLayout, paths: &Paths, command: &[OsString], limits: &Limits) -> Result<RunReport> {
    let result = run_in_cgroup(layout, paths, command, limits);
    // After the run's own cgroup is gone, on success and on error alike.
    remove_if_empty(layout, paths.cgroup_root());
    result
}

fn run_in_cgroup(layout: &CgroupLayout, paths: &Paths, command: &[OsString], limits: &Limits) -> Result<RunReport> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::BadLimit { flag: "command", value: String::new(), why: "give a command after --".into() });
    };
    let name = format!("{}/run-{}", paths.cgroup_root(), std::process::id());
    // The guard deletes the cgroup on every early return below.
    let cg = Cgroup::create(layout, &name)?.guard();
    cg.apply(limits)?;

    let join = cg.join_files()?;
    let fds: Vec<i32> = join.iter().map(AsRawFd::as_raw_fd).collect();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec the child only calls async-signal-safe functions
    // (signal, write) on file descriptors opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let shown = command.iter().map(|a| shell_quote(&a.to_string_lossy())).collect::<Vec<_>>().join(" ");
    let status = {
        // Ctrl-C goes to the command (it is in our process group) and we stay to clean
        // up, as system(3) does.
        let _ignore = IgnoreInterrupts::new();
        let mut child = cmd.spawn().map_err(|cause| Error::Spawn { command: shown.clone(), cause })?;
        drop(join);
        child.wait().map_err(|cause| Error::Spawn { command: shown.clone(), cause })?
    };

    let (oom_killed, oom_evidence) = oom_verdict(&cg, status);
    let stats = Stats::read(&cg);
    let cgroup = cg.path().to_string();
    cg.delete()?;
    Ok(RunReport { command: shown, cgroup, status, oom_killed, oom_evidence, stats })
}
// ANCHOR_END: run

// ANCHOR: oom_verdict
/// Whether the OOM killer struck, and the counter that shows it. With an `oom_kill`
/// counter (v2, or v1 on Linux 4.13+) the counter decides. Without one, v1's failcnt
/// says the limit was hit, and a SIGKILL says someone killed the process: together,
/// almost surely the OOM killer.
fn oom_verdict(cg: &Cgroup, status: ExitStatus) -> (bool, Option<String>) {
    let file = match cg.version() {
        Version::V2 => "memory.events",
        Version::V1 => "memory.oom_control",
    };
    match (cg.oom_kills(), cg.memory_failcnt()) {
        (Some(kills), _) => (kills > 0, Some(format!("{file} oom_kill {kills}"))),
        (None, Some(failcnt)) => {
            let killed = failcnt > 0 && status.signal() == Some(libc::SIGKILL);
            (killed, Some(format!("memory.failcnt {failcnt}, SIGKILL")))
        }
        (None, None) => (false, None),
    }
}
// ANCHOR_END: oom_verdict

/// Removes the instance's cgroup root (`/kthw`) from every hierarchy if nothing else
/// uses it, so a run leaves no trace. A busy root (another run, the lab's cgroup) stays.
pub fn remove_if_empty(layout: &CgroupLayout, root: &str) {
    for mount in &layout.mounts {
        let _ = std::fs::remove_dir(mount.path.join(root));
    }
}

/// Ignores SIGINT and SIGQUIT while alive, then restores the previous handlers.
struct IgnoreInterrupts {
    old: Vec<(libc::c_int, libc::sighandler_t)>,
}

impl IgnoreInterrupts {
    fn new() -> Self {
        let old = [libc::SIGINT, libc::SIGQUIT]
            .into_iter()
            // SAFETY: installing SIG_IGN has no handler code to be unsafe in.
            .map(|sig| (sig, unsafe { libc::signal(sig, libc::SIG_IGN) }))
            .collect();
        IgnoreInterrupts { old }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        for &(sig, handler) in &self.old {
            // SAFETY: restores the disposition that was there before.
            unsafe { libc::signal(sig, handler) };
        }
    }
}

/// `a b` → `'a b'`: the command line shown as one could type it again.
fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| "unknown".into())
}
