//! Making images without a registry: a directory or a tarball becomes a one-layer image,
//! and an image gets a new layer on top (what `kthw rootfs commit` and chapter 4's build
//! use).
//!
//! An image is written bottom-up, as every builder does: first the layer blobs, then the
//! config (which lists the layers' diff ids), then the manifest (which names the config
//! and the layer blobs by digest). The manifest's digest is the image's identity.
//!
//! What the real tools do differently: `docker import` does the same for a tarball, but
//! records a Docker-format manifest; BuildKit and buildah write OCI manifests as we do,
//! with richer history and annotations, and can compress layers with zstd.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, ImageManifestBuilder,
    MediaType, RootFsBuilder,
};

use crate::digest::HashingWriter;
use crate::layer;
use crate::store::{Image, Store};
use crate::{Error, Result};

/// The OCI architecture name of this machine (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// A layer blob that is in the store, with the digest of its uncompressed tar.
#[derive(Debug, Clone)]
pub struct NewLayer {
    pub descriptor: Descriptor,
    pub diff_id: String,
}

/// Stores the tar that `write_tar` writes as a gzip layer blob, and returns its
/// descriptor and diff id. The tar is hashed as it is compressed: the diff id names the
/// uncompressed tar, the blob digest the compressed one.
///
/// # Errors
/// If `write_tar` fails, or writing the blob does.
pub fn store_layer(store: &Store, write_tar: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<NewLayer> {
    let tmp = store.tmp_path("newlayer");
    let file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    let gz = flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::fast());
    let mut hashing = HashingWriter::new(gz);
    let written = write_tar(&mut hashing);
    let (gz, diff_id, _) = hashing.finish();
    let finished = gz.finish().and_then(|mut w| w.flush()).map_err(Error::io("write", &tmp));
    if let Err(e) = written.and(finished) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let size = fs::metadata(&tmp).map_err(Error::io("stat", &tmp))?.len();
    let digest = store.adopt_blob(&tmp, None)?;
    Ok(NewLayer { descriptor: descriptor(MediaType::ImageLayerGzip, size, &digest)?, diff_id })
}

/// Stores a tarball file as it is (gzip or plain) as a layer blob.
///
/// # Errors
/// If the file cannot be read.
pub fn store_layer_file(store: &Store, path: &Path) -> Result<NewLayer> {
    let file = File::open(path).map_err(Error::io("open", path))?;
    let (tmp, digest, size) = store.write_tmp("import", file)?;
    let mut tar = crate::digest::HashingReader::new(layer::open_layer(&tmp)?);
    io::copy(&mut tar, &mut io::sink()).map_err(Error::io("read tarball", path))?;
    let (diff_id, _) = tar.finish();
    let media = if diff_id == digest { MediaType::ImageLayer } else { MediaType::ImageLayerGzip };
    let digest = store.adopt_blob(&tmp, Some(&digest))?;
    Ok(NewLayer { descriptor: descriptor(media, size, &digest)?, diff_id })
}

fn descriptor(media: MediaType, size: u64, digest: &str) -> Result<Descriptor> {
    let d: oci_spec::image::Digest = digest.parse().map_err(|e| Error::bad("digest", e))?;
    Ok(Descriptor::new(media, size, d))
}

/// A config for a new one-layer image: Linux, this machine's architecture, `/bin/sh`.
pub fn base_config(created_by: &str) -> Result<ImageConfiguration> {
    let config = ConfigBuilder::default()
        .env(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()])
        .cmd(vec!["/bin/sh".to_string()])
        .build()
        .map_err(|e| Error::bad("config", e))?;
    ImageConfigurationBuilder::default()
        .architecture(host_arch())
        .os("linux")
        .created(now())
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(Vec::<String>::new())
                .build()
                .map_err(|e| Error::bad("rootfs", e))?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(now())
                .created_by(created_by)
                .build()
                .map_err(|e| Error::bad("history", e))?,
        ])
        .build()
        .map_err(|e| Error::bad("config", e))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

// ANCHOR: write_image
/// Writes an image: `config` with `layers` appended (on top of those it already lists),
/// then its manifest, then names it `name`.
///
/// # Errors
/// As [`Store::create_image`].
pub fn write_image(
    store: &Store,
    name: &str,
    mut config: ImageConfiguration,
    base_layers: Vec<Descriptor>,
    layers: Vec<NewLayer>,
    comment: Option<&str>,
) -> Result<Image> {
    let mut descriptors = base_layers;
    for layer in &layers {
        config.rootfs_mut().diff_ids_mut().push(layer.diff_id.clone());
        descriptors.push(layer.descriptor.clone());
    }
    if let Some(comment) = comment {
        let entry = HistoryBuilder::default()
            .created(now())
            .created_by(comment)
            .build()
            .map_err(|e| Error::bad("history", e))?;
        let mut history = config.history().clone().unwrap_or_default();
        history.push(entry);
        config.set_history(Some(history));
    }
    let config_bytes = config.to_string().map_err(|e| Error::bad("config", e))?;
    let config_digest = store.put_blob(config_bytes.as_bytes())?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config_bytes.len() as u64, &config_digest)?)
        .layers(descriptors)
        .build()
        .map_err(|e| Error::bad("manifest", e))?;
    let manifest_bytes = manifest.to_string().map_err(|e| Error::bad("manifest", e))?;
    store.create_image(name, manifest_bytes.as_bytes())
}
// ANCHOR_END: write_image

/// `kthw image import DIR NAME`: the directory's files become the one layer of an image.
///
/// # Errors
/// If the directory cannot be read, or as [`write_image`].
pub fn import_dir(store: &Store, dir: &Path, name: &str) -> Result<Image> {
    if !dir.is_dir() {
        return Err(Error::bad("import", format!("{} is not a directory", dir.display())));
    }
    let layer =
        store_layer(store, |w| crate::diff::write_tar(dir, w, &crate::diff::TarOptions::default()).map(|_| ()))?;
    let config = base_config(&format!("kthw image import {}", dir.display()))?;
    write_image(store, name, config, vec![], vec![layer], None)
}

/// `kthw image import FILE.tar[.gz] NAME`: the tarball, unchanged, is the one layer.
///
/// # Errors
/// As [`write_image`]; a hostile tarball is refused with the entry named.
pub fn import_tarball(store: &Store, file: &Path, name: &str) -> Result<Image> {
    let layer = store_layer_file(store, file)?;
    let config = base_config(&format!("kthw image import {}", file.display()))?;
    write_image(store, name, config, vec![], vec![layer], None)
}
