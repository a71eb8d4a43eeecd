//! The supervisor: one small process per container that outlives the command that
//! started it, like containerd-shim or Podman's conmon.
//!
//! Someone must be the parent of the container's init: only the parent can `waitpid`
//! for its exit code, and if nobody reads the init's stdout, the container blocks as
//! soon as the pipe is full. The CLI cannot be that parent (`kthw run -d` returns at once),
//! so it forks one:
//!
//! ```text
//!  kthw run -d ──fork──▶ (child) setsid ──fork──▶ supervisor ──Runtime::create──▶ init
//!       ▲  exits           exits at once            │ holds stdout/stderr pipes
//!       └──── "started PID" over a pipe ────────────┤ writes log.json, waits for the exit
//!                                                   └ writes exit.json, tears down
//! ```
//!
//! The double fork and `setsid` cut every tie to the CLI: the supervisor is adopted by
//! the host's init (or a subreaper), has no controlling terminal, and survives the
//! terminal closing. Its stdin and stdout are `/dev/null`, its stderr goes to
//! `supervisor.log`. It makes itself a *child subreaper*, as containerd-shim does, so
//! that whatever the runtime forks and orphans is re-parented to it, not to the host.
//!
//! We fork inside the library, not by running a hidden `kthw supervise ID` command: the
//! supervisor needs the same engine the CLI has already opened, and a plain fork keeps
//! the whole story in one file. The cost is that the library must fork from a process
//! with one thread (the `kthw` binary is one); the engine's own tests take a lock
//! around it.
//!
//! For `kthw run -it` (a foreground terminal) the CLI **is** the supervisor: it holds the
//! pty master, copies it to and from the user's terminal, and waits for the init itself.
//! That is a simplification: closing the terminal ends the supervisor, and the container
//! is then reported as having lost it. Docker keeps the pty in the shim and relays it.
//!
//! What containerd-shim does differently: it is started by containerd as a separate
//! binary and serves a ttrpc API on a socket (create, start, kill, exec, wait, ...), so
//! containerd can restart and reconnect; it calls `runc create`/`runc start` as commands
//! and receives the init's exit through its subreaper role. conmon is similar for Podman
//! and CRI-O, and also writes the log file.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::log::{self, Stream};
use super::record::{self, Dir, Exited, Record, Started, SupervisorPid};
use super::{Engine, net, pty};
use crate::lifecycle::CreateOptions;
use crate::{Error, Result};

/// How the container's stdio is connected.
pub(crate) enum Io {
    /// Pipes: stdin is the given descriptor (`-i`) or `/dev/null`; the output goes to the log.
    Pipes { stdin: Option<OwnedFd> },
    /// A pty from the container (`-t`); `foreground`: also copied to and from our terminal.
    Tty { foreground: bool, interactive: bool },
}

/// What the supervisor tells the CLI that started it, one line each.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    Started(i32),
    Failed(String),
    Exited(i32),
}

impl Notice {
    fn line(&self) -> String {
        match self {
            Notice::Started(pid) => format!("started {pid}\n"),
            Notice::Failed(msg) => format!("failed {}\n", msg.replace('\n', " ")),
            Notice::Exited(code) => format!("exited {code}\n"),
        }
    }

    fn parse(line: &str) -> Option<Notice> {
        let (word, rest) = line.split_once(' ')?;
        match word {
            "started" => rest.parse().ok().map(Notice::Started),
            "failed" => Some(Notice::Failed(rest.to_string())),
            "exited" => rest.parse().ok().map(Notice::Exited),
            _ => None,
        }
    }
}

/// The supervisor's end of the notice pipe (none when the CLI is the supervisor).
pub(crate) struct Notifier(Option<File>);

impl Notifier {
    pub(crate) fn none() -> Notifier {
        Notifier(None)
    }

    fn send(&mut self, notice: &Notice) {
        // The CLI may be gone (`run -d` returned): EPIPE is expected then.
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(notice.line().as_bytes());
        }
    }
}

/// The CLI's end: reads notices as they come.
pub(crate) struct Handle {
    pipe: File,
    pending: String,
    closed: bool,
}

impl Handle {
    fn next_line(&mut self, block: bool) -> Option<String> {
        loop {
            if let Some(i) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=i).collect();
                return Some(line.trim_end().to_string());
            }
            if self.closed {
                return None;
            }
            if !block {
                let mut fds = [libc::pollfd { fd: self.pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
                // SAFETY: poll on one descriptor we own, without waiting.
                if unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) } <= 0 {
                    return None;
                }
            }
            let mut buf = [0u8; 512];
            match self.pipe.read(&mut buf) {
                Ok(0) | Err(_) => self.closed = true,
                Ok(n) => self.pending.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }

    /// Waits until the container runs (its init's pid) or failed to start.
    ///
    /// # Errors
    /// The supervisor's error, or its death before it said anything.
    pub(crate) fn started(&mut self, dir: &Dir) -> Result<i32> {
        match self.next_line(true).as_deref().and_then(Notice::parse) {
            Some(Notice::Started(pid)) => Ok(pid),
            Some(Notice::Failed(msg)) => Err(Error::bad("the container did not start", msg)),
            _ => Err(Error::bad(
                "the container did not start",
                format!("its supervisor died; see {}", dir.supervisor_log().display()),
            )),
        }
    }

    /// Without waiting: `Some(Ok(code))` once the container exited, `Some(Err(()))` if the
    /// supervisor went away without saying so, `None` while it runs.
    pub(crate) fn poll_exit(&mut self) -> Option<std::result::Result<i32, ()>> {
        match self.next_line(false) {
            Some(line) => match Notice::parse(&line) {
                Some(Notice::Exited(code)) => Some(Ok(code)),
                _ => None,
            },
            None if self.closed => Some(Err(())),
            None => None,
        }
    }
}

/// Forks the detached supervisor of a container whose record and bundle are ready.
///
/// # Errors
/// If the pipe or the fork fails.
pub(crate) fn spawn(engine: &Engine, dir: &Dir, record: &Record, io: Io) -> Result<Handle> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
    // SAFETY: the child only runs our code, and the kthw binary has one thread here.
    match unsafe { fork() }.map_err(Error::sys("fork the supervisor"))? {
        ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            // SAFETY: as above; the grandchild is the supervisor, the child exits at once.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    let code = detached(engine, dir, record, io, wr);
                    // SAFETY: leaving without running the parent's atexit handlers or destructors.
                    unsafe { libc::_exit(code) }
                }
                _ => unsafe { libc::_exit(0) },
            }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            drop(io); // our copy of `-i`'s stdin belongs to the supervisor now
            let _ = waitpid(child, None);
            Ok(Handle { pipe: File::from(rd), pending: String::new(), closed: false })
        }
    }
}

/// The supervisor process, after the double fork: detach from everything, then supervise.
fn detached(engine: &Engine, dir: &Dir, record: &Record, io: Io, notify: OwnedFd) -> i32 {
    let keep: Vec<RawFd> = match &io {
        Io::Pipes { stdin: Some(fd) } => vec![notify.as_raw_fd(), fd.as_raw_fd()],
        _ => vec![notify.as_raw_fd()],
    };
    redirect_stdio(&dir.supervisor_log());
    close_other_fds(&keep);
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    supervise(engine, dir, record, io, Notifier(Some(File::from(notify))))
}

/// stdin and stdout to /dev/null, stderr (our tracing output) to `log`.
fn redirect_stdio(log: &std::path::Path) {
    let null = File::options().read(true).write(true).open("/dev/null");
    let err = File::options().create(true).append(true).open(log);
    // SAFETY: dup2 onto the standard descriptors.
    unsafe {
        if let Ok(null) = &null {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
        if let Ok(err) = &err {
            libc::dup2(err.as_raw_fd(), 2);
        }
    }
}

/// Closes every descriptor above stderr but `keep`: what the CLI had open (a test's
/// pipes, a lock) must not be held for the container's whole life.
fn close_other_fds(keep: &[RawFd]) {
    let fds: Vec<RawFd> = fs::read_dir("/proc/self/fd")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: closing a descriptor nothing of ours uses (the read_dir's is already closed).
        unsafe { libc::close(fd) };
    }
}

/// A running container, as [`start`] leaves it.
struct Running {
    pid: i32,
    copiers: Vec<JoinHandle<()>>,
    _raw: Option<pty::RawMode>,
}

/// The supervisor's life: start the container, wait for its init, record the exit,
/// tear down, tell the CLI. Returns the exit code.
pub(crate) fn supervise(engine: &Engine, dir: &Dir, record: &Record, io: Io, mut notify: Notifier) -> i32 {
    // SAFETY: ignoring SIGPIPE: a CLI that went away must not kill the supervisor.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if let Some(me) = SupervisorPid::of(std::process::id() as i32) {
        let _ = dir.write_supervisor(me);
    }
    let running = match start(engine, dir, record, io) {
        Ok(running) => running,
        Err(e) => {
            let msg = e.to_string();
            tracing::error!("{}: {msg}", record.name);
            engine.after_exit(dir, record);
            reap_children();
            let code = if msg.contains("not found") || msg.contains("No such file") { 127 } else { 126 };
            finish(engine, dir, record, code, Some(msg.clone()));
            notify.send(&Notice::Failed(msg));
            return code;
        }
    };
    notify.send(&Notice::Started(running.pid));
    let code = wait_for(running.pid);
    for copier in running.copiers {
        let _ = copier.join(); // the log is complete before the exit is recorded
    }
    drop(running._raw);
    engine.after_exit(dir, record);
    finish(engine, dir, record, code, None);
    notify.send(&Notice::Exited(code));
    code
}

/// Records the exit (last, so that `exit.json` means "all cleaned up"), then removes the
/// container if it was run with `--rm`.
fn finish(engine: &Engine, dir: &Dir, record: &Record, code: i32, error: Option<String>) {
    let exit = Exited { exit_code: code, finished_at: record::now(), error };
    if let Err(e) = record::write_json(&dir.exited(), &exit) {
        tracing::error!("cannot record the exit: {e}");
    }
    engine.events.emit(
        "die",
        &record.id,
        &[("name", &record.name), ("image", &record.image), ("exitCode", &code.to_string())],
    );
    if record.auto_remove {
        if let Err(e) = engine.destroy(dir, record) {
            tracing::error!("--rm: {e}");
        }
    }
}

/// Connects the stdio, then runs [`create_wire_start`], records the start, and starts
/// copying the output into the log.
fn start(engine: &Engine, dir: &Dir, record: &Record, io: Io) -> Result<Running> {
    let mut opts = CreateOptions::default();
    let mut outputs: Vec<(File, Stream)> = Vec::new();
    let mut console: Option<(UnixListener, std::path::PathBuf)> = None;
    let tty = match io {
        Io::Pipes { stdin } => {
            let stdin = match stdin {
                Some(fd) => fd,
                None => File::open("/dev/null").map_err(Error::io("open", "/dev/null"))?.into(),
            };
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            opts.stdio = [Some(stdin), Some(out_w), Some(err_w)];
            outputs.extend([(File::from(out_r), Stream::Stdout), (File::from(err_r), Stream::Stderr)]);
            None
        }
        Io::Tty { foreground, interactive } => {
            let path = engine.console_socket(&record.id);
            let _ = fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(Error::io("listen on", &path))?;
            opts.console_socket = Some(path.clone());
            console = Some((listener, path));
            Some((foreground, interactive))
        }
    };
    let sized = matches!(tty, Some((true, _)));
    let started = create_wire_start(engine, dir, record, opts, console.as_ref().map(|(l, _)| l), sized);
    if let Some((_, path)) = &console {
        let _ = fs::remove_file(path);
    }
    let (state, master) = started?;

    let started = Started {
        pid: state.pid,
        pid_start_time: crate::state::start_time(state.pid).unwrap_or(0),
        started_at: record::now(),
    };
    record::write_json(&dir.started(), &started)?;
    engine.events.emit("start", &record.id, &[("name", &record.name), ("image", &record.image)]);

    let writer = std::sync::Arc::new(log::Writer::open(&dir.log())?);
    let mut copiers = Vec::new();
    let mut raw = None;
    if let Some(master) = master {
        let foreground = matches!(tty, Some((true, _)));
        if let Some((true, true)) = tty {
            pty::forward_stdin(master.try_clone().map_err(Error::io("dup", "the pty master"))?);
        }
        if foreground {
            raw = pty::RawMode::enter();
        }
        outputs.push((master, Stream::Stdout));
        for (source, stream) in outputs {
            let writer = writer.clone();
            copiers.push(std::thread::spawn(move || {
                let mut stdout = std::io::stdout();
                let echo: Option<&mut dyn Write> = if foreground { Some(&mut stdout) } else { None };
                log::copy_to_log(source, stream, &writer, echo);
            }));
        }
    } else {
        for (source, stream) in outputs {
            let writer = writer.clone();
            copiers.push(std::thread::spawn(move || log::copy_to_log(source, stream, &writer, None)));
        }
    }
    Ok(Running { pid: state.pid, copiers, _raw: raw })
}

// ANCHOR: run_sequence
/// The order is the lesson. The bundle and the mounted rootfs are ready; then:
/// 1. `create`: the init exists, in its new namespaces and cgroup, and waits;
/// 2. (with `-t`) the pty master that the init made arrives on the console socket;
/// 3. the network is wired from the host side into the init's empty netns;
/// 4. `start`: only now does the program run, and it finds `eth0` up.
fn create_wire_start(
    engine: &Engine,
    dir: &Dir,
    record: &Record,
    opts: CreateOptions,
    console: Option<&UnixListener>,
    size_from_terminal: bool,
) -> Result<(crate::state::State, Option<File>)> {
    let state = engine.runtime.create(&record.id, &dir.bundle(), opts)?;
    let master = match console {
        Some(listener) => Some(File::from(pty::receive_console(listener, Duration::from_secs(10))?)),
        None => None,
    };
    if let Some(endpoint) = net::attach(&engine.paths, record, state.pid)? {
        record::write_json(&dir.network(), &endpoint)?;
    }
    if let (Some(master), true) = (&master, size_from_terminal) {
        pty::follow_window_size(master.as_raw_fd()); // before the shell asks for it
    }
    engine.runtime.start(&record.id)?;
    Ok((state, master))
}
// ANCHOR_END: run_sequence

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))
}

// ANCHOR: wait_loop
/// Waits for the init, our child, and turns its end into an exit code as a shell
/// does: the code it exited with, or 128 + the signal that killed it (137 = SIGKILL,
/// 143 = SIGTERM).
fn wait_for(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => {
                // Not our child: the runtime broke its promise. Wait for it to go away.
                tracing::error!("waitpid({pid}): {e}; the exit code is unknown");
                while crate::state::start_time(pid).is_some() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return 255;
            }
        }
    }
}
// ANCHOR_END: wait_loop

/// After a failed start: collect the init (killed by the runtime's delete) so it does
/// not stay a zombie.
fn reap_children() {
    for _ in 0..100 {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => continue,
            Err(_) => return, // ECHILD: no children left
        }
    }
}

/// A descriptor of ours as an `OwnedFd` (for `-i`: the CLI's stdin, duplicated).
///
/// # Errors
/// If `dup` fails.
pub(crate) fn dup_stdin() -> Result<OwnedFd> {
    // SAFETY: dup returns a new descriptor that we own.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(Error::io("duplicate", "stdin")(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is new and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Notices are one line each and read back as written.
    #[test]
    fn notices_round_trip() {
        for n in [Notice::Started(42), Notice::Exited(137), Notice::Failed("no sh in image".into())] {
            let line = n.line();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            assert_eq!(Notice::parse(line.trim_end()), Some(n));
        }
        assert_eq!(Notice::parse(Notice::Failed("a\nb".into()).line().trim_end()), Some(Notice::Failed("a b".into())));
    }
}
