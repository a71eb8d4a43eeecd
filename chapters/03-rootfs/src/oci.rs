//! OCI image layouts: an image as a plain directory, the format that skopeo, umoci,
//! buildah, podman and containerd all read and write.
//!
//! ```text
//! DIR/
//!   oci-layout            {"imageLayoutVersion": "1.0.0"}
//!   index.json            the entry point: manifests, each with a ref name
//!   blobs/sha256/<hex>    manifests, configs, layers: the same content-addressed blobs
//! ```
//!
//! `index.json` lists manifests (or nested indexes, one manifest per platform); the
//! annotation `org.opencontainers.image.ref.name` gives each a name such as `latest`,
//! which is the `TAG` in `skopeo inspect oci:DIR:TAG` and `umoci ls --layout DIR`.
//! Exporting copies an image's blobs unchanged, so its digests, and so its identity,
//! survive the round trip.
//!
//! What the real tools do differently: skopeo and containerd can also write
//! `docker save` tarballs (a different index, `manifest.json`), and umoci keeps
//! garbage-collecting the layout when an image is replaced (`umoci gc`); we leave an
//! overwritten ref's blobs in place.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use crate::import::host_arch;
use crate::store::{Image, Store};
use crate::{Error, Result};

/// The annotation that names a manifest in an index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

// ANCHOR: export
/// Writes `image` into the OCI layout `dir` (created if needed) under `ref_name`,
/// replacing an older manifest of that name.
///
/// # Errors
/// A corrupted blob in the store, or an I/O error.
pub fn export(store: &Store, image: &Image, dir: &Path, ref_name: &str) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
    fs::write(dir.join("oci-layout"), LAYOUT).map_err(Error::io("write", dir.join("oci-layout")))?;
    let mut digests = vec![image.manifest_digest.clone(), image.manifest.config().digest().to_string()];
    digests.extend(image.manifest.layers().iter().map(|l| l.digest().to_string()));
    for digest in digests {
        let dest = blobs.join(crate::digest::hex_of(&digest)?);
        if !dest.exists() {
            store.copy_blob_to(&digest, &dest)?;
        }
    }
    let index_path = dir.join("index.json");
    let mut manifests = if index_path.exists() { read_index(dir)?.manifests().clone() } else { Vec::new() };
    manifests.retain(|d| ref_name_of(d) != Some(ref_name));
    // A pulled Docker-format manifest keeps its own media type: the index must say
    // what the blob really is.
    let media_type = image.manifest.media_type().clone().unwrap_or(MediaType::ImageManifest);
    let mut descriptor = Descriptor::new(
        media_type,
        image.manifest_size,
        image.manifest_digest.parse::<oci_spec::image::Digest>().map_err(|e| Error::bad("digest", e))?,
    );
    descriptor.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), ref_name.to_string())])));
    manifests.push(descriptor);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|e| Error::bad("index", e))?;
    let text = index.to_string().map_err(|e| Error::bad("index", e))?;
    fs::write(&index_path, text).map_err(Error::io("write", &index_path))
}
// ANCHOR_END: export

fn read_index(dir: &Path) -> Result<ImageIndex> {
    let path = dir.join("index.json");
    let bytes = fs::read(&path).map_err(Error::io("read", &path))?;
    ImageIndex::from_reader(&bytes[..]).map_err(|e| Error::bad(path.display().to_string(), e))
}

fn ref_name_of(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref().and_then(|a| a.get(REF_NAME)).map(String::as_str)
}

/// The ref names in a layout, for messages and `kthw image import`.
///
/// # Errors
/// If `index.json` cannot be read.
pub fn refs(dir: &Path) -> Result<Vec<String>> {
    Ok(read_index(dir)?.manifests().iter().filter_map(ref_name_of).map(String::from).collect())
}

/// Whether `dir` is an OCI image layout.
pub fn is_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file() && dir.join("index.json").is_file()
}

// ANCHOR: pick_platform
/// From an index or manifest list, the manifest for Linux on this machine's
/// architecture, as `docker pull` picks it.
///
/// # Errors
/// If no manifest is for this platform; the message lists those there are.
pub fn pick_platform(index: &ImageIndex) -> Result<Descriptor> {
    let arch = host_arch();
    let wanted = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == arch)
    };
    if let Some(d) = index.manifests().iter().find(wanted) {
        return Ok(d.clone());
    }
    let have: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref().map(|p| format!("{}/{}", p.os(), p.architecture())))
        .collect();
    Err(Error::bad("image index", format!("it has no manifest for linux/{arch}, only for: {}", have.join(", "))))
}
// ANCHOR_END: pick_platform

/// Whether a media type is an index (OCI) or a manifest list (Docker).
pub fn is_index(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

// ANCHOR: import
/// Reads the image `ref_name` (or the only one) from the OCI layout `dir` into the
/// store as `name`, verifying every blob on the way.
///
/// # Errors
/// A missing or ambiguous ref, a blob that does not match its digest, a refused layer.
pub fn import(store: &Store, dir: &Path, ref_name: Option<&str>, name: &str) -> Result<Image> {
    let version = fs::read_to_string(dir.join("oci-layout")).map_err(Error::io("read", dir.join("oci-layout")))?;
    if !version.contains("1.0.0") {
        return Err(Error::bad("OCI layout", format!("unknown version in {}/oci-layout: {version}", dir.display())));
    }
    let index = read_index(dir)?;
    let candidates: Vec<&Descriptor> = match ref_name {
        Some(r) => index.manifests().iter().filter(|d| ref_name_of(d) == Some(r) || d.digest().as_ref() == r).collect(),
        None => index.manifests().iter().collect(),
    };
    let mut descriptor = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Error::bad(
                "OCI layout",
                format!("{} has no image {:?}; it has {:?}", dir.display(), ref_name.unwrap_or(""), refs(dir)?),
            ));
        }
        _ => {
            return Err(Error::bad(
                "OCI layout",
                format!("{} has several images {:?}: name one", dir.display(), refs(dir)?),
            ));
        }
    };
    let read_blob = |d: &Descriptor| -> Result<Vec<u8>> {
        let path = dir.join("blobs/sha256").join(crate::digest::hex_of(d.digest().as_ref())?);
        let bytes = fs::read(&path).map_err(Error::io("read", &path))?;
        let actual = crate::digest::of(&bytes);
        if actual != d.digest().as_ref() {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: d.digest().to_string(),
                actual,
            });
        }
        Ok(bytes)
    };
    while is_index(descriptor.media_type().as_ref()) {
        let nested =
            ImageIndex::from_reader(&read_blob(&descriptor)?[..]).map_err(|e| Error::bad("nested index", e))?;
        descriptor = pick_platform(&nested)?;
    }
    let manifest_bytes = read_blob(&descriptor)?;
    let manifest =
        oci_spec::image::ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| Error::bad("manifest", e))?;
    let mut needed = vec![manifest.config().clone()];
    needed.extend(manifest.layers().iter().cloned());
    for blob in needed {
        let digest = blob.digest().to_string();
        if store.has_blob(&digest) {
            continue;
        }
        let src = dir.join("blobs/sha256").join(crate::digest::hex_of(&digest)?);
        let file = fs::File::open(&src).map_err(Error::io("open", &src))?;
        let (tmp, _, _) = store.write_tmp("oci", file)?;
        store.adopt_blob(&tmp, Some(&digest))?;
    }
    store.create_image(name, &manifest_bytes)
}
// ANCHOR_END: import
