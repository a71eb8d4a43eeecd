//! The columns of `kthw pod ls`, by kubectl's rules: READY, STATUS and RESTARTS, from
//! the pod's status alone, as `kubectl get pods` prints them.
//!
//! STATUS is not the phase. A pod whose container crash-loops is `Running` by phase; a
//! person wants to read `CrashLoopBackOff`. kubectl's `printPod`
//! (`pkg/printers/internalversion/printers.go` in Kubernetes) makes one word this way:
//! 1. start from the phase, or the status's `reason` when it has one (`Evicted`);
//! 2. the first init container that has not completed decides while the pod
//!    initialises: `Init:Error` (it failed), `Init:CrashLoopBackOff` (it waits for a
//!    reason), or `Init:N/M` (N of M done, the next one running or about to);
//! 3. once initialised, the first app container that waits or has terminated gives its
//!    reason: `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `Completed`,
//!    `Error`, `OOMKilled`; but `Completed` while another container still runs reads
//!    `Running` (or `NotReady` when the pod is not Ready);
//! 4. a pod being deleted is `Terminating`.
//!
//! What kubectl does differently: it counts the restarts of sidecars (init containers
//! with `restartPolicy: Always`) and treats them as app containers, shows how long ago the
//! last restart was (`3 (2m ago)`), and shows `SchedulingGated` and, for a pod of an
//! unreachable node, `Unknown`. We show `Unknown` when the pod's supervisor died.

use crate::api::{ConditionStatus, ContainerStatus, Pod, PodPhase};

use super::{executor, store::PodRecord};

/// One pod's READY, STATUS and RESTARTS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// App containers running and ready, of all app containers: `1/2`.
    pub ready: String,
    pub status: String,
    /// The init containers' restarts while initialising, the app containers' after.
    pub restarts: i32,
}

/// kubectl's columns for `pod`, from its spec (how many containers) and status.
pub fn summary(pod: &Pod) -> Summary {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_default();
    let mut reason = status.reason.clone().unwrap_or(phase);
    let mut restarts = 0;
    let mut initializing = false;
    let inits = pod.spec.init_containers.len();
    for (i, c) in status.init_container_statuses.iter().enumerate() {
        restarts += c.restart_count;
        let waiting = c.state.waiting.as_ref().and_then(|w| w.reason.clone());
        reason = match (&c.state.terminated, waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            (Some(t), _) => format!("Init:{}", t.reason.clone().unwrap_or_else(|| format!("ExitCode:{}", t.exit_code))),
            (None, Some(w)) if w != "PodInitializing" => format!("Init:{w}"),
            _ => format!("Init:{i}/{inits}"),
        };
        initializing = true;
        break;
    }
    let condition = |kind: &str| status.conditions.iter().any(|c| c.kind == kind && c.status == ConditionStatus::True);
    let mut ready = 0;
    if !initializing || condition("Initialized") {
        restarts = 0;
        let mut running = false;
        // From the last to the first, as kubectl: the first container with a reason wins.
        for c in status.container_statuses.iter().rev() {
            restarts += c.restart_count;
            match container_reason(c) {
                Some(r) => reason = r,
                None if c.ready && c.state.running.is_some() => {
                    running = true;
                    ready += 1;
                }
                None => {}
            }
        }
        if reason == "Completed" && running {
            reason = if condition("Ready") { "Running" } else { "NotReady" }.into();
        }
    }
    let terminal = matches!(status.phase, Some(PodPhase::Succeeded | PodPhase::Failed));
    if pod.metadata.deletion_timestamp.is_some() && !terminal {
        reason = "Terminating".into();
    }
    Summary { ready: format!("{ready}/{}", pod.spec.containers.len()), status: reason, restarts }
}

/// A waiting or terminated container's reason (`ExitCode:N` for an exit without one).
fn container_reason(c: &ContainerStatus) -> Option<String> {
    if let Some(reason) = c.state.waiting.as_ref().and_then(|w| w.reason.clone()).filter(|r| !r.is_empty()) {
        return Some(reason);
    }
    let t = c.state.terminated.as_ref()?;
    Some(t.reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| format!("ExitCode:{}", t.exit_code)))
}

/// [`summary`] of a pod on this node: `Unknown` when its supervisor died without saying
/// how the pod ended (see [`executor::phase`]).
pub fn of_record(record: &PodRecord) -> Summary {
    let mut summary = summary(&record.pod);
    if executor::phase(record) == "Unknown" {
        summary.status = "Unknown".into();
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Container, ContainerState, PodCondition, PodSpec, PodStatus, StateRunning, StateTerminated};

    fn running() -> ContainerState {
        ContainerState { running: Some(StateRunning::default()), ..Default::default() }
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::terminated(StateTerminated {
            exit_code: code,
            reason: Some(StateTerminated::reason_for(code, false).into()),
            ..Default::default()
        })
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState::waiting(reason, None)
    }

    /// A pod with these init and app containers' states (`true`: ready), in `phase`.
    fn pod(inits: Vec<ContainerState>, apps: Vec<(ContainerState, bool, i32)>, phase: PodPhase) -> Pod {
        let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
        let (init_names, app_names) = (names("init", inits.len()), names("app", apps.len()));
        let container = |name: &String| Container { name: name.clone(), ..Default::default() };
        let initialized = inits.iter().all(|s| s.terminated.as_ref().is_some_and(|t| t.exit_code == 0));
        let all_ready = apps.iter().all(|(_, ready, _)| *ready);
        let condition = |kind: &str, status: bool| PodCondition {
            kind: kind.into(),
            status: status.into(),
            last_probe_time: None,
            last_transition_time: None,
            reason: None,
            message: None,
        };
        let status = |(name, state): (&String, ContainerState), ready: bool, restart_count: i32| ContainerStatus {
            name: name.clone(),
            state,
            ready,
            restart_count,
            ..Default::default()
        };
        Pod {
            spec: PodSpec {
                init_containers: init_names.iter().map(container).collect(),
                containers: app_names.iter().map(container).collect(),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase),
                conditions: vec![condition("Initialized", initialized), condition("Ready", all_ready)],
                init_container_statuses: init_names.iter().zip(inits).map(|c| status(c, false, 0)).collect(),
                container_statuses: app_names
                    .iter()
                    .zip(apps)
                    .map(|(name, (state, ready, restarts))| status((name, state), ready, restarts))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn status(pod: &Pod) -> (String, String, i32) {
        let s = summary(pod);
        (s.ready, s.status, s.restarts)
    }

    // The STATUS column reads as `kubectl get pods` would print the same status.
    #[test]
    fn status_column_follows_kubectl() {
        let s = |ready: &str, status: &str, restarts: i32| (ready.to_string(), status.to_string(), restarts);
        use PodPhase::*;
        // Running and ready.
        assert_eq!(status(&pod(vec![], vec![(running(), true, 0)], Running)), s("1/1", "Running", 0));
        // Not started yet.
        assert_eq!(
            status(&pod(vec![], vec![(waiting("ContainerCreating"), false, 0)], Pending)),
            s("0/1", "ContainerCreating", 0)
        );
        // The first of one init container runs; the app waits for it.
        let app = || vec![(waiting("PodInitializing"), false, 0)];
        assert_eq!(status(&pod(vec![running()], app(), Pending)), s("0/1", "Init:0/1", 0));
        // The second of two has not started yet.
        assert_eq!(status(&pod(vec![exited(0), waiting("PodInitializing")], app(), Pending)), s("0/1", "Init:1/2", 0));
        // An init container that failed, and one in back-off.
        assert_eq!(status(&pod(vec![exited(1)], app(), Pending)), s("0/1", "Init:Error", 0));
        assert_eq!(
            status(&pod(vec![waiting("CrashLoopBackOff")], app(), Pending)),
            s("0/1", "Init:CrashLoopBackOff", 0)
        );
        // Initialised; the app container is about to start.
        assert_eq!(status(&pod(vec![exited(0)], app(), Pending)), s("0/1", "PodInitializing", 0));
        // An app container in back-off: the phase says Running, STATUS says why not.
        assert_eq!(
            status(&pod(vec![], vec![(waiting("CrashLoopBackOff"), false, 3)], Running)),
            s("0/1", "CrashLoopBackOff", 3)
        );
        // Done: every container exited 0, or one failed (the first container's reason wins).
        assert_eq!(status(&pod(vec![], vec![(exited(0), false, 0)], Succeeded)), s("0/1", "Completed", 0));
        assert_eq!(
            status(&pod(vec![], vec![(exited(2), false, 0), (exited(0), false, 0)], Failed)),
            s("0/2", "Error", 0)
        );
        // One completed, one still runs and is ready: Running if the pod is Ready, else
        // (a readiness gate holds it) NotReady.
        let mut mixed = pod(vec![], vec![(exited(0), true, 0), (running(), true, 1)], Running);
        assert_eq!(status(&mixed), s("1/2", "Running", 1));
        mixed.status.as_mut().unwrap().conditions[1].status = ConditionStatus::False;
        assert_eq!(status(&mixed), s("1/2", "NotReady", 1));
        // Being deleted.
        let mut deleting = pod(vec![], vec![(running(), true, 0)], Running);
        deleting.metadata.deletion_timestamp = Some("2026-05-01T10:00:00Z".into());
        assert_eq!(status(&deleting).1, "Terminating");
    }
}
