//! The image store: content-addressed blobs, unpacked layers, names, and holds.
//!
//! ```text
//! images/
//!   blobs/sha256/<hex>     every manifest, config and layer tarball, named by digest
//!   layers/<diff-id hex>/  each layer unpacked once (overlayfs whiteouts), shared
//!   refs.json              image name -> manifest digest ("busybox:latest" -> sha256:..)
//!   holds.json             holder -> image it uses ("rootfs/demo" -> "busybox:latest")
//!   tmp/                   downloads and unpacks in progress (never read as content)
//!   lock                   flock'ed while the store changes
//! ```
//!
//! An image is its **manifest**: a small JSON blob that names one **config** blob (the
//! command, environment, and the `diff_ids`: digests of the *uncompressed* layers) and
//! the **layer** blobs (usually gzip). Everything is verified against its digest when
//! written and again when read. A layer is unpacked once, under its diff id, and every
//! image that has it shares the directory, as overlay lower layers are shared.
//!
//! A **hold** records that something uses an image (a rootfs now, a container in
//! chapter 4). `remove` refuses a held image and names the holders. Removing an image
//! drops its name, then garbage-collects: whatever no name reaches any more is deleted.
//!
//! What the real stores do differently: containerd keeps this in a bolt database with
//! leases and labels for its garbage collector, and snapshots (unpacked layers) are keyed
//! by *chain id* (a layer plus all below it), because its snapshotters can't share a
//! layer between two different stacks; Docker's `image/` and `layerdb/` directories do the
//! same. We key by diff id, which is enough for overlayfs, whose lower layers are
//! independent directories.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};
use serde::Serialize;

use crate::digest::{self, HashingReader, HashingWriter};
use crate::layer::{self, Whiteouts};
use crate::{Error, Result};

/// The image store under one directory (`Paths::images()`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One image, read from the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The name it was found under: `busybox:latest`.
    pub name: String,
    pub manifest_digest: String,
    /// The size of the manifest blob (a manifest does not carry its own size).
    pub manifest_size: u64,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

impl Image {
    /// The image id, as Docker shows it: the digest of the config.
    pub fn id(&self) -> String {
        self.manifest.config().digest().to_string()
    }

    /// The diff ids of the layers, bottom first.
    pub fn diff_ids(&self) -> &[String] {
        self.config.rootfs().diff_ids()
    }

    /// The size of the manifest, config and layer blobs.
    pub fn size(&self) -> u64 {
        self.blobs().iter().map(|(_, s)| s).sum()
    }

    /// Every blob of the image with its size: manifest, config, layers.
    fn blobs(&self) -> Vec<(String, u64)> {
        let mut out = vec![(self.manifest_digest.clone(), self.manifest_size)];
        out.push((self.manifest.config().digest().to_string(), self.manifest.config().size()));
        out.extend(self.manifest.layers().iter().map(|l| (l.digest().to_string(), l.size())));
        out
    }
}

/// A row of `kthw image ls`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub id: String,
    pub layers: usize,
    pub size: u64,
    pub held_by: Vec<String>,
}

/// A row of `kthw image df`: sizes shared between images are counted once in the total.
#[derive(Debug, Clone, Serialize)]
pub struct DfRow {
    pub name: String,
    pub size: u64,
    pub shared: u64,
    pub unique: u64,
    pub held_by: Vec<String>,
}

/// What `kthw image df` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Df {
    pub images: Vec<DfRow>,
    /// Every blob once.
    pub total: u64,
    /// What removing every image no one holds would free.
    pub reclaimable: u64,
}

/// What a removal or prune deleted.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Removed {
    pub untagged: Vec<String>,
    pub blobs: Vec<String>,
    pub layers: Vec<String>,
    pub bytes: u64,
}

/// A lock on the store, held while it changes; released on drop.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// A normalised image name: `name:tag`, `latest` when no tag is given.
///
/// # Errors
/// [`Error::BadReference`] for an empty name or characters a registry would refuse.
pub fn normalize_name(name: &str) -> Result<String> {
    let bad = |why: &str| Error::BadReference { name: name.to_string(), why: why.to_string() };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b)) || name.contains("..") {
        return Err(bad("use letters, digits and . _ - / : only"));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    Ok(if last.contains(':') || last.contains('@') { name.to_string() } else { format!("{name}:latest") })
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    ///
    /// # Errors
    /// If the directories cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers", "tmp"] {
            let d = root.join(dir);
            fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
        }
        Ok(Store { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Locks the store against other kthw processes until the value is dropped.
    ///
    /// # Errors
    /// If the lock file cannot be opened or locked.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.root.join("lock");
        let file =
            File::options().create(true).truncate(false).write(true).open(&path).map_err(Error::io("open", &path))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| Error::sys(format!("flock {}", path.display()))(e))
    }

    /// A fresh scratch path under `tmp/` (unique in this process and across processes).
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{what}-{}-{n}", std::process::id()))
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest::hex_of(digest)?))
    }

    /// The unpacked directory of the layer with this diff id.
    ///
    /// # Errors
    /// If `diff_id` is not a digest.
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(digest::hex_of(diff_id)?))
    }

    /// Whether the store has this blob.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    // ANCHOR: put_blob
    /// Stores `bytes` under their digest and returns it.
    ///
    /// # Errors
    /// If the blob cannot be written.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let tmp = self.tmp_path("blob");
        fs::write(&tmp, bytes).map_err(Error::io("write", &tmp))?;
        self.adopt_blob(&tmp, None)
    }

    /// Moves the file at `tmp` into the store under its digest, after hashing it. With
    /// `expected`, a file that does not hash to it is deleted and refused: nothing
    /// enters the store under a name that is not its content's.
    ///
    /// # Errors
    /// [`Error::DigestMismatch`], or an I/O error.
    pub fn adopt_blob(&self, tmp: &Path, expected: Option<&str>) -> Result<String> {
        let file = File::open(tmp).map_err(Error::io("open", tmp))?;
        let mut reader = HashingReader::new(file);
        io::copy(&mut reader, &mut io::sink()).map_err(Error::io("read", tmp))?;
        let (actual, _) = reader.finish();
        if let Some(expected) = expected {
            if expected != actual {
                let _ = fs::remove_file(tmp);
                return Err(Error::DigestMismatch {
                    what: format!("blob {expected}"),
                    expected: expected.into(),
                    actual,
                });
            }
        }
        let dest = self.blob_path(&actual)?;
        fs::rename(tmp, &dest).map_err(Error::io("store blob", &dest))?;
        Ok(actual)
    }

    /// Reads a whole blob, checking that it still hashes to its name.
    ///
    /// # Errors
    /// [`Error::DigestMismatch`] if the file on disk was changed.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = fs::read(&path).map_err(Error::io("read blob", &path))?;
        let actual = digest::of(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {}", path.display()),
                expected: digest.into(),
                actual,
            });
        }
        Ok(bytes)
    }
    // ANCHOR_END: put_blob

    /// The path of a blob after checking its content (for copying or unpacking it).
    ///
    /// # Errors
    /// [`Error::DigestMismatch`] if the file on disk was changed.
    pub fn verified_blob_path(&self, digest: &str) -> Result<PathBuf> {
        let path = self.blob_path(digest)?;
        let file = File::open(&path).map_err(Error::io("open blob", &path))?;
        let mut reader = HashingReader::new(file);
        io::copy(&mut reader, &mut io::sink()).map_err(Error::io("read blob", &path))?;
        let (actual, _) = reader.finish();
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {}", path.display()),
                expected: digest.into(),
                actual,
            });
        }
        Ok(path)
    }

    fn read_json<T: serde::de::DeserializeOwned + Default>(&self, file: &str) -> Result<T> {
        let path = self.root.join(file);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::bad(path.display().to_string(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(Error::io("read", path)(e)),
        }
    }

    fn write_json(&self, file: &str, value: &impl Serialize) -> Result<()> {
        let path = self.root.join(file);
        let tmp = self.tmp_path(file);
        let mut text = serde_json::to_vec_pretty(value).map_err(|e| Error::bad(file, e))?;
        text.push(b'\n');
        fs::write(&tmp, text).map_err(Error::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(Error::io("write", &path))
    }

    /// Every image name and the digest of its manifest.
    ///
    /// # Errors
    /// If `refs.json` is unreadable.
    pub fn refs(&self) -> Result<BTreeMap<String, String>> {
        self.read_json("refs.json")
    }

    /// Every holder and the image it holds.
    ///
    /// # Errors
    /// If `holds.json` is unreadable.
    pub fn holds(&self) -> Result<BTreeMap<String, String>> {
        self.read_json("holds.json")
    }

    // ANCHOR: hold
    /// Records that `holder` (e.g. `rootfs/demo`, later `container/web`) uses `image`,
    /// so that the image cannot be removed under it.
    ///
    /// # Errors
    /// [`Error::NoSuchImage`] if there is no such image.
    pub fn hold(&self, image: &str, holder: &str) -> Result<()> {
        let _lock = self.lock()?;
        let image = normalize_name(image)?;
        if !self.refs()?.contains_key(&image) {
            return Err(Error::NoSuchImage(image));
        }
        let mut holds = self.holds()?;
        holds.insert(holder.to_string(), image);
        self.write_json("holds.json", &holds)
    }

    /// Forgets `holder`'s hold, if it had one.
    ///
    /// # Errors
    /// If `holds.json` cannot be rewritten.
    pub fn release(&self, holder: &str) -> Result<()> {
        let _lock = self.lock()?;
        let mut holds = self.holds()?;
        if holds.remove(holder).is_some() {
            self.write_json("holds.json", &holds)?;
        }
        Ok(())
    }

    /// Who holds `image` (a normalised name).
    fn holders_of(holds: &BTreeMap<String, String>, image: &str) -> Vec<String> {
        holds.iter().filter(|(_, i)| *i == image).map(|(h, _)| h.clone()).collect()
    }
    // ANCHOR_END: hold

    /// The image named `name`.
    ///
    /// # Errors
    /// [`Error::NoSuchImage`], or a missing or corrupted blob.
    pub fn image(&self, name: &str) -> Result<Image> {
        let name = normalize_name(name)?;
        let digest = self.refs()?.get(&name).cloned().ok_or_else(|| Error::NoSuchImage(name.clone()))?;
        self.image_by_digest(&name, &digest)
    }

    fn image_by_digest(&self, name: &str, digest: &str) -> Result<Image> {
        let manifest_bytes = self.read_blob(digest)?;
        let manifest = ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| Error::bad("manifest", e))?;
        let config_bytes = self.read_blob(manifest.config().digest().as_ref())?;
        let config = ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| Error::bad("image config", e))?;
        Ok(Image {
            name: name.to_string(),
            manifest_digest: digest.to_string(),
            manifest_size: manifest_bytes.len() as u64,
            manifest,
            config,
        })
    }

    /// The raw manifest and config JSON of an image, for `kthw image inspect`.
    ///
    /// # Errors
    /// As [`Store::image`].
    pub fn inspect(&self, name: &str) -> Result<serde_json::Value> {
        let image = self.image(name)?;
        let holds = self.holds()?;
        let parse = |d: &str| -> Result<serde_json::Value> {
            serde_json::from_slice(&self.read_blob(d)?).map_err(|e| Error::bad("blob", e))
        };
        Ok(serde_json::json!({
            "name": image.name,
            "id": image.id(),
            "manifest_digest": image.manifest_digest,
            "held_by": Self::holders_of(&holds, &image.name),
            "manifest": parse(&image.manifest_digest)?,
            "config": parse(image.manifest.config().digest().as_ref())?,
        }))
    }

    /// `kthw image ls`.
    ///
    /// # Errors
    /// If the store is unreadable.
    pub fn list(&self) -> Result<Vec<Summary>> {
        let holds = self.holds()?;
        let mut out = Vec::new();
        for (name, digest) in self.refs()? {
            let image = self.image_by_digest(&name, &digest)?;
            out.push(Summary {
                id: digest::short(&image.id()).to_string(),
                layers: image.manifest.layers().len(),
                size: image.size(),
                held_by: Self::holders_of(&holds, &name),
                name,
            });
        }
        Ok(out)
    }

    // ANCHOR: create_image
    /// Records an image whose blobs (config and layers) are already in the store:
    /// writes the manifest, unpacks every layer that is not unpacked yet (checking it
    /// against its diff id), and only then gives the image its name. A layer that is
    /// refused leaves no name and no blob behind.
    ///
    /// # Errors
    /// A missing blob, a refused layer, a diff id that does not match.
    pub fn create_image(&self, name: &str, manifest_bytes: &[u8]) -> Result<Image> {
        let name = normalize_name(name)?;
        let _lock = self.lock()?;
        let result = self.create_image_locked(&name, manifest_bytes);
        if result.is_err() {
            // Nothing names the new blobs: collecting garbage removes them.
            let _ = self.collect_garbage();
        }
        result
    }

    fn create_image_locked(&self, name: &str, manifest_bytes: &[u8]) -> Result<Image> {
        let manifest_digest = self.put_blob(manifest_bytes)?;
        let image = self.image_by_digest(name, &manifest_digest)?;
        let layers = image.manifest.layers();
        let diff_ids = image.diff_ids();
        if layers.len() != diff_ids.len() {
            return Err(Error::bad(
                "image",
                format!("its manifest has {} layers but its config {} diff ids", layers.len(), diff_ids.len()),
            ));
        }
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            self.unpack_layer(layer, diff_id)?;
        }
        let mut refs = self.refs()?;
        refs.insert(name.to_string(), manifest_digest);
        self.write_json("refs.json", &refs)?;
        Ok(image)
    }
    // ANCHOR_END: create_image

    /// Unpacks one layer blob into `layers/<diff id>` (once), checking that the
    /// uncompressed tar hashes to the diff id.
    fn unpack_layer(&self, layer: &Descriptor, diff_id: &str) -> Result<()> {
        let dest = self.layer_dir(diff_id)?;
        if dest.exists() {
            return Ok(());
        }
        let blob = self.verified_blob_path(layer.digest().as_ref())?;
        let scratch = self.tmp_path("layer");
        fs::create_dir(&scratch).map_err(Error::io("create", &scratch))?;
        let result = (|| {
            let mut tar = HashingReader::new(layer::open_layer(&blob)?);
            layer::unpack(&mut tar, &scratch, Whiteouts::Overlay, digest::short(layer.digest().as_ref()))?;
            // Read the tar's end padding too, so the digest covers the whole stream.
            io::copy(&mut tar, &mut io::sink()).map_err(Error::io("read layer", &blob))?;
            let (actual, _) = tar.finish();
            if actual != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("uncompressed layer {}", layer.digest()),
                    expected: diff_id.into(),
                    actual,
                });
            }
            fs::rename(&scratch, &dest).map_err(Error::io("store layer", &dest))
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&scratch);
        }
        result
    }

    /// The unpacked layer directories of an image, bottom first.
    ///
    /// # Errors
    /// If a layer is missing (run `kthw image prune` and pull or import again).
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        image
            .diff_ids()
            .iter()
            .map(|d| {
                let dir = self.layer_dir(d)?;
                if dir.is_dir() { Ok(dir) } else { Err(Error::bad("store", format!("layer {d} is not unpacked"))) }
            })
            .collect()
    }

    // ANCHOR: remove
    /// `kthw image rm`: refuses an image in use and names who uses it; otherwise drops
    /// the name and deletes what no other image needs.
    ///
    /// # Errors
    /// [`Error::NoSuchImage`], [`Error::ImageInUse`].
    pub fn remove(&self, name: &str) -> Result<Removed> {
        let name = normalize_name(name)?;
        let _lock = self.lock()?;
        let mut refs = self.refs()?;
        if !refs.contains_key(&name) {
            return Err(Error::NoSuchImage(name));
        }
        let holders = Self::holders_of(&self.holds()?, &name);
        if !holders.is_empty() {
            return Err(Error::ImageInUse { image: name, holders });
        }
        refs.remove(&name);
        self.write_json("refs.json", &refs)?;
        let mut removed = self.collect_garbage()?;
        removed.untagged.push(name);
        Ok(removed)
    }
    // ANCHOR_END: remove

    /// `kthw image prune`: deletes unreferenced blobs and layers, and the leftovers of
    /// interrupted downloads in `tmp/` (which a later pull would have resumed).
    ///
    /// # Errors
    /// If the store cannot be read or changed.
    pub fn prune(&self) -> Result<Removed> {
        let _lock = self.lock()?;
        let mut removed = self.collect_garbage()?;
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(Error::io("read", &tmp))?.flatten() {
            removed.bytes += dir_size(&entry.path());
            let _ =
                if entry.path().is_dir() { fs::remove_dir_all(entry.path()) } else { fs::remove_file(entry.path()) };
        }
        Ok(removed)
    }

    /// Deletes blobs and layers that no image uses (not `tmp/`, where downloads resume).
    /// A failed pull or import calls it so that it leaves nothing behind.
    ///
    /// # Errors
    /// If the store cannot be read or changed.
    pub fn gc(&self) -> Result<Removed> {
        let _lock = self.lock()?;
        self.collect_garbage()
    }

    /// Mark and sweep: every blob and layer reachable from a name is kept.
    fn collect_garbage(&self) -> Result<Removed> {
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        for (name, digest) in self.refs()? {
            let image = self.image_by_digest(&name, &digest)?;
            keep_blobs.extend(image.blobs().into_iter().map(|(d, _)| d));
            keep_layers.extend(image.diff_ids().iter().cloned());
        }
        let mut removed = Removed::default();
        let blobs = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(Error::io("read", &blobs))?.flatten() {
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep_blobs.contains(&digest) {
                removed.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path()).map_err(Error::io("remove", entry.path()))?;
                removed.blobs.push(digest);
            }
        }
        let layers = self.root.join("layers");
        for entry in fs::read_dir(&layers).map_err(Error::io("read", &layers))?.flatten() {
            let diff_id = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep_layers.contains(&diff_id) {
                removed.bytes += dir_size(&entry.path());
                fs::remove_dir_all(entry.path()).map_err(Error::io("remove", entry.path()))?;
                removed.layers.push(diff_id);
            }
        }
        Ok(removed)
    }

    // ANCHOR: df
    /// `kthw image df`: each image's size, the part it shares with other images, and a
    /// total in which every blob counts once, as `docker system df -v` does.
    ///
    /// # Errors
    /// If the store is unreadable.
    pub fn df(&self) -> Result<Df> {
        let holds = self.holds()?;
        let mut images = Vec::new();
        let mut users: BTreeMap<String, usize> = BTreeMap::new();
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for (name, digest) in self.refs()? {
            let image = self.image_by_digest(&name, &digest)?;
            let blobs: BTreeMap<String, u64> = image.blobs().into_iter().collect();
            for (d, s) in &blobs {
                *users.entry(d.clone()).or_default() += 1;
                sizes.insert(d.clone(), *s);
            }
            images.push((name, blobs));
        }
        let mut rows = Vec::new();
        let mut reclaimable_blobs = BTreeSet::new();
        let mut held_blobs = BTreeSet::new();
        for (name, blobs) in images {
            let held_by = Self::holders_of(&holds, &name);
            let size: u64 = blobs.values().sum();
            let shared: u64 = blobs.iter().filter(|(d, _)| users[*d] > 1).map(|(_, s)| s).sum();
            let set = if held_by.is_empty() { &mut reclaimable_blobs } else { &mut held_blobs };
            set.extend(blobs.keys().cloned());
            rows.push(DfRow { name, size, shared, unique: size - shared, held_by });
        }
        let reclaimable = reclaimable_blobs.difference(&held_blobs).map(|d| sizes[d]).sum();
        Ok(Df { images: rows, total: sizes.values().sum(), reclaimable })
    }
    // ANCHOR_END: df

    /// Copies a blob to `dest` after verifying it (for exports).
    ///
    /// # Errors
    /// A corrupted blob, or an I/O error.
    pub fn copy_blob_to(&self, digest: &str, dest: &Path) -> Result<()> {
        let src = self.verified_blob_path(digest)?;
        fs::copy(&src, dest).map_err(Error::io("copy blob to", dest))?;
        Ok(())
    }

    /// Writes `reader` into `tmp/` while hashing it; returns the temporary path, digest
    /// and size, for [`Store::adopt_blob`].
    ///
    /// # Errors
    /// If writing fails.
    pub fn write_tmp(&self, what: &str, mut reader: impl Read) -> Result<(PathBuf, String, u64)> {
        let tmp = self.tmp_path(what);
        let file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        let mut w = HashingWriter::new(io::BufWriter::new(file));
        io::copy(&mut reader, &mut w).map_err(Error::io("write", &tmp))?;
        let (mut inner, digest, size) = w.finish();
        inner.flush().map_err(Error::io("write", &tmp))?;
        Ok((tmp, digest, size))
    }
}

/// The size of the files under `path` (0 if it is gone).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path).map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum()).unwrap_or(0)
}

/// A size as Docker prints it: `1.23MB` (powers of 1000).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}").trim_end_matches('0').trim_end_matches('.').to_string() + UNITS[unit]
    }
}

// ANCHOR: render_ls
/// `kthw image ls` as a table.
pub fn render_list(images: &[Summary]) -> String {
    let mut out = format!("{:<32} {:<12} {:>6} {:>10}  {}\n", "NAME", "IMAGE ID", "LAYERS", "SIZE", "IN USE BY");
    for i in images {
        let held = if i.held_by.is_empty() { "-".to_string() } else { i.held_by.join(",") };
        out += &format!("{:<32} {:<12} {:>6} {:>10}  {}\n", i.name, i.id, i.layers, human(i.size), held);
    }
    out
}
// ANCHOR_END: render_ls

/// `kthw image df` as a table, then the totals.
pub fn render_df(df: &Df) -> String {
    let mut out =
        format!("{:<32} {:>10} {:>12} {:>12}  {}\n", "NAME", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "IN USE BY");
    for r in &df.images {
        let held = if r.held_by.is_empty() { "-".to_string() } else { r.held_by.join(",") };
        out += &format!(
            "{:<32} {:>10} {:>12} {:>12}  {}\n",
            r.name,
            human(r.size),
            human(r.shared),
            human(r.unique),
            held
        );
    }
    out += &format!("\nTotal on disk (shared blobs counted once): {}\n", human(df.total));
    out += &format!("Reclaimable (images no one uses):          {}\n", human(df.reclaimable));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Names get the `latest` tag when they have none; a registry port is not a tag.
    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize_name("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(normalize_name("127.0.0.1:5000/bb").unwrap(), "127.0.0.1:5000/bb:latest");
        assert!(normalize_name("").is_err());
        assert!(normalize_name("a b").is_err());
        assert!(normalize_name("../x").is_err());
    }

    // Sizes print as Docker prints them, in powers of 1000.
    #[test]
    fn sizes_are_human() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_000), "1kB");
        assert_eq!(human(1_234_567), "1.235MB");
    }

    // A blob is stored under its digest; one changed on disk is caught when read.
    #[test]
    fn blobs_are_verified_on_write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_blob(b"layer bytes").unwrap();
        assert_eq!(d, digest::of(b"layer bytes"));
        assert_eq!(store.read_blob(&d).unwrap(), b"layer bytes");
        fs::write(store.blob_path(&d).unwrap(), b"evil bytes").unwrap();
        assert!(matches!(store.read_blob(&d), Err(Error::DigestMismatch { .. })));
        let (tmp, _, _) = store.write_tmp("t", &b"abc"[..]).unwrap();
        let err = store.adopt_blob(&tmp, Some(&digest::of(b"xyz"))).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        assert!(!tmp.exists(), "a refused blob is deleted");
    }
}
