//! `status`: what the kubelet saw. Written by the node, read by everyone else.
//!
//! A few field names are not plain camelCase in Kubernetes (`podIP`, `hostIPs`,
//! `imageID`, `containerID`): they are renamed one by one. Fields that Kubernetes always
//! writes (a container status's `ready`, `restartCount`, `image`, `imageID`, `state`,
//! `lastState`) are always written here too.

use serde::{Deserialize, Serialize};

/// The observed state of a pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodPhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    /// Why the pod is in this phase, for humans (e.g. `Evicted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node's IP.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, rename = "hostIPs", skip_serializing_if = "Vec::is_empty")]
    pub host_ips: Vec<PodIp>,
    /// The pod's IP, shared by all its containers.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
    /// When the kubelet accepted the pod (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// `Guaranteed`, `Burstable` or `BestEffort`, from the requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<String>,
}

/// Where the pod is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, but not every container runs yet (init containers, image pulls, back-off).
    Pending,
    /// Every container was started and at least one runs (or restarts).
    Running,
    /// Every container exited 0 and none will be restarted.
    Succeeded,
    /// Every container exited, one at least with an error, and none will be restarted.
    Failed,
    /// The node could not be asked.
    Unknown,
}

/// `{type: Ready, status: "True"}`: one fact about the pod, with when it last changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    /// `PodScheduled`, `PodReadyToStartContainers`, `Initialized`, `ContainersReady`, `Ready`.
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ConditionStatus,
    /// kubectl writes `lastProbeTime: null`; read as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A condition's value: the strings `"True"`, `"False"`, `"Unknown"`, as Kubernetes writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { ConditionStatus::True } else { ConditionStatus::False }
    }
}

/// `{ip: 10.88.0.5}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodIp {
    pub ip: String,
}

/// One container as the kubelet saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    #[serde(default)]
    pub state: ContainerState,
    /// The previous run, when the container was restarted (`{}` otherwise).
    #[serde(default)]
    pub last_state: ContainerState,
    /// Running and passing its readiness probe.
    #[serde(default)]
    pub ready: bool,
    /// Running and past its startup probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default)]
    pub image: String,
    #[serde(default, rename = "imageID")]
    pub image_id: String,
    /// `<runtime>://<id>`, e.g. `kthw://3f2a…`.
    #[serde(default, rename = "containerID", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

/// At most one of the three is set; none for "no state" (`{}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<StateWaiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<StateRunning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<StateTerminated>,
}

impl ContainerState {
    /// `{waiting: {reason, message}}`.
    pub fn waiting(reason: &str, message: Option<String>) -> ContainerState {
        ContainerState { waiting: Some(StateWaiting { reason: Some(reason.into()), message }), ..Default::default() }
    }

    /// `{terminated: {...}}`.
    pub fn terminated(terminated: StateTerminated) -> ContainerState {
        ContainerState { terminated: Some(terminated), ..Default::default() }
    }
}

/// Not running yet or again: `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, ...
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateWaiting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Running since `startedAt`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRunning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// Exited: `Completed` (code 0), `Error`, `OOMKilled`, ...
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateTerminated {
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, rename = "containerID", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

impl StateTerminated {
    /// The reason the kubelet gives an exit (from what the runtime reports):
    /// `OOMKilled` when the OOM killer ended it, else `Completed` for code 0 and `Error`.
    pub fn reason_for(exit_code: i32, oom_killed: bool) -> &'static str {
        match (oom_killed, exit_code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            (false, _) => "Error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An OOM kill wins over the exit code (137 from SIGKILL); otherwise 0 is Completed.
    #[test]
    fn terminated_reasons() {
        assert_eq!(StateTerminated::reason_for(0, false), "Completed");
        assert_eq!(StateTerminated::reason_for(3, false), "Error");
        assert_eq!(StateTerminated::reason_for(137, true), "OOMKilled");
    }

    // A state with one of its three set serialises as Kubernetes writes it.
    #[test]
    fn states_serialise_with_one_key() {
        let waiting = ContainerState::waiting("CrashLoopBackOff", Some("back-off 10s".into()));
        assert_eq!(
            serde_json::to_string(&waiting).unwrap(),
            r#"{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 10s"}}"#
        );
        assert_eq!(serde_json::to_string(&ContainerState::default()).unwrap(), "{}");
    }
}
