//! The API server: Kubernetes' REST API over HTTP and JSON, with axum.
//!
//! ```text
//!  kubectl / controllers / kubelet
//!         │  HTTP + JSON
//!         ▼
//!  ┌───────────── API server ─────────────┐
//!  │ route ─▶ find the Kind ─▶ validate,   │
//!  │          stamp metadata ─▶ store txn  │
//!  │ watch ◀── store watch ◀───────────────┤
//!  └──────────────────┬────────────────────┘
//!                     ▼
//!               store (sled or etcd)
//! ```
//!
//! The URL says everything: `/api/v1/namespaces/default/pods/web/status` is the core
//! group (`/api`), version `v1`, namespace `default`, resource `pods`, object `web`,
//! subresource `status`. Named groups live under `/apis/GROUP/VERSION/...`.
//!
//! ## Layout
//! - `mod.rs` (here): the router, the shared state and [`serve`].
//! - [`resources`]: the URL of an object, and get, list, create, update, patch, delete.
//! - [`watch`]: the watch stream.
//! - [`discovery`]: `/api`, `/apis`, `/version`, `/openapi/v2`.
//! - [`selectors`], [`table`], [`patch`]: label/field selectors, the Table format, patches.
//! - [`status`]: errors as `Status` objects.
//!
//! What the real kube-apiserver does differently: it serves HTTPS only (with client
//! certificates or tokens), runs every request through authentication, authorization
//! (RBAC) and admission plugins, and answers reads and watches from a watch cache in
//! memory instead of going to etcd each time.

pub mod discovery;
pub mod patch;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod table;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::store::Store;

/// What every handler shares: the store and the known kinds. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Api {
    pub fn new(store: Arc<dyn Store>, registry: Registry) -> Api {
        Api { store, registry: Arc::new(registry), bookmark_interval: Duration::from_secs(30) }
    }
}

// ANCHOR: router
/// The HTTP routes: discovery documents by name, every resource URL through one handler
/// that parses the path itself.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api", get(discovery::api))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::apis))
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/version", get(discovery::version))
        .route("/openapi/v2", get(discovery::openapi_v2))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .fallback(resources::handle)
        .with_state(api)
}
// ANCHOR_END: router

/// How `kthw apiserver` runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Allow a non-loopback address although we speak plain HTTP with no authentication.
    pub insecure_remote: bool,
    /// Revisions of history to keep for watches that resume; older ones are compacted.
    pub history: i64,
}

/// The namespaces every cluster has; `kubectl` uses `default` unless told otherwise.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Binds the listening socket. Refuses a non-loopback address without `insecure_remote`:
/// anyone who can reach it could do anything to the cluster.
///
/// # Errors
/// [`Error::Listen`] for a refused address, [`Error::Io`] if binding fails.
pub async fn bind(config: &Config) -> Result<tokio::net::TcpListener> {
    if !config.listen.ip().is_loopback() {
        if !config.insecure_remote {
            return Err(Error::Listen(format!(
                "refusing to listen on {} without TLS or authentication: anyone who can reach it controls \
                 the cluster; use 127.0.0.1, or pass --insecure-allow-remote if you really mean it",
                config.listen
            )));
        }
        tracing::warn!(listen = %config.listen, "serving the API over plain HTTP with no authentication to the network");
        eprintln!(
            "WARNING: serving the API on {} over plain HTTP with no authentication: anyone who can reach it controls the cluster",
            config.listen
        );
    }
    tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Io { action: format!("listen on {}", config.listen), source })
}

// ANCHOR: serve
/// Serves the API on `listener` until the process ends: creates the system namespaces
/// if they are missing, starts compaction, then answers requests.
///
/// # Errors
/// If the store fails while bootstrapping, or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, api: Api, config: &Config) -> Result<()> {
    resources::ensure_namespaces(&api, &SYSTEM_NAMESPACES).await?;
    tokio::spawn(compact_forever(api.store.clone(), config.history));
    axum::serve(listener, router(api)).await.map_err(|source| Error::Io { action: "serve HTTP".into(), source })
}
// ANCHOR_END: serve

/// Every 10 s, forgets history older than `keep` revisions: the API server's job, as
/// kube-apiserver compacts etcd every 5 minutes.
async fn compact_forever(store: Arc<dyn Store>, keep: i64) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        match store.revisions().await {
            Ok(revs) if revs.current - keep > revs.compacted => {
                if let Err(err) = store.compact(revs.current - keep).await {
                    tracing::warn!(%err, "compaction failed");
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "cannot read the store's revision"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Plain HTTP with no authentication stays on loopback unless explicitly allowed.
    #[tokio::test]
    async fn remote_addresses_need_an_explicit_flag() {
        let config =
            |listen: &str, insecure_remote| Config { listen: listen.parse().unwrap(), insecure_remote, history: 10 };
        let refused = bind(&config("0.0.0.0:0", false)).await.expect_err("0.0.0.0 must be refused");
        assert!(refused.to_string().contains("--insecure-allow-remote"), "{refused}");
        assert!(bind(&config("127.0.0.1:0", false)).await.is_ok());
        assert!(bind(&config("0.0.0.0:0", true)).await.is_ok());
    }
}
