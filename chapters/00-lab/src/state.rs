//! Where kthw keeps its state, and how it names what it creates on the host.
//!
//! Docker keeps everything under `/var/lib/docker` (images, containers, volumes) and
//! `/run/docker` (sockets, pid files: gone at reboot); containerd uses `/var/lib/containerd`
//! and `/run/containerd`; the kubelet uses `/var/lib/kubelet`. kthw does the same with
//! `/var/lib/kthw` and `/run/kthw`, decided here and nowhere else.
//!
//! One environment variable, `KTHW_HOME` (or the `--home` flag, which sets it), moves both
//! directories under one folder. That folder also gives the run its own **instance name**,
//! used as the prefix of every host-wide name kthw creates — network bridges, veths,
//! iptables chains, cgroups, network namespaces — so that tests run side by side without
//! colliding, and `kthw reset` knows exactly what is its own.
//!
//! What the real tools do differently: Docker and containerd take `--data-root`/`--root`
//! and `--exec-root`/`--state` separately, and their host names (`docker0`, `DOCKER`,
//! `cni0`) are fixed, which is why two Docker daemons on one host fight over them.

use std::path::{Path, PathBuf};

/// The environment variable that moves all of kthw's state under one folder.
pub const HOME_ENV: &str = "KTHW_HOME";

/// The instance name of the default installation.
const DEFAULT_INSTANCE: &str = "kthw";

/// The directories and host-wide names of one kthw installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Durable state: images, containers, pods, the store (`/var/lib/kthw`).
    pub state: PathBuf,
    /// Runtime state that must not survive a reboot: pid files, sockets, mounts (`/run/kthw`).
    pub run: PathBuf,
    /// Prefix of every host-wide name (bridges, chains, cgroups): `kthw` by default.
    pub instance: String,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            state: PathBuf::from("/var/lib/kthw"),
            run: PathBuf::from("/run/kthw"),
            instance: DEFAULT_INSTANCE.to_string(),
        }
    }
}

// ANCHOR: from_env
impl Paths {
    /// The paths of this process: under `$KTHW_HOME` if it is set, else the defaults.
    pub fn from_env() -> Self {
        match std::env::var_os(HOME_ENV) {
            Some(home) if !home.is_empty() => Paths::under(Path::new(&home)),
            _ => Paths::default(),
        }
    }

    /// Everything under `home`: `home/lib` and `home/run`, and an instance name derived
    /// from the folder's path, so two homes never share a bridge or a cgroup.
    pub fn under(home: &Path) -> Self {
        // The name must fit into an interface name with a suffix (Linux allows 15
        // bytes), so it is short: `k` and 7 hex digits of a stable hash of the path.
        let hash = fnv1a(home.as_os_str().as_encoded_bytes());
        Paths { state: home.join("lib"), run: home.join("run"), instance: format!("k{:07x}", hash & 0x0fff_ffff) }
    }
}
// ANCHOR_END: from_env

impl Paths {
    /// Where the image store lives (chapter 3).
    pub fn images(&self) -> PathBuf {
        self.state.join("images")
    }
    /// Where containers' bundles and metadata live (chapter 4).
    pub fn containers(&self) -> PathBuf {
        self.state.join("containers")
    }
    /// Where pods live (chapter 5).
    pub fn pods(&self) -> PathBuf {
        self.state.join("pods")
    }
    /// Where the API server's store lives (chapter 6).
    pub fn store(&self) -> PathBuf {
        self.state.join("store")
    }
    /// Where learners put files that a lab checker reads.
    pub fn lab(&self) -> PathBuf {
        self.state.join("lab")
    }

    /// A host-wide name for something of ours, such as `kthw0` for the bridge: the
    /// instance name followed by `suffix`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}{}", self.instance, suffix)
    }

    /// An iptables chain of ours: `KTHW-<SUFFIX>`, upper case as Docker's and
    /// kube-proxy's chains are.
    pub fn chain(&self, suffix: &str) -> String {
        format!("{}-{}", self.instance, suffix).to_uppercase()
    }

    /// The name of the cgroup under which all of our cgroups live, in every hierarchy.
    pub fn cgroup_root(&self) -> &str {
        &self.instance
    }
}

/// FNV-1a: a tiny, stable hash. `std`'s `DefaultHasher` may change between Rust
/// releases, and instance names must not.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    // The defaults are the directories a learner finds in the book.
    #[test]
    fn defaults_are_var_lib_and_run() {
        let p = Paths::default();
        assert_eq!(p.state, Path::new("/var/lib/kthw"));
        assert_eq!(p.run, Path::new("/run/kthw"));
        assert_eq!(p.name("0"), "kthw0");
        assert_eq!(p.chain("forward"), "KTHW-FORWARD");
    }

    // Two homes give two instance names, and one home always gives the same one.
    #[test]
    fn homes_get_distinct_stable_instance_names() {
        let a = Paths::under(Path::new("/tmp/a"));
        let b = Paths::under(Path::new("/tmp/b"));
        assert_ne!(a.instance, b.instance);
        assert_eq!(a, Paths::under(Path::new("/tmp/a")));
        assert_eq!(a.state, Path::new("/tmp/a/lib"));
        assert_eq!(a.run, Path::new("/tmp/a/run"));
    }

    // A bridge name with a short suffix still fits Linux's 15-byte interface names.
    #[test]
    fn instance_names_fit_interface_names() {
        let p = Paths::under(Path::new("/some/very/long/path/for/a/test/home"));
        assert_eq!(p.instance.len(), 8);
        assert!(p.name("br99").len() <= 15);
    }
}
