//! The resource handlers: get, list, create, update (PUT), patch and delete.
//!
//! Each handler follows the same recipe: parse the URL into a [`ResourcePath`], find the
//! [`Kind`], read or write the store, and answer with the object (or a `Status`). All
//! writes are compare-and-swaps on the key's `mod_revision`, which is what makes
//! `resourceVersion` work:
//!
//! ```text
//!  client A: GET web        -> resourceVersion 7
//!  client B: PUT web (rv 7) -> store txn "if mod_revision == 7": ok, now 8
//!  client A: PUT web (rv 7) -> store txn "if mod_revision == 7": fails -> 409 Conflict
//! ```
//!
//! What the real kube-apiserver does differently: graceful deletion (a pod gets a
//! `deletionTimestamp` and is removed only when its kubelet has stopped it), finalizers,
//! owner references and garbage collection, admission webhooks, `managedFields`, field
//! validation (`fieldValidation=Strict`) and `dryRun` through the whole chain.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Api;
use super::patch;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use super::table::{self, IncludeObject};
use crate::object;
use crate::registry::Kind;
use crate::store::{Compare, KeyValue, Op, TxnOutcome};

// ANCHOR: path
/// What a resource URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// `""` for `/api/v1`.
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    /// `pods`.
    pub plural: String,
    pub name: Option<String>,
    /// `status`, `scale`, ...
    pub subresource: Option<String>,
}

impl ResourcePath {
    /// Parses `/api/v1/namespaces/default/pods/web` and its relatives; `None` if the
    /// path is not a resource URL.
    pub fn parse(path: &str) -> Option<ResourcePath> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let owned = |s: &&str| s.to_string();
        let (namespace, rest) = match rest {
            // `/namespaces/foo/status` is the status of namespace foo, not a resource "status".
            ["namespaces", _, "status" | "finalize"] => (None, rest),
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (plural, None, None),
            [plural, name] => (plural, Some(owned(name)), None),
            [plural, name, sub] => (plural, Some(owned(name)), Some(owned(sub))),
            _ => return None,
        };
        if [plural, name.as_deref().unwrap_or("x")].iter().any(|s| s.is_empty()) {
            return None;
        }
        Some(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace,
            plural: plural.to_string(),
            name,
            subresource,
        })
    }
}
// ANCHOR_END: path

/// The query parameters of a request.
type Params = HashMap<String, String>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// `true`, `1` and `True` (the Python client) all mean yes.
pub fn truthy(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1" | "True"))
}

// ANCHOR: handle
/// Every request to a resource URL lands here.
pub async fn handle(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let Some(path) = ResourcePath::parse(uri.path()) else {
        return super::discovery::not_found();
    };
    let Some(kind) = api.registry.find(&path.group, &path.version, &path.plural).cloned() else {
        return super::discovery::not_found();
    };
    // A namespaced kind has no single object outside a namespace, and a cluster-scoped
    // kind has nothing inside one.
    if (kind.namespaced && path.namespace.is_none() && path.name.is_some())
        || (!kind.namespaced && path.namespace.is_some())
    {
        return super::discovery::not_found();
    }
    let request = Request { api, kind, path, params, headers };
    let result = match (&method, request.path.name.is_some()) {
        (&Method::GET, false) if truthy(param(&request.params, "watch")) => super::watch::watch(&request).await,
        (&Method::GET, false) => request.list().await,
        (&Method::GET, true) => request.get().await,
        (&Method::POST, false) => request.create(&body).await,
        (&Method::PUT, true) => request.update(&body).await,
        (&Method::PATCH, true) => request.patch(&body).await,
        (&Method::DELETE, true) => request.delete(&body).await,
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported on {}", uri.path()))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}
// ANCHOR_END: handle

/// One request to a resource, parsed.
pub struct Request {
    pub api: Api,
    pub kind: Kind,
    pub path: ResourcePath,
    pub params: Params,
    pub headers: HeaderMap,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }

    fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or_default()
    }

    fn key(&self) -> String {
        self.kind.key(self.path.namespace.as_deref(), self.name())
    }

    fn accept(&self) -> &str {
        self.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("application/json")
    }

    /// Whether the response should be a Table.
    pub fn wants_table(&self) -> bool {
        table::wants_table(self.accept())
    }

    pub fn include_object(&self) -> IncludeObject {
        IncludeObject::parse(self.param("includeObject"))
    }

    /// The label and field selectors of the query.
    pub fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        Ok((
            LabelSelector::parse(self.param("labelSelector").unwrap_or_default())?,
            FieldSelector::parse(self.param("fieldSelector").unwrap_or_default())?,
        ))
    }

    fn subresource(&self) -> ApiResult<Option<&str>> {
        match self.path.subresource.as_deref() {
            None => Ok(None),
            Some("status") if self.kind.status_subresource => Ok(Some("status")),
            Some(other) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} has no subresource {other:?}", self.kind.plural),
            )),
        }
    }

    /// One object as the client sees it, with its resourceVersion.
    fn respond(&self, code: StatusCode, object: Value) -> ApiResult<Response> {
        if self.wants_table() {
            let rv = object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
            let rv = rv.as_str().unwrap_or_default().to_string();
            return Ok(
                (code, Json(table::table(&self.kind, &[object], self.include_object(), &rv, ""))).into_response()
            );
        }
        Ok((code, Json(object)).into_response())
    }

    async fn read(&self) -> ApiResult<Option<(KeyValue, Value)>> {
        let Some(kv) = self.api.store.get(&self.key()).await? else { return Ok(None) };
        let object = decode(&kv)?;
        Ok(Some((kv, object)))
    }

    async fn get(&self) -> ApiResult<Response> {
        self.subresource()?;
        match self.read().await? {
            Some((_, object)) => self.respond(StatusCode::OK, object),
            None => Err(ApiError::not_found(self.kind.plural, self.name())),
        }
    }

    // ANCHOR: list
    /// A list, in pages of `limit` objects with a `continue` token between them.
    async fn list(&self) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let prefix = self.kind.key_prefix(self.path.namespace.as_deref());
        let limit: usize = self.param("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let (mut start_after, token_revision) = match self.param("continue") {
            Some(token) => {
                let (revision, key) = decode_continue(token, &prefix)?;
                let compacted = self.api.store.revisions().await?.compacted;
                if revision < compacted {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ));
                }
                (Some(key), Some(revision))
            }
            None => (None, None),
        };
        // Read pages from the store until we have `limit` objects that match.
        let mut items = Vec::new();
        let (revision, more) = 'pages: loop {
            let page = self.api.store.range(&prefix, start_after.as_deref(), limit).await?;
            for kv in &page.kvs {
                if limit > 0 && items.len() == limit {
                    // Full, with keys left over in this page: there is more.
                    break 'pages (page.revision, true);
                }
                let object = decode(kv)?;
                if labels.matches(&object) && fields.matches(&object) {
                    items.push(object);
                }
                start_after = Some(kv.key.clone());
            }
            if !page.more || items.len() == limit {
                break (page.revision, page.more);
            }
        };
        // Every page of one list reports the revision of its first page.
        let revision = token_revision.unwrap_or(revision);
        let cont = match (&start_after, more) {
            (Some(last), true) => encode_continue(revision, last),
            _ => String::new(),
        };
        if self.wants_table() {
            let t = table::table(&self.kind, &items, self.include_object(), &revision.to_string(), &cont);
            return Ok(Json(t).into_response());
        }
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if !cont.is_empty() {
            metadata["continue"] = json!(cont);
        }
        Ok(Json(json!({"kind": format!("{}List", self.kind.kind), "apiVersion": self.kind.api_version(),
                       "metadata": metadata, "items": items}))
        .into_response())
    }
    // ANCHOR_END: list

    // ANCHOR: create
    async fn create(&self, body: &[u8]) -> ApiResult<Response> {
        let mut object = self.body_object(body)?;
        let namespace = self.path.namespace.as_deref();
        if let (Some(url_ns), Some(body_ns)) = (namespace, object::namespace(&object))
            && url_ns != body_ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(ns) = namespace {
            self.require_namespace(ns).await?;
        }
        let name = match (object::name(&object), object.pointer("/metadata/generateName").and_then(Value::as_str)) {
            (Some(name), _) => name.to_string(),
            (None, Some(prefix)) => format!("{prefix}{}", random_suffix()),
            (None, None) => {
                let cause =
                    crate::registry::Cause::new("metadata.name", "Required value: name or generateName is required");
                return Err(ApiError::invalid(self.kind.kind, "", &[cause]));
            }
        };
        object::metadata_mut(&mut object).insert("name".into(), json!(name));
        object::stamp_new(&mut object, namespace);
        (self.kind.default)(&mut object);
        self.validate(&object, &name)?;
        if self.dry_run() {
            return self.respond(StatusCode::CREATED, object);
        }
        let key = self.kind.key(namespace, &name);
        match self.api.store.txn(&key, Compare::Absent, Op::Put(encode(&object))).await? {
            TxnOutcome::Done(kv) => {
                self.respond(StatusCode::CREATED, object::with_resource_version(object, kv.mod_revision))
            }
            TxnOutcome::Failed(_) => Err(ApiError::already_exists(self.kind.plural, &name)),
        }
    }
    // ANCHOR_END: create

    // ANCHOR: update
    /// PUT: replace the object, if the client's resourceVersion is still the current one.
    async fn update(&self, body: &[u8]) -> ApiResult<Response> {
        let subresource = self.subresource()?;
        let new = self.body_object(body)?;
        if object::name(&new).is_some_and(|n| n != self.name()) {
            return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
        }
        let Some((kv, old)) = self.read().await? else {
            return Err(ApiError::not_found(self.kind.plural, self.name()));
        };
        // No resourceVersion in the body: an unconditional update (last write wins).
        let expected = match new.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            Some(rv) => object::parse_resource_version(rv)
                .ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
            None => kv.mod_revision,
        };
        if expected != kv.mod_revision {
            return Err(ApiError::conflict(self.kind.plural, self.name()));
        }
        let object = self.merge_for_write(new, &old, subresource)?;
        self.write(kv.mod_revision, object, StatusCode::OK).await
    }
    // ANCHOR_END: update

    /// The object to store for an update of `old` to `new`: the server-owned metadata
    /// of `old`, and `.status` only through the status subresource (and only it).
    fn merge_for_write(&self, new: Value, old: &Value, subresource: Option<&str>) -> ApiResult<Value> {
        let mut object = match subresource {
            Some("status") => {
                let mut object = old.clone();
                object["status"] = new.get("status").cloned().unwrap_or(json!({}));
                object
            }
            _ => {
                let mut object = new;
                if self.kind.status_subresource {
                    match old.get("status") {
                        Some(status) => object["status"] = status.clone(),
                        None => drop(object.as_object_mut().and_then(|o| o.remove("status"))),
                    }
                }
                object
            }
        };
        object::keep_server_owned(&mut object, old);
        self.set_type(&mut object);
        self.validate(&object, self.name())?;
        Ok(object)
    }

    /// Stores `object` if the key is still at `revision`.
    async fn write(&self, revision: i64, object: Value, code: StatusCode) -> ApiResult<Response> {
        if self.dry_run() {
            return self.respond(code, object::with_resource_version(object, revision));
        }
        match self.api.store.txn(&self.key(), Compare::ModRevision(revision), Op::Put(encode(&object))).await? {
            TxnOutcome::Done(kv) => self.respond(code, object::with_resource_version(object, kv.mod_revision)),
            TxnOutcome::Failed(_) => Err(ApiError::conflict(self.kind.plural, self.name())),
        }
    }

    // ANCHOR: patch
    /// PATCH: read, apply the patch, write back with compare-and-swap; on a conflict
    /// with another writer, read again and retry (the client did not ask for a version).
    async fn patch(&self, body: &[u8]) -> ApiResult<Response> {
        let subresource = self.subresource()?;
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let content_type = content_type.split(';').next().unwrap_or_default().trim();
        let apply = content_type == "application/apply-patch+yaml";
        let patch_doc: Value = if apply {
            serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))?
        } else {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON patch body: {e}")))?
        };
        for _attempt in 0..10 {
            let Some((kv, old)) = self.read().await? else {
                if apply {
                    // Server-side apply of a missing object creates it.
                    return self.create(&serde_json::to_vec(&patch_doc).unwrap_or_default()).await;
                }
                return Err(ApiError::not_found(self.kind.plural, self.name()));
            };
            let mut patched = old.clone();
            match content_type {
                "application/merge-patch+json" => patch::merge_patch(&mut patched, &patch_doc),
                "application/json-patch+json" => patch::json_patch(&mut patched, &patch_doc)
                    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e))?,
                "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
                    patch::strategic_merge_patch(&mut patched, &patch_doc)
                }
                other => {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("the patch type {other:?} is not supported"),
                    ));
                }
            }
            // A patch that names a resourceVersion is a precondition, as for PUT.
            if let Some(rv) = patched.pointer("/metadata/resourceVersion").and_then(Value::as_str)
                && object::parse_resource_version(rv) != Some(kv.mod_revision)
            {
                return Err(ApiError::conflict(self.kind.plural, self.name()));
            }
            let object = self.merge_for_write(patched, &old, subresource)?;
            match self.write(kv.mod_revision, object, StatusCode::OK).await {
                Err(err) if err.reason == "Conflict" => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(self.kind.plural, self.name()))
    }
    // ANCHOR_END: patch

    /// DELETE: removes the object and returns it as it was (what clients expect for pods).
    async fn delete(&self, body: &[u8]) -> ApiResult<Response> {
        let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let precondition = options.pointer("/preconditions/resourceVersion").and_then(Value::as_str);
        loop {
            let Some((kv, old)) = self.read().await? else {
                return Err(ApiError::not_found(self.kind.plural, self.name()));
            };
            if precondition.is_some_and(|rv| object::parse_resource_version(rv) != Some(kv.mod_revision)) {
                return Err(ApiError::conflict(self.kind.plural, self.name()));
            }
            if self.dry_run() {
                return self.respond(StatusCode::OK, old);
            }
            match self.api.store.txn(&self.key(), Compare::ModRevision(kv.mod_revision), Op::Delete).await? {
                TxnOutcome::Done(_) => return self.respond(StatusCode::OK, old),
                TxnOutcome::Failed(_) => continue, // Changed meanwhile: delete what is there now.
            }
        }
    }

    /// The request body as a JSON object (any `Content-Type`: some clients send none).
    fn body_object(&self, body: &[u8]) -> ApiResult<Value> {
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if content_type.contains("protobuf") {
            // kubectl's generator commands (`kubectl create namespace NAME`, `create
            // configmap`) send protobuf. We speak only JSON; they do not fall back.
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "this server reads JSON and YAML bodies only, not {content_type}: \
                     write the object to a file and use `kubectl create -f` or `kubectl apply -f`"
                ),
            ));
        }
        let mut object: Value = serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice(body))
            .map_err(|e| ApiError::bad_request(format!("the request body is not a JSON object: {e}")))?;
        if !object.is_object() {
            return Err(ApiError::bad_request("the request body is not a JSON object"));
        }
        if let Some(kind) = object.get("kind").and_then(Value::as_str)
            && kind != self.kind.kind
        {
            return Err(ApiError::bad_request(format!(
                "the body is a {kind}, but the URL is for {}",
                self.kind.plural
            )));
        }
        self.set_type(&mut object);
        Ok(object)
    }

    /// `kind` and `apiVersion` come from the URL: the Python client leaves them out.
    fn set_type(&self, object: &mut Value) {
        object["kind"] = json!(self.kind.kind);
        object["apiVersion"] = json!(self.kind.api_version());
    }

    fn validate(&self, object: &Value, name: &str) -> ApiResult<()> {
        let causes = (self.kind.validate)(object);
        if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(self.kind.kind, name, &causes)) }
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    async fn require_namespace(&self, namespace: &str) -> ApiResult<()> {
        let key = format!("/registry/namespaces/{namespace}");
        match self.api.store.get(&key).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found("namespaces", namespace)),
        }
    }
}

/// Creates the namespaces that are missing (at start-up).
///
/// # Errors
/// If the store fails.
pub async fn ensure_namespaces(api: &Api, names: &[&str]) -> crate::Result<()> {
    let Some(kind) = api.registry.find("", "v1", "namespaces") else { return Ok(()) };
    for name in names {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        object::stamp_new(&mut ns, None);
        (kind.default)(&mut ns);
        api.store.txn(&kind.key(None, name), Compare::Absent, Op::Put(encode(&ns))).await?;
    }
    Ok(())
}

/// A stored object, with its resourceVersion.
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let object: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("the stored object {} is not JSON: {e}", kv.key)))?;
    Ok(object::with_resource_version(object, kv.mod_revision))
}

fn encode(object: &Value) -> Vec<u8> {
    let mut object = object.clone();
    object::metadata_mut(&mut object).remove("resourceVersion");
    serde_json::to_vec(&object).unwrap_or_default()
}

/// Five characters as kube-apiserver appends to a `generateName`: no vowels, so no words.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5].iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// A continue token: the list's revision and the last key returned, hex-encoded so
/// it is opaque and URL-safe.
fn encode_continue(revision: i64, last_key: &str) -> String {
    format!("{revision}:{last_key}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request("invalid continue token: start the list again without it");
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    let text = String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let (revision, key) = text.split_once(':').ok_or_else(bad)?;
    if !key.starts_with(prefix) {
        return Err(bad());
    }
    Ok((revision.parse().map_err(|_| bad())?, key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts = (String, Option<String>, String, Option<String>, Option<String>);

    fn parse(path: &str) -> Option<Parts> {
        ResourcePath::parse(path).map(|p| (p.group, p.namespace, p.plural, p.name, p.subresource))
    }

    // Every shape of resource URL, namespaced and cluster-scoped, core and named groups.
    #[test]
    fn resource_urls_parse() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(parse("/api/v1/pods"), Some(("".into(), None, "pods".into(), None, None)));
        assert_eq!(
            parse("/api/v1/namespaces/default/pods"),
            Some(("".into(), s("default"), "pods".into(), None, None))
        );
        assert_eq!(
            parse("/api/v1/namespaces/default/pods/web/status"),
            Some(("".into(), s("default"), "pods".into(), s("web"), s("status")))
        );
        assert_eq!(
            parse("/api/v1/namespaces/kube-system"),
            Some(("".into(), None, "namespaces".into(), s("kube-system"), None))
        );
        assert_eq!(parse("/api/v1/namespaces"), Some(("".into(), None, "namespaces".into(), None, None)));
        assert_eq!(
            parse("/api/v1/namespaces/x/status"),
            Some(("".into(), None, "namespaces".into(), s("x"), s("status")))
        );
        assert_eq!(
            parse("/apis/apps/v1/namespaces/default/deployments/web"),
            Some(("apps".into(), s("default"), "deployments".into(), s("web"), None))
        );
        assert_eq!(parse("/api/v1/nodes/n1"), Some(("".into(), None, "nodes".into(), s("n1"), None)));
        assert_eq!(parse("/healthz"), None);
        assert_eq!(parse("/api/v1/a/b/c/d"), None);
    }

    // A continue token round-trips, and a forged one is refused.
    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "/registry/pods/default/web");
        assert_eq!(decode_continue(&token, "/registry/pods/").unwrap(), (42, "/registry/pods/default/web".into()));
        assert!(decode_continue(&token, "/registry/nodes/").is_err());
        assert!(decode_continue("zz", "/").is_err());
    }

    // generateName suffixes are five letters from kube-apiserver's alphabet.
    #[test]
    fn generated_names_have_five_safe_characters() {
        let suffix = random_suffix();
        assert_eq!(suffix.len(), 5);
        assert!(suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
