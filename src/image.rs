//! `kthw image ...` (chapter 3): argument parsing only; the work is in `kthw-rootfs`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use kthw_rootfs::{Store, import, oci, registry, store};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List images: name, id (config digest), layers, size, who uses it (like `docker image ls`)
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print an image's manifest and config as JSON (like `docker image inspect`)
    Inspect { image: String },
    /// Remove images; refused while a rootfs or container uses one (like `docker image rm`)
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Delete blobs and layers no image uses, and interrupted downloads
    Prune,
    /// Disk usage per image; layers shared between images count once (like `docker system df -v`)
    Df,
    /// Make an image from a directory, a tarball (.tar or .tar.gz) or an OCI image layout
    ///
    /// A directory or tarball becomes a one-layer image (like `docker import`); an OCI
    /// layout (a directory with `oci-layout` and `index.json`, as skopeo and umoci write
    /// them) is read as it is.
    Import {
        path: PathBuf,
        /// The name to give it, e.g. busybox or busybox:1.36
        name: String,
        /// Which image of an OCI layout (its ref name, e.g. latest); needed when it has several
        #[arg(long = "ref", value_name = "REF")]
        ref_name: Option<String>,
    },
    /// Write an image into an OCI image layout directory that skopeo and umoci can read
    Export {
        image: String,
        dir: PathBuf,
        /// The ref name in the layout's index.json (default: the image's tag)
        #[arg(long = "ref", value_name = "REF")]
        ref_name: Option<String>,
    },
    /// Download an image from a registry (like `docker pull`)
    ///
    /// localhost and 127.* registries are spoken to over plain HTTP. A user and password
    /// for the token server come from KTHW_REGISTRY_USER and KTHW_REGISTRY_PASSWORD.
    Pull {
        /// e.g. 127.0.0.1:5000/kthw/busybox:1
        reference: String,
        /// Plain HTTP, for a registry on another host without TLS
        #[arg(long)]
        insecure: bool,
        /// Layers downloaded at once
        #[arg(long, default_value_t = 3)]
        parallel: usize,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let store = Store::open(kthw_lab::Paths::from_env().images())?;
    match cmd {
        Command::Ls { json } => {
            let images = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else {
                print!("{}", store::render_list(&images));
            }
        }
        Command::Inspect { image } => println!("{}", serde_json::to_string_pretty(&store.inspect(&image)?)?),
        Command::Rm { images } => {
            for image in images {
                let removed = store.remove(&image)?;
                println!("Untagged: {image}");
                for blob in removed.blobs {
                    println!("Deleted: {blob}");
                }
            }
        }
        Command::Prune => {
            let removed = store.prune()?;
            println!(
                "Deleted {} blobs and {} layers; reclaimed {}",
                removed.blobs.len(),
                removed.layers.len(),
                store::human(removed.bytes)
            );
        }
        Command::Df => print!("{}", store::render_df(&store.df()?)),
        Command::Import { path, name, ref_name } => {
            let image = if oci::is_layout(&path) {
                oci::import(&store, &path, ref_name.as_deref(), &name)?
            } else if path.is_dir() {
                import::import_dir(&store, &path, &name)?
            } else {
                import::import_tarball(&store, &path, &name)?
            };
            println!("{} {}", image.name, image.id());
        }
        Command::Export { image, dir, ref_name } => {
            let image = store.image(&image)?;
            let tag = ref_name.unwrap_or_else(|| image.name.rsplit(':').next().unwrap_or("latest").to_string());
            oci::export(&store, &image, &dir, &tag)?;
            println!("{} -> oci:{}:{tag}", image.name, dir.display());
        }
        Command::Pull { reference, insecure, parallel } => {
            let credentials = match (std::env::var("KTHW_REGISTRY_USER"), std::env::var("KTHW_REGISTRY_PASSWORD")) {
                (Ok(u), Ok(p)) => Some((u, p)),
                _ => None,
            };
            let options =
                registry::PullOptions { insecure, parallel, progress: std::io::stderr().is_terminal(), credentials };
            let image = registry::pull_blocking(&store, &reference, &options)?;
            println!("{} {}", image.name, image.manifest_digest);
        }
    }
    Ok(ExitCode::SUCCESS)
}
