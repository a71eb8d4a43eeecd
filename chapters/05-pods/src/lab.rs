//! Lab 05's checker: the two pod patterns of the chapter, run unchanged from
//! `labs/05-pods/`: an init container that installs a web page for a server, and a
//! log-shipping sidecar.
//!
//! The lab sheet is `labs/05-pods/README.md`. Each stage looks at real state, never at
//! what was typed: the pod records the supervisors write, the processes in `/proc` (the
//! namespace inodes of every container and of pause, pause's `NSpid`), the pod's `eth0`
//! inside its network namespace and the host end of its veth in `/sys/class/net`, the
//! page served over the pod IP, the sidecar's `json-file` log, and a listening socket in
//! the pod's network namespace. The same stages pass with our CNI plugin and with
//! Debian's: they look at what any bridge plugin must make, and say which plugins made it.
//!
//! What graders elsewhere do differently: Kubernetes courses check `kubectl get pods`
//! and `kubectl logs`; the namespaces and the veth, where a pod actually is, stay hidden
//! behind the container runtime.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use kthw_lab::lab::{Context, Failure, Lab, Outcome, Stage, http_get};
use kthw_runtime::engine::log::{Stream, parse_line};
use serde_json::Value;

use crate::cni;
use crate::kubelet::store::{self, PodRecord};
use crate::kubelet::{Kubelet, sandbox};

/// The image both manifests use, imported in step 1.
pub const IMAGE: &str = "busybox:1.36";
/// The init-container pod (`labs/05-pods/init-container.yaml`).
pub const WEB: &str = "web";
/// The sidecar pod (`labs/05-pods/sidecar.yaml`).
pub const LOGGER: &str = "logger";
/// What the init container writes into the shared volume.
pub const PAGE: &str = "Hello from a pod";
/// The port the server listens on.
pub const WEB_PORT: u16 = 8080;
/// The port of the web server the learner starts in the sidecar pod's `app` (step 6).
pub const LOCAL_PORT: u16 = 8081;
/// The file of step 6, in the lab folder: what `shipper` fetched from `app` over localhost.
pub const LOCALHOST_FILE: &str = "05-localhost.txt";

// ANCHOR: lab
/// Lab 5's stages, in the order of the lab sheet.
pub fn lab() -> Lab {
    Lab {
        id: "05",
        title: "Pods and the pause container",
        sheet: "labs/05-pods/README.md",
        stages: vec![
            Stage::new("pods web and logger run", "ch05-pods.md#the-commands", running),
            Stage::new(
                "web's init container ran to completion before the server started",
                "ch05-pods.md#container-design-patterns",
                init_first,
            ),
            Stage::new("pause is PID 1 of each sandbox", "ch05-pods.md#the-pause-container", pause_pid1),
            Stage::new(
                "a pod's containers share pause's network namespace",
                "ch05-pods.md#the-pods-namespaces",
                shared_net,
            ),
            Stage::new("each pod IP is on the bridge", "ch05-pods.md#the-packet-path-between-two-pods", on_bridge),
            Stage::new(
                "the server serves what the init container installed",
                "ch05-pods.md#container-design-patterns",
                page,
            ),
            Stage::new("the sidecar ships the app's log", "ch05-pods.md#container-design-patterns", shipped),
            Stage::new(
                "the sidecar reached the app over the pod's localhost",
                "ch05-pods.md#the-pods-namespaces",
                localhost,
            ),
        ],
    }
}
// ANCHOR_END: lab

/// The step of the sheet that runs pod `name`.
fn run_step(name: &str) -> String {
    let file = if name == WEB { "init-container.yaml" } else { "sidecar.yaml" };
    format!("step 2: `sudo kthw pod run -f labs/05-pods/{file} -d`")
}

/// The record of pod `name`; its supervisor, sandbox and every app container must run.
fn pod(ctx: &Context, name: &str) -> Result<PodRecord, Failure> {
    let record = store::read(&ctx.paths, name).map_err(|e| {
        let has_image = Kubelet::open(&ctx.paths).is_ok_and(|k| k.store.image(IMAGE).is_ok());
        let fix = if has_image {
            run_step(name)
        } else {
            format!("step 1: import busybox as {IMAGE} (`sudo kthw image import ... {IMAGE}`), then {}", run_step(name))
        };
        Failure::new(e.to_string(), fix)
    })?;
    let restart = format!("`sudo kthw pod rm {name}`, then {}", run_step(name));
    if !record.supervisor.is_some_and(store::alive) {
        return Err(Failure::new(format!("pod {name} has stopped: its supervisor is gone"), restart));
    }
    let sandbox = record.sandbox.as_ref().filter(|s| s.running && store::alive(s.pid));
    if sandbox.is_none() {
        return Err(Failure::new(
            format!("pod {name} has no running sandbox"),
            format!("read the supervisor's log, run/pods/{name}.log under the kthw state; then {restart}"),
        ));
    }
    for c in &record.pod.spec.containers {
        let pid = record.containers.get(&c.name).and_then(|r| r.pid).filter(|p| store::alive(*p));
        if pid.is_none() {
            return Err(Failure::new(
                format!("container {} of pod {name} is not running", c.name),
                format!(
                    "`sudo kthw pod inspect {name}` shows its state; `sudo kthw pod logs {name} -c {}` why",
                    c.name
                ),
            ));
        }
    }
    Ok(record)
}

fn both(ctx: &Context) -> Result<[PodRecord; 2], Failure> {
    Ok([pod(ctx, WEB)?, pod(ctx, LOGGER)?])
}

fn pause_pid(record: &PodRecord) -> i32 {
    record.sandbox.as_ref().map_or(0, |s| s.pid)
}

/// The running app containers of a pod: name and init pid.
fn app_pids(record: &PodRecord) -> Vec<(String, i32)> {
    record
        .pod
        .spec
        .containers
        .iter()
        .filter_map(|c| Some((c.name.clone(), record.containers.get(&c.name)?.pid?)))
        .collect()
}

fn pod_ip(record: &PodRecord) -> Option<Ipv4Addr> {
    record.pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

fn running(ctx: &Context) -> Outcome {
    let pods = both(ctx)?;
    let lines: Vec<String> = pods
        .iter()
        .map(|r| {
            let ip = pod_ip(r).map_or_else(|| "no IP".to_string(), |ip| ip.to_string());
            let names: Vec<String> = app_pids(r).into_iter().map(|(n, _)| n).collect();
            format!("{}: {ip}, running {}", r.pod.name(), names.join(" and "))
        })
        .collect();
    Ok(lines.join("; "))
}

fn init_first(ctx: &Context) -> Outcome {
    let web = pod(ctx, WEB)?;
    let rerun = format!("`sudo kthw pod rm web`, then {}", run_step(WEB));
    let install = web.containers.get("install").ok_or_else(|| {
        Failure::new(
            "pod web has no record of its init container install",
            "run web from the lab's manifest, unchanged",
        )
    })?;
    let (code, finished) = install.exit.ok_or_else(|| {
        Failure::new("the init container install has not exited", "an init container must run to completion")
    })?;
    if code != 0 {
        return Err(Failure::new(
            format!("the init container install exited with {code}"),
            format!("`sudo kthw pod logs web -c install` says why; then {rerun}"),
        ));
    }
    let server = web
        .containers
        .get("server")
        .and_then(|c| c.started_at)
        .ok_or_else(|| Failure::new("the server container has no start time", rerun.clone()))?;
    let gap = server.duration_since(finished).map_err(|_| {
        Failure::new(
            "the server container started before the init container install finished",
            "the kubelet starts app containers only after every init container exited 0: see `decide`",
        )
    })?;
    let ran = install.started_at.and_then(|s| finished.duration_since(s).ok()).unwrap_or_default();
    Ok(format!("install ran {} ms and exited 0; server started {} ms after it", ran.as_millis(), gap.as_millis()))
}

/// The `NSpid` line of `/proc/PID/status`: the pid in each nested pid namespace.
fn nspid(pid: i32) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_string()).unwrap_or_default()
}

fn pause_pid1(ctx: &Context) -> Outcome {
    let mut lines = Vec::new();
    for record in both(ctx)? {
        let (name, pid) = (record.pod.name().to_string(), pause_pid(&record));
        let ids = nspid(pid);
        if comm(pid) != "pause" {
            return Err(Failure::new(
                format!("the sandbox process of {name} (pid {pid}) is {:?}, not pause", comm(pid)),
                format!(
                    "the sandbox runs the image {}; `sudo kthw image rm` it to have it made again",
                    crate::pause::IMAGE
                ),
            ));
        }
        if ids.len() < 2 || ids.last().map(String::as_str) != Some("1") {
            return Err(Failure::new(
                format!("pause of {name} (pid {pid}) has NSpid {ids:?}: it is not PID 1 of a pid namespace of its own"),
                "the sandbox's spec must ask for a new pid namespace",
            ));
        }
        lines.push(format!("{name}: pause (NSpid {})", ids.join(" ")));
    }
    Ok(lines.join("; "))
}

/// The inode of namespace `kind` of process `pid`: what `ls -l /proc/PID/ns` shows in brackets.
fn ns_inode(pid: impl std::fmt::Display, kind: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{kind}")).ok().map(|m| m.ino())
}

fn shared_net(ctx: &Context) -> Outcome {
    let host_net = ns_inode("self", "net");
    let mut lines = Vec::new();
    for record in both(ctx)? {
        let (name, pause) = (record.pod.name().to_string(), pause_pid(&record));
        let inode = |pid, kind| {
            ns_inode(pid, kind).ok_or_else(|| {
                Failure::new(format!("cannot read /proc/{pid}/ns/{kind} (pod {name})"), "run the checker as root")
            })
        };
        let net = inode(pause, "net")?;
        if Some(net) == host_net {
            return Err(Failure::new(
                format!("pause of {name} is in the host's network namespace net:[{net}]"),
                "the sandbox's spec must ask for a new network namespace",
            ));
        }
        let apps = app_pids(&record);
        let mut mounts = vec![inode(pause, "mnt")?];
        for (container, pid) in &apps {
            for kind in ["net", "ipc", "uts"] {
                let (theirs, ours) = (inode(*pid, kind)?, inode(pause, kind)?);
                if theirs != ours {
                    return Err(Failure::new(
                        format!("container {container} of {name} is in {kind}:[{theirs}], pause in {kind}:[{ours}]"),
                        "an app container joins the sandbox's namespaces by path (/proc/PAUSE/ns/...)",
                    ));
                }
            }
            let mnt = inode(*pid, "mnt")?;
            if mounts.contains(&mnt) {
                return Err(Failure::new(
                    format!("container {container} of {name} shares mnt:[{mnt}] with another container or pause"),
                    "each container of a pod keeps a mount namespace of its own, for its own image",
                ));
            }
            mounts.push(mnt);
        }
        let names: Vec<&str> = apps.iter().map(|(n, _)| n.as_str()).collect();
        lines.push(format!("{name}: {} and pause in net:[{net}]", names.join(", ")));
    }
    Ok(format!("{}; each container has its own mount namespace", lines.join("; ")))
}

/// `ip ARGS` (inside the network namespace of `pid` if given), as JSON.
fn ip_json(netns_of: Option<i32>, args: &[&str]) -> Result<Value, Failure> {
    let mut cmd = match netns_of {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/proc/{pid}/ns/net")).arg("ip");
            c
        }
        None => Command::new("ip"),
    };
    let out = cmd
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| Failure::new(format!("cannot run ip (or nsenter): {e}"), "install iproute2 and util-linux"))?;
    if !out.status.success() {
        return Err(Failure::new(
            format!("`ip -j {}`: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()),
            "the pod's network is not as CNI ADD left it; remove the pod and run it again",
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::new(format!("`ip -j` printed no JSON: {e}"), "update iproute2"))
}

/// The IPv4 addresses (address, prefix length) of the first link in `ip -j addr` output.
fn addresses(link: &Value) -> Vec<(Ipv4Addr, u8)> {
    link.pointer("/0/addr_info")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    Some((a["local"].as_str()?.parse().ok()?, u8::try_from(a["prefixlen"].as_u64()?).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    u32::from(a) & mask == u32::from(b) & mask
}

/// The host interface whose ifindex is `index`.
fn link_by_index(index: u64) -> Option<String> {
    fs::read_dir("/sys/class/net").ok()?.flatten().find_map(|e| {
        let i: u64 = fs::read_to_string(e.path().join("ifindex")).ok()?.trim().parse().ok()?;
        (i == index).then(|| e.file_name().to_string_lossy().into_owned())
    })
}

/// The plugins a network config runs, with each one's IPAM plugin: `bridge (IPAM host-local), loopback`.
pub fn describe_plugins(config: &cni::NetworkConfig) -> String {
    let each: Vec<String> = config
        .plugins
        .iter()
        .map(|p| {
            let kind = p["type"].as_str().unwrap_or("?");
            match p.pointer("/ipam/type").and_then(Value::as_str) {
                Some(ipam) => format!("{kind} (IPAM {ipam})"),
                None => kind.to_string(),
            }
        })
        .collect();
    each.join(", ")
}

fn on_bridge(ctx: &Context) -> Outcome {
    let bridge = cni::bridge_name(&ctx.paths);
    let config = cni::config::load_dir(&sandbox::config_dir(&ctx.paths)).map_err(|e| {
        Failure::new(e.to_string(), "the first pod writes the network's config; `sudo kthw pod network` shows it")
    })?;
    let bridge_link = ip_json(None, &["-4", "addr", "show", "dev", &bridge])?;
    let &[(gateway, prefix), ..] = addresses(&bridge_link).as_slice() else {
        return Err(Failure::new(
            format!("the bridge {bridge} has no IPv4 address"),
            "the bridge plugin gives it the gateway address (`isGateway`); remove the pods and run them again",
        ));
    };
    let mut lines = Vec::new();
    for record in both(ctx)? {
        let name = record.pod.name().to_string();
        let ip = pod_ip(&record).ok_or_else(|| Failure::new(format!("pod {name} has no podIP"), run_step(&name)))?;
        let eth0 = ip_json(Some(pause_pid(&record)), &["-4", "addr", "show", "dev", "eth0"])?;
        if !addresses(&eth0).iter().any(|(a, _)| *a == ip) {
            return Err(Failure::new(
                format!("eth0 in the network namespace of {name} has {:?}, not its pod IP {ip}", addresses(&eth0)),
                "something changed the pod's network after CNI ADD; remove the pod and run it again",
            ));
        }
        // A veth's `link_index` is the ifindex of its peer, which is in the host's namespace.
        let peer = eth0.pointer("/0/link_index").and_then(Value::as_u64).and_then(link_by_index).ok_or_else(|| {
            Failure::new(
                format!("eth0 of {name} has no peer in the host's network namespace"),
                "the bridge plugin makes eth0 one end of a veth pair; remove the pod and run it again",
            )
        })?;
        let master = fs::read_link(format!("/sys/class/net/{peer}/master"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
        if master.as_deref() != Some(bridge.as_str()) {
            return Err(Failure::new(
                format!("the host end of {name}'s veth, {peer}, is on {master:?}, not on the bridge {bridge}"),
                "`ip link show master BRIDGE` lists the bridge's ports; remove the pod and run it again",
            ));
        }
        if !same_subnet(ip, gateway, prefix) {
            return Err(Failure::new(
                format!("pod IP {ip} of {name} is not in the bridge's subnet {gateway}/{prefix}"),
                "the network's config gives the bridge and the pods one subnet; `sudo kthw pod network` shows it",
            ));
        }
        lines.push(format!("{name} {ip} (host end {peer})"));
    }
    let file = config.source.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(format!(
        "{}, both on bridge {bridge} ({gateway}/{prefix}); CNI network {} ({file}): {}",
        lines.join(", "),
        config.name,
        describe_plugins(&config)
    ))
}

fn page(ctx: &Context) -> Outcome {
    let web = pod(ctx, WEB)?;
    let ip = pod_ip(&web).ok_or_else(|| Failure::new("pod web has no podIP", run_step(WEB)))?;
    let addr = SocketAddr::from((ip, WEB_PORT));
    let get = |path| {
        // Trimmed: the init container's files end with a newline.
        http_get(addr, path).map(|(status, body)| (status, body.trim().to_string())).map_err(|e| {
            Failure::new(
                e,
                "the server listens on port 8080 of the pod IP; `sudo kthw pod logs web -c server` says why not",
            )
        })
    };
    let (status, body) = get("/")?;
    if !status.contains(" 200") || !body.contains(PAGE) {
        return Err(Failure::new(
            format!("GET / on {addr} answered {status:?} with {body:?}"),
            "the server serves the volume the init container wrote; run web from the lab's manifest, unchanged",
        ));
    }
    let (_, installed) = get("/installed.txt")?;
    if installed != "installed by web" {
        return Err(Failure::new(
            format!("/installed.txt is {installed:?}, not \"installed by web\""),
            "the init container writes it with the pod's host name, web",
        ));
    }
    let volume = store::dir(&ctx.paths, WEB).join("volumes/app/index.html");
    if !volume.is_file() {
        return Err(Failure::new(
            format!("{} does not exist: the page is not in the pod's emptyDir volume", volume.display()),
            "run web from the lab's manifest, unchanged",
        ));
    }
    Ok(format!("GET http://{addr}/ answered {status:?}: {body}; /installed.txt: {installed}"))
}

/// The `request N` lines the sidecar's app writes.
fn is_request(line: &str) -> bool {
    line.split_whitespace().nth(1) == Some("request")
}

fn shipped(ctx: &Context) -> Outcome {
    pod(ctx, LOGGER)?;
    let path = store::log_path(&ctx.paths, LOGGER, "shipper");
    let text = fs::read_to_string(&path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display()), "the supervisor writes it"))?;
    let mut shipped = 0;
    for (n, line) in text.lines().enumerate() {
        let entry = parse_line(line).map_err(|e| {
            Failure::new(
                format!("line {} of {} is not a json-file record: {e}", n + 1, path.display()),
                "only the supervisor should write it",
            )
        })?;
        if entry.stream == Stream::Stdout && is_request(&entry.log) {
            shipped += 1;
        }
    }
    if shipped == 0 {
        return Err(Failure::new(
            format!("the log of shipper has no `request N` line on stdout ({} records)", text.lines().count()),
            "shipper follows /var/log/app/access.log in the shared volume; `sudo kthw pod logs logger -c shipper`",
        ));
    }
    let access = store::dir(&ctx.paths, LOGGER).join("volumes/logs/access.log");
    let written = fs::read_to_string(&access).map(|t| t.lines().filter(|l| is_request(l)).count()).unwrap_or(0);
    if written == 0 {
        return Err(Failure::new(
            format!("{} has no `request N` line", access.display()),
            "app writes it into the pod's emptyDir volume; run logger from the lab's manifest, unchanged",
        ));
    }
    // The counts grow by one a second; the evidence is that both ends have lines.
    Ok("app writes `request N` lines into the volume's access.log; shipper's log has them, on stdout".into())
}

/// Whether a TCP socket listens on `port` in the network namespace of `pid`.
fn listens(pid: i32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|file| {
        let table = fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A" // 0A: LISTEN
        })
    })
}

fn localhost(ctx: &Context) -> Outcome {
    let logger = pod(ctx, LOGGER)?;
    let start = "step 6: `sudo kthw pod exec logger -c app -- httpd -p 8081 -h /var/log/app`";
    if !listens(pause_pid(&logger), LOCAL_PORT) {
        return Err(Failure::new(
            format!("nothing listens on port {LOCAL_PORT} in logger's network namespace"),
            format!("{start} (if logger was run again since, start it again)"),
        ));
    }
    let path = ctx.paths.lab().join(LOCALHOST_FILE);
    let fix = format!(
        "step 6: `sudo kthw pod exec logger -c shipper -- wget -qO- http://127.0.0.1:{LOCAL_PORT}/access.log > $LAB/{LOCALHOST_FILE}`"
    );
    let text = fs::read_to_string(&path)
        .map_err(|_| Failure::new(format!("{} does not exist", path.display()), fix.clone()))?;
    let lines = text.lines().filter(|l| is_request(l)).count();
    if lines == 0 {
        return Err(Failure::new(format!("{LOCALHOST_FILE} has no `request N` line: {:?}", text.trim()), fix));
    }
    // A file saved from an earlier logger proves nothing about this one.
    let saved = fs::metadata(&path).and_then(|m| m.modified()).ok();
    let started = logger.containers.get("app").and_then(|c| c.started_at);
    if let (Some(saved), Some(started)) = (saved, started)
        && saved < started
    {
        return Err(Failure::new(
            format!("{LOCALHOST_FILE} is older than the app container"),
            format!("it was saved from an earlier logger; {fix}"),
        ));
    }
    Ok(format!(
        "app's httpd listens on port {LOCAL_PORT} of the pod; shipper fetched access.log from 127.0.0.1:{LOCAL_PORT} ({LOCALHOST_FILE})"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    // Every stage points at a section of chapter 5, and the lab's sheet exists.
    #[test]
    fn stages_point_at_chapter_5() {
        let lab = lab();
        assert!(lab.stages.iter().all(|s| s.book.starts_with("ch05-pods.md#")));
        let sheet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(lab.sheet);
        assert!(sheet.is_file(), "{}", sheet.display());
    }

    // Two addresses are in one subnet when they agree on the prefix's bits.
    #[test]
    fn same_subnet_compares_the_prefix() {
        let a: Ipv4Addr = "10.200.3.7".parse().unwrap();
        assert!(same_subnet(a, "10.200.3.1".parse().unwrap(), 24));
        assert!(!same_subnet(a, "10.200.4.1".parse().unwrap(), 24));
        assert!(same_subnet(a, "10.200.4.1".parse().unwrap(), 16));
        assert!(same_subnet(a, "1.2.3.4".parse().unwrap(), 0));
    }

    // The sidecar's lines are `HH:MM:SS request N`; nothing else counts.
    #[test]
    fn request_lines_are_recognised() {
        assert!(is_request("23:25:12 request 1\n"));
        assert!(!is_request("tail: can't open '/var/log/app/access.log'"));
    }

    // The plugins are named with their IPAM plugin, as the config nests it.
    #[test]
    fn plugins_are_described_with_their_ipam() {
        let paths = kthw_lab::Paths::under(Path::new("/x"));
        let subnet = kthw_runtime::network::Subnet::new(Ipv4Addr::new(10, 200, 0, 0), 24);
        let parse = |v: Value| cni::config::parse(Path::new("10.conflist"), &v.to_string()).unwrap();
        assert_eq!(describe_plugins(&parse(cni::kthw_bridge_config(&paths, subnet))), "kthw-bridge");
        assert_eq!(
            describe_plugins(&parse(cni::debian_bridge_config(&paths, subnet))),
            "bridge (IPAM host-local), loopback"
        );
    }
}
