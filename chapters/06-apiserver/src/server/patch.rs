//! PATCH: changing part of an object without sending all of it.
//!
//! Clients choose the patch format with the request's `Content-Type`:
//!
//! | Content-Type | Who sends it | Meaning |
//! |---|---|---|
//! | `application/merge-patch+json` | `kubectl patch --type=merge`, `kubectl scale` | RFC 7386: maps merge, `null` deletes, **lists are replaced** |
//! | `application/strategic-merge-patch+json` | `kubectl apply` (2nd run), the Python client | like merge patch, but lists of named things (containers, env, ports, ...) merge **by key** |
//! | `application/json-patch+json` | `kubectl patch --type=json` | RFC 6902: a list of operations on JSON pointers |
//! | `application/apply-patch+yaml` | `kubectl apply --server-side` | the full desired object; created if missing |
//!
//! The strategic merge patch exists because of lists. `kubectl apply` changing a
//! container's image sends `{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}`;
//! a plain merge patch would *replace* the container list and silently drop the ports.
//!
//! What the real kube-apiserver does differently: its strategic merge reads each list's
//! merge key and strategy from the Go struct tags (`patchMergeKey:"name"`), not from a
//! table of field names, and honours `$setElementOrder` and `$retainKeys`; its server-side
//! apply tracks which manager owns each field (`managedFields`) and reports conflicts
//! (409) between managers. Ours applies the configuration as a strategic merge patch.

use serde_json::{Map, Value, json};

// ANCHOR: merge_patch
/// RFC 7386 JSON merge patch: maps merge recursively, `null` removes a field, and any
/// other value (lists included) replaces what was there.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("made an object above");
    for (field, value) in patch {
        if value.is_null() {
            target.remove(field);
        } else {
            merge_patch(target.entry(field.clone()).or_insert(Value::Null), value);
        }
    }
}
// ANCHOR_END: merge_patch

// ANCHOR: strategic
/// The field that identifies an element of the list `field`, if Kubernetes merges that
/// list by key. `ports` is keyed by `containerPort` in a container, by `port` in a Service.
fn merge_key(field: &str, element: &Value) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" if element.get("containerPort").is_some() => Some("containerPort"),
        "ports" => Some("port"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// A strategic merge patch: a merge patch in which the lists above merge element by
/// element (matched by their key), and `$patch: delete` / `$patch: replace` directives
/// remove an element or replace a map.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = Value::Object(without_directives(patch));
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("made an object above");
    for (field, value) in patch {
        if field.starts_with('$') {
            // `$setElementOrder/containers`, `$retainKeys`, ...: ordering and pruning
            // hints that we do not need to produce a correct result.
            continue;
        }
        match value {
            Value::Null => {
                target.remove(field);
            }
            Value::Array(elements) if elements.first().and_then(|e| merge_key(field, e)).is_some() => {
                let existing = target.entry(field.clone()).or_insert_with(|| json!([]));
                merge_list(existing, field, elements);
            }
            Value::Object(_) => strategic_merge_patch(target.entry(field.clone()).or_insert(Value::Null), value),
            _ => {
                target.insert(field.clone(), value.clone());
            }
        }
    }
}

/// Merges `patch` elements into the list `target`, matching them by their merge key.
fn merge_list(target: &mut Value, field: &str, patch: &[Value]) {
    if !target.is_array() {
        *target = json!([]);
    }
    let list = target.as_array_mut().expect("made an array above");
    for element in patch {
        let Some(key) = merge_key(field, element) else { continue };
        let id = element.get(key);
        let position = list.iter().position(|e| e.get(key) == id);
        let delete = element.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(at), true) => {
                list.remove(at);
            }
            (Some(at), false) => strategic_merge_patch(&mut list[at], element),
            (None, false) => list.push(Value::Object(without_directives(element.as_object().unwrap_or(&Map::new())))),
            (None, true) => {}
        }
    }
}
// ANCHOR_END: strategic

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// RFC 6902 JSON patch: `add`, `remove`, `replace`, `test` (and `move`, `copy`) on
/// JSON pointers such as `/spec/containers/0/image`.
///
/// # Errors
/// A message for 422 when an operation is malformed or its path does not exist.
pub fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let operations = operations.as_array().ok_or("a JSON patch must be a list of operations")?;
    for op in operations {
        let path = op.get("path").and_then(Value::as_str).ok_or("an operation without a path")?;
        match op.get("op").and_then(Value::as_str) {
            Some("add") => add(target, path, op.get("value").cloned().ok_or("add needs a value")?)?,
            Some("remove") => {
                remove(target, path)?;
            }
            Some("replace") => {
                remove(target, path)?;
                add(target, path, op.get("value").cloned().ok_or("replace needs a value")?)?;
            }
            Some("test") => {
                if target.pointer(path) != op.get("value") {
                    return Err(format!("test failed at {path}"));
                }
            }
            Some(verb @ ("move" | "copy")) => {
                let from = op.get("from").and_then(Value::as_str).ok_or("move/copy needs from")?;
                let value = if verb == "move" {
                    remove(target, from)?
                } else {
                    target.pointer(from).cloned().ok_or(format!("no value at {from}"))?
                };
                add(target, path, value)?;
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

/// The parent of a JSON pointer and its last token (`~1` is `/`, `~0` is `~`).
fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let at = path.rfind('/').ok_or(format!("bad JSON pointer {path:?}"))?;
    Ok((&path[..at], path[at + 1..].replace("~1", "/").replace("~0", "~")))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
        }
        Some(Value::Array(list)) if last == "-" => list.push(value),
        Some(Value::Array(list)) => {
            let at: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
            if at > list.len() {
                return Err(format!("index out of range in {path}"));
            }
            list.insert(at, value);
        }
        _ => return Err(format!("no parent for {path}")),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let removed = match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last),
        Some(Value::Array(list)) => match last.parse::<usize>() {
            Ok(at) if at < list.len() => Some(list.remove(at)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or(format!("no value at {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "busybox"}]}}}})
    }

    // A merge patch merges maps, deletes on null, and replaces lists whole.
    #[test]
    fn merge_patch_replaces_lists() {
        let mut d = deployment();
        merge_patch(&mut d, &json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "x"}]}}}}));
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["template"]["spec"]["containers"], json!([{"name": "x"}]));
        merge_patch(&mut d, &json!({"spec": {"replicas": null}}));
        assert!(d["spec"].get("replicas").is_none());
    }

    // kubectl apply's second run: the image of one container changes, and its ports and
    // the other container survive, because containers merge by name.
    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let mut d = deployment();
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}});
        strategic_merge_patch(&mut d, &patch);
        let containers = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0], json!({"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}));
        assert_eq!(containers[1]["name"], "sidecar");
        assert_eq!(containers.as_array().unwrap().len(), 2);
    }

    // `$patch: delete` removes one element; a new name is appended.
    #[test]
    fn strategic_patch_deletes_and_appends() {
        let mut d = deployment();
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "$patch": "delete"}, {"name": "new", "image": "redis"}]}}}}),
        );
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["nginx", "new"]);
    }

    // A JSON patch applies its operations in order and fails on a missing path.
    #[test]
    fn json_patch_applies_operations() {
        let mut d = deployment();
        let ops = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata", "value": {"labels": {"a/b": "1"}}},
            {"op": "test", "path": "/metadata/labels/a~1b", "value": "1"},
            {"op": "remove", "path": "/spec/template/spec/containers/1"}]);
        json_patch(&mut d, &ops).unwrap();
        assert_eq!(d["spec"]["replicas"], 5);
        assert_eq!(d["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 1);
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope/x"}])).is_err());
    }
}
