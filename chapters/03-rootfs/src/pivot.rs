//! Entering a root filesystem: new namespaces, `pivot_root`, and a fresh `/proc`, a
//! minimal `/dev` and a read-only `/sys`.
//!
//! The sequence is runc's (`libcontainer/rootfs_linux.go`), cut to its core:
//!
//! ```text
//! kthw ──fork──▶ child: unshare(mount, pid, uts, ipc)
//!                  └──fork──▶ pid 1 of the new pid namespace:
//!                       make every mount private (nothing leaks to the host)
//!                       mount overlay at ROOTFS          (layers + init + upper)
//!                       bind volumes, mount proc, sysfs (ro), tmpfs /dev + nodes
//!                       sethostname
//!                       chdir ROOTFS; pivot_root(".", "."); umount2(".", DETACH)
//!                       exec the command
//! ```
//!
//! `pivot_root(".", ".")` stacks the old root *under* the new one at the same place, and
//! the lazy unmount then drops it: afterwards no path leads back to the host's files.
//! `chroot` only changes how `/` is resolved for one process; the host's root is still
//! mounted and reachable, and a root process in a chroot walks out with a second
//! `chroot` and `..` ([`escape_demo`] shows it).
//!
//! What runc does differently: it also sets up user namespaces and id mappings, masks
//! and read-only-remounts parts of `/proc` (`/proc/kcore`, `/proc/sys`, ...), bind-mounts
//! the host's device nodes when it cannot create them, re-execs itself so the setup runs
//! in a fresh process image, drops capabilities, and applies seccomp and AppArmor — the
//! subject of chapter 4.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, chdir, fork, pivot_root, sethostname};

use crate::{Error, Result};

/// What to run in the rootfs, and how.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where the overlay is mounted (inside the new mount namespace only).
    pub rootfs: PathBuf,
    /// The overlay's mount options (see [`crate::rootfs::overlay_options`]).
    pub overlay_options: String,
    pub hostname: String,
    /// Host directory → path in the container, bind-mounted.
    pub volumes: Vec<(PathBuf, PathBuf)>,
    /// The command and its arguments.
    pub command: Vec<OsString>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// The working directory inside the container.
    pub cwd: String,
}

/// Runs `spec.command` in its rootfs in new mount, pid, uts and ipc namespaces and
/// returns its exit status (128+N when killed by signal N; 125 when the setup failed,
/// 127 when the command does not exist, as `docker run` does).
///
/// # Errors
/// If the processes cannot be forked or waited for.
pub fn run(spec: &Spec) -> Result<i32> {
    // Everything the child needs is prepared here, before `fork`: after it, the child
    // of a multi-threaded process should only make system calls.
    let prepared = Prepared::new(spec)?;
    // SAFETY: the child runs `in_namespaces`, which only makes system calls and exits.
    match unsafe { fork() }.map_err(Error::sys("fork"))? {
        ForkResult::Child => {
            let code = in_namespaces(&prepared);
            // SAFETY: `_exit` ends the child without running the parent's atexit code.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => wait_status(child),
    }
}

fn wait_status(pid: nix::unistd::Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid")(e)),
        }
    }
}

/// The spec as C strings, ready for `exec`.
struct Prepared {
    spec: Spec,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
}

impl Prepared {
    fn new(spec: &Spec) -> Result<Prepared> {
        let c = |b: &[u8]| CString::new(b).map_err(|_| Error::bad("command", "an argument contains a NUL byte"));
        if spec.command.is_empty() {
            return Err(Error::bad("command", "it is empty"));
        }
        Ok(Prepared {
            spec: spec.clone(),
            argv: spec.command.iter().map(|a| c(a.as_bytes())).collect::<Result<_>>()?,
            envp: spec.env.iter().map(|e| c(e.as_bytes())).collect::<Result<_>>()?,
            cwd: c(spec.cwd.as_bytes())?,
        })
    }
}

/// The middle process: new namespaces, then a child that is pid 1 in the new pid
/// namespace (`unshare(CLONE_NEWPID)` applies to children, not to the caller).
fn in_namespaces(p: &Prepared) -> i32 {
    let flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if let Err(e) = unshare(flags) {
        eprintln!("kthw: unshare: {e}");
        return 125;
    }
    // SAFETY: as in `run`; this process is single-threaded now.
    match unsafe { fork() } {
        Err(e) => {
            eprintln!("kthw: fork: {e}");
            125
        }
        Ok(ForkResult::Child) => {
            let code = match enter(&p.spec) {
                Ok(()) => exec(p),
                Err(e) => {
                    eprintln!("kthw: setting up the rootfs: {e}");
                    125
                }
            };
            // SAFETY: see `run`.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => wait_status(child).unwrap_or(125),
    }
}

// ANCHOR: enter
/// Mounts the rootfs and what goes in it, then pivots into it.
fn enter(spec: &Spec) -> Result<()> {
    let root = &spec.rootfs;
    // Private: our mounts must not propagate to the host's mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(Error::sys("make / private"))?;
    mount(Some("overlay"), root, Some("overlay"), MsFlags::empty(), Some(spec.overlay_options.as_str()))
        .map_err(Error::sys(format!("mount overlay on {}", root.display())))?;
    for (host, inside) in &spec.volumes {
        let target = root.join(inside.strip_prefix("/").unwrap_or(inside));
        std::fs::create_dir_all(&target).map_err(Error::io("create volume mount point", &target))?;
        mount(Some(host.as_path()), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(Error::sys(format!("bind {} on {}", host.display(), target.display())))?;
    }
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at(root, "proc", "proc", nosuid, None)?;
    mount_at(root, "sys", "sysfs", nosuid | MsFlags::MS_RDONLY, None)?;
    minimal_dev(root)?;
    sethostname(&spec.hostname).map_err(Error::sys("sethostname"))?;
    chdir(root).map_err(Error::sys(format!("chdir {}", root.display())))?;
    pivot_root(".", ".").map_err(Error::sys("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(Error::sys("unmount the old root"))?;
    chdir("/").map_err(Error::sys("chdir /"))?;
    Ok(())
}
// ANCHOR_END: enter

fn mount_at(root: &Path, dir: &str, fstype: &str, flags: MsFlags, data: Option<&str>) -> Result<()> {
    let target = root.join(dir);
    std::fs::create_dir_all(&target).map_err(Error::io("create mount point", &target))?;
    mount(Some(fstype), &target, Some(fstype), flags, data)
        .map_err(Error::sys(format!("mount {fstype} on {}", target.display())))
}

// ANCHOR: minimal_dev
/// The device nodes every container gets (the list is runc's default), on a tmpfs of
/// its own: the host's `/dev` (disks, `/dev/mem`) is not there.
pub const DEVICES: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

fn minimal_dev(root: &Path) -> Result<()> {
    mount_at(root, "dev", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))?;
    let dev = root.join("dev");
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        mknod(&path, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(major, minor))
            .map_err(Error::sys(format!("mknod {}", path.display())))?;
        // mknod's mode is filtered by the umask; the nodes must be world-writable.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &path,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(Error::sys(format!("chmod {}", path.display())))?;
    }
    let noexec = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount_at(&dev, "pts", "devpts", noexec, Some("newinstance,ptmxmode=0666,mode=0620"))?;
    mount_at(&dev, "shm", "tmpfs", noexec | MsFlags::MS_NODEV, Some("mode=1777,size=65536k"))?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = dev.join(link);
        std::os::unix::fs::symlink(target, &path).map_err(Error::io("create symlink", &path))?;
    }
    Ok(())
}
// ANCHOR_END: minimal_dev

fn exec(p: &Prepared) -> i32 {
    if let Err(e) = chdir(p.cwd.as_c_str()) {
        eprintln!("kthw: chdir {:?}: {e}", p.spec.cwd);
        return 125;
    }
    // `execvpe` searches the *new* PATH (from the image's environment).
    let err = nix::unistd::execvpe(&p.argv[0], &p.argv, &p.envp).unwrap_err();
    eprintln!("kthw: cannot run {:?}: {err}", p.spec.command[0]);
    if err == nix::Error::ENOENT { 127 } else { 126 }
}

/// How [`escape_demo`] confines the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    Chroot,
    PivotRoot,
}

// ANCHOR: escape
/// Confines a root process to `dir` with `chroot` or `pivot_root`, then lets it try the
/// classic escape: `chroot` into a subdirectory (so the working directory is now
/// *outside* the root), climb with `chdir("..")`, and `chroot(".")` where it lands.
/// Returns whether the process ended up at the host's `/`.
///
/// # Errors
/// If the demo's process cannot be forked.
pub fn escape_demo(dir: &Path, how: Confinement) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let host_root = std::fs::metadata("/").map_err(Error::io("stat", "/"))?;
    let host_root = (host_root.dev(), host_root.ino());
    let dir = dir.to_path_buf();
    // SAFETY: the child makes system calls only and exits with `_exit`.
    match unsafe { fork() }.map_err(Error::sys("fork"))? {
        ForkResult::Child => {
            let escaped = (|| -> nix::Result<bool> {
                unshare(CloneFlags::CLONE_NEWNS)?;
                mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
                match how {
                    Confinement::Chroot => {
                        nix::unistd::chroot(&dir)?;
                        chdir("/")?;
                    }
                    Confinement::PivotRoot => {
                        // pivot_root needs the new root to be a mount point.
                        mount(Some(&dir), &dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
                        chdir(&dir)?;
                        pivot_root(".", ".")?;
                        umount2(".", MntFlags::MNT_DETACH)?;
                        chdir("/")?;
                    }
                }
                // The escape: root inside a chroot may chroot again.
                let _ = std::fs::create_dir("/.kthw-escape");
                nix::unistd::chroot("/.kthw-escape")?;
                for _ in 0..64 {
                    chdir("..")?;
                }
                nix::unistd::chroot(".")?;
                let now = nix::sys::stat::stat("/")?;
                Ok((now.st_dev, now.st_ino) == host_root)
            })();
            let code = match escaped {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(_) => 2,
            };
            // SAFETY: see `run`.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let code = wait_status(child)?;
            let _ = std::fs::remove_dir(dir.join(".kthw-escape"));
            match code {
                0 => Ok(true),
                1 => Ok(false),
                _ => Err(Error::bad("escape demo", "the demo process failed before trying to escape")),
            }
        }
    }
}
// ANCHOR_END: escape

/// Runs [`escape_demo`] both ways and says what happened, one line each
/// (`kthw rootfs escape DIR`).
///
/// # Errors
/// As [`escape_demo`].
pub fn escape_report(dir: &Path) -> Result<String> {
    let mut out = String::new();
    for (how, label) in [(Confinement::Chroot, "chroot"), (Confinement::PivotRoot, "pivot_root")] {
        let verdict = if escape_demo(dir, how)? { "ESCAPED: / is the host's root again" } else { "stayed inside" };
        out += &format!("{label:<10} + chroot(\"sub\"), chdir(\"..\") x64, chroot(\".\"): {verdict}\n");
    }
    Ok(out)
}
