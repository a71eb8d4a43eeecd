//! `kthw pod run -d`: the pod's supervisor as a background process.
//!
//! ```text
//!  kthw pod run -d -f web.yaml          starts it, waits until the pod runs, returns
//!    └▶ kthw pod run --supervise -f web.yaml     own process group; output in run/pods/web.log
//!         │ Kubelet::run: the sync loop, until the pod ends or SIGTERM (`kthw pod rm`)
//!         ├─ kthw-pause                          the sandbox
//!         └─ the pod's containers                its children: it reaps them, reads their output
//! ```
//!
//! The supervisor runs in a process group of its own, so the terminal's Ctrl-C (SIGINT to
//! the foreground group) and its hang-up do not reach it or the containers, and it outlives
//! the command that started it (then init, or a subreaper, adopts it).
//!
//! [`start`] takes the command that becomes the supervisor from its caller instead of
//! building `current_exe() pod run --supervise -f FILE` itself: how to ask a binary to be a
//! supervisor is that binary's argument syntax, which this library does not know. The CLI
//! passes that command; a test or another program can pass its own.
//!
//! What the real components do differently: containerd starts one `containerd-shim-runc-v2`
//! per pod (CRI-O and Podman one `conmon` per container), which double-forks to be adopted
//! by init, holds the containers' stdio and exit codes, and outlives containerd. Our
//! supervisor is that shim *and* the pod's sync loop in one process. The kubelet itself
//! starts no process per pod: it is one daemon (a systemd service) for every pod of the
//! node, and asks containerd over CRI for sandboxes and containers.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kthw_lab::Paths;

use super::{executor, store};
use crate::api::PodPhase;
use crate::{Error, Result};

/// How long [`start`] waits for the pod to run: image layers, a CNI plugin and init
/// containers on a loaded machine take a while.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The supervisor's output (its event lines and errors): `run/pods/<name>.log`.
pub fn log_path(paths: &Paths, name: &str) -> PathBuf {
    paths.run.join("pods").join(format!("{name}.log"))
}

/// Starts `supervisor`, a command that runs pod `name` in the foreground (with
/// [`Kubelet::run`](super::Kubelet::run)), in its own process group with its output in
/// [`log_path`], and waits until the pod has its IP and is past `Pending` (or has already
/// ended). Returns the pod's record at that moment.
///
/// # Errors
/// A pod of that name exists (running, or stopped and not removed); the supervisor
/// cannot start, or exits before the pod runs (the error holds its log); the pod does not
/// run within [`START_TIMEOUT`] (the supervisor keeps trying).
pub fn start(paths: &Paths, name: &str, mut supervisor: Command) -> Result<store::PodRecord> {
    // Before starting anything: a second supervisor would only fail, and until it did
    // the first pod's record would look like the new pod running.
    store::ensure_absent(paths, name)?;
    let log_path = log_path(paths, name);
    let dir = paths.run.join("pods");
    std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    let log = File::create(&log_path).map_err(Error::io("create", &log_path))?;
    let err = log.try_clone().map_err(Error::io("duplicate", &log_path))?;
    use std::os::unix::process::CommandExt;
    let program = PathBuf::from(supervisor.get_program());
    let mut child = supervisor
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(Error::io("start", program))?;
    let pid = i32::try_from(child.id()).unwrap_or_default();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let record = store::read(paths, name).ok();
        if let Some(status) = child.try_wait().map_err(Error::io("wait for", "the pod's supervisor"))? {
            // A pod that ended before we looked (a job that ran in a blink) is fine.
            let ended = record.filter(|r| {
                let phase = r.pod.status.as_ref().and_then(|s| s.phase);
                status.success() && matches!(phase, Some(PodPhase::Succeeded | PodPhase::Failed))
            });
            return ended.ok_or_else(|| {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                Error::bad(
                    format!("pod {name:?}"),
                    format!("its supervisor exited ({status}) before the pod ran:\n{text}"),
                )
            });
        }
        // Only our supervisor's record counts.
        if let Some(r) = record.filter(|r| r.supervisor == Some(pid)) {
            let has_ip = r.pod.status.as_ref().is_some_and(|s| s.pod_ip.is_some());
            if has_ip && executor::phase(&r) != "Pending" {
                return Ok(r);
            }
        }
        if Instant::now() > deadline {
            return Err(Error::bad(
                format!("pod {name:?}"),
                format!(
                    "does not run after {} s; its supervisor (pid {pid}) keeps trying. See `kthw pod inspect {name}` \
                     and {}, or stop it with `kthw pod rm {name}`",
                    START_TIMEOUT.as_secs(),
                    log_path.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
