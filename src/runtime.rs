//! `kthw runtime ...` (chapter 4, low level): an OCI runtime's command line, like runc's.
//! Argument parsing only; the work is in `kthw_runtime::lifecycle`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kthw_runtime::lifecycle::{CreateOptions, parse_signal};
use kthw_runtime::{Runtime, spec};

/// Where the containers' state lives: runc's `--root`.
#[derive(Debug, clap::Args)]
pub struct Root {
    /// The state folder (default: KTHW_HOME's run/runtime, /run/kthw/runtime)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

impl Root {
    fn runtime(&self) -> Runtime {
        match &self.root {
            Some(dir) => Runtime::new(dir),
            None => Runtime::for_paths(&kthw_lab::Paths::from_env()),
        }
    }
}

/// How to create a container (`create` and `run`).
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle: a folder with config.json and the root filesystem
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    bundle: PathBuf,
    /// Write the init's pid to this file
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// With process.terminal: send the pty master over this unix socket (SCM_RIGHTS)
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// The container's id
    id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a config.json like `runc spec` (Docker's capabilities, no terminal)
    Spec {
        /// Where to write it
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
        /// Also write a busybox root filesystem into BUNDLE/rootfs
        #[arg(long)]
        busybox: bool,
        /// The program and its arguments, after `--` (default: sh)
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Set up a container from a bundle; its program waits for `start`
    Create {
        #[command(flatten)]
        root: Root,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Run the program of a created container
    Start {
        #[command(flatten)]
        root: Root,
        id: String,
    },
    /// Print a container's OCI state as JSON
    State {
        #[command(flatten)]
        root: Root,
        id: String,
    },
    /// Send a signal (name or number; default TERM) to a container's init
    Kill {
        #[command(flatten)]
        root: Root,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Remove a container's cgroup and state (a running one only with --force)
    Delete {
        #[command(flatten)]
        root: Root,
        /// Kill a running container first (SIGKILL)
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create, start, wait for and delete a container; exit with its exit code
    Run {
        #[command(flatten)]
        root: Root,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// List the containers
    List {
        #[command(flatten)]
        root: Root,
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Spec { bundle, busybox, command } => {
            let command = if command.is_empty() { vec!["sh".to_string()] } else { command };
            let spec = spec::default_spec(&command)?;
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("{} exists already; remove it first (runc spec refuses too)", path.display());
            }
            std::fs::create_dir_all(&bundle).with_context(|| format!("cannot create {}", bundle.display()))?;
            std::fs::write(&path, spec::to_json(&spec)?).with_context(|| format!("cannot write {}", path.display()))?;
            if busybox {
                spec::busybox_rootfs(&bundle.join("rootfs"))?;
            }
        }
        Command::Create { root, create } => {
            root.runtime().create(&create.id, &create.bundle, create.options())?;
        }
        Command::Start { root, id } => root.runtime().start(&id)?,
        Command::State { root, id } => {
            let state = root.runtime().state(&id)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
        }
        Command::Kill { root, id, signal } => root.runtime().kill(&id, parse_signal(&signal)?)?,
        Command::Delete { root, force, id } => root.runtime().delete(&id, force)?,
        Command::Run { root, create } => {
            let code = root.runtime().run_forwarding_signals(&create.id, &create.bundle, create.options())?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)));
        }
        Command::List { root, format } => {
            let states = root.runtime().list()?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&states)?),
                "table" => {
                    println!("{:<20} {:<8} {:<10} BUNDLE", "ID", "PID", "STATUS");
                    for s in states {
                        println!("{:<20} {:<8} {:<10} {}", s.id, s.pid, s.status, s.bundle.display());
                    }
                }
                other => anyhow::bail!("--format {other:?}: use table or json"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
