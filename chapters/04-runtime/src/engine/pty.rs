//! Terminals for `kthw run -it` and `kthw exec -it`.
//!
//! A pseudo-terminal is a pair: the **slave** (`/dev/pts/N`) looks like a terminal to the
//! program that has it as stdin, stdout and stderr (so `sh` prints a prompt, and Ctrl-C
//! becomes SIGINT), and the **master** is what a terminal emulator holds: what it writes
//! there the program reads as typed input, what the program prints is read from it.
//!
//! ```text
//!  your terminal ── kthw (raw mode) ──▶ pty master ═══ pty slave ──▶ sh in the container
//!                 ◀── copies both ways ──           (the container's /dev/pts/0)
//! ```
//!
//! The pty must come from the **container's** devpts (mounted with `newinstance`), or
//! `tty` inside prints "not a tty": the slave's device would not exist in the container's
//! `/dev/pts`. For `run`, the runtime's init opens `/dev/ptmx` after mounting devpts and
//! sends the master back over a unix socket (runc's `--console-socket`, received by
//! [`receive_console`]); for `exec`, the container is running, so we open its ptmx from
//! the host through `/proc/PID/root/dev/ptmx` ([`open_in`]).
//!
//! While we copy, our own terminal is in **raw mode**: no echo, no line editing, no
//! signals from Ctrl-C; each key goes to the container's terminal, which does all that
//! itself. The window size is copied at the start and on every SIGWINCH.
//!
//! What the real tools do differently: containerd-shim receives the console master the
//! same way and hands it to dockerd, which relays it to the docker CLI over the API
//! socket (`docker attach`); `docker run -it`'s own terminal handling is the same raw mode.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::termios::{self, SetArg, Termios};

use crate::{Error, Result};

/// Puts stdin's terminal in raw mode; the old mode comes back when this is dropped
/// (also when the code between returns early with an error).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// `None` when stdin is not a terminal (nothing to do).
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of terminal `from` to `to` (a pty master).
pub fn copy_size(from: RawFd, to: RawFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ and TIOCSWINSZ read and write one winsize struct.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The master whose size follows our terminal's; -1 when none.
static WINCH_MASTER: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    // Only ioctl here, which is safe in a signal handler.
    let master = WINCH_MASTER.load(Ordering::Relaxed);
    if master >= 0 {
        copy_size(libc::STDIN_FILENO, master);
    }
}

/// Sizes `master` like our terminal now, and again on every SIGWINCH (the user resized
/// the window).
pub fn follow_window_size(master: RawFd) {
    copy_size(libc::STDIN_FILENO, master);
    WINCH_MASTER.store(master, Ordering::Relaxed);
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(SigHandler::Handler(on_winch), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only calls ioctl.
    let _ = unsafe { sigaction(Signal::SIGWINCH, &action) };
}

/// Waits (up to `timeout`) for the runtime's init to connect to `listener` and send the
/// pty master it opened inside the container, as one `SCM_RIGHTS` message.
///
/// # Errors
/// Nobody connected in time, or the message had no descriptor.
pub fn receive_console(listener: &UnixListener, timeout: Duration) -> Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    listener.set_nonblocking(true).map_err(Error::io("configure", "the console socket"))?;
    let deadline = Instant::now() + timeout;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io("accept on", "the console socket")(e)),
        }
    };
    stream.set_nonblocking(false).map_err(Error::io("configure", "the console socket"))?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(Error::sys("recvmsg on the console socket"))?;
    for cmsg in msg.cmsgs().map_err(Error::sys("read the console message"))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::bad("the console socket", "the runtime sent a message without a terminal descriptor"))
}

/// Opens a new pty of the container whose init is `pid`, from the host: its devpts
/// through `/proc/PID/root/dev/ptmx`. Returns the master and the slave.
///
/// # Errors
/// The container has no devpts with a ptmx, or the pty cannot be unlocked.
pub fn open_in(pid: i32) -> Result<(File, File)> {
    let ptmx = format!("/proc/{pid}/root/dev/ptmx");
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&ptmx)
        .map_err(Error::io("open", &ptmx))?;
    let mut unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCSPTLCK reads an int, TIOCGPTN writes one.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) != 0
            || libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) != 0
        {
            return Err(Error::io("unlock a pty of", &ptmx)(std::io::Error::last_os_error()));
        }
    }
    let slave_path = format!("/proc/{pid}/root/dev/pts/{n}");
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&slave_path)
        .map_err(Error::io("open", &slave_path))?;
    Ok((master, slave))
}

/// Copies our stdin to `master` until stdin ends, in a thread of its own (it blocks in
/// `read` on the terminal and is left there when the container exits).
pub fn forward_stdin(master: File) {
    std::thread::spawn(move || {
        let mut master = master;
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut master);
    });
}
