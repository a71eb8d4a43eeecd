//! `kthw reset [--force]`: remove everything this kthw instance made (see
//! `kthw_lab::reset`). Like `kubeadm reset`, it shows what it will remove and asks first.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use kthw_lab::{Paths, reset};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(short, long)]
    force: bool,
    /// Only show what would be removed
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::from_env();
    let plan = reset::plan(&paths)?;
    if plan.is_empty() {
        println!("Nothing to remove for instance {}.", paths.instance);
        return Ok(ExitCode::SUCCESS);
    }
    println!("kthw reset will remove, for instance {}:", paths.instance);
    let show = |what: &str, items: Vec<String>| {
        if !items.is_empty() {
            println!("  {what}: {}", items.join(", "));
        }
    };
    let paths_of = |v: &[std::path::PathBuf]| v.iter().map(|p| p.display().to_string()).collect();
    show("cgroups (and their processes)", paths_of(&plan.cgroups));
    show("mounts", paths_of(&plan.mounts));
    show("network namespaces", plan.netns.clone());
    show("interfaces", plan.links.clone());
    show("iptables chains", plan.chains.iter().map(|(t, c)| format!("{t}/{c}")).collect());
    show("directories", paths_of(&plan.dirs));
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.force {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("refusing to reset without confirmation: stdin is not a terminal; add --force");
        }
        print!("Proceed? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing removed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let problems = reset::apply(&plan);
    if problems.is_empty() {
        println!("Done: everything above was removed.");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            eprintln!("error: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
