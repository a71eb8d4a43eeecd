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
    /// [ch 4] The runtime: `run` of a busybox /bin/true bundle, ours vs runc and crun, interleaved
    Runtime {
        /// Iterations per round (each runs every runtime once, in a shuffled order)
        #[arg(long, default_value_t = 100)]
        n: usize,
        /// Rounds (each with its own warm-ups; the table shows every round's median)
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also show where each runtime's time goes: phases from an strace of 20 runs
        #[arg(long)]
        profile: bool,
    },
    /// [ch 5] A pod start (pod cgroup, pause, CNI ADD, one app container) vs two `crun run`s, interleaved
    Pod {
        /// Iterations per round (each starts one pod and runs crun twice and runc twice, in a shuffled order)
        #[arg(short, long, default_value_t = 50)]
        n: usize,
        /// Rounds (each with its own warm-ups; the table shows every round's median)
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also show the median of each phase of our pod start
        #[arg(long)]
        profile: bool,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    if let Command::Runtime { n, rounds, profile } = command {
        return runtime(kthw_runtime::bench::Options { n, rounds, profile, ..Default::default() });
    }
    if let Command::Pod { n, rounds, profile } = command {
        return pod(&kthw_pods::bench::Options { n, rounds, profile });
    }
    // Both stores live under the state folder, so they share a disk.
    let dir = scratch()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let lines = runtime.block_on(async {
        match command {
            Command::Store { n } => kthw_apiserver::bench::run_store_bench(dir.path(), n).await,
            Command::Apiserver { n } => kthw_apiserver::bench::run_apiserver_bench(dir.path(), n).await,
            Command::Runtime { .. } | Command::Pod { .. } => unreachable!("handled above, without an async runtime"),
        }
    })?;
    Ok(print_report(&lines))
}

/// `kthw bench runtime`: synchronous, and before any thread starts, because it moves this
/// process into a mount namespace of its own (the cgroup mask crun needs on hybrid hosts).
fn runtime(opts: kthw_runtime::bench::Options) -> anyhow::Result<ExitCode> {
    let dir = scratch()?;
    let exe = std::env::current_exe().context("cannot find the kthw binary to benchmark")?;
    if cfg!(debug_assertions) {
        // Measured here: a debug build is 1.5-1.7x crun, the same code built --release 0.9-1.0x.
        eprintln!(
            "note: this kthw is a debug build, and ours pays for it (a 60 MB binary to load and \
             copy). For the book's figures: cargo build --release -p kthw && target/release/kthw bench runtime"
        );
    }
    let lines = kthw_runtime::bench::run_runtime_bench(dir.path(), &exe, &opts, &mut |line: &str| eprintln!("{line}"))?;
    Ok(print_report(&lines))
}

/// `kthw bench pod`: like `kthw bench runtime`, synchronous and before any thread starts
/// (the same private mount namespace with the cgroup mask).
fn pod(opts: &kthw_pods::bench::Options) -> anyhow::Result<ExitCode> {
    let dir = scratch()?;
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this kthw is a debug build, and ours pays for it (the kubelet, runtime and CNI code run \
             unoptimised, in this process and in kthw-cni-bridge). For the book's figures: \
             cargo build --release -p kthw -p kthw-pods --bins && target/release/kthw bench pod"
        );
    }
    let lines = kthw_pods::bench::run_pod_bench(dir.path(), opts, &mut |line: &str| eprintln!("{line}"))?;
    Ok(print_report(&lines))
}

/// A scratch folder under the state folder, removed when dropped.
fn scratch() -> anyhow::Result<tempfile::TempDir> {
    let base = kthw_lab::Paths::from_env().state;
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    tempfile::Builder::new().prefix("bench-").tempdir_in(&base).context("cannot create a scratch folder")
}

/// Prints a benchmark's lines; the exit code says whether a target line ended `MISSED`.
fn print_report(lines: &[String]) -> ExitCode {
    for line in lines {
        println!("{line}");
    }
    if lines.iter().any(|l| l.ends_with("MISSED")) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
