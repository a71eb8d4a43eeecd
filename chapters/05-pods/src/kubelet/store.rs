//! Pod records on disk: `paths.pods()/<name>/pod.json`, written by the pod's supervisor
//! after every change and read by `kthw pod ls`, `inspect`, `logs`, `exec` and `rm`.
//!
//! ```text
//! pods/<name>/pod.json                 the Pod (with its status) and what runs for it
//! pods/<name>/containers/<c>/bundle/   the OCI bundle (rootfs mounted at bundle/rootfs)
//! pods/<name>/containers/<c>/log.json  Docker-style json-file log, kept across restarts
//! pods/<name>/volumes/<v>/             the pod's emptyDir volumes
//! ```
//!
//! What the real kubelet does differently: it keeps no such file. The API server holds
//! the Pod and its status; the container runtime (containerd) holds the sandboxes and
//! containers, labelled with the pod's uid; the kubelet rebuilds its picture from both
//! after a restart. Logs live under `/var/log/pods/<namespace>_<name>_<uid>/<c>/N.log`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use kthw_lab::Paths;
use serde::{Deserialize, Serialize};

use crate::api::Pod;
use crate::sync::BackOff;
use crate::{Error, Result};

/// Everything we keep about one pod.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PodRecord {
    /// The pod as loaded (defaults applied, a uid set), with its latest status.
    pub pod: Pod,
    /// The pid of the process running the pod's sync loop; `None` once it has stopped.
    pub supervisor: Option<i32>,
    pub sandbox: Option<SandboxRecord>,
    /// Init and app containers, by name; absent until first started.
    pub containers: BTreeMap<String, ContainerRecord>,
}

/// The pause container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SandboxRecord {
    /// Its id in the runtime (and its rootfs name).
    pub id: String,
    /// The pause process, PID 1 of the pod's namespaces.
    pub pid: i32,
    /// The pod IP that CNI gave it.
    pub ip: Option<String>,
    pub attempt: u32,
    pub running: bool,
}

/// The latest instance of one container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    /// The init process of the running instance.
    pub pid: Option<i32>,
    pub restart_count: u32,
    pub started_at: Option<SystemTime>,
    /// Exit code and time of the latest instance, once it exited.
    pub exit: Option<(i32, SystemTime)>,
    /// The latest instance was killed by the OOM killer (its cgroup counted an `oom_kill`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// The instance before the latest, once the container was restarted: the status's
    /// `lastState`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Finished>,
    /// The id of the image it was started from (its config's digest): `imageID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub back_off: Option<BackOffRecord>,
}

/// An instance that exited.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Finished {
    pub exit_code: i32,
    pub started_at: Option<SystemTime>,
    pub finished_at: SystemTime,
    pub oom_killed: bool,
}

impl ContainerRecord {
    /// The latest instance, if it exited.
    pub fn finished(&self) -> Option<Finished> {
        let (exit_code, finished_at) = self.exit?;
        Some(Finished { exit_code, started_at: self.started_at, finished_at, oom_killed: self.oom_killed })
    }
}

/// A container's [`BackOff`] entry, as stored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct BackOffRecord {
    pub delay: std::time::Duration,
    pub last_update: SystemTime,
}

impl From<BackOff> for BackOffRecord {
    fn from(b: BackOff) -> Self {
        BackOffRecord { delay: b.delay, last_update: b.last_update }
    }
}

impl From<BackOffRecord> for BackOff {
    fn from(b: BackOffRecord) -> Self {
        BackOff { delay: b.delay, last_update: b.last_update }
    }
}

/// The folder of pod `name`.
pub fn dir(paths: &Paths, name: &str) -> PathBuf {
    paths.pods().join(name)
}

/// The record file of pod `name`.
pub fn record_path(paths: &Paths, name: &str) -> PathBuf {
    dir(paths, name).join("pod.json")
}

/// The folder of container `container` of pod `name`.
pub fn container_dir(paths: &Paths, name: &str, container: &str) -> PathBuf {
    dir(paths, name).join("containers").join(container)
}

/// The json-file log of a container.
pub fn log_path(paths: &Paths, name: &str, container: &str) -> PathBuf {
    container_dir(paths, name, container).join("log.json")
}

/// Writes the record atomically (a reader never sees half of it).
///
/// # Errors
/// If the file cannot be written.
pub fn write(paths: &Paths, record: &PodRecord) -> Result<()> {
    let path = record_path(paths, record.pod.name());
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(record).map_err(|e| Error::bad("the pod record", e))?;
    std::fs::write(&tmp, text).map_err(Error::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("rename", &path))
}

/// Reads the record of pod `name`.
///
/// # Errors
/// [`Error::Bad`] naming `kthw pod ls` if there is no such pod; an unreadable record.
pub fn read(paths: &Paths, name: &str) -> Result<PodRecord> {
    let path = record_path(paths, name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::bad(format!("pod {name:?}"), "no such pod; `kthw pod ls` lists the pods"));
        }
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| Error::bad(path.display().to_string(), e))
}

/// Fails if pod `name` exists: running (its supervisor is alive), or stopped with its
/// record left behind. Names are unique on a node, as in a namespace of the API server.
///
/// # Errors
/// [`Error::Bad`] saying which of the two, and how to get rid of it.
pub fn ensure_absent(paths: &Paths, name: &str) -> Result<()> {
    if !dir(paths, name).exists() {
        return Ok(());
    }
    let what = format!("pod {name:?}");
    let why = match read(paths, name).map(|r| r.supervisor.filter(|pid| alive(*pid))) {
        Ok(Some(pid)) => format!(
            "runs already (its supervisor is pid {pid}); stop and remove it with `kthw pod rm {name}`, \
             or give the new pod another name"
        ),
        Ok(None) => format!("exists already and has stopped; remove it first with `kthw pod rm {name}`"),
        Err(_) => format!("its folder {} is left over; remove it", dir(paths, name).display()),
    };
    Err(Error::bad(what, why))
}

/// Every pod's record, by name.
///
/// # Errors
/// An unreadable pods folder or record.
pub fn list(paths: &Paths) -> Result<Vec<PodRecord>> {
    let root = paths.pods();
    let mut names: Vec<String> = match std::fs::read_dir(&root) {
        Ok(entries) => entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", root)(e)),
    };
    names.sort();
    names.into_iter().filter(|n| record_path(paths, n).is_file()).map(|n| read(paths, &n)).collect()
}

/// Whether process `pid` exists (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    match stat.rsplit_once(')') {
        Some((_, rest)) => !rest.trim_start().starts_with('Z'),
        None => false,
    }
}
