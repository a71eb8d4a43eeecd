//! `kthw build` (chapter 4): an image from a Dockerfile. Argument parsing only; the work
//! is in `kthw_runtime::build`. (being written)

use std::process::ExitCode;

/// Build an image from DIR/Dockerfile (a subset: FROM, RUN, COPY, ADD, ENV, WORKDIR, EXPOSE, CMD, ENTRYPOINT)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("kthw build is being written")
}
