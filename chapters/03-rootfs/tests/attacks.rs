//! Hostile layers: each crafted tarball is refused with the entry named, nothing is
//! written outside the store, and no partial image is left behind.

mod common;

use std::path::Path;

use common::{Env, Raw, crafted_tar};
use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_rootfs::Error;

/// Imports the crafted tarball and returns the error, after checking that the store
/// holds no name, blob or layer afterwards and that `outside` was not created.
fn refused(entries: &[Raw<'_>], outside: &Path) -> String {
    let env = Env::new();
    let tarball = env.scratch("attack").join("layer.tar");
    crafted_tar(&tarball, entries);
    let err = kthw_rootfs::import::import_tarball(&env.store, &tarball, "evil").expect_err("the layer must be refused");
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
    assert!(env.store.refs().unwrap().is_empty(), "no image name is left");
    for dir in ["blobs/sha256", "layers", "tmp"] {
        let left = common::tree(&env.store.root().join(dir));
        assert!(left.is_empty(), "{dir} still has {left:?}");
    }
    assert!(!outside.exists(), "{} was written outside the rootfs", outside.display());
    err.to_string()
}

fn outside(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kthw-escaped-{name}-{}", std::process::id()))
}

// A file named with `..` is refused: it would land outside the layer directory.
#[test]
fn dot_dot_path_is_refused() {
    require!(Need::Root);
    let target = outside("dotdot");
    let name = format!("../../../../../../../..{}", target.display());
    let err = refused(&[Raw::File(&name, b"pwned")], &target);
    assert!(err.contains("climbs out with `..`") && err.contains("kthw-escaped-dotdot"), "{err}");
}

// An absolute path is refused.
#[test]
fn absolute_path_is_refused() {
    require!(Need::Root);
    let target = outside("absolute");
    let err = refused(&[Raw::File(target.to_str().unwrap(), b"pwned")], &target);
    assert!(err.contains("is an absolute path"), "{err}");
}

// A symlink to a host directory, then a file written "inside" it, is refused at the file.
#[test]
fn write_through_symlink_is_refused() {
    require!(Need::Root);
    let target = outside("symlink");
    std::fs::create_dir_all(&target).unwrap();
    let dir = target.to_str().unwrap().to_string();
    let result = std::panic::catch_unwind(|| {
        refused(&[Raw::Symlink("escape", &dir), Raw::File("escape/pwned", b"pwned")], &target.join("pwned"))
    });
    let _ = std::fs::remove_dir_all(&target);
    let err = result.unwrap();
    assert!(err.contains("\"escape/pwned\"") && err.contains("through the symbolic link escape"), "{err}");
}

// A relative symlink that climbs above the rootfs is refused.
#[test]
fn climbing_symlink_is_refused() {
    require!(Need::Root);
    let err = refused(&[Raw::Dir("etc"), Raw::Symlink("etc/up", "../../../../../../tmp")], &outside("never"));
    assert!(err.contains("\"etc/up\"") && err.contains("climbs out of the rootfs"), "{err}");
}

// Hard links to host files, by `..` or by absolute path, are refused.
#[test]
fn hardlink_escapes_are_refused() {
    require!(Need::Root);
    let err = refused(&[Raw::Hardlink("passwd", "../../../../../../etc/passwd")], &outside("never"));
    assert!(err.contains("hard link whose target climbs out"), "{err}");
    let err = refused(&[Raw::Hardlink("passwd", "/etc/passwd")], &outside("never"));
    assert!(err.contains("hard link whose target is an absolute path"), "{err}");
    let err = refused(&[Raw::Symlink("s", "/etc"), Raw::Hardlink("passwd", "s/passwd")], &outside("never"));
    assert!(err.contains("goes through the symbolic link s"), "{err}");
}

// Device nodes are refused: an image may not hand the host's disk to a container.
#[test]
fn device_nodes_are_refused() {
    require!(Need::Root);
    let err = refused(&[Raw::Dir("dev"), Raw::CharDevice("dev/sda", 8, 0)], &outside("never"));
    assert!(err.contains("\"dev/sda\" is a device node"), "{err}");
}

// A refusal names the layer, the entry and says nothing was stored: the book shows it.
#[test]
fn refusal_message_snapshot() {
    require!(Need::Root);
    let target = outside("snapshot");
    let err = refused(&[Raw::Dir("etc"), Raw::File("../../../../etc/cron.d/pwned", b"* * * * * root sh")], &target);
    common::settings().bind(|| insta::assert_snapshot!("attack_dotdot", format!("error: {err}\n")));
}
