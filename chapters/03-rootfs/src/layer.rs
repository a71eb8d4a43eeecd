//! Unpacking a layer tarball, safely, and the two ways to apply its whiteouts.
//!
//! A layer is a tar archive of the files that changed. A file *deleted* in a layer cannot
//! be written into a tar, so the OCI image spec marks it with an empty file named
//! `.wh.NAME` (a **whiteout**), and a directory whose old contents are all gone with
//! `.wh..wh..opq` inside it (an **opaque** directory). This module unpacks one layer into
//! a directory and turns those markers into one of two forms:
//!
//! - [`Whiteouts::Overlay`]: what overlayfs understands, for a directory that will be one
//!   lower layer of an overlay mount. `.wh.NAME` becomes a character device 0/0 named
//!   `NAME`; `.wh..wh..opq` becomes the `trusted.overlay.opaque=y` attribute on the
//!   directory. This is what containerd's overlay snapshotter does.
//! - [`Whiteouts::Apply`]: for one flat directory that gets every layer in turn (what
//!   `docker export` gives you): `.wh.NAME` deletes `NAME`, and an opaque marker empties
//!   the directory of everything the lower layers put there.
//!
//! ## Refusing hostile layers
//!
//! A layer comes from the network; a tar can name any path. We refuse, naming the entry:
//! paths with `..` or starting with `/`; writing *through* a symbolic link (a link
//! `etc -> /etc` followed by `etc/passwd` would write the host's file); relative symlinks
//! that climb above the rootfs; hard links to anything outside it; and device nodes (a
//! `/dev/sda` in an image would give the container the host's disk). The caller unpacks
//! into a fresh directory and deletes it on error, so a refused layer leaves nothing.
//!
//! What the real runtimes do differently: Docker's `pkg/archive` and containerd's
//! `archive` package resolve every path with `securejoin` against the root (an absolute
//! path is taken as relative to it instead of refused), keep devices when running as real
//! root, restore extended attributes and directory times after the last entry, and
//! unpack in a chroot or with `openat2(RESOLVE_IN_ROOT)`. We check each path component
//! with `lstat` instead: simpler to read, and safe because nothing else writes to a
//! layer directory while we unpack it.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// The prefix of a whiteout file's name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The extended attribute that makes a directory opaque to overlayfs.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What to do with whiteouts; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Convert them to overlayfs whiteouts (char device 0/0, opaque xattr).
    Overlay,
    /// Apply them: delete what they name from the directory.
    Apply,
}

/// What one layer contained.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: usize,
    pub whiteouts: usize,
    pub opaque_dirs: usize,
}

/// Opens a layer blob, gzip or plain, by looking at its first bytes (`1f 8b` is gzip)
/// rather than trusting a media type.
///
/// # Errors
/// If the file cannot be opened or read.
pub fn open_layer(path: &Path) -> Result<Box<dyn Read>> {
    let mut file = File::open(path).map_err(Error::io("open layer", path))?;
    let mut magic = [0u8; 2];
    let n = read_fully(&mut file, &mut magic).map_err(Error::io("read layer", path))?;
    let head = io::Cursor::new(magic[..n].to_vec());
    let stream = head.chain(file);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::GzDecoder::new(stream)))
    } else {
        Ok(Box::new(stream))
    }
}

fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

// ANCHOR: unpack
/// Unpacks the tar stream `tar` into `root`, converting or applying whiteouts.
/// `layer` names the layer in error messages.
///
/// # Errors
/// [`Error::UnsafeEntry`] for a hostile entry (see the module docs), [`Error::Io`] for
/// a broken archive or a full disk. On error `root` is left half-written: unpack into a
/// fresh directory and remove it.
pub fn unpack(tar: impl Read, root: &Path, whiteouts: Whiteouts, layer: &str) -> Result<Unpacked> {
    let mut archive = tar::Archive::new(tar);
    let mut stats = Unpacked::default();
    // Paths this layer wrote: an opaque marker hides what lower layers put in its
    // directory, never what this same layer put there (tar order is not fixed).
    let mut ours: HashSet<PathBuf> = HashSet::new();
    let entries = archive.entries().map_err(Error::io("read layer", layer))?;
    for entry in entries {
        let mut entry = entry.map_err(Error::io("read layer", layer))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |why: String| Error::UnsafeEntry { layer: layer.to_string(), entry: shown.clone(), why };
        let rel = safe_relative(&raw).map_err(&refuse)?;
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else { continue }; // "./" itself
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        ensure_dirs(root, &parent).map_err(&refuse)?;
        let dest = root.join(&rel);
        let name_bytes = name.as_bytes();
        stats.entries += 1;

        if name_bytes == OPAQUE_MARKER.as_bytes() {
            stats.opaque_dirs += 1;
            let dir = root.join(&parent);
            match whiteouts {
                Whiteouts::Overlay => set_xattr(&dir, OVERLAY_OPAQUE_XATTR, b"y")?,
                Whiteouts::Apply => empty_dir_except(&dir, &parent, &ours)?,
            }
            continue;
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(refuse("is a whiteout of no file".into()));
            }
            stats.whiteouts += 1;
            let target = root.join(&parent).join(OsStr::from_bytes(hidden));
            remove_any(&target)?;
            if whiteouts == Whiteouts::Overlay {
                mknod_whiteout(&target)?;
            }
            continue;
        }

        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(Error::io("read layer", layer))? & 0o7777;
        match kind {
            tar::EntryType::Directory => match fs::symlink_metadata(&dest) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(&dest)?;
                    fs::create_dir(&dest).map_err(Error::io("create directory", &dest))?;
                }
                Err(_) => fs::create_dir(&dest).map_err(Error::io("create directory", &dest))?,
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&dest)?;
                // O_EXCL with O_NOFOLLOW: never open an existing file or follow a link.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&dest)
                    .map_err(Error::io("create file", &dest))?;
                io::copy(&mut entry, &mut file).map_err(Error::io("write file", &dest))?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| refuse("is a symlink without a target".into()))?;
                check_symlink_target(&parent, &target).map_err(&refuse)?;
                remove_any(&dest)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &dest)
                    .map_err(Error::io("create symlink", &dest))?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| refuse("is a hard link without a target".into()))?;
                let target_rel =
                    safe_relative(&target).map_err(|why| refuse(format!("is a hard link whose target {why}")))?;
                if let Some(p) = target_rel.parent() {
                    check_no_symlink_parents(root, p)
                        .map_err(|why| refuse(format!("is a hard link whose target {why}")))?;
                }
                let source = root.join(&target_rel);
                match fs::symlink_metadata(&source) {
                    Ok(m) if !m.is_dir() => {}
                    _ => return Err(refuse("is a hard link to a file that is not in the layer".into())),
                }
                remove_any(&dest)?;
                fs::hard_link(&source, &dest).map_err(Error::io("create hard link", &dest))?;
            }
            tar::EntryType::Fifo => {
                remove_any(&dest)?;
                nix::unistd::mkfifo(&dest, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(Error::sys(format!("mkfifo {}", dest.display())))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refuse("is a device node; images may not carry devices".into()));
            }
            // PAX and GNU long-name headers are consumed by the tar crate; anything else
            // (sparse files, volume labels) is not in images that real tools build.
            other => return Err(refuse(format!("has an unsupported type {other:?}"))),
        }
        set_owner_and_mode(&entry, &dest, kind, mode)?;
        ours.insert(rel);
    }
    Ok(stats)
}
// ANCHOR_END: unpack

// ANCHOR: safe_relative
/// The entry's path as a relative path with no `.` or `..`, or why it is refused.
fn safe_relative(raw: &[u8]) -> std::result::Result<PathBuf, String> {
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("climbs out with `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path".into()),
        }
    }
    Ok(out)
}

/// Creates the missing directories of `parent` under `root`, refusing to go through a
/// symbolic link (which could point anywhere on the host).
fn ensure_dirs(root: &Path, parent: &Path) -> std::result::Result<(), String> {
    let mut at = root.to_path_buf();
    for component in parent.components() {
        at.push(component);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("would be written through the symbolic link {}", rel_display(root, &at)));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("has a parent {} that is not a directory", rel_display(root, &at))),
            Err(_) => fs::create_dir(&at).map_err(|e| format!("cannot create its parent: {e}"))?,
        }
    }
    Ok(())
}
// ANCHOR_END: safe_relative

fn check_no_symlink_parents(root: &Path, parent: &Path) -> std::result::Result<(), String> {
    let mut at = root.to_path_buf();
    for component in parent.components() {
        at.push(component);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("goes through the symbolic link {}", rel_display(root, &at)));
        }
    }
    Ok(())
}

/// A relative link target is resolved from the link's directory; if it climbs above
/// the root, the link points outside the rootfs on the host. (An absolute target such
/// as `/bin/busybox` is fine: inside the container it means the container's file, and
/// we never follow links while unpacking.)
fn check_symlink_target(parent: &Path, target: &[u8]) -> std::result::Result<(), String> {
    let target = Path::new(OsStr::from_bytes(target));
    if target.is_absolute() {
        return Ok(());
    }
    let mut depth = parent.components().count() as i64;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!("is a symlink to {} that climbs out of the rootfs", target.display()));
        }
    }
    Ok(())
}

fn rel_display(root: &Path, at: &Path) -> String {
    at.strip_prefix(root).unwrap_or(at).display().to_string()
}

fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(Error::io("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(Error::io("remove", path)),
        Err(_) => Ok(()),
    }
}

/// Removes everything in `dir` that this layer did not write.
fn empty_dir_except(dir: &Path, rel: &Path, ours: &HashSet<PathBuf>) -> Result<()> {
    for child in fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
        let child = child.map_err(Error::io("read directory", dir))?;
        if !ours.contains(&rel.join(child.file_name())) {
            remove_any(&child.path())?;
        }
    }
    Ok(())
}

// ANCHOR: whiteout
/// An overlayfs whiteout: a character device with device number 0/0.
fn mknod_whiteout(path: &Path) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .map_err(Error::sys(format!("mknod whiteout {}", path.display())))
}
// ANCHOR_END: whiteout

/// Whether `meta` is an overlayfs whiteout.
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn cstr(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::bad("path", format!("{} has a NUL byte", path.display())))
}

/// Sets an extended attribute on `path` without following a link.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let p = cstr(path)?;
    let n = CString::new(name).map_err(|_| Error::bad("xattr name", name))?;
    // SAFETY: both strings are NUL-terminated and live across the call.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 { Ok(()) } else { Err(Error::sys(format!("setxattr {name} on {}", path.display()))(nix::Error::last())) }
}

/// An extended attribute of `path` (not following a link), or `None` if unset.
pub fn get_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let p = cstr(path)?;
    let n = CString::new(name).map_err(|_| Error::bad("xattr name", name))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: the buffer is valid for its length; the strings are NUL-terminated.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc >= 0 {
        buf.truncate(rc as usize);
        return Ok(Some(buf));
    }
    match nix::Error::last() {
        nix::Error::ENODATA | nix::Error::ENOTSUP => Ok(None),
        e => Err(Error::sys(format!("getxattr {name} on {}", path.display()))(e)),
    }
}

/// Owner, mode and modification time from the tar header. Links get an owner only:
/// Linux has no mode for a symlink.
fn set_owner_and_mode<R: Read>(entry: &tar::Entry<'_, R>, dest: &Path, kind: tar::EntryType, mode: u32) -> Result<()> {
    let header = entry.header();
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    if kind == tar::EntryType::Link {
        return Ok(());
    }
    std::os::unix::fs::lchown(dest, Some(uid), Some(gid)).map_err(Error::io("chown", dest))?;
    if kind != tar::EntryType::Symlink {
        fs::set_permissions(dest, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", dest))?;
    }
    if let Ok(mtime) = header.mtime() {
        use nix::sys::stat::{UtimensatFlags, utimensat};
        use nix::sys::time::TimeSpec;
        let t = TimeSpec::new(mtime as i64, 0);
        // Best effort: a wrong time never makes a container fail.
        let _ = utimensat(nix::fcntl::AT_FDCWD, dest, &t, &t, UtimensatFlags::NoFollowSymlink);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paths are normalised; `..` and absolute paths are refused.
    #[test]
    fn entry_paths_are_checked() {
        assert_eq!(safe_relative(b"./bin/sh").unwrap(), Path::new("bin/sh"));
        assert_eq!(safe_relative(b"etc/").unwrap(), Path::new("etc"));
        assert!(safe_relative(b"../etc/passwd").unwrap_err().contains(".."));
        assert!(safe_relative(b"a/../../b").unwrap_err().contains(".."));
        assert!(safe_relative(b"/etc/passwd").unwrap_err().contains("absolute"));
    }

    // A relative symlink may climb as far as the root and no further.
    #[test]
    fn symlinks_may_not_climb_out() {
        assert!(check_symlink_target(Path::new("usr/bin"), b"../../bin/busybox").is_ok());
        assert!(check_symlink_target(Path::new("usr/bin"), b"/bin/busybox").is_ok());
        assert!(check_symlink_target(Path::new("usr/bin"), b"../../../etc").is_err());
        assert!(check_symlink_target(Path::new(""), b"..").is_err());
    }
}
