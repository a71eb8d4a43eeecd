//! `kthw`: the one binary of the book. It only parses arguments and calls the chapter
//! crates (the library is the lesson; this is the wiring), like youki's CLI over
//! `libcontainer` or `docker` over containerd's client.
//!
//! ## Layout
//! One file per tool, named after its subcommand; `labs.rs` registers every chapter's lab.

mod apiserver;
mod bench;
mod build;
mod cgroup;
mod completions;
mod ctl;
mod docker;
mod doctor;
mod image;
mod lab;
mod labs;
mod ns;
mod pod;
mod reset;
mod rootfs;
mod runtime;

use clap::{Parser, Subcommand};

/// Kubernetes the Hard Way, in Rust: containers and Kubernetes built from Linux syscalls up.
///
/// Each command group belongs to a chapter of the book; `[ch N]` says which.
/// Logs go to stderr and are controlled by RUST_LOG (e.g. RUST_LOG=debug).
#[derive(Debug, Parser)]
#[command(name = "kthw", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Keep all state (images, containers, the store, ...) under this folder instead of
    /// /var/lib/kthw and /run/kthw; host-wide names get a prefix of their own.
    #[arg(long, global = true, env = kthw_lab::state::HOME_ENV, value_name = "DIR")]
    home: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

// ANCHOR: commands
#[derive(Debug, Subcommand)]
enum Command {
    /// [ch 0] Check that this machine can run every chapter (like kubeadm's preflight)
    Doctor(doctor::Args),
    /// [ch 0] List the labs, and check a lab's work on this machine
    #[command(subcommand)]
    Lab(lab::Command),
    /// [ch 0] Remove everything kthw made: state, mounts, cgroups, interfaces, iptables rules
    Reset(reset::Args),
    /// [ch 1] Run commands in new namespaces, join them, list them (like unshare, nsenter, lsns)
    #[command(subcommand)]
    Ns(ns::Command),
    /// [ch 2] Run a command under cgroup limits (memory, CPU, pids, cpuset); show a cgroup's usage
    #[command(subcommand)]
    Cgroup(cgroup::Command),
    /// [ch 3] Images: import, pull, export as OCI layout, list, inspect, remove, disk usage
    #[command(subcommand)]
    Image(image::Command),
    /// [ch 3] Root filesystems: overlay mount, a shell after pivot_root, diff and commit
    #[command(subcommand)]
    Rootfs(rootfs::Command),
    /// [ch 4] An OCI runtime (like runc): spec, create, start, state, kill, delete, run a bundle
    #[command(subcommand)]
    Runtime(runtime::Command),
    /// [ch 4] Containers from images, like Docker: run, ps, logs, exec, stop, kill, rm, ...
    #[command(flatten)]
    Docker(docker::Command),
    /// [ch 4] Build an image from a Dockerfile (like `docker build`)
    Build(build::Args),
    /// [ch 5] Pods: run a Pod manifest (pause sandbox, CNI, init and app containers), ls, logs, exec, rm
    #[command(subcommand)]
    Pod(pod::Command),
    /// [ch 6] Serve the Kubernetes API (kubectl works against it) on a store with MVCC
    Apiserver(apiserver::Args),
    /// [ch 6] A small kubectl: get, apply, delete, describe, watch (shows how clients list and watch)
    Ctl(ctl::Args),
    /// Benchmarks: ours against a real peer (etcd, ...) in the same run, as ratios of medians
    #[command(subcommand)]
    Bench(bench::Command),
    /// Print a shell completion script (bash, zsh or fish)
    Completions(completions::Args),
}
// ANCHOR_END: commands

fn main() -> std::process::ExitCode {
    // Die quietly when the reader of our output goes away (`kthw lab check 00 | head`),
    // as every Unix tool does, instead of panicking on a write error.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    init_logging();
    if let Some(home) = &cli.home {
        // SAFETY: nothing else runs yet; later code reads the state paths from here.
        unsafe { std::env::set_var(kthw_lab::state::HOME_ENV, home) };
    }
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Reset(args) => reset::run(args),
        Command::Ns(cmd) => ns::run(cmd),
        Command::Cgroup(cmd) => cgroup::run(cmd),
        Command::Image(cmd) => image::run(cmd),
        Command::Rootfs(cmd) => rootfs::run(cmd),
        Command::Runtime(cmd) => runtime::run(cmd),
        Command::Docker(cmd) => docker::run(cmd),
        Command::Build(args) => build::run(args),
        Command::Pod(cmd) => pod::run(cmd),
        Command::Apiserver(args) => apiserver::run(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Completions(args) => completions::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `tracing` to stderr, filtered by `RUST_LOG` (default: warnings only).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
