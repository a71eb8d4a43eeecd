//! From an upper directory back to a layer: `docker diff` and `docker commit`.
//!
//! After a container ran, everything it changed is in its overlay **upper** directory,
//! and nowhere else: new and modified files as copies, deleted files as overlayfs
//! whiteouts (character device 0/0), and directories whose lower contents were hidden as
//! opaque directories (`trusted.overlay.opaque=y`). Writing the upper directory into a
//! tar, with whiteouts turned back into `.wh.NAME` files and opaque directories into
//! `.wh..wh..opq` markers, gives a layer that any OCI tool can apply. That is all a
//! commit is, and a Dockerfile build is a commit after each step.
//!
//! Left out of the diff: volumes (bind mounts: their data is not in the upper directory,
//! but the mount-point directory may be) and the files of the init layer (`/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`), which belong to the container, not the image.
//!
//! What the real tools do differently: Docker's overlay2 driver diffs the upper
//! directory in the same way (`archive.TarWithOptions` with `WhiteoutFormat:
//! OverlayWhiteoutFormat`); its init-layer files are bind mounts, so they never reach the
//! upper directory. Hard links are kept as links there; we store each name as its own
//! copy, which is correct but larger.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::layer::{self, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::{Error, Result};

/// The files of Docker's init layer, which a commit leaves out.
pub const INIT_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// How to write a directory as a tar.
#[derive(Debug, Clone, Default)]
pub struct TarOptions {
    /// Turn overlayfs whiteouts and opaque directories into OCI markers (for an upper dir).
    pub overlay_whiteouts: bool,
    /// Relative paths to leave out, with everything under them.
    pub exclude: Vec<PathBuf>,
}

/// What went into a tar.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TarStats {
    pub entries: usize,
    pub whiteouts: usize,
    pub opaque_dirs: usize,
}

// ANCHOR: write_tar
/// Writes the tree under `dir` as a tar stream into `out`, in sorted order (so the same
/// files give the same digest).
///
/// # Errors
/// If a file cannot be read or the tar cannot be written.
pub fn write_tar(dir: &Path, out: &mut dyn Write, options: &TarOptions) -> Result<TarStats> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut stats = TarStats::default();
    walk(dir, Path::new(""), &mut builder, options, &mut stats, &mut HashMap::new())?;
    builder.finish().map_err(Error::io("write tar of", dir))?;
    Ok(stats)
}

fn walk(
    root: &Path,
    rel: &Path,
    tar: &mut tar::Builder<&mut dyn Write>,
    o: &TarOptions,
    s: &mut TarStats,
    // The first name under which each multiply-linked file went into the tar.
    linked: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(Error::io("read", &dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(Error::io("read", &dir))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        if o.exclude.iter().any(|ex| rel.starts_with(ex)) {
            continue;
        }
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(Error::io("stat", &path))?;
        let io_err = Error::io("add to tar", &path);
        if o.overlay_whiteouts && layer::is_whiteout(&meta) {
            // A file deleted in the container: an empty `.wh.NAME` beside where it was.
            let mut marker = std::ffi::OsString::from(WHITEOUT_PREFIX);
            marker.push(&name);
            append_empty(tar, &rel.with_file_name(marker)).map_err(io_err)?;
            s.whiteouts += 1;
            continue;
        }
        let ft = meta.file_type();
        if ft.is_file() && meta.nlink() > 1 {
            // A second name of a file already in the tar becomes a hard-link entry, not a
            // second copy: busybox's 300 applets are one binary, in the layer as on disk.
            if let Some(first) = linked.get(&(meta.dev(), meta.ino())) {
                let mut header = tar::Header::new_gnu();
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                tar.append_link(&mut header, &rel, first).map_err(io_err)?;
                s.entries += 1;
                continue;
            }
            linked.insert((meta.dev(), meta.ino()), rel.clone());
        }
        if ft.is_dir() || ft.is_file() || ft.is_symlink() {
            tar.append_path_with_name(&path, &rel).map_err(io_err)?;
            s.entries += 1;
        } else {
            tracing::warn!(
                "leaving {} out of the layer: devices, sockets and fifos are not image content",
                rel.display()
            );
            continue;
        }
        if ft.is_dir() {
            if o.overlay_whiteouts && layer::get_xattr(&path, OVERLAY_OPAQUE_XATTR)?.as_deref() == Some(b"y") {
                append_empty(tar, &rel.join(OPAQUE_MARKER)).map_err(Error::io("add to tar", &path))?;
                s.opaque_dirs += 1;
            }
            walk(root, &rel, tar, o, s, linked)?;
        }
    }
    Ok(())
}
// ANCHOR_END: write_tar

fn append_empty(tar: &mut tar::Builder<&mut dyn Write>, name: &Path) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, name, std::io::empty())
}

/// One line of `kthw rootfs diff`, as `docker diff` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `A`: a file that no lower layer has.
    Added(PathBuf),
    /// `C`: a file or directory that a lower layer has, changed or copied up.
    Changed(PathBuf),
    /// `D`: a file a lower layer has, deleted (a whiteout).
    Deleted(PathBuf),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added(p) => write!(f, "A /{}", p.display()),
            Change::Changed(p) => write!(f, "C /{}", p.display()),
            Change::Deleted(p) => write!(f, "D /{}", p.display()),
        }
    }
}

/// The changes recorded in `upper` over the `lowers` (any order), leaving out `exclude`.
///
/// # Errors
/// If a directory cannot be read.
pub fn changes(upper: &Path, lowers: &[PathBuf], exclude: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    changes_in(upper, Path::new(""), lowers, exclude, &mut out)?;
    Ok(out)
}

fn changes_in(upper: &Path, rel: &Path, lowers: &[PathBuf], exclude: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    let dir = upper.join(rel);
    let mut entries: Vec<_> =
        fs::read_dir(&dir).map_err(Error::io("read", &dir))?.flatten().map(|e| e.file_name()).collect();
    entries.sort();
    for name in entries {
        let rel = rel.join(name);
        if exclude.iter().any(|ex| rel.starts_with(ex)) {
            continue;
        }
        let path = upper.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(Error::io("stat", &path))?;
        let in_lower = lowers.iter().any(|l| fs::symlink_metadata(l.join(&rel)).is_ok());
        if layer::is_whiteout(&meta) {
            out.push(Change::Deleted(rel));
            continue;
        }
        out.push(if in_lower { Change::Changed(rel.clone()) } else { Change::Added(rel.clone()) });
        if meta.is_dir() {
            changes_in(upper, &rel, lowers, exclude, out)?;
        }
    }
    Ok(())
}
