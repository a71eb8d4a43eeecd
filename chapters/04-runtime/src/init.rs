//! What the container's first process does between `clone` and `execve`.
//!
//! runc's init is two programs in one binary: `nsexec` (C, run before the Go runtime
//! starts threads) joins or creates the namespaces and forks into the new pid
//! namespace, then `runc init` (Go, `libcontainer/init_linux.go` and
//! `standard_init_linux.go`) sets up the root filesystem, the host name, the process's
//! security, and finally blocks on `exec.fifo` until `runc start`. Ours is one function
//! run in the child of a single `clone`, which already created the new namespaces (and
//! put it into a joined pid namespace, if the spec names one: `create` does that, see
//! lifecycle.rs; the init is then not PID 1 there):
//!
//! ```text
//! clone(CLONE_NEW...)  ── the init, pid 1 in its new pid namespace ──────────────────
//!   setsid; stdio; join the cgroup (write 0 to cgroup.procs); setns(path) for joins
//!   unshare(cgroup ns); oom_score_adj; lo up
//!   mounts … pivot_root … readonly and masked paths        (mounts.rs)
//!   sysctl; hostname; terminal
//!   rlimits; close stray fds; bounding set, uid/gid, capset, ambient, no_new_privs
//!   chdir(cwd); find the program on PATH; umask
//!   report "ready" on the pipe  ──────────────▶  `create` writes state.json, returns
//!   open(exec.fifo, O_WRONLY)  … blocks until `start` opens it for reading …
//!   execve(process.args)
//! ```
//!
//! Every step that fails is reported on a close-on-exec pipe as (step, item, errno):
//! `create` turns it into an error that names the step, the mount or capability, and a
//! hint. After "ready", only `execve` can still fail; `run` keeps reading the pipe, and
//! end-of-file then means the program runs.
//!
//! After `clone` only system calls are made: the caller may have threads (the engine,
//! the test harness), and a lock one of them held at the `clone` stays locked in the
//! child. So [`Plan`] holds every string as a `CString`, built before.
//!
//! What runc does differently: besides the two-stage start, runc re-executes
//! `/proc/self/exe` (a copy of itself, against CVE-2019-5736), talks to the parent over
//! a netlink socket pair with several sync points (so the parent can run hooks and set
//! up user-namespace id maps), applies seccomp after `no_new_privs`, and closes stray
//! fds at the very end.

use std::ffi::CString;
use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::mounts;
use crate::security::{self, Failed, Security};

/// A step the init takes; on failure it is sent to `create` with an item number (which
/// mount, which capability) and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Ready = 0,
    Stdio,
    Setsid,
    Cgroup,
    SetNs,
    UnshareCgroup,
    OomScoreAdj,
    Loopback,
    Mount,
    Sysctl,
    Hostname,
    Domainname,
    Terminal,
    Security,
    Chdir,
    FindProgram,
    Fifo,
    Exec,
}

impl Step {
    const ALL: [Step; 18] = [
        Step::Ready,
        Step::Stdio,
        Step::Setsid,
        Step::Cgroup,
        Step::SetNs,
        Step::UnshareCgroup,
        Step::OomScoreAdj,
        Step::Loopback,
        Step::Mount,
        Step::Sysctl,
        Step::Hostname,
        Step::Domainname,
        Step::Terminal,
        Step::Security,
        Step::Chdir,
        Step::FindProgram,
        Step::Fifo,
        Step::Exec,
    ];

    /// The step of a number read from the pipe.
    pub fn from_u32(n: u32) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u32 == n)
    }
}

/// How the init gets its terminal (`process.terminal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// No terminal: the stdio as given.
    None,
    /// fd 0 is a pty slave (given by the caller): make it the controlling terminal.
    Stdio,
    /// Make a pty inside the container and send its master over this unix socket
    /// (runc's `--console-socket`); the slave becomes stdio and controlling terminal.
    Socket(RawFd),
}

/// Everything the init needs, prepared before `clone`.
#[derive(Debug)]
pub struct Plan {
    /// Descriptors of the parent's that the child closes first.
    pub close: Vec<RawFd>,
    pub err_wr: RawFd,
    pub stdio: [Option<RawFd>; 3],
    /// `cgroup.procs` of each hierarchy, open for writing.
    pub cgroup_procs: Vec<RawFd>,
    /// Namespaces to join: (open namespace file, CLONE_NEW* type); never pid, which
    /// `create` joins for us before the clone.
    pub joins: Vec<(RawFd, libc::c_int)>,
    pub unshare_cgroup: bool,
    pub oom_score_adj: Option<CString>,
    pub loopback: bool,
    pub mounts: mounts::Plan,
    pub sysctl: Vec<(CString, CString)>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub terminal: Terminal,
    pub console_size: Option<(u16, u16)>,
    pub security: Security,
    pub cwd: CString,
    /// Where the program may be: `args[0]` itself if it has a `/`, else each `PATH` folder.
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// `argv` and `envp` as the NULL-terminated pointer arrays `execve` takes (see [`Plan::pointers`]).
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub envp_ptrs: Vec<*const libc::c_char>,
    /// `exec.fifo`, opened with `O_PATH` before the pivot (its folder is out of reach after).
    pub fifo: RawFd,
    /// `/proc/self/fd/N` for `fifo`: reopening it for writing is what blocks until `start`.
    pub fifo_reopen: CString,
}

impl Plan {
    /// Builds the pointer arrays of `argv` and `envp`; call once they are final.
    pub fn pointers(&mut self) {
        let ptrs = |v: &[CString]| v.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
        self.argv_ptrs = ptrs(&self.argv);
        self.envp_ptrs = ptrs(&self.envp);
    }
}

// ---- Below: the init, after clone. System calls only. ----

/// Reports (step, item, errno) to `create`.
fn report(err_wr: RawFd, step: Step, item: u32, errno: i32) {
    let mut buf = [0u8; 12];
    buf[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&item.to_ne_bytes());
    buf[8..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write(2) from our stack buffer.
    unsafe { libc::write(err_wr, buf.as_ptr().cast(), buf.len()) };
}

fn fail(p: &Plan, step: Step, item: u32, errno: Errno) -> ! {
    report(p.err_wr, step, item, errno as i32);
    // SAFETY: _exit skips the exit handlers, which belong to the parent.
    unsafe { libc::_exit(125) }
}

fn encode(f: Failed) -> u32 {
    match f {
        Failed::Rlimit(i) => i as u32,
        Failed::BoundingSet(n) => 0x100 | n,
        Failed::KeepCaps => 0x200,
        Failed::SetGroups => 0x300,
        Failed::SetGid => 0x400,
        Failed::SetUid => 0x500,
        Failed::Capset => 0x600,
        Failed::Ambient(n) => 0x700 | n,
        Failed::NoNewPrivs => 0x800,
    }
}

/// The security step of an item number from the pipe.
pub fn decode(item: u32) -> Failed {
    let n = item & 0xff;
    match item >> 8 {
        0 => Failed::Rlimit(n as usize),
        1 => Failed::BoundingSet(n),
        2 => Failed::KeepCaps,
        3 => Failed::SetGroups,
        4 => Failed::SetGid,
        5 => Failed::SetUid,
        6 => Failed::Capset,
        7 => Failed::Ambient(n),
        _ => Failed::NoNewPrivs,
    }
}

// ANCHOR: init
/// The init, from `clone` to `execve`. Never returns.
pub fn run(p: &Plan) -> isize {
    // SAFETY: plain system calls on descriptors and C strings prepared before clone.
    unsafe {
        for fd in &p.close {
            libc::close(*fd);
        }
        // Our own session: no signals from the caller's terminal (Ctrl-C hits `kthw`,
        // which forwards it), and a controlling terminal of our own if we get one.
        if libc::setsid() < 0 {
            fail(p, Step::Setsid, 0, Errno::last());
        }
        // Device nodes and mount points get exactly the modes we ask for.
        libc::umask(0);
        for (target, fd) in p.stdio.iter().enumerate() {
            if let Some(fd) = fd
                && libc::dup2(*fd, target as i32) < 0
            {
                fail(p, Step::Stdio, target as u32, Errno::last());
            }
        }
        // Into the cgroup, when a cgroup namespace is asked for: it must be made from inside.
        // (Without one, `create` moves us from outside while we mount: see lifecycle.rs.)
        for (i, fd) in p.cgroup_procs.iter().enumerate() {
            if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(p, Step::Cgroup, i as u32, Errno::last());
            }
            libc::close(*fd);
        }
        for (i, (fd, nstype)) in p.joins.iter().enumerate() {
            if libc::setns(*fd, *nstype) != 0 {
                fail(p, Step::SetNs, i as u32, Errno::last());
            }
            libc::close(*fd);
        }
        // After joining the cgroup: the namespace's root is the cgroup we are in.
        if p.unshare_cgroup && libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
            fail(p, Step::UnshareCgroup, 0, Errno::last());
        }
        if let Some(value) = &p.oom_score_adj {
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let n = value.as_bytes().len();
            if fd < 0 || libc::write(fd, value.as_ptr().cast(), n) != n as isize {
                fail(p, Step::OomScoreAdj, 0, Errno::last());
            }
            libc::close(fd);
        }
        if p.loopback
            && let Err(errno) = kthw_namespaces::child::loopback_up()
        {
            fail(p, Step::Loopback, 0, errno);
        }
        for (i, op) in p.mounts.ops.iter().enumerate() {
            if let Err(errno) = mounts::run(op) {
                fail(p, Step::Mount, i as u32, errno);
            }
        }
        for (i, (path, value)) in p.sysctl.iter().enumerate() {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let n = value.as_bytes().len();
            if fd < 0 || libc::write(fd, value.as_ptr().cast(), n) != n as isize {
                fail(p, Step::Sysctl, i as u32, Errno::last());
            }
            libc::close(fd);
        }
        if let Some(name) = &p.hostname
            && libc::sethostname(name.as_ptr(), name.as_bytes().len()) != 0
        {
            fail(p, Step::Hostname, 0, Errno::last());
        }
        if let Some(name) = &p.domainname
            && libc::setdomainname(name.as_ptr(), name.as_bytes().len()) != 0
        {
            fail(p, Step::Domainname, 0, Errno::last());
        }
        terminal(p);
        if let Err((f, errno)) = security::set_rlimits(&p.security) {
            fail(p, Step::Security, encode(f), errno);
        }
        let mut keep = [p.err_wr, p.fifo];
        kthw_namespaces::child::close_others(&mut keep);
        if let Err((f, errno)) = security::become_user(&p.security) {
            fail(p, Step::Security, encode(f), errno);
        }
        // As the user, so that a folder the user may not enter is an error here.
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            fail(p, Step::Chdir, 0, Errno::last());
        }
        let program = find_program(p);
        libc::umask(p.security.umask as libc::mode_t);
        report(p.err_wr, Step::Ready, 0, 0);
        wait_for_start(p);
        exec(p, program)
    }
}
// ANCHOR_END: init

/// The first candidate that is an executable file, as `execvp` would pick it.
fn find_program(p: &Plan) -> &CString {
    let mut errno = Errno::ENOENT;
    for c in &p.candidates {
        // SAFETY: stat and access on a C string, into a zeroed struct on our stack.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(c.as_ptr(), &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
                continue;
            }
            if libc::access(c.as_ptr(), libc::X_OK) == 0 {
                return c;
            }
            errno = Errno::last();
        }
    }
    fail(p, Step::FindProgram, 0, errno)
}

// ANCHOR: wait_for_start
/// runc's `exec.fifo`: opening a FIFO for writing blocks until someone opens it for
/// reading. That someone is `start`. The byte we write tells it we are past the open.
fn wait_for_start(p: &Plan) {
    // SAFETY: open, write and close on our own descriptors.
    unsafe {
        let fd = loop {
            let fd = libc::open(p.fifo_reopen.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                break fd;
            }
            if Errno::last() != Errno::EINTR {
                fail(p, Step::Fifo, 0, Errno::last());
            }
        };
        if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            fail(p, Step::Fifo, 1, Errno::last());
        }
        libc::close(fd);
        libc::close(p.fifo);
    }
}
// ANCHOR_END: wait_for_start

fn exec(p: &Plan, program: &CString) -> ! {
    let (argv, envp) = (&p.argv_ptrs, &p.envp_ptrs);
    // SAFETY: signal, sigprocmask and execve on arrays that live on our stack.
    unsafe {
        // Rust ignores SIGPIPE and an ignored signal stays ignored across execve.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let errno = Errno::last();
        // `create` may be gone: write to a closed pipe without dying of SIGPIPE.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        report(p.err_wr, Step::Exec, 0, errno as i32);
        let msg = b"kthw runtime: the container's program could not be executed (execve failed)\n";
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(if errno == Errno::ENOENT { 127 } else { 126 })
    }
}

/// `process.terminal`: the controlling terminal.
fn terminal(p: &Plan) {
    let fail_t = |item, errno| fail(p, Step::Terminal, item, errno);
    // SAFETY: ioctls, open, sendmsg and dup2 on our descriptors; structs on our stack.
    unsafe {
        match p.terminal {
            Terminal::None => {}
            Terminal::Stdio => {
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    fail_t(5, Errno::last());
                }
            }
            Terminal::Socket(sock) => {
                // The container's own devpts, so the pty is /dev/pts/0 inside.
                let master = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
                if master < 0 {
                    fail_t(0, Errno::last());
                }
                let unlock: libc::c_int = 0;
                if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
                    fail_t(1, Errno::last());
                }
                let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
                if slave < 0 {
                    fail_t(2, Errno::last());
                }
                if let Some((rows, cols)) = p.console_size {
                    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
                    libc::ioctl(slave, libc::TIOCSWINSZ, &ws);
                }
                if send_fd(sock, master) < 0 {
                    fail_t(3, Errno::last());
                }
                libc::close(master);
                libc::close(sock);
                for target in 0..3 {
                    if libc::dup2(slave, target) < 0 {
                        fail_t(4, Errno::last());
                    }
                }
                if slave > 2 {
                    libc::close(slave);
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    fail_t(5, Errno::last());
                }
            }
        }
    }
}

// ANCHOR: send_fd
/// Sends `fd` over the unix socket `sock` (`SCM_RIGHTS`): the receiver gets its own
/// descriptor for the same open file. The payload is the pty's name, as runc sends it.
unsafe fn send_fd(sock: RawFd, fd: RawFd) -> isize {
    let name = b"/dev/ptmx";
    let mut iov = libc::iovec { iov_base: name.as_ptr() as *mut _, iov_len: name.len() };
    // Room for one cmsghdr and one int, aligned as the kernel wants.
    let mut space = [0u64; 8];
    // SAFETY: the caller is the init; all pointers are to our stack.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, 0)
    }
}
// ANCHOR_END: send_fd

#[cfg(test)]
mod tests {
    use super::*;

    // Every step and every security failure survives the trip through the pipe's numbers.
    #[test]
    fn reports_round_trip() {
        for step in Step::ALL {
            assert_eq!(Step::from_u32(step as u32), Some(step));
        }
        for f in [Failed::Rlimit(3), Failed::BoundingSet(21), Failed::SetUid, Failed::Ambient(5), Failed::NoNewPrivs] {
            assert_eq!(decode(encode(f)), f);
        }
    }
}
