//! The image store: import, list, inspect, hold, remove, prune, df.

mod common;

use std::process::Command;

use common::{Env, run};
use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_rootfs::{Error, store};

// A directory becomes a one-layer image whose layer is unpacked once, in the store.
#[test]
fn import_dir_makes_a_one_layer_image() {
    require!(Need::Root);
    let env = Env::new();
    let image = env.busybox_image("busybox");
    assert_eq!(image.name, "busybox:latest");
    assert_eq!(image.manifest.layers().len(), 1);
    let layers = env.store.layer_dirs(&image).unwrap();
    assert!(layers[0].join("bin/busybox").is_file());
    assert_eq!(std::fs::read_link(layers[0].join("bin/sh")).unwrap(), std::path::Path::new("busybox"));
    let listing = store::render_list(&env.store.list().unwrap());
    common::settings().bind(|| insta::assert_snapshot!("image_ls", listing));
}

// A plain tarball is stored as it is (an uncompressed layer); a gzip one as gzip.
#[test]
fn import_plain_and_gzip_tarballs() {
    require!(Need::Root, Need::Command("tar"));
    let env = Env::new();
    let src = common::busybox_dir(&env.scratch("src"));
    let plain = env.scratch("t").join("bb.tar");
    let gz = env.scratch("t").join("bb.tar.gz");
    run(Command::new("tar").arg("-C").arg(&src).arg("-cf").arg(&plain).arg("."));
    run(Command::new("tar").arg("-C").arg(&src).arg("-czf").arg(&gz).arg("."));
    let a = kthw_rootfs::import::import_tarball(&env.store, &plain, "plain").unwrap();
    let b = kthw_rootfs::import::import_tarball(&env.store, &gz, "gz").unwrap();
    assert_eq!(a.manifest.layers()[0].media_type().to_string(), "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(b.manifest.layers()[0].media_type().to_string(), "application/vnd.oci.image.layer.v1.tar+gzip");
    // Same files, same uncompressed tar: one unpacked layer serves both images.
    assert_eq!(a.diff_ids(), b.diff_ids());
    assert_eq!(common::tree(&env.store.root().join("layers")).iter().filter(|p| !p.contains('/')).count(), 1);
}

// `kthw image rm` of an image in use fails and names the holder; after release it works
// and garbage-collects the blobs and the unpacked layer.
#[test]
fn image_in_use_cannot_be_removed() {
    require!(Need::Root);
    let env = Env::new();
    env.busybox_image("busybox");
    env.store.hold("busybox", "rootfs/demo").unwrap();
    let err = env.store.remove("busybox").unwrap_err();
    assert!(matches!(err, Error::ImageInUse { .. }));
    let msg = format!("error: {err}\n");
    common::settings().bind(|| insta::assert_snapshot!("image_rm_in_use", msg));
    env.store.release("rootfs/demo").unwrap();
    let removed = env.store.remove("busybox").unwrap();
    assert_eq!(removed.untagged, ["busybox:latest"]);
    assert_eq!(removed.blobs.len(), 3, "manifest, config, layer");
    assert_eq!(removed.layers.len(), 1);
    assert!(common::tree(&env.store.root().join("blobs/sha256")).is_empty());
    assert!(matches!(env.store.remove("busybox"), Err(Error::NoSuchImage(_))));
}

// `kthw image df` counts a layer shared by two images once in the total.
#[test]
fn df_counts_shared_layers_once() {
    require!(Need::Root);
    let env = Env::new();
    let image = env.busybox_image("busybox");
    // A second name for an image with the same layer and one more on top.
    let extra = env.scratch("extra");
    std::fs::write(extra.join("hello.txt"), "hello\n").unwrap();
    let layer = kthw_rootfs::import::store_layer(&env.store, |w| {
        kthw_rootfs::diff::write_tar(&extra, w, &Default::default()).map(|_| ())
    })
    .unwrap();
    let two = kthw_rootfs::import::write_image(
        &env.store,
        "busybox-hello",
        image.config.clone(),
        image.manifest.layers().clone(),
        vec![layer],
        Some("add hello.txt"),
    )
    .unwrap();
    let shared = image.manifest.layers()[0].size();
    let df = env.store.df().unwrap();
    let sum: u64 = df.images.iter().map(|r| r.size).sum();
    assert_eq!(sum - df.total, shared, "the shared layer is counted once in the total");
    assert_eq!(df.images[0].shared, shared);
    assert_eq!(two.manifest.layers().len(), 2);
    env.store.hold("busybox-hello", "rootfs/web").unwrap();
    let df = env.store.df().unwrap();
    assert_eq!(df.reclaimable, image.size() - shared, "only busybox's own blobs are reclaimable");
    common::settings().bind(|| insta::assert_snapshot!("image_df", store::render_df(&df)));
}

// A blob changed on disk is caught when the image is read.
#[test]
fn corrupted_blob_is_detected_on_read() {
    require!(Need::Root);
    let env = Env::new();
    let image = env.busybox_image("busybox");
    let config = image.manifest.config().digest().to_string();
    let path = env.store.root().join("blobs/sha256").join(&config["sha256:".len()..]);
    std::fs::write(&path, b"{\"tampered\": true}").unwrap();
    let err = env.store.image("busybox").unwrap_err();
    assert!(err.to_string().contains("corrupted or tampered with"), "{err}");
}

// Prune removes leftovers no image needs, and keeps what images use.
#[test]
fn prune_keeps_what_images_use() {
    require!(Need::Root);
    let env = Env::new();
    env.busybox_image("busybox");
    env.store.put_blob(b"orphan").unwrap();
    std::fs::write(env.store.tmp_path("partial"), b"half a download").unwrap();
    let removed = env.store.prune().unwrap();
    assert_eq!(removed.blobs, [kthw_rootfs::digest::of(b"orphan")]);
    assert!(common::tree(&env.store.root().join("tmp")).is_empty());
    assert!(env.store.image("busybox").is_ok());
}
