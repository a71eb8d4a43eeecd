//! The OCI state of a container, kept on disk between `create`, `start`, `kill` and
//! `delete`.
//!
//! Each `kthw runtime` command is a new process, so what one command learns (the init's
//! pid, the cgroup, the bundle) must be written down for the next. Like runc, we keep one
//! folder per container under the runtime's root (`runc --root`, by default
//! `/run/runc`): `state.json` and the `exec.fifo` that `start` opens (see
//! [`crate::lifecycle`]). [`State`] is what the OCI runtime specification says
//! `runc state` prints; [`Record`] is that plus what only we need.
//!
//! The status is not stored but *derived*, as runc does: a container whose init is gone
//! is stopped, however it died; one whose `exec.fifo` still exists has not been started.
//! A pid alone is not proof: after the init dies the kernel may give its number to an
//! unrelated process. We therefore also keep the init's start time (field 22 of
//! `/proc/PID/stat`) and compare it.
//!
//! What runc does differently: its `state.json` holds libcontainer's whole internal
//! configuration (so `runc exec` and `runc update` can work without the bundle), and it
//! takes a file lock so that two commands on one container do not race.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The OCI runtime specification version we implement.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// The lifecycle of a container, as the OCI runtime specification names it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is still setting it up.
    Creating,
    /// Set up; its init waits for `start`.
    Created,
    /// The user's program runs.
    Running,
    /// The init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        })
    }
}

// ANCHOR: state
/// What `kthw runtime state ID` prints: the OCI state of a container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The version of the runtime specification.
    pub oci_version: String,
    /// The container's id, unique among this runtime's containers.
    pub id: String,
    /// Where it is in its life.
    pub status: Status,
    /// The init's pid as the host sees it; 0 once stopped.
    pub pid: i32,
    /// The absolute path of the bundle.
    pub bundle: PathBuf,
    /// The spec's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}
// ANCHOR_END: state

/// What we keep on disk for a container: its [`State`] as `create` left it, plus what the
/// later commands need.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(flatten)]
    pub state: State,
    /// The init's start time in clock ticks since boot, to tell it from a later process
    /// that got the same pid.
    pub start_time: u64,
    /// The cgroup path (as `/proc/PID/cgroup` shows it) that `delete` removes.
    pub cgroup: String,
    /// The root filesystem on the host.
    pub rootfs: PathBuf,
    /// When `create` ran (RFC 3339), as `runc state`'s `created`.
    pub created: String,
}

/// The folder of one container under the runtime's root.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl Record {
    /// Reads the record of `id`.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`] when there is none; a read or parse error otherwise.
    pub fn load(root: &Path, id: &str) -> Result<Record> {
        let path = dir(root, id).join("state.json");
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoSuchContainer(id.into())),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        serde_json::from_slice(&text).map_err(|e| Error::bad(path.display().to_string(), e))
    }

    /// Writes the record atomically (a new file renamed over the old), so a reader never
    /// sees half of it.
    ///
    /// # Errors
    /// The state folder cannot be written.
    pub fn save(&self, root: &Path) -> Result<()> {
        let folder = dir(root, &self.state.id);
        let tmp = folder.join("state.json.tmp");
        let text = serde_json::to_vec(self).map_err(|e| Error::bad("the container state", e))?;
        std::fs::write(&tmp, text).map_err(Error::io("write", &tmp))?;
        let path = folder.join("state.json");
        std::fs::rename(&tmp, &path).map_err(Error::io("write", &path))
    }

    /// The state with its status derived from the running system: stopped when the init
    /// is gone (or its pid now names another process), created while the `exec.fifo`
    /// exists, running otherwise.
    pub fn current(&self, root: &Path) -> State {
        let mut state = self.state.clone();
        if state.status == Status::Creating {
            return state;
        }
        if state.pid <= 0 || start_time(state.pid) != Some(self.start_time) || is_zombie(state.pid) {
            state.status = Status::Stopped;
            state.pid = 0;
        } else if dir(root, &state.id).join(crate::lifecycle::EXEC_FIFO).exists() {
            state.status = Status::Created;
        } else {
            state.status = Status::Running;
        }
        state
    }
}

/// The start time of `pid` (field 22 of `/proc/PID/stat`), or `None` if there is no such
/// process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// A zombie has exited and waits for its parent's `wait`: for us it is stopped.
fn is_zombie(pid: i32) -> bool {
    stat_fields(pid).and_then(|f| f.first().map(|s| s == "Z")).unwrap_or(false)
}

/// The fields of `/proc/PID/stat` after the command name, which may itself hold spaces
/// and parentheses: field 3 (the state) is the first.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The state serialises as the OCI specification spells it: `ociVersion`, lower-case status.
    #[test]
    fn state_json_is_oci() {
        let state = State {
            oci_version: OCI_VERSION.into(),
            id: "c1".into(),
            status: Status::Created,
            pid: 42,
            bundle: "/b".into(),
            annotations: BTreeMap::new(),
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["ociVersion"], "1.0.2-dev");
        assert_eq!(json["status"], "created");
        assert_eq!(serde_json::from_value::<State>(json).unwrap(), state);
    }

    // Our own process is found with its start time; a pid that cannot exist is not.
    #[test]
    fn start_time_tells_processes_apart() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(i32::MAX), None);
    }
}
