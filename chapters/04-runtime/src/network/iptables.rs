//! Our iptables rules: NAT out of the bridge, forwarding, and published ports.
//!
//! All our rules live in three chains of our own, so that they are easy to find, list
//! and remove (`kthw reset` deletes every chain whose name starts with the instance's
//! prefix, and the rules that jump to them). For the default instance:
//!
//! ```text
//! nat     PREROUTING  -m addrtype --dst-type LOCAL -j KTHW-PORTS    packets from outside
//!         OUTPUT      -m addrtype --dst-type LOCAL -j KTHW-PORTS    packets of this host
//!         POSTROUTING -j KTHW-POSTROUTING
//!         KTHW-PORTS        one DNAT rule per published port
//!         KTHW-POSTROUTING  MASQUERADE: the subnet going out; 127.0.0.1 going to a container
//! filter  FORWARD     -j KTHW-FORWARD                               (first, before the host's rules)
//!         KTHW-FORWARD      accept from the bridge, replies to it, and published ports
//! ```
//!
//! A container's rules carry `-m comment --comment "container=ID"`, so `detach` finds
//! exactly the rules of one container by listing our chains, with no memory of what it
//! added (a crash half-way through `attach` leaks nothing), and `iptables -S | grep ID`
//! shows the reader which rules a container owns.
//!
//! Why published ports also work on `127.0.0.1`: a DNAT in `OUTPUT` turns
//! `127.0.0.1:8080` into `10.77.0.2:80`, but the source stays `127.0.0.1`, and the kernel
//! drops packets with a loopback address on a real interface as "martians" — unless
//! `route_localnet` is set on that interface (we set it on the bridge only). The
//! container could not answer `127.0.0.1` either (that is its own loopback), so a
//! MASQUERADE rule rewrites the source to the bridge's address. kube-proxy does the same
//! for NodePorts on localhost.
//!
//! What Docker does differently: it never needs `route_localnet`, because it starts
//! `docker-proxy`, a user-space TCP/UDP proxy, on every published port. The proxy
//! listens on the host's `0.0.0.0:8080` and copies bytes to the container, which serves
//! the cases iptables handles badly: loopback, a container reaching its own published
//! port through the host (hairpin), and kernels without `route_localnet`. It also holds
//! the port, so a second `-p 8080` fails with "port is already allocated" (we check our
//! own endpoints instead). Docker's DNAT rules in its `DOCKER` chain look like ours, but
//! its `OUTPUT` jump has `! -d 127.0.0.0/8`: loopback is the proxy's job. Newer releases
//! spread the filter rules over more chains (`DOCKER-FORWARD`, `DOCKER-CT`, ...).
//! CNI's `portmap` plugin puts them in `CNI-HOSTPORT-DNAT` and tags them with the
//! container id in a comment, as we do.

use std::net::Ipv4Addr;

use kthw_lab::Paths;

use super::ipam::Subnet;
use super::publish::PortMapping;
use super::run;
use crate::Result;

/// The names of our chains and of the bridge they refer to.
#[derive(Debug, Clone)]
pub struct Chains {
    /// nat: DNAT of published ports (Docker's `DOCKER`, kube-proxy's `KUBE-NODEPORTS`).
    pub ports: String,
    /// nat: MASQUERADE (Docker writes these into `POSTROUTING` itself).
    pub postrouting: String,
    /// filter: what may be forwarded to and from the bridge.
    pub forward: String,
    pub bridge: String,
}

impl Chains {
    pub fn new(paths: &Paths) -> Chains {
        Chains {
            ports: paths.chain("PORTS"),
            postrouting: paths.chain("POSTROUTING"),
            forward: paths.chain("FORWARD"),
            bridge: paths.name("0"),
        }
    }

    /// Creates the chains, the jumps to them and the rules for the whole subnet, each
    /// only if it is missing: `open` runs this every time.
    ///
    /// # Errors
    /// [`crate::Error::Command`] if `iptables` refuses a command.
    pub fn ensure(&self, subnet: Subnet) -> Result<()> {
        let (b, subnet) = (self.bridge.as_str(), subnet.to_string());
        for (table, chain) in [("nat", &self.ports), ("nat", &self.postrouting), ("filter", &self.forward)] {
            if run("iptables", &["-w", "5", "-t", table, "-S", chain]).is_err() {
                iptables(table, &["-N", chain])?;
            }
        }
        let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", &self.ports];
        ensure_rule("nat", "PREROUTING", &local, false)?;
        ensure_rule("nat", "OUTPUT", &local, false)?;
        ensure_rule("nat", "POSTROUTING", &["-j", &self.postrouting], false)?;
        // Containers going anywhere but the bridge leave with the host's address.
        ensure_rule("nat", &self.postrouting, &["-s", &subnet, "!", "-o", b, "-j", "MASQUERADE"], false)?;
        // The host's 127.0.0.1 going to a container (a published port on loopback).
        ensure_rule("nat", &self.postrouting, &["-s", "127.0.0.0/8", "-o", b, "-j", "MASQUERADE"], false)?;
        // First in FORWARD, so that a host firewall's DROP further down does not cut us off.
        ensure_rule("filter", "FORWARD", &["-j", &self.forward], true)?;
        ensure_rule("filter", &self.forward, &["-i", b, "-j", "ACCEPT"], false)?;
        let replies = ["-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"];
        ensure_rule("filter", &self.forward, &replies, false)?;
        Ok(())
    }

    // ANCHOR: dnat
    /// The rules that publish `port` of the container `id` at `ip`: a DNAT of the host
    /// port to the container's address, and a FORWARD accept for what the DNAT let in.
    /// `! -i BRIDGE`: containers reach each other by address, not through host ports.
    pub fn publish_rules(
        &self,
        id: &str,
        ip: Ipv4Addr,
        port: &PortMapping,
    ) -> [(&'static str, String, Vec<String>); 2] {
        let tag = comment(id);
        let proto = port.protocol.as_str();
        let mut dnat: Vec<String> = Vec::new();
        if let Some(host_ip) = port.host_ip {
            dnat.extend(["-d".into(), format!("{host_ip}/32")]);
        }
        dnat.extend(
            ["!", "-i", &self.bridge, "-p", proto, "-m", proto, "--dport", &port.host_port.to_string()]
                .map(String::from),
        );
        dnat.extend(["-m", "comment", "--comment", &tag].map(String::from));
        dnat.extend(["-j".into(), "DNAT".into(), "--to-destination".into(), format!("{ip}:{}", port.container_port)]);

        let accept = [
            "-d",
            &format!("{ip}/32"),
            "!",
            "-i",
            &self.bridge,
            "-o",
            &self.bridge,
            "-p",
            proto,
            "-m",
            proto,
            "--dport",
            &port.container_port.to_string(),
            "-m",
            "comment",
            "--comment",
            &tag,
            "-j",
            "ACCEPT",
        ]
        .map(String::from)
        .to_vec();
        [("nat", self.ports.clone(), dnat), ("filter", self.forward.clone(), accept)]
    }
    // ANCHOR_END: dnat

    /// Adds the rules of [`Chains::publish_rules`].
    ///
    /// # Errors
    /// [`crate::Error::Command`] if `iptables` refuses one.
    pub fn publish(&self, id: &str, ip: Ipv4Addr, port: &PortMapping) -> Result<()> {
        for (table, chain, rule) in self.publish_rules(id, ip, port) {
            let mut args = vec!["-A", chain.as_str()];
            args.extend(rule.iter().map(String::as_str));
            iptables(table, &args)?;
        }
        Ok(())
    }

    /// Deletes every rule in our chains tagged with `id`. Returns how many.
    ///
    /// # Errors
    /// [`crate::Error::Command`] if listing or deleting fails (a missing chain is no error).
    pub fn unpublish(&self, id: &str) -> Result<usize> {
        let tag = comment(id);
        let mut removed = 0;
        for (table, chain) in [("nat", &self.ports), ("filter", &self.forward)] {
            for words in self.tagged(table, chain, &tag)? {
                // `-S` prints `-A CHAIN ...`; the same words after `-D` delete the rule.
                let mut args = vec!["-D"];
                args.extend(words.iter().skip(1).map(String::as_str));
                iptables(table, &args)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The rules of `id` in our chains, as `iptables -S` prints them.
    ///
    /// # Errors
    /// [`crate::Error::Command`] if `iptables -S` fails for another reason than a missing chain.
    pub fn rules_of(&self, id: &str) -> Result<Vec<String>> {
        let tag = comment(id);
        let mut rules = Vec::new();
        for (table, chain) in [("nat", &self.ports), ("filter", &self.forward)] {
            rules.extend(self.tagged(table, chain, &tag)?.into_iter().map(|w| format!("-t {table} {}", w.join(" "))));
        }
        Ok(rules)
    }

    /// The rules of `chain` whose comment is exactly `tag`, split into words.
    fn tagged(&self, table: &str, chain: &str, tag: &str) -> Result<Vec<Vec<String>>> {
        let Ok(listing) = run("iptables", &["-w", "5", "-t", table, "-S", chain]) else {
            return Ok(Vec::new()); // no chain, no rules
        };
        Ok(listing
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(split_words)
            .filter(|w| w.windows(2).any(|p| p[0] == "--comment" && p[1] == tag))
            .collect())
    }
}

/// The comment that ties a rule to a container.
fn comment(id: &str) -> String {
    format!("container={id}")
}

/// `iptables -w 5 -t TABLE ARGS...`; `-w` waits for the xtables lock other programs hold.
fn iptables(table: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["-w", "5", "-t", table];
    all.extend_from_slice(args);
    run("iptables", &all)
}

/// Appends (or, with `first`, inserts at the top) a rule unless `iptables -C` finds it.
fn ensure_rule(table: &str, chain: &str, rule: &[&str], first: bool) -> Result<()> {
    let mut check = vec!["-C", chain];
    check.extend_from_slice(rule);
    if iptables(table, &check).is_ok() {
        return Ok(());
    }
    let mut add = if first { vec!["-I", chain, "1"] } else { vec!["-A", chain] };
    add.extend_from_slice(rule);
    iptables(table, &add).map(|_| ())
}

/// Splits a line of `iptables -S` into words, as a shell would: iptables quotes a
/// comment that has characters other than letters, digits, `-` and `_`.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut in_word) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => (quoted, in_word) = (!quoted, true),
            '\\' if quoted => word.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::publish::Protocol;

    // Lines of `iptables -S` split into the words iptables was given, quotes removed.
    #[test]
    fn split_words_undoes_iptables_quoting() {
        let line = r#"-A KTHW-PORTS ! -i kthw0 -p tcp -m comment --comment "container=a.b" -j DNAT"#;
        let words = split_words(line);
        assert_eq!(words[10], "container=a.b");
        assert_eq!(words.len(), 13);
        assert_eq!(split_words(r#"--comment "x \"y\" z""#), ["--comment", "x \"y\" z"]);
        assert_eq!(split_words("  -j  ACCEPT "), ["-j", "ACCEPT"]);
    }

    // A published port becomes a DNAT in our nat chain and an accept in our filter chain,
    // both tagged with the container id; a host address narrows the DNAT to it.
    #[test]
    fn publish_rules_are_tagged_dnat_and_accept() {
        let chains = Chains::new(&Paths::default());
        let port = PortMapping {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let [(t1, c1, dnat), (t2, c2, accept)] = chains.publish_rules("web", Ipv4Addr::new(10, 77, 0, 2), &port);
        assert_eq!((t1, c1.as_str(), t2, c2.as_str()), ("nat", "KTHW-PORTS", "filter", "KTHW-FORWARD"));
        assert_eq!(
            dnat.join(" "),
            "-d 127.0.0.1/32 ! -i kthw0 -p tcp -m tcp --dport 8080 -m comment --comment container=web \
             -j DNAT --to-destination 10.77.0.2:80"
        );
        assert_eq!(
            accept.join(" "),
            "-d 10.77.0.2/32 ! -i kthw0 -o kthw0 -p tcp -m tcp --dport 80 -m comment --comment container=web -j ACCEPT"
        );
    }
}
