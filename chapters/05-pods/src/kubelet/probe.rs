//! The prober: runs a container's liveness, readiness and startup probes, and turns
//! their raw results into the verdicts that [`crate::sync::decide`] takes.
//!
//! ```text
//!  every tick, per container and probe:   Worker::due? ──yes──▶ run(): exec | httpGet | tcpSocket
//!                                              ▲                         │ Success / Failure
//!   initialDelaySeconds, periodSeconds,        └──── Worker::record ◀────┘
//!   failureThreshold, successThreshold              (N in a row flip the verdict)
//! ```
//!
//! Two halves, as everywhere in this chapter: [`Worker`] is a small pure state machine
//! (the counting of `pkg/kubelet/prober/worker.go`), unit-tested without root; [`run`]
//! does the probing: an `exec` joins the container's namespaces as `kthw pod exec`
//! does, an `httpGet` is an HTTP/1.1 GET written by hand over a `TcpStream` to the pod
//! IP, a `tcpSocket` is a connect.
//!
//! What the real kubelet does differently: one goroutine per probe runs on its own
//! timer (with a random first delay so that a node's probes do not fire together), so a
//! slow probe never delays another; ours run one after the other in the sync loop, each
//! bounded by its `timeoutSeconds`. Its `exec` goes through the CRI runtime
//! (`ExecSync`), its `httpGet` supports HTTPS (without checking the certificate),
//! follows redirects to the same host, and may target any host; ours only GETs the
//! pod's own IP over plain HTTP. It also records each failure as an Event with the
//! probe's output.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::api::{Container, IntOrString, Probe};
use crate::sync::ProbeResult;

/// Which of a container's three probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// The container's probe of this kind, if it has one.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            Kind::Liveness => container.liveness_probe.as_ref(),
            Kind::Readiness => container.readiness_probe.as_ref(),
            Kind::Startup => container.startup_probe.as_ref(),
        }
    }
}

// ANCHOR: worker
/// The counting of one probe of one container (the kubelet's prober `worker`).
///
/// - Nothing is probed before `initialDelaySeconds` after the container started; then
///   once every `periodSeconds`.
/// - Liveness and readiness wait until the startup probe succeeded; the startup probe
///   stops once it has.
/// - The verdict changes only after `failureThreshold` failures or `successThreshold`
///   successes in a row; until the first change it is `None` (no result yet: not ready,
///   not started, not failed).
/// - After a liveness or startup `Failure` the worker holds (the container is being
///   restarted) until a new instance starts; then everything starts over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    kind: Kind,
    /// The start time of the container instance being probed.
    instance: Option<SystemTime>,
    verdict: Option<ProbeResult>,
    /// The latest raw result and how many times in a row it came.
    last: Option<ProbeResult>,
    run: u32,
    next: Option<SystemTime>,
    on_hold: bool,
}

impl Worker {
    pub fn new(kind: Kind) -> Worker {
        Worker { kind, instance: None, verdict: None, last: None, run: 0, next: None, on_hold: false }
    }

    /// Whether to probe now the instance that started at `started_at`. `started`: the
    /// container passed its startup probe (or has none).
    pub fn due(&mut self, probe: &Probe, started_at: SystemTime, started: bool, now: SystemTime) -> bool {
        if self.instance != Some(started_at) {
            *self = Worker::new(self.kind);
            self.instance = Some(started_at);
            self.next = Some(started_at + probe.initial_delay());
        }
        let waiting_for_startup = match self.kind {
            Kind::Startup => started,
            Kind::Liveness | Kind::Readiness => !started,
        };
        !self.on_hold && !waiting_for_startup && self.next.is_some_and(|next| now >= next)
    }

    /// Counts one raw result, got at `now`; returns the verdict when it changed.
    pub fn record(&mut self, probe: &Probe, raw: ProbeResult, now: SystemTime) -> Option<ProbeResult> {
        self.next = Some(now + probe.period());
        self.run = if self.last == Some(raw) { self.run + 1 } else { 1 };
        self.last = Some(raw);
        let threshold = match raw {
            ProbeResult::Success => probe.success_threshold(),
            ProbeResult::Failure => probe.failure_threshold(),
        };
        if self.run < threshold || self.verdict == Some(raw) {
            return None;
        }
        self.verdict = Some(raw);
        if raw == ProbeResult::Failure && self.kind != Kind::Readiness {
            self.on_hold = true;
            self.run = 0;
        }
        Some(raw)
    }

    /// The verdict for [`crate::sync::ObservedContainer`] about the instance that
    /// started at `started_at`; `None` until the thresholds were first met for it.
    pub fn verdict(&self, started_at: SystemTime) -> Option<ProbeResult> {
        self.verdict.filter(|_| self.instance == Some(started_at))
    }
}
// ANCHOR_END: worker

/// Where a probe goes: the container's init (for `exec`) and the pod IP (for the
/// network probes).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub container: &'a Container,
    pub pid: i32,
    pub pod_ip: Option<IpAddr>,
}

/// Runs `probe` once against `target`; the result and a line saying why.
pub fn run(probe: &Probe, target: Target) -> (ProbeResult, String) {
    let timeout = probe.timeout().max(Duration::from_millis(100));
    let outcome = if let Some(exec) = &probe.exec {
        exec_probe(&exec.command, target.pid, timeout)
    } else if let Some(http) = &probe.http_get {
        let host = http.host.as_deref();
        let scheme = http.scheme.as_deref().unwrap_or("HTTP");
        if !scheme.eq_ignore_ascii_case("HTTP") {
            Err(format!("scheme {scheme} is not supported by kthw's prober; use HTTP"))
        } else {
            address(target, host, &http.port).and_then(|addr| {
                let path = http.path.as_deref().unwrap_or("/");
                let headers: Vec<(&str, &str)> =
                    http.http_headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
                http_get(addr, path, &headers, timeout)
            })
        }
    } else if let Some(tcp) = &probe.tcp_socket {
        address(target, tcp.host.as_deref(), &tcp.port).and_then(|addr| {
            TcpStream::connect_timeout(&addr, timeout).map(|_| format!("connected to {addr}")).map_err(|e| {
                format!("dial tcp {addr}: {e}") //
            })
        })
    } else {
        Err("the probe has no exec, httpGet or tcpSocket".into())
    };
    match outcome {
        Ok(why) => (ProbeResult::Success, why),
        Err(why) => (ProbeResult::Failure, why),
    }
}

/// The pod IP and the port, a number or the name of one of the container's ports.
/// Only the pod's own IP: the prober must not become a way to reach other hosts.
fn address(target: Target, host: Option<&str>, port: &IntOrString) -> Result<SocketAddr, String> {
    let ip = target.pod_ip.ok_or("the pod has no IP yet")?;
    if let Some(host) = host.filter(|h| !h.is_empty()) {
        if host.parse::<IpAddr>() != Ok(ip) {
            return Err(format!("host {host:?} is not the pod IP {ip}; kthw probes only the pod's own address"));
        }
    }
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => target
            .container
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .ok_or_else(|| format!("no container port named {name:?}"))?,
    };
    let number = u16::try_from(number).ok().filter(|n| *n > 0).ok_or(format!("port {number} is out of range"))?;
    Ok(SocketAddr::new(ip, number))
}

// ANCHOR: http_get
/// One HTTP/1.1 GET, by hand: what an `httpGet` probe sends, and its status line read
/// back. 200 to 399 is success, like the kubelet's.
fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/kthw\r\nAccept: */*\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let _ = stream.set_write_timeout(Some(left()));
    stream.write_all(request.as_bytes()).map_err(|e| format!("write to {addr}: {e}"))?;
    // Only the status line matters: "HTTP/1.1 200 OK".
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') {
        let _ = stream.set_read_timeout(Some(left()));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read from {addr}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or_default();
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(code) if (200..400).contains(&code) => Ok(format!("GET http://{addr}{path}: {line}")),
        Some(_) => Err(format!("GET http://{addr}{path}: {line}")),
        None => Err(format!("GET http://{addr}{path}: not an HTTP response: {line:?}")),
    }
}
// ANCHOR_END: http_get

/// Runs `command` in the container's namespaces (chapter 1's `exec`, as `kthw pod
/// exec`); exit code 0 within `timeout` is success.
fn exec_probe(command: &[String], pid: i32, timeout: Duration) -> Result<String, String> {
    let null = || std::fs::File::options().read(true).write(true).open("/dev/null").ok().map(OwnedFd::from);
    let stdio = kthw_namespaces::spec::Stdio { stdin: null(), stdout: null(), stderr: null() };
    let mut process = kthw_namespaces::exec::spawn(Pid::from_raw(pid), command, stdio)
        .map_err(|e| format!("exec {command:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match process.try_wait() {
            Ok(Some(0)) => return Ok(format!("{command:?} exited with 0")),
            Ok(Some(code)) => return Err(format!("{command:?} exited with {code}")),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = process.signal(Signal::SIGKILL);
                return Err(format!("{command:?} timed out after {timeout:?}"));
            }
            Err(e) => return Err(format!("exec {command:?}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::ProbeResult::{Failure, Success};

    fn probe(initial: i32, period: i32, failures: i32, successes: i32) -> Probe {
        Probe {
            initial_delay_seconds: Some(initial),
            period_seconds: Some(period),
            failure_threshold: Some(failures),
            success_threshold: Some(successes),
            ..Default::default()
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    // Nothing is probed before initialDelaySeconds, then once every periodSeconds.
    #[test]
    fn probes_after_the_initial_delay_then_every_period() {
        let p = probe(5, 2, 3, 1);
        let mut w = Worker::new(Kind::Readiness);
        assert!(!w.due(&p, at(0), true, at(4)));
        assert!(w.due(&p, at(0), true, at(5)));
        w.record(&p, Success, at(5));
        assert!(!w.due(&p, at(0), true, at(6)));
        assert!(w.due(&p, at(0), true, at(7)));
    }

    // A readiness verdict needs successThreshold successes in a row, and failureThreshold
    // failures in a row to be lost again; one odd result resets the count.
    #[test]
    fn readiness_follows_the_thresholds() {
        let p = probe(0, 1, 3, 2);
        let mut w = Worker::new(Kind::Readiness);
        assert!(w.due(&p, at(0), true, at(0)));
        assert_eq!(w.verdict(at(0)), None, "no result yet: not ready");
        assert_eq!(w.record(&p, Success, at(0)), None);
        assert_eq!(w.record(&p, Success, at(1)), Some(Success));
        assert_eq!(w.record(&p, Failure, at(2)), None);
        assert_eq!(w.record(&p, Failure, at(3)), None);
        assert_eq!(w.record(&p, Success, at(4)), None, "a success breaks the run of failures");
        assert_eq!(w.verdict(at(0)), Some(Success));
        for t in 5..7 {
            assert_eq!(w.record(&p, Failure, at(t)), None);
        }
        assert_eq!(w.record(&p, Failure, at(7)), Some(Failure));
        assert!(w.due(&p, at(0), true, at(8)), "readiness keeps probing after a failure");
    }

    // Kubernetes' defaults: failureThreshold 3, successThreshold 1, periodSeconds 10.
    #[test]
    fn defaults_are_kubernetes_defaults() {
        let p = Probe::default();
        let mut w = Worker::new(Kind::Liveness);
        assert!(w.due(&p, at(0), true, at(0)));
        assert_eq!(w.record(&p, Success, at(0)), Some(Success));
        assert!(!w.due(&p, at(0), true, at(9)));
        assert!(w.due(&p, at(0), true, at(10)));
        assert_eq!(w.record(&p, Failure, at(10)), None);
        assert_eq!(w.record(&p, Failure, at(20)), None);
        assert_eq!(w.record(&p, Failure, at(30)), Some(Failure));
    }

    // A liveness failure holds the worker until the restarted container (a new start
    // time) is probed again from scratch, after its initial delay.
    #[test]
    fn liveness_failure_holds_until_the_restart() {
        let p = probe(2, 1, 1, 1);
        let mut w = Worker::new(Kind::Liveness);
        assert!(w.due(&p, at(0), true, at(2)));
        assert_eq!(w.record(&p, Failure, at(2)), Some(Failure));
        assert!(!w.due(&p, at(0), true, at(10)), "on hold while the container is restarted");
        assert_eq!(w.verdict(at(0)), Some(Failure));
        assert!(!w.due(&p, at(11), true, at(12)), "the new instance waits for its initial delay");
        assert_eq!(w.verdict(at(11)), None, "and has no result yet");
        assert!(w.due(&p, at(11), true, at(13)));
    }

    // Liveness and readiness wait for the startup probe; the startup probe stops once it
    // succeeded.
    #[test]
    fn startup_gates_the_other_probes() {
        let p = probe(0, 1, 3, 1);
        let (mut live, mut start) = (Worker::new(Kind::Liveness), Worker::new(Kind::Startup));
        assert!(!live.due(&p, at(0), false, at(1)));
        assert!(start.due(&p, at(0), false, at(1)));
        assert_eq!(start.record(&p, Success, at(1)), Some(Success));
        assert!(!start.due(&p, at(0), true, at(5)));
        assert!(live.due(&p, at(0), true, at(5)));
    }

    // A named port is looked up in the container's ports; the host must be the pod IP.
    #[test]
    fn named_ports_and_the_pod_ip_only() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "web", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        let ip: IpAddr = "10.22.0.5".parse().unwrap();
        let t = Target { container: &container, pid: 1, pod_ip: Some(ip) };
        let http = IntOrString::String("http".into());
        assert_eq!(address(t, None, &http), Ok("10.22.0.5:8080".parse().unwrap()));
        assert!(address(t, None, &IntOrString::String("db".into())).unwrap_err().contains("\"db\""));
        assert!(address(t, Some("192.0.2.1"), &IntOrString::Int(80)).unwrap_err().contains("not the pod IP"));
        assert!(address(Target { pod_ip: None, ..t }, None, &http).is_err());
    }

    // An httpGet probe succeeds on 200..399 and fails on 404, against a server on loopback.
    #[test]
    fn http_get_reads_the_status_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["200 OK", "302 Found", "404 Not Found"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz HTTP/1.1\r\n"));
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).unwrap();
            }
        });
        let get = || http_get(addr, "/healthz", &[("X-Probe", "1")], Duration::from_secs(5));
        assert!(get().is_ok());
        assert!(get().is_ok());
        assert!(get().unwrap_err().contains("404"));
        server.join().unwrap();
    }
}
