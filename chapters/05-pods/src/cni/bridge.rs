//! `kthw-bridge`: our own CNI plugin, a bridge with host-local-style addresses in one
//! binary (`src/bin/kthw-cni-bridge.rs` only reads stdin and the environment and calls
//! [`run`]).
//!
//! It makes what chapter 4's engine makes for a container, but driven by the CNI
//! contract instead of by `kthw run`: the bridge, a veth pair whose inside end is
//! `CNI_IFNAME` in the namespace at `CNI_NETNS`, an address, a default route. It reuses
//! chapter 4's parts: [`kthw_runtime::network::bridge::ensure`] for the bridge and its
//! gateway address, and [`kthw_runtime::network::ipam`] for the flock'ed allocation
//! table, one per network under `dataDir/NAME/`.
//!
//! ```json
//! { "cniVersion": "1.0.0", "name": "pods", "type": "kthw-bridge",
//!   "bridge": "kthwcni0", "subnet": "10.200.0.0/24",
//!   "vethPrefix": "kthwc", "dataDir": "/var/lib/kthw/cni/networks" }
//! ```
//!
//! `bridge` and `subnet` are required; the gateway is the subnet's first address, on
//! the bridge. `vethPrefix` (default: the bridge's name) names the host ends
//! `<vethPrefix><N>` for the address `.N`, so they carry the instance's prefix and
//! `kthw reset` finds them. `dataDir` defaults to host-local's `/var/lib/cni/networks`.
//!
//! What Debian's `bridge` + `host-local` do differently: two binaries (bridge runs the
//! IPAM plugin named in `ipam.type` itself, through CNI_PATH); netlink instead of `ip`;
//! random veth names (`veth1a2b3c4d`); `ipMasq` (NAT to the outside), hairpin mode,
//! VLANs, IPv6, several ranges; host-local hands addresses out round-robin and keeps one
//! file per address. Ours gives the lowest free address and keeps one JSON table.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use kthw_runtime::network::{Subnet, bridge, ipam};
use serde_json::{Value, json};

use super::types::{CniResult, Interface, IpConfig, PluginError, Route, VersionInfo, codes};

/// The plugin's `type`: the name its binary must have in the CNI bin dir.
pub const TYPE: &str = "kthw-bridge";

/// The specification versions we speak (our results are the same in both).
pub const VERSIONS: [&str; 2] = ["0.4.0", "1.0.0"];

/// host-local's default, used when the config has no `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// Linux's limit for interface names (IFNAMSIZ, 16, with the NUL).
const MAX_IFNAME: usize = 15;

type PResult<T> = std::result::Result<T, PluginError>;

fn error(code: u32, msg: impl Into<String>, details: impl Into<String>) -> PluginError {
    PluginError { cni_version: "1.0.0".into(), code, msg: msg.into(), details: details.into() }
}

impl From<kthw_runtime::Error> for PluginError {
    fn from(e: kthw_runtime::Error) -> PluginError {
        error(codes::PLUGIN_FAILED, e.to_string(), "")
    }
}

/// Our part of the config on stdin.
#[derive(Debug, Clone, PartialEq)]
pub struct Conf {
    pub cni_version: String,
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub veth_prefix: String,
    pub data_dir: PathBuf,
}

/// The `CNI_*` variables of one call.
#[derive(Debug, Clone, PartialEq)]
struct Args {
    container_id: String,
    netns: String,
    ifname: String,
}

/// Parses and checks the config; the error names the field.
///
/// # Errors
/// [`codes::DECODE_FAILURE`] for bad JSON, [`codes::INVALID_CONFIG`] for a missing or
/// wrong field, [`codes::INCOMPATIBLE_VERSION`] for a `cniVersion` we do not speak.
pub fn parse_conf(stdin: &str) -> PResult<Conf> {
    let v: Value = serde_json::from_str(stdin)
        .map_err(|e| error(codes::DECODE_FAILURE, format!("the config on stdin is not JSON: {e}"), ""))?;
    let field = |name: &str, hint: &str| -> PResult<Option<String>> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(other) => Err(error(
                codes::INVALID_CONFIG,
                format!("field `{name}` must be a non-empty string, not {other}; {hint}"),
                "",
            )),
        }
    };
    let required = |name: &str, hint: &str| -> PResult<String> {
        field(name, hint)?.ok_or_else(|| error(codes::INVALID_CONFIG, format!("field `{name}` is missing; {hint}"), ""))
    };
    let cni_version = required("cniVersion", "set it to \"1.0.0\"")?;
    if !VERSIONS.contains(&cni_version.as_str()) {
        return Err(error(
            codes::INCOMPATIBLE_VERSION,
            format!("cniVersion {cni_version:?} is not supported; use one of {VERSIONS:?}"),
            "",
        ));
    }
    let name = required("name", "the network's name")?;
    let bridge = required("bridge", "the bridge to create, e.g. \"kthwcni0\"")?;
    let subnet_text = required("subnet", "the pods' addresses, e.g. \"10.200.0.0/24\"")?;
    let subnet: Subnet = subnet_text
        .parse()
        .ok()
        .filter(|s: &Subnet| s.prefix_len <= 30 && s.addr.to_string() == subnet_text.split('/').next().unwrap_or(""))
        .ok_or_else(|| {
            error(
                codes::INVALID_CONFIG,
                format!("field `subnet` is {subnet_text:?}; give a network address with a prefix of /30 or shorter, e.g. \"10.200.0.0/24\""),
                "",
            )
        })?;
    let veth_prefix = field("vethPrefix", "the start of the host ends' names")?.unwrap_or_else(|| bridge.clone());
    for (what, value, max) in [("bridge", &bridge, MAX_IFNAME), ("vethPrefix", &veth_prefix, MAX_IFNAME - 3)] {
        if value.len() > max || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Err(error(
                codes::INVALID_CONFIG,
                format!("field `{what}` is {value:?}; use at most {max} letters, digits, '_', '.' or '-'"),
                "",
            ));
        }
    }
    let data_dir = field("dataDir", "a folder for the address table")?.unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    Ok(Conf { cni_version, name, bridge, subnet, veth_prefix, data_dir: data_dir.into() })
}

/// Handles one call: `env` looks up the `CNI_*` variables, `stdin` is the config.
/// Returns what to print on stdout (nothing for DEL).
///
/// # Errors
/// The error JSON to print, with the specification's code.
pub fn run(env: &dyn Fn(&str) -> Option<String>, stdin: &str) -> PResult<Option<Value>> {
    let command = env("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        let info = VersionInfo {
            cni_version: "1.0.0".into(),
            supported_versions: VERSIONS.iter().map(|v| v.to_string()).collect(),
        };
        return Ok(Some(serde_json::to_value(info).unwrap_or_default()));
    }
    let conf = parse_conf(stdin)?;
    let var = |name: &str| {
        env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            error(codes::INVALID_ENV, format!("the environment variable {name} is missing"), "a runtime sets it")
        })
    };
    let args = Args {
        container_id: var("CNI_CONTAINERID")?,
        ifname: var("CNI_IFNAME")?,
        // DEL must work after the namespace is gone, when the runtime may pass none.
        netns: if command == "DEL" { env("CNI_NETNS").unwrap_or_default() } else { var("CNI_NETNS")? },
    };
    // It goes into `ip` command lines (and a batch of them): an interface name only.
    if args.ifname.len() > MAX_IFNAME || !args.ifname.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(error(
            codes::INVALID_ENV,
            format!("CNI_IFNAME is {:?}; use at most {MAX_IFNAME} letters, digits, '_', '.' or '-'", args.ifname),
            "",
        ));
    }
    let prev = serde_json::from_str::<Value>(stdin).ok().and_then(|v| v.get("prevResult").cloned());
    match command.as_str() {
        "ADD" => add(&conf, &args).map(Some),
        "DEL" => del(&conf, &args).map(|()| None),
        "CHECK" => check(&conf, &args, prev.as_ref()).map(|()| None),
        other => {
            Err(error(codes::INVALID_ENV, format!("CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, VERSION"), ""))
        }
    }
}

/// The allocation table of the network: `dataDir/NAME/ipam.json`.
fn table(conf: &Conf) -> PResult<ipam::Ipam> {
    Ok(ipam::Ipam::open(&conf.data_dir.join(&conf.name))?)
}

/// The key of an allocation: the specification's pair (container, interface).
fn key(args: &Args) -> String {
    format!("{}/{}", args.container_id, args.ifname)
}

fn veth_name(conf: &Conf, ip: Ipv4Addr) -> String {
    format!("{}{}", conf.veth_prefix, conf.subnet.host_number(ip))
}

// ANCHOR: plugin_add
/// ADD: under the table's lock, ensure the bridge, take an address, make the veth pair
/// from inside the namespace (its peer goes to ours, the host's), then address and
/// route the inside end. Undone if a step fails.
fn add(conf: &Conf, args: &Args) -> PResult<Value> {
    let ipam = table(conf)?;
    let mut locked = ipam.lock()?;
    let subnet = locked.subnet_or(|| Ok(conf.subnet))?;
    if subnet != conf.subnet {
        return Err(error(
            codes::INVALID_CONFIG,
            format!("field `subnet` is {}, but {} holds addresses of {subnet}", conf.subnet, ipam.path().display()),
            "DEL the containers of the old subnet first, or use another dataDir",
        ));
    }
    // The first ADD makes the bridge; later ones find it up and skip `ensure`'s two `ip`
    // runs (each `ip` costs about a millisecond, see `kthw bench pod`). Debian's bridge
    // plugin checks the bridge and its address on every ADD, but over netlink, where a
    // check costs microseconds. A gateway address removed by hand is not put back then:
    // `kthw reset` starts the network over.
    if !is_up(&conf.bridge) {
        bridge::ensure(&conf.bridge, conf.subnet)?;
    }
    let ip = locked.allocate(&key(args))?;
    let veth = veth_name(conf, ip);
    let host_pid = std::process::id().to_string();
    let cidr = format!("{ip}/{}", conf.subnet.prefix_len);
    let gateway = conf.subnet.gateway().to_string();
    let made = (|| {
        bridge::delete(&veth)?; // a leftover of a crash: its address was free
        // All the work inside the namespace in one `ip -batch`: one program started
        // instead of five (this was two thirds of ADD's time). Its last line's JSON
        // gives the inside end's MAC address for the result.
        let ifname = &args.ifname;
        let shown = inside_batch(
            &args.netns,
            &[
                format!("link add {ifname} type veth peer name {veth} netns {host_pid}"),
                format!("addr add {cidr} dev {ifname}"),
                format!("link set {ifname} up"),
                "link set lo up".into(),
                format!("route add default via {gateway}"),
                format!("link show dev {ifname}"),
            ],
        )?;
        ip_cmd(&["link", "set", &veth, "master", &conf.bridge, "up"])?;
        let mac = serde_json::from_str::<Value>(&shown)
            .ok()
            .and_then(|v| Some(v.pointer("/0/address")?.as_str()?.to_string()));
        let result = CniResult {
            cni_version: conf.cni_version.clone(),
            interfaces: vec![
                Interface { name: conf.bridge.clone(), mac: host_mac(&conf.bridge), sandbox: None },
                Interface { name: veth.clone(), mac: host_mac(&veth), sandbox: None },
                Interface { name: args.ifname.clone(), mac, sandbox: Some(args.netns.clone()) },
            ],
            ips: vec![IpConfig { address: cidr.clone(), gateway: Some(gateway.clone()), interface: Some(2) }],
            routes: vec![Route { dst: "0.0.0.0/0".into(), gw: Some(gateway.clone()) }],
            dns: Some(json!({})),
        };
        serde_json::to_value(result).map_err(|e| error(codes::PLUGIN_FAILED, e.to_string(), ""))
    })();
    if made.is_err() {
        let _ = bridge::delete(&veth);
        let _ = locked.release(&key(args));
    }
    made
}
// ANCHOR_END: plugin_add

/// DEL: delete the host end (the kernel deletes its peer inside) and free the address.
/// Nothing there is no error: DEL may be called twice, or after a failed ADD.
fn del(conf: &Conf, args: &Args) -> PResult<()> {
    let ipam = table(conf)?;
    let mut locked = ipam.lock()?;
    let held: Vec<Ipv4Addr> =
        locked.table().allocated.iter().filter(|(_, k)| **k == key(args)).map(|(ip, _)| *ip).collect();
    for ip in held {
        bridge::delete(&veth_name(conf, ip))?;
    }
    locked.release(&key(args))?;
    Ok(())
}

/// CHECK: the address is still ours (and the one ADD returned), the host end is on the
/// bridge, and inside the namespace the interface has the address and the default route.
fn check(conf: &Conf, args: &Args, prev: Option<&Value>) -> PResult<()> {
    let ipam = table(conf)?;
    let locked = ipam.lock()?;
    let ip = locked.table().allocated.iter().find(|(_, k)| **k == key(args)).map(|(ip, _)| *ip).ok_or_else(|| {
        error(codes::UNKNOWN_CONTAINER, format!("container {} has no address on network {}", key(args), conf.name), "")
    })?;
    let wrong = |msg: String| error(codes::PLUGIN_FAILED, msg, "DEL and ADD the container again");
    if let Some(prev) = prev {
        let prev: CniResult = serde_json::from_value(prev.clone())
            .map_err(|e| error(codes::DECODE_FAILURE, format!("prevResult is not a CNI result: {e}"), ""))?;
        if prev.ipv4().map(|(a, _)| a) != Some(ip) {
            return Err(wrong(format!("prevResult says {:?}, the address table says {ip}", prev.ipv4())));
        }
    }
    let veth = veth_name(conf, ip);
    let master = std::fs::read_link(Path::new("/sys/class/net").join(&veth).join("master")).ok();
    if master.as_ref().and_then(|m| m.file_name()).and_then(|n| n.to_str()) != Some(conf.bridge.as_str()) {
        return Err(wrong(format!("the host end {veth} is missing or not on bridge {}", conf.bridge)));
    }
    let addrs: Value = serde_json::from_str(&inside(&args.netns, &["-j", "-4", "addr", "show", "dev", &args.ifname])?)
        .unwrap_or_default();
    let has_ip = addrs.pointer("/0/addr_info").and_then(Value::as_array).is_some_and(|list| {
        list.iter().any(|a| a["local"] == json!(ip.to_string()) && a["prefixlen"] == json!(conf.subnet.prefix_len))
    });
    if !has_ip {
        return Err(wrong(format!("{} in {} does not have {ip}/{}", args.ifname, args.netns, conf.subnet.prefix_len)));
    }
    let routes: Value =
        serde_json::from_str(&inside(&args.netns, &["-j", "-4", "route", "show", "default"])?).unwrap_or_default();
    let gateway = json!(conf.subnet.gateway().to_string());
    if !routes.as_array().is_some_and(|r| r.iter().any(|r| r["gateway"] == gateway)) {
        return Err(wrong(format!("{} has no default route via {gateway}", args.netns)));
    }
    Ok(())
}

/// `ip ARGS...` on the host.
fn ip_cmd(args: &[&str]) -> PResult<String> {
    command("ip", args)
}

/// `ip ARGS...` inside the namespace at `netns` (`ip -n` takes only names under
/// `/run/netns`; CNI_NETNS may be any path). The child joins the namespace itself,
/// between fork and exec: what `nsenter --net=PATH ip ...` does, minus starting nsenter.
fn inside(netns: &str, args: &[&str]) -> PResult<String> {
    in_netns(netns, "ip", args, None)
}

/// `ip -j -batch -` inside the namespace at `netns`, one command per line (stops at the
/// first that fails and says which); the output is the JSON of the `show` commands.
fn inside_batch(netns: &str, lines: &[String]) -> PResult<String> {
    in_netns(netns, "ip", &["-j", "-batch", "-"], Some(&lines.join("\n")))
}

fn in_netns(netns: &str, program: &str, args: &[&str], stdin: Option<&str>) -> PResult<String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let ns = std::fs::File::open(netns).map_err(|e| {
        error(codes::PLUGIN_FAILED, format!("cannot open the network namespace {netns}"), e.to_string())
    })?;
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(program);
    // SAFETY: setns is a plain system call, safe between fork and exec; `ns` stays open
    // until the child has been spawned.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let line = format!("nsenter --net={netns} {program} {}", args.join(" "));
    let out = run_command(cmd.args(args), &line, stdin);
    drop(ns);
    out
}

fn command(program: &str, args: &[&str]) -> PResult<String> {
    let line = format!("{program} {}", args.join(" "));
    run_command(Command::new(program).args(args), &line, None)
}

/// Runs `cmd` (shown as `line` in errors) with `stdin`, and returns its stdout.
fn run_command(cmd: &mut Command, line: &str, stdin: Option<&str>) -> PResult<String> {
    use std::io::Write as _;
    use std::process::Stdio;
    let cannot = |e: std::io::Error| error(codes::PLUGIN_FAILED, format!("cannot run `{line}`"), e.to_string());
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(cannot)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(cannot)?;
    }
    let out = child.wait_with_output().map_err(cannot)?;
    let line = match stdin {
        Some(text) => format!("{line} <<< {:?}", text),
        None => line.to_string(),
    };
    if !out.status.success() {
        return Err(error(
            codes::PLUGIN_FAILED,
            format!("`{line}` failed ({})", out.status),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn host_mac(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("address")).ok()?;
    Some(text.trim().to_string())
}

/// Whether interface `name` exists and is up (`IFF_UP` in its sysfs `flags`).
fn is_up(name: &str) -> bool {
    let flags = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("flags")).unwrap_or_default();
    u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & libc::IFF_UP as u32 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: Value) -> PResult<Conf> {
        parse_conf(&json.to_string())
    }

    // A full config parses; defaults: vethPrefix is the bridge, dataDir is host-local's.
    #[test]
    fn config_parses_with_defaults() {
        let c = conf(
            json!({"cniVersion":"1.0.0","name":"pods","type":"kthw-bridge","bridge":"kcni0","subnet":"10.200.3.0/24"}),
        )
        .unwrap();
        assert_eq!(c.subnet.to_string(), "10.200.3.0/24");
        assert_eq!((c.veth_prefix.as_str(), c.data_dir.to_str()), ("kcni0", Some(DEFAULT_DATA_DIR)));
    }

    // A bad config gives code 7 and a message naming the field.
    #[test]
    fn bad_config_names_the_field() {
        let base =
            json!({"cniVersion":"1.0.0","name":"pods","type":"kthw-bridge","bridge":"kcni0","subnet":"10.200.3.0/24"});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            conf(c).unwrap_err()
        };
        let e = with("subnet", Value::Null);
        assert_eq!(e.code, codes::INVALID_CONFIG);
        assert!(e.msg.contains("field `subnet` is missing"), "{}", e.msg);
        assert!(with("subnet", json!("10.200.3.7/24")).msg.contains("field `subnet` is \"10.200.3.7/24\""));
        assert!(with("bridge", json!(7)).msg.contains("field `bridge` must be a non-empty string"));
        assert!(with("vethPrefix", json!("much-too-long-prefix")).msg.contains("field `vethPrefix`"));
        let e = with("cniVersion", json!("0.1.0"));
        assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
        assert_eq!(parse_conf("{").unwrap_err().code, codes::DECODE_FAILURE);
    }

    // VERSION needs no config; a missing CNI_* variable is code 4 and named.
    #[test]
    fn version_and_missing_env() {
        let env = |k: &str| (k == "CNI_COMMAND").then(|| "VERSION".to_string());
        let v = run(&env, "{}").unwrap().unwrap();
        assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0"]));
        let env = |k: &str| (k == "CNI_COMMAND").then(|| "ADD".to_string());
        let stdin =
            json!({"cniVersion":"1.0.0","name":"pods","type":"kthw-bridge","bridge":"kcni0","subnet":"10.200.3.0/24"});
        let e = run(&env, &stdin.to_string()).unwrap_err();
        assert_eq!(e.code, codes::INVALID_ENV);
        assert!(e.msg.contains("CNI_CONTAINERID"), "{}", e.msg);
    }
}
