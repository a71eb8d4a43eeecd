//! The kinds the API server knows, and how a later chapter adds its own.
//!
//! The server's core (routing, storage, watch, patches) knows nothing about any kind.
//! Everything kind-specific is a [`Kind`] value in the [`Registry`]: where it lives in the
//! URL space (group, version, plural), whether it is namespaced, its short names for
//! kubectl, how to validate and default it, and the columns `kubectl get` prints. A later
//! chapter adds Deployments or Services with one call to [`Registry::register`].
//!
//! What the real kube-apiserver does differently: each built-in kind has a "registry
//! strategy" in Go (`pkg/registry/core/pod/strategy.go`: PrepareForCreate, Validate,
//! PrepareForUpdate, ...) and a table printer (`pkg/printers/internalversion`); new kinds
//! arrive as CustomResourceDefinitions at run time, with OpenAPI schemas for validation.

use serde_json::{Value, json};

/// Why an object is invalid: a field path and what is wrong with it (422 Invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Cause {
        Cause { field: field.into(), message: message.into() }
    }
}

/// One column of `kubectl get`'s table.
#[derive(Clone)]
pub struct Column {
    pub name: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
    /// The cell of this column for an object.
    pub cell: fn(&Value) -> Value,
}

impl Column {
    /// The NAME column every table starts with.
    pub fn name() -> Column {
        Column { name: "Name", priority: 0, cell: |o| json!(crate::object::name(o).unwrap_or_default()) }
    }
    /// The AGE column.
    pub fn age() -> Column {
        Column { name: "Age", priority: 0, cell: |o| json!(crate::object::age(o)) }
    }
}

// ANCHOR: kind
/// Everything the server needs to know about one kind.
#[derive(Clone)]
pub struct Kind {
    /// The API group: `""` for the core group (`/api/v1`), `apps` for `/apis/apps/v1`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The resource name in URLs: `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// kubectl's abbreviations: `po` for pods. Without them `kubectl get po` fails.
    pub short_names: &'static [&'static str],
    /// Whether `.status` is written only through the `/status` subresource.
    pub status_subresource: bool,
    /// Fills in defaults on create (e.g. a new Pod's phase is Pending).
    pub default: fn(&mut Value),
    /// Checks an object before it is stored; typed clients cannot read invalid ones.
    pub validate: fn(&Value) -> Vec<Cause>,
    /// The columns of `kubectl get`.
    pub columns: Vec<Column>,
}
// ANCHOR_END: kind

impl Kind {
    /// `v1` for the core group, `apps/v1` otherwise: the `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The store key prefix of all objects of this kind (in `namespace`, if given).
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("/registry/{}/{ns}/", self.resource_key()),
            None => format!("/registry/{}/", self.resource_key()),
        }
    }

    /// The store key of one object: `/registry/pods/default/web`, `/registry/nodes/n1`.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }

    fn resource_key(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }
}

/// The set of known kinds.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<Kind>,
}

impl Registry {
    /// The kinds of this chapter: Namespace, Pod, Node, Event, ConfigMap.
    pub fn builtin() -> Registry {
        let mut registry = Registry::default();
        for kind in [namespace(), pod(), node(), event(), config_map()] {
            registry.register(kind);
        }
        registry
    }

    // ANCHOR: register
    /// Adds a kind (or replaces one with the same group, version and plural).
    pub fn register(&mut self, kind: Kind) {
        self.kinds.retain(|k| (k.group, k.version, k.plural) != (kind.group, kind.version, kind.plural));
        self.kinds.push(kind);
    }
    // ANCHOR_END: register

    /// The kind served at `/api[s]/GROUP/VERSION/PLURAL`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// The kinds of one group version.
    pub fn in_group_version<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a Kind> {
        self.kinds.iter().filter(move |k| k.group == group && k.version == version)
    }

    /// The named groups (not the core group) and their versions, in registration order.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for kind in self.kinds.iter().filter(|k| !k.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == kind.group) {
                Some((_, versions)) if !versions.contains(&kind.version) => versions.push(kind.version),
                Some(_) => {}
                None => groups.push((kind.group, vec![kind.version])),
            }
        }
        groups
    }
}

fn no_defaults(_: &mut Value) {}

fn always_valid(_: &Value) -> Vec<Cause> {
    Vec::new()
}

fn namespace() -> Kind {
    Kind {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        status_subresource: true,
        default: |ns| {
            if ns.pointer("/status/phase").is_none() {
                ns["status"] = json!({"phase": "Active"});
            }
        },
        validate: always_valid,
        columns: vec![
            Column::name(),
            Column { name: "Status", priority: 0, cell: |o| o.pointer("/status/phase").cloned().unwrap_or(json!("")) },
            Column::age(),
        ],
    }
}

// ANCHOR: pod
fn pod() -> Kind {
    Kind {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        status_subresource: true,
        default: default_pod,
        validate: validate_pod,
        columns: vec![
            Column::name(),
            Column { name: "Ready", priority: 0, cell: pod_ready },
            Column { name: "Status", priority: 0, cell: |o| o.pointer("/status/phase").cloned().unwrap_or(json!("")) },
            Column { name: "Restarts", priority: 0, cell: pod_restarts },
            Column::age(),
            Column {
                name: "IP",
                priority: 1,
                cell: |o| o.pointer("/status/podIP").cloned().unwrap_or(json!("<none>")),
            },
            Column {
                name: "Node",
                priority: 1,
                cell: |o| o.pointer("/spec/nodeName").cloned().unwrap_or(json!("<none>")),
            },
        ],
    }
}

/// A new Pod is Pending, and a port without a protocol is TCP (kubectl describe shows it).
fn default_pod(pod: &mut Value) {
    if pod.pointer("/status/phase").is_none() {
        pod["status"] = json!({"phase": "Pending"});
    }
    let containers = pod.pointer_mut("/spec/containers").and_then(Value::as_array_mut);
    for container in containers.into_iter().flatten() {
        let ports = container.get_mut("ports").and_then(Value::as_array_mut);
        for port in ports.into_iter().flatten().filter(|p| p.get("protocol").is_none()) {
            port["protocol"] = json!("TCP");
        }
    }
}

/// A Pod needs at least one container, each with a name and an image: typed clients
/// (the Python client, client-go) cannot even read a list that holds a pod without them.
fn validate_pod(pod: &Value) -> Vec<Cause> {
    let Some(containers) = pod.pointer("/spec/containers").and_then(Value::as_array) else {
        return vec![Cause::new("spec.containers", "Required value")];
    };
    if containers.is_empty() {
        return vec![Cause::new("spec.containers", "Required value: a pod needs at least one container")];
    }
    let mut causes = Vec::new();
    for (i, container) in containers.iter().enumerate() {
        for field in ["name", "image"] {
            if container.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::new(format!("spec.containers[{i}].{field}"), "Required value"));
            }
        }
    }
    causes
}
// ANCHOR_END: pod

fn pod_ready(pod: &Value) -> Value {
    let total = pod.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == json!(true)).count());
    json!(format!("{ready}/{total}"))
}

fn pod_restarts(pod: &Value) -> Value {
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    let restarts: i64 = statuses.map_or(0, |s| s.iter().filter_map(|c| c["restartCount"].as_i64()).sum());
    json!(restarts.to_string())
}

fn node() -> Kind {
    Kind {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        status_subresource: true,
        default: no_defaults,
        validate: always_valid,
        columns: vec![
            Column::name(),
            Column { name: "Status", priority: 0, cell: node_status },
            Column::age(),
            Column {
                name: "Version",
                priority: 0,
                cell: |o| o.pointer("/status/nodeInfo/kubeletVersion").cloned().unwrap_or(json!("")),
            },
        ],
    }
}

fn node_status(node: &Value) -> Value {
    let conditions = node.pointer("/status/conditions").and_then(Value::as_array);
    let ready = conditions.and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    json!(match ready.and_then(|c| c["status"].as_str()) {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    })
}

fn event() -> Kind {
    Kind {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        status_subresource: false,
        default: no_defaults,
        validate: always_valid,
        columns: vec![
            Column::name(),
            Column { name: "Type", priority: 0, cell: |o| o.get("type").cloned().unwrap_or(json!("")) },
            Column { name: "Reason", priority: 0, cell: |o| o.get("reason").cloned().unwrap_or(json!("")) },
            Column {
                name: "Object",
                priority: 0,
                cell: |o| {
                    let kind = o.pointer("/involvedObject/kind").and_then(Value::as_str).unwrap_or("");
                    let name = o.pointer("/involvedObject/name").and_then(Value::as_str).unwrap_or("");
                    json!(format!("{}/{name}", kind.to_lowercase()))
                },
            },
            Column { name: "Message", priority: 0, cell: |o| o.get("message").cloned().unwrap_or(json!("")) },
        ],
    }
}

fn config_map() -> Kind {
    Kind {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        status_subresource: false,
        default: no_defaults,
        validate: always_valid,
        columns: vec![
            Column::name(),
            Column {
                name: "Data",
                priority: 0,
                cell: |o| json!(o.get("data").and_then(Value::as_object).map_or(0, |d| d.len())),
            },
            Column::age(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Core kinds live under /registry/<plural>/, named groups under <plural>.<group>.
    #[test]
    fn store_keys_follow_kubernetes_layout() {
        let registry = Registry::builtin();
        let pods = registry.find("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "web"), "/registry/pods/default/web");
        assert_eq!(pods.key_prefix(None), "/registry/pods/");
        let nodes = registry.find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        assert_eq!(pods.api_version(), "v1");
    }

    // A later chapter registers a kind in a named group without touching the server.
    #[test]
    fn later_chapters_register_kinds() {
        let mut registry = Registry::builtin();
        let mut deployments = config_map();
        (deployments.group, deployments.kind, deployments.plural) = ("apps", "Deployment", "deployments");
        registry.register(deployments);
        assert_eq!(registry.groups(), vec![("apps", vec!["v1"])]);
        let found = registry.find("apps", "v1", "deployments").unwrap();
        assert_eq!(found.api_version(), "apps/v1");
        assert_eq!(found.key(Some("default"), "web"), "/registry/deployments.apps/default/web");
    }

    // A pod without containers, or with a nameless or imageless one, is invalid.
    #[test]
    fn pods_need_named_containers_with_images() {
        assert_eq!(validate_pod(&json!({"spec": {}}))[0].field, "spec.containers");
        let causes = validate_pod(&json!({"spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(causes, vec![Cause::new("spec.containers[0].image", "Required value")]);
        assert!(validate_pod(&json!({"spec": {"containers": [{"name": "a", "image": "busybox"}]}})).is_empty());
    }
}
