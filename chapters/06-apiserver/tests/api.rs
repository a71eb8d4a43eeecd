//! The API server's REST semantics, tested in-process (no sockets) through the axum router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use kthw_apiserver::registry::Registry;
use kthw_apiserver::server::{Api, SYSTEM_NAMESPACES, resources, router};
use kthw_apiserver::store::{SledStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct TestServer {
    app: Router,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    let mut api = Api::new(store.clone(), Registry::builtin());
    api.bookmark_interval = Duration::from_millis(200);
    resources::ensure_namespaces(&api, &SYSTEM_NAMESPACES).await.unwrap();
    TestServer { app: router(api), store, _dir: dir }
}

impl TestServer {
    async fn send(&self, method: &str, uri: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = self.app.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, "", "").await
    }
    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", uri, "application/json", &body.to_string()).await
    }
    /// Starts a watch and returns a function that reads its next event.
    async fn watch(&self, uri: &str) -> Body {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body()
    }
}

/// The next line of a watch stream, as JSON (fails after 5 s).
async fn next_event(body: &mut Body, buffer: &mut Vec<u8>) -> Value {
    loop {
        if let Some(at) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            return serde_json::from_slice(&line).unwrap();
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("an event within 5 s");
        let frame = frame.expect("the stream ended").unwrap();
        buffer.extend_from_slice(frame.data_ref().unwrap());
    }
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}})
}

const PODS: &str = "/api/v1/namespaces/default/pods";

// A create stamps server-owned metadata, answers 201, and a second create is 409 AlreadyExists.
#[tokio::test]
async fn create_stamps_metadata_and_refuses_duplicates() {
    let s = server().await;
    let (code, created) = s.post(PODS, pod("web", json!({}))).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["uid"].is_string() && created["metadata"]["resourceVersion"].is_string());
    let (code, status) = s.post(PODS, pod("web", json!({}))).await;
    assert_eq!(
        (code, &status["reason"], &status["kind"]),
        (StatusCode::CONFLICT, &json!("AlreadyExists"), &json!("Status"))
    );
    // generateName: the server picks the name.
    let (code, generated) =
        s.post(PODS, json!({"metadata": {"generateName": "job-"}, "spec": pod("x", json!({}))["spec"]})).await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(generated["metadata"]["name"].as_str().unwrap().starts_with("job-"));
    assert_eq!(generated["kind"], "Pod", "kind comes from the URL when the client leaves it out");
}

// An invalid pod is refused with 422 and the field at fault; a missing namespace is 404.
#[tokio::test]
async fn invalid_objects_and_missing_namespaces_are_refused() {
    let s = server().await;
    let (code, status) =
        s.post(PODS, json!({"metadata": {"name": "bad"}, "spec": {"containers": [{"name": "c"}]}})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(status["details"]["causes"][0]["field"], "spec.containers[0].image");
    let (code, status) = s.post("/api/v1/namespaces/nope/pods", pod("p", json!({}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(status["message"], "namespaces \"nope\" not found");
}

// Optimistic concurrency: a PUT with a stale resourceVersion is 409 Conflict.
#[tokio::test]
async fn stale_updates_conflict() {
    let s = server().await;
    let (_, created) = s.post(PODS, pod("web", json!({}))).await;
    let mut first = created.clone();
    first["metadata"]["labels"] = json!({"v": "1"});
    let (code, updated) = s.send("PUT", &format!("{PODS}/web"), "application/json", &first.to_string()).await;
    assert_eq!(code, StatusCode::OK);
    assert_ne!(updated["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    let mut second = created.clone();
    second["metadata"]["labels"] = json!({"v": "2"});
    let (code, status) = s.send("PUT", &format!("{PODS}/web"), "application/json", &second.to_string()).await;
    assert_eq!((code, &status["reason"]), (StatusCode::CONFLICT, &json!("Conflict")));
    assert!(status["message"].as_str().unwrap().contains("the object has been modified"));
}

// `.status` changes only through the status subresource, and the subresource changes only `.status`.
#[tokio::test]
async fn status_is_written_through_its_subresource() {
    let s = server().await;
    s.post(PODS, pod("web", json!({}))).await;
    let body = json!({"status": {"phase": "Running"}, "spec": {"containers": []}}).to_string();
    let (code, patched) = s.send("PATCH", &format!("{PODS}/web/status"), "application/merge-patch+json", &body).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(patched["status"]["phase"], "Running");
    assert_eq!(patched["spec"]["containers"][0]["name"], "c", "the status subresource ignores spec");
    let body = json!({"status": {"phase": "Failed"}, "metadata": {"labels": {"a": "b"}}}).to_string();
    let (_, patched) = s.send("PATCH", &format!("{PODS}/web"), "application/merge-patch+json", &body).await;
    assert_eq!(patched["status"]["phase"], "Running", "the main resource ignores status");
    assert_eq!(patched["metadata"]["labels"]["a"], "b");
}

// The four patch types: merge, strategic (containers by name), JSON patch, and server-side
// apply, which creates a missing object.
#[tokio::test]
async fn patches_of_every_type() {
    let s = server().await;
    s.post(PODS, pod("web", json!({}))).await;
    let smp = json!({"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}).to_string();
    let (_, p) = s.send("PATCH", &format!("{PODS}/web"), "application/strategic-merge-patch+json", &smp).await;
    assert_eq!(p["spec"]["containers"][0]["image"], "busybox:2");
    assert_eq!(p["spec"]["containers"][0]["ports"][0]["containerPort"], 80, "strategic merge keeps the ports");
    let jp = json!([{"op": "add", "path": "/metadata/labels", "value": {"x": "1"}}]).to_string();
    let (_, p) = s.send("PATCH", &format!("{PODS}/web"), "application/json-patch+json", &jp).await;
    assert_eq!(p["metadata"]["labels"]["x"], "1");
    let applied = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: '1'\n";
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, created) = s.send("PATCH", &format!("{cms}/cfg"), "application/apply-patch+yaml", applied).await;
    assert_eq!((code, &created["data"]["a"]), (StatusCode::CREATED, &json!("1")));
    let (code, _) =
        s.send("PATCH", &format!("{cms}/cfg"), "application/apply-patch+yaml", &applied.replace("'1'", "'2'")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(s.get(&format!("{cms}/cfg")).await.1["data"]["a"], "2");
}

// Lists honour label and field selectors, and come in pages of `limit` with a
// `continue` token; every page reports the first page's resourceVersion.
#[tokio::test]
async fn lists_select_and_page() {
    let s = server().await;
    for (name, app) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "web")] {
        s.post(PODS, pod(name, json!({"app": app}))).await;
    }
    let names = |list: &Value| -> Vec<String> {
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    let (_, web) = s.get(&format!("{PODS}?labelSelector=app%3Dweb")).await;
    assert_eq!(names(&web), ["a", "c", "d"]);
    assert_eq!(web["kind"], "PodList");
    let (_, one) = s.get(&format!("{PODS}?fieldSelector=metadata.name%3Db")).await;
    assert_eq!(names(&one), ["b"]);
    let (_, page1) = s.get(&format!("{PODS}?labelSelector=app%3Dweb&limit=2")).await;
    assert_eq!(names(&page1), ["a", "c"]);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    s.post(PODS, pod("e", json!({"app": "web"}))).await;
    let (_, page2) = s.get(&format!("{PODS}?labelSelector=app%3Dweb&limit=2&continue={token}")).await;
    assert_eq!(names(&page2), ["d", "e"]);
    assert_eq!(page2["metadata"]["resourceVersion"], page1["metadata"]["resourceVersion"]);
    let (_, empty) = s.get("/api/v1/namespaces/kube-system/pods").await;
    assert_eq!(empty["items"], json!([]), "an empty list is [] (never null)");
}

// A watch from a list's resourceVersion sees exactly the later changes: MODIFIED, then
// DELETED carrying the last state.
#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let s = server().await;
    s.post(PODS, pod("web", json!({}))).await;
    let (_, list) = s.get(PODS).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let label = json!({"metadata": {"labels": {"x": "1"}}}).to_string();
    s.send("PATCH", &format!("{PODS}/web"), "application/merge-patch+json", &label).await;
    let mut body = s.watch(&format!("{PODS}?watch=true&resourceVersion={rv}")).await;
    let mut buffer = Vec::new();
    let modified = next_event(&mut body, &mut buffer).await;
    assert_eq!((&modified["type"], &modified["object"]["metadata"]["labels"]["x"]), (&json!("MODIFIED"), &json!("1")));
    s.send("DELETE", &format!("{PODS}/web"), "", "").await;
    let deleted = next_event(&mut body, &mut buffer).await;
    assert_eq!((&deleted["type"], &deleted["object"]["metadata"]["name"]), (&json!("DELETED"), &json!("web")));
}

// Without a resourceVersion (the Python client), a watch starts with the current
// objects; with sendInitialEvents (kubectl 1.35) they end with the initial-events-end bookmark.
#[tokio::test]
async fn watch_sends_initial_state_and_bookmarks() {
    let s = server().await;
    s.post(PODS, pod("web", json!({}))).await;
    let mut buffer = Vec::new();
    let mut body = s.watch(&format!("{PODS}?watch=True")).await;
    assert_eq!(next_event(&mut body, &mut buffer).await["type"], "ADDED");

    let uri =
        format!("{PODS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true");
    let mut body = s.watch(&uri).await;
    let mut buffer = Vec::new();
    assert_eq!(next_event(&mut body, &mut buffer).await["object"]["metadata"]["name"], "web");
    let end = next_event(&mut body, &mut buffer).await;
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    let periodic = next_event(&mut body, &mut buffer).await;
    assert_eq!(periodic["type"], "BOOKMARK", "allowWatchBookmarks sends bookmarks while idle");
}

// A watch from a compacted resourceVersion gets one ERROR event with a 410 Expired Status.
#[tokio::test]
async fn watch_from_compacted_history_is_gone() {
    let s = server().await;
    for n in 0..5 {
        s.post(PODS, pod(&format!("p{n}"), json!({}))).await;
    }
    let current = s.store.revisions().await.unwrap().current;
    s.store.compact(current).await.unwrap();
    let mut body = s.watch(&format!("{PODS}?watch=true&resourceVersion=2")).await;
    let error = next_event(&mut body, &mut Vec::new()).await;
    assert_eq!(error["type"], "ERROR");
    assert_eq!((&error["object"]["code"], &error["object"]["reason"]), (&json!(410), &json!("Expired")));
}

// Discovery lists each kind with its short names and the status subresource.
#[tokio::test]
async fn discovery_describes_the_kinds() {
    let s = server().await;
    let (_, v1) = s.get("/api/v1").await;
    let pods = v1["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap().clone();
    assert_eq!(
        (&pods["kind"], &pods["namespaced"], &pods["shortNames"]),
        (&json!("Pod"), &json!(true), &json!(["po"]))
    );
    assert!(v1["resources"].as_array().unwrap().iter().any(|r| r["name"] == "pods/status"));
    assert_eq!(s.get("/apis").await.1["kind"], "APIGroupList");
    assert_eq!(s.get("/openapi/v2").await.0, StatusCode::OK);
    assert_eq!(s.get("/openapi/v3").await.0, StatusCode::NOT_FOUND);
    let (code, status) = s.get("/api/v1/widgets").await;
    assert_eq!((code, &status["kind"]), (StatusCode::NOT_FOUND, &json!("Status")));
}
