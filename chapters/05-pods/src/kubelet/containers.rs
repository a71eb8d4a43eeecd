//! App and init containers: a rootfs from the image, an OCI spec that joins the
//! sandbox's namespaces, and a chapter 4 runtime container whose output goes to a
//! json-file log.
//!
//! An OCI namespace entry with a `path` means "join this one" (setns) instead of "make
//! a new one". That is all it takes to put a container into a pod:
//!
//! ```text
//! "namespaces": [ {"type": "network", "path": "/proc/4242/ns/net"},   ─┐ the pause
//!                 {"type": "ipc",     "path": "/proc/4242/ns/ipc"},    ├ process's
//!                 {"type": "uts",     "path": "/proc/4242/ns/uts"},   ─┘
//!                 {"type": "pid"},    (or the pause's, with shareProcessNamespace)
//!                 {"type": "mount"} ]  each container keeps its own files
//! ```
//!
//! The command follows Kubernetes, not Docker: `command` replaces the image's
//! `Entrypoint`, `args` replaces its `Cmd`, and a `command` without `args` drops the
//! `Cmd` too.
//!
//! What containerd's CRI plugin does differently: it gets the sandbox's namespace paths
//! from its own sandbox record (a bind mount of the netns under `/var/run/netns`, so the
//! namespace outlives a crashed pause), applies the pod's security context, seccomp and
//! AppArmor profiles, and mounts `/etc/hosts`, `/etc/resolv.conf` and the termination
//! log from the pod's folder.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::SystemTime;

use kthw_lab::Paths;
use kthw_rootfs::Store;
use kthw_rootfs::rootfs::Rootfs;
use kthw_runtime::Runtime;
use kthw_runtime::engine::log::{self, LineSplitter, Stream};
use kthw_runtime::lifecycle::CreateOptions;
use serde_json::{Value, json};

use super::{Kubelet, cgroups, store};
use crate::api::{Container, Pod};
use crate::{Error, Result};

/// The runtime id (and rootfs name) of a container: `<pod>_c_<container>`; `_` cannot
/// appear in Kubernetes names, so no two pods' ids collide.
pub fn id(pod: &str, container: &str) -> String {
    format!("{pod}_c_{container}")
}

/// What a container joins: the sandbox's pause process.
#[derive(Clone, Copy, Debug)]
pub struct Join {
    pub pause_pid: i32,
    pub share_pid: bool,
}

// ANCHOR: join_sandbox
/// The spec's namespaces for a container of a pod: the pod's network, IPC and UTS
/// namespaces by path (and its PID namespace when `share_pid`), a mount namespace of
/// its own.
pub fn namespaces(join: Join) -> Value {
    let path = |kind: &str| format!("/proc/{}/ns/{kind}", join.pause_pid);
    let mut list = vec![
        json!({ "type": "network", "path": path("net") }),
        json!({ "type": "ipc", "path": path("ipc") }),
        json!({ "type": "uts", "path": path("uts") }),
        json!({ "type": "mount" }),
    ];
    list.push(if join.share_pid { json!({ "type": "pid", "path": path("pid") }) } else { json!({ "type": "pid" }) });
    Value::Array(list)
}
// ANCHOR_END: join_sandbox

/// The sandbox's namespaces: all new. The pid namespace is new even when the pod shares
/// one, because then pause must be its PID 1: the process that reaps the zombies that
/// the containers' orphans become, as the kubelet arranges it.
pub fn sandbox_namespaces() -> Value {
    json!([{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }])
}

/// The process arguments, by Kubernetes' rules over the image's Entrypoint and Cmd.
pub fn command(entrypoint: &[String], cmd: &[String], container: &Container) -> Vec<String> {
    match (container.command.is_empty(), container.args.is_empty()) {
        (true, true) => [entrypoint, cmd].concat(),
        (true, false) => [entrypoint, &container.args[..]].concat(),
        (false, _) => [&container.command[..], &container.args[..]].concat(),
    }
}

/// A started container: its init's pid and the read ends of its output.
#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    pub output: Output,
}

/// A container's stdout and stderr pipes, read without blocking by the sync loop and
/// written to its json-file log line by line.
#[derive(Debug)]
pub struct Output {
    pipes: Vec<(File, LineSplitter)>,
    log: log::Writer,
}

impl Output {
    /// Copies whatever is waiting in the pipes to the log.
    pub fn pump(&mut self) {
        let mut buf = [0u8; 8192];
        for (pipe, splitter) in &mut self.pipes {
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                for entry in splitter.push(&buf[..n], SystemTime::now()) {
                    let _ = self.log.write(&entry);
                }
            }
        }
    }

    /// The last reads after the container exited, and any unfinished line.
    pub fn finish(mut self) {
        self.pump();
        for (_, splitter) in &mut self.pipes {
            if let Some(entry) = splitter.finish(SystemTime::now()) {
                let _ = self.log.write(&entry);
            }
        }
    }
}

/// What a container is made from.
pub struct Request<'a> {
    pub paths: &'a Paths,
    pub store: &'a Store,
    pub runtime: &'a Runtime,
    pub pod: &'a Pod,
    pub uid: &'a str,
    /// The runtime id.
    pub id: String,
    /// The folder for its bundle and log.
    pub dir: std::path::PathBuf,
    pub image: &'a str,
    /// The process arguments; `None`: from the image.
    pub container: Option<&'a Container>,
    /// `None` for the sandbox, which makes the namespaces the others join.
    pub join: Option<Join>,
    /// Only the sandbox: its host name.
    pub hostname: Option<String>,
    /// Linux `linux.resources`, from the container's limits.
    pub resources: Value,
    pub mounts: Vec<Value>,
    pub user: Option<String>,
}

// ANCHOR: create_container
/// Makes the container's rootfs and bundle and creates it in the runtime (not started:
/// the sandbox is wired to CNI between create and start). Replaces an older instance
/// of the same id.
///
/// # Errors
/// A missing image, a user the image does not know, or a runtime failure.
pub fn create(req: &Request) -> Result<Started> {
    remove(req.paths, req.store, req.runtime, &req.id);
    let image = req.store.image(req.image).map_err(kthw_runtime::Error::from)?;
    let config = image.config.config().clone().unwrap_or_default();
    let bundle = req.dir.join("bundle");
    let rootfs_dir = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs_dir).map_err(Error::io("create", &rootfs_dir))?;
    let mut rootfs = Rootfs::create(req.paths, req.store, &image.name, &req.id, req.hostname.as_deref(), vec![])
        .map_err(kthw_runtime::Error::from)?;
    rootfs.mount(req.store, &rootfs_dir).map_err(kthw_runtime::Error::from)?;

    let args = match req.container {
        Some(c) => {
            command(config.entrypoint().as_deref().unwrap_or_default(), config.cmd().as_deref().unwrap_or_default(), c)
        }
        None => [config.entrypoint().clone().unwrap_or_default(), config.cmd().clone().unwrap_or_default()].concat(),
    };
    if args.is_empty() {
        return Err(Error::bad(format!("container {}", req.id), "has no command: give `command` in the manifest"));
    }
    let mut spec = serde_json::to_value(kthw_runtime::spec::default_spec(&args)?).map_err(|e| Error::bad("spec", e))?;
    let user = req.user.clone().or_else(|| config.user().clone()).unwrap_or_default();
    let (uid, gid) = kthw_runtime::engine::config::resolve_user(&rootfs_dir, &user)?;
    let extra: Vec<String> = req
        .container
        .map(|c| c.env.iter().map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let mut env = kthw_runtime::engine::config::merge_env(config.env().as_deref().unwrap_or_default(), &extra);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        // What containerd and Docker give an image that sets none.
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let cwd = req
        .container
        .and_then(|c| c.working_dir.clone())
        .or_else(|| config.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    spec["process"]["env"] = json!(env);
    spec["process"]["cwd"] = json!(cwd);
    spec["process"]["user"] = json!({ "uid": uid, "gid": gid });
    spec["root"] = json!({ "path": "rootfs", "readonly": false });
    match (&req.join, &req.hostname) {
        (Some(join), _) => {
            spec["linux"]["namespaces"] = namespaces(*join);
            if let Some(obj) = spec.as_object_mut() {
                obj.remove("hostname"); // the pod's UTS namespace has it already
            }
        }
        (None, hostname) => {
            spec["linux"]["namespaces"] = sandbox_namespaces();
            if let Some(hostname) = hostname {
                spec["hostname"] = json!(hostname);
            }
        }
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.extend(req.mounts.iter().cloned());
    }
    spec["linux"]["cgroupsPath"] = json!(cgroups::container_path(req.paths, req.uid, &req.id));
    if !req.resources.is_null() {
        spec["linux"]["resources"] = req.resources.clone();
    }
    spec["annotations"] = json!({ "io.kubernetes.pod.name": req.pod.name(), "io.kubernetes.pod.uid": req.uid });
    let path = bundle.join("config.json");
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| Error::bad("the spec", e))?;
    std::fs::write(&path, text).map_err(Error::io("write", &path))?;

    let log = log::Writer::open(&req.dir.join("log.json"))?;
    let (out_rd, out_wr) = pipe()?;
    let (err_rd, err_wr) = pipe()?;
    let null: OwnedFd = File::open("/dev/null").map_err(Error::io("open", "/dev/null"))?.into();
    let opts = CreateOptions { stdio: [Some(null), Some(out_wr), Some(err_wr)], ..Default::default() };
    let state = req.runtime.create(&req.id, &bundle, opts)?;
    let pipes = vec![(out_rd, LineSplitter::new(Stream::Stdout)), (err_rd, LineSplitter::new(Stream::Stderr))];
    Ok(Started { pid: state.pid, output: Output { pipes, log } })
}
// ANCHOR_END: create_container

/// Creates (does not start) app or init container `container` of `pod`, joined to
/// the sandbox whose pause process is `pause_pid`. The executor and `kthw bench pod`
/// both start containers through this.
///
/// # Errors
/// As [`create`], or the container's folder cannot be made.
pub fn create_in_sandbox(kubelet: &Kubelet, pod: &Pod, container: &Container, pause_pid: i32) -> Result<Started> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = store::container_dir(&kubelet.paths, pod.name(), &container.name);
    std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    create(&Request {
        paths: &kubelet.paths,
        store: &kubelet.store,
        runtime: &kubelet.runtime,
        pod,
        uid: &uid,
        id: id(pod.name(), &container.name),
        dir,
        image: container.image.as_deref().unwrap_or_default(),
        container: Some(container),
        join: Some(Join { pause_pid, share_pid: pod.spec.share_process_namespace == Some(true) }),
        hostname: None,
        resources: resources(container),
        mounts: mounts(&kubelet.paths, pod, container)?,
        user: None,
    })
}

/// A pipe whose read end does not block.
fn pipe() -> Result<(File, OwnedFd)> {
    use nix::fcntl::OFlag;
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io("make", "a pipe")(e.into()))?;
    let rd = File::from(rd);
    let flags =
        nix::fcntl::fcntl(&rd, nix::fcntl::FcntlArg::F_GETFL).map_err(|e| Error::io("fcntl", "a pipe")(e.into()))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&rd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(|e| Error::io("fcntl", "a pipe")(e.into()))?;
    Ok((rd, wr))
}

/// Removes the runtime container `id` (killing it), its rootfs mount and its rootfs.
/// Quiet: what is gone already is fine.
pub fn remove(paths: &Paths, store: &Store, runtime: &Runtime, id: &str) {
    let _ = runtime.delete(id, true);
    if let Ok(mut rootfs) = Rootfs::open(paths, id) {
        let _ = rootfs.unmount();
        let _ = rootfs.remove(store);
    }
}

/// The container's volume mounts as OCI bind mounts: emptyDir volumes are folders of
/// the pod, hostPath volumes the host's path.
///
/// # Errors
/// A volume mount naming no volume of the pod.
pub fn mounts(paths: &Paths, pod: &Pod, container: &Container) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for m in &container.volume_mounts {
        let volume = pod.spec.volumes.iter().find(|v| v.name == m.name).ok_or_else(|| {
            Error::bad(
                format!("volumeMount {:?} of container {}", m.name, container.name),
                "names no volume of the pod",
            )
        })?;
        let source = match &volume.host_path {
            Some(host) => Path::new(&host.path).to_path_buf(),
            None => {
                let dir = store::dir(paths, pod.name()).join("volumes").join(&volume.name);
                std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
                dir
            }
        };
        let mut options = vec!["rbind", "rprivate"];
        if m.read_only == Some(true) {
            options.push("ro");
        }
        out.push(json!({ "destination": m.mount_path, "type": "bind", "source": source, "options": options }));
    }
    Ok(out)
}

/// The container's `linux.resources`: its memory limit and CPU limit.
pub fn resources(container: &Container) -> Value {
    let r = container.resources();
    let mut out = serde_json::Map::new();
    if let Some(bytes) = r.memory_limit_bytes {
        out.insert("memory".into(), json!({ "limit": bytes }));
    }
    if let Some(millis) = r.cpu_limit_millis {
        let q = cgroups::millis_to_quota(millis);
        out.insert("cpu".into(), json!({ "quota": q.quota_us, "period": q.period_us }));
    }
    if out.is_empty() { Value::Null } else { Value::Object(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_entry(list: &Value) -> Value {
        list.as_array().unwrap().iter().find(|ns| ns["type"] == "pid").cloned().unwrap()
    }

    // The sandbox makes a new pid namespace, always; a container joins pause's pid
    // namespace only with shareProcessNamespace, and its net, ipc and uts always.
    #[test]
    fn the_pid_namespace_is_shared_only_when_asked() {
        assert_eq!(pid_entry(&sandbox_namespaces()), json!({ "type": "pid" }));
        let own = namespaces(Join { pause_pid: 42, share_pid: false });
        assert_eq!(pid_entry(&own), json!({ "type": "pid" }));
        let shared = namespaces(Join { pause_pid: 42, share_pid: true });
        assert_eq!(pid_entry(&shared), json!({ "type": "pid", "path": "/proc/42/ns/pid" }));
        for kind in ["network", "ipc", "uts"] {
            let entry = shared.as_array().unwrap().iter().find(|ns| ns["type"] == kind).cloned().unwrap();
            assert!(entry["path"].as_str().unwrap().starts_with("/proc/42/ns/"), "{entry}");
        }
    }
}
