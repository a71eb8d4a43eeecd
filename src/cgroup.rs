//! `kthw cgroup run` and `kthw cgroup stat` (chapter 2): argument parsing only; the work
//! is in the `kthw-cgroups` crate.

use std::ffi::OsString;
use std::process::ExitCode;

use kthw_cgroups::{Cgroup, Limits, Stats};
use kthw_lab::host::CgroupLayout;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run a command in a new cgroup with limits, report an OOM kill, delete the cgroup
    ///
    /// Like `docker run --rm --memory 64M --cpus 0.5 --pids-limit 20 --cpuset-cpus 0`
    /// without image or namespaces. Exits with the command's status (128+N if killed by
    /// signal N: 137 after an OOM kill).
    Run {
        /// Memory limit: bytes, or with k, m or g (powers of 1024), e.g. 64M
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// CPU time: how many CPUs' worth, e.g. 0.5 (a CFS quota per 100 ms period)
        #[arg(long, value_name = "N")]
        cpus: Option<String>,
        /// Most processes and threads at once, e.g. 20
        #[arg(long, value_name = "N")]
        pids: Option<String>,
        /// The CPUs it may run on, e.g. 0 or 0-1
        #[arg(long, value_name = "LIST")]
        cpuset: Option<String>,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Show a cgroup's usage and limits: memory, CPU, pids, freezer (same on v1 and v2)
    Stat {
        /// The cgroup as in /proc/PID/cgroup, e.g. /kthw/lab02
        path: String,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let layout = CgroupLayout::detect()?;
    match cmd {
        Command::Run { memory, cpus, pids, cpuset, command } => {
            let limits = Limits::parse(memory.as_deref(), cpus.as_deref(), pids.as_deref(), cpuset.as_deref())?;
            let paths = kthw_lab::Paths::from_env();
            let report = kthw_cgroups::run::run(&layout, &paths, &command, &limits)?;
            eprint!("{}", report.render());
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Stat { path } => {
            let cg = Cgroup::open(&layout, &path)?;
            print!("{}", Stats::read(&cg).render());
            Ok(ExitCode::SUCCESS)
        }
    }
}
