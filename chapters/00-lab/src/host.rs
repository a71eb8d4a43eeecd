//! Facts about the host that every chapter needs: the kernel, the cgroup layout, and
//! whether each kind of namespace and overlayfs can really be used.
//!
//! The rule of this module is **try it, don't read config**: a kernel may be built with
//! `CONFIG_USER_NS=y` and still refuse user namespaces (a sysctl, a container we run in,
//! a seccomp filter), so we ask the kernel by doing the thing in a throw-away child.
//!
//! What the real tools do differently: `kubeadm init` runs a similar preflight (its
//! `SystemVerification` reads the kernel config and cgroup files); runc's
//! `libcontainer/cgroups` detects the cgroup mode the same way we do, from `/sys/fs/cgroup`.

use std::ffi::CString;
use std::fmt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The running kernel, from `uname(2)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    /// The full release string, e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// Major and minor version numbers, e.g. `(6, 1)`.
    pub version: (u32, u32),
}

impl Kernel {
    /// The kernel we run on.
    ///
    /// # Errors
    /// Fails only if the release string does not start with `MAJOR.MINOR`.
    pub fn current() -> Result<Kernel> {
        let uts = nix::sys::utsname::uname().map_err(Error::sys("uname"))?;
        Kernel::parse(&uts.release().to_string_lossy())
    }

    /// Parses a release string such as `6.18.44-fc-v769`.
    ///
    /// # Errors
    /// Fails if the string does not start with two dot-separated numbers.
    pub fn parse(release: &str) -> Result<Kernel> {
        let bad = || Error::Parse {
            what: "kernel release".into(),
            detail: format!("{release:?} does not start with MAJOR.MINOR"),
        };
        let mut parts = release.split(['.', '-', '+']);
        let major = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let minor = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        Ok(Kernel { release: release.to_string(), version: (major, minor) })
    }
}

/// The machine's host name, from `uname(2)`.
pub fn hostname() -> String {
    nix::sys::utsname::uname().map(|u| u.nodename().to_string_lossy().into_owned()).unwrap_or_else(|_| "unknown".into())
}

/// Whether this process runs with root's powers (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ANCHOR: namespace_kinds
/// The kinds of Linux namespace, each isolating one thing a process can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// Mount points: what the file tree looks like (`CLONE_NEWNS`, Linux 2.4.19).
    Mount,
    /// Host name and NIS domain name (`CLONE_NEWUTS`).
    Uts,
    /// System V IPC and POSIX message queues (`CLONE_NEWIPC`).
    Ipc,
    /// Process ids: the first process inside is PID 1 (`CLONE_NEWPID`).
    Pid,
    /// Network devices, addresses, routes, firewall rules, ports (`CLONE_NEWNET`).
    Net,
    /// User and group ids: root inside, unprivileged outside (`CLONE_NEWUSER`).
    User,
    /// The view of `/proc/self/cgroup`: the cgroup root (`CLONE_NEWCGROUP`, Linux 4.6).
    Cgroup,
    /// The boot-time and monotonic clocks (`CLONE_NEWTIME`, Linux 5.6).
    Time,
}
// ANCHOR_END: namespace_kinds

impl Namespace {
    /// Every kind, in the order `lsns` and the book list them.
    pub const ALL: [Namespace; 8] = [
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Pid,
        Namespace::Net,
        Namespace::User,
        Namespace::Cgroup,
        Namespace::Time,
    ];

    /// The flag that asks `clone(2)`/`unshare(2)` for a new namespace of this kind.
    pub fn clone_flag(self) -> CloneFlags {
        match self {
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Net => CloneFlags::CLONE_NEWNET,
            Namespace::User => CloneFlags::CLONE_NEWUSER,
            Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            // nix names no constant for CLONE_NEWTIME (0x80); it has the same meaning
            // for unshare(2).
            Namespace::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        }
    }

    /// The file name under `/proc/PID/ns/` for this kind (`mnt`, `uts`, ...).
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Mount => "mnt",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Pid => "pid",
            Namespace::Net => "net",
            Namespace::User => "user",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

/// Tries to create a namespace of this kind in a throw-away child process.
///
/// A child is used because some kinds can only be entered by a single-threaded process
/// (user), and because the caller must not end up inside the new namespace.
///
/// # Errors
/// Returns the kernel's reason (`EPERM`, `EINVAL`, `ENOSPC`, ...) when it refuses.
pub fn try_namespace(ns: Namespace) -> Result<(), nix::Error> {
    in_child(|| nix::sched::unshare(ns.clone_flag()))
}

/// Tries to mount an overlay filesystem (the layer stack of chapter 3) in a throw-away
/// child with its own mount namespace, so nothing is left mounted on the host.
///
/// # Errors
/// Returns the kernel's reason when the mount is refused (`ENODEV`: no overlay module).
pub fn try_overlayfs(scratch: &Path) -> Result<(), nix::Error> {
    use nix::mount::{MsFlags, mount};
    let dirs = ["lower", "upper", "work", "merged"].map(|d| scratch.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    }
    let options =
        format!("lowerdir={},upperdir={},workdir={}", dirs[0].display(), dirs[1].display(), dirs[2].display());
    let merged = dirs[3].clone();
    let result = in_child(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
        mount(Some("overlay"), &merged, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
    });
    let _ = std::fs::remove_dir_all(scratch);
    result
}

/// Runs `f` in a forked child and returns what it returned, as an errno.
///
/// The child does nothing but system calls and `_exit`, which is what is safe after
/// `fork` in a multi-threaded process such as a test harness.
fn in_child(f: impl FnOnce() -> Result<(), nix::Error>) -> Result<(), nix::Error> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    // SAFETY: the child only makes system calls and exits with `_exit`.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match f() {
                Ok(()) => 0,
                Err(errno) => errno as i32,
            };
            // SAFETY: `_exit` is async-signal-safe and skips atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None)? {
            WaitStatus::Exited(_, 0) => Ok(()),
            WaitStatus::Exited(_, code) => Err(nix::Error::from_raw(code)),
            _ => Err(nix::Error::ECHILD),
        },
    }
}

// ANCHOR: cgroup_mode
/// How the cgroup filesystems are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only cgroup v1: one hierarchy per controller (or per group of controllers).
    V1,
    /// cgroup v1 hierarchies plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`)
    /// that holds whatever controllers v1 does not use (often none, or only hugetlb).
    Hybrid,
    /// One unified cgroup2 hierarchy at `/sys/fs/cgroup`: every current distribution.
    V2,
}
// ANCHOR_END: cgroup_mode

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::V2 => "v2",
        })
    }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub path: PathBuf,
    /// 1 or 2.
    pub version: u8,
    /// The controllers attached to it (`memory`, `cpu`, ...). A v1 hierarchy with only a
    /// name (`name=systemd`) has none.
    pub controllers: Vec<String>,
}

/// The cgroup layout of the machine: its mode and every hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupLayout {
    pub mode: CgroupMode,
    pub mounts: Vec<CgroupMount>,
}

impl CgroupLayout {
    /// Reads the layout of this machine from `/proc/self/mountinfo`.
    ///
    /// # Errors
    /// Fails if mountinfo cannot be read, or no cgroup filesystem is mounted at all.
    pub fn detect() -> Result<CgroupLayout> {
        let path = "/proc/self/mountinfo";
        let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        CgroupLayout::from_mountinfo(&text, |mount| std::fs::read_to_string(mount.join("cgroup.controllers")).ok())
    }

    // ANCHOR: from_mountinfo
    /// Builds the layout from mountinfo text. `v2_controllers` reads a cgroup2 mount's
    /// `cgroup.controllers` file (a parameter so tests can give fixed contents).
    ///
    /// # Errors
    /// Fails if no cgroup filesystem is mounted.
    pub fn from_mountinfo(mountinfo: &str, v2_controllers: impl Fn(&Path) -> Option<String>) -> Result<CgroupLayout> {
        let mut mounts = Vec::new();
        for line in mountinfo.lines() {
            // Fields: id parent dev root MOUNTPOINT options [optional...] - FSTYPE source SUPEROPTIONS
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mountpoint = left.split(' ').nth(4).map(unescape_mountinfo);
            let mut right = right.split(' ');
            let (fstype, superoptions) = (right.next(), right.nth(1));
            let (Some(path), Some(fstype)) = (mountpoint, fstype) else { continue };
            let path = PathBuf::from(path);
            match fstype {
                // v1: the controllers are mount options ("rw,memory" or "rw,cpu,cpuacct").
                "cgroup" => {
                    let controllers = superoptions
                        .unwrap_or("")
                        .split(',')
                        .filter(|o| is_v1_controller(o))
                        .map(str::to_string)
                        .collect();
                    mounts.push(CgroupMount { path, version: 1, controllers });
                }
                // v2: the controllers are listed in the root's cgroup.controllers.
                "cgroup2" => {
                    let controllers =
                        v2_controllers(&path).unwrap_or_default().split_whitespace().map(str::to_string).collect();
                    mounts.push(CgroupMount { path, version: 2, controllers });
                }
                _ => {}
            }
        }
        let has_v1 = mounts.iter().any(|m| m.version == 1);
        let has_v2 = mounts.iter().any(|m| m.version == 2);
        let mode = match (has_v1, has_v2) {
            (false, true) => CgroupMode::V2,
            (true, true) => CgroupMode::Hybrid,
            (true, false) => CgroupMode::V1,
            (false, false) => {
                return Err(Error::Parse {
                    what: "/proc/self/mountinfo".into(),
                    detail: "no cgroup or cgroup2 filesystem is mounted; mount them \
                             (`mount -t cgroup2 none /sys/fs/cgroup`) or boot with systemd"
                        .into(),
                });
            }
        };
        Ok(CgroupLayout { mode, mounts })
    }
    // ANCHOR_END: from_mountinfo

    /// The hierarchy that holds `controller`: on v1 the hierarchy where it is mounted,
    /// on v2 (or hybrid) the cgroup2 mount if it lists it. v1 wins in hybrid mode, as
    /// the kernel lets a controller be active in only one hierarchy.
    pub fn hierarchy_for(&self, controller: &str) -> Option<&CgroupMount> {
        self.mounts.iter().find(|m| m.controllers.iter().any(|c| c == controller))
    }

    /// The unified (cgroup2) mount, if there is one.
    pub fn unified(&self) -> Option<&CgroupMount> {
        self.mounts.iter().find(|m| m.version == 2)
    }
}

/// Controller names that may appear as v1 mount options; everything else is a plain
/// mount option (`rw`, `relatime`, `name=systemd`, ...).
fn is_v1_controller(option: &str) -> bool {
    matches!(
        option,
        "cpu"
            | "cpuacct"
            | "cpuset"
            | "memory"
            | "devices"
            | "freezer"
            | "net_cls"
            | "blkio"
            | "perf_event"
            | "net_prio"
            | "hugetlb"
            | "pids"
            | "rdma"
            | "misc"
    )
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&digits, 8) {
                out.push(char::from(byte));
                chars.nth(2);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Whether `program` is found in `PATH`, and where.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    path.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
33 31 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
34 31 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
35 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
";
    const V2: &str = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

    // A machine with v1 hierarchies and a cgroup2 mount beside them is "hybrid", and
    // each controller is found in the hierarchy that holds it.
    #[test]
    fn hybrid_layout_is_detected() {
        let layout = CgroupLayout::from_mountinfo(HYBRID, |_| Some("hugetlb\n".into())).unwrap();
        assert_eq!(layout.mode, CgroupMode::Hybrid);
        assert_eq!(layout.hierarchy_for("memory").unwrap().path, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(layout.hierarchy_for("cpuacct").unwrap().version, 1);
        assert_eq!(layout.hierarchy_for("hugetlb").unwrap().version, 2);
        assert!(layout.hierarchy_for("pids").is_none());
        let systemd = &layout.mounts[1];
        assert!(systemd.controllers.is_empty(), "name=systemd is not a controller");
    }

    // One cgroup2 mount and nothing else is v2, with its controllers from cgroup.controllers.
    #[test]
    fn unified_layout_is_v2() {
        let layout = CgroupLayout::from_mountinfo(V2, |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup"));
            Some("cpuset cpu io memory hugetlb pids rdma misc\n".into())
        })
        .unwrap();
        assert_eq!(layout.mode, CgroupMode::V2);
        assert_eq!(layout.hierarchy_for("memory").unwrap().path, Path::new("/sys/fs/cgroup"));
    }

    // A machine with no cgroup filesystem at all is an error that says how to fix it.
    #[test]
    fn no_cgroups_is_a_clear_error() {
        let err = CgroupLayout::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n", |_| None).unwrap_err();
        assert!(err.to_string().contains("no cgroup or cgroup2 filesystem is mounted"));
    }

    // Mount points with spaces are unescaped.
    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/mnt/my\040dir"), "/mnt/my dir");
    }

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(Kernel::parse("6.1.0-50-amd64").unwrap().version, (6, 1));
        assert_eq!(Kernel::parse("6.18.44-fc-v769").unwrap().version, (6, 18));
        assert!(Kernel::parse("banana").is_err());
    }
}
