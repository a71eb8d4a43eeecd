//! `kthw run`, `ps`, `logs`, `exec`, `stop`, `kill`, `rm`, `inspect`, `commit`, `events`,
//! `system` (chapter 4, high level): a Docker-like command line. Argument parsing only;
//! the work is in `kthw_runtime::engine`.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use kthw_runtime::engine::{self, Engine, ExecOptions, RunOptions, RunOutcome, render};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// [ch 4] Run a command in a new container from an image (like `docker run`)
    Run(RunArgs),
    /// [ch 4] List containers: running ones, or all with -a (like `docker ps`)
    Ps {
        /// Show every container, also the stopped ones
        #[arg(short, long)]
        all: bool,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// [ch 4] Print a container's output from its log (like `docker logs`)
    Logs {
        container: String,
        /// Keep printing new output until the container exits
        #[arg(short, long)]
        follow: bool,
    },
    /// [ch 4] Run a command in a running container, with setns (like `docker exec`)
    Exec {
        /// Keep stdin open
        #[arg(short, long)]
        interactive: bool,
        /// Give the command a terminal of the container's
        #[arg(short, long)]
        tty: bool,
        /// Set an environment variable: NAME=VALUE
        #[arg(short, long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// The working directory inside the container
        #[arg(short, long)]
        workdir: Option<String>,
        /// The user to run as: USER[:GROUP], names or numbers
        #[arg(short, long)]
        user: Option<String>,
        container: String,
        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// [ch 4] Stop containers: SIGTERM, then SIGKILL after the grace period (like `docker stop`)
    Stop {
        /// Seconds to wait after SIGTERM before SIGKILL
        #[arg(short, long = "time", default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// [ch 4] Send a signal to containers' init (like `docker kill`)
    Kill {
        /// The signal: a name (KILL, SIGTERM) or a number
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// [ch 4] Remove containers and everything they had: cgroup, veth, rules, mount, rootfs (like `docker rm`)
    Rm {
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// [ch 4] Print containers' configuration and state as JSON (like `docker inspect`)
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// [ch 4] Make an image from a container's changes (like `docker commit`)
    Commit { container: String, image: String },
    /// [ch 4] Print what happened to containers: create, start, die, stop, destroy (like `docker events`)
    Events {
        /// Only events at or after this RFC 3339 time
        #[arg(long)]
        since: Option<String>,
        /// Keep printing new events
        #[arg(short, long)]
        follow: bool,
        /// Print the JSON lines as they are stored
        #[arg(long)]
        json: bool,
    },
    /// [ch 4] Disk usage and cleanup (like `docker system df|prune`)
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Disk used by images, containers and their logs
    Df,
    /// Remove stopped containers, then blobs no image uses
    Prune {
        /// Also remove every image that no container or rootfs uses
        #[arg(short, long)]
        all: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the container's id
    #[arg(short, long)]
    detach: bool,
    /// The container's name (default: a made-up one like brave_turing)
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable: NAME=VALUE
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Bind-mount a host directory: HOST:CONTAINER[:ro]
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volumes: Vec<String>,
    /// Publish a port: [IP:]HOST_PORT:CONTAINER_PORT[/udp]
    #[arg(short, long = "publish", value_name = "[IP:]HOST:CONTAINER")]
    publish: Vec<String>,
    /// Memory limit, e.g. 64M
    #[arg(short, long)]
    memory: Option<String>,
    /// CPU limit in CPUs, e.g. 0.5
    #[arg(long)]
    cpus: Option<String>,
    /// The container's host name (default: the first 12 digits of its id)
    #[arg(long)]
    hostname: Option<String>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal (with -i: an interactive shell)
    #[arg(short, long)]
    tty: bool,
    /// bridge (default: an address on kthw0) or none (only lo)
    #[arg(long)]
    network: Option<String>,
    /// Replace the image's entrypoint
    #[arg(long)]
    entrypoint: Option<String>,
    /// The working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// The user to run as: USER[:GROUP], names or numbers
    #[arg(short, long)]
    user: Option<String>,
    /// The image, e.g. busybox (see `kthw image ls`)
    image: String,
    /// The command and its arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(&kthw_lab::Paths::from_env())?;
    match cmd {
        Command::Run(a) => {
            let opts = RunOptions {
                image: a.image,
                command: a.command,
                name: a.name,
                detach: a.detach,
                env: a.env,
                volumes: a.volumes,
                publish: a.publish,
                memory: a.memory,
                cpus: a.cpus,
                hostname: a.hostname,
                auto_remove: a.rm,
                interactive: a.interactive,
                tty: a.tty,
                network: a.network,
                entrypoint: a.entrypoint,
                workdir: a.workdir,
                user: a.user,
            };
            match engine.run(&opts)? {
                RunOutcome::Detached { id } => println!("{id}"),
                RunOutcome::Exited { code, .. } => return Ok(exit_code(code)),
            }
        }
        Command::Ps { all, quiet } => {
            let rows = engine.ps(all)?;
            if quiet {
                rows.iter().for_each(|r| println!("{}", &r.record.id[..12]));
            } else {
                print!("{}", render::ps_table(&rows, SystemTime::now()));
            }
        }
        Command::Logs { container, follow } => {
            engine.logs(&container, follow, &mut std::io::stdout(), &mut std::io::stderr())?;
        }
        Command::Exec { interactive, tty, env, workdir, user, container, command } => {
            let opts = ExecOptions { command, tty, interactive, env, workdir, user };
            return Ok(exit_code(engine.exec(&container, &opts)?));
        }
        Command::Stop { time, containers } => {
            for c in containers {
                engine.stop(&c, Duration::from_secs(time))?;
                println!("{c}");
            }
        }
        Command::Kill { signal, containers } => {
            let signal = engine::parse_signal(&signal)?;
            for c in containers {
                engine.kill(&c, signal)?;
                println!("{c}");
            }
        }
        Command::Rm { force, containers } => {
            for c in containers {
                engine.rm(&c, force)?;
                println!("{c}");
            }
        }
        Command::Inspect { containers } => {
            let all = containers.iter().map(|c| engine.inspect(c)).collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Command::Commit { container, image } => {
            let image = engine.commit(&container, &image)?;
            println!("{} {}", image.name, image.id());
        }
        Command::Events { since, follow, json } => {
            engine.events.print(since.as_deref(), follow, json, &mut std::io::stdout())?;
        }
        Command::System(SystemCommand::Df) => print!("{}", render::df_table(&engine.df()?)),
        Command::System(SystemCommand::Prune { all }) => print!("{}", render::pruned_text(&engine.prune(all)?)),
    }
    Ok(ExitCode::SUCCESS)
}
