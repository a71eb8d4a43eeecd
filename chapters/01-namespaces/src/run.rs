//! `kthw ns run`: start a command in new namespaces, and the handle to the process.
//!
//! One `clone(2)` creates the child and all its namespaces at once, so the child's host
//! PID is the PID of the namespace's first process (PID 1 inside, with `--pid`):
//!
//! ```text
//!  kthw ns run (parent)            child (cloned into the new namespaces)
//!  ───────────────────             ──────────────────────────────────────
//!  clone(CLONE_NEW*) ───────────▶  waits for "go" on a pipe
//!  write uid_map, gid_map
//!  send "go" ───────────────────▶  setresuid(0), mount --make-rprivate /,
//!                                  mount /proc, sethostname, lo up
//!                                  exec the command, or be init and fork it
//!  read the report pipe ◀───────── EOF on exec, or (step, errno) on failure
//!  write the pid file, wait
//! ```
//!
//! The wait for "go" matters for user namespaces: until the parent writes the maps,
//! the child's uid is unmapped (it shows as 65534, "nobody") and it cannot become root.
//!
//! What runc does differently: `runc create` forks twice from its C `nsexec` (so the
//! user namespace exists before the others are created, as Linux < 3.8 needed), joins
//! cgroups before the child runs, pivots into the container's root filesystem (chapter
//! 4), and leaves the process stopped until `runc start`. Our child runs at once.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use kthw_lab::host::Namespace;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::child::{self, Prepared, Step};
use crate::spec::{IdMap, Spec};
use crate::{Error, Result, init};

/// A process we started (or joined into a container), known by its host PID. Dropping
/// it without [`wait`](Process::wait)ing kills it, so nothing is left behind.
#[derive(Debug)]
pub struct Process {
    pid: Pid,
    pid_file: Option<PathBuf>,
    done: bool,
}

/// What the child needs after `clone`, borrowed from the parent's memory (the child
/// has its own copy of it).
struct ChildPlan<'a> {
    cmd: &'a Prepared,
    spec: &'a Spec,
    stdio: [Option<RawFd>; 3],
    go_rd: RawFd,
    go_wr: RawFd,
    err_rd: RawFd,
    err_wr: RawFd,
}

// ANCHOR: spawn
impl Spec {
    /// Starts the command in the spec's new namespaces, and returns once it runs.
    ///
    /// # Errors
    /// - [`Error::NotRoot`] unless run as root.
    /// - [`Error::InvalidSpec`] or [`Error::CommandNotFound`] before anything is created.
    /// - [`Error::NamespaceUnavailable`] naming the namespace the kernel refused.
    /// - [`Error::Setup`] naming the child's step that failed; the child is then gone.
    pub fn spawn(self) -> Result<Process> {
        self.validate()?;
        require_root("creating namespaces")?;
        let cmd = Prepared::new(&self.command, Path::new("/"))?;
        let flags = self.namespaces.iter().fold(CloneFlags::empty(), |f, ns| f | ns.clone_flag());
        let (go_rd, go_wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
        let (err_rd, err_wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map(AsRawFd::as_raw_fd);
        let plan = ChildPlan {
            cmd: &cmd,
            spec: &self,
            stdio: [raw(&self.stdio.stdin), raw(&self.stdio.stdout), raw(&self.stdio.stderr)],
            go_rd: go_rd.as_raw_fd(),
            go_wr: go_wr.as_raw_fd(),
            err_rd: err_rd.as_raw_fd(),
            err_wr: err_wr.as_raw_fd(),
        };
        let mut stack = vec![0u8; 256 * 1024];
        // SAFETY: without CLONE_VM the child gets a copy of our memory, like fork; the
        // callback only makes system calls and never returns.
        let pid = unsafe { nix::sched::clone(Box::new(|| in_child(&plan)), &mut stack, flags, Some(libc::SIGCHLD)) }
            .map_err(|errno| unavailable(&self.namespaces, errno))?;
        // From here on, an early return drops `process`, which kills and reaps the child.
        let mut process = Process { pid, pid_file: None, done: false };
        drop((go_rd, err_wr));
        if self.has(Namespace::User) {
            write_id_maps(pid, &self.effective_uid_map(), &self.effective_gid_map())?;
        }
        nix::unistd::write(&go_wr, b"g").map_err(Error::sys("write to the child"))?;
        drop(go_wr);
        if let Err(err) = child::read_report(&err_rd) {
            process.reap();
            return Err(err);
        }
        if let Some(path) = &self.pid_file {
            fs::write(path, format!("{pid}\n")).map_err(Error::io("write the pid file", path))?;
            process.pid_file = Some(path.clone());
        }
        tracing::debug!(%pid, ?flags, "started");
        Ok(process)
    }
}
// ANCHOR_END: spawn

/// Fails unless we are root.
pub(crate) fn require_root(action: &'static str) -> Result<()> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() { Ok(()) } else { Err(Error::NotRoot { action, uid: uid.as_raw() }) }
}

/// Names the namespace that `clone` could not create: it fails for the whole set, so
/// each kind is tried alone to find the culprit.
fn unavailable(namespaces: &[Namespace], errno: Errno) -> Error {
    let culprit = namespaces.iter().find(|ns| kthw_lab::host::try_namespace(**ns).is_err());
    match culprit {
        Some(ns) => Error::unavailable(*ns, kthw_lab::host::try_namespace(*ns).err().unwrap_or(errno)),
        None => Error::Sys { call: "clone", errno },
    }
}

// ANCHOR: id_maps
/// Writes the child's uid and gid maps. Each file takes one `write`, once.
///
/// We are root in the parent namespace, so we may map any range, and leave
/// `/proc/PID/setgroups` at "allow": the child then drops the host's supplementary
/// groups itself. (An unprivileged parent, as in rootless Podman or `unshare -r`, must
/// write "deny" there first, and the child keeps them.)
fn write_id_maps(pid: Pid, uid_map: &[IdMap], gid_map: &[IdMap]) -> Result<()> {
    for (file, maps) in [("uid_map", uid_map), ("gid_map", gid_map)] {
        let path = format!("/proc/{pid}/{file}");
        let text: String = maps.iter().map(|m| format!("{m}\n")).collect();
        fs::write(&path, text).map_err(Error::io("write", path))?;
    }
    Ok(())
}
// ANCHOR_END: id_maps

// ANCHOR: in_child
/// The child, from `clone` to `exec`. System calls only (see `child.rs`).
fn in_child(p: &ChildPlan) -> isize {
    let spec = p.spec;
    // SAFETY: closing our copies of the parent's pipe ends.
    unsafe {
        libc::close(p.go_wr);
        libc::close(p.err_rd);
    }
    child::redirect_stdio(p.stdio, p.err_wr);
    child::wait_for_go(p.go_rd);
    child::close_others(&mut [p.err_wr]);
    let fail = |step, errno| child::fail(p.err_wr, step, errno);
    if spec.has(Namespace::User) {
        // uid and gid 0 inside; 100000 outside with the default map.
        child::become_root(p.err_wr);
    }
    // Set after the uid change, which would clear it. If kthw dies, so do we.
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        fail(Step::ParentDeathSignal, Errno::last());
    }
    if spec.has(Namespace::Mount) {
        // The new namespace starts with copies of the host's mounts, still "shared" with
        // them: without this, our /proc mount below would appear on the host too.
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        if let Err(errno) = mount(None::<&str>, "/", None::<&str>, private, None::<&str>) {
            fail(Step::MountPrivate, errno);
        }
        if spec.has(Namespace::Pid) {
            // /proc shows the PID namespace of whoever mounted it; this one is ours.
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            if let Err(errno) = mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>) {
                fail(Step::MountProc, errno);
            }
        }
    }
    if let Some(name) = &spec.hostname
        && let Err(errno) = nix::unistd::sethostname(name)
    {
        fail(Step::SetHostname, errno);
    }
    if spec.has(Namespace::Net)
        && let Err(errno) = child::loopback_up()
    {
        fail(Step::LoopbackUp, errno);
    }
    if spec.runs_init() { init::run(c"kthw-init", p.cmd, p.err_wr) } else { child::exec(p.cmd, p.err_wr) }
}
// ANCHOR_END: in_child

impl Process {
    /// The host PID: the namespace's PID 1 (our init, or the command with `--no-init`).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `signal` to the process.
    ///
    /// # Errors
    /// If the process is gone.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        nix::sys::signal::kill(self.pid, signal).map_err(Error::sys("kill"))
    }

    /// Waits for the process to exit and returns its status as a shell reports it:
    /// the exit code, or 128 + N when signal N killed it.
    ///
    /// # Errors
    /// If waiting fails (the process is not our child).
    pub fn wait(mut self) -> Result<i32> {
        self.wait_inner(false)
    }

    /// Like [`wait`](Process::wait), but also forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT,
    /// SIGUSR1, SIGUSR2 and SIGWINCH sent to us, as `docker run` forwards them to the
    /// container. For single-threaded callers (the CLI): the signals are blocked in the
    /// calling thread only.
    ///
    /// # Errors
    /// If waiting fails.
    pub fn wait_forwarding_signals(mut self) -> Result<i32> {
        self.wait_inner(true)
    }

    /// Returns whether the process has exited (and reaps it), without blocking.
    pub fn try_wait(&mut self) -> Result<Option<i32>> {
        if self.done {
            return Ok(None);
        }
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).map_err(Error::sys("waitpid"))? {
            WaitStatus::StillAlive => Ok(None),
            status => Ok(exit_code(status).inspect(|_| self.finish())),
        }
    }

    fn wait_inner(&mut self, forward: bool) -> Result<i32> {
        let mut signals = SigSet::empty();
        let mut old = SigSet::empty();
        if forward {
            use Signal::*;
            for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD] {
                signals.add(sig);
            }
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut old))
                .map_err(Error::sys("pthread_sigmask"))?;
        }
        let result = loop {
            let flags = forward.then_some(WaitPidFlag::WNOHANG);
            match waitpid(self.pid, flags) {
                Ok(WaitStatus::StillAlive) => match signals.wait() {
                    Ok(Signal::SIGCHLD) | Err(_) => continue,
                    Ok(sig) => {
                        let _ = nix::sys::signal::kill(self.pid, sig);
                    }
                },
                Ok(status) => match exit_code(status) {
                    Some(code) => break Ok(code),
                    None => continue,
                },
                Err(Errno::EINTR) => continue,
                Err(errno) => break Err(Error::Sys { call: "waitpid", errno }),
            }
        };
        if forward {
            let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
        self.finish();
        result
    }

    /// Kills and reaps the process (used on errors and on drop).
    fn reap(&mut self) {
        if !self.done {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.done = true;
        if let Some(path) = self.pid_file.take() {
            // Only if it is still ours: a new run may have replaced it.
            if fs::read_to_string(&path).is_ok_and(|s| s.trim() == self.pid.to_string()) {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// A handle to a process started elsewhere in this crate.
    pub(crate) fn from_pid(pid: Pid) -> Process {
        Process { pid, pid_file: None, done: false }
    }

    /// Gives up ownership: the process keeps running and is not killed on drop.
    pub fn detach(mut self) -> Pid {
        self.done = true;
        self.pid
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.reap();
    }
}

/// The status as a shell reports it, or `None` for a stop/continue event.
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}
