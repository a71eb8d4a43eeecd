//! `kthw pod ...`: chapter 5's pods on this node (wiring only; the work is in
//! `kthw_pods::kubelet`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use kthw_lab::Paths;
use kthw_pods::api::{Pod, Strictness};
use kthw_pods::kubelet::{Kubelet, executor, store};

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
    /// List the pods: name, phase, IP, ready containers, restarts
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
    /// Stop a pod (graceful, honouring terminationGracePeriodSeconds) and remove everything of it
    Rm { names: Vec<String> },
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
            if detach && !supervise {
                return detached(&paths, &file, pod.name());
            }
            let record = kubelet.run(pod, &mut |line| println!("{line}"))?;
            println!("pod {} {}", record.pod.name(), executor::phase(&record));
        }
        Command::Ls => {
            println!("{:<20} {:<10} {:<16} {:<7} RESTARTS", "NAME", "PHASE", "IP", "READY");
            for r in kubelet.list()? {
                let status = r.pod.status.clone().unwrap_or_default();
                let ready = status.container_statuses.iter().filter(|c| c.ready).count();
                let restarts: i32 = status.container_statuses.iter().map(|c| c.restart_count).sum();
                let ip = status.pod_ip.clone().unwrap_or_else(|| "-".into());
                let ready = format!("{ready}/{}", r.pod.spec.containers.len());
                println!("{:<20} {:<10} {:<16} {:<7} {restarts}", r.pod.name(), executor::phase(&r), ip, ready);
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
        Command::Rm { names } => {
            for name in names {
                kubelet.rm(&name)?;
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pod run -d`: starts `kthw pod run --supervise` in its own process group with its
/// output in `run/pods/<name>.log`, and waits until the pod has its IP and runs.
fn detached(paths: &Paths, file: &std::path::Path, name: &str) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let logs = paths.run.join("pods");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["pod", "run", "--supervise", "-f"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("start the pod's supervisor")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            anyhow::bail!("the pod's supervisor exited ({status}):\n{text}");
        }
        if let Ok(r) = store::read(paths, name) {
            let status = r.pod.status.clone().unwrap_or_default();
            let phase = executor::phase(&r);
            if status.pod_ip.is_some() && phase != "Pending" {
                println!("pod {name} {phase} {}", status.pod_ip.unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("pod {name} did not start within 60 s; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
