//! System tests of the pod network through CNI: the runtime side (`kthw_pods::cni::Cni`)
//! with our plugin `kthw-bridge` and, selected only by the config, Debian's `bridge` +
//! `host-local` + `loopback` from `containernetworking-plugins`.
//!
//! The "pods" are processes in a network namespace of their own (`unshare --net sleep`),
//! or a named namespace (`ip netns add <instance>...`). Traffic only goes to addresses on
//! the test's own bridge. Each test has its own `TestHome` (instance prefix, bridge,
//! subnet, data dirs) and runs `kthw reset` for its instance when it ends, also on failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_pods::Error;
use kthw_pods::cni::{self, Cni, CniResult, RuntimeConf};
use serde_json::{Value, json};

/// Our plugin's binary, as cargo built it for these tests.
/// Our plugin: `$KTHW_CNI_BRIDGE` if set (the lab VMs run a staged copy), else the one
/// cargo built with this test.
fn plugin() -> PathBuf {
    std::env::var_os("KTHW_CNI_BRIDGE")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kthw-cni-bridge")), PathBuf::from)
}

/// Which plugins a test's network uses.
#[derive(Clone, Copy, PartialEq)]
enum Plugins {
    Ours,
    Debian,
}

/// A test's home, CNI dirs and network; `kthw reset` of its instance on drop.
struct Lab {
    home: TestHome,
    netns: Vec<String>,
}

impl Lab {
    fn new() -> Lab {
        Lab { home: TestHome::new(), netns: Vec::new() }
    }

    fn conf_dir(&self) -> PathBuf {
        self.home.path().join("cni/net.d")
    }

    /// A `Cni` for `plugins`: the config written to the test's config dir, then loaded.
    fn cni(&self, plugins: Plugins) -> Cni {
        let subnet = cni::pod_subnet(&self.home.paths).unwrap();
        let (config, bin_dir) = match plugins {
            Plugins::Ours => {
                let bin = self.home.path().join("cni/bin");
                cni::install_plugin(&bin, &plugin()).unwrap();
                (cni::kthw_bridge_config(&self.home.paths, subnet), bin)
            }
            Plugins::Debian => {
                (cni::debian_bridge_config(&self.home.paths, subnet), PathBuf::from(cni::DEBIAN_BIN_DIR))
            }
        };
        cni::config::write(&self.conf_dir(), "10-pods.conflist", &config).unwrap();
        self.cni_with(vec![bin_dir])
    }

    fn cni_with(&self, bin_dirs: Vec<PathBuf>) -> Cni {
        Cni::load(&self.conf_dir(), bin_dirs, self.home.path().join("cni/cache")).unwrap()
    }

    fn bridge(&self) -> String {
        cni::bridge_name(&self.home.paths)
    }

    /// A named network namespace, `ip netns add <instance>NAME`, deleted on drop.
    fn named_netns(&mut self, name: &str) -> PathBuf {
        let name = self.home.paths.name(name);
        run_ok("ip", &["netns", "add", &name]);
        self.netns.push(name.clone());
        PathBuf::from("/run/netns").join(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.netns {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
        let problems = kthw_lab::reset::plan(&self.home.paths).map(|plan| kthw_lab::reset::apply(&plan));
        match kthw_lab::reset::plan(&self.home.paths) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => eprintln!("cleanup left {left:?}: {problems:?}"),
            Err(e) => eprintln!("cleanup: {e}"),
        }
    }
}

/// A "pod": a process in a new network namespace, killed on drop (which also deletes
/// what is left in the namespace: the kernel removes a veth whose namespace dies).
struct Pod {
    child: Child,
}

impl Pod {
    fn start() -> Pod {
        let child = Command::new("unshare")
            .args(["--net", "--", "sleep", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start unshare");
        let pod = Pod { child };
        let host = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(pod.netns()).ok().as_ref() == Some(&host) {
            assert!(Instant::now() < deadline, "unshare --net did not enter a new namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        pod
    }

    fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.child.id()))
    }

    fn rt(&self, id: &str) -> RuntimeConf {
        RuntimeConf::new(id, self.netns())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip ARGS` inside the namespace at `netns`.
fn ip_in(netns: &Path, args: &[&str]) -> String {
    let net = format!("--net={}", netns.display());
    run_ok("nsenter", &[&[net.as_str(), "ip"], args].concat())
}

/// Whether a ping from `netns` to `ip` is answered (busybox's ping: Debian has no other).
fn ping(netns: &Path, ip: &str) -> bool {
    let net = format!("--net={}", netns.display());
    run("nsenter", &[net.as_str(), "busybox", "ping", "-c", "1", "-W", "2", ip]).status.success()
}

/// The pod's IP from the result, checked to be in the bridge's subnet.
fn pod_ip(lab: &Lab, result: &CniResult) -> String {
    let (ip, len) = result.ipv4().expect("an IPv4 address in the result");
    let subnet = cni::pod_subnet(&lab.home.paths).unwrap();
    assert!(subnet.contains(ip) && len == subnet.prefix_len, "{ip}/{len} not in {subnet}");
    ip.to_string()
}

/// The host end of the pod's veth, from the result (the host interface that is not the bridge).
fn host_veth(lab: &Lab, result: &CniResult) -> String {
    result.host_interfaces().map(|i| i.name.clone()).find(|n| *n != lab.bridge()).expect("a host veth in the result")
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Debian's plugins, through the one place that decides about missing prerequisites:
/// a skip saying how to install them, or a failure under CI=true.
fn debian_plugins() -> bool {
    const PACKAGE: &str = "containernetworking-plugins";
    kthw_lab::systest::can_run(&[
        Need::File { path: "/usr/lib/cni/bridge", package: PACKAGE },
        Need::File { path: "/usr/lib/cni/host-local", package: PACKAGE },
        Need::File { path: "/usr/lib/cni/loopback", package: PACKAGE },
    ])
}

/// ADD gives eth0 with an IP of the subnet and a default route; CHECK passes; DEL removes
/// the host veth and the interface, and the address is given out again.
fn add_check_del(plugins: Plugins) {
    let lab = Lab::new();
    let cni = lab.cni(plugins);
    let pod = Pod::start();
    let rt = pod.rt("pod-a");

    let result = cni.add(&rt).unwrap_or_else(|e| panic!("ADD: {e}"));
    let ip = pod_ip(&lab, &result);
    assert!(ip_is_held(&lab, plugins, &ip), "{ip} is not in the IPAM store");
    let inside = ip_in(&pod.netns(), &["-4", "addr", "show", "dev", "eth0"]);
    assert!(inside.contains(&format!("inet {ip}/")), "{inside}");
    let gateway = cni::pod_subnet(&lab.home.paths).unwrap().gateway().to_string();
    assert!(ip_in(&pod.netns(), &["route", "show", "default"]).contains(&format!("via {gateway}")));
    let veth = host_veth(&lab, &result);
    let master = std::fs::read_link(format!("/sys/class/net/{veth}/master")).unwrap();
    assert!(master.ends_with(lab.bridge()), "{veth} is on {master:?}");
    cni.check(&rt).unwrap_or_else(|e| panic!("CHECK: {e}"));

    cni.del(&rt).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(!link_exists(&veth), "{veth} is left after DEL");
    let links = ip_in(&pod.netns(), &["link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    cni.del(&rt).expect("a second DEL is fine");
    assert!(!ip_is_held(&lab, plugins, &ip), "{ip} is still allocated after DEL");
    if plugins == Plugins::Ours {
        // Ours gives the lowest free address, so the next pod gets it again (host-local
        // goes round-robin and would give the next one).
        let other = Pod::start();
        let again = cni.add(&other.rt("pod-b")).unwrap();
        assert_eq!(pod_ip(&lab, &again), ip);
        cni.del(&other.rt("pod-b")).unwrap();
    }
}

/// Whether the IPAM store still holds `ip`: our table `NAME/ipam.json`, or host-local's
/// file per address `NAME/<ip>`, both under the config's `dataDir`.
fn ip_is_held(lab: &Lab, plugins: Plugins, ip: &str) -> bool {
    let dir = lab.home.paths.state.join("cni/networks/kthw-pods");
    match plugins {
        Plugins::Ours => {
            let table: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("ipam.json")).unwrap()).unwrap();
            table["allocated"].get(ip).is_some()
        }
        Plugins::Debian => dir.join(ip).exists(),
    }
}

/// Two pods get different addresses on one bridge and ping each other.
fn pods_reach_each_other(plugins: Plugins) {
    let lab = Lab::new();
    let cni = lab.cni(plugins);
    let (a, b) = (Pod::start(), Pod::start());
    let ip_a = pod_ip(&lab, &cni.add(&a.rt("pod-a")).unwrap());
    let ip_b = pod_ip(&lab, &cni.add(&b.rt("pod-b")).unwrap());
    assert_ne!(ip_a, ip_b);
    assert!(ping(&a.netns(), &ip_b), "pod a cannot reach {ip_b}");
    assert!(ping(&b.netns(), &ip_a), "pod b cannot reach {ip_a}");
    cni.del(&a.rt("pod-a")).unwrap();
    cni.del(&b.rt("pod-b")).unwrap();
    assert!(!ping(&b.netns(), &ip_a), "pod a is still reachable after DEL");
}

// With our plugin: ADD, CHECK, DEL do what the specification says.
#[test]
fn kthw_bridge_add_check_del() {
    require!(Need::Root, Need::Command("ip"), Need::Command("iptables"), Need::Command("nsenter"));
    add_check_del(Plugins::Ours);
}

// With our plugin: two pods ping each other over the bridge.
#[test]
fn kthw_bridge_pods_reach_each_other() {
    require!(Need::Root, Need::Command("ip"), Need::Command("iptables"), Need::Command("busybox"));
    pods_reach_each_other(Plugins::Ours);
}

// With Debian's bridge + host-local + loopback, selected only by the config: the same.
#[test]
fn debian_plugins_add_check_del() {
    require!(Need::Root, Need::Command("ip"), Need::Command("iptables"), Need::Command("nsenter"));
    if debian_plugins() {
        add_check_del(Plugins::Debian);
    }
}

// With Debian's plugins: two pods ping each other over the bridge.
#[test]
fn debian_plugins_pods_reach_each_other() {
    require!(Need::Root, Need::Command("ip"), Need::Command("iptables"), Need::Command("busybox"));
    if debian_plugins() {
        pods_reach_each_other(Plugins::Debian);
    }
}

// CNI_NETNS may be a bind-mounted namespace (`ip netns add`), not only /proc/PID/ns/net.
#[test]
fn kthw_bridge_works_with_a_named_netns() {
    require!(Need::Root, Need::Command("ip"), Need::Command("iptables"), Need::Command("nsenter"));
    let mut lab = Lab::new();
    let cni = lab.cni(Plugins::Ours);
    let netns = lab.named_netns("pod1");
    let rt = RuntimeConf::new("named", &netns);
    let ip = pod_ip(&lab, &cni.add(&rt).unwrap());
    assert!(ip_in(&netns, &["-4", "addr", "show", "dev", "eth0"]).contains(&ip));
    cni.check(&rt).unwrap();
    cni.del(&rt).unwrap();
}

// A plugin's error JSON reaches the caller with its code and msg, which names the field.
#[test]
fn plugin_errors_are_surfaced_with_their_msg() {
    require!(Need::Root, Need::Command("ip"), Need::Command("nsenter"));
    let lab = Lab::new();
    let pod = Pod::start();
    let ours = json!({"cniVersion": "1.0.0", "name": "pods",
        "plugins": [{"type": "kthw-bridge", "bridge": lab.bridge()}]});
    cni::config::write(&lab.conf_dir(), "10-pods.conflist", &ours).unwrap();
    let bin = lab.home.path().join("cni/bin");
    cni::install_plugin(&bin, &plugin()).unwrap();
    let err = lab.cni_with(vec![bin.clone()]).add(&pod.rt("bad")).unwrap_err();
    match &err {
        Error::Cni { plugin, command, code, msg, .. } => {
            assert_eq!((plugin.as_str(), command.as_str(), *code), ("kthw-bridge", "ADD", 7));
            assert!(msg.contains("field `subnet` is missing"), "{msg}");
        }
        other => panic!("not a CNI error: {other}"),
    }
    assert!(err.to_string().contains("CNI plugin kthw-bridge failed on ADD (code 7): field `subnet`"), "{err}");
    assert!(!link_exists(&lab.bridge()), "nothing is made from a bad config");

    // A plugin the bin dirs do not have is named, with where to get Debian's.
    let missing: Value = json!({"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "no-such-plugin"}]});
    cni::config::write(&lab.conf_dir(), "00-first.conflist", &missing).unwrap();
    let err = lab.cni_with(vec![bin]).add(&pod.rt("bad")).unwrap_err().to_string();
    assert!(err.contains("no binary \"no-such-plugin\""), "{err}");

    if debian_plugins() {
        // Debian's bridge with an IPAM it cannot find: its own message comes through.
        let debian = json!({"cniVersion": "1.0.0", "name": "pods",
            "plugins": [{"type": "bridge", "bridge": lab.bridge(), "ipam": {"type": "no-such-ipam"}}]});
        cni::config::write(&lab.conf_dir(), "00-first.conflist", &debian).unwrap();
        let err = lab.cni_with(vec![cni::DEBIAN_BIN_DIR.into()]).add(&pod.rt("bad")).unwrap_err();
        let Error::Cni { plugin, msg, .. } = &err else { panic!("not a CNI error: {err}") };
        assert_eq!(plugin, "bridge");
        assert!(msg.contains("no-such-ipam"), "{msg}");
    }
}

// VERSION: both plugins report that they speak CNI 1.0.0.
#[test]
fn plugins_report_their_versions() {
    require!(Need::Root);
    let lab = Lab::new();
    let cni = lab.cni(Plugins::Ours);
    let versions = cni.versions().unwrap();
    assert_eq!(versions[0].0, "kthw-bridge");
    assert!(versions[0].1.supported_versions.contains(&"1.0.0".to_string()));
    if debian_plugins() {
        let cni = lab.cni(Plugins::Debian);
        for (kind, info) in cni.versions().unwrap() {
            assert!(info.supported_versions.contains(&"1.0.0".to_string()), "{kind}: {info:?}");
        }
    }
}
