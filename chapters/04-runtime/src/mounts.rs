//! The container's file tree: the spec's mounts, `/dev`, `pivot_root`, and the masked
//! and read-only paths.
//!
//! The sequence is runc's (`libcontainer/rootfs_linux.go`, `prepareRootfs` and
//! `finalizeRootfs`), in the container's new mount namespace:
//!
//! ```text
//! mount --make-rprivate /          our mounts must not appear on the host
//! mount --rbind ROOTFS ROOTFS      pivot_root needs the new root to be a mount point
//! the spec's mounts, in order      proc, tmpfs /dev, devpts, shm, mqueue, sysfs, binds...
//! /dev: null zero full random urandom tty, fd stdin stdout stderr ptmx
//! pivot_root ROOTFS; umount the old root
//! root.readonly: remount / read-only
//! readonlyPaths: bind each onto itself, remount read-only      (/proc/sys, ...)
//! maskedPaths: /dev/null over files, an empty read-only tmpfs over folders (/proc/kcore)
//! ```
//!
//! Everything is computed before `clone` into a list of [`Op`]s with C strings, because
//! the container's init may only make system calls (see chapter 1's `child.rs`).
//! Destinations are resolved inside the root filesystem *before* that ([`secure_join`]):
//! a symlink in an image such as `/etc -> /` must not let a mount land on the host's
//! files.
//!
//! A `cgroup` mount on a cgroup v1 (or hybrid) host becomes a read-only tmpfs with a
//! bind mount of the container's own cgroup folder of each hierarchy, as runc does;
//! on v2 it is a `cgroup2` mount.
//!
//! What runc does differently: it resolves paths with `securejoin` and `openat2` at the
//! moment of mounting (safe against a rootfs that changes under it), supports idmapped
//! mounts, `tmpcopyup`, mount propagation of the root (`rootfsPropagation`) in all its
//! forms, and bind-mounts host device nodes when it cannot `mknod` them (user namespaces).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use kthw_cgroups::Cgroup;
use kthw_lab::host::Namespace;
use libc::c_ulong;
use oci_spec::runtime::{LinuxDeviceType, Spec};

use crate::{Error, Result};

/// One system call of the file-tree setup, with its arguments ready.
#[derive(Debug)]
pub enum Op {
    /// `mkdir`, ignoring `EEXIST`.
    Mkdir(CString),
    /// Create an empty file (the mount point of a file bind mount), if missing.
    Touch(CString),
    /// `mount(source, target, fstype, flags, data)`. With `fallback`, an `EPERM` (sysfs
    /// without a network namespace of our own, say) becomes a recursive bind of that path.
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
        fallback: Option<CString>,
    },
    /// Remount a bind mount with new flags, keeping the flags it has (`statvfs`).
    Remount { target: CString, flags: c_ulong },
    /// `mknod` a character or block device, then `chown`.
    Mknod { path: CString, mode: u32, dev: u64, uid: u32, gid: u32 },
    /// `symlink(target, link)`, ignoring `EEXIST`.
    Symlink { target: CString, link: CString },
    /// `pivot_root` into this folder and drop the old root.
    PivotRoot(CString),
    /// Mask: `/dev/null` over a file, a read-only tmpfs over a folder; skip if missing.
    Mask(CString),
    /// Read-only: bind onto itself and remount read-only; skip if missing.
    ReadOnly(CString),
}

/// The ops, and a description of each for error messages.
#[derive(Debug, Default)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub what: Vec<String>,
}

impl Plan {
    fn push(&mut self, op: Op, what: impl Into<String>) {
        self.ops.push(op);
        self.what.push(what.into());
    }
}

fn cstr(p: impl AsRef<std::ffi::OsStr>) -> Result<CString> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| Error::bad("config.json", format!("{:?} contains a NUL byte", p.as_ref())))
}

/// The mount flags of an fstab-style option, like runc's `parseMountOptions`:
/// `(set, clear)`, or `None` for an option that goes into the file system's data.
fn flag(option: &str) -> Option<(c_ulong, c_ulong)> {
    use libc::*;
    Some(match option {
        "defaults" | "rw" => (0, MS_RDONLY),
        "ro" => (MS_RDONLY, 0),
        "nosuid" => (MS_NOSUID, 0),
        "suid" => (0, MS_NOSUID),
        "nodev" => (MS_NODEV, 0),
        "dev" => (0, MS_NODEV),
        "noexec" => (MS_NOEXEC, 0),
        "exec" => (0, MS_NOEXEC),
        "sync" => (MS_SYNCHRONOUS, 0),
        "async" => (0, MS_SYNCHRONOUS),
        "dirsync" => (MS_DIRSYNC, 0),
        "remount" => (MS_REMOUNT, 0),
        "mand" => (MS_MANDLOCK, 0),
        "nomand" => (0, MS_MANDLOCK),
        "atime" => (0, MS_NOATIME),
        "noatime" => (MS_NOATIME, 0),
        "diratime" => (0, MS_NODIRATIME),
        "nodiratime" => (MS_NODIRATIME, 0),
        "relatime" => (MS_RELATIME, 0),
        "norelatime" => (0, MS_RELATIME),
        "strictatime" => (MS_STRICTATIME, 0),
        "nostrictatime" => (0, MS_STRICTATIME),
        "bind" => (MS_BIND, 0),
        "rbind" => (MS_BIND | MS_REC, 0),
        _ => return None,
    })
}

fn propagation(option: &str) -> Option<c_ulong> {
    use libc::*;
    Some(match option {
        "private" => MS_PRIVATE,
        "rprivate" => MS_PRIVATE | MS_REC,
        "shared" => MS_SHARED,
        "rshared" => MS_SHARED | MS_REC,
        "slave" => MS_SLAVE,
        "rslave" => MS_SLAVE | MS_REC,
        "unbindable" => MS_UNBINDABLE,
        "runbindable" => MS_UNBINDABLE | MS_REC,
        _ => return None,
    })
}

/// Parsed mount options: flags, propagation flags and the data string.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub flags: c_ulong,
    pub propagation: Vec<c_ulong>,
    pub data: Vec<String>,
}

/// Splits fstab-style options into flags and data, as `mount(8)` does.
pub fn parse_options(options: &[String]) -> Options {
    let mut out = Options::default();
    for o in options {
        if let Some((set, clear)) = flag(o) {
            out.flags = (out.flags | set) & !clear;
        } else if let Some(p) = propagation(o) {
            out.propagation.push(p);
        } else {
            out.data.push(o.clone());
        }
    }
    out
}

/// `path` (absolute, as the container sees it) below `root`, following symlinks as if
/// `root` were `/`: no `..` or absolute link leads out of it.
pub fn secure_join(root: &Path, path: &Path) -> PathBuf {
    let mut todo: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| {
            if let Component::Normal(n) = c {
                Some(n.into())
            } else if c == Component::ParentDir {
                Some("..".into())
            } else {
                None
            }
        })
        .collect();
    let mut done = PathBuf::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let candidate = done.join(&part);
        match std::fs::read_link(root.join(&candidate)) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push(n.into()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => done = candidate,
        }
    }
    root.join(done)
}

/// `mkdir -p` of `dir` below `root`, as ops (each parent that is not there yet).
fn mkdirs(plan: &mut Plan, root: &Path, dir: &Path) -> Result<()> {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        plan.push(Op::Mkdir(cstr(&p)?), format!("create the folder {}", p.display()));
    }
    Ok(())
}

/// The device nodes runc gives every container (the same list as chapter 3's).
pub use kthw_rootfs::pivot::DEVICES;

// ANCHOR: plan
/// Plans the file tree of the container: everything up to and including `pivot_root`,
/// then the root's read-only remount, the read-only and the masked paths.
///
/// # Errors
/// A path with a NUL byte, a bind mount whose source is missing, an unsupported mount type.
pub fn plan(spec: &Spec, rootfs: &Path, bundle: &Path, cgroup: &Cgroup, namespaces: &[Namespace]) -> Result<Plan> {
    let mut plan = Plan::default();
    let linux = spec.linux().as_ref();
    let root_prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation)
        .unwrap_or(libc::MS_PRIVATE | libc::MS_REC);
    let mount =
        |source: Option<&str>, target: &Path, fstype: Option<&str>, flags: c_ulong, data: Option<&str>| -> Result<Op> {
            Ok(Op::Mount {
                source: source.map(cstr).transpose()?,
                target: cstr(target)?,
                fstype: fstype.map(cstr).transpose()?,
                flags,
                data: data.map(cstr).transpose()?,
                fallback: None,
            })
        };
    plan.push(
        mount(None, Path::new("/"), None, root_prop, None)?,
        "make every mount private (mount --make-rprivate /)",
    );
    plan.push(
        mount(Some(&rootfs.to_string_lossy()), rootfs, None, libc::MS_BIND | libc::MS_REC, None)?,
        format!("bind the root filesystem {} onto itself", rootfs.display()),
    );
    let mut dev_is_tmpfs = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = secure_join(rootfs, m.destination());
        let typ = m.typ().as_deref().unwrap_or("");
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        let what = format!("mounts[{i}]: mount {typ} on {}", m.destination().display());
        let data = (!opts.data.is_empty()).then(|| opts.data.join(","));
        let is_bind = typ == "bind" || opts.flags & libc::MS_BIND != 0;
        if is_bind {
            let source = m.source().clone().unwrap_or_default();
            let source = if source.is_absolute() { source } else { bundle.join(source) };
            let meta = std::fs::metadata(&source).map_err(|e| {
                Error::bad(
                    format!("config.json: mounts[{i}].source"),
                    format!("{}: {e}; create it or fix the path", source.display()),
                )
            })?;
            if meta.is_dir() {
                mkdirs(&mut plan, rootfs, &dest)?;
            } else {
                if let Some(parent) = dest.parent() {
                    mkdirs(&mut plan, rootfs, parent)?;
                }
                plan.push(Op::Touch(cstr(&dest)?), format!("create the mount point {}", dest.display()));
            }
            let rec = opts.flags & libc::MS_REC;
            plan.push(mount(Some(&source.to_string_lossy()), &dest, None, libc::MS_BIND | rec, None)?, what.clone());
            // A bind mount ignores every other flag: read-only and friends need a remount.
            let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
            if extra != 0 {
                plan.push(
                    Op::Remount { target: cstr(&dest)?, flags: extra },
                    format!("{what} (remount with its options)"),
                );
            }
        } else if typ == "cgroup" || typ == "cgroup2" {
            mkdirs(&mut plan, rootfs, &dest)?;
            cgroup_mount(&mut plan, &dest, &opts, cgroup, namespaces)?;
        } else {
            if !matches!(typ, "proc" | "sysfs" | "tmpfs" | "devpts" | "mqueue" | "shm" | "overlay" | "ramfs") {
                return Err(Error::bad(
                    format!("config.json: mounts[{i}].type"),
                    format!(
                        "{typ:?} is not a type kthw mounts; use proc, sysfs, tmpfs, devpts, mqueue, cgroup or bind"
                    ),
                ));
            }
            if m.destination() == Path::new("/dev") && typ == "tmpfs" {
                dev_is_tmpfs = true;
            }
            mkdirs(&mut plan, rootfs, &dest)?;
            let source = m.source().as_ref().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| typ.into());
            let mut op = mount(Some(&source), &dest, Some(typ), opts.flags, data.as_deref())?;
            // Without a network (or IPC) namespace of its own the kernel refuses a new sysfs
            // (mqueue); runc then binds the host's, read-only as the options ask.
            if let Op::Mount { fallback, .. } = &mut op
                && matches!(typ, "sysfs" | "mqueue")
            {
                *fallback = Some(cstr(if typ == "sysfs" { "/sys" } else { "/dev/mqueue" })?);
            }
            plan.push(op, what.clone());
        }
        for p in &opts.propagation {
            plan.push(mount(None, &dest, None, *p, None)?, format!("{what} (propagation)"));
        }
    }
    let dev = secure_join(rootfs, Path::new("/dev"));
    if dev_is_tmpfs {
        for (name, major, minor) in DEVICES {
            let path = dev.join(name);
            let node = Op::Mknod {
                path: cstr(&path)?,
                mode: libc::S_IFCHR | 0o666,
                dev: libc::makedev(major as u32, minor as u32),
                uid: 0,
                gid: 0,
            };
            plan.push(node, format!("create the device {}", path.display()));
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
            ("core", "/proc/kcore"),
        ] {
            let path = dev.join(link);
            plan.push(
                Op::Symlink { target: cstr(target)?, link: cstr(&path)? },
                format!("create the symlink {}", path.display()),
            );
        }
    }
    for d in linux.and_then(|l| l.devices().as_ref()).into_iter().flatten() {
        let path = secure_join(rootfs, d.path());
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => continue,
        };
        if let Some(parent) = path.parent() {
            mkdirs(&mut plan, rootfs, parent)?;
        }
        let node = Op::Mknod {
            path: cstr(&path)?,
            mode: kind | d.file_mode().unwrap_or(0o666),
            dev: libc::makedev(d.major() as u32, d.minor() as u32),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        plan.push(node, format!("linux.devices: create {}", d.path().display()));
    }
    plan.push(Op::PivotRoot(cstr(rootfs)?), format!("pivot_root into {}", rootfs.display()));
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        plan.push(Op::Remount { target: cstr("/")?, flags: libc::MS_RDONLY }, "remount / read-only (root.readonly)");
    }
    for p in linux.and_then(|l| l.readonly_paths().as_ref()).into_iter().flatten() {
        plan.push(Op::ReadOnly(cstr(p)?), format!("make {p} read-only (linux.readonlyPaths)"));
    }
    for p in linux.and_then(|l| l.masked_paths().as_ref()).into_iter().flatten() {
        plan.push(Op::Mask(cstr(p)?), format!("mask {p} (linux.maskedPaths)"));
    }
    Ok(plan)
}
// ANCHOR_END: plan

/// `/sys/fs/cgroup` inside: on v2 a `cgroup2` mount (it shows the container's own cgroup
/// when the container has a cgroup namespace); on v1 a tmpfs with, for each hierarchy,
/// a bind mount of the container's folder in it and links for combined names
/// (`cpu -> cpu,cpuacct`).
fn cgroup_mount(plan: &mut Plan, dest: &Path, opts: &Options, cgroup: &Cgroup, namespaces: &[Namespace]) -> Result<()> {
    let what = format!("mount the cgroups on {}", dest.display());
    let flags = opts.flags & !libc::MS_RDONLY;
    let ro = opts.flags & libc::MS_RDONLY;
    if cgroup.version() == kthw_cgroups::cgroup::Version::V2 {
        let op = Op::Mount {
            source: Some(cstr("cgroup")?),
            target: cstr(dest)?,
            fstype: Some(cstr("cgroup2")?),
            flags: opts.flags,
            data: None,
            // Without a cgroup namespace, a new cgroup2 mount would show the host's whole
            // tree; bind the container's own folder instead.
            fallback: None,
        };
        if namespaces.contains(&Namespace::Cgroup) {
            plan.push(op, what);
        } else {
            let dir = cgroup.dirs().first().map(|d| d.path.clone()).unwrap_or_default();
            plan.push(
                Op::Mount {
                    source: Some(cstr(&dir)?),
                    target: cstr(dest)?,
                    fstype: None,
                    flags: libc::MS_BIND,
                    data: None,
                    fallback: None,
                },
                what.clone(),
            );
            plan.push(Op::Remount { target: cstr(dest)?, flags: opts.flags | libc::MS_BIND }, what);
        }
        return Ok(());
    }
    let tmpfs = Op::Mount {
        source: Some(cstr("tmpfs")?),
        target: cstr(dest)?,
        fstype: Some(cstr("tmpfs")?),
        flags,
        data: Some(cstr("mode=755")?),
        fallback: None,
    };
    plan.push(tmpfs, what.clone());
    for dir in cgroup.dirs() {
        let name = dir.controllers.join(",");
        if name.is_empty() {
            continue;
        }
        let target = dest.join(&name);
        plan.push(Op::Mkdir(cstr(&target)?), format!("create {}", target.display()));
        plan.push(
            Op::Mount {
                source: Some(cstr(&dir.path)?),
                target: cstr(&target)?,
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
                fallback: None,
            },
            format!("bind {} on {}", dir.path.display(), target.display()),
        );
        plan.push(
            Op::Remount { target: cstr(&target)?, flags: flags | ro | libc::MS_BIND },
            format!("remount {}", target.display()),
        );
        if dir.controllers.len() > 1 {
            for c in &dir.controllers {
                plan.push(
                    Op::Symlink { target: cstr(&name)?, link: cstr(dest.join(c))? },
                    format!("link {c} to {name}"),
                );
            }
        }
    }
    if ro != 0 {
        plan.push(Op::Remount { target: cstr(dest)?, flags: flags | ro }, format!("{what} (read-only)"));
    }
    Ok(())
}

// ---- Below: called in the container's init after clone. System calls only. ----

/// The flags of the mount at `path` that a bind remount must keep (`statfs`'s `ST_*`
/// flags have the values of the `MS_*` ones).
fn kept_flags(path: &CString) -> c_ulong {
    // SAFETY: statfs into a zeroed struct on our stack.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return 0;
        }
        let keep = libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC
            | libc::MS_NOATIME
            | libc::MS_NODIRATIME
            | libc::MS_RELATIME;
        st.f_flag as c_ulong & keep
    }
}

fn ptr(s: &Option<CString>) -> *const libc::c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

// ANCHOR: run_op
/// Runs one op; returns the errno of a failure.
pub fn run(op: &Op) -> Result<(), nix::errno::Errno> {
    use nix::errno::Errno;
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(Errno::last()) };
    // SAFETY: system calls on NUL-terminated strings prepared before clone.
    unsafe {
        match op {
            Op::Mkdir(path) => match check(libc::mkdir(path.as_ptr(), 0o755)) {
                Err(Errno::EEXIST) => Ok(()),
                other => other,
            },
            Op::Touch(path) => {
                let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644);
                if fd < 0 {
                    return Err(Errno::last());
                }
                libc::close(fd);
                Ok(())
            }
            Op::Mount { source, target, fstype, flags, data, fallback } => {
                let data_ptr = data.as_ref().map_or(std::ptr::null(), |d| d.as_ptr().cast());
                let rc = libc::mount(ptr(source), target.as_ptr(), ptr(fstype), *flags, data_ptr);
                match (rc, fallback) {
                    (0, _) => Ok(()),
                    (_, Some(host)) if Errno::last() == Errno::EPERM => {
                        check(libc::mount(
                            host.as_ptr(),
                            target.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ))?;
                        let flags = (*flags & !(libc::MS_REC)) | libc::MS_BIND | libc::MS_REMOUNT;
                        check(libc::mount(std::ptr::null(), target.as_ptr(), std::ptr::null(), flags, std::ptr::null()))
                    }
                    _ => Err(Errno::last()),
                }
            }
            Op::Remount { target, flags } => {
                let flags = kept_flags(target) | flags | libc::MS_BIND | libc::MS_REMOUNT;
                check(libc::mount(std::ptr::null(), target.as_ptr(), std::ptr::null(), flags, std::ptr::null()))
            }
            Op::Mknod { path, mode, dev, uid, gid } => {
                match check(libc::mknod(path.as_ptr(), *mode, *dev)) {
                    Err(Errno::EEXIST) => return Ok(()),
                    other => other?,
                }
                check(libc::chown(path.as_ptr(), *uid, *gid))
            }
            Op::Symlink { target, link } => match check(libc::symlink(target.as_ptr(), link.as_ptr())) {
                Err(Errno::EEXIST) => Ok(()),
                other => other,
            },
            Op::PivotRoot(root) => {
                // pivot_root(".", ".") stacks the old root under the new one; the lazy
                // unmount then drops it, and no path leads back to the host's files.
                check(libc::chdir(root.as_ptr()))?;
                let dot = c".".as_ptr();
                check(libc::syscall(libc::SYS_pivot_root, dot, dot) as libc::c_int)?;
                // The old root may hold shared mounts: detach them from our new namespace only.
                check(libc::mount(
                    std::ptr::null(),
                    dot,
                    std::ptr::null(),
                    libc::MS_SLAVE | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                check(libc::umount2(dot, libc::MNT_DETACH))?;
                check(libc::chdir(c"/".as_ptr()))
            }
            Op::Mask(path) => {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(path.as_ptr(), &mut st) != 0 {
                    return if Errno::last() == Errno::ENOENT { Ok(()) } else { Err(Errno::last()) };
                }
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let tmpfs = c"tmpfs".as_ptr();
                    check(libc::mount(tmpfs, path.as_ptr(), tmpfs, libc::MS_RDONLY, std::ptr::null()))
                } else {
                    check(libc::mount(
                        c"/dev/null".as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))
                }
            }
            Op::ReadOnly(path) => {
                match check(libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )) {
                    Err(Errno::ENOENT) => return Ok(()),
                    other => other?,
                }
                let flags = kept_flags(path) | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REMOUNT;
                check(libc::mount(std::ptr::null(), path.as_ptr(), std::ptr::null(), flags, std::ptr::null()))
            }
        }
    }
}
// ANCHOR_END: run_op

#[cfg(test)]
mod tests {
    use super::*;

    // Options split into flags, propagation and data as mount(8) splits them.
    #[test]
    fn options_split_like_mount() {
        let o = parse_options(&["nosuid".into(), "ro".into(), "mode=755".into(), "rprivate".into(), "size=1m".into()]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_RDONLY);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(o.data, vec!["mode=755", "size=1m"]);
        assert_eq!(parse_options(&["ro".into(), "rw".into()]).flags, 0);
    }

    // A symlink inside the root filesystem cannot lead a mount out of it.
    #[test]
    fn secure_join_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("etc/back")).unwrap();
        assert_eq!(secure_join(root, Path::new("/up/etc")), root.join("etc"));
        assert_eq!(secure_join(root, Path::new("/etc/back/x")), root.join("x"));
        assert_eq!(secure_join(root, Path::new("/../../x")), root.join("x"));
    }
}
