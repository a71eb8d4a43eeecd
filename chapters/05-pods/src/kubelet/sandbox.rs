//! The pod sandbox: the pause container, made first, holding the pod's network, IPC
//! and UTS namespaces (and PID namespace), wired to the pod network by CNI between
//! the runtime's `create` and `start` — the moment the namespace exists and nothing
//! runs in it yet.
//!
//! ```text
//! create pause ──▶ /proc/PAUSE/ns/net ──CNI ADD──▶ eth0 10.200.0.5/24 ──▶ start pause
//! ```
//!
//! The pod network's config is the first file of `state/cni/net.d`; [`select_plugins`]
//! (`kthw pod network --plugins kthw|debian`) writes ours or Debian's there.
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
    if !bin.join(cni::bridge::TYPE).exists() {
        cni::install_plugin(&bin, &helper_binary("KTHW_CNI_BRIDGE", "kthw-cni-bridge")?)?;
    }
    let config = network_config(paths)?;
    Ok(Cni::new(config, vec![bin, PathBuf::from(cni::DEBIAN_BIN_DIR)], root.join("cache")))
}

/// The pod network's CNI config dir: `state/cni/net.d`.
pub fn config_dir(paths: &Paths) -> PathBuf {
    paths.state.join("cni/net.d")
}

/// The file [`select_plugins`] writes (and the first pod, with our plugin): `10-` so that
/// it sorts first, as the runtime takes the first file by name.
pub const CONFIG_FILE: &str = "10-kthw-pods.conflist";

/// Which plugins the pod network runs: ours, or Debian's `containernetworking-plugins`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugins {
    /// `kthw-bridge` ([`cni::kthw_bridge_config`]).
    Kthw,
    /// `bridge` + `host-local`, then `loopback` ([`cni::debian_bridge_config`]).
    Debian,
}

impl std::str::FromStr for Plugins {
    type Err = Error;

    fn from_str(s: &str) -> Result<Plugins> {
        match s {
            "kthw" => Ok(Plugins::Kthw),
            "debian" => Ok(Plugins::Debian),
            other => Err(Error::bad(format!("plugins {other:?}"), "choose `kthw` (ours) or `debian`")),
        }
    }
}

/// The network config in use, after writing ours if the config dir has none (what the
/// first pod does).
///
/// # Errors
/// If the config cannot be written, or the first file of the dir is not a valid config.
pub fn network_config(paths: &Paths) -> Result<cni::NetworkConfig> {
    let conf = config_dir(paths);
    let has_config = cni::config::config_files(&conf).is_ok_and(|files| !files.is_empty());
    if !has_config {
        cni::config::write(&conf, CONFIG_FILE, &cni::kthw_bridge_config(paths, cni::pod_subnet(paths)?))?;
    }
    cni::config::load_dir(&conf)
}

// ANCHOR: select_plugins
/// Selects the plugins of the pod network: writes their config, for this instance's
/// bridge and subnet, as [`CONFIG_FILE`]. Refused while a pod exists: its address was
/// handed out by the other plugins' IPAM, and the new ones could neither `DEL` nor
/// `CHECK` it.
///
/// # Errors
/// [`Error::Bad`] naming the pods to remove first, or a config file that sorts before
/// ours (the runtime would keep using it); a file that cannot be written.
pub fn select_plugins(paths: &Paths, plugins: Plugins) -> Result<cni::NetworkConfig> {
    let pods: Vec<String> = super::store::list(paths)?.iter().map(|r| r.pod.name().to_string()).collect();
    if !pods.is_empty() {
        return Err(Error::bad(
            "the pod network's plugins",
            format!(
                "cannot change while pods exist ({}): their IPs came from the other plugins' IPAM; \
                 remove them first with `kthw pod rm {}`",
                pods.join(", "),
                pods.join(" ")
            ),
        ));
    }
    let conf = config_dir(paths);
    let ours = conf.join(CONFIG_FILE);
    if let Some(first) = cni::config::config_files(&conf).ok().and_then(|f| f.into_iter().next())
        && first < ours
    {
        return Err(Error::bad(
            format!("the CNI config {}", first.display()),
            format!("sorts before {CONFIG_FILE}, so the runtime would keep using it; move it away first"),
        ));
    }
    let subnet = cni::pod_subnet(paths)?;
    let config = match plugins {
        Plugins::Kthw => cni::kthw_bridge_config(paths, subnet),
        Plugins::Debian => cni::debian_bridge_config(paths, subnet),
    };
    cni::config::write(&conf, CONFIG_FILE, &config)?;
    cni::config::load_file(&ours)
}
// ANCHOR_END: select_plugins

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

/// What CNI is told about pod `pod`'s sandbox: its id, the pause's netns, the K8S_* args.
pub fn rt_conf(pod: &str, uid: &str, pid: i32) -> RuntimeConf {
    let mut rt = RuntimeConf::new(id(pod), format!("/proc/{pid}/ns/net"));
    rt.args = vec![
        // Without it, plugins built on the CNI Go library (Debian's) refuse the K8S_*
        // keys they do not know; containerd and CRI-O pass it first too.
        ("IgnoreUnknown".into(), "1".into()),
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
    let name = pod.name();
    let started = create_pause(kubelet, pod, uid, dir)?;
    let pid = started.pid;
    let connected = connect(kubelet, name, uid, pid).and_then(|ip| {
        kubelet.runtime.start(&id(name))?;
        Ok(ip)
    });
    match connected {
        Ok(ip) => Ok(Sandbox { started, ip }),
        Err(e) => {
            remove(kubelet, name, uid, pid);
            Err(e)
        }
    }
}

/// The pause container of `pod`, created in new namespaces (pid included) with the
/// pod's host name, and not started yet: between `create` and `start` is when CNI wires
/// its network namespace.
///
/// # Errors
/// The pause image or the runtime failing.
pub fn create_pause(kubelet: &Kubelet, pod: &crate::api::Pod, uid: &str, dir: &Path) -> Result<Started> {
    ensure_pause_image(kubelet)?;
    let name = pod.name();
    let hostname = pod.spec.hostname.clone().unwrap_or_else(|| name.to_string());
    containers::create(&Request {
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
    })
}

/// CNI ADD for the network namespace of the pause process `pid`; returns the pod IP.
///
/// # Errors
/// The CNI config or a plugin failing.
pub fn connect(kubelet: &Kubelet, pod: &str, uid: &str, pid: i32) -> Result<Option<String>> {
    let result = kubelet.network()?.add(&rt_conf(pod, uid, pid))?;
    Ok(result.ips.first().map(|ip| ip.address.split('/').next().unwrap_or_default().to_string()))
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
