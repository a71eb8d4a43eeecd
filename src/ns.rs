//! `kthw ns run | exec | ls | show` (chapter 1): argument parsing only; the work is in
//! the `kthw-namespaces` crate.

use std::process::ExitCode;

use kthw_lab::host::Namespace;
use kthw_namespaces::{IdMap, Pid, Spec, Stdio, exec, inspect};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run a command in new namespaces, in the foreground; exits with its exit code
    Run(RunArgs),
    /// Run a command inside a running process's namespaces (like nsenter or docker exec)
    Exec {
        /// The host PID of a process in the namespaces to join (e.g. from --pid-file)
        pid: i32,
        /// The command and its arguments
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// List the namespaces in use and their processes, like lsns
    Ls {
        /// Only namespaces of this kind (mnt, uts, ipc, pid, net, user, cgroup, time)
        #[arg(short = 't', long = "type", value_name = "TYPE", value_parser = parse_kind)]
        kind: Option<Namespace>,
    },
    /// Show a process's namespaces; with a second PID, compare the two
    Show {
        pid: i32,
        /// Another process to compare with
        other: Option<i32>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// New PID namespace: the first process is PID 1 (our init, which starts CMD as PID 2)
    #[arg(long)]
    pid: bool,
    /// New UTS namespace: a host name of its own
    #[arg(long)]
    uts: bool,
    /// New mount namespace, with private propagation (and a new /proc with --pid)
    #[arg(long)]
    mount: bool,
    /// New network namespace: only lo, which we bring up
    #[arg(long)]
    net: bool,
    /// New IPC namespace: System V IPC objects and POSIX message queues of its own
    #[arg(long)]
    ipc: bool,
    /// New user namespace: root inside, an unprivileged uid outside (see --uid-map)
    #[arg(long)]
    user: bool,
    /// The host name inside (needs --uts)
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// With --user: INSIDE:OUTSIDE:COUNT [default: 0:100000:65536]
    #[arg(long, value_name = "MAP", requires = "user")]
    uid_map: Option<IdMap>,
    /// With --user: INSIDE:OUTSIDE:COUNT [default: 0:100000:65536]
    #[arg(long, value_name = "MAP", requires = "user")]
    gid_map: Option<IdMap>,
    /// With --pid: make CMD itself PID 1, without our init (to see what goes wrong)
    #[arg(long, requires = "pid")]
    no_init: bool,
    /// Write the host PID of the namespace's first process to this file
    #[arg(long, value_name = "FILE")]
    pid_file: Option<std::path::PathBuf>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

fn parse_kind(s: &str) -> Result<Namespace, String> {
    Namespace::ALL
        .into_iter()
        .find(|n| n.proc_name() == s)
        .ok_or_else(|| format!("{s:?} is not a namespace kind; use one of mnt, uts, ipc, pid, net, user, cgroup, time"))
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run(args) => {
            let code = spec(args).spawn()?.wait_forwarding_signals()?;
            Ok(exit_code(code))
        }
        Command::Exec { pid, command } => {
            let code = exec::spawn(Pid::from_raw(pid), &command, Stdio::default())?.wait_forwarding_signals()?;
            Ok(exit_code(code))
        }
        Command::Ls { kind } => {
            let mut list = inspect::list()?;
            list.retain(|n| kind.is_none_or(|k| n.kind == k));
            print!("{}", inspect::render_list(&list));
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { pid, other } => {
            print!("{}", inspect::show(Pid::from_raw(pid), other.map(Pid::from_raw))?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn spec(args: RunArgs) -> Spec {
    let flags = [
        (args.pid, Namespace::Pid),
        (args.uts, Namespace::Uts),
        (args.mount, Namespace::Mount),
        (args.net, Namespace::Net),
        (args.ipc, Namespace::Ipc),
        (args.user, Namespace::User),
    ];
    let mut spec = Spec::new(args.command);
    for (on, ns) in flags {
        if on {
            spec = spec.namespace(ns);
        }
    }
    spec.hostname = args.hostname;
    spec.uid_map.extend(args.uid_map);
    spec.gid_map.extend(args.gid_map);
    spec.init = !args.no_init;
    spec.pid_file = args.pid_file;
    spec
}

/// A shell-style status (0..=255, 128+N for signal N) as our own exit code.
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
