//! `-p HOST:CONTAINER`: which host port leads to which container port.
//!
//! `docker run -p` accepts `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`, with port
//! ranges (`8000-8010:80-90`) and IPv6 host addresses (`[::1]:8080:80`). We take the
//! forms a reader needs and refuse the rest with a message that says which form to use.
//!
//! What Docker does differently: `-p 80` (no host port) makes Docker pick a free port
//! from the ephemeral range and report it in `docker port`; `-P` publishes every
//! `EXPOSE`d port that way. We always need the host port, so what the reader `curl`s is
//! what they typed.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The transport protocol of a published port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The name `iptables -p` and `docker ps` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `-p`: traffic to `host_ip:host_port` (any local address when `host_ip` is `None`)
/// goes to `container_port` of the container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// Whether two mappings would claim the same host port: same port and protocol,
    /// and addresses that overlap (`None` is every address).
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

/// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(f, "{ip}:{}->{}/{}", self.host_port, self.container_port, self.protocol)
    }
}

/// Parses one `-p` value: `8080:80`, `127.0.0.1:8080:80`, `8080:80/udp`.
///
/// # Errors
/// [`Error::Bad`] naming the value, what is wrong with it and the form to use instead.
pub fn parse_publish(s: &str) -> Result<PortMapping> {
    let bad = |why: String| Error::bad(format!("-p {s}"), why);
    let form = "write HOST_PORT:CONTAINER_PORT, e.g. -p 8080:80 (or 127.0.0.1:8080:80, 8080:80/udp)";

    let (ports, protocol) = match s.rsplit_once('/') {
        Some((ports, "tcp")) => (ports, Protocol::Tcp),
        Some((ports, "udp")) => (ports, Protocol::Udp),
        Some((_, other)) => return Err(bad(format!("unknown protocol {other:?}: use tcp or udp"))),
        None => (s, Protocol::Tcp),
    };
    if ports.starts_with('[') {
        return Err(bad("only IPv4 host addresses are supported: our bridge has no IPv6".to_string()));
    }
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host_port, container_port) = match parts[..] {
        [host, container] => (None, host, container),
        [ip, host, container] => {
            let ip: Ipv4Addr =
                ip.parse().map_err(|_| bad(format!("{ip:?} is not an IPv4 address such as 127.0.0.1")))?;
            (Some(ip), host, container)
        }
        [_] => {
            return Err(bad(format!("a host port is needed (Docker would pick a random one, we do not): {form}")));
        }
        _ => return Err(bad(format!("too many ':': {form}"))),
    };
    if host_port.is_empty() {
        return Err(bad(format!("a host port is needed (Docker would pick a random one, we do not): {form}")));
    }
    Ok(PortMapping {
        host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
        host_port: port(host_port, "host").map_err(bad)?,
        container_port: port(container_port, "container").map_err(bad)?,
        protocol,
    })
}

/// One port number, 1 to 65535.
fn port(s: &str, which: &str) -> std::result::Result<u16, String> {
    if s.contains('-') {
        return Err(format!("{which} port {s:?} is a range; publish one port per -p"));
    }
    match s.parse::<u16>() {
        Ok(0) => Err(format!("{which} port 0 is not a port: use 1 to 65535")),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("{which} port {s:?} is not a number from 1 to 65535")),
    }
}
