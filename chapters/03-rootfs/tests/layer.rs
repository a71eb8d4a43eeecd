//! Whiteouts both ways: applied into one flat directory, or converted for overlayfs —
//! and an overlay of the converted layers shows the same tree as the flat one. Writing
//! the converted layer back out gives the OCI markers again.

mod common;

use std::path::Path;

use common::{Raw, crafted_tar, tree};
use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_rootfs::layer::{self, Whiteouts};

fn layers(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = dir.join("base.tar");
    crafted_tar(
        &base,
        &[
            Raw::Dir("a"),
            Raw::File("a/x", b"x"),
            Raw::File("a/y", b"y"),
            Raw::File("f", b"deleted above"),
            Raw::File("g", b"kept"),
        ],
    );
    // The top layer deletes `f`, and replaces directory `a` by one holding only `z`;
    // the opaque marker comes after `a/z` on purpose: tar order is not fixed.
    let top = dir.join("top.tar");
    crafted_tar(
        &top,
        &[Raw::File(".wh.f", b""), Raw::Dir("a"), Raw::File("a/z", b"z"), Raw::File("a/.wh..wh..opq", b"")],
    );
    (base, top)
}

fn unpack(tar: &Path, into: &Path, mode: Whiteouts) -> layer::Unpacked {
    std::fs::create_dir_all(into).unwrap();
    layer::unpack(std::fs::File::open(tar).unwrap(), into, mode, "test").unwrap()
}

// Applied in order into one directory, the whiteouts delete `f` and the old contents of `a`.
#[test]
fn whiteouts_applied_flatten_the_layers() {
    require!(Need::Root);
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = layers(dir.path());
    let flat = dir.path().join("flat");
    unpack(&base, &flat, Whiteouts::Apply);
    let stats = unpack(&top, &flat, Whiteouts::Apply);
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (1, 1));
    assert_eq!(tree(&flat), ["a", "a/z", "g"]);
}

// Converted for overlayfs, `f` becomes a 0/0 character device and `a` gets the opaque
// attribute; the overlay of both layers shows exactly the flattened tree; and writing
// the top layer back out gives `.wh.f` and `a/.wh..wh..opq`.
#[test]
fn whiteouts_converted_for_overlayfs_give_the_same_tree() {
    require!(Need::Root, Need::Overlayfs, Need::Namespace(kthw_lab::host::Namespace::Mount));
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = layers(dir.path());
    let (lower, upper) = (dir.path().join("l1"), dir.path().join("l2"));
    unpack(&base, &lower, Whiteouts::Overlay);
    unpack(&top, &upper, Whiteouts::Overlay);
    assert!(layer::is_whiteout(&std::fs::symlink_metadata(upper.join("f")).unwrap()));
    assert_eq!(layer::get_xattr(&upper.join("a"), layer::OVERLAY_OPAQUE_XATTR).unwrap().as_deref(), Some(&b"y"[..]));

    // Mount both read-only (two lower dirs, no upper) in a child with its own mount
    // namespace, and list the merged tree there.
    let merged = dir.path().join("merged");
    let listing = dir.path().join("listing.txt");
    std::fs::create_dir_all(&merged).unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={}:{} {} && cd {} && find . | sort > {}",
        upper.display(),
        lower.display(),
        merged.display(),
        merged.display(),
        listing.display()
    );
    common::run(std::process::Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    let seen = std::fs::read_to_string(&listing).unwrap();
    assert_eq!(seen, ".\n./a\n./a/z\n./g\n");

    let mut tar = Vec::new();
    let options = kthw_rootfs::diff::TarOptions { overlay_whiteouts: true, exclude: vec![] };
    let stats = kthw_rootfs::diff::write_tar(&upper, &mut tar, &options).unwrap();
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (1, 1));
    let mut names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".wh.f", "a", "a/.wh..wh..opq", "a/z"]);
}

// A file with two names goes into a layer once, plus a hard-link entry, and comes back
// out as two names of one file (busybox's applets would otherwise cost 2 MB each).
#[test]
fn hard_links_are_kept_as_link_entries() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/busybox"), vec![7u8; 100_000]).unwrap();
    std::fs::hard_link(src.join("bin/busybox"), src.join("bin/sh")).unwrap();
    let mut tar = Vec::new();
    kthw_rootfs::diff::write_tar(&src, &mut tar, &Default::default()).unwrap();
    assert!(tar.len() < 150_000, "the tar holds the file once, not twice: {} bytes", tar.len());
    let mut archive = tar::Archive::new(tar.as_slice());
    let kinds: Vec<(String, tar::EntryType)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.header().entry_type())
        })
        .collect();
    assert!(kinds.contains(&("bin/sh".to_string(), tar::EntryType::Link)), "{kinds:?}");

    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, &tar).unwrap();
    let out = dir.path().join("out");
    unpack(&tar_path, &out, Whiteouts::Apply);
    let (a, b) = (std::fs::metadata(out.join("bin/busybox")).unwrap(), std::fs::metadata(out.join("bin/sh")).unwrap());
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "unpacked as one file with two names");
}
