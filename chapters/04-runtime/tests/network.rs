//! The container network: bridge, veth pairs, IPAM, NAT and published ports.
//!
//! The "containers" here are plain processes in a new network namespace
//! (`unshare --net`), which is all the network part of a container is. Traffic only ever
//! goes to loopback and to addresses on the test's own bridge. Every test has its own
//! `TestHome`, hence its own instance prefix, bridge and subnet, and a guard that runs
//! `kthw reset` for that instance when the test ends, also when it fails.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kthw_lab::Paths;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_runtime::network::{Network, PortMapping, Protocol, parse_publish};

/// A test's home; `kthw reset` of its instance on drop.
struct Lab {
    home: TestHome,
}

impl Lab {
    fn new() -> Lab {
        Lab { home: TestHome::new() }
    }
    fn paths(&self) -> &Paths {
        &self.home.paths
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A veth may vanish while reset runs (its namespace died with the container):
        // what matters is what is left afterwards.
        let problems = kthw_lab::reset::plan(&self.home.paths).map(|plan| kthw_lab::reset::apply(&plan));
        match kthw_lab::reset::plan(&self.home.paths) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => eprintln!("cleanup left {left:?}: {problems:?}"),
            Err(e) => eprintln!("cleanup: {e}"),
        }
    }
}

/// A process in a network namespace of its own, killed on drop.
struct Container {
    child: Child,
}

impl Container {
    fn start(args: &[&str]) -> Container {
        let child = Command::new("unshare")
            .arg("--net")
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start unshare");
        let c = Container { child };
        // `unshare` enters the new namespace just after it starts: wait for it, or the
        // test would "attach" the host's own namespace.
        let host = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{}/ns/net", c.pid())).ok().as_ref() == Some(&host) {
            assert!(Instant::now() < deadline, "unshare --net did not enter a new namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        c
    }

    fn sleeper() -> Container {
        Container::start(&["sleep", "60"])
    }

    /// busybox httpd on port 80, serving `dir`.
    fn web_server(dir: &Path) -> Container {
        Container::start(&["busybox", "httpd", "-f", "-p", "80", "-h", dir.to_str().unwrap()])
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Runs a command in the container's network namespace.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter").arg(format!("--net=/proc/{}/ns/net", self.pid())).args(args).output().unwrap()
    }

    fn stdout(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder with an index.html for busybox httpd.
fn site(lab: &Lab, text: &str) -> std::path::PathBuf {
    let dir = lab.home.path().join("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), text).unwrap();
    dir
}

/// GET / from `addr`, retrying while the server starts; the whole response.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = (|| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })();
        match attempt {
            Ok(text) => return Ok(text),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A host port nobody else uses while the returned listener lives: the kernel gave it
/// to us. Published ports are host-wide, so parallel tests must not share one. Our
/// DNAT catches the traffic before it could reach this listener.
fn free_port() -> (TcpListener, u16) {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    (holder, port)
}

fn iptables_s(table: &str) -> String {
    let out = Command::new("iptables").args(["-w", "5", "-t", table, "-S"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping { host_ip: None, host_port, container_port, protocol: Protocol::Tcp }
}

// `attach` gives the container an eth0 with the allocated address, lo up, and a default
// route via the bridge's address; the host end of the veth is on the bridge.
#[test]
fn attach_gives_eth0_with_the_address_and_a_default_route() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare")
    );
    let lab = Lab::new();
    let net = Network::open(lab.paths()).unwrap();
    let c = Container::sleeper();
    let ep = net.attach("web", c.pid(), &[]).unwrap();

    assert!(net.subnet().contains(ep.ip) && ep.ip != ep.gateway, "{ep:?}");
    assert_eq!(ep.gateway, net.subnet().gateway());
    assert_eq!(ep.bridge, lab.paths().name("0"));
    assert!(ep.host_veth.starts_with(&lab.paths().instance) && ep.host_veth.len() <= 15, "{}", ep.host_veth);
    let addr = c.stdout(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("inet {}/{}", ep.ip, ep.prefix_len)), "{addr}");
    let lo = c.stdout(&["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let routes = c.stdout(&["ip", "-4", "route"]);
    assert!(routes.contains(&format!("default via {} dev eth0", ep.gateway)), "{routes}");
    let master = Command::new("ip").args(["-o", "link", "show", &ep.host_veth]).output().unwrap();
    assert!(String::from_utf8_lossy(&master.stdout).contains(&format!("master {}", ep.bridge)));
    assert_eq!(net.endpoint("web").unwrap(), Some(ep));
}

// Two containers on the bridge reach each other by address: ping, and TCP to a server.
#[test]
fn containers_reach_each_other_over_the_bridge() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare"),
        Need::Command("busybox")
    );
    let lab = Lab::new();
    let net = Network::open(lab.paths()).unwrap();
    let a = Container::sleeper();
    let b = Container::web_server(&site(&lab, "hello from b\n"));
    let ea = net.attach("a", a.pid(), &[]).unwrap();
    let eb = net.attach("b", b.pid(), &[]).unwrap();
    assert_ne!(ea.ip, eb.ip);

    let ping = a.run(&["busybox", "ping", "-c", "1", "-W", "2", &eb.ip.to_string()]);
    assert!(ping.status.success(), "ping {}: {}", eb.ip, String::from_utf8_lossy(&ping.stdout));
    // busybox nc, not wget: Debian's static busybox wget crashes resolving addresses.
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 {} 80", eb.ip);
    let deadline = Instant::now() + Duration::from_secs(5);
    let page = loop {
        let page = String::from_utf8_lossy(&a.run(&["busybox", "sh", "-c", &get]).stdout).into_owned();
        if page.contains("200 OK") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(page.ends_with("\r\n\r\nhello from b\n"), "{page}");
}

// The address table survives reopening: a new `Network::open` sees the old allocation, a
// second container gets another address, a released one is given out again; and
// reopening adds no rule twice.
#[test]
fn addresses_survive_reopening_and_are_reused_after_release() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare")
    );
    let lab = Lab::new();
    let (a, b, c) = (Container::sleeper(), Container::sleeper(), Container::sleeper());
    let first = Network::open(lab.paths()).unwrap().attach("a", a.pid(), &[]).unwrap();

    let net = Network::open(lab.paths()).unwrap();
    assert_eq!(net.endpoint("a").unwrap().map(|e| e.ip), Some(first.ip));
    let second = net.attach("b", b.pid(), &[]).unwrap();
    assert_ne!(second.ip, first.ip);
    let table = std::fs::read_to_string(lab.paths().state.join("network/ipam.json")).unwrap();
    assert!(table.contains(&format!("\"{}\": \"a\"", first.ip)), "{table}");

    net.detach("a").unwrap();
    let third = Network::open(lab.paths()).unwrap().attach("c", c.pid(), &[]).unwrap();
    assert_eq!(third.ip, first.ip, "the released address is free again");

    let jumps = iptables_s("nat")
        .lines()
        .filter(|l| *l == format!("-A POSTROUTING -j {}", lab.paths().chain("POSTROUTING")))
        .count();
    assert_eq!(jumps, 1, "open is idempotent");
}

// A published port is reached from the host at 127.0.0.1:HOSTPORT and at the gateway's
// address; one published on 127.0.0.1 only is not reached at the gateway.
#[test]
fn published_port_is_reached_on_loopback_and_on_the_gateway() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare"),
        Need::Command("busybox")
    );
    let lab = Lab::new();
    let net = Network::open(lab.paths()).unwrap();
    let server = Container::web_server(&site(&lab, "published\n"));
    let ((_hold1, any), (_hold2, local)) = (free_port(), free_port());
    let only_local = PortMapping { host_ip: Some(Ipv4Addr::LOCALHOST), ..tcp(local, 80) };
    let ep = net.attach("web", server.pid(), &[tcp(any, 80), only_local]).unwrap();

    let page = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, any))).unwrap();
    assert!(page.ends_with("\r\n\r\npublished\n"), "{page}");
    let page = http_get(SocketAddr::from((ep.gateway, any))).unwrap();
    assert!(page.ends_with("published\n"), "{page}");
    let page = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, local))).unwrap();
    assert!(page.ends_with("published\n"), "{page}");
    let refused = TcpStream::connect_timeout(&SocketAddr::from((ep.gateway, local)), Duration::from_secs(2));
    assert!(refused.is_err(), "127.0.0.1:{local}:80 must not answer on {}", ep.gateway);
}

// `detach` removes the veth, the container's iptables rules and its address, and a
// second `detach` is no error.
#[test]
fn detach_removes_the_veth_the_rules_and_the_address() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare")
    );
    let lab = Lab::new();
    let net = Network::open(lab.paths()).unwrap();
    let c = Container::sleeper();
    let (_hold, port) = free_port();
    let ep = net.attach("gone", c.pid(), &[tcp(port, 80)]).unwrap();
    let tag = "container=gone";
    assert!(iptables_s("nat").contains(tag) && iptables_s("filter").contains(tag));
    assert_eq!(net.rules_of("gone").unwrap().len(), 2);

    net.detach("gone").unwrap();
    assert!(!Path::new("/sys/class/net").join(&ep.host_veth).exists(), "veth {} is left", ep.host_veth);
    assert!(!iptables_s("nat").contains(tag) && !iptables_s("filter").contains(tag), "rules are left");
    let table = std::fs::read_to_string(lab.paths().state.join("network/ipam.json")).unwrap();
    assert!(!table.contains(&ep.ip.to_string()), "{table}");
    assert_eq!(net.endpoint("gone").unwrap(), None);
    let out = c.stdout(&["ip", "-o", "link"]);
    assert!(!out.contains("eth0"), "{out}");
    net.detach("gone").unwrap();
}

// `kthw reset` finds and removes the bridge, the veths and our chains with their jumps.
#[test]
fn reset_removes_the_bridge_and_the_chains() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare")
    );
    let lab = Lab::new();
    let paths = lab.paths().clone();
    let net = Network::open(&paths).unwrap();
    let c = Container::sleeper();
    let (_hold, port) = free_port();
    let ep = net.attach("r", c.pid(), &[tcp(port, 80)]).unwrap();

    let plan = kthw_lab::reset::plan(&paths).unwrap();
    assert!(plan.links.contains(&ep.bridge) && plan.links.contains(&ep.host_veth), "{:?}", plan.links);
    for (table, chain) in [("nat", "PORTS"), ("nat", "POSTROUTING"), ("filter", "FORWARD")] {
        assert!(plan.chains.contains(&(table.to_string(), paths.chain(chain))), "{:?}", plan.chains);
    }
    assert_eq!(kthw_lab::reset::apply(&plan), Vec::<String>::new());
    assert!(!Path::new("/sys/class/net").join(&ep.bridge).exists());
    let prefix = paths.chain("");
    for table in ["nat", "filter"] {
        assert!(!iptables_s(table).contains(&prefix), "{table} still has {prefix}*");
    }
    // Removing a container afterwards (as `kthw rm` does) makes nothing again.
    if let Some(net) = Network::existing(&paths).unwrap() {
        net.detach("r").unwrap();
    }
    assert!(!Path::new("/sys/class/net").join(&ep.bridge).exists(), "detach made the bridge again");
    for table in ["nat", "filter"] {
        assert!(!iptables_s(table).contains(&prefix), "detach made {prefix}* chains again in {table}");
    }
}

// Before any container ran, there is no network to detach from, and asking makes none.
#[test]
fn existing_is_none_before_the_first_open() {
    require!(Need::Root, Need::Command("iptables"), Need::Command("ip"));
    let lab = Lab::new();
    assert!(Network::existing(lab.paths()).unwrap().is_none());
    assert!(!Path::new("/sys/class/net").join(lab.paths().name("0")).exists());
    let net = Network::open(lab.paths()).unwrap();
    let found = Network::existing(lab.paths()).unwrap().expect("a network after open");
    assert_eq!((found.bridge(), found.subnet()), (net.bridge(), net.subnet()));
}

// A process in the host's own network namespace is refused: attaching it would
// re-address the host's interfaces.
#[test]
fn attach_refuses_a_process_in_the_host_namespace() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare")
    );
    let lab = Lab::new();
    let net = Network::open(lab.paths()).unwrap();
    let err = net.attach("host", std::process::id() as i32, &[]).unwrap_err().to_string();
    assert!(err.contains("host's network namespace"), "{err}");
    assert_eq!(net.endpoint("host").unwrap(), None);
    let table = std::fs::read_to_string(lab.paths().state.join("network/ipam.json")).unwrap();
    assert!(!table.contains("\"host\""), "{table}");
}

// A host port that another container publishes is refused, and the refused container
// keeps no address.
#[test]
fn a_host_port_published_twice_is_refused() {
    require!(
        Need::Root,
        Need::Command("iptables"),
        Need::Command("ip"),
        Need::Command("nsenter"),
        Need::Command("unshare")
    );
    let lab = Lab::new();
    let net = Network::open(lab.paths()).unwrap();
    let (a, b) = (Container::sleeper(), Container::sleeper());
    let (_hold, port) = free_port();
    net.attach("a", a.pid(), &[tcp(port, 80)]).unwrap();
    let err = net.attach("b", b.pid(), &[tcp(port, 8080)]).unwrap_err().to_string();
    assert!(err.contains(&format!("host port {port}/tcp is published by container a")), "{err}");
    assert_eq!(net.endpoint("b").unwrap(), None);
    assert!(net.rules_of("b").unwrap().is_empty());
}

// `-p` accepts HOST:CONTAINER, IP:HOST:CONTAINER and a /tcp or /udp suffix.
#[test]
fn parse_publish_accepts_docker_forms() {
    assert_eq!(parse_publish("8080:80").unwrap(), tcp(8080, 80));
    assert_eq!(
        parse_publish("127.0.0.1:8080:80").unwrap(),
        PortMapping { host_ip: Some(Ipv4Addr::LOCALHOST), ..tcp(8080, 80) }
    );
    assert_eq!(parse_publish("0.0.0.0:8080:80").unwrap(), tcp(8080, 80));
    assert_eq!(parse_publish("53:5353/udp").unwrap(), PortMapping { protocol: Protocol::Udp, ..tcp(53, 5353) });
    assert_eq!(parse_publish("8080:80/tcp").unwrap().to_string(), "0.0.0.0:8080->80/tcp");
}

// Bad `-p` values are refused with a message that says what is wrong and what to write.
#[test]
fn parse_publish_refuses_bad_values_clearly() {
    let cases = [
        (
            "80",
            "-p 80: a host port is needed (Docker would pick a random one, we do not): write HOST_PORT:CONTAINER_PORT",
        ),
        ("127.0.0.1::80", "a host port is needed"),
        ("8080:80/sctp", "-p 8080:80/sctp: unknown protocol \"sctp\": use tcp or udp"),
        ("http:80", "host port \"http\" is not a number from 1 to 65535"),
        ("8080:0", "container port 0 is not a port"),
        ("8080:70000", "container port \"70000\" is not a number"),
        ("8000-8010:80-90", "host port \"8000-8010\" is a range; publish one port per -p"),
        ("localhost:8080:80", "\"localhost\" is not an IPv4 address"),
        ("[::1]:8080:80", "only IPv4 host addresses are supported"),
        ("1:2:3:4", "too many ':'"),
        ("", "a host port is needed"),
    ];
    for (input, want) in cases {
        let err = parse_publish(input).unwrap_err().to_string();
        assert!(err.contains(want), "-p {input:?}: got {err:?}, want {want:?}");
    }
}
