//! Lab 04's checker: a web server built with `kthw build`, run with `kthw run -d`, and
//! a second container stopped with `kthw stop`.
//!
//! The lab sheet is `labs/04-runtime/README.md`. The learner works as a Docker user
//! would; each stage then looks under the hood at real state, never at what was typed:
//! the image in the store, the container's process tree in `/proc` (its init's parent
//! is its supervisor), its cgroup's memory file, its veth's `master` in `/sys/class/net`,
//! the DNAT rule in `iptables -t nat -S`, a page fetched over loopback, the `json-file`
//! log, a file that `kthw exec` wrote inside the container, and the exit code the
//! supervisor recorded after `kthw stop`.
//!
//! What graders elsewhere do differently: Docker courses check `docker ps` and `curl`;
//! nobody looks at the shim's children, the cgroup file or the NAT table, which is where
//! a container actually is.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};

use kthw_cgroups::{Cgroup, Version, cgroup::process_cgroup};
use kthw_lab::host::CgroupLayout;
use kthw_lab::lab::{Context, Failure, Lab, Outcome, Stage, http_get};
use kthw_rootfs::Store;

use crate::engine::log::{Stream, parse_line};
use crate::engine::record::{Dir, Record, Status, read_json};
use crate::network::Endpoint;

/// The base image the learner imports (step 1).
pub const BASE: &str = "lab04/busybox:latest";
/// The image the learner builds (step 2).
pub const IMAGE: &str = "lab04/web:latest";
/// The web server container (step 3).
pub const CONTAINER: &str = "lab04";
/// The container the learner stops (step 9).
pub const STOPPED: &str = "lab04-stop";
/// The memory limit the sheet asks for: 64 MiB.
pub const MEMORY: u64 = 64 << 20;
/// The page the build copies in.
pub const PAGE: &str = "hello from lab 04";
/// The file `kthw exec` writes inside the container (step 8).
pub const PS_FILE: &str = "www/ps.txt";

// ANCHOR: lab
/// Lab 4's stages, in the order of the lab sheet.
pub fn lab() -> Lab {
    Lab {
        id: "04",
        title: "A container runtime of our own",
        sheet: "labs/04-runtime/README.md",
        stages: vec![
            Stage::new("lab04/web is built from the Dockerfile", "ch04-runtime.md#build", built),
            Stage::new("container lab04 runs under its supervisor", "ch04-runtime.md#the-supervisor", supervised),
            Stage::new("its cgroup limits memory to 64M", "ch04-runtime.md#create", memory_limit),
            Stage::new("its veth is on the bridge", "ch04-runtime.md#networking", veth),
            Stage::new("its port is published with a DNAT rule", "ch04-runtime.md#publishing-ports", dnat),
            Stage::new("the page answers on 127.0.0.1", "ch04-runtime.md#publishing-ports", page),
            Stage::new("its log has the server's output", "ch04-runtime.md#logs", logs),
            Stage::new("kthw exec ran inside the container", "ch04-runtime.md#exec", exec),
            Stage::new("lab04-stop was stopped, its exit code recorded", "ch04-runtime.md#stop", stopped),
        ],
    }
}
// ANCHOR_END: lab

/// The folder and record of the container named `name`.
fn find(ctx: &Context, name: &str, fix: &str) -> Result<(Dir, Record), Failure> {
    let containers = ctx.paths.containers();
    let entries = fs::read_dir(&containers).map_err(|e| {
        Failure::new(format!("cannot read {}: {e}", containers.display()), format!("run as root; {fix}"))
    })?;
    for entry in entries.flatten() {
        let dir = Dir::new(&containers, &entry.file_name().to_string_lossy());
        if let Ok(record) = dir.load()
            && record.name == name
        {
            return Ok((dir, record));
        }
    }
    Err(Failure::new(format!("no container is named {name} (`kthw ps -a` lists them)"), fix))
}

const RUN: &str = "step 3: `sudo kthw run -d --name lab04 --memory 64M -p 8004:80 lab04/web`";

/// The web server container and its init's pid; it must be running.
fn running(ctx: &Context) -> Result<(Dir, Record, i32), Failure> {
    let (dir, record) = find(ctx, CONTAINER, RUN)?;
    match dir.status() {
        Status::Running { pid, .. } => Ok((dir, record, pid)),
        Status::Exited { code, .. } => Err(Failure::new(
            format!("lab04 exited with code {code}"),
            format!("`sudo kthw logs lab04` says why; then `sudo kthw rm lab04` and {RUN}"),
        )),
        Status::Created => Err(Failure::new("lab04 is created but not running", RUN)),
        Status::SupervisorDied { supervisor, .. } => Err(Failure::new(
            format!("the supervisor of lab04 (pid {supervisor}) is gone"),
            format!("`sudo kthw rm -f lab04`, then {RUN}"),
        )),
    }
}

fn built(ctx: &Context) -> Outcome {
    let store = Store::open(ctx.paths.images()).map_err(|e| Failure::new(e.to_string(), "run the checker as root"))?;
    let base = store.image(BASE).map_err(|e| {
        Failure::new(e.to_string(), "step 1: import /bin/busybox as lab04/busybox with `kthw image import`")
    })?;
    let image = store
        .image(IMAGE)
        .map_err(|e| Failure::new(e.to_string(), "step 2: `sudo kthw build -t lab04/web $LAB/04-web`"))?;
    let (base_layers, layers) = (base.diff_ids().len(), image.diff_ids().len());
    if layers != base_layers + 2 {
        return Err(Failure::new(
            format!("lab04/web has {layers} layer(s); lab04/busybox has {base_layers}"),
            "the Dockerfile of step 2 makes two layers on top of the base: one for RUN, one for COPY",
        ));
    }
    let dirs = store.layer_dirs(&image).map_err(|e| Failure::new(e.to_string(), "build again"))?;
    let page = dirs.iter().rev().find_map(|d| fs::read_to_string(d.join("www/index.html")).ok());
    if !page.as_deref().is_some_and(|p| p.contains(PAGE)) {
        return Err(Failure::new(
            "no layer of lab04/web has www/index.html with the lab's page",
            format!("write `{PAGE}` into $LAB/04-web/index.html and build again"),
        ));
    }
    let cmd = image.config.config().as_ref().and_then(|c| c.cmd().clone()).unwrap_or_default();
    if cmd.first().map(String::as_str) != Some("httpd") {
        return Err(Failure::new(format!("the image's command is {cmd:?}"), "the Dockerfile's CMD runs httpd"));
    }
    Ok(format!("{layers} layers (busybox, RUN, COPY); CMD {}", cmd.join(" ")))
}

/// Field `n` (1-based, as in `man proc`) of `/proc/PID/stat`, after the command name.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n - 3).map(str::to_string)
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_string()).unwrap_or_default()
}

fn supervised(ctx: &Context) -> Outcome {
    let (dir, _, pid) = running(ctx)?;
    let supervisor = dir
        .supervisor()
        .ok_or_else(|| Failure::new("lab04 has no supervisor.pid", format!("`sudo kthw rm -f lab04`, then {RUN}")))?;
    let parent: i32 = stat_field(pid, 4).and_then(|p| p.parse().ok()).unwrap_or(0);
    if parent != supervisor.pid {
        return Err(Failure::new(
            format!(
                "the parent of the container's init (pid {pid}) is pid {parent}, not the supervisor {}",
                supervisor.pid
            ),
            "start the container with `kthw run -d`, which forks the supervisor; do not start it by hand",
        ));
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let nspid: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    if nspid.len() < 2 || nspid.last() != Some(&"1") {
        return Err(Failure::new(
            format!("the init's NSpid is {nspid:?}: it is not PID 1 of a pid namespace of its own"),
            "the container's spec must ask for a new pid namespace",
        ));
    }
    Ok(format!(
        "{} (pid {pid}, PID 1 in its namespace) is a child of its supervisor, {} (pid {})",
        comm(pid),
        comm(supervisor.pid),
        supervisor.pid
    ))
}

fn memory_limit(ctx: &Context) -> Outcome {
    let (_, _, pid) = running(ctx)?;
    let layout = CgroupLayout::detect().map_err(|e| Failure::new(e.to_string(), "mount the cgroup file systems"))?;
    let version = match layout.hierarchy_for("memory") {
        Some(m) if m.version == 2 => Version::V2,
        Some(_) => Version::V1,
        None => return Err(Failure::new("this machine has no memory controller", "use the lab VM")),
    };
    let path = process_cgroup(pid as u32, version, "memory")
        .ok_or_else(|| Failure::new(format!("cannot read /proc/{pid}/cgroup"), "is the container still running?"))?;
    let cg = Cgroup::open(&layout, &path).map_err(|e| Failure::new(e.to_string(), "restart the container"))?;
    let file = match version {
        Version::V1 => "memory.limit_in_bytes",
        Version::V2 => "memory.max",
    };
    let value = cg.read("memory", file).unwrap_or_default();
    if value.parse::<u64>().ok() != Some(MEMORY) {
        return Err(Failure::new(
            format!("{file} of {path} is {value:?}, not {MEMORY}"),
            format!("run the container with `--memory 64M`: `sudo kthw rm -f lab04`, then {RUN}"),
        ));
    }
    Ok(format!("{file} = {value} in cgroup {path}"))
}

/// What the supervisor recorded of the container's network (`network.json`).
fn endpoint(dir: &Dir) -> Result<Endpoint, Failure> {
    read_json::<Endpoint>(&dir.network())
        .map_err(|e| Failure::new(e.to_string(), "remove and run the container again"))?
        .ok_or_else(|| {
            Failure::new(
                format!("{} is missing: the container has no network", dir.network().display()),
                "run it without `--network none`",
            )
        })
}

fn veth(ctx: &Context) -> Outcome {
    let (dir, _, pid) = running(ctx)?;
    let ep = endpoint(&dir)?;
    let master = format!("/sys/class/net/{}/master", ep.host_veth);
    let bridge = fs::read_link(&master)
        .ok()
        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok_or_else(|| {
            Failure::new(
                format!("{master} does not exist: the host end {} is not on a bridge", ep.host_veth),
                "`ip link show master kthw0` lists the bridge's ports; remove and run the container again",
            )
        })?;
    if bridge != ctx.paths.name("0") {
        return Err(Failure::new(
            format!("{} is on {bridge}, not on {}", ep.host_veth, ctx.paths.name("0")),
            "something else moved the veth; remove and run the container again",
        ));
    }
    let dev = fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    if !dev.lines().any(|l| l.trim_start().starts_with("eth0:")) {
        return Err(Failure::new(
            "the container's network namespace has no eth0",
            "the attach between create and start failed; read the supervisor.log in the container's folder",
        ));
    }
    Ok(format!("{} is on bridge {bridge}; the container's end is eth0 with {}/{}", ep.host_veth, ep.ip, ep.prefix_len))
}

/// The host port that leads to port 80 of the container, from its record.
fn published_port(record: &Record) -> Result<u16, Failure> {
    record
        .ports
        .iter()
        .find(|p| p.container_port == 80 && p.protocol == crate::network::Protocol::Tcp)
        .map(|p| p.host_port)
        .ok_or_else(|| {
            Failure::new("lab04 publishes no port to its port 80", format!("`sudo kthw rm -f lab04`, then {RUN}"))
        })
}

/// `iptables -t nat -S CHAIN`, or why not.
fn nat_rules(chain: &str) -> Result<Vec<Vec<String>>, Failure> {
    let out = std::process::Command::new("iptables")
        .args(["-w", "5", "-t", "nat", "-S", chain])
        .output()
        .map_err(|e| Failure::new(format!("cannot run iptables: {e}"), "install iptables"))?;
    if !out.status.success() {
        return Err(Failure::new(
            format!("`iptables -t nat -S {chain}`: {}", String::from_utf8_lossy(&out.stderr).trim()),
            "the chain is made by the first `kthw run` with a network; run the container again",
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(crate::network::iptables::split_words).collect())
}

fn dnat(ctx: &Context) -> Outcome {
    let (dir, record, _) = running(ctx)?;
    let ep = endpoint(&dir)?;
    let port = published_port(&record)?;
    let chain = ctx.paths.chain("PORTS");
    let tag = format!("container={}", record.id);
    let to = format!("{}:80", ep.ip);
    let has = |words: &[String], a: &str, b: &str| words.windows(2).any(|w| w[0] == a && w[1] == b);
    let rules = nat_rules(&chain)?;
    let found = rules.iter().any(|w| {
        has(w, "--comment", &tag)
            && has(w, "-j", "DNAT")
            && has(w, "--dport", &port.to_string())
            && has(w, "--to-destination", &to)
    });
    if !found {
        return Err(Failure::new(
            format!("{chain} has no DNAT rule from port {port} to {to} for lab04 ({} rules)", rules.len()),
            "`kthw run -p 8004:80` adds it; remove and run the container again",
        ));
    }
    for (from, whose) in [("PREROUTING", "other machines"), ("OUTPUT", "this host")] {
        if !nat_rules(from)?.iter().any(|w| has(w, "-j", &chain)) {
            return Err(Failure::new(
                format!("the nat {from} chain does not jump to {chain}: connections from {whose} are not redirected"),
                "run the container again (the network adds the jump); `kthw reset` removes stale rules",
            ));
        }
    }
    Ok(format!("{chain}: DNAT --dport {port} --to-destination {to}; PREROUTING and OUTPUT jump to it"))
}

fn page(ctx: &Context) -> Outcome {
    let (_, record, _) = running(ctx)?;
    let port = published_port(&record)?;
    let (status, body) = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), "/").map_err(|e| {
        Failure::new(
            e,
            "check the DNAT rule, `sysctl net.ipv4.conf.kthw0.route_localnet` (must be 1) and the MASQUERADE rule for 127.0.0.0/8",
        )
    })?;
    if !status.contains(" 200") || !body.contains(PAGE) {
        return Err(Failure::new(
            format!("GET / on 127.0.0.1:{port} answered {status:?} with {:?}", body.trim()),
            "the image's /www/index.html should hold the lab's page; build it again (step 2)",
        ));
    }
    Ok(format!("GET http://127.0.0.1:{port}/ answered {status:?}: {}", body.trim()))
}

fn logs(ctx: &Context) -> Outcome {
    let (dir, record, _) = running(ctx)?;
    let text = fs::read_to_string(dir.log())
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", dir.log().display()), "the supervisor writes it"))?;
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry = parse_line(line).map_err(|e| {
            Failure::new(
                format!("line {} of log.json is not a json-file record: {e}", n + 1),
                "only the supervisor should write log.json",
            )
        })?;
        entries.push(entry);
    }
    let requests = entries.iter().filter(|e| e.stream == Stream::Stderr && e.log.contains("response:200")).count();
    if requests == 0 {
        return Err(Failure::new(
            format!("log.json has {} record(s), none from stderr with `response:200`", entries.len()),
            format!(
                "fetch the page (`curl http://127.0.0.1:{}/`); `httpd -v` logs each request",
                published_port(&record)?
            ),
        ));
    }
    // The counts depend on how often the page was fetched; the evidence is that there are some.
    Ok("log.json is json-file records; httpd logged the requests on stderr (`response:200`)".into())
}

fn exec(ctx: &Context) -> Outcome {
    let (dir, _, _) = running(ctx)?;
    let path = dir.rootfs().join(PS_FILE);
    let fix = "step 8: `sudo kthw exec lab04 sh -c 'ps > /www/ps.txt'`";
    let text =
        fs::read_to_string(&path).map_err(|_| Failure::new(format!("{PS_FILE} is not in the container"), fix))?;
    let processes: Vec<&str> = text.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
    let pid1 = processes.iter().find(|l| l.split_whitespace().next() == Some("1"));
    if !pid1.is_some_and(|l| l.contains("httpd")) {
        return Err(Failure::new(
            format!("{PS_FILE} does not list httpd as PID 1: {:?}", text.lines().take(3).collect::<Vec<_>>()),
            format!("{fix}; the ps must run inside the container, through kthw exec"),
        ));
    }
    if processes.iter().any(|l| l.contains("kthw")) {
        return Err(Failure::new(
            format!("{PS_FILE} lists a kthw process: that ps ran in the host's pid namespace"),
            fix,
        ));
    }
    Ok(format!("{PS_FILE} lists httpd as PID 1 and no process of the host: exec joined the pid namespace"))
}

fn stopped(ctx: &Context) -> Outcome {
    let fix =
        "step 9: `sudo kthw run -d --name lab04-stop lab04/busybox sleep 3600`, then `sudo kthw stop -t 2 lab04-stop`";
    let (dir, record) = find(ctx, STOPPED, fix)?;
    let code = match dir.status() {
        Status::Exited { code, .. } => code,
        other => return Err(Failure::new(format!("lab04-stop is {}", other.name()), fix)),
    };
    let why = match code {
        137 => "SIGKILL after the grace period: sleep as PID 1 ignores SIGTERM",
        143 => "SIGTERM",
        _ => {
            return Err(Failure::new(
                format!("lab04-stop exited with code {code}, not 137 or 143"),
                format!("it ended on its own, not by `kthw stop`: {fix}"),
            ));
        }
    };
    // What the supervisor tears down when the container ends: the network's record of
    // the container (its address and veth) and its cgroup.
    let endpoint = ctx.paths.state.join("network/endpoints").join(format!("{}.json", record.id));
    if endpoint.exists() {
        return Err(Failure::new(
            format!("lab04-stop has exited, but the network still holds {}", endpoint.display()),
            "the supervisor detaches the network after the exit; read supervisor.log in its folder",
        ));
    }
    let cgroup = format!("/{}/{}", ctx.paths.cgroup_root(), record.id);
    if let Ok(layout) = CgroupLayout::detect()
        && Cgroup::open(&layout, &cgroup).is_ok()
    {
        return Err(Failure::new(
            format!("lab04-stop has exited, but its cgroup {cgroup} is still there"),
            "the supervisor deletes the container (and its cgroup) after the exit; read supervisor.log",
        ));
    }
    Ok(format!("exit code {code} ({why}); its address, veth and cgroup are gone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The fields of /proc/PID/stat are counted after the command name, which may hold
    // spaces and parentheses: field 4 of our own process is our parent's pid.
    #[test]
    fn stat_field_reads_the_parent_pid() {
        let me = std::process::id() as i32;
        let parent = std::os::unix::process::parent_id().to_string();
        assert_eq!(stat_field(me, 4).as_deref(), Some(parent.as_str()));
        assert_eq!(stat_field(i32::MAX, 4), None);
    }

    // Every stage points at a section of chapter 4, and the lab's sheet exists.
    #[test]
    fn stages_point_at_chapter_4() {
        let lab = lab();
        assert!(lab.stages.iter().all(|s| s.book.starts_with("ch04-runtime.md#")));
        let sheet = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(lab.sheet);
        assert!(sheet.is_file(), "{}", sheet.display());
    }
}
