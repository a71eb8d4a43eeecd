//! A container's rootfs: overlay + init layer + pivot_root, copy-on-write, diff and
//! commit, and why chroot is not enough.

mod common;

use std::ffi::OsString;
use std::path::PathBuf;

use common::Env;
use kthw_lab::host::Namespace;
use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_rootfs::pivot::{self, Confinement};
use kthw_rootfs::rootfs::Rootfs;

fn sh(script: &str) -> Vec<OsString> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn needs() -> [Need; 4] {
    [Need::Root, Need::Overlayfs, Need::Namespace(Namespace::Mount), Need::Namespace(Namespace::Pid)]
}

// A command in the rootfs is pid 1 with its own hostname, a fresh /proc, the minimal
// /dev, a read-only /sys, the init layer's files, and none of the host's files.
#[test]
fn shell_runs_in_the_pivoted_rootfs() {
    let [a, b, c, d] = needs();
    require!(a, b, c, d);
    let env = Env::new();
    env.busybox_image("busybox");
    let out = env.scratch("out");
    let volumes = vec![(out.clone(), PathBuf::from("/out"))];
    let rootfs = Rootfs::create(&env.home.paths, &env.store, "busybox", "t1", Some("box"), volumes).unwrap();
    let script = "echo $$ > /out/pid; hostname > /out/hostname; ls /dev > /out/dev; \
                  cat /etc/hosts > /out/hosts; (touch /sys/x 2>/dev/null && echo rw || echo ro) > /out/sys; \
                  awk '$2 == \"/\" {print $3}' /proc/mounts > /out/rootfs-type; \
                  (test -e /etc/debian_version && echo host || echo image) > /out/whose-files";
    let code = pivot::run(&rootfs.spec(&env.store, sh(script)).unwrap()).unwrap();
    assert_eq!(code, 0);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap().trim().to_string();
    assert_eq!(read("pid"), "1");
    assert_eq!(read("hostname"), "box");
    assert_eq!(
        read("dev").split_whitespace().collect::<Vec<_>>(),
        ["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]
    );
    assert!(read("hosts").contains("127.0.1.1\tbox"));
    assert_eq!(read("sys"), "ro");
    assert_eq!(read("rootfs-type"), "overlay");
    assert_eq!(read("whose-files"), "image");
    // The exit code of the command comes back; a missing command is 127, as in Docker.
    assert_eq!(pivot::run(&rootfs.spec(&env.store, sh("exit 7")).unwrap()).unwrap(), 7);
    assert_eq!(pivot::run(&rootfs.spec(&env.store, vec!["no-such-cmd".into()]).unwrap()).unwrap(), 127);
    // Nothing stays mounted on the host: the overlay lived in the child's namespace.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(rootfs.merged().to_str().unwrap()));
    rootfs.remove(&env.store).unwrap();
}

// Copy-on-write: a change lands in the upper dir only; a deletion is a whiteout there;
// the diff lists both but not the volume; a commit makes a two-layer image in which the
// change and the deletion are there.
#[test]
fn changes_land_in_upper_and_commit_makes_a_layer() {
    let [a, b, c, d] = needs();
    require!(a, b, c, d);
    let env = Env::new();
    let base = env.busybox_image("busybox");
    let lower = env.store.layer_dirs(&base).unwrap().remove(0);
    let vol = env.scratch("vol");
    let rootfs =
        Rootfs::create(&env.home.paths, &env.store, "busybox", "cow", None, vec![(vol.clone(), "/data".into())])
            .unwrap();
    let script = "echo changed > /etc/motd; rm /bin/ls; mkdir /srv; echo new > /srv/new.txt; echo kept > /data/v.txt";
    assert_eq!(pivot::run(&rootfs.spec(&env.store, sh(script)).unwrap()).unwrap(), 0);

    assert_eq!(std::fs::read_to_string(rootfs.upper().join("etc/motd")).unwrap(), "changed\n");
    assert_eq!(std::fs::read_to_string(lower.join("etc/motd")).unwrap(), "welcome to the lower layer\n");
    let ls = std::fs::symlink_metadata(rootfs.upper().join("bin/ls")).unwrap();
    assert!(kthw_rootfs::layer::is_whiteout(&ls), "bin/ls is a whiteout in the upper dir");
    assert!(lower.join("bin/ls").exists(), "the lower layer is untouched");
    assert_eq!(std::fs::read_to_string(vol.join("v.txt")).unwrap(), "kept\n");

    let diff: Vec<String> = rootfs.diff(&env.store).unwrap().iter().map(ToString::to_string).collect();
    let diff = diff.join("\n") + "\n";
    common::settings().bind(|| insta::assert_snapshot!("rootfs_diff", diff));

    let image = rootfs.commit(&env.store, "busybox-changed").unwrap();
    assert_eq!(image.manifest.layers().len(), 2);
    assert_eq!(image.manifest.layers()[0], base.manifest.layers()[0], "the base layer is shared, not copied");
    let top = env.store.layer_dirs(&image).unwrap().pop().unwrap();
    assert!(kthw_rootfs::layer::is_whiteout(&std::fs::symlink_metadata(top.join("bin/ls")).unwrap()));
    assert!(!top.join("data").exists(), "the volume is not part of the commit");
    assert!(!top.join("etc/hosts").exists(), "the init layer is not part of the commit");

    let again = Rootfs::create(&env.home.paths, &env.store, "busybox-changed", "again", None, vec![]).unwrap();
    let check = "test ! -e /bin/ls && test ! -e /data && grep -q changed /etc/motd && test -f /srv/new.txt";
    assert_eq!(pivot::run(&again.spec(&env.store, sh(check)).unwrap()).unwrap(), 0);
    again.remove(&env.store).unwrap();
    rootfs.remove(&env.store).unwrap();
    env.store.remove("busybox-changed").unwrap();
}

// A rootfs holds its image: `image rm` names it until the rootfs is removed.
#[test]
fn rootfs_holds_its_image() {
    require!(Need::Root, Need::Overlayfs);
    let env = Env::new();
    env.busybox_image("busybox");
    let mut rootfs = Rootfs::create(&env.home.paths, &env.store, "busybox", "held", None, vec![]).unwrap();
    let target = env.scratch("mnt");
    rootfs.mount(&env.store, &target).unwrap();
    assert!(target.join("bin/busybox").exists() && target.join("etc/hostname").exists());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo.lines().find(|l| l.contains(target.to_str().unwrap())).expect("overlay is mounted");
    assert!(line.contains(" - overlay overlay ") && line.contains("upperdir="), "{line}");
    let err = env.store.remove("busybox").unwrap_err().to_string();
    assert!(err.contains("in use by rootfs/held"), "{err}");
    rootfs.remove(&env.store).unwrap();
    assert!(!std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(target.to_str().unwrap()));
    env.store.remove("busybox").unwrap();
}

// chroot is escapable by a root process; pivot_root plus unmounting the old root is not.
#[test]
fn chroot_escapes_and_pivot_root_does_not() {
    require!(Need::Root, Need::Namespace(Namespace::Mount));
    let env = Env::new();
    let dir = common::busybox_dir(&env.scratch("escape"));
    assert!(pivot::escape_demo(&dir, Confinement::Chroot).unwrap(), "chroot alone is escapable");
    assert!(!pivot::escape_demo(&dir, Confinement::PivotRoot).unwrap(), "pivot_root is not");
    let report = pivot::escape_report(&dir).unwrap();
    common::settings().bind(|| insta::assert_snapshot!("rootfs_escape", report));
}
