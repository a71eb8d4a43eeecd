//! IP address management: which container holds which address of our subnet.
//!
//! The table is one small JSON file, `<state>/network/ipam.json`:
//!
//! ```json
//! { "subnet": "10.77.0.0/24", "allocated": { "10.77.0.2": "web", "10.77.0.3": "db" } }
//! ```
//!
//! It must survive a restart of kthw (a container keeps its address while it runs, and
//! the next one must not get the same), and several kthw processes may attach containers
//! at once. So every change happens while holding an exclusive `flock` on
//! `network/ipam.lock`, and the new table is written to a temporary file and renamed
//! over the old one: a crash leaves the old table or the new one, never half of one.
//! The lock is a separate file because the rename replaces `ipam.json`'s inode, and a
//! lock on a file that was replaced protects nothing.
//!
//! Holding the lock is part of the type: the table can only be read or changed through
//! a [`Locked`], which exists only while the lock is held.
//!
//! What the real ones do differently: CNI's `host-local` plugin keeps one file per
//! address (`/var/lib/cni/networks/NET/10.22.0.5` holding the container id), so that
//! taking an address is an `O_EXCL` create, and it hands addresses out round-robin after
//! the last one it gave, so a just-released address (which may still sit in other
//! machines' ARP caches and in conntrack) is reused last. Docker's libnetwork keeps a
//! bitmap per pool in its own key-value store. We give out the lowest free address,
//! which makes the first container `.2` in every run of the book.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An IPv4 subnet such as `10.77.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subnet {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl Subnet {
    /// The subnet of `addr/prefix_len`, with the host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Subnet {
        let prefix_len = prefix_len.min(32);
        Subnet { addr: Ipv4Addr::from(u32::from(addr) & mask(prefix_len)), prefix_len }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix_len) == u32::from(self.addr)
    }

    /// Whether the two share any address (one then contains the other).
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = mask(self.prefix_len.min(other.prefix_len));
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The first address, which the bridge takes, as Docker's `docker0` takes `172.17.0.1`.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The addresses containers may get: all but the network address, the gateway and
    /// the broadcast address.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.addr) + 2;
        let broadcast = u32::from(self.addr) | !mask(self.prefix_len);
        (first..broadcast).map(Ipv4Addr::from)
    }

    /// The position of `ip` in the subnet (`10.77.0.5` is 5 in `10.77.0.0/24`).
    pub fn host_number(&self, ip: Ipv4Addr) -> u32 {
        u32::from(ip) & !mask(self.prefix_len)
    }
}

fn mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix_len)) }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Subnet, String> {
        let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{s:?} is not an IPv4 subnet such as 10.77.0.0/24"))?;
        let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("{s:?} has a bad prefix length"))?;
        Ok(Subnet::new(addr, len))
    }
}

impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Subnet, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

// ANCHOR: subnet
/// The block all our subnets are cut from: one `/24` per kthw instance.
///
/// Why here: it must not be a network the learner's machine is likely to have already.
/// That rules out `172.17.0.0/16` (Docker's `docker0`, often installed next to kthw),
/// `10.88.0.0/16` (Podman), `10.0.0.0/16` and `192.168.0.0/16` (home routers, cloud
/// VPCs, our lab VMs' `192.168.56.0/24`), `10.96.0.0/12` and `10.244.0.0/16` (the
/// Service and pod ranges of kubeadm and flannel) and `10.200.0.0/16` and `10.32.0.0/24`
/// (Kubernetes the Hard Way's pod and Service ranges, which later chapters follow).
/// `10.77` is none of them. A `/24` gives 253 containers, plenty for one machine, and
/// leaves 255 more `/24`s for parallel test instances.
pub const BLOCK: Subnet = Subnet { addr: Ipv4Addr::new(10, 77, 0, 0), prefix_len: 16 };

/// Picks the subnet of `instance`: `10.77.0.0/24` for the default instance, for others
/// the `/24` of `BLOCK` their name hashes to, so parallel tests start at different
/// places; then the first one from there that overlaps nothing in `taken` (the host's
/// routes), as Docker picks the first of its address pools that no route overlaps.
///
/// # Errors
/// If every `/24` of the block overlaps a route.
pub fn choose_subnet(instance: &str, taken: &[Subnet]) -> Result<Subnet> {
    let start = if instance == kthw_lab::Paths::default().instance { 0 } else { 1 + fnv1a(instance) % 255 };
    let [a, b, ..] = BLOCK.addr.octets();
    (0..256)
        .map(|i| Subnet::new(Ipv4Addr::new(a, b, ((start + i) % 256) as u8, 0), 24))
        .find(|candidate| !taken.iter().any(|t| t.overlaps(candidate)))
        .ok_or_else(|| {
            Error::bad(
                format!("a subnet for kthw instance {instance}"),
                format!("every /24 of {BLOCK} overlaps a route on this host; `kthw reset` old instances or free a /24"),
            )
        })
}
// ANCHOR_END: subnet

fn fnv1a(s: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The table as it is stored.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
pub struct Table {
    /// Chosen once, at the first `Network::open`, and kept: allocated addresses are in it.
    pub subnet: Option<Subnet>,
    /// Address → the id of the container that holds it.
    pub allocated: BTreeMap<Ipv4Addr, String>,
}

/// The allocation table in a folder.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
}

/// The table, locked against every other kthw process until dropped.
pub struct Locked<'a> {
    ipam: &'a Ipam,
    table: Table,
    _lock: nix::fcntl::Flock<File>,
}

impl Ipam {
    /// The table in `dir` (created if missing).
    ///
    /// # Errors
    /// If `dir` cannot be created.
    pub fn open(dir: &Path) -> Result<Ipam> {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        Ok(Ipam { dir: dir.to_path_buf() })
    }

    /// Where the table lives.
    pub fn path(&self) -> PathBuf {
        self.dir.join("ipam.json")
    }

    /// Waits for the lock, then reads the table.
    ///
    /// # Errors
    /// If the lock cannot be taken or `ipam.json` is unreadable or not our JSON.
    pub fn lock(&self) -> Result<Locked<'_>> {
        let path = self.dir.join("ipam.lock");
        let file =
            File::options().create(true).truncate(false).write(true).open(&path).map_err(Error::io("open", &path))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("flock {}", path.display()))(e))?;
        let table = match std::fs::read(self.path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::bad(
                    self.path().display().to_string(),
                    format!("{e}; fix or remove the file (`kthw reset` removes all network state)"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::default(),
            Err(e) => return Err(Error::io("read", self.path())(e)),
        };
        Ok(Locked { ipam: self, table, _lock: lock })
    }
}

impl Locked<'_> {
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The stored subnet, or the one `choose` picks (which is then stored).
    ///
    /// # Errors
    /// What `choose` returns, or a failure to write the table.
    pub fn subnet_or(&mut self, choose: impl FnOnce() -> Result<Subnet>) -> Result<Subnet> {
        if let Some(subnet) = self.table.subnet {
            return Ok(subnet);
        }
        let subnet = choose()?;
        self.table.subnet = Some(subnet);
        self.save()?;
        Ok(subnet)
    }

    // ANCHOR: allocate
    /// Gives `id` the lowest free address of the subnet (or the one it holds already)
    /// and writes the table before returning it, so no other process can get it too.
    ///
    /// # Errors
    /// If no subnet is chosen yet, the subnet is full, or the table cannot be written.
    pub fn allocate(&mut self, id: &str) -> Result<Ipv4Addr> {
        let subnet =
            self.table.subnet.ok_or_else(|| Error::bad("ipam.json", "has no subnet; open the network first"))?;
        if let Some((ip, _)) = self.table.allocated.iter().find(|(_, holder)| *holder == id) {
            return Ok(*ip);
        }
        let ip = subnet.hosts().find(|ip| !self.table.allocated.contains_key(ip)).ok_or_else(|| {
            Error::bad(
                format!("an address for container {id}"),
                format!("all {} addresses of {subnet} are taken; remove a container first", subnet.hosts().count()),
            )
        })?;
        self.table.allocated.insert(ip, id.to_string());
        self.save()?;
        Ok(ip)
    }
    // ANCHOR_END: allocate

    /// Frees the address `id` holds. Returns it, or `None` if `id` held none.
    ///
    /// # Errors
    /// If the table cannot be written.
    pub fn release(&mut self, id: &str) -> Result<Option<Ipv4Addr>> {
        let held: Vec<Ipv4Addr> =
            self.table.allocated.iter().filter(|(_, holder)| *holder == id).map(|(ip, _)| *ip).collect();
        if held.is_empty() {
            return Ok(None);
        }
        for ip in &held {
            self.table.allocated.remove(ip);
        }
        self.save()?;
        Ok(held.first().copied())
    }

    /// Writes the table: a temporary file in the same folder, then `rename`, which
    /// replaces `ipam.json` in one step.
    fn save(&self) -> Result<()> {
        let path = self.ipam.path();
        let tmp = self.ipam.dir.join(format!(".ipam.json.{}", std::process::id()));
        let mut text = serde_json::to_vec_pretty(&self.table).map_err(|e| Error::bad("ipam.json", e))?;
        text.push(b'\n');
        std::fs::write(&tmp, text).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("write", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    // Subnet arithmetic: host bits are cleared, the gateway is .1, containers get .2 to .254.
    #[test]
    fn subnet_arithmetic() {
        let s = subnet("10.77.3.9/24");
        assert_eq!(s.to_string(), "10.77.3.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 77, 3, 1));
        let hosts: Vec<_> = s.hosts().collect();
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(10, 77, 3, 2)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(10, 77, 3, 254)));
        assert_eq!(hosts.len(), 253);
        assert!(s.contains(Ipv4Addr::new(10, 77, 3, 200)) && !s.contains(Ipv4Addr::new(10, 77, 4, 1)));
        assert!(subnet("10.0.0.0/8").overlaps(&s) && s.overlaps(&subnet("10.0.0.0/8")));
        assert!(!subnet("10.77.4.0/24").overlaps(&s));
        assert!("10.77.0.0/33".parse::<Subnet>().is_err() && "ten/24".parse::<Subnet>().is_err());
    }

    // The default instance gets 10.77.0.0/24; another instance a stable /24 of its own,
    // moved on past any subnet a route already uses.
    #[test]
    fn subnets_are_per_instance_and_avoid_routes() {
        assert_eq!(choose_subnet("kthw", &[]).unwrap(), subnet("10.77.0.0/24"));
        let a = choose_subnet("k1234567", &[]).unwrap();
        assert_eq!(a, choose_subnet("k1234567", &[]).unwrap());
        assert_ne!(a.addr.octets()[2], 0);
        let next = choose_subnet("k1234567", &[a]).unwrap();
        assert_ne!(next, a);
        assert_eq!(choose_subnet("kthw", &[subnet("10.77.0.0/24")]).unwrap(), subnet("10.77.1.0/24"));
        let err = choose_subnet("kthw", &[subnet("10.0.0.0/8")]).unwrap_err().to_string();
        assert!(err.contains("overlaps a route"), "{err}");
    }

    // Addresses are handed out lowest first, never twice, survive reopening, and a
    // released one is given out again.
    #[test]
    fn allocate_release_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path()).unwrap();
        let mut t = ipam.lock().unwrap();
        t.subnet_or(|| Ok(subnet("10.77.9.0/24"))).unwrap();
        let a = t.allocate("a").unwrap();
        let b = t.allocate("b").unwrap();
        assert_eq!((a, b), (Ipv4Addr::new(10, 77, 9, 2), Ipv4Addr::new(10, 77, 9, 3)));
        assert_eq!(t.allocate("a").unwrap(), a, "an id keeps its address");
        drop(t);

        let reopened = Ipam::open(dir.path()).unwrap();
        let mut t = reopened.lock().unwrap();
        assert_eq!(t.table().allocated.get(&b).map(String::as_str), Some("b"));
        assert_eq!(t.release("a").unwrap(), Some(a));
        assert_eq!(t.release("a").unwrap(), None);
        assert_eq!(t.allocate("c").unwrap(), a);
    }

    // Threads that allocate at once (each through its own lock, as separate processes
    // would) never get the same address, and a full subnet is a clear error.
    #[test]
    fn concurrent_allocations_are_distinct_and_full_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path()).unwrap();
        ipam.lock().unwrap().subnet_or(|| Ok(subnet("10.77.9.0/29"))).unwrap();
        let path = dir.path();
        let got: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..5).map(|i| s.spawn(move || Ipam::open(path).unwrap().lock()?.allocate(&format!("c{i}")))).collect();
            handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5, "{got:?}");
        let err = ipam.lock().unwrap().allocate("c5").unwrap_err().to_string();
        assert!(err.contains("all 5 addresses of 10.77.9.0/29 are taken"), "{err}");
    }
}
