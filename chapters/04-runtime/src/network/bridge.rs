//! The links: the `kthw0` bridge on the host, and a veth pair per container.
//!
//! A bridge is a virtual switch inside the kernel. Each container gets a veth pair, a
//! virtual cable with two ends: one end, `eth0`, is in the container's network
//! namespace; the other stays on the host, plugged into the bridge. The bridge also has
//! an address of its own, the subnet's gateway, so the host is one more machine on that
//! switch, and the containers' default route points at it.
//!
//! ```text
//!   container A netns        container B netns
//!   eth0 10.77.0.2/24        eth0 10.77.0.3/24
//!       │ veth                   │ veth
//!   kthwv2 ─────── kthw0 ─────── kthwv3          host netns
//!             10.77.0.1/24 (gateway)
//!                   │ routing + NAT (iptables)
//!                  eth0 of the host
//! ```
//!
//! What the real ones do differently: Docker names the host end `veth` and 7 random hex
//! digits and creates both ends on the host before moving one; CNI's `bridge` plugin
//! enters the container's netns (a file like `/var/run/netns/cni-...`, not a pid) and
//! creates the pair from inside. We name the host end after the instance (so `kthw
//! reset` finds it) and the container's address (which IPAM makes unique), and create
//! the container's end directly in its namespace.

use std::net::Ipv4Addr;
use std::path::Path;

use super::ipam::Subnet;
use super::run;
use crate::{Error, Result};

/// Whether a network interface of this name exists on the host.
pub fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Creates the bridge if it is missing, gives it the gateway address and brings it up.
///
/// # Errors
/// [`Error::Command`] if `ip` fails; [`Error::Io`] if a sysctl cannot be written.
pub fn ensure(bridge: &str, subnet: Subnet) -> Result<()> {
    if !exists(bridge) {
        run("ip", &["link", "add", bridge, "type", "bridge"])?;
    }
    // `replace` rather than `add`: it succeeds when the address is there already.
    let gateway = format!("{}/{}", subnet.gateway(), subnet.prefix_len);
    run("ip", &["addr", "replace", &gateway, "dev", bridge])?;
    run("ip", &["link", "set", bridge, "up"])?;
    // Lets the host reach published ports on 127.0.0.1 (see `iptables.rs`). Set on our
    // bridge only, not `all` as kube-proxy does, and it goes away with the bridge.
    sysctl(&format!("net/ipv4/conf/{bridge}/route_localnet"), "1")?;
    // Containers' packets to the outside are routed, not switched: the host must
    // forward. Like Docker, we turn it on and leave it on (others may rely on it).
    sysctl("net/ipv4/ip_forward", "1")
}

fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(Error::io("write", path))
}

// ANCHOR: veth
/// Connects the network namespace of `pid` to the bridge: a veth pair whose container
/// end is created directly in that namespace as `eth0`, then addressed and routed from
/// inside with `nsenter --net`. (`ip -n NAME` would need the namespace named under
/// `/run/netns`; a container's namespace has no name, only its init's pid.)
///
/// # Errors
/// [`Error::Command`] naming the `ip` command that failed.
pub fn plumb(pid: i32, host_veth: &str, bridge: &str, ip: Ipv4Addr, subnet: Subnet) -> Result<()> {
    let pid = pid.to_string();
    run("ip", &["link", "add", host_veth, "type", "veth", "peer", "name", "eth0", "netns", &pid])?;
    run("ip", &["link", "set", host_veth, "master", bridge, "up"])?;

    let netns = format!("--net=/proc/{pid}/ns/net");
    let inside = |args: &[&str]| run("nsenter", &[&[netns.as_str(), "ip"], args].concat());
    inside(&["addr", "add", &format!("{ip}/{}", subnet.prefix_len), "dev", "eth0"])?;
    inside(&["link", "set", "eth0", "up"])?;
    inside(&["link", "set", "lo", "up"])?;
    inside(&["route", "add", "default", "via", &subnet.gateway().to_string()])?;
    Ok(())
}
// ANCHOR_END: veth

/// Deletes a link if it exists. Deleting one end of a veth pair deletes both; when the
/// container's namespace goes away (its last process died), the kernel deletes the
/// pair itself, so a missing link is no error.
///
/// # Errors
/// [`Error::Command`] if `ip link delete` fails on a link that is there.
pub fn delete(name: &str) -> Result<()> {
    if exists(name) {
        if let Err(e) = run("ip", &["link", "delete", name]) {
            // It may have vanished between the check and the delete.
            if exists(name) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The subnets of the host's routes, except the default route and routes through
/// `ignore` (our own bridge): what a new subnet must not overlap.
///
/// # Errors
/// [`Error::Command`] if `ip route` fails.
pub fn host_subnets(ignore: &str) -> Result<Vec<Subnet>> {
    let routes = run("ip", &["-4", "route", "show", "table", "all"])?;
    Ok(parse_routes(&routes, ignore))
}

/// The destinations of `ip -4 route` lines, as subnets.
pub fn parse_routes(routes: &str, ignore: &str) -> Vec<Subnet> {
    routes
        .lines()
        .filter(|l| !l.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["dev", ignore]))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let mut dest = words.next()?;
            // `local 10.77.0.1 dev kthw0 table local ...` and `broadcast ...`.
            if ["local", "broadcast", "unicast", "multicast", "anycast"].contains(&dest) {
                dest = words.next()?;
            }
            if dest == "default" { None } else { dest.parse::<Subnet>().ok() }
        })
        .filter(|s| s.prefix_len > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Routes of other interfaces count, the default route and our own bridge do not.
    #[test]
    fn host_routes_become_subnets() {
        let routes = "default via 192.0.2.1 dev eth0\n\
                      192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                      10.77.5.0/24 dev k1234567 proto kernel scope link src 10.77.5.1\n\
                      10.77.0.0/24 dev kthw0 proto kernel scope link src 10.77.0.1 linkdown\n\
                      local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1\n";
        let got: Vec<String> = parse_routes(routes, "kthw0").iter().map(ToString::to_string).collect();
        assert_eq!(got, ["192.0.2.0/24", "10.77.5.0/24", "127.0.0.1/32"]);
    }
}
