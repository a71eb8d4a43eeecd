//! Lab 03: import an image, mount its rootfs with overlayfs, change it, commit the
//! change, export it as an OCI layout.
//!
//! The lab sheet is `labs/03-rootfs/README.md`. Each stage looks at real state: the
//! store, the kernel's mount table (the overlay's options), the whiteout in the upper
//! directory, the committed layer's tar entries, and the exported layout.
//!
//! What real courses do differently: most stop at `docker run` and never open
//! `/var/lib/docker/overlay2`; here the checker reads the same kind of directories.

use std::fs;
use std::path::PathBuf;

use kthw_lab::lab::{Context, Failure, Lab, Outcome, Stage};

use crate::rootfs::Rootfs;
use crate::store::Store;

/// The image the learner imports.
pub const IMAGE: &str = "lab03/busybox:latest";
/// The image the learner commits.
pub const COMMITTED: &str = "lab03/busybox:changed";
/// The rootfs the learner mounts.
pub const ROOTFS: &str = "lab03";
/// The file the learner creates in the rootfs.
pub const NEW_FILE: &str = "etc/lab03.txt";
/// The OCI layout directory, under the lab directory.
pub const LAYOUT: &str = "03-oci";

// ANCHOR: lab
/// Lab 3's stages, in the order of the lab sheet.
pub fn lab() -> Lab {
    Lab {
        id: "03",
        title: "Root filesystems and images",
        sheet: "labs/03-rootfs/README.md",
        stages: vec![
            Stage::new("the image lab03/busybox is in the store", "ch03-rootfs.md#importing-an-image", imported),
            Stage::new(
                "rootfs lab03 is an overlay mount of its layers",
                "ch03-rootfs.md#stacking-layers-with-overlayfs",
                mounted,
            ),
            Stage::new(
                "the changes are in the upper dir only",
                "ch03-rootfs.md#copy-on-write-and-whiteouts",
                upper_dir,
            ),
            Stage::new(
                "lab03/busybox:changed has the change as a new layer",
                "ch03-rootfs.md#commit-an-upper-dir-becomes-a-layer",
                committed,
            ),
            Stage::new("the OCI layout holds lab03/busybox:changed", "ch03-rootfs.md#oci-image-layouts", exported),
        ],
    }
}
// ANCHOR_END: lab

fn store(ctx: &Context) -> Result<Store, Failure> {
    Store::open(ctx.paths.images()).map_err(|e| Failure::new(e.to_string(), "run the checker as root"))
}

fn imported(ctx: &Context) -> Outcome {
    let store = store(ctx)?;
    let image = store
        .image(IMAGE)
        .map_err(|e| Failure::new(e.to_string(), "step 2: `sudo kthw image import DIR lab03/busybox`"))?;
    let layers =
        store.layer_dirs(&image).map_err(|e| Failure::new(e.to_string(), "remove and import the image again"))?;
    if !layers.iter().any(|l| l.join("bin/busybox").is_file()) {
        return Err(Failure::new(
            "no layer of lab03/busybox has bin/busybox",
            "step 1: copy /bin/busybox into DIR/bin before importing",
        ));
    }
    Ok(format!("{IMAGE} has {} layer(s), id {}", layers.len(), crate::digest::short(&image.id())))
}

/// The fields of the mountinfo line whose mount point is `target`: (fstype, super options).
fn mount_of(target: &std::path::Path) -> Option<(String, String)> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let target = target.to_str()?;
    info.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        (fields.get(4) == Some(&target))
            .then(|| (fields[sep + 1].to_string(), fields.get(sep + 3).unwrap_or(&"").to_string()))
    })
}

fn mounted(ctx: &Context) -> Outcome {
    let store = store(ctx)?;
    let rootfs = Rootfs::open(&ctx.paths, ROOTFS)
        .map_err(|e| Failure::new(e.to_string(), "step 3: `sudo kthw rootfs mount lab03/busybox DIR --name lab03`"))?;
    let at = rootfs
        .meta
        .mounted_at
        .clone()
        .ok_or_else(|| Failure::new("rootfs lab03 is not mounted", "step 3: mount it again"))?;
    let (fstype, options) = mount_of(&at).ok_or_else(|| {
        Failure::new(
            format!("nothing is mounted on {}", at.display()),
            "step 3: `sudo kthw rootfs rm lab03`, then mount it again",
        )
    })?;
    if fstype != "overlay" {
        return Err(Failure::new(
            format!("{} is a {fstype} mount, not overlay", at.display()),
            "mount it with `kthw rootfs mount`",
        ));
    }
    let image =
        store.image(&rootfs.meta.image).map_err(|e| Failure::new(e.to_string(), "import lab03/busybox again"))?;
    let mut missing: Vec<PathBuf> = store.layer_dirs(&image).unwrap_or_default();
    missing.push(rootfs.init());
    missing.retain(|l| !options.contains(&l.display().to_string()));
    let upper = format!("upperdir={}", rootfs.upper().display());
    if !missing.is_empty() || !options.contains(&upper) {
        return Err(Failure::new(
            format!("the overlay's options are {options}; missing {missing:?} or {upper}"),
            "remount: `sudo kthw rootfs rm lab03` then step 3",
        ));
    }
    Ok(format!(
        "overlay on {} with lowerdir = init layer + {} image layer(s), {upper}",
        at.display(),
        image.diff_ids().len()
    ))
}

fn upper_dir(ctx: &Context) -> Outcome {
    let rootfs = Rootfs::open(&ctx.paths, ROOTFS).map_err(|e| Failure::new(e.to_string(), "step 3"))?;
    let ls = fs::symlink_metadata(rootfs.upper().join("bin/ls")).map_err(|_| {
        Failure::new("upper/bin/ls does not exist", "step 4: delete bin/ls through the mount: `rm DIR/bin/ls`")
    })?;
    if !crate::layer::is_whiteout(&ls) {
        return Err(Failure::new(
            "upper/bin/ls is not a whiteout (char device 0/0)",
            "delete it through the mount point, not in a layer directory",
        ));
    }
    let new = rootfs.upper().join(NEW_FILE);
    if !new.is_file() {
        return Err(Failure::new(
            format!("{} does not exist", new.display()),
            "step 4: `echo hello > DIR/etc/lab03.txt`",
        ));
    }
    let store = store(ctx)?;
    let image = store.image(&rootfs.meta.image).map_err(|e| Failure::new(e.to_string(), "step 2"))?;
    let layers = store.layer_dirs(&image).map_err(|e| Failure::new(e.to_string(), "step 2"))?;
    if !layers.iter().any(|l| l.join("bin/ls").exists()) || layers.iter().any(|l| l.join(NEW_FILE).exists()) {
        return Err(Failure::new(
            "the image's layer directory was changed: it lacks bin/ls or has etc/lab03.txt",
            "never write into images/layers; remove the images and import again (step 2)",
        ));
    }
    Ok("upper/bin/ls is a whiteout (c 0 0), upper/etc/lab03.txt is new; the image's layer is unchanged".into())
}

fn committed(ctx: &Context) -> Outcome {
    let store = store(ctx)?;
    let base = store.image(IMAGE).map_err(|e| Failure::new(e.to_string(), "step 2"))?;
    let image = store
        .image(COMMITTED)
        .map_err(|e| Failure::new(e.to_string(), "step 5: `sudo kthw rootfs commit lab03 lab03/busybox:changed`"))?;
    if image.manifest.layers().len() != base.manifest.layers().len() + 1 {
        return Err(Failure::new(
            "lab03/busybox:changed does not have exactly one layer more than lab03/busybox",
            "commit rootfs lab03 again",
        ));
    }
    let top = image.manifest.layers().last().map(|l| l.digest().to_string()).unwrap_or_default();
    let path = store.verified_blob_path(&top).map_err(|e| Failure::new(e.to_string(), "commit again"))?;
    let reader = crate::layer::open_layer(&path).map_err(|e| Failure::new(e.to_string(), "commit again"))?;
    let mut archive = tar::Archive::new(reader);
    let names: Vec<String> = archive
        .entries()
        .map_err(|e| Failure::new(e.to_string(), "commit again"))?
        .filter_map(|e| e.ok().map(|e| String::from_utf8_lossy(&e.path_bytes()).into_owned()))
        .collect();
    for want in ["bin/.wh.ls", NEW_FILE] {
        if !names.iter().any(|n| n == want) {
            return Err(Failure::new(
                format!("the new layer has no {want}; it has {names:?}"),
                "make the changes of step 4, then commit again",
            ));
        }
    }
    Ok(format!("top layer {} has bin/.wh.ls and {NEW_FILE}", crate::digest::short(&top)))
}

fn exported(ctx: &Context) -> Outcome {
    let store = store(ctx)?;
    let image = store.image(COMMITTED).map_err(|e| Failure::new(e.to_string(), "step 5"))?;
    let dir = ctx.paths.lab().join(LAYOUT);
    let fix = format!("step 6: `sudo kthw image export lab03/busybox:changed {} --ref changed`", dir.display());
    let index = fs::read(dir.join("index.json"))
        .map_err(|e| Failure::new(format!("cannot read {}/index.json: {e}", dir.display()), fix.clone()))?;
    let index: serde_json::Value =
        serde_json::from_slice(&index).map_err(|e| Failure::new(e.to_string(), fix.clone()))?;
    let entry = index["manifests"]
        .as_array()
        .and_then(|m| m.iter().find(|d| d["annotations"][crate::oci::REF_NAME] == "changed"))
        .ok_or_else(|| Failure::new("index.json has no ref named changed", fix.clone()))?;
    if entry["digest"] != image.manifest_digest.as_str() {
        return Err(Failure::new("the layout's `changed` is another image than lab03/busybox:changed", fix));
    }
    for blob in [&image.manifest_digest, &image.manifest.config().digest().to_string()] {
        let path = dir.join("blobs/sha256").join(&blob["sha256:".len()..]);
        let bytes = fs::read(&path).map_err(|_| Failure::new(format!("{} is missing", path.display()), fix.clone()))?;
        if crate::digest::of(&bytes) != *blob {
            return Err(Failure::new(format!("{} does not match its digest", path.display()), fix));
        }
    }
    Ok(format!("{}/index.json names {} as `changed`", dir.display(), crate::digest::short(&image.manifest_digest)))
}
