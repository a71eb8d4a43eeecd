//! The Table format: the server decides what `kubectl get` prints.
//!
//! kubectl does not know the columns of a Pod or a Node. It asks the server with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, and the server answers with
//! column definitions and one row of ready-made cells per object. That is how a new kind
//! gets useful `kubectl get` output without a new kubectl.
//!
//! Each row also carries the object (only its metadata by default; all of it with
//! `includeObject=Object`): kubectl fills the NAMESPACE column of `-A` and the LABELS
//! column of `--show-labels` from it, and `--sort-by` sorts on it.
//!
//! What the real kube-apiserver does differently: the printers are Go functions per
//! kind (`pkg/printers/internalversion/printers.go`) and the table is negotiated like
//! any other media type, protobuf included.

use serde_json::{Value, json};

use crate::registry::Kind;

/// What each row carries besides its cells (`includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    /// A `PartialObjectMetadata`: the default.
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Whether the client asked for a Table in its `Accept` header.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table"))
}

// ANCHOR: table
/// A Table of `objects`, as of `resource_version`.
pub fn table(kind: &Kind, objects: &[Value], include: IncludeObject, resource_version: &str, cont: &str) -> Value {
    let columns: Vec<Value> = kind
        .columns
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": "string", "format": format, "description": "", "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(kind, o, include)).collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if !cont.is_empty() {
        metadata["continue"] = json!(cont);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
           "columnDefinitions": columns, "rows": rows})
}

fn row(kind: &Kind, object: &Value, include: IncludeObject) -> Value {
    let cells: Vec<Value> = kind.columns.iter().map(|c| (c.cell)(object)).collect();
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = object.clone(),
        IncludeObject::Metadata => {
            row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                   "metadata": object.get("metadata").cloned().unwrap_or(json!({}))});
        }
    }
    row
}
// ANCHOR_END: table

#[cfg(test)]
mod tests {
    use super::*;

    // kubectl's Accept header asks for a Table first and JSON as a fallback.
    #[test]
    fn table_is_negotiated_by_accept() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json, */*"));
    }

    // One row per object, one cell per column, and the metadata in each row.
    #[test]
    fn pod_table_has_kubectl_columns() {
        let registry = crate::registry::Registry::builtin();
        let pods = registry.find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}});
        let t = table(pods, &[pod], IncludeObject::Metadata, "42", "");
        let names: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"]);
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap()[..4],
            [json!("web"), json!("0/1"), json!("Running"), json!("0")]
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["app"], "web");
        assert_eq!(t["metadata"]["resourceVersion"], "42");
    }
}
