//! Running a plugin, as the CNI specification says a runtime does: find the binary
//! named by `type` in the bin dirs, run it with the `CNI_*` variables, the config on
//! stdin, and read JSON back from stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use super::types::PluginError;
use crate::{Error, Result};

/// The four operations of the CNI specification (1.1 adds GC and STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Connect the container: make interfaces, take addresses.
    Add,
    /// Disconnect it; must succeed when there is nothing left to remove.
    Del,
    /// Verify that what ADD made is still there and right.
    Check,
    /// Report the specification versions the plugin supports.
    Version,
}

impl Command {
    /// The value of `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
        }
    }
}

/// Which container, and where its network namespace is.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`: the sandbox's id (the pause container's).
    pub container_id: String,
    /// `CNI_NETNS`: a path to the network namespace: `/proc/PID/ns/net`, or a bind mount
    /// of it such as `/run/netns/NAME` (what `ip netns add` makes).
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface to make inside, `eth0`.
    pub ifname: String,
    /// `CNI_ARGS`: extra `KEY=VALUE` pairs; the kubelet passes `K8S_POD_NAME` and friends.
    pub args: Vec<(String, String)>,
    /// Values for the plugins' `capabilities` (`portMappings`, `bandwidth`, ...): a plugin
    /// that declares `"capabilities": {"portMappings": true}` gets `runtimeConfig.portMappings`.
    pub capability_args: serde_json::Map<String, Value>,
}

impl RuntimeConf {
    /// `CNI_IFNAME=eth0` in the namespace at `netns`, no args.
    pub fn new(container_id: impl Into<String>, netns: impl Into<PathBuf>) -> RuntimeConf {
        RuntimeConf {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: Vec::new(),
            capability_args: serde_json::Map::new(),
        }
    }
}

/// The binary of plugin `kind` (a config's `type`): the first `bin_dirs/kind` that exists.
///
/// # Errors
/// If no bin dir has it.
pub fn find(kind: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf> {
    bin_dirs.iter().map(|d| d.join(kind)).find(|p| p.is_file()).ok_or_else(|| Error::Cni {
        plugin: kind.to_string(),
        command: "lookup".into(),
        code: 0,
        msg: format!(
            "no binary {kind:?} in the CNI bin dirs {bin_dirs:?}; install the plugin there \
             (Debian's are in /usr/lib/cni: apt-get install containernetworking-plugins)"
        ),
        details: String::new(),
    })
}

// ANCHOR: exec
/// Runs the plugin binary `path` for `command` with `config` on stdin and returns what
/// it printed (`Value::Null` for an empty output, which DEL may give). The environment
/// is ours plus the `CNI_*` variables (`rt` is `None` only for VERSION).
///
/// # Errors
/// [`Error::Cni`] with the plugin's own `code`, `msg` and `details` when it fails, or
/// with code 0 when it cannot be started or prints something that is not JSON.
pub fn exec(
    path: &Path,
    command: Command,
    rt: Option<&RuntimeConf>,
    bin_dirs: &[PathBuf],
    config: &Value,
) -> Result<Value> {
    let plugin = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let fail = |code: u32, msg: String, details: String| Error::Cni {
        plugin: plugin.clone(),
        command: command.as_str().into(),
        code,
        msg,
        details,
    };
    let cni_path =
        std::env::join_paths(bin_dirs).map_err(|e| fail(0, format!("bad CNI bin dir: {e}"), String::new()))?;
    let mut process = Process::new(path);
    process.env("CNI_COMMAND", command.as_str()).env("CNI_PATH", &cni_path);
    if let Some(rt) = rt {
        let args: Vec<String> = rt.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        process
            .env("CNI_CONTAINERID", &rt.container_id)
            .env("CNI_NETNS", &rt.netns)
            .env("CNI_IFNAME", &rt.ifname)
            .env("CNI_ARGS", args.join(";"));
    }
    let mut child = process
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(0, format!("cannot run {}: {e}", path.display()), String::new()))?;
    let stdin = serde_json::to_vec(config).map_err(|e| fail(0, e.to_string(), String::new()))?;
    // A plugin that exits without reading its stdin makes this write fail (EPIPE):
    // what it printed says more, so the write error is ignored.
    let _ = child.stdin.take().map(|mut s| s.write_all(&stdin));
    let out = child.wait_with_output().map_err(|e| fail(0, format!("waiting for it: {e}"), String::new()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        return Err(match serde_json::from_str::<PluginError>(&stdout) {
            Ok(e) => fail(e.code, e.msg, e.details),
            Err(_) => fail(0, format!("exited with {} and no error JSON: {}", out.status, stdout.trim()), stderr),
        });
    }
    if stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout).map_err(|e| fail(0, format!("printed no JSON ({e}): {}", stdout.trim()), stderr))
}
// ANCHOR_END: exec
