//! `kthw runtime ...` (chapter 4, low level): an OCI runtime's command line, like runc's.
//! Argument parsing only; the work is in `kthw_runtime::lifecycle`. (being written)

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {}
}
