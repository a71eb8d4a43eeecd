//! `kthw build` (chapter 4): an image from a Dockerfile. Argument parsing only; the work
//! is in `kthw_runtime::build`.

use std::path::PathBuf;
use std::process::ExitCode;

use kthw_rootfs::Store;
use kthw_runtime::build;

/// Build an image from DIR/Dockerfile (a subset: FROM, RUN, COPY, ADD, ENV, WORKDIR, EXPOSE, CMD, ENTRYPOINT)
///
/// Each step prints `Step N/M` and the id of the image it made; an unchanged step is
/// taken from the cache (` ---> Using cache`). RUN steps run in our own runtime, with
/// no network (Docker gives them its default bridge).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The name of the image, e.g. web or web:1
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    tag: String,
    /// The Dockerfile [default: DIR/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Run every step again instead of taking unchanged ones from the cache
    #[arg(long)]
    no_cache: bool,
    /// The build context: the folder that COPY and ADD read from
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = kthw_lab::Paths::from_env();
    let store = Store::open(paths.images())?;
    let file = args.file.unwrap_or_else(|| args.dir.join("Dockerfile"));
    let options = build::Options { no_cache: args.no_cache };
    let mut out = std::io::stdout().lock();
    build::build(&paths, &store, &args.dir, &file, &args.tag, &options, &mut out)?;
    Ok(ExitCode::SUCCESS)
}
