//! A small API client: what `kubectl` and every controller do on the wire.
//!
//! Three lessons fit in this file:
//!
//! 1. **Finding the server**: a kubeconfig names clusters, users and contexts; the
//!    current context says which server and namespace to use ([`Kubeconfig`]).
//! 2. **Finding the resource**: `po` means nothing until discovery says it is the short
//!    name of `pods` in `/api/v1` ([`Client::resolve`]).
//! 3. **List, then watch**: a client lists to get the state and the list's
//!    resourceVersion, then watches from that version to get every later change. If the
//!    stream ends, it watches again from the last version it saw; if the server answers
//!    410 (history compacted), it lists again ([`Client::list_and_watch`]). That loop is
//!    the heart of client-go's informers.
//!
//! What kubectl and client-go do differently: TLS and authentication, a discovery cache
//! on disk, protobuf, retries with back-off, and an informer cache shared by controllers.

use std::path::{Path, PathBuf};

use futures::StreamExt as _;
pub use reqwest::Method;
use serde_json::{Value, json};

/// A client error, for the CLI to print.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {detail}")]
    Kubeconfig { path: PathBuf, detail: String },
    #[error("cannot reach the API server at {url}: {detail}; is `kthw apiserver` running?")]
    Connect { url: String, detail: String },
    /// The server answered with a `Status`: kubectl's "Error from server (Reason): message".
    #[error("Error from server ({reason}): {message}")]
    Server { code: u16, reason: String, message: String },
    #[error("the server doesn't have a resource type {0:?}")]
    UnknownResource(String),
    #[error("{0}")]
    Invalid(String),
}

pub type ClientResult<T> = Result<T, ClientError>;

/// What we need from a kubeconfig: the server URL and the default namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubeconfig {
    pub server: String,
    pub namespace: String,
}

impl Kubeconfig {
    /// Reads `$KUBECONFIG` or `~/.kube/config` and follows its `current-context`.
    ///
    /// # Errors
    /// If the file is missing or has no usable current context.
    pub fn load() -> ClientResult<Kubeconfig> {
        let path = match std::env::var_os("KUBECONFIG") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".kube/config"),
        };
        Kubeconfig::from_file(&path)
    }

    /// # Errors
    /// If the file is missing or has no usable current context.
    pub fn from_file(path: &Path) -> ClientResult<Kubeconfig> {
        let error = |detail: String| ClientError::Kubeconfig { path: path.to_path_buf(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let config: Value = serde_yaml::from_str(&text).map_err(|e| error(e.to_string()))?;
        let current = config["current-context"].as_str().ok_or_else(|| error("no current-context".into()))?;
        let named = |list: &str, name: &str| {
            config[list].as_array().and_then(|l| l.iter().find(|e| e["name"] == name)).cloned().unwrap_or(Value::Null)
        };
        let context = &named("contexts", current)["context"];
        let cluster_name =
            context["cluster"].as_str().ok_or_else(|| error(format!("context {current:?} has no cluster")))?;
        let server = named("clusters", cluster_name)["cluster"]["server"]
            .as_str()
            .ok_or_else(|| error(format!("cluster {cluster_name:?} has no server")))?
            .trim_end_matches('/')
            .to_string();
        let namespace = context["namespace"].as_str().unwrap_or("default").to_string();
        Ok(Kubeconfig { server, namespace })
    }
}

/// A resource as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// `/api/v1` or `/apis/apps/v1`.
    pub base: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
}

impl Resource {
    /// The URL of the collection (`namespace: None` for all namespaces).
    pub fn collection(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/namespaces/{ns}/{}", self.base, self.plural),
            _ => format!("{}/{}", self.base, self.plural),
        }
    }
}

/// A connection to one API server.
pub struct Client {
    http: reqwest::Client,
    pub server: String,
}

/// One event of [`Client::list_and_watch`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The full state, from a (re)list.
    Listed(Vec<Value>),
    /// `ADDED`, `MODIFIED` or `DELETED`, and the object.
    Event(String, Value),
}

impl Client {
    pub fn new(server: &str) -> Client {
        // reqwest needs a TLS crypto provider even for http:// URLs; ring is the workspace's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client { http: reqwest::Client::new(), server: server.trim_end_matches('/').to_string() }
    }

    /// Sends a request and returns the JSON answer, or the server's `Status` as an error.
    ///
    /// # Errors
    /// [`ClientError::Connect`] if the server is unreachable, [`ClientError::Server`] for a `Status`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<String>,
    ) -> ClientResult<Value> {
        let url = format!("{}{path}", self.server);
        let mut request = self.http.request(method, &url).header("Accept", "application/json");
        if let Some(body) = body {
            request = request.header("Content-Type", content_type).body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Connect { url: self.server.clone(), detail: e.to_string() })?;
        let code = response.status().as_u16();
        let bytes =
            response.bytes().await.map_err(|e| ClientError::Connect { url: url.clone(), detail: e.to_string() })?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if code >= 400 {
            return Err(status_error(code, &value));
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> ClientResult<Value> {
        self.call(Method::GET, path, "", None).await
    }

    // ANCHOR: resolve
    /// Turns what a user types (`po`, `pod`, `pods`, `Pod`) into a resource, by asking
    /// discovery: `/api/v1` for the core group, `/apis` for the others.
    ///
    /// # Errors
    /// [`ClientError::UnknownResource`] if no group serves it.
    pub async fn resolve(&self, name: &str) -> ClientResult<Resource> {
        let mut bases = vec!["/api/v1".to_string()];
        let groups = self.get("/apis").await?;
        for group in groups["groups"].as_array().into_iter().flatten() {
            if let Some(gv) = group["preferredVersion"]["groupVersion"].as_str() {
                bases.push(format!("/apis/{gv}"));
            }
        }
        let wanted = name.to_lowercase();
        for base in bases {
            let list = self.get(&base).await?;
            for r in list["resources"].as_array().into_iter().flatten() {
                let plural = r["name"].as_str().unwrap_or_default();
                let names = [
                    plural,
                    r["singularName"].as_str().unwrap_or_default(),
                    &r["kind"].as_str().unwrap_or_default().to_lowercase(),
                ];
                let short = r["shortNames"].as_array().into_iter().flatten().filter_map(Value::as_str);
                if !plural.contains('/') && (names.contains(&wanted.as_str()) || short.clone().any(|s| s == wanted)) {
                    return Ok(Resource {
                        base,
                        plural: plural.to_string(),
                        kind: r["kind"].as_str().unwrap_or_default().to_string(),
                        namespaced: r["namespaced"].as_bool().unwrap_or(false),
                    });
                }
            }
        }
        Err(ClientError::UnknownResource(name.to_string()))
    }
    // ANCHOR_END: resolve

    /// `kubectl get`'s table: asks the server for the Table format and renders it.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn table(&self, path: &str) -> ClientResult<Value> {
        let url = format!("{}{path}", self.server);
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        let response = self
            .http
            .get(&url)
            .header("Accept", accept)
            .send()
            .await
            .map_err(|e| ClientError::Connect { url: self.server.clone(), detail: e.to_string() })?;
        let code = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| ClientError::Connect { url, detail: e.to_string() })?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if code >= 400 {
            return Err(status_error(code, &value));
        }
        Ok(value)
    }

    /// Server-side apply: sends the whole desired object; the server creates or merges it.
    ///
    /// # Errors
    /// As [`Client::call`]; [`ClientError::Invalid`] for an object without kind or name.
    pub async fn apply(&self, object: &Value, default_namespace: &str) -> ClientResult<(Value, Resource)> {
        let kind = object["kind"].as_str().ok_or_else(|| ClientError::Invalid("an object without a kind".into()))?;
        let name =
            crate::object::name(object).ok_or_else(|| ClientError::Invalid(format!("a {kind} without a name")))?;
        let resource = self.resolve(kind).await?;
        let namespace = crate::object::namespace(object).unwrap_or(default_namespace);
        let path = format!("{}/{name}?fieldManager=kthw-ctl", resource.collection(Some(namespace)));
        let body = serde_json::to_string(object).unwrap_or_default();
        let applied = self.call(Method::PATCH, &path, "application/apply-patch+yaml", Some(body)).await?;
        Ok((applied, resource))
    }

    // ANCHOR: list_and_watch
    /// Lists `path`, then watches it from the list's resourceVersion, calling `on_change`
    /// for the list and for every event, forever. A stream that ends is resumed from
    /// the last resourceVersion seen; a 410 Expired means the history is gone: list again.
    ///
    /// # Errors
    /// If the server cannot be reached or refuses the list.
    pub async fn list_and_watch(&self, path: &str, mut on_change: impl FnMut(Change)) -> ClientResult<()> {
        loop {
            let list = self.get(path).await?;
            let mut version = list["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
            on_change(Change::Listed(list["items"].as_array().cloned().unwrap_or_default()));
            'watch: loop {
                let url =
                    format!("{}{path}?watch=true&allowWatchBookmarks=true&resourceVersion={version}", self.server);
                let response = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| ClientError::Connect { url: self.server.clone(), detail: e.to_string() })?;
                let mut body = response.bytes_stream();
                let mut buffer = Vec::new();
                while let Some(Ok(chunk)) = body.next().await {
                    buffer.extend_from_slice(&chunk);
                    // One JSON event per line.
                    while let Some(at) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=at).collect();
                        let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
                        let kind = event["type"].as_str().unwrap_or_default().to_string();
                        let object = event["object"].clone();
                        if kind == "ERROR" {
                            break 'watch; // 410 Expired: relist.
                        }
                        if let Some(rv) = object.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                            version = rv.to_string();
                        }
                        if kind != "BOOKMARK" {
                            on_change(Change::Event(kind, object));
                        }
                    }
                }
                // The stream ended (server restart, timeout): resume where we were.
            }
        }
    }
    // ANCHOR_END: list_and_watch
}

fn status_error(code: u16, status: &Value) -> ClientError {
    ClientError::Server {
        code,
        reason: status["reason"].as_str().unwrap_or("Unknown").to_string(),
        message: status["message"].as_str().unwrap_or("the server gave no message").to_string(),
    }
}

/// Renders a Table as kubectl does: upper-case headers, columns padded to their widest
/// cell plus three spaces, priority-0 columns only unless `wide`; with `namespaces`, a
/// NAMESPACE column first (taken from each row's object).
pub fn render_table(table: &Value, wide: bool, namespaces: bool) -> String {
    let columns = table["columnDefinitions"].as_array().cloned().unwrap_or_default();
    let shown: Vec<usize> =
        (0..columns.len()).filter(|i| wide || columns[*i]["priority"].as_i64().unwrap_or(0) == 0).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> =
        shown.iter().map(|i| columns[*i]["name"].as_str().unwrap_or_default().to_uppercase()).collect();
    if namespaces {
        header.insert(0, "NAMESPACE".into());
    }
    rows.push(header);
    for row in table["rows"].as_array().into_iter().flatten() {
        let cell = |i: usize| match &row["cells"][i] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut line: Vec<String> = shown.iter().map(|i| cell(*i)).collect();
        if namespaces {
            let ns = row.pointer("/object/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
            line.insert(0, ns.to_string());
        }
        rows.push(line);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The objects of a YAML file with one or more documents (`---` between them).
///
/// # Errors
/// [`ClientError::Invalid`] if a document is not YAML.
pub fn parse_manifests(text: &str) -> ClientResult<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// What `describe` prints for an object: its YAML (we have no per-kind describers).
pub fn describe(object: &Value) -> String {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    serde_yaml::to_string(&object).unwrap_or_else(|_| json!(object).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The current context decides the server and the namespace.
    #[test]
    fn kubeconfig_follows_the_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- {name: one, cluster: {server: 'http://a:1'}}\n\
             - {name: two, cluster: {server: 'http://b:2/'}}\ncontexts:\n- {name: a, context: {cluster: one}}\n\
             - {name: b, context: {cluster: two, namespace: dev}}\n",
        )
        .unwrap();
        let config = Kubeconfig::from_file(&path).unwrap();
        assert_eq!(config, Kubeconfig { server: "http://b:2".into(), namespace: "dev".into() });
        assert!(Kubeconfig::from_file(&dir.path().join("missing")).is_err());
    }

    // Tables render like kubectl's, with NAMESPACE from the rows' objects for -A.
    #[test]
    fn tables_render_like_kubectl() {
        let table = json!({"columnDefinitions": [{"name": "Name", "priority": 0}, {"name": "Status", "priority": 0},
                                                 {"name": "IP", "priority": 1}],
                           "rows": [{"cells": ["web", "Running", "10.0.0.1"], "object": {"metadata": {"namespace": "default"}}},
                                    {"cells": ["a-long-name", "Pending", ""], "object": {"metadata": {"namespace": "x"}}}]});
        assert_eq!(
            render_table(&table, false, false),
            "NAME          STATUS\nweb           Running\na-long-name   Pending\n"
        );
        assert!(render_table(&table, true, true).starts_with("NAMESPACE   NAME          STATUS    IP\n"));
    }

    // A file with several YAML documents gives several objects.
    #[test]
    fn manifests_split_on_documents() {
        let objects = parse_manifests("kind: A\n---\nkind: B\n---\n").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["kind"], "B");
    }
}
