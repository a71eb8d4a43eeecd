//! The Pod as Kubernetes writes it: `apiVersion: v1`, `kind: Pod`.
//!
//! ```text
//! apiVersion: v1
//! kind: Pod
//! metadata: {name, namespace, uid, labels, ...}    meta.rs   ObjectMeta
//! spec:     {initContainers, containers, volumes,  spec.rs   PodSpec, Container, Probe, Volume
//!            restartPolicy, ...}
//! status:   {phase, conditions, podIP,             status.rs PodStatus, ContainerStatus
//!            containerStatuses, ...}
//! ```
//!
//! Field names and shapes are Kubernetes' own, so a manifest written for a real cluster
//! loads here unchanged, and what we write back a real cluster would accept.
//!
//! Loading a manifest is three steps, as in kubectl and the API server:
//! 1. **decode** the YAML or JSON into the typed structs, noting every field the structs
//!    do not have. A typo (`imagee`) is reported as `unknown field
//!    "spec.containers[0].imagee"`, a Kubernetes field kthw does not implement
//!    (`spec.tolerations`) as ignored; in [`Strictness::Strict`] an unknown field is an error,
//!    like `kubectl apply --validate=strict`;
//! 2. **validate** ([`validate`]): names, references between fields, quantities, each
//!    problem with its field path and how to fix it;
//! 3. **default** ([`Pod::apply_defaults`]) when the node needs the full picture.
//!
//! What Kubernetes does differently: its types are generated Go structs with generated
//! defaulting, conversion between API versions, and validation code; the API server
//! decodes strictly (unknown fields are warnings returned in the `Warning` header, errors
//! with `fieldValidation=Strict`). Fields we do not model are listed in [`IGNORED_FIELDS`]
//! and are dropped, not stored.

mod meta;
mod quantity;
mod spec;
mod status;
mod validate;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use meta::ObjectMeta;
pub use quantity::{QUANTITY_FORMAT, Quantity};
pub use spec::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction, HostPathType,
    HostPathVolumeSource, HttpGetAction, HttpHeader, IntOrString, PodSecurityContext, PodSpec, Probe, Protocol,
    PullPolicy, ResourceRequirements, Resources, RestartPolicy, SecurityContext, TcpSocketAction, Volume, VolumeMount,
};
pub use status::{
    ConditionStatus, ContainerState, ContainerStatus, PodCondition, PodIp, PodPhase, PodStatus, StateRunning,
    StateTerminated, StateWaiting,
};
pub use validate::validate;

use crate::{Error, Result};

// ANCHOR: pod
/// A pod: one or more containers that share a network namespace, volumes and a fate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// `v1`: pods are in the core API group, version 1.
    #[serde(default)]
    pub api_version: String,
    /// `Pod`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    /// Absent in what users write; the kubelet fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}
// ANCHOR_END: pod

/// A problem with one field of a manifest, as Kubernetes reports them:
/// `spec.containers[1].name: Duplicate value: "web"`, followed by how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, `spec.containers[0].image`.
    pub field: String,
    /// What is wrong, and how to fix it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The problems one per line, for [`Error::Invalid`].
pub fn bullet_list(problems: &[FieldError]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

/// A field of the manifest that the typed structs do not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// Not a Kubernetes field here: most likely a typo or a wrong indentation.
    UnknownField(String),
    /// A Kubernetes field kthw does not implement: dropped.
    IgnoredField(String),
}

impl Warning {
    /// The field's path, `spec.containers[0].imagee`.
    pub fn path(&self) -> &str {
        match self {
            Warning::UnknownField(path) | Warning::IgnoredField(path) => path,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // kubectl's own wording, so the message searches well.
            Warning::UnknownField(path) => write!(f, "unknown field \"{path}\""),
            Warning::IgnoredField(path) => write!(f, "field \"{path}\" is not implemented by kthw and is ignored"),
        }
    }
}

/// What to do with unknown fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Report them as warnings (kubectl's default, `--validate=warn`).
    #[default]
    Warn,
    /// Refuse the manifest (`--validate=strict`).
    Strict,
}

/// The text format of a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// A decoded object and what decoding noticed.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded<T> {
    pub object: T,
    pub warnings: Vec<Warning>,
}

/// Kubernetes fields kthw knows but does not implement, with indices written `[*]`, any
/// container as `containers[*]`, any probe as `*Probe`. Reported as
/// [`Warning::IgnoredField`], never as unknown, so `kubectl get pod -o yaml` output loads.
pub const IGNORED_FIELDS: &[&str] = &[
    "metadata.selfLink",
    "spec.activeDeadlineSeconds",
    "spec.affinity",
    "spec.automountServiceAccountToken",
    "spec.dnsConfig",
    "spec.dnsPolicy",
    "spec.enableServiceLinks",
    "spec.ephemeralContainers",
    "spec.hostAliases",
    "spec.hostIPC",
    "spec.hostPID",
    "spec.hostUsers",
    "spec.imagePullSecrets",
    "spec.nodeSelector",
    "spec.os",
    "spec.overhead",
    "spec.preemptionPolicy",
    "spec.priority",
    "spec.priorityClassName",
    "spec.readinessGates",
    "spec.resourceClaims",
    "spec.resources",
    "spec.runtimeClassName",
    "spec.schedulerName",
    "spec.schedulingGates",
    "spec.serviceAccount",
    "spec.serviceAccountName",
    "spec.setHostnameAsFQDN",
    "spec.tolerations",
    "spec.topologySpreadConstraints",
    "spec.securityContext.seccompProfile",
    "spec.securityContext.seLinuxOptions",
    "spec.securityContext.supplementalGroups",
    "spec.securityContext.supplementalGroupsPolicy",
    "spec.securityContext.sysctls",
    "spec.securityContext.fsGroupChangePolicy",
    "spec.securityContext.appArmorProfile",
    "spec.securityContext.windowsOptions",
    "spec.containers[*].envFrom",
    "spec.containers[*].lifecycle",
    "spec.containers[*].resizePolicy",
    "spec.containers[*].restartPolicy",
    "spec.containers[*].stdinOnce",
    "spec.containers[*].volumeDevices",
    "spec.containers[*].resources.claims",
    "spec.containers[*].volumeMounts[*].mountPropagation",
    "spec.containers[*].volumeMounts[*].subPathExpr",
    "spec.containers[*].volumeMounts[*].recursiveReadOnly",
    "spec.containers[*].*Probe.grpc",
    "spec.containers[*].*Probe.terminationGracePeriodSeconds",
    "spec.containers[*].securityContext.seccompProfile",
    "spec.containers[*].securityContext.seLinuxOptions",
    "spec.containers[*].securityContext.appArmorProfile",
    "spec.containers[*].securityContext.procMount",
    "spec.containers[*].securityContext.windowsOptions",
    "spec.volumes[*].awsElasticBlockStore",
    "spec.volumes[*].azureDisk",
    "spec.volumes[*].azureFile",
    "spec.volumes[*].cephfs",
    "spec.volumes[*].cinder",
    "spec.volumes[*].configMap",
    "spec.volumes[*].csi",
    "spec.volumes[*].downwardAPI",
    "spec.volumes[*].ephemeral",
    "spec.volumes[*].fc",
    "spec.volumes[*].flexVolume",
    "spec.volumes[*].gcePersistentDisk",
    "spec.volumes[*].gitRepo",
    "spec.volumes[*].glusterfs",
    "spec.volumes[*].image",
    "spec.volumes[*].iscsi",
    "spec.volumes[*].nfs",
    "spec.volumes[*].persistentVolumeClaim",
    "spec.volumes[*].projected",
    "spec.volumes[*].rbd",
    "spec.volumes[*].secret",
    "status.nominatedNodeName",
    "status.ephemeralContainerStatuses",
    "status.resize",
    "status.resourceClaimStatuses",
    "status.containerStatuses[*].allocatedResources",
    "status.containerStatuses[*].allocatedResourcesStatus",
    "status.containerStatuses[*].resources",
    "status.containerStatuses[*].user",
    "status.containerStatuses[*].volumeMounts",
    "status.containerStatuses[*].stopSignal",
];

/// A path from serde_ignored in Kubernetes' notation: `spec.containers[0].imagee`.
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// `spec.initContainers[2].livenessProbe.grpc` → `spec.containers[*].*Probe.grpc`, the
/// form of [`IGNORED_FIELDS`].
fn pattern(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        out.push_str("[*]");
        rest = rest[open..].find(']').map_or("", |close| &rest[open + close + 1..]);
    }
    out.push_str(rest);
    out.replace("initContainers[*]", "containers[*]")
        .replace("initContainerStatuses[*]", "containerStatuses[*]")
        .replace("livenessProbe.", "*Probe.")
        .replace("readinessProbe.", "*Probe.")
        .replace("startupProbe.", "*Probe.")
}

fn classify(path: String) -> Warning {
    if IGNORED_FIELDS.contains(&pattern(&path).as_str()) {
        Warning::IgnoredField(path)
    } else {
        Warning::UnknownField(path)
    }
}

// ANCHOR: decode
/// Decodes one object from YAML or JSON, reporting every field that `T` does not have.
/// Generic, so later chapters decode their kinds the same way.
///
/// # Errors
/// The problems, each with its field path, when the text is not YAML/JSON or a field
/// has the wrong type (a string for `containerPort`, `restartPolicy: Sometimes`).
pub fn decode<T: DeserializeOwned>(text: &str, format: Format) -> Result<Decoded<T>, Vec<FieldError>> {
    let mut warnings = Vec::new();
    let mut note = |path: serde_ignored::Path| warnings.push(classify(field_path(&path)));
    // Two wrappers around the format's deserializer: serde_ignored sees the fields
    // nobody asked for, serde_path_to_error remembers where a type error happened.
    let decoded = match format {
        Format::Yaml => {
            let documents: Vec<_> = serde_yaml::Deserializer::from_str(text).collect();
            if documents.len() != 1 {
                let why = format!("the file holds {} YAML documents; put exactly one object in it", documents.len());
                return Err(vec![FieldError::new("<file>", why)]);
            }
            let document = documents.into_iter().next().expect("one document");
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(document, &mut note))
                .map_err(|e| (e.path().to_string(), without_path(e.inner().to_string())))
        }
        Format::Json => {
            let mut json = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut json, &mut note))
                .map_err(|e| (e.path().to_string(), e.inner().to_string()))
                .and_then(|object| json.end().map(|()| object).map_err(|e| (".".to_string(), e.to_string())))
        }
    };
    let object = decoded.map_err(|(field, why)| {
        let field = if field == "." { "<file>".to_string() } else { field };
        vec![FieldError::new(field, why)]
    })?;
    // Sorted by path: serde reports them in the order it finishes each object, which
    // is not the order of the text.
    warnings.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(Decoded { object, warnings })
}
// ANCHOR_END: decode

/// serde_yaml starts its messages with the path, which we print already.
fn without_path(message: String) -> String {
    match message.split_once(": ") {
        Some((head, tail)) if !head.contains(' ') => tail.to_string(),
        _ => message,
    }
}

impl Pod {
    /// Reads a Pod manifest (YAML, or JSON, which YAML includes): decodes it, applies
    /// `strictness` to unknown fields and validates it. `what` names the source in errors
    /// (a file name). Returns the pod and the warnings to print.
    ///
    /// # Errors
    /// [`Error::Invalid`] listing every problem: decoding errors, unknown fields under
    /// [`Strictness::Strict`], and what [`validate`] finds.
    pub fn load(text: &str, what: &str, strictness: Strictness) -> Result<Decoded<Pod>> {
        let format = if text.trim_start().starts_with('{') { Format::Json } else { Format::Yaml };
        let invalid = |problems| Error::Invalid { what: what.to_string(), kind: "Pod", problems };
        let decoded = decode::<Pod>(text, format).map_err(invalid)?;
        let mut problems = Vec::new();
        if strictness == Strictness::Strict {
            for warning in &decoded.warnings {
                if let Warning::UnknownField(path) = warning {
                    problems.push(FieldError::new(
                        path.clone(),
                        "unknown field: check its spelling and indentation against the Kubernetes API reference",
                    ));
                }
            }
        }
        problems.extend(validate(&decoded.object));
        if problems.is_empty() { Ok(decoded) } else { Err(invalid(problems)) }
    }

    /// Reads a Pod manifest from a file; see [`Pod::load`].
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, else as [`Pod::load`].
    pub fn load_file(path: &std::path::Path, strictness: Strictness) -> Result<Decoded<Pod>> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        Pod::load(&text, &path.display().to_string(), strictness)
    }

    /// The manifest as YAML, leaving out absent and empty fields as Kubernetes does.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a Pod always serialises")
    }

    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Pod always serialises")
    }

    /// `metadata.name` (empty if there is none; [`validate`] refuses that).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, `default` when absent.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Writes in the defaults the API server would (Kubernetes' `SetDefaults_Pod` and
    /// friends), so a reader of the object sees what will really happen.
    pub fn apply_defaults(&mut self) {
        let spec = &mut self.spec;
        spec.restart_policy.get_or_insert(RestartPolicy::Always);
        spec.termination_grace_period_seconds.get_or_insert(30);
        for container in spec.init_containers.iter_mut().chain(spec.containers.iter_mut()) {
            container.image_pull_policy = Some(container.pull_policy());
            container.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
            container.termination_message_policy.get_or_insert_with(|| "File".into());
            for port in &mut container.ports {
                port.protocol.get_or_insert(Protocol::Tcp);
            }
            // A limit without a request: the request is the limit.
            if let Some(resources) = &mut container.resources {
                for (name, limit) in &resources.limits {
                    resources.requests.entry(name.clone()).or_insert_with(|| limit.clone());
                }
            }
            let probes = [&mut container.liveness_probe, &mut container.readiness_probe, &mut container.startup_probe];
            for probe in probes.into_iter().flatten() {
                probe.initial_delay_seconds.get_or_insert(0);
                probe.period_seconds.get_or_insert(10);
                probe.timeout_seconds.get_or_insert(1);
                probe.failure_threshold.get_or_insert(3);
                probe.success_threshold.get_or_insert(1);
                if let Some(http) = &mut probe.http_get {
                    http.path.get_or_insert_with(|| "/".into());
                    http.scheme.get_or_insert_with(|| "HTTP".into());
                }
            }
        }
        for volume in &mut spec.volumes {
            if let Some(host_path) = &mut volume.host_path {
                host_path.kind.get_or_insert(HostPathType::Unset);
            }
        }
        self.metadata.namespace.get_or_insert_with(|| "default".into());
    }
}

/// Decodes any object from YAML with unknown fields reported; see [`decode`].
///
/// # Errors
/// As [`decode`].
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<Decoded<T>, Vec<FieldError>> {
    decode(text, Format::Yaml)
}

/// Decodes any object from JSON with unknown fields reported; see [`decode`].
///
/// # Errors
/// As [`decode`].
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<Decoded<T>, Vec<FieldError>> {
    decode(text, Format::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ignored-field patterns fold indices, init containers and probe kinds.
    #[test]
    fn patterns_fold_indices() {
        assert_eq!(pattern("spec.initContainers[2].livenessProbe.grpc"), "spec.containers[*].*Probe.grpc");
        assert_eq!(pattern("spec.volumes[10].configMap"), "spec.volumes[*].configMap");
        assert_eq!(pattern("spec.dnsPolicy"), "spec.dnsPolicy");
    }
}
