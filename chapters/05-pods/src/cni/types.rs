//! The JSON a plugin prints: its result on success, its error on failure, its versions.
//! Field names are the CNI specification's, so Debian's plugins and ours read and write
//! the same documents.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What ADD returns: the interfaces made, the addresses on them, the routes.
///
/// ```json
/// { "cniVersion": "1.0.0",
///   "interfaces": [ {"name": "cni0", "mac": "..."}, {"name": "veth1", "mac": "..."},
///                   {"name": "eth0", "mac": "...", "sandbox": "/proc/4242/ns/net"} ],
///   "ips": [ {"address": "10.200.7.2/24", "gateway": "10.200.7.1", "interface": 2} ],
///   "routes": [ {"dst": "0.0.0.0/0", "gw": "10.200.7.1"} ], "dns": {} }
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Value>,
}

/// An interface a plugin made or used. `sandbox` is set for those inside the pod's
/// network namespace (its path), absent for those on the host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address, `10.200.7.2/24`, on the interface with index `interface` in `interfaces`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct IpConfig {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route inside the pod: `dst` (`0.0.0.0/0` for the default route) via `gw`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

impl CniResult {
    /// The first IPv4 address and its prefix length: the pod's IP.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        self.ips.iter().find_map(|ip| {
            let (addr, len) = ip.address.split_once('/')?;
            Some((addr.parse().ok()?, len.parse().ok()?))
        })
    }

    /// The interfaces on the host side (no `sandbox`): the bridge and the veth's host end.
    pub fn host_interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces.iter().filter(|i| i.sandbox.is_none())
    }
}

/// The error a plugin prints on stdout when it exits non-zero.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PluginError {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cni_version: String,
    /// 1–99 are the specification's (see [`codes`]); 100 and up are the plugin's own.
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// The well-known error codes of the CNI specification.
pub mod codes {
    /// The plugin does not support the config's `cniVersion`.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// A field of the config is not supported.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The container is unknown or does not exist (CHECK, DEL).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// A `CNI_*` environment variable is missing or wrong.
    pub const INVALID_ENV: u32 = 4;
    /// Reading or writing a file failed.
    pub const IO_FAILURE: u32 = 5;
    /// The config on stdin could not be decoded.
    pub const DECODE_FAILURE: u32 = 6;
    /// The config is valid JSON but not a valid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later: a resource is busy.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// Ours: a command (`ip ...`) or a system step failed; `details` has its output.
    pub const PLUGIN_FAILED: u32 = 100;
}

/// What VERSION prints.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}
