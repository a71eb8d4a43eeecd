//! Benchmarks against a real etcd, measured in the same run: `kthw apiserver bench store`
//! and `kthw apiserver bench apiserver`.
//!
//! Absolute numbers on shared machines move by a third from one run to the next; ratios
//! to a peer measured minutes apart on the same disk barely move. So every figure is
//! printed next to etcd's, with the ratio, and the targets are ratios:
//!
//! | metric | target |
//! |---|---|
//! | sequential durable put, p50 | ≤ 1.0× etcd |
//! | 64 concurrent writers, puts/s | ≥ 1.0× etcd |
//! | put → watch event delivered, p50 | ≤ 1.0× etcd |
//! | API server create (HTTP, keep-alive), p50 | ≤ 1.5× an etcd JSON-gateway put, same client |
//!
//! etcd runs from `etcd` on `PATH` (Debian's etcd-server), on loopback ports, with its data
//! folder next to ours, so both pay for the same disk.
//!
//! What etcd's own benchmark tool does differently: `etcd benchmark put` drives many gRPC
//! connections with many clients and reports a histogram; ours is a small, fixed recipe.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use crate::error::{Error, Result};
use crate::store::{SledStore, Store};

/// Latency percentiles of one measurement, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

fn percentiles(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    Latency { p50: at(0.50), p99: at(0.99) }
}

/// What [`store_bench`] measured for one backend.
#[derive(Debug, Clone, Copy)]
pub struct StoreFigures {
    pub put: Latency,
    pub throughput: f64,
    pub watch: Latency,
}

/// Sequential puts, then `writers` concurrent writers, then put→event latency.
///
/// # Errors
/// If the store fails.
pub async fn store_bench(store: Arc<dyn Store>, n: usize, writers: usize) -> Result<StoreFigures> {
    let value = vec![b'v'; 256];
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        store.put(&format!("/bench/seq/{i:08}"), value.clone()).await?;
        samples.push(start.elapsed());
    }
    let put = percentiles(samples);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, value) = (store.clone(), value.clone());
        let each = n / writers;
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                store.put(&format!("/bench/conc/{w:03}/{i:08}"), value.clone()).await?;
            }
            Ok::<_, Error>(each)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.map_err(|e| Error::Store { action: "bench".into(), detail: e.to_string() })??;
    }
    let throughput = done as f64 / start.elapsed().as_secs_f64();

    let mut events = store.watch("/bench/watch/", 0).await?;
    let mut samples = Vec::with_capacity(n / 4);
    for i in 0..n / 4 {
        let start = Instant::now();
        store.put(&format!("/bench/watch/{i:08}"), value.clone()).await?;
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Ok(_))) => samples.push(start.elapsed()),
            _ => return Err(Error::Store { action: "bench watch".into(), detail: "no event within 5 s".into() }),
        }
    }
    Ok(StoreFigures { put, throughput, watch: percentiles(samples) })
}

/// A throw-away etcd on free loopback ports, with its data in `dir`; killed on drop.
pub struct LocalEtcd {
    child: Child,
    pub url: String,
}

impl LocalEtcd {
    /// # Errors
    /// If `etcd` cannot be started.
    pub async fn start(dir: &std::path::Path) -> Result<LocalEtcd> {
        let port = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let io = |action: &str| {
            let action = action.to_string();
            move |source| Error::Io { action, source }
        };
        let (client, peer) = (port().map_err(io("pick a port"))?, port().map_err(io("pick a port"))?);
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir)
            .args(["--name", "bench", "--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}"), "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("start etcd (is etcd-server installed?)"))?;
        let etcd = LocalEtcd { child, url };
        for _ in 0..100 {
            if reqwest_ok(&format!("{}/version", etcd.url)).await {
                return Ok(etcd);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Store { action: "start etcd".into(), detail: "it did not answer within 10 s".into() })
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn reqwest_ok(url: &str) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(url).await.is_ok_and(|r| r.status().is_success())
}

/// Sequential HTTP POSTs of `body` to `url` with one keep-alive client: p50/p99.
///
/// # Errors
/// If a request fails.
pub async fn http_post_latency(url: &str, bodies: impl Iterator<Item = String>) -> Result<Latency> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    for body in bodies {
        let start = Instant::now();
        let response = client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Store { action: format!("POST {url}"), detail: e.to_string() })?;
        let ok = response.status().is_success();
        let _ = response.bytes().await;
        if !ok {
            return Err(Error::Store { action: format!("POST {url}"), detail: "not a 2xx answer".into() });
        }
        samples.push(start.elapsed());
    }
    Ok(percentiles(samples))
}

/// Prints one comparison line: ours, etcd's, the ratio and whether it meets the target.
pub fn report(what: &str, ours: f64, etcd: f64, unit: &str, target: &str, lower_is_better: bool, limit: f64) -> String {
    let ratio = ours / etcd;
    let ok = if lower_is_better { ratio <= limit } else { ratio >= limit };
    format!(
        "{what:<34} kthw {ours:>9.3} {unit:<5} etcd {etcd:>9.3} {unit:<5} ratio {ratio:>5.2}  target {target:<7} {}",
        if ok { "ok" } else { "MISSED" }
    )
}

/// `kthw apiserver bench store`: the sled store against etcd, same disk, same run.
///
/// # Errors
/// If either store fails or etcd cannot be started.
pub async fn run_store_bench(dir: &std::path::Path, n: usize) -> Result<Vec<String>> {
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("sled"))?);
    let ours = store_bench(sled, n, 64).await?;
    let etcd = LocalEtcd::start(&dir.join("etcd")).await?;
    let theirs = store_bench(crate::store::open(&format!("etcd:{}", etcd.url)).await?, n, 64).await?;
    Ok(vec![
        report("sequential durable put p50", ours.put.p50, theirs.put.p50, "ms", "<= 1.0", true, 1.0),
        report("sequential durable put p99", ours.put.p99, theirs.put.p99, "ms", "info", true, f64::MAX),
        report("64 writers throughput", ours.throughput, theirs.throughput, "op/s", ">= 1.0", false, 1.0),
        report("put -> watch event p50", ours.watch.p50, theirs.watch.p50, "ms", "<= 1.0", true, 1.0),
        report("put -> watch event p99", ours.watch.p99, theirs.watch.p99, "ms", "info", true, f64::MAX),
    ])
}

/// `kthw apiserver bench apiserver`: creating a ConfigMap through our API server (on
/// sled) against a put through etcd's JSON gateway, with the same HTTP client.
///
/// # Errors
/// If either side fails or etcd cannot be started.
pub async fn run_apiserver_bench(dir: &std::path::Path, n: usize) -> Result<Vec<String>> {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("sled"))?);
    let api = crate::server::Api::new(store, crate::registry::Registry::builtin());
    crate::server::resources::ensure_namespaces(&api, &crate::server::SYSTEM_NAMESPACES).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| Error::Io { action: "bind".into(), source })?;
    let address = listener.local_addr().map_err(|source| Error::Io { action: "bind".into(), source })?;
    tokio::spawn(async move { axum::serve(listener, crate::server::router(api)).await });
    let url = format!("http://{address}/api/v1/namespaces/default/configmaps");
    let data = "x".repeat(700);
    let ours = http_post_latency(
        &url,
        (0..n).map(|i| {
            format!(r#"{{"metadata":{{"name":"cm-{i}","labels":{{"bench":"yes"}}}},"data":{{"a":"{data}"}}}}"#)
        }),
    )
    .await?;
    let etcd = LocalEtcd::start(&dir.join("etcd")).await?;
    // The gateway wants base64 keys and values; these fixed strings are already base64.
    let theirs = http_post_latency(
        &format!("{}/v3/kv/put", etcd.url),
        (0..n).map(|i| format!(r#"{{"key":"a2V5{:08}","value":"{}"}}"#, i, "dmFsdWU".repeat(40))),
    )
    .await?;
    Ok(vec![
        report("create p50 (HTTP, keep-alive)", ours.p50, theirs.p50, "ms", "<= 1.5", true, 1.5),
        report("create p99 (HTTP, keep-alive)", ours.p99, theirs.p99, "ms", "info", true, f64::MAX),
    ])
}
