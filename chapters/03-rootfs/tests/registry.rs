//! Pulling: against a fake registry with Docker Hub's token flow and a manifest list
//! (written here, on loopback), and against a real one (Debian's `docker-registry`) to
//! which skopeo pushed the image. Never the internet.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{Env, run};
use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_rootfs::registry::{PullOptions, pull};
use kthw_rootfs::{import, oci};

/// The fake registry's state: an OCI layout to serve, and a log of what it was asked.
#[derive(Clone)]
struct Fake {
    layout: PathBuf,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    /// Blob downloads in flight now, and the most seen at once.
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

const TOKEN: &str = "token-for-test-bb";

async fn token(State(fake): State<Fake>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or("").to_string();
    fake.log.lock().unwrap().push(format!("token {query}"));
    if query.contains("scope=repository%3Atest%2Fbb%3Apull") {
        ([(header::CONTENT_TYPE, "application/json")], format!("{{\"token\":\"{TOKEN}\"}}")).into_response()
    } else {
        StatusCode::FORBIDDEN.into_response()
    }
}

async fn v2(State(fake): State<Fake>, headers: HeaderMap, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let authorized =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
    fake.log.lock().unwrap().push(format!("{} {path} {range}", if authorized { "auth" } else { "anon" }));
    if !authorized {
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"fake\",scope=\"repository:test/bb:pull\"",
            fake.port
        );
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
    }
    let blob = |digest: &str| fake.layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    if let Some(reference) = path.strip_prefix("/v2/test/bb/manifests/") {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fake.layout.join("index.json")).unwrap()).unwrap();
        let ours = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        let (bytes, media) = match reference {
            // A manifest list: another architecture first, then ours.
            "multi" => {
                let list = serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                    "manifests": [
                        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 7,
                         "digest": kthw_rootfs::digest::of(b"not ours"), "platform": {"architecture": "s390x", "os": "linux"}},
                        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": index["manifests"][0]["size"],
                         "digest": ours, "platform": {"architecture": import::host_arch(), "os": "linux"}},
                    ]
                });
                (serde_json::to_vec(&list).unwrap(), "application/vnd.docker.distribution.manifest.list.v2+json")
            }
            "latest" => (std::fs::read(blob(&ours)).unwrap(), "application/vnd.oci.image.manifest.v1+json"),
            digest => match std::fs::read(blob(digest)) {
                Ok(b) => (b, "application/vnd.oci.image.manifest.v1+json"),
                Err(_) => return StatusCode::NOT_FOUND.into_response(),
            },
        };
        return ([(header::CONTENT_TYPE, media)], bytes).into_response();
    }
    if let Some(digest) = path.strip_prefix("/v2/test/bb/blobs/") {
        let Ok(bytes) = std::fs::read(blob(digest)) else { return StatusCode::NOT_FOUND.into_response() };
        // Slow blobs, so that parallel downloads overlap and the test can see it.
        let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        fake.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        fake.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(from) = range.strip_prefix("bytes=").and_then(|r| r.trim_end_matches('-').parse::<usize>().ok()) {
            let rest = bytes[from..].to_vec();
            let content_range = format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len());
            return (StatusCode::PARTIAL_CONTENT, [(header::CONTENT_RANGE, content_range)], Body::from(rest))
                .into_response();
        }
        return bytes.into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

/// Starts the fake registry on a free loopback port, serving `layout`.
async fn start_fake(layout: &Path) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = Fake {
        layout: layout.to_path_buf(),
        port,
        log: Arc::default(),
        in_flight: Arc::default(),
        most_in_flight: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .route("/v2/{*rest}", axum::routing::get(v2))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

/// Busybox in the store and exported as an OCI layout.
fn busybox_layout(env: &Env) -> (kthw_rootfs::Image, PathBuf) {
    let image = env.busybox_image("busybox");
    let layout = env.home.path().join("served");
    oci::export(&env.store, &image, &layout, "latest").unwrap();
    (image, layout)
}

// Docker Hub's flow: a 401 with a Bearer challenge, a token from the token server, the
// manifest list, this architecture's manifest, then the blobs, all with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_with_token_and_manifest_list() {
    require!(Need::Root);
    let env = Env::new();
    let (source, layout) = busybox_layout(&env);
    let fake = start_fake(&layout).await;
    let target = Env::new();
    let reference = format!("127.0.0.1:{}/test/bb:multi", fake.port);
    let image = pull(&target.store, &reference, &PullOptions::default()).await.unwrap();
    assert_eq!(image.manifest_digest, source.manifest_digest);
    assert_eq!(image.name, reference);
    assert!(target.store.layer_dirs(&image).unwrap()[0].join("bin/busybox").is_file());
    let log = fake.log.lock().unwrap().clone();
    assert!(log[0].starts_with("anon /v2/test/bb/manifests/multi"), "{log:?}");
    assert!(log[1].starts_with("token service=fake&scope=repository%3Atest%2Fbb%3Apull"), "{log:?}");
    assert!(log[2].starts_with("auth /v2/test/bb/manifests/multi"), "{log:?}");
    assert!(log[3].starts_with(&format!("auth /v2/test/bb/manifests/{}", source.manifest_digest)), "{log:?}");
    assert_eq!(log.iter().filter(|l| l.contains("/blobs/")).count(), 2, "config and one layer: {log:?}");
}

// Layers download in parallel: with three layers and --parallel 3, the registry sees
// more than one blob request at once; with --parallel 1, never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_download_in_parallel() {
    require!(Need::Root);
    let env = Env::new();
    let base = env.busybox_image("busybox");
    let mut layers = Vec::new();
    for n in 0..2 {
        let dir = env.scratch(&format!("extra{n}"));
        std::fs::write(dir.join(format!("file{n}")), format!("layer {n}\n")).unwrap();
        layers.push(
            import::store_layer(&env.store, |w| kthw_rootfs::diff::write_tar(&dir, w, &Default::default()).map(|_| ()))
                .unwrap(),
        );
    }
    let image =
        import::write_image(&env.store, "three", base.config.clone(), base.manifest.layers().clone(), layers, None)
            .unwrap();
    let layout = env.home.path().join("three");
    oci::export(&env.store, &image, &layout, "latest").unwrap();
    let fake = start_fake(&layout).await;
    let reference = format!("127.0.0.1:{}/test/bb:latest", fake.port);

    let parallel = Env::new();
    pull(&parallel.store, &reference, &PullOptions { parallel: 3, ..Default::default() }).await.unwrap();
    assert!(fake.most_in_flight.load(Ordering::SeqCst) >= 2, "downloads did not overlap");

    fake.most_in_flight.store(0, Ordering::SeqCst);
    let serial = Env::new();
    let pulled = pull(&serial.store, &reference, &PullOptions { parallel: 1, ..Default::default() }).await.unwrap();
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(pulled.manifest.layers().len(), 3);
}

// A download cut off halfway is resumed with a Range request, and still verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_download_resumes() {
    require!(Need::Root);
    let env = Env::new();
    let (source, layout) = busybox_layout(&env);
    let fake = start_fake(&layout).await;
    let target = Env::new();
    let layer = source.manifest.layers()[0].digest().to_string();
    let full = std::fs::read(layout.join("blobs/sha256").join(&layer[7..])).unwrap();
    let half = full.len() / 2;
    std::fs::write(target.store.root().join("tmp").join(format!("pull-{}", &layer[7..])), &full[..half]).unwrap();
    let image =
        pull(&target.store, &format!("127.0.0.1:{}/test/bb:latest", fake.port), &PullOptions::default()).await.unwrap();
    assert_eq!(image.manifest_digest, source.manifest_digest);
    let log = fake.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains(&layer) && l.ends_with(&format!("bytes={half}-"))), "{log:?}");
}

// A tampered blob from the registry is refused and leaves no image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blob_is_refused() {
    require!(Need::Root);
    let env = Env::new();
    let (source, layout) = busybox_layout(&env);
    let config = source.manifest.config().digest().to_string();
    std::fs::write(layout.join("blobs/sha256").join(&config[7..]), b"{\"evil\":1}").unwrap();
    let fake = start_fake(&layout).await;
    let target = Env::new();
    let err = pull(&target.store, &format!("127.0.0.1:{}/test/bb:latest", fake.port), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("corrupted or tampered with"), "{err}");
    assert!(target.store.refs().unwrap().is_empty());
    assert!(common::tree(&target.store.root().join("blobs/sha256")).is_empty(), "no blob is left behind");
}

/// Debian's docker-registry on a free loopback port with its storage in `dir`; killed on drop.
struct Registry(Child, u16);

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry(child, port);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on 127.0.0.1:{port}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// The whole round trip with real tools: skopeo pushes our OCI export to a real registry,
// we pull it, change it in a pivoted shell, commit, export, and skopeo and umoci read
// the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_through_a_real_registry() {
    require!(
        Need::Root,
        Need::Overlayfs,
        Need::Command("docker-registry"),
        Need::Command("skopeo"),
        Need::Command("umoci")
    );
    let env = Env::new();
    let (source, layout) = busybox_layout(&env);
    let registry = Registry::start(&env.scratch("registry"));
    let reference = format!("127.0.0.1:{}/kthw/busybox:1", registry.1);
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{reference}")));

    let target = Env::new();
    let pulled = pull(&target.store, &reference, &PullOptions::default()).await.unwrap();
    assert_eq!(pulled.diff_ids(), source.diff_ids());

    let rootfs =
        kthw_rootfs::rootfs::Rootfs::create(&target.home.paths, &target.store, &reference, "rt", None, vec![]).unwrap();
    let spec = rootfs.spec(&target.store, vec!["sh".into(), "-c".into(), "echo pulled > /etc/motd".into()]).unwrap();
    assert_eq!(kthw_rootfs::pivot::run(&spec).unwrap(), 0);
    let committed = rootfs.commit(&target.store, "busybox-committed").unwrap();
    let out = target.home.path().join("out-layout");
    oci::export(&target.store, &committed, &out, "committed").unwrap();
    let inspect = run(Command::new("skopeo").arg("inspect").arg(format!("oci:{}:committed", out.display())));
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(run(Command::new("umoci").args(["ls", "--layout"]).arg(&out)).trim(), "committed");
    rootfs.remove(&target.store).unwrap();
    drop(registry);
}
