//! OCI image layouts: what we export, skopeo and umoci read; what they write, we read.

mod common;

use std::process::Command;

use common::{Env, run};
use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_rootfs::oci;

// An exported layout is read by `skopeo inspect oci:DIR:TAG`, listed by `umoci ls` and
// unpacked by `umoci unpack`, with our digests intact.
#[test]
fn skopeo_and_umoci_read_our_export() {
    require!(Need::Root, Need::Command("skopeo"), Need::Command("umoci"));
    let env = Env::new();
    let image = env.busybox_image("busybox");
    let layout = env.home.path().join("layout");
    oci::export(&env.store, &image, &layout, "latest").unwrap();

    let inspect = run(Command::new("skopeo").arg("inspect").arg(format!("oci:{}:latest", layout.display())));
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Digest"], image.manifest_digest.as_str());
    assert_eq!(json["Layers"][0], image.manifest.layers()[0].digest().as_ref());
    assert_eq!(json["Architecture"], kthw_rootfs::import::host_arch());

    let ls = run(Command::new("umoci").args(["ls", "--layout"]).arg(&layout));
    assert_eq!(ls.trim(), "latest");
    let bundle = env.home.path().join("bundle");
    run(Command::new("umoci").arg("unpack").arg("--image").arg(format!("{}:latest", layout.display())).arg(&bundle));
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(oci::refs(&layout).unwrap(), ["latest"]);
}

// A layout written by skopeo (a copy of ours under a new tag) and one built by umoci
// (new image, a layer inserted) are imported and unpacked.
#[test]
fn we_read_layouts_skopeo_and_umoci_write() {
    require!(Need::Root, Need::Command("skopeo"), Need::Command("umoci"));
    let env = Env::new();
    let image = env.busybox_image("busybox");
    let ours = env.home.path().join("ours");
    oci::export(&env.store, &image, &ours, "latest").unwrap();

    let theirs = env.home.path().join("skopeo-layout");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:latest", ours.display()))
        .arg(format!("oci:{}:copied", theirs.display())));
    let copied = oci::import(&env.store, &theirs, Some("copied"), "from-skopeo").unwrap();
    assert_eq!(copied.diff_ids(), image.diff_ids());

    let built = env.home.path().join("umoci-layout");
    let src = common::busybox_dir(&env.scratch("src"));
    let tag = format!("{}:base", built.display());
    run(Command::new("umoci").args(["init", "--layout"]).arg(&built));
    run(Command::new("umoci").args(["new", "--image"]).arg(&tag));
    run(Command::new("umoci").args(["insert", "--image"]).arg(&tag).arg(src.join("bin")).arg("/bin"));
    let from_umoci = oci::import(&env.store, &built, None, "from-umoci").unwrap();
    let top = env.store.layer_dirs(&from_umoci).unwrap().pop().unwrap();
    assert!(top.join("bin/busybox").is_file());

    let err = oci::import(&env.store, &theirs, Some("nope"), "x").unwrap_err().to_string();
    assert!(err.contains("has no image \"nope\"") && err.contains("copied"), "{err}");
}
