//! The pod sandbox: the pause container, made first, holding the pod's network, IPC
//! and UTS namespaces (and PID namespace), wired to the pod network by CNI between
//! the runtime's `create` and `start` — the moment the namespace exists and nothing
//! runs in it yet.
//!
//! ```text
//! create pause ──▶ /proc/PAUSE/ns/net ──CNI ADD──▶ eth0 10.200.0.5/24 ──▶ start pause
//! ```
//!
//! What containerd does differently (`RunPodSandbox`): it makes the network namespace
//! first, as a bind mount under `/var/run/netns/cni-<uuid>`, runs CNI on it, and only
//! then starts the pause container inside it. The namespace then survives a pause that
//! dies, and the IP with it.

use std::path::{Path, PathBuf};

use kthw_lab::Paths;
use serde_json::json;

use super::Kubelet;
use super::containers::{self, Request, Started};
use crate::cni::{Cni, RuntimeConf};
use crate::{Error, Result, cni, pause};

/// The runtime id of pod `name`'s sandbox.
pub fn id(pod: &str) -> String {
    format!("{pod}_sandbox")
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub started: Started,
    pub ip: Option<String>,
}

/// Where a helper binary of this crate is: `$ENV`, else next to the running program or
/// one folder up (a test binary runs from `target/debug/deps`).
///
/// # Errors
/// Naming the `cargo build` that makes it.
pub fn helper_binary(env: &str, name: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(Error::io("find", "the running program"))?;
    let dirs = exe.ancestors().skip(1).take(2);
    if let Some(found) = dirs.map(|d| d.join(name)).find(|p| p.is_file()) {
        return Ok(found);
    }
    Err(Error::bad(
        format!("the program {name}"),
        format!("is not next to {}; build it with `cargo build -p kthw-pods --bins`, or set {env}", exe.display()),
    ))
}

/// The pod network: our plugin installed into `state/cni/bin`, our bridge config in
/// `state/cni/net.d` unless one is there already (a learner may put Debian's there),
/// results cached in `state/cni/cache`.
///
/// # Errors
/// If the plugin cannot be found or installed, or the config not written or loaded.
pub fn network(paths: &Paths) -> Result<Cni> {
    let root = paths.state.join("cni");
    let bin = root.join("bin");
    let conf = root.join("net.d");
    if !bin.join(cni::bridge::TYPE).exists() {
        cni::install_plugin(&bin, &helper_binary("KTHW_CNI_BRIDGE", "kthw-cni-bridge")?)?;
    }
    let has_config = std::fs::read_dir(&conf).map(|mut d| d.next().is_some()).unwrap_or(false);
    if !has_config {
        std::fs::create_dir_all(&conf).map_err(Error::io("create", &conf))?;
        let config = cni::kthw_bridge_config(paths, cni::pod_subnet(paths)?);
        let path = conf.join("10-kthw-pods.conflist");
        let text = serde_json::to_vec_pretty(&config).map_err(|e| Error::bad("CNI config", e))?;
        std::fs::write(&path, text).map_err(Error::io("write", &path))?;
    }
    Cni::load(&conf, vec![bin, PathBuf::from(cni::DEBIAN_BIN_DIR)], root.join("cache"))
}

/// The pause image, made from our `kthw-pause` binary the first time.
///
/// # Errors
/// If the binary is missing or the image cannot be written.
pub fn ensure_pause_image(kubelet: &Kubelet) -> Result<()> {
    if kubelet.store.image(pause::IMAGE).is_ok() {
        return Ok(());
    }
    pause::image(&kubelet.store, &helper_binary("KTHW_PAUSE", "kthw-pause")?, pause::IMAGE)?;
    Ok(())
}

fn rt_conf(pod: &str, uid: &str, pid: i32) -> RuntimeConf {
    let mut rt = RuntimeConf::new(id(pod), format!("/proc/{pid}/ns/net"));
    rt.args = vec![
        ("K8S_POD_NAMESPACE".into(), "default".into()),
        ("K8S_POD_NAME".into(), pod.into()),
        ("K8S_POD_UID".into(), uid.into()),
    ];
    rt
}

// ANCHOR: run_sandbox
/// Creates the sandbox of `pod`: the pause container in new namespaces, connected by
/// CNI, then started. On failure nothing is left.
///
/// # Errors
/// The pause image, the runtime or a CNI plugin failing.
pub fn create(kubelet: &Kubelet, pod: &crate::api::Pod, uid: &str, dir: &Path) -> Result<Sandbox> {
    ensure_pause_image(kubelet)?;
    let name = pod.name();
    let hostname = pod.spec.hostname.clone().unwrap_or_else(|| name.to_string());
    let req = Request {
        paths: &kubelet.paths,
        store: &kubelet.store,
        runtime: &kubelet.runtime,
        pod,
        uid,
        id: id(name),
        dir: dir.to_path_buf(),
        image: pause::IMAGE,
        container: None,
        join: None,
        hostname: Some(hostname),
        resources: json!(null),
        mounts: vec![],
        user: None,
    };
    let started = containers::create(&req)?;
    let pid = started.pid;
    let connected = kubelet.network()?.add(&rt_conf(name, uid, pid));
    let result = match connected {
        Ok(result) => kubelet.runtime.start(&id(name)).map(|()| result).map_err(Error::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(result) => {
            let ip = result.ips.first().map(|ip| ip.address.split('/').next().unwrap_or_default().to_string());
            Ok(Sandbox { started, ip })
        }
        Err(e) => {
            remove(kubelet, name, uid, pid);
            Err(e)
        }
    }
}
// ANCHOR_END: run_sandbox

/// Stops the sandbox: CNI DEL (while the namespace is still there), then the pause
/// container. Quiet about what is already gone.
pub fn remove(kubelet: &Kubelet, pod: &str, uid: &str, pid: i32) {
    if let Ok(network) = kubelet.network() {
        let _ = network.del(&rt_conf(pod, uid, pid));
    }
    containers::remove(&kubelet.paths, &kubelet.store, &kubelet.runtime, &id(pod));
}
