//! `kthw rootfs ...` (chapter 3): argument parsing only; the work is in `kthw-rootfs`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use kthw_rootfs::Store;
use kthw_rootfs::pivot;
use kthw_rootfs::rootfs::Rootfs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Stack an image's layers, an init layer and a writable layer with overlayfs at DIR
    Mount {
        image: String,
        dir: PathBuf,
        /// The rootfs's name (default: DIR's last component)
        #[arg(long)]
        name: Option<String>,
    },
    /// Unmount a rootfs that `kthw rootfs mount` mounted (its files are kept)
    Umount { name: String },
    /// Run a shell (or CMD) in an image's rootfs: new mount, pid, uts and ipc namespaces, pivot_root
    ///
    /// Without --name the rootfs is thrown away afterwards; with --name it is kept (or
    /// reused), so `kthw rootfs diff NAME` and `kthw rootfs commit NAME` can follow.
    Shell {
        image: String,
        /// Keep the rootfs under this name, or reuse it if it exists
        #[arg(long)]
        name: Option<String>,
        /// The container's host name (default: the rootfs's name)
        #[arg(long)]
        hostname: Option<String>,
        /// Bind-mount a host directory: HOST:CONTAINER (not part of a commit)
        #[arg(short, long = "volume", value_name = "HOST:CONTAINER")]
        volumes: Vec<String>,
        /// The command and its arguments, after `--` (default: the image's)
        #[arg(last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// List what a rootfs changed: A added, C changed, D deleted (like `docker diff`)
    Diff { name: String },
    /// Turn a rootfs's changes into a new layer and image (like `docker commit`)
    Commit { name: String, image: String },
    /// List rootfses
    Ls,
    /// Unmount and delete a rootfs, and release its image
    Rm { name: String },
    /// Show that a root process escapes chroot, and not pivot_root, in DIR
    Escape { dir: PathBuf },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let paths = kthw_lab::Paths::from_env();
    let store = Store::open(paths.images())?;
    match cmd {
        Command::Mount { image, dir, name } => {
            let name = match name {
                Some(n) => n,
                None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "rootfs".into()),
            };
            let mut rootfs = Rootfs::create(&paths, &store, &image, &name, None, vec![])?;
            if let Err(e) = rootfs.mount(&store, &dir) {
                let _ = rootfs.remove(&store);
                return Err(e.into());
            }
            println!("mounted rootfs {name} (image {}) on {}", rootfs.meta.image, dir.display());
            println!("overlay options: {}", rootfs.options(&store)?);
        }
        Command::Umount { name } => Rootfs::open(&paths, &name)?.unmount()?,
        Command::Shell { image, name, hostname, volumes, command } => {
            let volumes = volumes
                .iter()
                .map(|v| match v.split_once(':') {
                    Some((h, c)) if c.starts_with('/') => Ok((PathBuf::from(h), PathBuf::from(c))),
                    _ => {
                        Err(anyhow::anyhow!("--volume {v:?}: expected HOST:CONTAINER with an absolute CONTAINER path"))
                    }
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let keep = name.is_some();
            let name = name.unwrap_or_else(|| format!("shell-{}", std::process::id()));
            let rootfs = match Rootfs::open(&paths, &name) {
                Ok(r) => r,
                Err(_) => Rootfs::create(&paths, &store, &image, &name, hostname.as_deref(), volumes)?,
            };
            let code = pivot::run(&rootfs.spec(&store, command)?);
            if !keep {
                rootfs.remove(&store)?;
            }
            return Ok(ExitCode::from(u8::try_from(code?).unwrap_or(255)));
        }
        Command::Diff { name } => {
            for change in Rootfs::open(&paths, &name)?.diff(&store)? {
                println!("{change}");
            }
        }
        Command::Commit { name, image } => {
            let committed = Rootfs::open(&paths, &name)?.commit(&store, &image)?;
            println!("{} {}", committed.name, committed.id());
        }
        Command::Ls => {
            println!("{:<20} {:<32} MOUNTED AT", "NAME", "IMAGE");
            for r in Rootfs::list(&paths)? {
                let at = r.meta.mounted_at.as_ref().map_or("-".to_string(), |p| p.display().to_string());
                println!("{:<20} {:<32} {at}", r.meta.name, r.meta.image);
            }
        }
        Command::Rm { name } => Rootfs::open(&paths, &name)?.remove(&store)?,
        Command::Escape { dir } => print!("{}", pivot::escape_report(&dir)?),
    }
    Ok(ExitCode::SUCCESS)
}
