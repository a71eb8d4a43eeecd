//! Discovery: how a client learns what the server serves.
//!
//! Before `kubectl get po` can send a request, it must turn `po` into a URL. It asks
//! `/api` and `/apis` for the API groups, then `/api/v1` and `/apis/GROUP/VERSION` for
//! the resources of each: their plural and short names, kind, whether they are namespaced
//! and which verbs they support. kubectl caches the answers under `~/.kube/cache`.
//!
//! Two more documents make kubectl happy: `/version` (for `kubectl version`) and
//! `/openapi/v2`, which `kubectl create -f` and `apply` fetch to validate objects on the
//! client. An **empty** protobuf document (a `200` with no body, served as
//! `application/octet-stream`) tells kubectl "no schema for this kind", so it skips
//! validation instead of failing.
//!
//! What the real kube-apiserver does differently: it serves "aggregated discovery" (all
//! groups and resources in one document, `apidiscovery.k8s.io/v2`) and a full OpenAPI v2
//! and v3 schema of every kind, which `kubectl explain` needs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Api;
use super::status::ApiError;
use crate::registry::Kind;

/// The Kubernetes version we claim to be: kubectl warns when it is more than one minor
/// version away from the server, and 1.32 is what the book's machines have.
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "32");

/// `GET /api`: the core group's versions.
pub async fn api(headers: HeaderMap) -> Json<Value> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    Json(json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}))
}

/// `GET /apis`: the named groups. It must exist even when empty: modern kubectl gives up
/// on a 404 here.
pub async fn apis(State(api): State<Api>) -> Json<Value> {
    let groups: Vec<Value> =
        api.registry.groups().into_iter().map(|(group, versions)| group_document(group, &versions)).collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// `GET /apis/GROUP`.
pub async fn group(State(api): State<Api>, Path(group): Path<String>) -> Response {
    match api.registry.groups().into_iter().find(|(g, _)| *g == group) {
        Some((group, versions)) => Json(group_document(group, &versions)).into_response(),
        None => not_found(),
    }
}

fn group_document(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
           "preferredVersion": versions[0]})
}

/// `GET /api/v1`.
pub async fn core_resources(State(api): State<Api>) -> Response {
    resource_list(&api, "", "v1")
}

/// `GET /apis/GROUP/VERSION`.
pub async fn group_resources(State(api): State<Api>, Path((group, version)): Path<(String, String)>) -> Response {
    resource_list(&api, &group, &version)
}

// ANCHOR: resources
fn resource_list(api: &Api, group: &str, version: &str) -> Response {
    let kinds: Vec<&Kind> = api.registry.in_group_version(group, version).collect();
    if kinds.is_empty() {
        return not_found();
    }
    let mut resources = Vec::new();
    for kind in kinds {
        resources.push(json!({
            "name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
            "kind": kind.kind, "shortNames": kind.short_names, "categories": ["all"],
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }));
        if kind.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", kind.plural), "singularName": "", "namespaced": kind.namespaced,
                "kind": kind.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
        .into_response()
}
// ANCHOR_END: resources

/// `GET /version`.
pub async fn version() -> Json<Value> {
    let (major, minor) = KUBERNETES_VERSION;
    Json(json!({
        "major": major, "minor": minor, "gitVersion": format!("v{major}.{minor}.0-kthw.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "none (Rust)",
        "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

/// `GET /openapi/v2`: an empty protobuf document. kubectl finds no schema for the
/// object's kind in it and skips client-side validation.
pub async fn openapi_v2() -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], Vec::<u8>::new()).into_response()
}

/// The `Status` of a URL nobody serves.
pub fn not_found() -> Response {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource")
        .into_response()
}
