//! `metadata`: the part every Kubernetes object has (see chapter 6's `object.rs` for how
//! the API server sets its server-owned fields).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An object's identity and bookkeeping. Kubernetes' `ObjectMeta`, with the fields a
/// node and a learner need; the rest (`managedFields`, `ownerReferences`, ...) is kept as
/// JSON so `kubectl get -o yaml` output loads and round-trips.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Unique in its namespace; a DNS subdomain (`web`, `web-1.example`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A prefix the API server completes with random letters when `name` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// `default` when not given (set by the API server or `kthw pod run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Set by the server: unique over time, so a re-created `web` is a different pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by the server: changes on every write (optimistic concurrency, watches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Set by the server: goes up when the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// RFC 3339, UTC (`2026-05-01T10:00:00Z`). kubectl sends `null` here, read as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Set when someone asked to delete the object: the kubelet then stops the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// For selecting: `kubectl get pods -l app=web`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// For anything else: notes, tools' state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Kept as JSON: the node does not use them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<serde_json::Value>,
}
