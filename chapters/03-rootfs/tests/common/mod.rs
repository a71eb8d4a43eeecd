//! Test helpers: a busybox root filesystem built from Debian's busybox-static (no
//! download), crafted tarballs, and a store in a private KTHW_HOME.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use kthw_lab::systest::TestHome;
use kthw_rootfs::Store;

/// A private home and the store in it.
pub struct Env {
    pub home: TestHome,
    pub store: Store,
}

impl Env {
    pub fn new() -> Env {
        let home = TestHome::new();
        let store = Store::open(home.paths.images()).expect("open store");
        Env { home, store }
    }

    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Imports the busybox directory as `name`.
    pub fn busybox_image(&self, name: &str) -> kthw_rootfs::Image {
        let dir = busybox_dir(&self.scratch("busybox-src"));
        kthw_rootfs::import::import_dir(&self.store, &dir, name).expect("import busybox")
    }
}

/// A minimal busybox root filesystem: `/bin/busybox` and one symlink per applet.
pub fn busybox_dir(at: &Path) -> PathBuf {
    let root = at.join("rootfs");
    if root.exists() {
        return root;
    }
    for d in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy /bin/busybox (apt-get install busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/motd"), "welcome to the lower layer\n").unwrap();
    root
}

/// One entry of a crafted tarball, written with raw header bytes so that names the tar
/// crate would refuse (`..`, absolute) can be written, as an attacker would.
pub enum Raw<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    CharDevice(&'a str, u32, u32),
}

pub fn crafted_tar(path: &Path, entries: &[Raw<'_>]) {
    let mut out = Vec::new();
    for entry in entries {
        let mut h = tar::Header::new_old();
        let (name, kind, link, data): (&str, tar::EntryType, &str, &[u8]) = match entry {
            Raw::File(n, d) => (n, tar::EntryType::Regular, "", d),
            Raw::Dir(n) => (n, tar::EntryType::Directory, "", b""),
            Raw::Symlink(n, t) => (n, tar::EntryType::Symlink, t, b""),
            Raw::Hardlink(n, t) => (n, tar::EntryType::Link, t, b""),
            Raw::CharDevice(n, _, _) => (n, tar::EntryType::Char, "", b""),
        };
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if let Raw::CharDevice(_, major, minor) = entry {
            let _ = h.set_device_major(*major);
            let _ = h.set_device_minor(*minor);
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    std::fs::File::create(path).unwrap().write_all(&out).unwrap();
}

/// Every file under `dir`, relative, sorted (to compare trees).
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs a command and returns its stdout, panicking with stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// insta settings: kthw's redactions plus sizes (busybox differs between Debian releases).
pub fn settings() -> insta::Settings {
    let mut s = kthw_lab::snapshot::settings();
    // The padding before it goes too: columns are right-aligned, and a size whose third
    // decimal is 0 prints a digit shorter (`1.18MB`), which moved the padding (a flaky
    // snapshot, since a config's size varies with its timestamp).
    s.add_filter(r" *\b\d+(\.\d+)?(B|kB|MB|GB)\b", "  [SIZE]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[SHORT-ID]");
    s.set_snapshot_path("snapshots");
    s
}
