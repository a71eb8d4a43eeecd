//! `kthw bench ...`: performance measured as a ratio against a real peer in the same run
//! (etcd for chapter 6), printing medians. Benchmarks, not timed tests: run them by hand.

use std::process::ExitCode;

use anyhow::Context as _;

/// Measure against a real etcd (Debian etcd-server), in the same run, on the same disk.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// [ch 6] The store: sequential durable put, 64 concurrent writers, put -> watch event, vs etcd
    Store {
        /// Operations per measurement
        #[arg(long, default_value_t = 2000)]
        n: usize,
    },
    /// [ch 6] The API server: create p50 vs an etcd JSON-gateway put, with the same HTTP client
    Apiserver {
        /// Operations per measurement
        #[arg(long, default_value_t = 2000)]
        n: usize,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    // Both stores live under the state folder, so they share a disk.
    let base = kthw_lab::Paths::from_env().state;
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    let dir = tempfile::Builder::new().prefix("bench-").tempdir_in(&base).context("cannot create a scratch folder")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let lines = runtime.block_on(async {
        match command {
            Command::Store { n } => kthw_apiserver::bench::run_store_bench(dir.path(), n).await,
            Command::Apiserver { n } => kthw_apiserver::bench::run_apiserver_bench(dir.path(), n).await,
        }
    })?;
    for line in &lines {
        println!("{line}");
    }
    Ok(if lines.iter().any(|l| l.ends_with("MISSED")) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
