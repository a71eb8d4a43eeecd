//! `kthw doctor [--json]`: the preflight of chapter 0.

use std::process::ExitCode;

use kthw_lab::{Paths, doctor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON, for machines (an instructor's collector, a lab checker)
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = doctor::run(&Paths::from_env());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", doctor::render(&report));
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
