//! `kthw pod ...`: chapter 5's pods on this node (wiring only; the work is in
//! `kthw_pods::kubelet`).

use std::path::PathBuf;
use std::process::ExitCode;

use kthw_lab::Paths;
use kthw_pods::api::{Pod, Strictness};
use kthw_pods::kubelet::{Kubelet, executor, printer, store};
use kthw_runtime::engine::log::Stream;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run a pod from a manifest (`kind: Pod`); in the foreground until Ctrl-C, or with -d in the background
    Run {
        /// The Pod manifest (YAML or JSON)
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Start the pod's supervisor in the background and return once the pod runs
        #[arg(short, long)]
        detach: bool,
        /// (internal) be the pod's supervisor: what -d starts
        #[arg(long, hide = true)]
        supervise: bool,
    },
    /// List the pods: name, ready containers, status (as kubectl get pods), restarts, IP
    Ls,
    /// Print a pod's record (the Pod with its status) as JSON
    Inspect { name: String },
    /// Print a container's log
    Logs {
        name: String,
        #[arg(short, long)]
        container: Option<String>,
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command in a running container of the pod
    Exec {
        name: String,
        #[arg(short, long)]
        container: Option<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop pods (side by side, each honouring its terminationGracePeriodSeconds) and remove everything of them
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print the pod network's CNI config and its file; with --plugins, select ours or Debian's (no pod may exist)
    Network {
        /// Write this network's config: `kthw` (our kthw-bridge) or `debian` (bridge + host-local + loopback from /usr/lib/cni)
        #[arg(long, value_parser = ["kthw", "debian"])]
        plugins: Option<String>,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let paths = Paths::from_env();
    let kubelet = Kubelet::open(&paths)?;
    match cmd {
        Command::Run { file, detach, supervise } => {
            let decoded = Pod::load_file(&file, Strictness::Warn)?;
            for w in &decoded.warnings {
                eprintln!("warning: {w}");
            }
            let pod = decoded.object;
            let name = pod.name().to_string();
            let events = &mut |line: &str| println!("{line}");
            let record = if detach && !supervise {
                // How this binary is asked to be a pod's supervisor: its own argument syntax.
                let mut supervisor = std::process::Command::new(std::env::current_exe()?);
                supervisor.args(["pod", "run", "--supervise", "-f"]).arg(&file);
                let record = kubelet.run_detached(&name, supervisor)?;
                let ip = record.pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()).map(|ip| format!(" {ip}"));
                println!("pod {name} {}{}", executor::phase(&record), ip.unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            } else if supervise {
                kubelet.run(pod, events)? // its output goes to the supervisor's log
            } else {
                kubelet.run_attached(pod, events, &mut |stream, line| match stream {
                    Stream::Stdout => print!("{line}"),
                    Stream::Stderr => eprint!("{line}"),
                })?
            };
            println!("pod {name} {}", executor::phase(&record));
        }
        Command::Ls => {
            println!("{:<20} {:<7} {:<24} {:<9} IP", "NAME", "READY", "STATUS", "RESTARTS");
            for r in kubelet.list()? {
                let row = printer::of_record(&r);
                let ip = r.pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_else(|| "-".into());
                println!("{:<20} {:<7} {:<24} {:<9} {ip}", r.pod.name(), row.ready, row.status, row.restarts);
            }
        }
        Command::Inspect { name } => {
            println!("{}", serde_json::to_string_pretty(&kubelet.get(&name)?)?);
        }
        Command::Logs { name, container, follow } => {
            let (record, chosen) = kubelet.container(&name, container.as_deref())?;
            let path = store::log_path(&paths, &name, &chosen);
            let file = kthw_runtime::engine::log::open(&path)?;
            let supervisor = record.supervisor;
            let mut done = || !supervisor.is_some_and(store::alive);
            kthw_runtime::engine::log::print(file, follow, &mut done, &mut std::io::stdout(), &mut std::io::stderr())?;
        }
        Command::Exec { name, container, command } => {
            let code = kubelet.exec(&name, container.as_deref(), &command)?;
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        Command::Network { plugins } => {
            let config = match plugins {
                Some(p) => kthw_pods::kubelet::sandbox::select_plugins(&paths, p.parse()?)?,
                None => kthw_pods::kubelet::sandbox::network_config(&paths)?,
            };
            println!("# {}: network {}, plugins {}", config.source.display(), config.name, config.types().join(", "));
            print!("{}", std::fs::read_to_string(&config.source)?);
        }
        Command::Rm { names } => {
            let mut failed = 0;
            for (name, done) in kubelet.rm_all(&names) {
                match done {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
