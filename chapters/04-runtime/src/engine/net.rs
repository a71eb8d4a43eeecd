//! The engine's side of networking: the few calls into [`crate::network`], and the
//! conversion of its port mappings into the record's.

use super::record::{Port, Record};
use crate::Result;
pub use crate::network::Endpoint;
use crate::network::{self, Network, PortMapping, Protocol};

/// Parses `-p` with the network's parser (one rule for every caller).
///
/// # Errors
/// As [`network::parse_publish`].
pub fn parse_port(s: &str) -> Result<Port> {
    let m = network::parse_publish(s)?;
    Ok(Port {
        host_ip: m.host_ip,
        host_port: m.host_port,
        container_port: m.container_port,
        protocol: m.protocol.as_str().to_string(),
    })
}

fn mapping(p: &Port) -> PortMapping {
    PortMapping {
        host_ip: p.host_ip,
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: if p.protocol == "udp" { Protocol::Udp } else { Protocol::Tcp },
    }
}

/// Plugs the container whose init is `pid` into the bridge and publishes its ports;
/// returns what it got (the supervisor keeps it in `network.json` for `inspect`).
///
/// # Errors
/// As [`Network::open`] and [`Network::attach`].
pub fn attach(paths: &kthw_lab::Paths, record: &Record, pid: i32) -> Result<Option<Endpoint>> {
    if record.network != "bridge" {
        return Ok(None);
    }
    let ports: Vec<PortMapping> = record.ports.iter().map(mapping).collect();
    Network::open(paths)?.attach(&record.id, pid, &ports).map(Some)
}

/// Undoes [`attach`]; fine if there is nothing to undo.
///
/// # Errors
/// As [`Network::detach`].
pub fn detach(paths: &kthw_lab::Paths, record: &Record) -> Result<()> {
    if record.network != "bridge" {
        return Ok(());
    }
    Network::open(paths)?.detach(&record.id)
}
