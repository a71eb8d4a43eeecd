//! [`Runtime`]: the OCI runtime's commands — `create`, `start`, `state`, `kill`,
//! `delete`, and `run`, which is all of them in a row.
//!
//! The OCI runtime specification splits starting a container in two. `create` builds
//! everything — namespaces, cgroup, root filesystem, security — and leaves a process
//! inside that has not yet run the user's program. `start` lets it. In between, the
//! caller can act on the container from the outside: Docker's engine wires the network
//! namespace (`/proc/PID/ns/net`, chapter 4's `network`), the kubelet runs hooks.
//!
//! runc holds the process back with a FIFO in the container's state folder, the
//! `exec.fifo`. Opening a FIFO for writing blocks until someone opens it for reading:
//!
//! ```text
//! kthw runtime create                     init (pid 1 inside, usually)      kthw runtime start
//! ───────────────────                     ───────────────────               ──────────────────
//! mkfifo exec.fifo; cgroup; clone ──────▶ setup … report "ready"
//! ◀── "ready" on the report pipe          open(exec.fifo, O_WRONLY) blocks
//! write state.json, exit                          ·
//!                                                 ·  ◀──────────────────── open(exec.fifo, O_RDONLY)
//!                                         write "0" ─────────────────────▶ read it, rm exec.fifo
//!                                         execve(process.args)
//! ```
//!
//! The init is created by `clone` in the calling process, so it is that process's
//! **direct child**: the engine's supervisor (like containerd-shim) `waitpid`s it for
//! the exit status. runc gets the same effect with `PR_SET_CHILD_SUBREAPER` on the shim.
//! Afterwards, the state on disk is all that links the commands; the status is derived
//! from the running system each time ([`crate::state`]).
//!
//! A spec may also *join* an existing pid namespace (`{"type": "pid", "path":
//! "/proc/PID/ns/pid"}`: a pod with `shareProcessNamespace`, chapter 5). `setns` into a
//! pid namespace moves only the caller's future children, so it must happen before the
//! clone, not in the init: `create` enters it in the calling thread, clones without
//! `CLONE_NEWPID`, and returns the thread at once (`ChildrenInPidNamespace`). The init is
//! then not PID 1 of its namespace, and nothing here needs it to be: every pid we keep
//! and signal is the host's, and `delete` kills whatever is left in the cgroup, which a
//! dying PID 1 would otherwise have taken care of.
//!
//! What runc does differently: it takes a lock per container, runs OCI hooks between the
//! steps, supports `pause`/`resume` (the freezer), `exec` (a new process in a running
//! container), `update`, `checkpoint`/`restore` (CRIU), `ps` and `events`; its
//! `--systemd-cgroup` asks systemd for the cgroup. It waits on the FIFO from a goroutine;
//! we wait on the FIFO and on a pidfd of the init at once with `poll`. It joins a pid
//! namespace in a throw-away middle process (nsexec's stage 1 setns'es into every
//! namespace, then forks the init, stage 2, with `CLONE_PARENT`), so no thread of a
//! long-lived process ever changes its namespaces; we avoid that extra process and keep
//! the init a direct child of one `clone`, at the price of setting our thread back.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kthw_cgroups::Cgroup;
use kthw_lab::host::{CgroupLayout, Namespace};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::bundle::{self, Bundle};
use crate::init::{self, Plan, Step, Terminal};
use crate::security::Security;
use crate::state::{self, OCI_VERSION, Record, State, Status};
use crate::{Error, Result, mounts, resources};

/// The name of the FIFO in a container's state folder that its init waits on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// The `PATH` used to find the program when `process.env` has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An OCI runtime: the state folder (like `runc --root`) under which each container has
/// a folder, and the cgroup under which containers without `linux.cgroupsPath` go.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    cgroup_root: String,
}

/// How `create` connects the init to the outside.
#[derive(Default, Debug)]
pub struct CreateOptions {
    /// The init's stdin, stdout, stderr; None = inherit the caller's.
    pub stdio: [Option<OwnedFd>; 3],
    /// With `process.terminal`: make a pty inside the container and send its master over
    /// this unix socket (runc's `--console-socket`). Without it, `stdio[0]` must be a pty
    /// slave, which the init makes its controlling terminal (setsid + TIOCSCTTY).
    pub console_socket: Option<PathBuf>,
    /// A file to write the init's pid into (runc's `--pid-file`).
    pub pid_file: Option<PathBuf>,
}

/// A created container and the read end of its init's report pipe, which `run` reads
/// after `start` to learn whether `execve` worked.
struct Created {
    state: State,
    report: OwnedFd,
    what: Vec<String>,
    program: String,
}

impl Runtime {
    /// A runtime whose state lives under `root`; its cgroups go under this
    /// installation's cgroup root (`kthw_lab::Paths::from_env`).
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime { root: root.into(), cgroup_root: kthw_lab::Paths::from_env().cgroup_root().to_string() }
    }

    /// `paths.run/runtime`: where the engine's containers' OCI state lives.
    pub fn for_paths(paths: &kthw_lab::Paths) -> Runtime {
        Runtime { root: paths.run.join("runtime"), cgroup_root: paths.cgroup_root().to_string() }
    }

    /// The state folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Sets up the container (namespaces, cgroup, mounts, pivot_root, ...) and returns once
    /// its init waits for `start` (runc's exec.fifo). The init is a direct child of the
    /// calling process, so the caller can `waitpid` it for the exit status.
    ///
    /// # Errors
    /// A bad id or bundle (nothing is created then), an id in use, a cgroup that cannot
    /// be made, or a step of the init's setup that failed (named, with its errno and a
    /// hint); on failure everything made so far is removed.
    pub fn create(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<State> {
        self.create_inner(id, bundle, opts).map(|c| c.state)
    }

    // ANCHOR: create
    fn create_inner(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<Created> {
        check_id(id)?;
        let bundle = bundle::load(bundle)?;
        let security = Security::new(&bundle.spec)?;
        let limits = resources::limits(&bundle.spec)?;
        let layout = CgroupLayout::detect()?;
        std::fs::create_dir_all(&self.root).map_err(Error::io("create the state folder", &self.root))?;
        let dir = state::dir(&self.root, id);
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::ContainerExists(id.into())),
            other => other.map_err(Error::io("create", &dir))?,
        }
        // From here on, an early return undoes what was made.
        let mut undo = Undo { dir: Some(dir.clone()), cgroup: None, pid: None };
        let fifo = make_fifo(&dir.join(EXEC_FIFO))?;
        let cgroup = Cgroup::create(&layout, &resources::cgroup_path(&bundle.spec, &self.cgroup_root, id))?;
        undo.cgroup = Some(cgroup.clone());
        cgroup.apply(&limits)?;
        let procs = cgroup.join_files()?;
        // Who moves the init into its cgroup. A new cgroup namespace must be made from
        // inside the cgroup, so then the init joins first thing. Otherwise we move it from
        // here, while it mounts: the first write to a v1 `cgroup.procs` can wait ~8 ms for
        // the kernel (an RCU grace period), and this way the init's setup fills that wait.
        // It cannot run the user's program before we are done: that needs `start`.
        let init_joins = bundle::has_new_cgroup_namespace(&bundle.spec);
        let child_procs: &[std::fs::File] = if init_joins { &procs } else { &[] };
        let (mut plan, flags, keep, pid_ns) = prepare(&bundle, security, &cgroup, &opts, &fifo, child_procs)?;
        let (report_rd, report_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
        plan.err_wr = report_wr.as_raw_fd();
        plan.close = vec![report_rd.as_raw_fd()];
        let mut stack = vec![0u8; 512 * 1024];
        // A pid namespace to join is entered by this thread, for the child only (see
        // `ChildrenInPidNamespace`); dropping the guard right after the clone undoes it.
        let in_pid_ns = pid_ns.as_ref().map(|(fd, path)| ChildrenInPidNamespace::enter(fd, path)).transpose()?;
        // SAFETY: without CLONE_VM the child gets a copy of our memory, like fork; the
        // callback only makes system calls and never returns.
        let cloned =
            unsafe { nix::sched::clone(Box::new(|| init::run(&plan)), &mut stack, flags, Some(libc::SIGCHLD)) };
        drop(in_pid_ns);
        let pid = cloned.map_err(|errno| clone_error(flags, pid_ns.as_ref().map(|(_, path)| path.as_path()), errno))?;
        undo.pid = Some(pid);
        if !init_joins {
            for (file, dir) in procs.iter().zip(cgroup.dirs()) {
                use std::io::Write as _;
                (&*file)
                    .write_all(pid.as_raw().to_string().as_bytes())
                    .map_err(Error::io("move the init into", dir.path.join("cgroup.procs")))?;
            }
        }
        drop((report_wr, procs, keep, opts.stdio));
        let program = bundle.spec.process().as_ref().and_then(|p| p.args().as_ref()).and_then(|a| a.first().cloned());
        let program = program.unwrap_or_default();
        match read_report(&report_rd)? {
            Some((Step::Ready, _, _)) => {}
            Some((step, item, errno)) => return Err(init_error(id, &plan, &program, step, item, errno)),
            None => {
                let status = waitpid(pid, None).map(|s| format!("{s:?}")).unwrap_or_default();
                undo.pid = None;
                return Err(Error::bad(format!("container {id}"), format!("its init exited during setup ({status})")));
            }
        }
        let annotations: BTreeMap<String, String> =
            bundle.spec.annotations().clone().unwrap_or_default().into_iter().collect();
        let state = State {
            oci_version: OCI_VERSION.into(),
            id: id.into(),
            status: Status::Created,
            pid: pid.as_raw(),
            bundle: bundle.dir.clone(),
            annotations,
        };
        let record = Record {
            state: state.clone(),
            start_time: state::start_time(pid.as_raw()).unwrap_or(0),
            cgroup: cgroup.path().to_string(),
            rootfs: bundle.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        };
        record.save(&self.root)?;
        if let Some(path) = &opts.pid_file {
            std::fs::write(path, pid.to_string()).map_err(Error::io("write the pid file", path))?;
        }
        undo.disarm();
        Ok(Created { state, report: report_rd, what: std::mem::take(&mut plan.mounts.what), program })
    }
    // ANCHOR_END: create

    // ANCHOR: start
    /// Lets the init of a created container run the user's program.
    ///
    /// # Errors
    /// No such container, one that is not `created`, or an init that died meanwhile.
    pub fn start(&self, id: &str) -> Result<()> {
        let record = Record::load(&self.root, id)?;
        let current = record.current(&self.root);
        if current.status != Status::Created {
            return Err(wrong_state(&current, "only a created container can be started"));
        }
        let path = state::dir(&self.root, id).join(EXEC_FIFO);
        // Non-blocking: the open returns at once, and releases the init's blocking open.
        let fifo = open(&path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC)?;
        let pidfd = pidfd_open(current.pid).map_err(Error::sys(format!("pidfd_open {}", current.pid)))?;
        // Wait for the init's "0" on the FIFO, or for the init to die: no polling loop.
        let mut fds = [
            libc::pollfd { fd: fifo.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        loop {
            // SAFETY: poll on two descriptors we own.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if rc >= 0 {
                break;
            }
            if Errno::last() != Errno::EINTR {
                return Err(Error::sys("poll exec.fifo")(Errno::last()));
            }
        }
        let mut byte = [0u8; 1];
        let got = nix::unistd::read(&fifo, &mut byte).unwrap_or(0);
        if got != 1 {
            return Err(wrong_state(&record.current(&self.root), "its init exited before it was started"));
        }
        std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        Ok(())
    }
    // ANCHOR_END: start

    /// The container's state: `stopped` once its init is gone.
    ///
    /// # Errors
    /// No such container, or a state file we cannot read.
    pub fn state(&self, id: &str) -> Result<State> {
        Ok(Record::load(&self.root, id)?.current(&self.root))
    }

    /// Every container's state, sorted by id.
    ///
    /// # Errors
    /// A state folder we cannot read.
    pub fn list(&self) -> Result<Vec<State>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &self.root)(e)),
        };
        let mut ids: Vec<String> =
            entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect();
        ids.sort();
        Ok(ids.iter().filter_map(|id| Record::load(&self.root, id).ok()).map(|r| r.current(&self.root)).collect())
    }

    /// Sends `signal` to the container's init.
    ///
    /// # Errors
    /// No such container, or one that is stopped.
    pub fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        let current = self.state(id)?;
        if current.status == Status::Stopped {
            return Err(wrong_state(&current, "there is no process to signal; `kthw runtime delete` removes it"));
        }
        nix::sys::signal::kill(Pid::from_raw(current.pid), signal)
            .map_err(Error::sys(format!("kill {signal} {}", current.pid)))
    }

    // ANCHOR: delete
    /// Removes the cgroup and the state. A created container (never started) is killed
    /// first, as runc does; a running one only with `force` (SIGKILL).
    ///
    /// # Errors
    /// No such container, a running one without `force`, or a cgroup that will not go.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let record = Record::load(&self.root, id)?;
        let current = record.current(&self.root);
        match current.status {
            Status::Stopped => {}
            Status::Running | Status::Creating if !force => {
                return Err(wrong_state(&current, "stop it first, or delete it with --force (SIGKILL)"));
            }
            _ => kill_and_wait(id, current.pid)?,
        }
        let layout = CgroupLayout::detect()?;
        match Cgroup::open(&layout, &record.cgroup) {
            Ok(cgroup) => cgroup.delete()?,
            Err(kthw_cgroups::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let dir = state::dir(&self.root, id);
        std::fs::remove_dir_all(&dir).map_err(Error::io("remove", &dir))
    }
    // ANCHOR_END: delete

    /// create + start + wait + delete; returns the exit code (128+N for signal N).
    ///
    /// # Errors
    /// As [`Runtime::create`], or a program that could not be executed.
    pub fn run(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<i32> {
        self.run_inner(id, bundle, opts, false)
    }

    /// Like [`Runtime::run`], but passes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
    /// SIGUSR2 and SIGWINCH sent to us on to the container's init, as `runc run` does.
    /// For single-threaded callers (the CLI): the signals are blocked in this thread only.
    ///
    /// # Errors
    /// As [`Runtime::run`].
    pub fn run_forwarding_signals(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<i32> {
        self.run_inner(id, bundle, opts, true)
    }

    fn run_inner(&self, id: &str, bundle: &Path, opts: CreateOptions, forward: bool) -> Result<i32> {
        let created = self.create_inner(id, bundle, opts)?;
        let pid = Pid::from_raw(created.state.pid);
        let started = self.start(id).and_then(|()| match read_report(&created.report)? {
            Some((step, item, errno)) => Err(init_error_named(id, &created.what, &created.program, step, item, errno)),
            None => Ok(()),
        });
        let code = if forward { wait_forwarding(pid) } else { wait(pid) };
        let deleted = self.delete(id, true);
        started?;
        let code = code?;
        deleted?;
        Ok(code)
    }
}

/// Parses a signal as `kill` and runc take it: `KILL`, `SIGKILL`, `kill` or `9`.
///
/// # Errors
/// A name or number that is no signal.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::bad(format!("signal {s:?}"), "give a name such as TERM, SIGKILL or a number such as 9");
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().map_err(|_| bad())
}

/// Container ids as runc allows them: letters, digits, `_`, `+`, `-` and `.`, not `.`/`..`.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::bad(format!("container id {id:?}"), "use letters, digits, _ + - and ., e.g. web-1"))
    }
}

fn wrong_state(state: &State, why: &str) -> Error {
    Error::WrongState { id: state.id.clone(), status: state.status.to_string(), why: why.into() }
}

/// What `create` has made so far, removed again unless [`Undo::disarm`]ed.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    pid: Option<Pid>,
}

impl Undo {
    fn disarm(&mut self) {
        (self.dir, self.cgroup, self.pid) = (None, None, None);
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.delete();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// This thread, set up so that its next child is born in another pid namespace.
///
/// `setns(fd, CLONE_NEWPID)` does not move the caller: it changes only the namespace in
/// which the calling *thread's* future children are born (its `pid_for_children`), and
/// the kernel allows it in a process with many threads, if the target is our own pid
/// namespace or one below it. So `create` enters the container's pid namespace this way,
/// clones the init without `CLONE_NEWPID`, and then drops this guard, which sets the
/// thread back to where it was. The init never setns'es into its pid namespace itself:
/// it would only move the init's children, not the init.
struct ChildrenInPidNamespace {
    /// `/proc/thread-self/ns/pid_for_children` before: where [`Drop`] returns to.
    home: OwnedFd,
}

impl ChildrenInPidNamespace {
    fn enter(target: &OwnedFd, path: &Path) -> Result<ChildrenInPidNamespace> {
        let home = open(Path::new("/proc/thread-self/ns/pid_for_children"), libc::O_RDONLY | libc::O_CLOEXEC)?;
        // SAFETY: setns(2) on a namespace file we opened; it changes only this thread.
        if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            let errno = Errno::last();
            let hint = match errno {
                Errno::EINVAL => "; it is not a pid namespace, or not one below ours (kthw's own pid namespace)",
                _ => "",
            };
            return Err(Error::bad(
                "config.json: linux.namespaces: pid",
                format!("cannot join {} (setns): {errno}{hint}", path.display()),
            ));
        }
        Ok(ChildrenInPidNamespace { home })
    }
}

impl Drop for ChildrenInPidNamespace {
    fn drop(&mut self) {
        // SAFETY: setns(2) back into the namespace this thread's children were born in.
        if unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            // Joining the namespace we came from is always allowed, so this should never
            // happen. If it did, every later child of this thread (a CNI plugin, `ip`, the
            // next container) would be born inside the container: stop rather than that.
            let errno = Errno::last();
            eprintln!("kthw runtime: cannot return to our own pid namespace after clone: {errno}; aborting");
            std::process::abort();
        }
    }
}

/// A failed `clone`, with a hint for the one cause that is ours to explain.
fn clone_error(flags: nix::sched::CloneFlags, pid_ns: Option<&Path>, errno: Errno) -> Error {
    match pid_ns {
        // The kernel refuses new members once a pid namespace's PID 1 has exited.
        Some(path) if errno == Errno::ENOMEM => Error::bad(
            "config.json: linux.namespaces: pid",
            format!(
                "cannot clone into {}: {errno}; the PID 1 of that namespace has exited, and a pid namespace \
                 without its PID 1 takes no new processes: start the container that holds it again",
                path.display()
            ),
        ),
        _ => Error::sys(format!("clone with {flags:?}"))(errno),
    }
}

fn open(path: &Path, flags: libc::c_int) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::bad("path", "it contains a NUL byte"))?;
    // SAFETY: open(2) on a C string; the descriptor is ours.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::io("open", path)(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the `exec.fifo`, writable by anyone (the init may no longer be root when it
/// opens it), and opens it with `O_PATH` for the init to reopen after `pivot_root`.
fn make_fifo(path: &Path) -> Result<OwnedFd> {
    use nix::sys::stat::Mode;
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o622))
        .map_err(Error::sys(format!("mkfifo {}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o622)).map_err(Error::io("chmod", path))?;
    open(path, libc::O_PATH | libc::O_CLOEXEC)
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open(2) (Linux 5.3) returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// How long `delete` waits for a SIGKILLed init to exit (runc waits 10 s too).
const KILL_TIMEOUT_MS: libc::c_int = 10_000;

/// SIGKILL, then wait for the process to exit (not to be reaped: that is its parent's job),
/// for at most [`KILL_TIMEOUT_MS`].
fn kill_and_wait(id: &str, pid: i32) -> Result<()> {
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("pidfd_open {pid}"))(e)),
    };
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    let mut fds = [libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    let ready = loop {
        // SAFETY: poll on a descriptor we own; a pidfd becomes readable when the process exits.
        match unsafe { libc::poll(fds.as_mut_ptr(), 1, KILL_TIMEOUT_MS) } {
            n if n >= 0 => break n > 0,
            _ if Errno::last() == Errno::EINTR => continue,
            _ => return Err(Error::sys(format!("poll the pidfd of {pid}"))(Errno::last())),
        }
    };
    if ready {
        return Ok(());
    }
    // The usual cause: PID 1 of a pid namespace finishes exiting only once every other
    // process of that namespace has been reaped, and a container that joined the
    // namespace (and exited) waits for *its* parent, maybe our own caller, to reap it.
    Err(Error::WrongState {
        id: id.into(),
        status: "still running".into(),
        why: format!(
            "its init (pid {pid}) did not exit within {} s of SIGKILL; if containers joined its pid namespace, \
             their parent must reap them (waitpid) first: a pid namespace's PID 1 exits last",
            KILL_TIMEOUT_MS / 1000
        ),
    })
}

/// Waits for our child `pid` and returns its status as a shell reports it.
fn wait(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys(format!("waitpid {pid}"))(e)),
        }
    }
}

/// [`wait`], passing the usual signals on to `pid` (see [`Runtime::run_forwarding_signals`]).
fn wait_forwarding(pid: Pid) -> Result<i32> {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    use nix::sys::wait::WaitPidFlag;
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        set.add(sig);
    }
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).map_err(Error::sys("pthread_sigmask"))?;
    let result = loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => match set.wait() {
                Ok(Signal::SIGCHLD) | Err(_) => continue,
                Ok(sig) => {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
            },
            Ok(WaitStatus::Exited(_, code)) => break Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => break Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => break Err(Error::sys(format!("waitpid {pid}"))(e)),
        }
    };
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

/// Reads one (step, item, errno) report, or `None` at end-of-file.
fn read_report(fd: &OwnedFd) -> Result<Option<(Step, u32, Errno)>> {
    let mut buf = [0u8; 12];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("read the init's report")(e)),
        }
    }
    if got == 0 {
        return Ok(None);
    }
    let word = |i: usize| u32::from_ne_bytes(buf[i..i + 4].try_into().unwrap_or_default());
    let step = Step::from_u32(word(0))
        .ok_or_else(|| Error::bad("the init's report", format!("unknown step {} ({got} bytes)", word(0))))?;
    Ok(Some((step, word(4), Errno::from_raw(word(8) as i32))))
}

fn init_error(id: &str, plan: &Plan, program: &str, step: Step, item: u32, errno: Errno) -> Error {
    init_error_named(id, &plan.mounts.what, program, step, item, errno)
}

/// An init's failure as an error that names the step, what it was working on, and a hint.
fn init_error_named(id: &str, what: &[String], program: &str, step: Step, item: u32, errno: Errno) -> Error {
    let step_text = match step {
        Step::Ready => "report that it is ready".into(),
        Step::Stdio => format!("set up its stdio (dup2 to fd {item})"),
        Step::Setsid => "start a session (setsid)".into(),
        Step::Cgroup => "join its cgroup (write cgroup.procs)".into(),
        Step::SetNs => format!("join namespace number {item} of linux.namespaces (setns)"),
        Step::UnshareCgroup => "make a cgroup namespace (unshare)".into(),
        Step::OomScoreAdj => "set process.oomScoreAdj".into(),
        Step::Loopback => "bring up the loopback interface lo".into(),
        Step::Mount => what.get(item as usize).cloned().unwrap_or_else(|| format!("mount step {item}")),
        Step::Sysctl => format!("set linux.sysctl number {item}"),
        Step::Hostname => "set the host name (sethostname)".into(),
        Step::Domainname => "set the domain name (setdomainname)".into(),
        Step::Terminal => format!("set up the terminal (step {item})"),
        Step::Security => init::decode(item).to_string(),
        Step::Chdir => "enter process.cwd (chdir)".into(),
        Step::FindProgram => format!("find {program:?} (process.args[0])"),
        Step::Fifo => "wait for start on exec.fifo".into(),
        Step::Exec => format!("run {program:?} (execve)"),
    };
    let hint = match (step, errno) {
        (Step::FindProgram, Errno::ENOENT) => {
            "; it is not in the root filesystem, in no folder of the container's PATH (process.env)".into()
        }
        (Step::FindProgram | Step::Exec, Errno::EACCES) => {
            "; is the file executable (chmod +x) by process.user?".into()
        }
        (Step::Exec, Errno::ENOENT) => {
            "; its interpreter (the #! line, or the dynamic loader of a dynamically linked program) is missing".into()
        }
        (Step::Chdir, Errno::ENOENT) => "; create that folder in the root filesystem or change process.cwd".into(),
        (Step::Mount, Errno::ENOENT) => "; the source or the mount point does not exist".into(),
        (Step::Terminal, Errno::ENOTTY) => {
            "; with process.terminal, stdin must be a pty slave or --console-socket given".into()
        }
        (Step::Terminal, Errno::EPERM) => {
            "; that terminal already belongs to another session: give --console-socket or set process.terminal to false"
                .into()
        }
        _ => String::new(),
    };
    Error::Init { id: id.into(), step: step_text, errno, hint }
}

/// The pid namespace to join: its open file, and its path for messages.
type PidNamespace = (OwnedFd, PathBuf);

/// Everything the init needs, the namespaces `clone` must create, and the pid namespace
/// to clone into, if one is joined. The descriptors the plan refers to are in the
/// returned `Vec<OwnedFd>`, which must live until after `clone`.
fn prepare(
    bundle: &Bundle,
    security: Security,
    cgroup: &Cgroup,
    opts: &CreateOptions,
    fifo: &OwnedFd,
    procs: &[std::fs::File],
) -> Result<(Plan, nix::sched::CloneFlags, Vec<OwnedFd>, Option<PidNamespace>)> {
    let spec = &bundle.spec;
    let process = spec.process().as_ref().ok_or_else(|| Error::bad("config.json: process", "it is missing"))?;
    let linux = spec.linux().as_ref();
    let c = |s: &str, what: &str| {
        CString::new(s).map_err(|_| Error::bad(format!("config.json: {what}"), "it contains a NUL byte"))
    };
    let mut flags = nix::sched::CloneFlags::empty();
    let mut keep = Vec::new();
    let mut joins = Vec::new();
    let mut new = Vec::new();
    let mut unshare_cgroup = false;
    let mut pid_ns = None;
    for ns in linux.and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
        let kind = bundle::namespace_kind(ns.typ());
        match ns.path() {
            // Joined by `create` around the clone, not by the init: see ChildrenInPidNamespace.
            Some(path) if kind == Namespace::Pid => {
                pid_ns = Some((open(path, libc::O_RDONLY | libc::O_CLOEXEC)?, path.clone()));
            }
            Some(path) => {
                let fd = open(path, libc::O_RDONLY | libc::O_CLOEXEC)?;
                joins.push((fd.as_raw_fd(), kind.clone_flag().bits()));
                keep.push(fd);
            }
            None if kind == Namespace::Cgroup => {
                unshare_cgroup = true;
                new.push(kind);
            }
            None => {
                flags |= kind.clone_flag();
                new.push(kind);
            }
        }
    }
    let terminal = if process.terminal().unwrap_or(false) {
        match &opts.console_socket {
            Some(path) => {
                let sock = std::os::unix::net::UnixStream::connect(path)
                    .map_err(Error::io("connect to the console socket", path))?;
                let fd: OwnedFd = sock.into();
                let t = Terminal::Socket(fd.as_raw_fd());
                keep.push(fd);
                t
            }
            None if opts.stdio[0].is_some() => Terminal::Stdio,
            None => {
                return Err(Error::bad(
                    "config.json: process.terminal",
                    "it is true, but no terminal was given: pass --console-socket, or set \"terminal\": false",
                ));
            }
        }
    } else {
        Terminal::None
    };
    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let path_var = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_string();
    let args = process.args().clone().unwrap_or_default();
    let program = args.first().cloned().unwrap_or_default();
    let candidates: Vec<CString> = if program.contains('/') {
        vec![c(&program, "process.args")?]
    } else {
        path_var
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| c(&format!("{}/{program}", d.trim_end_matches('/')), "process.args"))
            .collect::<Result<_>>()?
    };
    let sysctl = linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| Ok((c(&format!("/proc/sys/{}", k.replace('.', "/")), "linux.sysctl")?, c(v, "linux.sysctl")?)))
        .collect::<Result<Vec<_>>>()?;
    // A missing working directory is created, as runc does: a Dockerfile's `WORKDIR /app`
    // followed only by CMD makes an image whose folder exists in no layer.
    let cwd_on_host = mounts::secure_join(&bundle.rootfs, process.cwd());
    if !cwd_on_host.exists() {
        std::fs::create_dir_all(&cwd_on_host).map_err(Error::io("create process.cwd", &cwd_on_host))?;
    }
    let mut plan = Plan {
        close: Vec::new(),
        err_wr: -1,
        stdio: [0, 1, 2].map(|i| opts.stdio[i].as_ref().map(AsRawFd::as_raw_fd)),
        cgroup_procs: procs.iter().map(AsRawFd::as_raw_fd).collect(),
        joins,
        unshare_cgroup,
        oom_score_adj: process.oom_score_adj().map(|n| c(&n.to_string(), "process.oomScoreAdj")).transpose()?,
        loopback: new.contains(&Namespace::Net),
        mounts: mounts::plan(spec, &bundle.rootfs, &bundle.dir, cgroup, &new)?,
        sysctl,
        hostname: spec.hostname().as_deref().filter(|h| !h.is_empty()).map(|h| c(h, "hostname")).transpose()?,
        domainname: spec.domainname().as_deref().filter(|h| !h.is_empty()).map(|h| c(h, "domainname")).transpose()?,
        terminal,
        console_size: process.console_size().map(|b| (b.height() as u16, b.width() as u16)),
        security,
        cwd: c(&process.cwd().to_string_lossy(), "process.cwd")?,
        candidates,
        argv: args.iter().map(|a| c(a, "process.args")).collect::<Result<_>>()?,
        envp: env.iter().map(|e| c(e, "process.env")).collect::<Result<_>>()?,
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
        fifo: fifo.as_raw_fd(),
        fifo_reopen: c(&format!("/proc/self/fd/{}", fifo.as_raw_fd()), "exec.fifo")?,
    };
    plan.pointers();
    Ok((plan, flags, keep, pid_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Signals are taken by name, with or without SIG, in any case, or by number.
    #[test]
    fn signals_parse_like_kill() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    // Ids are runc's: no slashes, no dot-dot.
    #[test]
    fn ids_are_checked() {
        check_id("web-1.a_b+c").unwrap();
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
