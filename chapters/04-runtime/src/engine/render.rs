//! What `ps`, `inspect`, `system df` and `system prune` print.
//!
//! `ps` is Docker's table, column for column; `inspect` is a subset of Docker's JSON
//! with the same field names, so a reader's `jq '.[0].State.ExitCode'` habits carry
//! over. The functions take the current time as an argument, so their output is the
//! same in every test run.
//!
//! What Docker does differently: `docker ps --format` takes a Go template; `inspect`
//! has many more fields (restart policy, log config, health, seccomp, ...).

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::record::{Dir, Record, Status, parse_time};
use super::{Engine, Summary};

/// A duration as Docker says it (`units.HumanDuration`): "Less than a second",
/// "5 seconds", "About a minute", "3 hours", "2 weeks".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h) = (s / 60, (d.as_secs_f64() / 3600.0).round() as u64);
    match () {
        _ if d < Duration::from_secs(1) => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

fn since(t: &str, now: SystemTime) -> String {
    let d = parse_time(t).and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
    human_duration(d)
}

/// The STATUS column: `Up 5 seconds`, `Exited (137) 2 minutes ago`, `Created`, or the
/// news that the supervisor died.
pub fn status_text(status: &Status, now: SystemTime) -> String {
    match status {
        Status::Created => "Created".into(),
        Status::Running { started_at, .. } => format!("Up {}", since(started_at, now)),
        Status::Exited { code, finished_at } => format!("Exited ({code}) {} ago", since(finished_at, now)),
        Status::SupervisorDied { init_alive: true, .. } => "Supervisor died (container still running)".into(),
        Status::SupervisorDied { init_alive: false, .. } => "Supervisor died (exit code lost)".into(),
    }
}

/// The COMMAND column: quoted, cut at 20 characters as `docker ps` does.
fn command_text(r: &Record) -> String {
    let cmd = r.args().join(" ");
    let cut: String = if cmd.chars().count() > 20 { cmd.chars().take(19).collect::<String>() + "…" } else { cmd };
    format!("\"{cut}\"")
}

/// `kthw ps` as Docker's table.
pub fn ps_table(rows: &[Summary], now: SystemTime) -> String {
    let header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"];
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|s| {
            let r = &s.record;
            [
                r.id[..12].to_string(),
                r.image.strip_suffix(":latest").unwrap_or(&r.image).to_string(),
                command_text(r),
                format!("{} ago", since(&r.created, now)),
                status_text(&s.status, now),
                r.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                r.name.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out += cell;
            } else {
                out += &format!("{cell}{}", " ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &table {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]`, Docker's port map.
fn port_map(r: &Record) -> Value {
    let mut map = serde_json::Map::new();
    for p in &r.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let entry = json!({ "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_default(), "HostPort": p.host_port.to_string() });
        match map.get_mut(&key) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                map.insert(key, json!([entry]));
            }
        }
    }
    Value::Object(map)
}

/// `kthw inspect` of one container, shaped like `docker inspect`'s.
pub fn inspect(engine: &Engine, dir: &Dir, r: &Record) -> Value {
    let status = dir.status();
    let started = dir.started_info().ok().flatten();
    let exited = dir.exit_info().ok().flatten();
    let (pid, error) = match &status {
        Status::Running { pid, .. } => (*pid, String::new()),
        Status::SupervisorDied { supervisor, init_alive } => (
            if *init_alive { started.as_ref().map_or(0, |s| s.pid) } else { 0 },
            format!("the supervisor (pid {supervisor}) died; its output and exit code are lost"),
        ),
        _ => (0, exited.as_ref().and_then(|e| e.error.clone()).unwrap_or_default()),
    };
    let rootfs = kthw_rootfs::rootfs::Rootfs::open(&engine.paths, &r.id).ok();
    let lower = rootfs
        .as_ref()
        .and_then(|rf| rf.lowers(&engine.store).ok())
        .map(|l| l.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"))
        .unwrap_or_default();
    let endpoint: Option<Value> = super::record::read_json(&dir.network()).ok().flatten();
    let ep = |field: &str| endpoint.as_ref().and_then(|e| e.get(field)).cloned().unwrap_or(json!(""));
    let exposed: serde_json::Map<String, Value> = r.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
    let supervisor = dir.supervisor();
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.args().first().cloned().unwrap_or_default(),
        "Args": r.args().iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status.name(),
            "Running": status.is_running(),
            "Paused": false,
            "Dead": matches!(status, Status::SupervisorDied { .. }),
            "Pid": pid,
            "ExitCode": exited.as_ref().map_or(0, |e| e.exit_code),
            "Error": error,
            "StartedAt": started.as_ref().map_or("0001-01-01T00:00:00Z".to_string(), |s| s.started_at.clone()),
            "FinishedAt": exited.as_ref().map_or("0001-01-01T00:00:00Z".to_string(), |e| e.finished_at.clone()),
        },
        "Image": r.image_id,
        "Name": format!("/{}", r.name),
        "LogPath": dir.log(),
        "Supervisor": {
            "Pid": supervisor.map_or(0, |s| s.pid),
            "Alive": supervisor.is_some_and(|s| s.alive()),
        },
        "HostConfig": {
            "Binds": r.volumes.iter().map(|v| v.bind_string()).collect::<Vec<_>>(),
            "PortBindings": port_map(r),
            "Memory": r.memory.unwrap_or(0),
            "NanoCpus": r.nano_cpus.unwrap_or(0),
            "AutoRemove": r.auto_remove,
            "NetworkMode": r.network,
        },
        "Mounts": r.volumes.iter().map(|v| json!({
            "Type": "bind", "Source": v.host, "Destination": v.container, "RW": !v.read_only,
        })).collect::<Vec<_>>(),
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lower,
                "UpperDir": rootfs.as_ref().map(|rf| rf.upper()),
                "WorkDir": rootfs.as_ref().map(|rf| rf.work()),
                "MergedDir": dir.rootfs(),
            },
        },
        "Bundle": dir.bundle(),
        "Config": {
            "Hostname": r.hostname,
            "User": r.user,
            "Tty": r.tty,
            "OpenStdin": r.interactive,
            "Env": r.env,
            "Cmd": r.cmd,
            "Entrypoint": if r.entrypoint.is_empty() { Value::Null } else { json!(r.entrypoint) },
            "Image": r.image,
            "WorkingDir": r.working_dir,
            "ExposedPorts": exposed,
        },
        "NetworkSettings": {
            "IPAddress": ep("ip"),
            "IPPrefixLen": endpoint.as_ref().and_then(|e| e.get("prefix_len")).cloned().unwrap_or(json!(0)),
            "Gateway": ep("gateway"),
            "Bridge": ep("bridge"),
            "HostVeth": ep("host_veth"),
            "Ports": if endpoint.is_some() { port_map(r) } else { json!({}) },
            "SandboxKey": if pid > 0 { format!("/proc/{pid}/ns/net") } else { String::new() },
        },
    })
}

/// A container's line in `kthw system df -v`.
#[derive(Debug, Clone)]
pub struct DfContainer {
    pub name: String,
    pub status: Status,
    /// The size of its upper directory (what it wrote).
    pub size: u64,
    pub log: u64,
}

/// What `kthw system df` reports.
#[derive(Debug, Clone)]
pub struct Df {
    pub images: kthw_rootfs::store::Df,
    pub containers: Vec<DfContainer>,
}

/// `kthw system df`: Docker's summary table, then one line per container.
pub fn df_table(df: &Df) -> String {
    use kthw_rootfs::store::human;
    let held = df.images.images.iter().filter(|i| !i.held_by.is_empty()).count();
    let running: Vec<&DfContainer> = df.containers.iter().filter(|c| c.status.is_running()).collect();
    let size: u64 = df.containers.iter().map(|c| c.size).sum();
    let idle: u64 = df.containers.iter().filter(|c| !c.status.is_running()).map(|c| c.size).sum();
    let logs: u64 = df.containers.iter().map(|c| c.log).sum();
    let mut out = format!("{:<16}{:<8}{:<8}{:<12}{}\n", "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE");
    let row = |t: &str, total: usize, active: String, size: u64, rec: u64| {
        format!("{t:<16}{total:<8}{active:<8}{:<12}{}\n", human(size), human(rec))
    };
    out += &row("Images", df.images.images.len(), held.to_string(), df.images.total, df.images.reclaimable);
    out += &row("Containers", df.containers.len(), running.len().to_string(), size, idle);
    out += &row("Container logs", df.containers.len(), String::new(), logs, logs);
    if !df.containers.is_empty() {
        out += &format!("\n{:<24}{:<10}{:<12}{}\n", "CONTAINER", "STATUS", "SIZE", "LOG");
        for c in &df.containers {
            out += &format!("{:<24}{:<10}{:<12}{}\n", c.name, c.status.name(), human(c.size), human(c.log));
        }
    }
    out
}

/// What `kthw system prune` removed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub bytes: u64,
}

/// As `docker system prune` reports it.
pub fn pruned_text(p: &Pruned) -> String {
    let mut out = String::new();
    if !p.containers.is_empty() {
        out += "Deleted Containers:\n";
        for id in &p.containers {
            out += &format!("{id}\n");
        }
        out += "\n";
    }
    if !p.images.is_empty() {
        out += "Deleted Images:\n";
        for name in &p.images {
            out += &format!("untagged: {name}\n");
        }
        out += "\n";
    }
    out + &format!("Total reclaimed space: {}\n", kthw_rootfs::store::human(p.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{PortMapping, Protocol};

    // Durations read as Docker writes them.
    #[test]
    fn durations_are_human() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(61)), "About a minute");
        assert_eq!(human_duration(s(600)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(20 * 86400)), "2 weeks");
    }

    fn record(id: char, name: &str, args: &[&str], ports: Vec<PortMapping>) -> Record {
        Record {
            id: id.to_string().repeat(64),
            name: name.into(),
            image: "busybox:latest".into(),
            image_id: "sha256:1".into(),
            created: "2024-05-01T10:00:00.000000000Z".into(),
            entrypoint: vec![],
            cmd: args.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            working_dir: "/".into(),
            user: String::new(),
            hostname: "h".into(),
            tty: false,
            interactive: false,
            auto_remove: false,
            network: "bridge".into(),
            volumes: vec![],
            ports,
            memory: None,
            nano_cpus: None,
            exposed_ports: vec![],
        }
    }

    // `kthw ps -a` is Docker's table: short ids, quoted commands cut at 20, ages, statuses.
    #[test]
    fn ps_renders_like_docker() {
        let now = parse_time("2024-05-01T10:05:00Z").unwrap();
        let web = PortMapping {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let rows = vec![
            Summary {
                record: record('a', "web", &["httpd", "-f", "-p", "80", "-h", "/www"], vec![web]),
                status: Status::Running { pid: 42, started_at: "2024-05-01T10:00:01Z".into() },
            },
            Summary {
                record: record('b', "brave_turing", &["sh", "-c", "exit 3"], vec![]),
                status: Status::Exited { code: 3, finished_at: "2024-05-01T10:04:58Z".into() },
            },
            Summary {
                record: record('c', "orphan", &["sleep", "1000"], vec![]),
                status: Status::SupervisorDied { supervisor: 7, init_alive: true },
            },
            Summary { record: record('d', "new", &["true"], vec![]), status: Status::Created },
        ];
        insta::assert_snapshot!(ps_table(&rows, now));
    }
}
