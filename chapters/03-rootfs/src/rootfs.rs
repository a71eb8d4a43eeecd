//! A container's root filesystem: the image's layers, an init layer and a writable
//! layer, stacked with overlayfs.
//!
//! ```text
//!   what the container sees:   merged/   (the overlay mount)
//!                                 │
//!   ┌─────────────────────────────┴──────────────────────────────┐
//!   │ upper/    read-write: the container's changes (and whiteouts) │  upperdir
//!   ├────────────────────────────────────────────────────────────┤
//!   │ init/     read-only: /etc/hosts, /etc/hostname,             │  lowerdir 1
//!   │           /etc/resolv.conf, empty /proc /sys /dev           │
//!   ├────────────────────────────────────────────────────────────┤
//!   │ layers/<diff id N>  read-only, shared with other images     │  lowerdir 2
//!   │ ...                                                         │  ...
//!   │ layers/<diff id 1>  the image's bottom layer                │  lowerdir N+1
//!   └────────────────────────────────────────────────────────────┘
//!   work/     overlayfs' scratch space (same filesystem as upper/)
//! ```
//!
//! A read finds the topmost layer that has the file. The first write to a lower file
//! copies it up into `upper/` (copy-on-write); deleting one puts a whiteout in
//! `upper/`. The lower layers never change, which is why many containers share them.
//!
//! A rootfs has a name and lives in `<state>/rootfs/<name>/`. It **holds** its image in
//! the store, so the image cannot be removed under it.
//!
//! What the real tools do differently: Docker's overlay2 driver keeps this in
//! `/var/lib/docker/overlay2/<id>/{diff,work,merged,lower}` and shortens the lowerdir
//! list with symlinks (`l/<short id>`), because mount options must fit in one page
//! (4096 bytes) — an image with many layers overflows it. Docker's init layer
//! (`<id>-init`) holds empty files, and the real `/etc/hosts` & co. are bind-mounted
//! over them from the container's directory; ours are written into the init layer.
//! containerd's overlay snapshotter has no init layer at all: the CRI plugin bind-mounts
//! those files.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diff::{self, Change, INIT_FILES, TarOptions};
use crate::import::{self, NewLayer};
use crate::store::{Image, Store};
use crate::{Error, Result};

/// What a rootfs remembers about itself (`meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    pub image: String,
    pub hostname: String,
    /// Host directory → path in the container; left out of diffs and commits.
    #[serde(default)]
    pub volumes: Vec<(PathBuf, PathBuf)>,
    /// Where `kthw rootfs mount` mounted it on the host, if it did.
    #[serde(default)]
    pub mounted_at: Option<PathBuf>,
}

/// A named rootfs on disk.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub meta: Meta,
    pub dir: PathBuf,
}

/// Where rootfses live.
pub fn root_dir(paths: &kthw_lab::Paths) -> PathBuf {
    paths.state.join("rootfs")
}

/// The holder name a rootfs uses in the image store.
pub fn holder(name: &str) -> String {
    format!("rootfs/{name}")
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::bad("rootfs name", format!("{name:?}: use 1-64 letters, digits, '_', '.' or '-'")))
    }
}

// ANCHOR: overlay_options
/// The overlay mount options: lower layers listed **top first**, as overlayfs wants.
pub fn overlay_options(lowers_top_first: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lower: Vec<String> = lowers_top_first.iter().map(|p| p.display().to_string()).collect();
    format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display())
}
// ANCHOR_END: overlay_options

// ANCHOR: init_layer
/// Writes the init layer: the files that make a container a host on a network
/// (name, name resolution), and the empty mount points of `/proc`, `/sys` and `/dev`.
///
/// # Errors
/// If a file cannot be written.
pub fn write_init_layer(dir: &Path, hostname: &str) -> Result<()> {
    for d in ["etc", "proc", "sys", "dev"] {
        fs::create_dir_all(dir.join(d)).map_err(Error::io("create", dir.join(d)))?;
    }
    let hosts = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n");
    // The host's resolver, minus loopback servers (127.0.0.53 is systemd-resolved on
    // the *host*; inside a network namespace it is nobody), as Docker filters it.
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = host_resolv
        .lines()
        .filter(|l| !(l.starts_with("nameserver") && (l.contains(" 127.") || l.contains(" ::1"))))
        .map(|l| format!("{l}\n"))
        .collect();
    for (file, text) in [("etc/hostname", format!("{hostname}\n")), ("etc/hosts", hosts), ("etc/resolv.conf", resolv)] {
        let path = dir.join(file);
        fs::write(&path, text).map_err(Error::io("write", &path))?;
    }
    Ok(())
}
// ANCHOR_END: init_layer

impl Rootfs {
    /// Creates the rootfs `name` for `image`: holds the image, writes the init layer,
    /// makes the empty upper and work directories.
    ///
    /// # Errors
    /// [`Error::RootfsExists`], [`Error::NoSuchImage`], or an I/O error.
    pub fn create(
        paths: &kthw_lab::Paths,
        store: &Store,
        image: &str,
        name: &str,
        hostname: Option<&str>,
        volumes: Vec<(PathBuf, PathBuf)>,
    ) -> Result<Rootfs> {
        check_name(name)?;
        let dir = root_dir(paths).join(name);
        if dir.exists() {
            return Err(Error::RootfsExists(name.to_string()));
        }
        let image = store.image(image)?;
        store.hold(&image.name, &holder(name))?;
        let meta = Meta {
            name: name.to_string(),
            image: image.name.clone(),
            hostname: hostname.unwrap_or(name).to_string(),
            volumes,
            mounted_at: None,
        };
        let made = (|| {
            for d in ["upper", "work", "merged", "init"] {
                fs::create_dir_all(dir.join(d)).map_err(Error::io("create", dir.join(d)))?;
            }
            write_init_layer(&dir.join("init"), &meta.hostname)?;
            let rootfs = Rootfs { meta, dir: dir.clone() };
            rootfs.save()?;
            Ok(rootfs)
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
            let _ = store.release(&holder(name));
        }
        made
    }

    /// Opens the rootfs `name`.
    ///
    /// # Errors
    /// [`Error::NoSuchRootfs`].
    pub fn open(paths: &kthw_lab::Paths, name: &str) -> Result<Rootfs> {
        check_name(name)?;
        let dir = root_dir(paths).join(name);
        let path = dir.join("meta.json");
        let text = fs::read(&path).map_err(|_| Error::NoSuchRootfs(name.to_string()))?;
        let meta = serde_json::from_slice(&text).map_err(|e| Error::bad(path.display().to_string(), e))?;
        Ok(Rootfs { meta, dir })
    }

    /// Every rootfs.
    ///
    /// # Errors
    /// If one cannot be read.
    pub fn list(paths: &kthw_lab::Paths) -> Result<Vec<Rootfs>> {
        let root = root_dir(paths);
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&root) else { return Ok(out) };
        let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in names {
            out.push(Rootfs::open(paths, &name)?);
        }
        Ok(out)
    }

    fn save(&self) -> Result<()> {
        let path = self.dir.join("meta.json");
        let text = serde_json::to_vec_pretty(&self.meta).map_err(|e| Error::bad("meta.json", e))?;
        fs::write(&path, text).map_err(Error::io("write", &path))
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn init(&self) -> PathBuf {
        self.dir.join("init")
    }
    /// Where `kthw rootfs shell` mounts the overlay (in its own mount namespace).
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The image's layers and the init layer, top first.
    ///
    /// # Errors
    /// If the image or a layer is missing.
    pub fn lowers(&self, store: &Store) -> Result<Vec<PathBuf>> {
        let image = store.image(&self.meta.image)?;
        let mut lowers = vec![self.init()];
        lowers.extend(store.layer_dirs(&image)?.into_iter().rev());
        Ok(lowers)
    }

    /// The overlay options of this rootfs.
    ///
    /// # Errors
    /// As [`Rootfs::lowers`].
    pub fn options(&self, store: &Store) -> Result<String> {
        Ok(overlay_options(&self.lowers(store)?, &self.upper(), &self.work()))
    }

    /// What [`crate::pivot::run`] needs to run `command` in this rootfs: the image's
    /// environment and working directory, and its entrypoint and cmd when `command` is
    /// empty (as `docker run IMAGE` does).
    ///
    /// # Errors
    /// As [`Rootfs::lowers`], or an image with nothing to run.
    pub fn spec(&self, store: &Store, command: Vec<std::ffi::OsString>) -> Result<crate::pivot::Spec> {
        let image = store.image(&self.meta.image)?;
        let config = image.config.config().clone().unwrap_or_default();
        let command = if command.is_empty() {
            let mut c: Vec<std::ffi::OsString> =
                config.entrypoint().clone().unwrap_or_default().into_iter().map(Into::into).collect();
            c.extend(config.cmd().clone().unwrap_or_default().into_iter().map(Into::into));
            c
        } else {
            command
        };
        if command.is_empty() {
            return Err(Error::bad(
                "command",
                format!("image {} has no entrypoint or cmd: give one after --", image.name),
            ));
        }
        let cwd = config.working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
        Ok(crate::pivot::Spec {
            rootfs: self.merged(),
            overlay_options: self.options(store)?,
            hostname: self.meta.hostname.clone(),
            volumes: self.meta.volumes.clone(),
            command,
            env: config.env().clone().unwrap_or_default(),
            cwd,
        })
    }

    /// `kthw rootfs mount`: mounts the overlay at `target` in the host's mount namespace.
    ///
    /// # Errors
    /// If it is mounted already or the mount fails.
    pub fn mount(&mut self, store: &Store, target: &Path) -> Result<()> {
        use nix::mount::{MsFlags, mount};
        if let Some(at) = &self.meta.mounted_at {
            return Err(Error::bad(
                "mount",
                format!("rootfs {} is mounted at {} already", self.meta.name, at.display()),
            ));
        }
        fs::create_dir_all(target).map_err(Error::io("create", target))?;
        let options = self.options(store)?;
        mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
            .map_err(Error::sys(format!("mount overlay on {}", target.display())))?;
        self.meta.mounted_at = Some(fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf()));
        self.save()
    }

    /// Unmounts what [`Rootfs::mount`] mounted, if anything.
    ///
    /// # Errors
    /// If the unmount fails (a process still uses it: `fuser -m DIR` names it).
    pub fn unmount(&mut self) -> Result<()> {
        if let Some(at) = self.meta.mounted_at.take() {
            match nix::mount::umount(&at) {
                Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
                Err(e) => return Err(Error::sys(format!("umount {}", at.display()))(e)),
            }
            self.save()?;
        }
        Ok(())
    }

    /// Unmounts and deletes the rootfs, and releases its image.
    ///
    /// # Errors
    /// If the unmount or the deletion fails.
    pub fn remove(mut self, store: &Store) -> Result<()> {
        self.unmount()?;
        fs::remove_dir_all(&self.dir).map_err(Error::io("remove", &self.dir))?;
        store.release(&holder(&self.meta.name))
    }

    /// What `diff` and `commit` leave out: the init layer's files and the volumes.
    fn excluded(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = INIT_FILES.iter().map(PathBuf::from).collect();
        for (_, inside) in &self.meta.volumes {
            out.push(inside.strip_prefix("/").unwrap_or(inside).to_path_buf());
        }
        out
    }

    /// `kthw rootfs diff`: what the container changed, as `docker diff` shows it.
    ///
    /// # Errors
    /// If the upper directory cannot be read.
    pub fn diff(&self, store: &Store) -> Result<Vec<Change>> {
        let image = store.image(&self.meta.image)?;
        diff::changes(&self.upper(), &store.layer_dirs(&image)?, &self.excluded())
    }

    // ANCHOR: commit
    /// `kthw rootfs commit`: the upper directory becomes a new layer on top of the
    /// image's layers, and the result a new image named `name`.
    ///
    /// # Errors
    /// As [`import::write_image`].
    pub fn commit(&self, store: &Store, name: &str) -> Result<Image> {
        let base = store.image(&self.meta.image)?;
        let options = TarOptions { overlay_whiteouts: true, exclude: self.excluded() };
        let upper = self.upper();
        let layer: NewLayer = import::store_layer(store, |w| diff::write_tar(&upper, w, &options).map(|_| ()))?;
        let mut config = base.config.clone();
        // The new config lists the base's diff ids already; write_image appends ours.
        config.set_created(Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()));
        let comment = format!("kthw rootfs commit {} {name}", self.meta.name);
        import::write_image(store, name, config, base.manifest.layers().clone(), vec![layer], Some(&comment))
    }
    // ANCHOR_END: commit
}
