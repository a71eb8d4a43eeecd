//! The sync loop: observe, [`decide`](crate::sync::decide), act, again every tick,
//! until the pod is done or asked to stop.
//!
//! ```text
//!        ┌──────────────── every 100 ms ────────────────┐
//!        ▼                                              │
//!  reap exited inits ─▶ Observed ─▶ decide() ─▶ kill / create sandbox / start ─┘
//!  (we are their parent)                        write pod.json when it changed
//! ```
//!
//! This process is the parent of every container's init (chapter 4's `create` makes
//! it so), so `waitpid` gives their exit codes, and it reads their output pipes into
//! the logs: it is the pod's supervisor, like one containerd-shim per pod.
//!
//! What the real kubelet does differently: its sync loop is driven by events (PLEG,
//! the pod lifecycle event generator, relisting the runtime every second, plus API
//! watches) and runs one worker goroutine per pod; it talks to the runtime over CRI
//! gRPC, and the runtime's shims are the containers' parents.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::containers::{self, Output};
use super::probe::{self, Kind, Target, Worker};
use super::store::{self, ContainerRecord, Finished, PodRecord, SandboxRecord};
use super::{Kubelet, cgroups, sandbox};
use crate::api::{ContainerState, ContainerStatus, Pod, PodIp, PodPhase, PodStatus, StateRunning, StateTerminated};
use crate::sync::{self, ObservedContainer, ProbeResult, RunState};
use crate::{Error, Result};

static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(sig: libc::c_int) {
    STOP.store(sig, Ordering::Relaxed);
}

/// Makes SIGTERM and SIGINT ask the loop to stop the pod gracefully.
pub fn stop_on_signals() {
    let action = SigAction::new(SigHandler::Handler(remember), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores a number.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed) != 0
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What the loop holds in memory besides the record: the output pipes and the
/// probe workers (by container and probe kind).
struct Live {
    outputs: BTreeMap<String, Output>,
    probes: BTreeMap<(String, Kind), Worker>,
}

/// Runs `pod` until it completes or a stop is requested, then stops everything it
/// started (each container gets SIGTERM and the pod's grace period) and leaves the
/// record with the final status. `events` gets one line per step.
///
/// # Errors
/// A pod of that name exists, or the pod's folder or cgroup cannot be made; later
/// failures of one container are reported in its status and retried.
pub fn run(kubelet: &Kubelet, mut pod: Pod, events: &mut dyn FnMut(&str)) -> Result<PodRecord> {
    pod.apply_defaults();
    let name = pod.name().to_string();
    let dir = store::dir(&kubelet.paths, &name);
    store::ensure_absent(&kubelet.paths, &name)?;
    std::fs::create_dir_all(kubelet.paths.pods()).map_err(Error::io("create", kubelet.paths.pods()))?;
    match std::fs::create_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::bad(format!("pod {name:?}"), "exists already; remove it first with `kthw pod rm`"));
        }
        other => other.map_err(Error::io("create", &dir))?,
    }
    let uid = match &pod.metadata.uid {
        Some(uid) => uid.clone(),
        None => kthw_runtime::engine::names::new_id()?,
    };
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.creation_timestamp.get_or_insert_with(|| rfc3339(SystemTime::now()));
    let mut record =
        PodRecord { pod, supervisor: Some(std::process::id() as i32), sandbox: None, containers: BTreeMap::new() };
    store::write(&kubelet.paths, &record)?;
    cgroups::create(&kubelet.paths, &record.pod, &uid)?;
    let mut live = Live { outputs: BTreeMap::new(), probes: BTreeMap::new() };
    let result = sync_loop(kubelet, &mut record, &mut live, events);
    teardown(kubelet, &mut record, &mut live, events);
    record.supervisor = None;
    store::write(&kubelet.paths, &record)?;
    result.map(|()| record)
}

// ANCHOR: sync_loop
fn sync_loop(kubelet: &Kubelet, record: &mut PodRecord, live: &mut Live, events: &mut dyn FnMut(&str)) -> Result<()> {
    let mut last_written = String::new();
    loop {
        for output in live.outputs.values_mut() {
            output.pump();
        }
        reap(kubelet, record, live, events);
        if stop_requested() {
            events("stopping: signal received");
            return Ok(());
        }
        run_probes(record, live, events);
        let now = SystemTime::now();
        let observed = observe(record, live);
        let decision = sync::decide(&record.pod, &observed, now, &kubelet.settings);
        let actions = &decision.actions;
        for (name, entry) in &decision.back_off {
            if let Some(c) = record.containers.get_mut(name) {
                c.back_off = Some((*entry).into());
            }
        }
        if actions.kill_pod {
            kill_all(kubelet, record, live, events);
            if actions.create_sandbox.is_none() {
                set_status(record, &decision, now);
                events(&format!("pod {} is {:?}", record.pod.name(), decision.phase));
                return Ok(());
            }
        }
        if let Some(attempt) = actions.create_sandbox {
            start_sandbox(kubelet, record, live, attempt, events)?;
        }
        for kill in &actions.kill {
            stop_container(kubelet, record, live, &kill.container, Duration::from_secs(0));
        }
        let starts = actions.start_init.iter().chain(&actions.start);
        for start in starts.cloned().collect::<Vec<_>>() {
            if let Err(e) = start_container(kubelet, record, live, &start.container) {
                events(&format!("container {} failed to start: {e}", start.container));
                let fresh = empty(record.pod.name(), &start.container);
                let c = record.containers.entry(start.container.clone()).or_insert(fresh);
                c.exit = Some((128, SystemTime::now()));
                c.pid = None;
            } else {
                events(&format!("started container {}", start.container));
            }
        }
        set_status(record, &decision, now);
        let text = serde_json::to_string(record).unwrap_or_default();
        if text != last_written {
            store::write(&kubelet.paths, record)?;
            last_written = text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
// ANCHOR_END: sync_loop

fn empty(pod: &str, container: &str) -> ContainerRecord {
    ContainerRecord {
        id: containers::id(pod, container),
        pid: None,
        restart_count: 0,
        started_at: None,
        exit: None,
        oom_killed: false,
        previous: None,
        image_id: None,
        back_off: None,
    }
}

/// What the runtime would report: the sandbox and each container's latest instance,
/// with the prober's verdicts about it.
fn observe(record: &PodRecord, live: &Live) -> sync::Observed {
    let sandbox = record.sandbox.as_ref().map(|s| sync::Sandbox {
        ready: s.running,
        attempt: s.attempt,
        has_ip: s.ip.is_some(),
        changed: None,
    });
    let mut containers = BTreeMap::new();
    let mut back_off = BTreeMap::new();
    for (name, c) in &record.containers {
        let state = match (c.pid, c.exit, c.started_at) {
            (Some(_), _, Some(started_at)) => RunState::Running { started_at },
            (_, Some((exit_code, finished_at)), _) => RunState::Exited { exit_code, finished_at },
            _ => RunState::Unknown,
        };
        let mut o = ObservedContainer::new(state);
        o.restart_count = c.restart_count;
        if let (Some(started_at), Some(_)) = (c.started_at, c.pid) {
            let verdict = |kind| live.probes.get(&(name.clone(), kind)).and_then(|w| w.verdict(started_at));
            (o.liveness, o.readiness, o.startup) =
                (verdict(Kind::Liveness), verdict(Kind::Readiness), verdict(Kind::Startup));
        }
        containers.insert(name.clone(), o);
        if let Some(entry) = c.back_off {
            back_off.insert(name.clone(), entry.into());
        }
    }
    sync::Observed { sandbox, containers, back_off }
}

/// Runs the probes that are due for every running app container, startup first
/// (liveness and readiness wait for it), and counts their results.
fn run_probes(record: &PodRecord, live: &mut Live, events: &mut dyn FnMut(&str)) {
    let pod_ip = record.sandbox.as_ref().and_then(|s| s.ip.as_deref()).and_then(|ip| ip.parse().ok());
    for container in &record.pod.spec.containers {
        let Some(c) = record.containers.get(&container.name) else { continue };
        let (Some(pid), Some(started_at)) = (c.pid, c.started_at) else { continue };
        for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
            let Some(spec) = kind.of(container) else { continue };
            let startup = live.probes.get(&(container.name.clone(), Kind::Startup));
            let started = container.startup_probe.is_none()
                || startup.and_then(|w| w.verdict(started_at)) == Some(ProbeResult::Success);
            let worker = live.probes.entry((container.name.clone(), kind)).or_insert_with(|| Worker::new(kind));
            if !worker.due(spec, started_at, started, SystemTime::now()) {
                continue;
            }
            let (raw, why) = probe::run(spec, Target { container, pid, pod_ip });
            if let Some(verdict) = worker.record(spec, raw, SystemTime::now()) {
                events(&format!("{kind:?} probe of {}: {verdict:?} ({why})", container.name));
            }
        }
    }
}

/// Collects the exit status of every child that exited: containers and the pause.
fn reap(kubelet: &Kubelet, record: &mut PodRecord, live: &mut Live, events: &mut dyn FnMut(&str)) {
    let uid = record.pod.metadata.uid.clone().unwrap_or_default();
    // Only our own pids, never `waitpid(-1)`: the caller may have other children.
    let exited = |pid: i32| match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        Ok(_) => None,
        Err(_) => Some(255), // not our child any more: gone
    };
    if let Some(s) = record.sandbox.as_mut().filter(|s| s.running) {
        if let Some(code) = exited(s.pid) {
            s.running = false;
            events(&format!("sandbox exited with {code}"));
        }
    }
    for (name, c) in record.containers.iter_mut() {
        let Some(code) = c.pid.and_then(exited) else { continue };
        c.pid = None;
        c.exit = Some((code, SystemTime::now()));
        c.oom_killed = oom_killed(&kubelet.paths, &uid, &c.id);
        if let Some(output) = live.outputs.remove(name) {
            output.finish();
        }
        let oom = if c.oom_killed { " (OOM killed)" } else { "" };
        events(&format!("container {name} exited with {code}{oom}"));
    }
}

/// Whether the OOM killer struck in container `id`: chapter 2's `oom_kill` count of its
/// cgroup, read before the runtime deletes the cgroup (each instance gets a fresh one).
fn oom_killed(paths: &kthw_lab::Paths, uid: &str, id: &str) -> bool {
    let Ok(layout) = kthw_lab::host::CgroupLayout::detect() else { return false };
    let cgroup = kthw_cgroups::Cgroup::open(&layout, &cgroups::container_path(paths, uid, id));
    cgroup.ok().and_then(|c| c.oom_kills()).is_some_and(|n| n > 0)
}

fn start_sandbox(
    kubelet: &Kubelet,
    record: &mut PodRecord,
    live: &mut Live,
    attempt: u32,
    events: &mut dyn FnMut(&str),
) -> Result<()> {
    let uid = record.pod.metadata.uid.clone().unwrap_or_default();
    let dir = store::container_dir(&kubelet.paths, record.pod.name(), "_sandbox");
    std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    let made = sandbox::create(kubelet, &record.pod, &uid, &dir)?;
    live.outputs.insert("_sandbox".into(), made.started.output);
    events(&format!("sandbox ready, pod IP {}", made.ip.as_deref().unwrap_or("none")));
    record.sandbox = Some(SandboxRecord {
        id: sandbox::id(record.pod.name()),
        pid: made.started.pid,
        ip: made.ip,
        attempt,
        running: true,
    });
    Ok(())
}

fn start_container(kubelet: &Kubelet, record: &mut PodRecord, live: &mut Live, name: &str) -> Result<()> {
    let pod = &record.pod;
    let container =
        pod.spec.all_containers().find(|c| c.name == name).ok_or_else(|| Error::bad(name, "no such container"))?;
    let sandbox = record.sandbox.as_ref().ok_or_else(|| Error::bad(name, "the pod has no sandbox"))?;
    let started = containers::create_in_sandbox(kubelet, pod, container, sandbox.pid)?;
    kubelet.runtime.start(&containers::id(pod.name(), name))?;
    let image_id = container.image.as_deref().and_then(|image| kubelet.store.image(image).ok()).map(|i| i.id());
    let entry = record.containers.entry(name.to_string()).or_insert_with(|| empty(pod.name(), name));
    if entry.started_at.is_some() {
        entry.restart_count += 1;
        entry.previous = entry.finished(); // the status's lastState
    }
    entry.pid = Some(started.pid);
    entry.started_at = Some(SystemTime::now());
    entry.exit = None;
    entry.oom_killed = false;
    entry.image_id = image_id;
    live.outputs.insert(name.to_string(), started.output);
    Ok(())
}

// ANCHOR: graceful_stop
/// Stops one container: SIGTERM, up to `grace` to exit, then SIGKILL; then removes it.
fn stop_container(kubelet: &Kubelet, record: &mut PodRecord, live: &mut Live, name: &str, grace: Duration) {
    let Some(c) = record.containers.get(name).cloned() else { return };
    if let Some(pid) = c.pid {
        let _ = kubelet.runtime.kill(&c.id, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        let mut code = None;
        while code.is_none() {
            code = match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => Some(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                    None
                }
                Ok(_) => {
                    let _ = kubelet.runtime.kill(&c.id, Signal::SIGKILL);
                    std::thread::sleep(Duration::from_millis(20));
                    None
                }
                Err(_) => Some(137),
            };
        }
        if let Some(entry) = record.containers.get_mut(name) {
            entry.pid = None;
            entry.exit = code.map(|code| (code, SystemTime::now()));
        }
    }
    if let Some(output) = live.outputs.remove(name) {
        output.finish();
    }
    containers::remove(&kubelet.paths, &kubelet.store, &kubelet.runtime, &c.id);
}
// ANCHOR_END: graceful_stop

/// Every container, then the sandbox.
fn kill_all(kubelet: &Kubelet, record: &mut PodRecord, live: &mut Live, events: &mut dyn FnMut(&str)) {
    let grace = record.pod.spec.grace_period();
    let names: Vec<String> = record.containers.keys().cloned().collect();
    for name in names {
        if record.containers[&name].pid.is_some() {
            events(&format!("stopping container {name}"));
        }
        stop_container(kubelet, record, live, &name, grace);
    }
    if let Some(s) = record.sandbox.as_mut() {
        let uid = record.pod.metadata.uid.clone().unwrap_or_default();
        sandbox::remove(kubelet, record.pod.name(), &uid, s.pid);
        let _ = waitpid(Pid::from_raw(s.pid), None);
        s.running = false;
        if let Some(output) = live.outputs.remove("_sandbox") {
            output.finish();
        }
    }
}

fn teardown(kubelet: &Kubelet, record: &mut PodRecord, live: &mut Live, events: &mut dyn FnMut(&str)) {
    kill_all(kubelet, record, live, events);
    let uid = record.pod.metadata.uid.clone().unwrap_or_default();
    let _ = cgroups::remove(&kubelet.paths, &uid);
    if let Some(status) = record.pod.status.as_mut() {
        status.pod_ip = None;
        status.pod_ips.clear();
    }
}

/// Writes the decision's phase and conditions and the containers' states into the
/// pod's status, as the kubelet reports it to the API server (its
/// `generateAPIPodStatus`): each container is waiting, running or terminated, with the
/// instance before it as `lastState`.
fn set_status(record: &mut PodRecord, decision: &sync::Decision, now: SystemTime) {
    let pod = &record.pod;
    // Not started yet: the kubelet's default reason, which says what the pod waits for.
    let not_started = if pod.spec.init_containers.is_empty() { "ContainerCreating" } else { "PodInitializing" };
    let status_of = |c: &crate::api::Container| {
        let r = record.containers.get(&c.name);
        let back_off = decision.waits.iter().find(|w| w.container == c.name);
        let finished = r.and_then(|r| r.finished());
        let (state, last) = match (r, finished, back_off) {
            (Some(r), _, _) if r.pid.is_some() => {
                let running = StateRunning { started_at: r.started_at.map(rfc3339) };
                (ContainerState { running: Some(running), ..Default::default() }, r.previous)
            }
            (Some(_), Some(exit), Some(wait)) => {
                let message = format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    go_duration(wait.delay),
                    c.name,
                    pod.name(),
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                    pod.metadata.uid.as_deref().unwrap_or_default(),
                );
                (ContainerState::waiting("CrashLoopBackOff", Some(message)), Some(exit))
            }
            (Some(r), Some(exit), None) => (terminated(exit, &r.id), r.previous),
            _ => (ContainerState::waiting(not_started, None), None),
        };
        let last_state = match (r, last) {
            (Some(r), Some(last)) => terminated(last, &r.id),
            _ => ContainerState::default(),
        };
        let readiness = decision.readiness.iter().find(|x| x.container == c.name);
        let running = state.running.is_some();
        ContainerStatus {
            name: c.name.clone(),
            state,
            last_state,
            ready: readiness.is_some_and(|x| x.ready),
            // App containers: past the startup probe; init containers: running.
            started: Some(readiness.map_or(running, |x| x.started)),
            restart_count: r.map(|r| r.restart_count as i32).unwrap_or(0),
            image: c.image.clone().unwrap_or_default(),
            image_id: r.and_then(|r| r.image_id.clone()).unwrap_or_default(),
            container_id: r.map(|r| format!("kthw://{}", r.id)),
        }
    };
    // A condition keeps the time it last changed; a changed one gets `now`.
    let old = pod.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let conditions = decision
        .conditions
        .iter()
        .map(|c| {
            let same = old.iter().find(|o| o.kind == c.kind && o.status == c.status);
            let since = same.and_then(|o| o.last_transition_time.clone()).unwrap_or_else(|| rfc3339(now));
            crate::api::PodCondition { last_transition_time: Some(since), ..c.clone() }
        })
        .collect();
    let ip = record.sandbox.as_ref().filter(|s| s.running).and_then(|s| s.ip.clone());
    let status = PodStatus {
        phase: Some(decision.phase),
        conditions,
        pod_ip: ip.clone(),
        pod_ips: ip.map(|ip| vec![PodIp { ip }]).unwrap_or_default(),
        start_time: pod.metadata.creation_timestamp.clone(),
        init_container_statuses: pod.spec.init_containers.iter().map(status_of).collect(),
        container_statuses: pod.spec.containers.iter().map(status_of).collect(),
        ..Default::default()
    };
    record.pod.status = Some(status);
}

/// `{terminated: ...}` for an instance of container `id` that exited.
fn terminated(f: Finished, id: &str) -> ContainerState {
    ContainerState::terminated(StateTerminated {
        exit_code: f.exit_code,
        reason: Some(StateTerminated::reason_for(f.exit_code, f.oom_killed).into()),
        started_at: f.started_at.map(rfc3339),
        finished_at: Some(rfc3339(f.finished_at)),
        container_id: Some(format!("kthw://{id}")),
        ..Default::default()
    })
}

/// A duration as Go prints it (`time.Duration.String`), for messages that read like the
/// kubelet's: `200ms`, `1.6s`, `10s`, `2m40s`, `5m0s`.
fn go_duration(d: Duration) -> String {
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_string();
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        let nanos = d.subsec_nanos();
        return format!("{}ms", trim(format!("{}.{:06}", nanos / 1_000_000, nanos % 1_000_000)));
    }
    let secs = d.as_secs();
    let s = trim(format!("{}.{:09}", secs % 60, d.subsec_nanos()));
    match (secs / 3600, secs / 60 % 60) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// The phase to show for a record: its status's, or `Unknown` when its supervisor
/// died without saying how the pod ended.
pub fn phase(record: &PodRecord) -> String {
    let phase = record.pod.status.as_ref().and_then(|s| s.phase).unwrap_or(PodPhase::Pending);
    match record.supervisor {
        Some(pid) if !store::alive(pid) && !matches!(phase, PodPhase::Succeeded | PodPhase::Failed) => "Unknown".into(),
        _ => format!("{phase:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Back-off delays read as Go prints them, as in the kubelet's CrashLoopBackOff message.
    #[test]
    fn durations_read_like_go() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(ms(200)), "200ms");
        assert_eq!(go_duration(ms(1600)), "1.6s");
        assert_eq!(go_duration(ms(10_000)), "10s");
        assert_eq!(go_duration(ms(160_000)), "2m40s");
        assert_eq!(go_duration(ms(300_000)), "5m0s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
