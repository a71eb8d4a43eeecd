//! `kthw run`, `ps`, `logs`, `exec`, `stop`, ... (chapter 4, high level): a Docker-like
//! command line. Argument parsing only; the work is in `kthw_runtime::engine`. (being written)

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {}
}
