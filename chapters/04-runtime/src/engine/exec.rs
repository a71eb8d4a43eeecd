//! `kthw exec NAME CMD...`: a new process in a running container, by `setns(2)`.
//!
//! A container is its processes' namespaces, cgroup and root; a process that joins all
//! of them is in the container, whatever its parent. So `exec` opens everything of the
//! container's init first (`/proc/PID/ns/*`, its cgroup's `cgroup.procs`, `/proc/PID/root`),
//! then forks:
//!
//! ```text
//!  kthw exec ──fork──▶ A: join the cgroup, setns ipc, uts, net, pid, mnt; chroot
//!      │                 └──fork──▶ B: setsid, the container's tty, env, cwd, caps ─▶ execve CMD
//!      │                     A waits for B and exits with its code
//!      └── copies the pty, waits for A: the exit code of CMD
//! ```
//!
//! B is needed because a pid namespace is entered only by the children of the process
//! that joined it. The mount namespace is joined last: after it, `/proc` shows the
//! container's processes, so every file we need was opened before. The capabilities
//! are cut to Docker's default set through the bounding set (root's capabilities after
//! `execve` are the bounding set), and `no_new_privs` is set, as the container's init had.
//!
//! What runc does differently: `runc exec` reads the container's full config from its
//! state, so it applies exactly the init's capabilities, seccomp filter, AppArmor label,
//! rlimits and user; it also uses a small C program (`nsexec`) that runs before the Go
//! runtime starts its threads, because a multi-threaded process cannot join a mount
//! namespace. Our exec has the same problem and solves it the same way: by forking.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use super::record::{Dir, Record, Status};
use super::{Engine, config, pty};
use crate::{Error, Result};

/// What `kthw exec` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub tty: bool,
    pub interactive: bool,
    /// `-e NAME=VALUE`, on top of the container's environment.
    pub env: Vec<String>,
    /// `-w DIR` (default: the container's working directory).
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]` (default: the container's user).
    pub user: Option<String>,
}

/// The namespaces we join, in order: mount last (see the module docs).
const NAMESPACES: [(&str, libc::c_int); 6] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

/// Docker's default capabilities as numbers (`linux/capability.h`), for the bounding set.
fn default_caps() -> Vec<libc::c_int> {
    let numbers = [
        ("CAP_CHOWN", 0),
        ("CAP_DAC_OVERRIDE", 1),
        ("CAP_FOWNER", 3),
        ("CAP_FSETID", 4),
        ("CAP_KILL", 5),
        ("CAP_SETGID", 6),
        ("CAP_SETUID", 7),
        ("CAP_SETPCAP", 8),
        ("CAP_NET_BIND_SERVICE", 10),
        ("CAP_NET_RAW", 13),
        ("CAP_SYS_CHROOT", 18),
        ("CAP_MKNOD", 27),
        ("CAP_AUDIT_WRITE", 29),
        ("CAP_SETFCAP", 31),
    ];
    crate::spec::DOCKER_DEFAULT_CAPS
        .iter()
        .filter_map(|name| numbers.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
        .collect()
}

/// The `cgroup.procs` files of the cgroups `pid` is in, one per hierarchy, opened for
/// writing (writing `0` moves the writer in).
fn cgroup_procs(pid: i32) -> Vec<File> {
    let Ok(layout) = kthw_lab::host::CgroupLayout::detect() else { return Vec::new() };
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut files = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let mount = if controllers.is_empty() {
            layout.mounts.iter().find(|m| m.version == 2)
        } else {
            let want: Vec<&str> = controllers.split(',').collect();
            layout.mounts.iter().find(|m| {
                m.version == 1
                    && m.controllers.len() == want.len()
                    && want.iter().all(|c| m.controllers.iter().any(|mc| mc == c))
            })
        };
        if let Some(mount) = mount {
            let procs = mount.path.join(path.trim_start_matches('/')).join("cgroup.procs");
            if let Ok(f) = OpenOptions::new().write(true).open(&procs) {
                files.push(f);
            }
        }
    }
    files
}

/// Finds `program` as the container sees it: a path as it is, a bare name in the
/// container's `PATH` (looked up through `/proc/PID/root`).
fn find_program(root: &Path, program: &str, env: &[String]) -> Result<String> {
    if program.contains('/') {
        return Ok(program.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let inside = format!("{}/{program}", dir.trim_end_matches('/'));
        let host = root.join(inside.trim_start_matches('/'));
        if host.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(inside);
        }
    }
    Err(Error::bad(
        format!("exec {program:?}"),
        "executable file not found in the container's $PATH; give its full path",
    ))
}

fn cstring(s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref().to_vec()).map_err(|_| Error::bad("an argument", "it contains a NUL byte"))
}

/// Runs `opts.command` in the running container; returns its exit code.
///
/// # Errors
/// A container that does not run, a command that is not there, or a failed step.
pub fn exec(engine: &Engine, dir: &Dir, record: &Record, opts: &ExecOptions) -> Result<i32> {
    let Status::Running { pid, .. } = dir.status() else {
        return Err(Error::WrongState {
            id: record.name.clone(),
            status: dir.status().name().into(),
            why: "exec needs a running container; start a new one with `kthw run`".into(),
        });
    };
    let _ = engine;
    if opts.command.is_empty() {
        return Err(Error::bad("exec", "no command given, e.g. `kthw exec web sh`"));
    }
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut env = config::merge_env(&record.env, &opts.env);
    if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let program = find_program(&root, &opts.command[0], &env)?;
    let (uid, gid) = config::resolve_user(&root, opts.user.as_deref().unwrap_or(&record.user))?;
    let cwd = opts.workdir.clone().unwrap_or_else(|| record.working_dir.clone());

    // Everything is opened and allocated before the fork: after it, only system calls.
    let ours =
        |ns: &str| std::fs::metadata(format!("/proc/self/ns/{ns}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let mut namespaces: Vec<(File, libc::c_int)> = Vec::new();
    for (ns, flag) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{ns}");
        let theirs = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        if theirs.is_ok() && theirs.as_ref().ok() != ours(ns).as_ref().ok() {
            namespaces.push((File::open(&path).map_err(Error::io("open", &path))?, flag));
        }
    }
    let root_dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&root)
        .map_err(Error::io("open", &root))?;
    let cgroups = cgroup_procs(pid);
    let terminal = if opts.tty { Some(pty::open_in(pid)?) } else { None };
    let null = File::open("/dev/null").map_err(Error::io("open", "/dev/null"))?;
    let stdio: [RawFd; 3] = match &terminal {
        Some((_, slave)) => [slave.as_raw_fd(); 3],
        None => [if opts.interactive { 0 } else { null.as_raw_fd() }, 1, 2],
    };
    let argv: Vec<CString> = std::iter::once(Ok(cstring(program.as_bytes())?))
        .chain(opts.command[1..].iter().map(cstring))
        .collect::<Result<_>>()?;
    let envp: Vec<CString> = env.iter().map(cstring).collect::<Result<_>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let cwd = cstring(Path::new(&cwd).as_os_str().as_bytes())?;
    let caps = default_caps();
    let (err_rd, err_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;

    let joined = Joined {
        cgroups: cgroups.iter().map(AsRawFd::as_raw_fd).collect(),
        namespaces: namespaces.iter().map(|(f, flag)| (f.as_raw_fd(), *flag)).collect(),
        root: root_dir.as_raw_fd(),
        stdio,
        tty: opts.tty,
        uid,
        gid,
        cwd: &cwd,
        program: argv[0].as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        caps: &caps,
        err: err_wr.as_raw_fd(),
    };
    // SAFETY: the child makes only system calls on what was prepared above.
    let child = match unsafe { fork() }.map_err(Error::sys("fork"))? {
        ForkResult::Child => joined.run(),
        ForkResult::Parent { child } => child,
    };
    drop(err_wr);
    drop(namespaces);
    let mut failure = Vec::new();
    let _ = File::from(err_rd).read_to_end(&mut failure);
    if failure.len() >= 4 {
        let errno = i32::from_ne_bytes([failure[0], failure[1], failure[2], failure[3]]);
        let step = String::from_utf8_lossy(&failure[4..]).into_owned();
        let _ = waitpid(child, None);
        return Err(Error::sys(format!("exec in {}: {step}", record.name))(nix::Error::from_raw(errno)));
    }
    if let Some((master, slave)) = terminal {
        drop(slave);
        relay(master, opts.interactive);
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid")(e)),
        }
    }
}

/// Copies the exec's pty to and from our terminal until the process ends.
fn relay(master: File, interactive: bool) {
    let _raw = pty::RawMode::enter();
    pty::follow_window_size(master.as_raw_fd());
    if interactive {
        if let Ok(m) = master.try_clone() {
            pty::forward_stdin(m);
        }
    }
    let mut master = master;
    let mut out = std::io::stdout();
    let mut buf = [0u8; 8192];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}

/// What the forked child needs, all prepared before the fork.
struct Joined<'a> {
    cgroups: Vec<RawFd>,
    namespaces: Vec<(RawFd, libc::c_int)>,
    root: RawFd,
    stdio: [RawFd; 3],
    tty: bool,
    uid: u32,
    gid: u32,
    cwd: &'a CString,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    caps: &'a [libc::c_int],
    err: RawFd,
}

impl Joined<'_> {
    /// Reports a failed step to the parent (errno, then the step's name) and exits.
    fn fail(&self, step: &str) -> ! {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let mut msg = errno.to_ne_bytes().to_vec();
        msg.extend_from_slice(step.as_bytes());
        // SAFETY: write and _exit are async-signal-safe.
        unsafe {
            libc::write(self.err, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    }

    // ANCHOR: exec_join
    /// Process A: into the cgroup, the namespaces and the root; then fork B, which
    /// becomes the command, and wait for it.
    fn run(&self) -> ! {
        // SAFETY (whole function): system calls on descriptors and memory prepared before fork.
        unsafe {
            for fd in &self.cgroups {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    self.fail("join the container's cgroup");
                }
            }
            for (fd, flag) in &self.namespaces {
                if libc::setns(*fd, *flag) != 0 {
                    self.fail("setns");
                }
            }
            // Joining the mount namespace already moved our root there; the chroot to the
            // init's root makes it explicit (and right even if the init chrooted further).
            if libc::fchdir(self.root) != 0 || libc::chroot(c".".as_ptr()) != 0 {
                self.fail("chroot to the container's root");
            }
            match libc::fork() {
                -1 => self.fail("fork into the pid namespace"),
                0 => self.exec(),
                child => {
                    libc::close(self.err);
                    let mut status = 0;
                    while libc::waitpid(child, &mut status, 0) == -1 {}
                    let code =
                        if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
                    libc::_exit(code)
                }
            }
        }
    }
    // ANCHOR_END: exec_join

    /// Process B, inside the container's pid namespace: its own session and terminal,
    /// the user, the capabilities, the working directory, then the command.
    unsafe fn exec(&self) -> ! {
        unsafe {
            libc::setsid();
            for (i, fd) in self.stdio.iter().enumerate() {
                if libc::dup2(*fd, i as libc::c_int) < 0 {
                    self.fail("connect stdio");
                }
            }
            if self.tty && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                self.fail("make the pty the controlling terminal");
            }
            for cap in 0..=libc::c_int::from(63u8) {
                if !self.caps.contains(&cap) && libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                    break; // past the last capability this kernel knows
                }
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                self.fail("set no_new_privs");
            }
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(self.gid) != 0 || libc::setuid(self.uid) != 0 {
                self.fail("become the container's user");
            }
            if libc::chdir(self.cwd.as_ptr()) != 0 && libc::chdir(c"/".as_ptr()) != 0 {
                self.fail("chdir");
            }
            libc::execve(self.program, self.argv, self.envp);
            self.fail("execve")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The bounding set keeps exactly Docker's 14 capabilities.
    #[test]
    fn docker_caps_have_numbers() {
        let caps = default_caps();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&0) && caps.contains(&31) && !caps.contains(&21), "{caps:?}");
    }

    // A bare program name is looked up in the container's PATH, as the container sees it.
    #[test]
    fn programs_are_found_in_the_container_path() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        let sh = tmp.path().join("bin/sh");
        std::fs::write(&sh, "").unwrap();
        std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        assert_eq!(find_program(tmp.path(), "sh", &env).unwrap(), "/bin/sh");
        assert_eq!(find_program(tmp.path(), "/x/y", &env).unwrap(), "/x/y");
        assert!(find_program(tmp.path(), "nosuch", &env).unwrap_err().to_string().contains("$PATH"));
    }
}
