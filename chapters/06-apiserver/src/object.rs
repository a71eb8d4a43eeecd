//! The shape of a Kubernetes object, on top of plain JSON.
//!
//! Every object the API server stores looks like this:
//!
//! ```text
//! apiVersion: v1                 which API group and version the object belongs to
//! kind: Pod                      what it is
//! metadata:                      the same for every kind:
//!   name, namespace                its identity
//!   uid, resourceVersion,          set by the server, never by the client
//!   creationTimestamp, generation
//!   labels                         for selecting (kubectl get -l app=web)
//!   annotations                    for anything else (notes, tools' state)
//! spec: ...                      what the user wants (the desired state)
//! status: ...                    what a controller saw (the observed state)
//! ```
//!
//! The server needs typed access to `metadata` only; `spec` and `status` belong to the
//! kind and are kept as JSON. So an object here is a [`serde_json::Value`] plus helper
//! functions that read and write its metadata.
//!
//! What the real kube-apiserver does differently: every built-in kind is a Go struct with
//! generated conversion, defaulting and validation code (and protobuf encoding); only
//! custom resources are handled as unstructured JSON, as everything is here.

use serde_json::{Map, Value, json};

/// A JSON object's field as a string, if it is one.
pub fn str_at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = object;
    for part in path {
        at = at.get(part)?;
    }
    at.as_str()
}

/// `metadata.name`.
pub fn name(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "name"])
}

/// `metadata.namespace`.
pub fn namespace(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "namespace"])
}

/// `metadata`, created as an empty map if it is missing or not a map.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    let map = object.as_object_mut().expect("made an object above");
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    metadata.as_object_mut().expect("made an object above")
}

/// The labels of an object (an empty map when it has none).
pub fn labels(object: &Value) -> Map<String, Value> {
    object.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default()
}

/// The current time as Kubernetes writes timestamps: RFC 3339, UTC, whole seconds.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

// ANCHOR: server_owned
/// Stamps a new object with what only the server may set, whatever the client sent:
/// a fresh `uid`, the creation time, generation 1, and the namespace from the URL.
/// `resourceVersion` is not stored in the object: it is the key's `mod_revision`, set
/// on the way out by [`with_resource_version`].
pub fn stamp_new(object: &mut Value, namespace: Option<&str>) {
    let metadata = metadata_mut(object);
    metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    metadata.insert("creationTimestamp".into(), json!(now()));
    metadata.insert("generation".into(), json!(1));
    metadata.remove("resourceVersion");
    metadata.remove("deletionTimestamp");
    match namespace {
        Some(ns) => metadata.insert("namespace".into(), json!(ns)),
        None => metadata.remove("namespace"),
    };
}

/// Copies the server-owned fields of the stored object `old` onto an update `new`, so a
/// client can neither change them nor lose them by leaving them out. `generation` goes
/// up when the `spec` changes, which is how a controller knows it has work to do.
pub fn keep_server_owned(new: &mut Value, old: &Value) {
    let spec_changed = new.get("spec") != old.get("spec");
    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let metadata = metadata_mut(new);
    for field in ["uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(value) => metadata.insert(field.into(), value.clone()),
            None => metadata.remove(field),
        };
    }
    metadata.insert("generation".into(), json!(if spec_changed { generation + 1 } else { generation }));
    metadata.remove("resourceVersion");
}
// ANCHOR_END: server_owned

/// The object as clients see it: with `metadata.resourceVersion` set to the store
/// revision of its last change.
pub fn with_resource_version(mut object: Value, revision: i64) -> Value {
    metadata_mut(&mut object).insert("resourceVersion".into(), json!(revision.to_string()));
    object
}

/// A `resourceVersion` string as a store revision.
pub fn parse_resource_version(rv: &str) -> Option<i64> {
    rv.parse::<i64>().ok().filter(|n| *n >= 0)
}

/// The age of an object as kubectl prints it (`5s`, `3m`, `2h`, `4d`), from its
/// `creationTimestamp`; `<unknown>` if it has none.
pub fn age(object: &Value) -> String {
    let Some(created) = str_at(object, &["metadata", "creationTimestamp"]) else {
        return "<unknown>".to_string();
    };
    let Ok(created) = humantime::parse_rfc3339_weak(created) else {
        return "<unknown>".to_string();
    };
    let secs = std::time::SystemTime::now().duration_since(created).map(|d| d.as_secs()).unwrap_or(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The server overwrites what the client may not set: kubectl 1.20 sends
    // `creationTimestamp: null`, and a client-sent uid or resourceVersion is ignored.
    #[test]
    fn stamp_new_overwrites_server_owned_fields() {
        let mut pod = json!({"metadata": {"name": "p", "uid": "mine", "resourceVersion": "7",
                                          "creationTimestamp": null, "namespace": "other"}});
        stamp_new(&mut pod, Some("default"));
        assert_ne!(pod["metadata"]["uid"], "mine");
        assert_eq!(pod["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert!(pod["metadata"]["creationTimestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(pod["metadata"]["namespace"], "default");
        assert_eq!(pod["metadata"]["generation"], 1);
        assert!(pod["metadata"].get("resourceVersion").is_none());
    }

    // An update keeps the stored uid and creation time, and bumps generation only when
    // the spec changed.
    #[test]
    fn updates_keep_identity_and_count_spec_changes() {
        let old = json!({"metadata": {"name": "p", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z",
                                      "generation": 3}, "spec": {"a": 1}});
        let mut same = json!({"metadata": {"name": "p", "uid": "forged", "labels": {"x": "y"}}, "spec": {"a": 1}});
        keep_server_owned(&mut same, &old);
        assert_eq!(same["metadata"]["uid"], "u1");
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["labels"]["x"], "y");
        let mut changed = json!({"metadata": {"name": "p"}, "spec": {"a": 2}});
        keep_server_owned(&mut changed, &old);
        assert_eq!(changed["metadata"]["generation"], 4);
        assert_eq!(changed["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
    }

    // Ages read like kubectl's.
    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(&json!({})), "<unknown>");
        // A second may tick between `now()` and `age()` on a slow machine.
        let fresh = age(&json!({"metadata": {"creationTimestamp": now()}}));
        assert!(fresh == "0s" || fresh == "1s", "{fresh}");
        assert!(age(&json!({"metadata": {"creationTimestamp": "2020-01-01T00:00:00Z"}})).ends_with('d'));
    }
}
