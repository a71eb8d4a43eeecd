//! Label and field selectors: `kubectl get pods -l app=web,tier!=db` and
//! `--field-selector metadata.name=web`.
//!
//! Labels are for *selecting*: a Service finds its pods, a ReplicaSet counts its own, by
//! a label selector. Field selectors select on a few fields of the object itself; kubectl
//! needs `metadata.name` (to wait for a delete) and `involvedObject.*` (events of one pod,
//! for `describe`).
//!
//! What the real kube-apiserver does differently: each kind declares which fields may be
//! selected (pods: `spec.nodeName`, `status.phase`, ...) and rejects others with 400;
//! ours accepts any dotted path into the object. Selectors are evaluated in the watch
//! cache there, on objects already decoded, as here.

use serde_json::Value;

use super::status::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `key=value`, `key==value`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=value`, `key notin (a,b)`: also true when the label is missing.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    NotExists(String),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `app=web,tier in (a,b),!canary`.
    ///
    /// # Errors
    /// 400 BadRequest for a selector we cannot read.
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let mut requirements = Vec::new();
        for part in split_outside_parens(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let bad = || ApiError::bad_request(format!("unable to parse requirement: {part:?}"));
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotIn(key.trim().to_string(), vec![value.trim().to_string()])
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::In(key.trim().to_string(), vec![value.trim().to_string()])
            } else if let Some((key, values)) = part.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_string(), set_values(values).ok_or_else(bad)?)
            } else if let Some((key, values)) = part.split_once(" in ") {
                Requirement::In(key.trim().to_string(), set_values(values).ok_or_else(bad)?)
            } else if part.chars().all(|c| c.is_alphanumeric() || "-_./".contains(c)) {
                Requirement::Exists(part.to_string())
            } else {
                return Err(bad());
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    /// Whether the object's labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = crate::object::labels(object);
        let label = |key: &str| labels.get(key).and_then(Value::as_str).map(str::to_string);
        self.0.iter().all(|requirement| match requirement {
            Requirement::In(key, values) => label(key).is_some_and(|v| values.contains(&v)),
            Requirement::NotIn(key, values) => label(key).is_none_or(|v| !values.contains(&v)),
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::NotExists(key) => label(key).is_none(),
        })
    }
}

/// A parsed field selector: `metadata.name=web,status.phase!=Running`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// # Errors
    /// 400 BadRequest for a term without `=` or `!=`.
    pub fn parse(text: &str) -> Result<FieldSelector, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let term = if let Some((field, value)) = part.split_once("!=") {
                (field.to_string(), false, value.to_string())
            } else if let Some((field, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (field.to_string(), true, value.to_string())
            } else {
                return Err(ApiError::bad_request(format!("invalid field selector: {part:?}")));
            };
            terms.push(term);
        }
        Ok(FieldSelector(terms))
    }

    /// Whether the object's fields satisfy every term. A missing field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

/// Splits on commas that are not inside `(...)`.
fn split_outside_parens(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `(a, b)` as `["a", "b"]`.
fn set_values(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "default", "labels": labels}, "status": {"phase": "Running"}})
    }

    // Every operator of the label selector grammar, as kubectl sends it.
    #[test]
    fn label_selectors_follow_kubernetes_grammar() {
        let web = pod(json!({"app": "web", "tier": "front"}));
        let matches = |s: &str| LabelSelector::parse(s).unwrap().matches(&web);
        assert!(matches("app=web"));
        assert!(matches("app==web,tier"));
        assert!(matches("app in (web, api),!canary"));
        assert!(matches("tier notin (db)"));
        assert!(matches("missing!=x"));
        assert!(matches(""));
        assert!(!matches("app=api"));
        assert!(!matches("app,!tier"));
        assert!(!matches("tier in (db,cache)"));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    // Field selectors compare dotted paths; metadata.name is what `kubectl delete` waits on.
    #[test]
    fn field_selectors_compare_fields() {
        let web = pod(json!({}));
        let matches = |s: &str| FieldSelector::parse(s).unwrap().matches(&web);
        assert!(matches("metadata.name=web-1"));
        assert!(matches("metadata.name=web-1,metadata.namespace=default"));
        assert!(matches("status.phase!=Pending"));
        assert!(matches("spec.nodeName="));
        assert!(!matches("metadata.name=web-2"));
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
