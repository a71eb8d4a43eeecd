//! Watch: a long HTTP response that never ends, one JSON event per line.
//!
//! ```text
//!  GET /api/v1/namespaces/default/pods?watch=true&resourceVersion=41
//!
//!  HTTP/1.1 200 OK
//!  Transfer-Encoding: chunked
//!
//!  {"type":"ADDED","object":{"kind":"Pod",...,"resourceVersion":"42"}}
//!  {"type":"MODIFIED","object":{...,"resourceVersion":"45"}}
//!  {"type":"DELETED","object":{...,"resourceVersion":"46"}}
//!  ...
//! ```
//!
//! Where the watch starts depends on `resourceVersion`:
//!
//! - a number R: every change *after* R (the store replays its history from R+1). A
//!   client that lists at R and then watches from R misses nothing and sees nothing twice.
//! - unset or `0`: first a synthetic ADDED for every object that exists, then changes.
//! - with `sendInitialEvents=true` (kubectl ≥ 1.35's "watch list"): the same synthetic
//!   ADDED events, then a BOOKMARK annotated `k8s.io/initial-events-end` that says "you now
//!   have the full state".
//!
//! If R is older than the store's compacted revision, the history is gone: the stream
//! carries one ERROR event with a `410 Expired` Status, and the client must list again.
//!
//! What the real kube-apiserver does differently: watches are served from the *watch
//! cache*, one etcd watch per resource type shared by all clients, instead of one store
//! watch per client; an object that stops matching a label selector is sent as DELETED
//! (we only filter on the new object); and bookmarks are timed by the cache.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::resources::{Request, decode, truthy};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use super::table::{self, IncludeObject};
use crate::object;
use crate::registry::Kind;
use crate::store::{EventKind, EventStream};

/// What each event is sent as.
#[derive(Clone)]
struct Format {
    kind: Kind,
    table: Option<IncludeObject>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Format {
    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// One line of the stream: `{"type":..,"object":..}` and a newline (the Python
    /// client splits the stream on newlines; kubectl does not need them).
    fn line(&self, kind: &str, object: Value) -> Bytes {
        let object = match self.table {
            Some(include) => {
                let rv =
                    object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string();
                table::table(&self.kind, &[object], include, &rv, "")
            }
            None => object,
        };
        event_line(kind, &object)
    }

    /// A BOOKMARK: an object of the watched kind with only a resourceVersion.
    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": metadata});
        event_line("BOOKMARK", &object)
    }
}

/// `{"type":"ADDED","object":{...}}` and a newline. Written by hand so that `type` comes
/// first, as kube-apiserver sends it (serde_json would sort the keys).
fn event_line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n"))
}

// ANCHOR: watch
/// Answers a `?watch=true` request with a stream of events.
pub async fn watch(request: &Request) -> ApiResult<Response> {
    let (labels, fields) = request.selectors()?;
    let table = request.wants_table().then(|| request.include_object());
    let format = Format { kind: request.kind.clone(), table, labels, fields };
    let prefix = request.kind.key_prefix(request.path.namespace.as_deref());
    let store = request.api.store.clone();

    let send_initial = match request.param("sendInitialEvents") {
        Some(value) => truthy(Some(value)),
        // Without the parameter, "unset" and "0" mean: the current state first.
        None => matches!(request.param("resourceVersion"), None | Some("0")),
    };
    let (initial, from) = if send_initial {
        let range = store.range(&prefix, None, 0).await?;
        let objects: ApiResult<Vec<Value>> = range.kvs.iter().map(decode).collect();
        (Some((objects?, range.revision)), range.revision + 1)
    } else {
        let from = match request.param("resourceVersion") {
            Some(rv) => object::parse_resource_version(rv)
                .ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
            None => store.revisions().await?.current,
        };
        (None, from + 1)
    };
    // A compacted start is not an HTTP error but an ERROR event: that is what clients'
    // retry logic looks for.
    let events = match store.watch(&prefix, from).await {
        Ok(events) => Ok(events),
        Err(err @ crate::Error::Compacted { .. }) => Err(ApiError::from(err)),
        Err(other) => return Err(other.into()),
    };
    let watch = Watch {
        format,
        initial,
        watch_list: request.param("sendInitialEvents").is_some_and(|v| truthy(Some(v))),
        bookmarks: truthy(request.param("allowWatchBookmarks")),
        bookmark_interval: request.api.bookmark_interval,
        timeout: request.param("timeoutSeconds").and_then(|t| t.parse().ok()).map(Duration::from_secs),
        last_revision: from - 1,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(watch.run(events, tx));
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
// ANCHOR_END: watch

/// One watcher's state, owned by its task.
struct Watch {
    format: Format,
    /// The objects to send as ADDED first, and the revision they were read at.
    initial: Option<(Vec<Value>, i64)>,
    /// `sendInitialEvents=true`: end the initial events with a bookmark.
    watch_list: bool,
    bookmarks: bool,
    bookmark_interval: Duration,
    timeout: Option<Duration>,
    /// The revision of the last event sent: what a bookmark reports.
    last_revision: i64,
}

impl Watch {
    // ANCHOR: run
    /// Sends the initial events, then every store event, until the client hangs up,
    /// `timeoutSeconds` passes, or the history it needs is compacted.
    async fn run(mut self, events: Result<EventStream, ApiError>, tx: mpsc::Sender<Bytes>) {
        let mut events = match events {
            Ok(events) => events,
            Err(expired) => {
                let _ = tx.send(self.format.line("ERROR", expired.to_status())).await;
                return;
            }
        };
        if let Some((objects, revision)) = self.initial.take() {
            for object in objects.into_iter().filter(|o| self.format.matches(o)) {
                if tx.send(self.format.line("ADDED", object)).await.is_err() {
                    return;
                }
            }
            self.last_revision = revision;
            if self.watch_list && tx.send(self.format.bookmark(revision, true)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(self.timeout.unwrap_or(Duration::from_secs(u32::MAX.into())));
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(self.bookmark_interval);
        bookmark.tick().await; // The first tick is immediate; skip it.
        loop {
            let line = tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        self.last_revision = event.kv.mod_revision;
                        let Ok(object) = decode(&event.kv) else { continue };
                        if !self.format.matches(&object) {
                            continue;
                        }
                        let kind = match event.kind {
                            EventKind::Delete => "DELETED",
                            EventKind::Put if event.kv.version == 1 => "ADDED",
                            EventKind::Put => "MODIFIED",
                        };
                        self.format.line(kind, object)
                    }
                    Some(Err(err)) => {
                        let _ = tx.send(self.format.line("ERROR", ApiError::from(err).to_status())).await;
                        return;
                    }
                    None => return,
                },
                _ = bookmark.tick(), if self.bookmarks => self.format.bookmark(self.last_revision, false),
                () = &mut deadline => return,
                () = tx.closed() => return,
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    }
    // ANCHOR_END: run
}
