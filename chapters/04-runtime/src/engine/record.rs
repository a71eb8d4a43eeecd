//! What the engine keeps on disk about a container, and how its state is read back.
//!
//! ```text
//! containers/<id>/
//!   config.json       the Record: name, image, command, env, volumes, ports, limits (written once)
//!   bundle/           the OCI bundle: config.json (the runtime spec) and rootfs/ (the overlay mount)
//!   supervisor.pid    "PID START_TIME" of the supervisor (like containerd-shim's pid file)
//!   supervisor.log    the supervisor's own stderr, for when something goes wrong
//!   started.json      the init's pid (and start time) and when it started
//!   network.json      the address, gateway and veth while it runs
//!   exit.json         the exit code, when it finished, and an error if it never started
//!   log.json          the container's output, one JSON object per line (Docker's json-file)
//! ```
//!
//! Every `kthw` command is a new process, so nothing is kept in memory: the status that
//! `ps` shows is **derived** from these files and from `/proc` each time. `exit.json` is
//! written last, once everything is cleaned up, so its presence means "stopped". A pid is
//! checked together with its start time (field 22 of `/proc/PID/stat`), because after a
//! process dies the kernel may give its number to an unrelated one.
//!
//! What Docker does differently: dockerd keeps `config.v2.json` and `hostconfig.json`
//! under `/var/lib/docker/containers/<id>/` and holds the live state in memory; it learns
//! about exits from containerd's event stream, and containerd from the shim over ttrpc.
//! When dockerd restarts it asks containerd which containers still run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::state::start_time;
use crate::{Error, Result};

/// A bind mount from `-v HOST:CONTAINER[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host: PathBuf,
    pub container: PathBuf,
    pub read_only: bool,
}

impl Volume {
    /// Parses `-v HOST:CONTAINER[:ro|:rw]`. Both paths must be absolute, as with Docker's
    /// bind mounts (Docker would take a bare name as a named volume, which we do not have).
    ///
    /// # Errors
    /// A clear error naming the flag and what a valid value looks like.
    pub fn parse(s: &str) -> Result<Volume> {
        let bad = |why: &str| {
            Error::bad(format!("-v {s:?}"), format!("{why}; expected HOST:CONTAINER[:ro], e.g. -v /srv/data:/data:ro"))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [h, c] => (*h, *c, false),
            [h, c, "ro"] => (*h, *c, true),
            [h, c, "rw"] => (*h, *c, false),
            [_, _, mode] => return Err(bad(&format!("the mode {mode:?} is neither ro nor rw"))),
            _ => return Err(bad("it needs two paths separated by ':'")),
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(bad("both paths must be absolute"));
        }
        if container == "/" || container.split('/').any(|c| c == "..") {
            return Err(bad("the container path must be a directory below / without '..'"));
        }
        let host = PathBuf::from(host);
        if !host.exists() {
            return Err(bad(&format!("{} does not exist on the host; create it first", host.display())));
        }
        Ok(Volume { host, container: PathBuf::from(container), read_only })
    }

    /// `HOST:CONTAINER[:ro]`, as `docker inspect` shows it in `HostConfig.Binds`.
    pub fn bind_string(&self) -> String {
        let ro = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{ro}", self.host.display(), self.container.display())
    }
}

/// A published port (`-p`) is recorded as the network's own [`PortMapping`]: one type
/// from the flag to the iptables rule, and `127.0.0.1:8080->80/tcp` as its `Display`.
pub use crate::network::PortMapping;

/// The container's record (`config.json`): what `kthw run` was asked for, written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Given with `--name` or made up (`brave_turing`).
    pub name: String,
    /// The image's name, e.g. `busybox:latest`, and its id (config digest).
    pub image: String,
    pub image_id: String,
    /// When `kthw run` made it (RFC 3339 with nanoseconds).
    pub created: String,
    /// The image's entrypoint (Docker's `Path` is its first word, or the cmd's).
    pub entrypoint: Vec<String>,
    /// The command: the arguments after the image, or the image's cmd.
    pub cmd: Vec<String>,
    /// The environment, image first, then `-e`.
    pub env: Vec<String>,
    pub working_dir: String,
    /// The image's `User` (or empty: root).
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub interactive: bool,
    /// `--rm`: removed when it exits.
    pub auto_remove: bool,
    /// `bridge` (a veth on our bridge) or `none` (only `lo`).
    pub network: String,
    pub volumes: Vec<Volume>,
    pub ports: Vec<PortMapping>,
    /// `--memory` in bytes.
    pub memory: Option<u64>,
    /// `--cpus` in billionths of a CPU, as Docker's `NanoCpus`.
    pub nano_cpus: Option<u64>,
    /// The image's exposed ports, e.g. `80/tcp`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
}

impl Record {
    /// `entrypoint + cmd`: what the container's init executes.
    pub fn args(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// `started.json`: written by the supervisor once `Runtime::start` returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The init's pid on the host, and its start time to tell it from a later process.
    pub pid: i32,
    pub pid_start_time: u64,
    pub started_at: String,
}

/// `exit.json`: written by the supervisor last, after the cleanup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// The exit code, or 128 + the signal that killed it (137 for SIGKILL).
    pub exit_code: i32,
    pub finished_at: String,
    /// Why it never ran, or why the code is a guess (the supervisor had died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `supervisor.pid`: who holds the container's stdio and waits for its exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorPid {
    pub pid: i32,
    pub start_time: u64,
}

impl SupervisorPid {
    /// The supervisor `pid`, with its start time read now.
    pub fn of(pid: i32) -> Option<SupervisorPid> {
        start_time(pid).map(|start_time| SupervisorPid { pid, start_time })
    }

    /// Whether that process still lives (and is not a zombie waiting to be reaped).
    pub fn alive(&self) -> bool {
        alive(self.pid, self.start_time)
    }
}

/// Whether `pid` is the process that started at `start_time`, and has not exited.
pub fn alive(pid: i32, start: u64) -> bool {
    if pid <= 0 || start_time(pid) != Some(start) {
        return false;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
    !matches!(state.as_deref(), Some("Z") | Some("X") | None)
}

/// The status of a container, derived from its files and `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Made, not started (or its supervisor is still starting it).
    Created,
    /// The init runs and the supervisor waits for it.
    Running { pid: i32, started_at: String },
    /// It exited; everything but the record and the rootfs is cleaned up.
    Exited { code: i32, finished_at: String },
    /// The supervisor is gone without writing the exit: nobody holds the container's
    /// output or will collect its exit code. `init_alive` says whether the container's
    /// init still runs (now a child of the host's init).
    SupervisorDied { supervisor: i32, init_alive: bool },
}

impl Status {
    /// Docker's name for it (`State.Status` of `docker inspect`).
    pub fn name(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running { .. } => "running",
            Status::Exited { .. } => "exited",
            Status::SupervisorDied { .. } => "dead",
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, Status::Running { .. })
    }
}

/// One container's folder.
#[derive(Debug, Clone)]
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    pub fn new(containers: &Path, id: &str) -> Dir {
        Dir { path: containers.join(id) }
    }
    pub fn record(&self) -> PathBuf {
        self.path.join("config.json")
    }
    pub fn bundle(&self) -> PathBuf {
        self.path.join("bundle")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }
    pub fn log(&self) -> PathBuf {
        self.path.join("log.json")
    }
    pub fn supervisor_pid(&self) -> PathBuf {
        self.path.join("supervisor.pid")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.path.join("supervisor.log")
    }
    pub fn started(&self) -> PathBuf {
        self.path.join("started.json")
    }
    pub fn exited(&self) -> PathBuf {
        self.path.join("exit.json")
    }
    /// The network endpoint while it runs (address, gateway, veth, ports).
    pub fn network(&self) -> PathBuf {
        self.path.join("network.json")
    }

    /// Reads the record.
    ///
    /// # Errors
    /// A missing or unreadable `config.json`.
    pub fn load(&self) -> Result<Record> {
        read_json(&self.record())?.ok_or_else(|| Error::bad(self.record().display().to_string(), "it is missing"))
    }

    pub fn started_info(&self) -> Result<Option<Started>> {
        read_json(&self.started())
    }

    pub fn exit_info(&self) -> Result<Option<Exited>> {
        read_json(&self.exited())
    }

    pub fn supervisor(&self) -> Option<SupervisorPid> {
        let text = fs::read_to_string(self.supervisor_pid()).ok()?;
        let mut words = text.split_whitespace();
        Some(SupervisorPid { pid: words.next()?.parse().ok()?, start_time: words.next()?.parse().ok()? })
    }

    /// # Errors
    /// If the file cannot be written.
    pub fn write_supervisor(&self, s: SupervisorPid) -> Result<()> {
        write_atomic(&self.supervisor_pid(), format!("{} {}\n", s.pid, s.start_time).as_bytes())
    }

    // ANCHOR: status
    /// The status, from the files and `/proc`: `exit.json` wins; else a live supervisor
    /// means created or running; a supervisor that is gone without an `exit.json` died.
    pub fn status(&self) -> Status {
        if let Ok(Some(exit)) = self.exit_info() {
            return Status::Exited { code: exit.exit_code, finished_at: exit.finished_at };
        }
        let started = self.started_info().ok().flatten();
        match (self.supervisor(), started) {
            (None, _) => Status::Created,
            (Some(sup), None) if sup.alive() => Status::Created,
            (Some(sup), Some(s)) if sup.alive() => Status::Running { pid: s.pid, started_at: s.started_at },
            (Some(sup), started) => Status::SupervisorDied {
                supervisor: sup.pid,
                init_alive: started.is_some_and(|s| alive(s.pid, s.pid_start_time)),
            },
        }
    }
    // ANCHOR_END: status
}

/// Reads a JSON file; `None` if it does not exist.
///
/// # Errors
/// Unreadable or not valid JSON for `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::bad(path.display().to_string(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Writes a JSON file atomically (a temporary file renamed over it), so that a reader
/// in another process never sees half of it.
///
/// # Errors
/// If it cannot be written.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| Error::bad(path.display().to_string(), e))?;
    text.push(b'\n');
    write_atomic(path, &text)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("write", path))
}

/// Now, as Docker writes times: RFC 3339 with nanoseconds, in UTC.
pub fn now() -> String {
    timestamp(SystemTime::now())
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Parses what [`timestamp`] wrote.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Protocol;

    fn record() -> Record {
        Record {
            id: "a".repeat(64),
            name: "web".into(),
            image: "busybox:latest".into(),
            image_id: "sha256:1234".into(),
            created: "2024-05-01T10:00:00.000000001Z".into(),
            entrypoint: vec![],
            cmd: vec!["httpd".into(), "-f".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            working_dir: "/".into(),
            user: String::new(),
            hostname: "aaaaaaaaaaaa".into(),
            tty: false,
            interactive: false,
            auto_remove: false,
            network: "bridge".into(),
            volumes: vec![Volume { host: "/srv".into(), container: "/data".into(), read_only: true }],
            ports: vec![PortMapping { host_ip: None, host_port: 8080, container_port: 80, protocol: Protocol::Tcp }],
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            exposed_ports: vec!["80/tcp".into()],
        }
    }

    // A record written to disk reads back equal.
    #[test]
    fn record_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::new(tmp.path(), &"a".repeat(64));
        fs::create_dir_all(&dir.path).unwrap();
        write_json(&dir.record(), &record()).unwrap();
        assert_eq!(dir.load().unwrap(), record());
        assert_eq!(record().args(), ["httpd", "-f"]);
    }

    // With no supervisor file the container is created; with exit.json it is exited.
    #[test]
    fn status_comes_from_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::new(tmp.path(), "c");
        fs::create_dir_all(&dir.path).unwrap();
        assert_eq!(dir.status(), Status::Created);
        let exit = Exited { exit_code: 137, finished_at: now(), error: None };
        write_json(&dir.exited(), &exit).unwrap();
        assert_eq!(dir.status(), Status::Exited { code: 137, finished_at: exit.finished_at });
    }

    // A supervisor pid that names no live process is reported as a dead supervisor.
    #[test]
    fn a_gone_supervisor_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::new(tmp.path(), "c");
        fs::create_dir_all(&dir.path).unwrap();
        dir.write_supervisor(SupervisorPid { pid: i32::MAX, start_time: 1 }).unwrap();
        write_json(&dir.started(), &Started { pid: i32::MAX, pid_start_time: 1, started_at: now() }).unwrap();
        assert_eq!(dir.status(), Status::SupervisorDied { supervisor: i32::MAX, init_alive: false });
        // Our own process is alive, with its own start time.
        let me = SupervisorPid::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
    }

    // -v takes HOST:CONTAINER[:ro]; anything else is refused with what to write.
    #[test]
    fn volumes_parse() {
        let v = Volume::parse("/tmp:/data:ro").unwrap();
        assert_eq!(v, Volume { host: "/tmp".into(), container: "/data".into(), read_only: true });
        assert_eq!(v.bind_string(), "/tmp:/data:ro");
        for bad in ["/tmp", "tmp:/data", "/tmp:data", "/tmp:/data:rx", "/no/such/dir/kthw:/d", "/tmp:/"] {
            let err = Volume::parse(bad).unwrap_err().to_string();
            assert!(err.contains("HOST:CONTAINER"), "{bad}: {err}");
        }
    }
}
