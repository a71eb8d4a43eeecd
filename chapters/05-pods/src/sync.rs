//! The kubelet's SyncPod decision, as a pure function.
//!
//! The kubelet never runs "a script" to start a pod. Every time something may have
//! changed (a container exited, a probe failed, a second passed) it compares what the pod
//! spec wants with what the runtime reports, and decides the next steps. Because the
//! decision is recomputed from scratch each time, a crash of the kubelet in the middle
//! loses nothing: the next sync sees what really is and carries on.
//!
//! ```text
//! Pod spec ───┐
//! Observed ───┼─▶ decide() ─▶ kill the sandbox?  create a new one?
//! now ────────┘               containers to kill (why) · the next init container
//!                             app containers to start · back-off waits · phase · Ready
//! ```
//!
//! The steps, in the kubelet's order (`computePodActions` in
//! `pkg/kubelet/kuberuntime/kuberuntime_manager.go`):
//! 1. no sandbox, or one that is not ready or no longer fits the spec: kill everything
//!    and make a new one; start again from the first init container;
//! 2. init containers one at a time, in order, each to completion; a failed one is
//!    retried unless `restartPolicy: Never`, which fails the pod;
//! 3. app containers: start those that are not running and should be (per
//!    `restartPolicy`), kill and restart those whose spec changed or whose liveness or
//!    startup probe failed;
//! 4. nothing left running and nothing to start: kill the pod (it is done).
//!
//! Then, as `SyncPod` does before starting a container that exited, the exponential
//! back-off: 10 s, doubling, capped at 5 minutes ([`Settings`]), measured from when
//! the container last exited. The first restart is immediate.
//!
//! What the real kubelet does differently: the decision also covers ephemeral
//! containers, sidecars (init containers with `restartPolicy: Always`), in-place
//! resizing and the pod's termination; it reads the latest *and older* exited instances
//! of each container (we see only the latest); the back-off map lives in the kubelet's
//! memory, keyed by pod uid and container hash, and adds jitter; probe results come from
//! prober workers, with thresholds applied, as ours must come from the caller.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::api::{ConditionStatus, Container, Pod, PodCondition, PodPhase, RestartPolicy};

/// Timings of the decision, shortened by tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The first back-off wait (the kubelet's 10 s).
    pub back_off_initial: Duration,
    /// The longest back-off wait (the kubelet's 5 minutes).
    pub back_off_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { back_off_initial: Duration::from_secs(10), back_off_max: Duration::from_secs(300) }
    }
}

/// What the runtime reports about a pod: its sandbox, its containers (init and app,
/// by name; a container never created has no entry), and the back-off remembered for
/// each container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub sandbox: Option<Sandbox>,
    pub containers: BTreeMap<String, ObservedContainer>,
    /// By container name; kept by the caller between syncs (from [`Decision::back_off`]).
    pub back_off: BTreeMap<String, BackOff>,
}

/// The pod's sandbox: the pause container holding its namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Its pause process runs.
    pub ready: bool,
    /// How many sandboxes this pod had before this one (0 for the first).
    pub attempt: u32,
    /// It has the pod IP (always true for `hostNetwork` pods).
    pub has_ip: bool,
    /// Why it no longer fits the spec, e.g. `hostNetwork` changed; `None` if it fits.
    pub changed: Option<String>,
}

/// One container's latest instance, as the runtime reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedContainer {
    pub state: RunState,
    /// How many times it was restarted (the next instance has one more).
    pub restart_count: u32,
    /// Its spec is not the one it was created from (the caller compares the hash it
    /// stored in the container's labels, as the kubelet does).
    pub spec_changed: bool,
    /// The prober's latest verdicts (thresholds applied); `None` for "no result yet".
    pub liveness: Option<ProbeResult>,
    pub readiness: Option<ProbeResult>,
    pub startup: Option<ProbeResult>,
}

impl ObservedContainer {
    /// An instance in `state` with no restarts, probe results or changes.
    pub fn new(state: RunState) -> ObservedContainer {
        ObservedContainer {
            state,
            restart_count: 0,
            spec_changed: false,
            liveness: None,
            readiness: None,
            startup: None,
        }
    }
}

/// Where a container instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running {
        started_at: SystemTime,
    },
    Exited {
        exit_code: i32,
        finished_at: SystemTime,
    },
    /// The runtime cannot tell (its supervisor is gone): kill it to be sure, then restart.
    Unknown,
}

/// A probe's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
}

/// The back-off state of one container, like an entry of the kubelet's
/// `flowcontrol.Backoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackOff {
    /// The wait after the next exit.
    pub delay: Duration,
    /// When the entry last changed (a restart).
    pub last_update: SystemTime,
}

/// Why a container is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// Its spec changed: restarted whatever the restart policy.
    SpecChanged,
    LivenessFailed,
    StartupFailed,
    /// In an unknown state: killed so that two instances never run.
    UnknownState,
}

/// Why a container is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartReason {
    /// It never ran (or the runtime forgot it).
    NotCreated,
    /// It exited with this code and the restart policy says run it again.
    Exited(i32),
    /// It was killed, for this reason, in this same sync.
    Killed(KillReason),
    /// In a new sandbox, everything starts over.
    NewSandbox,
}

/// A container to kill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kill {
    pub container: String,
    pub reason: KillReason,
    /// It will be started again in this sync.
    pub restart: bool,
}

/// A container to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub container: String,
    pub reason: StartReason,
}

/// What the kubelet's `computePodActions` decides, before back-off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every container and the sandbox: before a new sandbox, or because the pod is done.
    pub kill_pod: bool,
    /// Create a new sandbox with this attempt number.
    pub create_sandbox: Option<u32>,
    /// Containers to stop, each with its reason.
    pub kill: Vec<Kill>,
    /// The one init container to run now.
    pub start_init: Option<Start>,
    /// App containers to start now.
    pub start: Vec<Start>,
}

/// A container not started because it is in back-off (`CrashLoopBackOff`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    pub container: String,
    /// How long until it may start.
    pub remaining: Duration,
    /// The whole back-off period it is in.
    pub delay: Duration,
}

/// A container's readiness, for its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub container: String,
    /// Running and past its startup probe.
    pub started: bool,
    /// Started and passing its readiness probe (or has none).
    pub ready: bool,
}

/// Everything one sync decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What to do now; containers in back-off are left out of `start`/`start_init`.
    pub actions: PodActions,
    /// Containers that would start but are in back-off.
    pub waits: Vec<Wait>,
    /// The back-off entries to remember for the containers started now after an exit.
    pub back_off: BTreeMap<String, BackOff>,
    /// The pod's phase, from what was observed.
    pub phase: PodPhase,
    /// `PodReadyToStartContainers`, `Initialized`, `ContainersReady`, `Ready`
    /// (the caller sets `lastTransitionTime` when a status changes).
    pub conditions: Vec<PodCondition>,
    /// App containers' `started` and `ready` flags.
    pub readiness: Vec<Readiness>,
}

/// Decides the next steps for `pod`, from what the runtime reports and the time: the
/// pod's actions with back-off applied, its phase and conditions.
pub fn decide(pod: &Pod, observed: &Observed, now: SystemTime, settings: &Settings) -> Decision {
    let mut actions = compute_pod_actions(pod, observed);
    let mut waits = Vec::new();
    let mut back_off = BTreeMap::new();
    let mut allowed = |start: &Start| match back_off_check(&start.container, observed, now, settings) {
        BackOffCheck::Free => true,
        BackOffCheck::Restart(entry) => {
            back_off.insert(start.container.clone(), entry);
            true
        }
        BackOffCheck::Wait(wait) => {
            waits.push(wait);
            false
        }
    };
    actions.start_init = actions.start_init.filter(&mut allowed);
    actions.start.retain(&mut allowed);
    let phase = pod_phase(pod, observed);
    let readiness = readiness(pod, observed);
    let conditions = conditions(pod, observed, phase, &readiness);
    Decision { actions, waits, back_off, phase, conditions, readiness }
}

// ANCHOR: compute_pod_actions
/// The kubelet's `computePodActions`: what to kill and what to start, from the spec
/// and the observed state alone (no back-off, no clock).
pub fn compute_pod_actions(pod: &Pod, observed: &Observed) -> PodActions {
    let mut actions = PodActions::default();
    let policy = pod.spec.restart_policy();
    let restart_on_failure = policy != RestartPolicy::Never;

    // A pod being deleted is only stopped.
    if pod.metadata.deletion_timestamp.is_some() {
        actions.kill_pod = true;
        return actions;
    }

    // 1. A missing, dead or outdated sandbox: everything goes, and starts over.
    if let Some(attempt) = sandbox_to_create(observed) {
        actions.kill_pod = true;
        // A pod that must not restart and already ran: do not bring it back.
        if !restart_on_failure && attempt != 0 && !observed.containers.is_empty() {
            return actions;
        }
        let to_start: Vec<&Container> = pod
            .spec
            .containers
            .iter()
            .filter(|c| !(policy == RestartPolicy::OnFailure && succeeded(observed, c)))
            .collect();
        if to_start.is_empty() && next_init_container(pod, observed).done {
            return actions; // everything completed: nothing to come back for
        }
        actions.create_sandbox = Some(attempt);
        let start = |c: &Container| Start { container: c.name.clone(), reason: StartReason::NewSandbox };
        match pod.spec.init_containers.first() {
            Some(first) => actions.start_init = Some(start(first)),
            None => actions.start = to_start.into_iter().map(start).collect(),
        }
        return actions;
    }

    // 2. Init containers, one at a time, each to completion.
    let init = next_init_container(pod, observed);
    if !init.done {
        if let Some(next) = init.next {
            let last = init.failed.and_then(|name| observed.containers.get(name));
            if last.is_some() && !restart_on_failure {
                actions.kill_pod = true; // restartPolicy Never: a failed init fails the pod
            } else {
                if last.is_some_and(|c| c.state == RunState::Unknown) {
                    actions.kill.push(Kill {
                        container: next.name.clone(),
                        reason: KillReason::UnknownState,
                        restart: true,
                    });
                }
                actions.start_init = Some(Start { container: next.name.clone(), reason: start_reason(observed, next) });
            }
        }
        return actions; // app containers wait until every init container succeeded
    }

    // 3. App containers.
    let mut keep = 0;
    for container in &pod.spec.containers {
        let Some(status) = observed.containers.get(&container.name) else {
            actions.start.push(Start { container: container.name.clone(), reason: StartReason::NotCreated });
            continue;
        };
        match status.state {
            RunState::Running { .. } => {}
            RunState::Unknown => {
                actions.kill.push(Kill {
                    container: container.name.clone(),
                    reason: KillReason::UnknownState,
                    restart: true,
                });
                actions.start.push(Start {
                    container: container.name.clone(),
                    reason: StartReason::Killed(KillReason::UnknownState),
                });
                continue;
            }
            RunState::Exited { exit_code, .. } => {
                let restart = match policy {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => exit_code != 0,
                    RestartPolicy::Never => false,
                };
                if restart {
                    actions
                        .start
                        .push(Start { container: container.name.clone(), reason: StartReason::Exited(exit_code) });
                }
                continue;
            }
        }
        // Running: kill it if its spec changed or a probe says it is broken.
        let (reason, restart) = if status.spec_changed {
            (KillReason::SpecChanged, true) // whatever the restart policy
        } else if liveness_failed(container, status) {
            (KillReason::LivenessFailed, restart_on_failure)
        } else if container.startup_probe.is_some() && status.startup == Some(ProbeResult::Failure) {
            (KillReason::StartupFailed, restart_on_failure)
        } else {
            keep += 1;
            continue;
        };
        actions.kill.push(Kill { container: container.name.clone(), reason, restart });
        if restart {
            actions.start.push(Start { container: container.name.clone(), reason: StartReason::Killed(reason) });
        }
    }

    // 4. Nothing runs and nothing will: the pod is done, stop its sandbox too.
    if keep == 0 && actions.start.is_empty() {
        actions.kill_pod = true;
    }
    actions
}
// ANCHOR_END: compute_pod_actions

/// `Some(attempt)` when a new sandbox is needed (the kubelet's `PodSandboxChanged`).
fn sandbox_to_create(observed: &Observed) -> Option<u32> {
    match &observed.sandbox {
        None => Some(0),
        Some(s) if !s.ready || !s.has_ip || s.changed.is_some() => Some(s.attempt + 1),
        Some(_) => None,
    }
}

fn succeeded(observed: &Observed, container: &Container) -> bool {
    matches!(observed.containers.get(&container.name), Some(c) if matches!(c.state, RunState::Exited { exit_code: 0, .. }))
}

fn start_reason(observed: &Observed, container: &Container) -> StartReason {
    match observed.containers.get(&container.name).map(|c| c.state) {
        None => StartReason::NotCreated,
        Some(RunState::Exited { exit_code, .. }) => StartReason::Exited(exit_code),
        Some(RunState::Unknown) => StartReason::Killed(KillReason::UnknownState),
        Some(RunState::Running { .. }) => StartReason::NotCreated,
    }
}

/// A liveness failure counts only for a container that has a liveness probe and is
/// past its startup probe: the kubelet does not run liveness probes before that.
fn liveness_failed(container: &Container, status: &ObservedContainer) -> bool {
    container.liveness_probe.is_some() && status.liveness == Some(ProbeResult::Failure) && started(container, status)
}

fn started(container: &Container, status: &ObservedContainer) -> bool {
    matches!(status.state, RunState::Running { .. })
        && (container.startup_probe.is_none() || status.startup == Some(ProbeResult::Success))
}

/// Where initialisation is (the kubelet's `findNextInitContainerToRun`).
struct InitProgress<'a> {
    /// The last init container that failed, if one did.
    failed: Option<&'a str>,
    /// The init container to run next.
    next: Option<&'a Container>,
    /// Every init container succeeded (or the app containers already run).
    done: bool,
}

fn next_init_container<'a>(pod: &'a Pod, observed: &Observed) -> InitProgress<'a> {
    let init = &pod.spec.init_containers;
    let done = InitProgress { failed: None, next: None, done: true };
    if init.is_empty() {
        return done;
    }
    // An app container runs: initialisation happened, even if the runtime forgot the
    // init containers since (they must not run twice).
    let running = |c: &Container| matches!(observed.containers.get(&c.name), Some(s) if matches!(s.state, RunState::Running { .. }));
    if pod.spec.containers.iter().any(running) {
        return done;
    }
    let status = |c: &Container| observed.containers.get(&c.name).map(|s| s.state);
    for container in init.iter().rev() {
        let failed = match status(container) {
            Some(RunState::Unknown) => true,
            Some(RunState::Exited { exit_code, .. }) => exit_code != 0,
            _ => false,
        };
        if failed {
            return InitProgress { failed: Some(&container.name), next: Some(container), done: false };
        }
    }
    for (i, container) in init.iter().enumerate().rev() {
        match status(container) {
            None => continue,
            Some(RunState::Running { .. }) => return InitProgress { failed: None, next: None, done: false },
            Some(_) if i + 1 == init.len() => return done,
            Some(_) => return InitProgress { failed: None, next: Some(&init[i + 1]), done: false },
        }
    }
    InitProgress { failed: None, next: Some(&init[0]), done: false }
}

enum BackOffCheck {
    /// Never exited (a first start, or a kill and restart): no back-off.
    Free,
    /// May restart now; remember this entry.
    Restart(BackOff),
    /// In back-off.
    Wait(Wait),
}

// ANCHOR: back_off
/// The kubelet's `doBackOff` with `flowcontrol.Backoff`: a container that exited may
/// restart once `delay` has passed since it exited; each restart doubles the delay for
/// the next time, up to the maximum. An entry not touched for twice the maximum is
/// forgotten (the container had been running fine), so the delay starts over.
fn back_off_check(name: &str, observed: &Observed, now: SystemTime, settings: &Settings) -> BackOffCheck {
    let Some(RunState::Exited { finished_at, .. }) = observed.containers.get(name).map(|c| c.state) else {
        return BackOffCheck::Free;
    };
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let entry = observed.back_off.get(name).filter(|entry| {
        let quiet = finished_at.duration_since(entry.last_update).unwrap_or_default();
        quiet <= 2 * settings.back_off_max
    });
    match entry {
        Some(entry) if since(finished_at) < entry.delay => BackOffCheck::Wait(Wait {
            container: name.to_string(),
            remaining: entry.delay - since(finished_at),
            delay: entry.delay,
        }),
        Some(entry) => {
            BackOffCheck::Restart(BackOff { delay: (entry.delay * 2).min(settings.back_off_max), last_update: now })
        }
        None => BackOffCheck::Restart(BackOff { delay: settings.back_off_initial, last_update: now }),
    }
}
// ANCHOR_END: back_off

/// The pod's phase from what was observed (the kubelet's `getPhase`).
pub fn pod_phase(pod: &Pod, observed: &Observed) -> PodPhase {
    let policy = pod.spec.restart_policy();
    let state = |c: &Container| observed.containers.get(&c.name).map(|s| s.state);
    let (mut pending_init, mut failed_init) = (0, 0);
    for container in &pod.spec.init_containers {
        match state(container) {
            Some(RunState::Exited { exit_code: 0, .. }) => {}
            Some(RunState::Exited { .. }) => failed_init += 1,
            _ => pending_init += 1,
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded, mut unknown) = (0, 0, 0, 0, 0);
    for container in &pod.spec.containers {
        match state(container) {
            None => waiting += 1,
            Some(RunState::Running { .. }) => running += 1,
            Some(RunState::Exited { exit_code, .. }) => {
                stopped += 1;
                succeeded += usize::from(exit_code == 0);
            }
            Some(RunState::Unknown) => unknown += 1,
        }
    }
    let any_app_started = running + stopped > 0;
    if failed_init > 0 && policy == RestartPolicy::Never {
        return PodPhase::Failed;
    }
    if (pending_init > 0 && !any_app_started) || waiting > 0 {
        return PodPhase::Pending;
    }
    if running > 0 && unknown == 0 {
        return PodPhase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        return match policy {
            RestartPolicy::Always => PodPhase::Running, // all restarting
            _ if stopped == succeeded => PodPhase::Succeeded,
            RestartPolicy::Never => PodPhase::Failed,
            RestartPolicy::OnFailure => PodPhase::Running, // the failed ones restart
        };
    }
    PodPhase::Pending
}

fn readiness(pod: &Pod, observed: &Observed) -> Vec<Readiness> {
    let mut out = Vec::new();
    for container in &pod.spec.containers {
        let (started, ready) = match observed.containers.get(&container.name) {
            Some(status) if started(container, status) => {
                (true, container.readiness_probe.is_none() || status.readiness == Some(ProbeResult::Success))
            }
            _ => (false, false),
        };
        out.push(Readiness { container: container.name.clone(), started, ready });
    }
    out
}

fn conditions(pod: &Pod, observed: &Observed, phase: PodPhase, readiness: &[Readiness]) -> Vec<PodCondition> {
    let condition = |kind: &str, status: bool, reason: Option<&str>, message: Option<String>| PodCondition {
        kind: kind.into(),
        status: ConditionStatus::from(status),
        last_probe_time: None,
        last_transition_time: None,
        reason: if status { None } else { reason.map(Into::into) },
        message: if status { None } else { message },
    };
    let sandbox_ok = sandbox_to_create(observed).is_none();
    let incomplete: Vec<&str> = if next_init_container(pod, observed).done {
        Vec::new()
    } else {
        let complete = |c: &&Container| {
            matches!(observed.containers.get(&c.name).map(|s| s.state), Some(RunState::Exited { exit_code: 0, .. }))
        };
        pod.spec.init_containers.iter().filter(|c| !complete(c)).map(|c| c.name.as_str()).collect()
    };
    let unready: Vec<&str> = readiness.iter().filter(|r| !r.ready).map(|r| r.container.as_str()).collect();
    let (reason, message) = if phase == PodPhase::Succeeded {
        ("PodCompleted", None)
    } else if phase == PodPhase::Failed {
        ("PodFailed", None)
    } else {
        ("ContainersNotReady", Some(format!("containers with unready status: [{}]", unready.join(" "))))
    };
    let ready = unready.is_empty() && !matches!(phase, PodPhase::Succeeded | PodPhase::Failed);
    vec![
        condition("PodReadyToStartContainers", sandbox_ok, None, None),
        condition(
            "Initialized",
            incomplete.is_empty(),
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: [{}]", incomplete.join(" "))),
        ),
        condition("ContainersReady", ready, Some(reason), message.clone()),
        condition("Ready", ready, Some(reason), message),
    ]
}
