//! The code that runs in a child between `clone`/`fork` and `exec`, and how it tells the
//! parent what went wrong.
//!
//! The rule here: **after `fork`, only system calls**. kthw (and every test harness) has
//! several threads; `fork` copies only the calling one, so a lock another thread held
//! (inside `malloc`, say) stays locked forever in the child. Everything the child needs
//! — C strings, pointer arrays, the host name — is therefore prepared *before* the fork
//! ([`Prepared`]), and the child only calls the kernel. Where a glibc wrapper does more
//! than the system call (`fork`, `setresuid`), we call the system call itself: see
//! [`raw_fork`] and [`become_root`].
//!
//! A failing child cannot return an error: it writes a [`Step`] and an errno (8 bytes)
//! to a close-on-exec pipe and exits. The parent reads that pipe: end-of-file means
//! `execve` succeeded (the kernel closed the pipe for us); 8 bytes name the failure.
//!
//! What runc does differently: its C `nsexec` runs before the Go runtime starts threads,
//! and parent and child talk over a netlink-formatted socket pair with several sync
//! messages, because it has more steps (cgroups, seccomp, AppArmor, pivot_root).

use std::ffi::{CString, c_char};
use std::fmt;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use crate::{Error, Result};

// ANCHOR: step
/// A step the child takes before `exec`; on failure it is sent to the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Stdio = 1,
    SetGid,
    SetGroups,
    SetUid,
    ParentDeathSignal,
    MountPrivate,
    MountProc,
    SetHostname,
    LoopbackUp,
    SetNs,
    Fork,
    Exec,
}
// ANCHOR_END: step

impl Step {
    const ALL: [Step; 12] = [
        Step::Stdio,
        Step::SetGid,
        Step::SetGroups,
        Step::SetUid,
        Step::ParentDeathSignal,
        Step::MountPrivate,
        Step::MountProc,
        Step::SetHostname,
        Step::LoopbackUp,
        Step::SetNs,
        Step::Fork,
        Step::Exec,
    ];

    fn from_u32(n: u32) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u32 == n)
    }

    /// Advice for the usual causes of a failure at this step.
    pub fn hint(self, errno: Errno) -> &'static str {
        match (self, errno) {
            (Step::Exec, Errno::EACCES) => "; is the file executable (chmod +x)?",
            (Step::Exec, Errno::ENOENT) => "; the file or its interpreter (#! line) does not exist",
            (Step::Exec, Errno::ENOEXEC) => "; it is not a program: no ELF header and no #! line",
            (Step::MountProc, Errno::EPERM) => {
                "; mounting /proc in a user namespace needs a fully visible /proc on the host \
                 (no mounts over /proc/sys etc., as inside some containers)"
            }
            (Step::SetNs, Errno::EPERM) => {
                "; are you root, and is the target not in a user namespace you cannot enter?"
            }
            _ => "",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Stdio => "set up stdin/stdout/stderr (dup2)",
            Step::SetGid => "become gid 0 in its user namespace (setresgid)",
            Step::SetGroups => "drop supplementary groups (setgroups)",
            Step::SetUid => "become uid 0 in its user namespace (setresuid)",
            Step::ParentDeathSignal => "ask to be killed when kthw dies (prctl PR_SET_PDEATHSIG)",
            Step::MountPrivate => "make its mounts private (mount --make-rprivate /)",
            Step::MountProc => "mount a new /proc",
            Step::SetHostname => "set the host name (sethostname)",
            Step::LoopbackUp => "bring up the loopback interface lo",
            Step::SetNs => "join a namespace (setns)",
            Step::Fork => "fork the command",
            Step::Exec => "run the command (execve)",
        })
    }
}

/// The command, as `execve` wants it, built before the fork.
pub struct Prepared {
    path: CString,
    // The pointer arrays point into these; they are kept alive with them.
    _argv: Vec<CString>,
    _env: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    env_ptrs: Vec<*const c_char>,
}

impl Prepared {
    /// Resolves `command[0]` on `PATH` below `root` (`/` for a new process, the target's
    /// `/proc/PID/root` for `exec`) and builds the C arrays, with our environment.
    ///
    /// # Errors
    /// [`Error::CommandNotFound`], or [`Error::InvalidSpec`] for an argument with a NUL.
    pub fn new(command: &[String], root: &std::path::Path) -> Result<Prepared> {
        let program = command.first().ok_or_else(|| Error::InvalidSpec("no command given".into()))?;
        let path = resolve(program, root)?;
        let nul = |s: &str| Error::InvalidSpec(format!("{s:?} contains a NUL byte"));
        let argv: Vec<CString> =
            command.iter().map(|a| CString::new(a.as_bytes()).map_err(|_| nul(a))).collect::<Result<_>>()?;
        let env: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect();
        let argv_ptrs = argv.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
        let env_ptrs = env.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
        let path = CString::new(path.into_bytes()).map_err(|_| nul(program))?;
        Ok(Prepared { path, _argv: argv, _env: env, argv_ptrs, env_ptrs })
    }
}

/// Finds `program` as the shell would: a path if it has a `/`, else the first executable
/// file of that name in `PATH`. Returns the path as seen from inside `root`.
fn resolve(program: &str, root: &std::path::Path) -> Result<String> {
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    if program.contains('/') {
        return Ok(program.to_string());
    }
    let path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = format!("{}/{program}", dir.trim_end_matches('/'));
        if is_executable(&inside(&candidate)) {
            return Ok(candidate);
        }
    }
    Err(Error::CommandNotFound { command: program.to_string(), path })
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// ---- Below: called in the child after fork. System calls only. ----

/// Tells the parent which step failed and why, then exits. Never returns.
pub fn fail(err_wr: RawFd, step: Step, errno: Errno) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..].copy_from_slice(&(errno as i32).to_ne_bytes());
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `buf` lives on our stack.
    unsafe {
        libc::write(err_wr, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// `execve` the prepared command with default signal handling; on failure, [`fail`].
pub fn exec(cmd: &Prepared, err_wr: RawFd) -> ! {
    // SAFETY: plain system calls on valid, NUL-terminated arrays prepared before fork.
    unsafe {
        // Rust ignores SIGPIPE at start-up, and an ignored signal stays ignored across
        // execve; `yes | head` inside would then never stop. Blocked signals stay
        // blocked too, so the mask is emptied.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(cmd.path.as_ptr(), cmd.argv_ptrs.as_ptr(), cmd.env_ptrs.as_ptr());
    }
    fail(err_wr, Step::Exec, Errno::last())
}

/// `fork` as a bare system call: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// glibc's `fork()` first takes malloc's and stdio's locks (so its child gets them in a
/// sane state). Our init is made by `clone`, which skips that: if another thread of kthw
/// held a malloc lock at that moment, the copy in our child stays locked, and glibc's
/// `fork()` there would wait for it forever. The system call takes no lock.
pub fn raw_fork() -> Result<Option<nix::unistd::Pid>, Errno> {
    // SAFETY: clone(2) with only SIGCHLD and no new stack is fork(2); both processes
    // continue here, each on its own copy of this stack.
    let rc = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    match rc {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(nix::unistd::Pid::from_raw(pid as i32))),
    }
}

/// Blocks until the parent writes one byte ("go") on `go_rd`; exits quietly if the
/// parent closes the pipe instead (it died or gave up), then closes it.
pub fn wait_for_go(go_rd: RawFd) {
    let mut go = [0u8; 1];
    // SAFETY: read(2) into our stack buffer; close and _exit on our own descriptors.
    unsafe {
        while libc::read(go_rd, go.as_mut_ptr().cast(), 1) != 1 {
            if Errno::last() != Errno::EINTR {
                libc::_exit(1);
            }
        }
        libc::close(go_rd);
    }
}

/// Becomes uid and gid 0 of the user namespace we are in, without the host's
/// supplementary groups (which would otherwise stay, as "nobody", and still grant
/// access to the host's group-owned files).
///
/// These are bare system calls on purpose. glibc's `setresuid()` in a process it
/// believes has threads changes the ids of *every* thread (POSIX wants that): it signals
/// each one and waits for them on a futex. A child made by `clone` inherits glibc's list
/// of the parent's threads, but not the threads, so it would wait forever.
pub fn become_root(err_wr: RawFd) {
    // SAFETY: plain system calls with constant arguments.
    unsafe {
        if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0 {
            fail(err_wr, Step::SetGid, Errno::last());
        }
        if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0 {
            fail(err_wr, Step::SetGroups, Errno::last());
        }
        if libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0 {
            fail(err_wr, Step::SetUid, Errno::last());
        }
    }
}

/// Points fds 0, 1 and 2 at the given descriptors (where one is given).
pub fn redirect_stdio(stdio: [Option<RawFd>; 3], err_wr: RawFd) {
    for (target, fd) in stdio.into_iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 on descriptors we own.
            if unsafe { libc::dup2(fd, target as i32) } < 0 {
                fail(err_wr, Step::Stdio, Errno::last());
            }
        }
    }
}

/// Closes every descriptor from 3 up except those in `keep`, which it sorts.
///
/// Other threads of the parent may have had pipes open when we forked; a long-lived
/// child (our init) holding their write ends would keep their readers waiting forever.
pub fn close_others(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut first: u32 = 3;
    for &fd in keep.iter() {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd >= first {
            if fd > first {
                close_range(first, fd - 1);
            }
            first = fd + 1;
        }
    }
    close_range(first, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range(2) (Linux 5.9) only closes descriptors.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc < 0 {
        // Older kernels: close one by one, up to a sane limit.
        for fd in first..=last.min(first.saturating_add(4096)) {
            // SAFETY: closing a descriptor that may not exist is harmless.
            unsafe { libc::close(fd as i32) };
        }
    }
}

// ANCHOR: loopback_up
/// Sets `IFF_UP` on `lo`: a new network namespace has only `lo`, and it is down.
/// This is `ip link set lo up`, done with the old `SIOCSIFFLAGS` ioctl.
pub fn loopback_up() -> Result<(), Errno> {
    // SAFETY: a socket, two ioctls on a zeroed `ifreq` on our stack, and close.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(Errno::last());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req);
        }
        let errno = Errno::last();
        libc::close(sock);
        if rc < 0 { Err(errno) } else { Ok(()) }
    }
}
// ANCHOR_END: loopback_up

// ---- Back in the parent. ----

/// Reads the child's report: `Ok(())` on end-of-file (the command was exec'd), the
/// failed step as an [`Error::Setup`] otherwise.
///
/// # Errors
/// The child's failure, or a failed read.
pub fn read_report(err_rd: &std::os::fd::OwnedFd) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled part of our buffer.
        let n = unsafe { libc::read(err_rd.as_raw_fd(), buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if Errno::last() == Errno::EINTR => continue,
            _ => return Err(Error::Sys { call: "read from the child", errno: Errno::last() }),
        }
    }
    if got == 0 {
        return Ok(());
    }
    let step = u32::from_ne_bytes(buf[..4].try_into().unwrap_or_default());
    let errno = Errno::from_raw(i32::from_ne_bytes(buf[4..].try_into().unwrap_or_default()));
    let step = Step::from_u32(step).ok_or_else(|| Error::Parse {
        what: "the child's report".into(),
        detail: format!("unknown step {step} ({got} bytes)"),
    })?;
    Err(Error::Setup { step, errno, hint: step.hint(errno) })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Commands are found on PATH; a missing one is a clear error naming the PATH searched.
    #[test]
    fn commands_resolve_on_path() {
        let root = std::path::Path::new("/");
        assert!(Prepared::new(&["sh".into()], root).is_ok());
        let err = Prepared::new(&["no-such-command-kthw".into()], root).err().unwrap();
        assert!(err.to_string().contains("command not found: \"no-such-command-kthw\""), "{err}");
    }

    // Every step survives the trip through the pipe's number.
    #[test]
    fn steps_round_trip() {
        for step in Step::ALL {
            assert_eq!(Step::from_u32(step as u32), Some(step));
        }
        assert_eq!(Step::from_u32(0), None);
    }
}
