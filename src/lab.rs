//! `kthw lab list`, `kthw lab dir` and `kthw lab check NN [--json FILE]`.

use std::process::ExitCode;

use anyhow::Context as _;
use kthw_lab::lab::{self, Context};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the labs, one per chapter
    List,
    /// Print the folder where labs ask you to save files (and create it)
    Dir,
    /// Run a lab's checker: each stage passes or fails; a failure says what to reread
    Check {
        /// The chapter number, e.g. 00 or 0
        chapter: String,
        /// Also write the JSON report (see labs/README.md) to this file; `-` for stdout only
        #[arg(long, value_name = "FILE")]
        json: Option<String>,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let labs = crate::labs::all();
    match cmd {
        Command::List => {
            for lab in &labs {
                println!("{}  {:<40} {} stages  {}", lab.id, lab.title, lab.stages.len(), lab.sheet);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dir => {
            let dir = kthw_lab::Paths::from_env().lab();
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            println!("{}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { chapter, json } => {
            let wanted = format!("{:0>2}", chapter.trim());
            let lab =
                labs.iter().find(|l| l.id == wanted).ok_or_else(|| kthw_lab::Error::NoSuchLab(chapter.clone()))?;
            let ctx = Context { paths: kthw_lab::Paths::from_env() };
            let quiet = json.as_deref() == Some("-");
            if !quiet {
                println!("Lab {}: {} ({})", lab.id, lab.title, lab.sheet);
            }
            let report = lab::run(lab, &ctx, |stage| {
                if !quiet {
                    println!("{}", lab::render_stage(stage));
                }
            });
            let text = serde_json::to_string_pretty(&report)?;
            match json.as_deref() {
                Some("-") => println!("{text}"),
                Some(path) => std::fs::write(path, text + "\n").with_context(|| format!("cannot write {path}"))?,
                None => {}
            }
            if !quiet {
                let passed = report.stages.iter().filter(|s| s.result == lab::StageResult::Pass).count();
                let verdict = if report.passed { "PASSED" } else { "FAILED" };
                println!("Lab {} {verdict}: {passed}/{} stages", lab.id, report.stages.len());
            }
            Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
