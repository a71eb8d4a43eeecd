//! The pod network through CNI, the Container Network Interface.
//!
//! The kubelet does not make network interfaces. It asks its container runtime
//! (containerd, CRI-O) to run the pod's sandbox, and the runtime hands the sandbox's
//! network namespace to *CNI plugins*: programs that follow the CNI specification. A
//! plugin is a binary in a bin dir (`/opt/cni/bin`; Debian's are in `/usr/lib/cni`), run
//! once per operation:
//!
//! ```text
//! runtime ──exec──▶ /usr/lib/cni/bridge        env:   CNI_COMMAND=ADD CNI_CONTAINERID=…
//!         ◀─stdout─  {"ips": [...], ...}              CNI_NETNS=/proc/4242/ns/net
//!                                                      CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni
//!                                              stdin: the plugin's config (+ prevResult)
//! ```
//!
//! Which plugins run is decided by the network config, the first file of the config dir
//! ([`config`]): a chain such as `bridge` (with `host-local` for addresses, which
//! `bridge` itself runs as its IPAM plugin) then `loopback`. ADD runs the chain in order,
//! each plugin getting the previous one's result as `prevResult`; DEL runs it backwards;
//! CHECK runs it with the result ADD gave, which the runtime keeps ([`Cni::add`] writes
//! it to the cache dir, as libcni writes `/var/lib/cni/results`).
//!
//! - [`config`]: loading and checking network configs.
//! - [`exec`]: running one plugin ([`exec::exec`]).
//! - [`types`]: the result, error and version JSON.
//! - [`bridge`]: our own plugin, `kthw-bridge` (the binary `kthw-cni-bridge`).
//!
//! Our plugin and Debian's are interchangeable: [`kthw_bridge_config`] and
//! [`debian_bridge_config`] make the two configs for one instance, and only the config
//! dir decides which runs.
//!
//! What libcni (used by containerd, CRI-O, podman) does differently: it validates the
//! plugins' versions with VERSION before ADD, converts results between specification
//! versions, supports GC and STATUS (CNI 1.1), runs plugins with a timeout, and caches
//! the config with the result so DEL works after the config file changed.

pub mod bridge;
pub mod config;
pub mod exec;
pub mod types;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use kthw_lab::Paths;
use kthw_runtime::network::Subnet;
use serde_json::{Value, json};

pub use config::NetworkConfig;
pub use exec::{Command, RuntimeConf};
pub use types::{CniResult, PluginError, VersionInfo};

use crate::{Error, Result};

/// Where Debian's `containernetworking-plugins` installs the plugins.
pub const DEBIAN_BIN_DIR: &str = "/usr/lib/cni";

/// The runtime side: one network (a config list), the bin dirs to find its plugins in,
/// and a cache dir for ADD results.
#[derive(Debug, Clone)]
pub struct Cni {
    config: NetworkConfig,
    bin_dirs: Vec<PathBuf>,
    cache_dir: PathBuf,
}

impl Cni {
    /// The network of `conf_dir` (its first config file by name).
    ///
    /// # Errors
    /// As [`config::load_dir`].
    pub fn load(conf_dir: &Path, bin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Result<Cni> {
        Ok(Cni::new(config::load_dir(conf_dir)?, bin_dirs, cache_dir))
    }

    pub fn new(config: NetworkConfig, bin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Cni {
        Cni { config, bin_dirs, cache_dir }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    // ANCHOR: add
    /// Connects the container: runs each plugin's ADD in chain order, passing each the
    /// result of the one before, and returns (and caches) the last result.
    ///
    /// # Errors
    /// [`Error::Cni`] naming the plugin that failed, with its message. The plugins that
    /// succeeded before it are undone with DEL, as the specification asks.
    pub fn add(&self, rt: &RuntimeConf) -> Result<CniResult> {
        let mut prev: Option<Value> = None;
        for plugin in &self.config.plugins {
            match self.run(plugin, Command::Add, rt, prev.as_ref()) {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    let _ = self.del(rt);
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or(Value::Null);
        self.save_result(rt, &result)?;
        serde_json::from_value(result).map_err(|e| {
            Error::bad(format!("the result of CNI network {}", self.config.name), format!("is not a CNI result: {e}"))
        })
    }
    // ANCHOR_END: add

    /// Checks the container's network: each plugin's CHECK with the cached ADD result.
    /// Does nothing when the config says `disableCheck`.
    ///
    /// # Errors
    /// [`Error::Bad`] if ADD was not run for this container; [`Error::Cni`] from the
    /// first plugin that finds something wrong.
    pub fn check(&self, rt: &RuntimeConf) -> Result<()> {
        if self.config.disable_check {
            return Ok(());
        }
        let cached = self.cached_result(rt)?.ok_or_else(|| {
            Error::bad(
                format!("CNI CHECK of container {} on network {}", rt.container_id, self.config.name),
                "there is no result of an ADD for it; run ADD first",
            )
        })?;
        for plugin in &self.config.plugins {
            self.run(plugin, Command::Check, rt, Some(&cached))?;
        }
        Ok(())
    }

    /// Disconnects the container: each plugin's DEL, last first, with the cached result
    /// if there is one; then forgets the result. Succeeds if nothing is left to remove.
    ///
    /// # Errors
    /// [`Error::Cni`] from a plugin that cannot remove what it made.
    pub fn del(&self, rt: &RuntimeConf) -> Result<()> {
        let cached = self.cached_result(rt)?;
        for plugin in self.config.plugins.iter().rev() {
            self.run(plugin, Command::Del, rt, cached.as_ref())?;
        }
        let path = self.result_path(rt);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
            _ => Ok(()),
        }
    }

    /// What each plugin of the chain answers to VERSION, by `type`.
    ///
    /// # Errors
    /// [`Error::Cni`] if a plugin is missing or fails.
    pub fn versions(&self) -> Result<Vec<(String, VersionInfo)>> {
        let mut out = Vec::new();
        for kind in self.config.types() {
            let path = exec::find(kind, &self.bin_dirs)?;
            let answer = exec::exec(
                &path,
                Command::Version,
                None,
                &self.bin_dirs,
                &json!({"cniVersion": self.config.cni_version}),
            )?;
            let info = serde_json::from_value(answer).map_err(|e| Error::bad(format!("VERSION of {kind}"), e))?;
            out.push((kind.to_string(), info));
        }
        Ok(out)
    }

    /// One plugin: its config with the list's `name` and `cniVersion`, the `prevResult`,
    /// and `runtimeConfig` for the capabilities it declares.
    fn run(&self, plugin: &Value, command: Command, rt: &RuntimeConf, prev: Option<&Value>) -> Result<Value> {
        let mut stdin = plugin.clone();
        let kind = plugin.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(obj) = stdin.as_object_mut() {
            obj.insert("name".into(), json!(self.config.name));
            obj.insert("cniVersion".into(), json!(self.config.cni_version));
            if let Some(prev) = prev.filter(|p| !p.is_null()) {
                obj.insert("prevResult".into(), prev.clone());
            }
            let wanted: serde_json::Map<String, Value> = plugin
                .get("capabilities")
                .and_then(Value::as_object)
                .map(|caps| {
                    caps.iter()
                        .filter(|(k, on)| on.as_bool() == Some(true) && rt.capability_args.contains_key(*k))
                        .map(|(k, _)| (k.clone(), rt.capability_args[k].clone()))
                        .collect()
                })
                .unwrap_or_default();
            if !wanted.is_empty() {
                obj.insert("runtimeConfig".into(), Value::Object(wanted));
            }
        }
        let path = exec::find(&kind, &self.bin_dirs)?;
        exec::exec(&path, command, Some(rt), &self.bin_dirs, &stdin)
    }

    fn result_path(&self, rt: &RuntimeConf) -> PathBuf {
        self.cache_dir.join("results").join(format!("{}-{}-{}", self.config.name, rt.container_id, rt.ifname))
    }

    fn save_result(&self, rt: &RuntimeConf, result: &Value) -> Result<()> {
        let path = self.result_path(rt);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        let text = serde_json::to_vec_pretty(result).map_err(|e| Error::bad("CNI result", e))?;
        std::fs::write(&path, text).map_err(Error::io("write", &path))
    }

    fn cached_result(&self, rt: &RuntimeConf) -> Result<Option<Value>> {
        let path = self.result_path(rt);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::bad(path.display().to_string(), e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path)(e)),
        }
    }
}

/// The block pod subnets are cut from: Kubernetes the Hard Way's pod range
/// `10.200.0.0/16`, one `/24` per node (here: per kthw instance).
pub const POD_BLOCK: Subnet = Subnet { addr: Ipv4Addr::new(10, 200, 0, 0), prefix_len: 16 };

/// The pod subnet of an instance: `10.200.0.0/24` for the default one, for others the
/// `/24` their name hashes to, moved on past any subnet a host route already uses.
///
/// # Errors
/// If `ip route` fails, or every `/24` of the block is taken.
pub fn pod_subnet(paths: &Paths) -> Result<Subnet> {
    let bridge = bridge_name(paths);
    let taken = kthw_runtime::network::bridge::host_subnets(&bridge)?;
    let start = if paths.instance == Paths::default().instance {
        0
    } else {
        paths.instance.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193)) % 255 + 1
    };
    let [a, b, ..] = POD_BLOCK.addr.octets();
    (0..256)
        .map(|i| Subnet::new(Ipv4Addr::new(a, b, ((start + i) % 256) as u8, 0), 24))
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
        .ok_or_else(|| Error::bad("a pod subnet", format!("every /24 of {POD_BLOCK} overlaps a host route")))
}

/// The pods' bridge of an instance: `kthwcni0`, distinct from chapter 4's `kthw0`.
pub fn bridge_name(paths: &Paths) -> String {
    paths.name("cni0")
}

/// Our plugin's network config for an instance: bridge `<instance>cni0`, host ends of
/// the veths `<instance>c<N>`, addresses from `subnet` kept under `state/cni/networks`.
pub fn kthw_bridge_config(paths: &Paths, subnet: Subnet) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "kthw-pods",
        "plugins": [{
            "type": bridge::TYPE,
            "bridge": bridge_name(paths),
            "vethPrefix": paths.name("c"),
            "subnet": subnet.to_string(),
            "dataDir": paths.state.join("cni/networks"),
        }]
    })
}

/// The same network with Debian's plugins: `bridge` with `host-local` addresses, then
/// `loopback`. `ipMasq` is off (no NAT to the outside: pods reach each other and the
/// host); the kubelet's usual config turns it on.
pub fn debian_bridge_config(paths: &Paths, subnet: Subnet) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "kthw-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge_name(paths),
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": subnet.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": paths.state.join("cni/networks"),
                }
            },
            { "type": "loopback" }
        ]
    })
}

/// Installs our plugin binary `exe` (`kthw-cni-bridge`) into `bin_dir` under its type's
/// name, `kthw-bridge`, as a symbolic link, the way plugin packages put binaries in
/// `/opt/cni/bin`. Returns the link.
///
/// # Errors
/// If the link cannot be made.
pub fn install_plugin(bin_dir: &Path, exe: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(bin_dir).map_err(Error::io("create", bin_dir))?;
    let link = bin_dir.join(bridge::TYPE);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(exe, &link).map_err(Error::io("link", &link))?;
    Ok(link)
}
