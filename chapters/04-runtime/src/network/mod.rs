//! Container networking: the `kthw0` bridge, a veth pair per container, addresses that
//! survive restarts, NAT to the outside and `-p` published ports.
//!
//! `docker run` gives every container its own network namespace, with nothing in it but
//! `lo`. Docker's bridge driver (in libnetwork) then connects it: the `docker0` bridge
//! with `172.17.0.1/16`, a veth pair per container, an address from its IPAM, iptables
//! rules for NAT and published ports. Kubernetes does the same through CNI plugins:
//! `bridge` (+ `host-local` for addresses) and `portmap`. Ours is that, cut down:
//!
//! - [`Network::open`] makes the bridge `kthw0` with the gateway address of the
//!   instance's subnet (`10.77.0.0/24` by default, see [`ipam::BLOCK`] for why), turns on
//!   IP forwarding and sets up our iptables chains ([`iptables`]);
//! - [`Network::attach`] takes an address ([`ipam`]), plugs the container into the
//!   bridge ([`bridge::plumb`]) and publishes its ports ([`iptables::Chains::publish`]);
//! - [`Network::detach`] undoes exactly that: `kthw rm` leaves no veth, rule or address.
//!
//! Everything on the host carries the instance's prefix (`kthw0`, `kthwv2`,
//! `KTHW-PORTS`), so `kthw reset` finds it, and two test instances never share a name
//! or a subnet. What a container got is written to `network/endpoints/ID.json`.
//!
//! We configure the kernel by running `ip` and `iptables`, the commands a reader would
//! type, and which the book shows. Docker and the CNI plugins talk to the kernel
//! directly over netlink sockets (Go's `vishvananda/netlink`, what `ip` itself uses
//! inside): no process per step, a typed request and an error number back instead of
//! text, and `setns` into the container from a locked thread instead of `nsenter`. For
//! iptables they run the `iptables` program as we do (libnetwork's `iptables` package,
//! CNI's `go-iptables`). Each of our steps costs a few milliseconds, which a `kthw run`
//! can afford, and a failure names the command, so the reader can type it again.
//!
//! What Docker does differently: user-defined networks (`docker network create`), each
//! with its own bridge and an embedded DNS server so containers find each other by
//! name; IPv6; isolation rules between networks; `docker-proxy` for published ports
//! (see [`iptables`]); and it restores its rules when the daemon starts, while we set
//! them up on every `open`.

pub mod bridge;
pub mod ipam;
pub mod iptables;
pub mod publish;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kthw_lab::Paths;
use serde::{Deserialize, Serialize};

pub use ipam::Subnet;
pub use publish::{PortMapping, Protocol, parse_publish};

use crate::{Error, Result};

/// What a container got from the network: its address, its host-side veth, its ports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair, on the bridge (the container's end is `eth0`).
    pub host_veth: String,
    pub bridge: String,
    pub ports: Vec<PortMapping>,
}

/// The bridge network of one kthw instance.
#[derive(Debug, Clone)]
pub struct Network {
    dir: PathBuf,
    instance: String,
    bridge: String,
    subnet: Subnet,
    ipam: ipam::Ipam,
    chains: iptables::Chains,
}

/// Serialises `open` across every kthw instance on the host: choosing a subnet that no
/// route uses and creating the bridge that then uses it must be one step, or two
/// instances opening at once could pick the same subnet. iptables has the same kind of
/// lock (`/run/xtables.lock`).
const HOST_LOCK: &str = "/run/lock/kthw-network.lock";

impl Network {
    /// Ensures the bridge `paths.name("0")` with its gateway address, IP forwarding, our
    /// NAT and filter chains and MASQUERADE for the subnet. Idempotent: every `kthw run`
    /// calls it.
    ///
    /// # Errors
    /// [`Error::Command`] if `ip` or `iptables` fails (not root, no bridge support);
    /// [`Error::Bad`] if the stored subnet is now used by another interface.
    pub fn open(paths: &Paths) -> Result<Network> {
        let dir = paths.state.join("network");
        let ipam = ipam::Ipam::open(&dir)?;
        let bridge = paths.name("0");
        let _host = lock_file(Path::new(HOST_LOCK))?;
        let mut table = ipam.lock()?;
        let subnet = table.subnet_or(|| ipam::choose_subnet(&paths.instance, &bridge::host_subnets(&bridge)?))?;
        drop(table);
        if !bridge::exists(&bridge) {
            // After a reboot the bridge is gone but our state is not: its subnet may
            // have been taken meanwhile, by a VPN for example.
            if let Some(other) = bridge::host_subnets(&bridge)?.into_iter().find(|s| s.overlaps(&subnet)) {
                return Err(Error::bad(
                    format!("subnet {subnet} of {}", ipam.path().display()),
                    format!("a route on this host uses {other} now; `kthw reset` to pick a new subnet"),
                ));
            }
        }
        bridge::ensure(&bridge, subnet)?;
        let chains = iptables::Chains::new(paths);
        chains.ensure(subnet)?;
        Ok(Network { dir, instance: paths.instance.clone(), bridge, subnet, ipam, chains })
    }

    /// The network as it is, without making anything: `None` when no subnet was ever
    /// chosen (or `kthw reset` removed the state). Removing a container uses this, so an
    /// `rm` after a reset does not make the bridge and chains again just to delete a veth.
    ///
    /// # Errors
    /// If the IPAM table is there but unreadable.
    pub fn existing(paths: &Paths) -> Result<Option<Network>> {
        let dir = paths.state.join("network");
        if !dir.join("ipam.json").exists() {
            return Ok(None);
        }
        let ipam = ipam::Ipam::open(&dir)?;
        let Some(subnet) = ipam.lock()?.table().subnet else { return Ok(None) };
        let chains = iptables::Chains::new(paths);
        Ok(Some(Network { dir, instance: paths.instance.clone(), bridge: paths.name("0"), subnet, ipam, chains }))
    }

    /// The bridge's name (`kthw0`).
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The instance's subnet; its first address is the bridge's.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    // ANCHOR: attach
    /// Allocates an address (persisted, survives restarts, never handed out twice), makes
    /// a veth pair, moves one end into the netns of `pid` as `eth0` with the address and a
    /// default route via the gateway, brings `lo` up, adds DNAT rules for `ports`.
    /// Returns what it made. If a step fails, what was made is removed again.
    ///
    /// # Errors
    /// [`Error::Bad`] for an id we cannot use in names, a `pid` in the host's network
    /// namespace, a host port another container publishes, a container attached already
    /// or a full subnet; [`Error::Command`] if `ip` or `iptables` fails.
    pub fn attach(&self, id: &str, pid: i32, ports: &[PortMapping]) -> Result<Endpoint> {
        check_id(id)?;
        check_own_netns(pid)?;
        // Held until the end: no other attach can publish the same port meanwhile.
        let mut table = self.ipam.lock()?;
        if let Some(old) = self.endpoint(id)? {
            if bridge::exists(&old.host_veth) {
                return Err(Error::bad(format!("container {id}"), "is attached already; detach it first"));
            }
            self.remove(id, &mut table)?; // its namespace is gone: forget it
        }
        self.check_ports_free(id, ports)?;

        let ip = table.allocate(id)?;
        let endpoint = Endpoint {
            ip,
            prefix_len: self.subnet.prefix_len,
            gateway: self.subnet.gateway(),
            host_veth: self.veth_name(ip),
            bridge: self.bridge.clone(),
            ports: ports.to_vec(),
        };
        let made = (|| {
            bridge::delete(&endpoint.host_veth)?; // a leftover of a crash: the address was free
            bridge::plumb(pid, &endpoint.host_veth, &self.bridge, ip, self.subnet)?;
            for port in ports {
                self.chains.publish(id, ip, port)?;
            }
            self.save_endpoint(id, &endpoint)
        })();
        if let Err(e) = made {
            let _ = self.remove(id, &mut table);
            return Err(e);
        }
        Ok(endpoint)
    }
    // ANCHOR_END: attach

    /// Removes the veth, the DNAT rules and releases the address. Idempotent (ok if
    /// already gone).
    ///
    /// # Errors
    /// [`Error::Command`] if a link or rule that is there cannot be deleted;
    /// [`Error::Io`] if the state cannot be written.
    pub fn detach(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let mut table = self.ipam.lock()?;
        self.remove(id, &mut table)
    }

    /// What `attach` made for `id`, if it is attached.
    ///
    /// # Errors
    /// If the endpoint file exists but cannot be read.
    pub fn endpoint(&self, id: &str) -> Result<Option<Endpoint>> {
        check_id(id)?;
        let path = self.endpoint_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::bad(path.display().to_string(), format!("{e}; `kthw rm -f` the container"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path)(e)),
        }
    }

    /// Every attached container and its endpoint, by id.
    ///
    /// # Errors
    /// If the endpoints folder or a file in it cannot be read.
    pub fn endpoints(&self) -> Result<Vec<(String, Endpoint)>> {
        let dir = self.dir.join("endpoints");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", dir)(e)),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                if let Some(endpoint) = self.endpoint(id)? {
                    found.push((id.to_string(), endpoint));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// The iptables rules of `id`, as `iptables -S` prints them (for `inspect` and labs).
    ///
    /// # Errors
    /// [`Error::Command`] if `iptables -S` fails.
    pub fn rules_of(&self, id: &str) -> Result<Vec<String>> {
        self.chains.rules_of(id)
    }

    /// The host end of the veth of the container at `ip`: the instance's prefix (so
    /// `kthw reset` finds it), `v`, the address's number in the subnet: `kthwv2` for
    /// `10.77.0.2`. At most 8 + 1 + 3 bytes, within Linux's 15.
    fn veth_name(&self, ip: Ipv4Addr) -> String {
        format!("{}v{}", self.instance, self.subnet.host_number(ip))
    }

    /// Removes what `id` has on the network; the caller holds the IPAM lock.
    fn remove(&self, id: &str, table: &mut ipam::Locked<'_>) -> Result<()> {
        self.chains.unpublish(id)?;
        if let Some(endpoint) = self.endpoint(id)? {
            bridge::delete(&endpoint.host_veth)?;
        }
        // Without an endpoint file (a crash during attach) the name follows from the address.
        if let Some((ip, _)) = table.table().allocated.iter().find(|(_, holder)| *holder == id) {
            bridge::delete(&self.veth_name(*ip))?;
        }
        table.release(id)?;
        let path = self.endpoint_path(id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
            _ => Ok(()),
        }
    }

    fn check_ports_free(&self, id: &str, ports: &[PortMapping]) -> Result<()> {
        for (i, port) in ports.iter().enumerate() {
            if ports[..i].iter().any(|p| p.conflicts_with(port)) {
                return Err(Error::bad(format!("-p {port}"), "is given twice; publish each host port once"));
            }
        }
        for (other, endpoint) in self.endpoints()? {
            if let Some(port) = ports.iter().find(|p| other != id && endpoint.ports.iter().any(|q| q.conflicts_with(p)))
            {
                return Err(Error::bad(
                    format!("-p {port}"),
                    format!(
                        "host port {}/{} is published by container {other} already; pick another host port",
                        port.host_port, port.protocol
                    ),
                ));
            }
        }
        Ok(())
    }

    fn endpoint_path(&self, id: &str) -> PathBuf {
        self.dir.join("endpoints").join(format!("{id}.json"))
    }

    fn save_endpoint(&self, id: &str, endpoint: &Endpoint) -> Result<()> {
        let path = self.endpoint_path(id);
        let dir = self.dir.join("endpoints");
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let tmp = dir.join(format!(".{id}.json.tmp"));
        let text = serde_json::to_vec_pretty(endpoint).map_err(|e| Error::bad("endpoint", e))?;
        std::fs::write(&tmp, text).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("write", &path))
    }
}

/// Container ids end up in file names and iptables comments: keep them to the
/// characters Docker allows in names.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::bad(format!("container id {id:?}"), "use 1 to 128 letters, digits, '_', '.' or '-' (not first)"))
    }
}

/// Refuses a process that shares our network namespace: plumbing "its" namespace would
/// rename and re-address the host's own interfaces.
fn check_own_netns(pid: i32) -> Result<()> {
    let theirs = format!("/proc/{pid}/ns/net");
    let inode = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).map_err(Error::io("stat", p));
    if inode(&theirs)? == inode("/proc/self/ns/net")? {
        return Err(Error::bad(
            format!("process {pid}"),
            "is in the host's network namespace; a container needs a new one (a `network` namespace in its spec)",
        ));
    }
    Ok(())
}

/// An exclusive `flock` on `path`, held until the value is dropped.
fn lock_file(path: &Path) -> Result<nix::fcntl::Flock<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    let file = File::options().create(true).truncate(false).write(true).open(path).map_err(Error::io("open", path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::sys(format!("flock {}", path.display()))(e))
}

/// Runs `program args...` and returns its standard output; a failure becomes an
/// [`Error::Command`] with the command line and what the program wrote to stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program).args(args).output().map_err(|e| Error::Command {
        command: command.clone(),
        status: "not started".into(),
        stderr: format!("{e} (is {program} installed?)"),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
