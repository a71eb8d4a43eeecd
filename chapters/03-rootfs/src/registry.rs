//! Pulling an image from a registry: the OCI distribution API, as `docker pull` speaks it.
//!
//! ```text
//! GET /v2/<repo>/manifests/<tag>          401 + WWW-Authenticate: Bearer realm=..,service=..,scope=..
//! GET <realm>?service=..&scope=..         {"token": "..."}     (anonymous, or with a password)
//! GET /v2/<repo>/manifests/<tag>          Authorization: Bearer ...  → an index (manifest list)
//! GET /v2/<repo>/manifests/<digest>       the manifest for linux/<this arch>
//! GET /v2/<repo>/blobs/<config digest>    the config
//! GET /v2/<repo>/blobs/<layer digest>     each layer, several at once, Range: bytes=N- to resume
//! ```
//!
//! Docker Hub answers the first request with 401 and the address of its token server;
//! the token is good for one repository and action (`scope`). A registry without auth
//! (like Debian's `docker-registry` as shipped) answers 200 at once. Every blob is
//! checked against its digest before it enters the store, so a registry (or anything
//! between) cannot change an image without being caught. A layer download that is cut
//! off stays in `tmp/` and the next pull asks only for the rest.
//!
//! What `docker pull` does differently: it also speaks Docker's old schema 1 manifests,
//! retries with backoff, mirrors, and reads credentials from `~/.docker/config.json`
//! and credential helpers; containerd adds per-host configuration (`hosts.toml`). We take
//! a user and password from the environment, and treat `localhost`/`127.*` registries as
//! plain HTTP like Docker's default "insecure registries" list does.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::store::{Image, Store};
use crate::{Error, Result};

/// The media types we accept for a manifest, best first.
pub const ACCEPT: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A parsed image reference: `[registry/]repository[:tag|@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `registry-1.docker.io`, `127.0.0.1:5000`, ...
    pub registry: String,
    /// `library/busybox`, `team/app`, ...
    pub repository: String,
    /// A tag (`latest`) or a digest (`sha256:...`).
    pub reference: String,
}

// ANCHOR: reference
impl Reference {
    /// Parses a reference as Docker does: the first component is a registry only if it
    /// has a `.` or `:` or is `localhost`; otherwise the image is on Docker Hub, and
    /// one-word names live under `library/`.
    ///
    /// # Errors
    /// [`Error::BadReference`] for an empty or malformed reference.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| Error::BadReference { name: s.to_string(), why: why.to_string() };
        let (rest, reference) = if let Some((name, digest)) = s.split_once('@') {
            crate::digest::hex_of(digest).map_err(|_| bad("the part after @ is not a sha256 digest"))?;
            (name, digest.to_string())
        } else {
            match s.rsplit_once(':') {
                Some((name, tag)) if !tag.contains('/') => (name, tag.to_string()),
                _ => (s, "latest".to_string()),
            }
        };
        let (registry, repository) = match rest.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            Some(_) => ("registry-1.docker.io".to_string(), rest.to_string()),
            None => ("registry-1.docker.io".to_string(), format!("library/{rest}")),
        };
        let ok = |p: &str| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        };
        if !ok(&repository) || repository.contains("//") {
            return Err(bad("a repository is lowercase letters, digits and . _ - /"));
        }
        if reference.is_empty() {
            return Err(bad("the tag is empty"));
        }
        Ok(Reference { registry, repository, reference })
    }

    /// Whether the registry is on this machine, where plain HTTP is allowed.
    pub fn is_local(&self) -> bool {
        let host = self.registry.rsplit_once(':').map_or(self.registry.as_str(), |(h, _)| h);
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}
// ANCHOR_END: reference

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Use plain HTTP (always for local registries).
    pub insecure: bool,
    /// Layers downloaded at once.
    pub parallel: usize,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// A user and password for the token server (else anonymous).
    pub credentials: Option<(String, String)>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { insecure: false, parallel: 3, progress: false, credentials: None }
    }
}

/// A registry client for one repository.
struct Client {
    http: reqwest::Client,
    base: String,
    repository: String,
    token: Mutex<Option<String>>,
    credentials: Option<(String, String)>,
}

// ANCHOR: auth
/// The parameters of a `WWW-Authenticate: Bearer realm="..",service="..",scope=".."`.
pub fn parse_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim().strip_prefix("Bearer ")?;
    let mut out = Vec::new();
    let mut s = rest.trim();
    while let Some((key, after)) = s.split_once('=') {
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, t)| (v, t))
        };
        out.push((key.trim().trim_start_matches(',').trim().to_string(), value.to_string()));
        s = tail.trim_start_matches(',').trim();
    }
    Some(out)
}

impl Client {
    /// GETs `path` (under `/v2/<repo>/`), answering a Bearer challenge once.
    async fn get(&self, path: &str, accept: &[&str], range_from: u64) -> Result<reqwest::Response> {
        let url = format!("{}/v2/{}/{}", self.base, self.repository, path);
        for attempt in 0..2 {
            let mut request = self.http.get(&url).header("Accept", accept.join(", "));
            if range_from > 0 {
                request = request.header("Range", format!("bytes={range_from}-"));
            }
            if let Some(token) = self.token.lock().map(|t| t.clone()).unwrap_or_default() {
                request = request.bearer_auth(token);
            }
            let response =
                request.send().await.map_err(|e| Error::Registry { url: url.clone(), detail: e.to_string() })?;
            if response.status() != reqwest::StatusCode::UNAUTHORIZED || attempt == 1 {
                return check(response, &url).await;
            }
            let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
            let params = parse_challenge(challenge).ok_or_else(|| Error::Registry {
                url: url.clone(),
                detail: format!("401 with a challenge we do not speak: {challenge:?}"),
            })?;
            let token = self.fetch_token(&params).await?;
            if let Ok(mut slot) = self.token.lock() {
                *slot = Some(token);
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Asks the token server for a token for the challenge's scope.
    async fn fetch_token(&self, params: &[(String, String)]) -> Result<String> {
        let realm = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()).unwrap_or_default();
        if realm.is_empty() {
            return Err(Error::Registry { url: self.base.clone(), detail: "the Bearer challenge has no realm".into() });
        }
        let query: Vec<String> = params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let url = if query.is_empty() { realm } else { format!("{realm}?{}", query.join("&")) };
        let mut request = self.http.get(&url);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| Error::Registry { url: url.clone(), detail: e.to_string() })?;
        let body = check(response, &url)
            .await?
            .bytes()
            .await
            .map_err(|e| Error::Registry { url: url.clone(), detail: e.to_string() })?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Registry { url: url.clone(), detail: format!("token answer: {e}") })?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| Error::Registry { url, detail: "the token answer has no token".into() })
    }
}
// ANCHOR_END: auth

async fn check(response: reqwest::Response, url: &str) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let hint = match status.as_u16() {
        401 | 403 => " (no access: check the name, or give credentials with KTHW_REGISTRY_USER/KTHW_REGISTRY_PASSWORD)",
        404 => " (no such image or tag)",
        _ => "",
    };
    Err(Error::Registry { url: url.to_string(), detail: format!("{status}{hint}: {}", body.trim()) })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `kthw image pull`, for callers without an async runtime.
///
/// # Errors
/// As [`pull`].
pub fn pull_blocking(store: &Store, reference: &str, options: &PullOptions) -> Result<Image> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::io("start the async runtime", "tokio"))?;
    runtime.block_on(pull(store, reference, options))
}

// ANCHOR: pull
/// Pulls `reference` into the store and names it as written (`127.0.0.1:5000/bb:1`).
///
/// # Errors
/// A registry error, a digest mismatch, a refused layer.
pub async fn pull(store: &Store, reference: &str, options: &PullOptions) -> Result<Image> {
    let result = pull_inner(store, reference, options).await;
    if result.is_err() {
        // Blobs that arrived before the failure belong to no image: drop them.
        let _ = store.gc();
    }
    result
}

async fn pull_inner(store: &Store, reference: &str, options: &PullOptions) -> Result<Image> {
    let parsed = Reference::parse(reference)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .user_agent(concat!("kthw/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Registry { url: parsed.registry.clone(), detail: e.to_string() })?;
    let scheme = if options.insecure || parsed.is_local() { "http" } else { "https" };
    let client = Client {
        http,
        base: format!("{scheme}://{}", parsed.registry),
        repository: parsed.repository.clone(),
        token: Mutex::new(None),
        credentials: options.credentials.clone(),
    };

    // 1. The manifest, or an index from which we pick this platform's manifest.
    let (mut bytes, mut media_type) = fetch_manifest(&client, &parsed.reference).await?;
    if crate::oci::is_index(&media_type) {
        let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| Error::bad("image index", e))?;
        let chosen = crate::oci::pick_platform(&index)?;
        (bytes, media_type) = fetch_manifest(&client, chosen.digest().as_ref()).await?;
        verify(&bytes, chosen.digest().as_ref(), "manifest")?;
    }
    tracing::debug!("manifest {media_type}");
    let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| Error::bad("manifest", e))?;

    // 2. The config and the layers, several at once, each verified into the store.
    let bars = MultiProgress::with_draw_target(if options.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut blobs = vec![manifest.config().clone()];
    blobs.extend(manifest.layers().iter().cloned());
    let downloads = futures::stream::iter(blobs.into_iter().map(|d| download(&client, store, d, &bars)))
        .buffer_unordered(options.parallel.max(1))
        .collect::<Vec<Result<()>>>()
        .await;
    downloads.into_iter().collect::<Result<Vec<()>>>()?;
    if options.progress {
        // indicatif leaves the cursor at the end of the last bar.
        eprintln!();
    }

    // 3. Unpack and name it.
    let name = format!("{}/{}:{}", parsed.registry, parsed.repository, parsed.reference.replace("sha256:", "sha256-"));
    let name = if reference.contains('/') || reference.contains(':') { reference.to_string() } else { name };
    store.create_image(&name, &bytes)
}
// ANCHOR_END: pull

async fn fetch_manifest(client: &Client, reference: &str) -> Result<(Vec<u8>, String)> {
    let response = client.get(&format!("manifests/{reference}"), &ACCEPT, 0).await?;
    let header_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(String::from);
    let bytes =
        response.bytes().await.map_err(|e| Error::Registry { url: reference.into(), detail: e.to_string() })?.to_vec();
    if reference.starts_with("sha256:") {
        verify(&bytes, reference, "manifest")?;
    }
    // The body's own mediaType wins over a generic Content-Type such as application/json.
    let body_type = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(String::from));
    let media_type = body_type.or(header_type).unwrap_or_default();
    Ok((bytes, media_type))
}

fn verify(bytes: &[u8], expected: &str, what: &str) -> Result<()> {
    let actual = crate::digest::of(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch { what: what.into(), expected: expected.into(), actual })
    }
}

// ANCHOR: download
/// Downloads one blob into `tmp/pull-<hex>`, resuming a partial file with a Range
/// request, then moves it into the store if its digest matches.
async fn download(client: &Client, store: &Store, blob: Descriptor, bars: &MultiProgress) -> Result<()> {
    let digest = blob.digest().to_string();
    if store.has_blob(&digest) {
        return Ok(());
    }
    let partial: PathBuf = store.root().join("tmp").join(format!("pull-{}", crate::digest::hex_of(&digest)?));
    let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let bar = bars.add(ProgressBar::new(blob.size()));
    bar.set_style(
        ProgressStyle::with_template("{msg:14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(crate::digest::short(&digest).to_string());
    let mut response = client.get(&format!("blobs/{digest}"), &["*/*"], have).await?;
    // 206: the server sent the rest. 200: it ignored the range; start again.
    let resumed = response.status() == reqwest::StatusCode::PARTIAL_CONTENT;
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&partial)
        .map_err(Error::io("open", &partial))?;
    bar.set_position(if resumed { have } else { 0 });
    while let Some(chunk) =
        response.chunk().await.map_err(|e| Error::Registry { url: digest.clone(), detail: e.to_string() })?
    {
        file.write_all(&chunk).map_err(Error::io("write", &partial))?;
        bar.inc(chunk.len() as u64);
    }
    file.flush().map_err(Error::io("write", &partial))?;
    drop(file);
    bar.finish_with_message(format!("{} done", crate::digest::short(&digest)));
    store.adopt_blob(&partial, Some(&digest))?;
    Ok(())
}
// ANCHOR_END: download

#[cfg(test)]
mod tests {
    use super::*;

    // References are read as Docker reads them: Docker Hub and `library/` by default.
    #[test]
    fn references_parse_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("registry-1.docker.io", "library/busybox", "latest")
        );
        let r = Reference::parse("127.0.0.1:5000/team/bb:1.36").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("127.0.0.1:5000", "team/bb", "1.36")
        );
        assert!(r.is_local());
        let d = crate::digest::of(b"x");
        assert_eq!(Reference::parse(&format!("localhost/bb@{d}")).unwrap().reference, d);
        assert!(Reference::parse("Busybox").is_err());
        assert!(Reference::parse("bb@sha256:123").is_err());
    }

    // Docker Hub's challenge is parsed into realm, service and scope.
    #[test]
    fn bearer_challenge_is_parsed() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let p = parse_challenge(h).unwrap();
        assert_eq!(p[0], ("realm".into(), "https://auth.docker.io/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.docker.io".into()));
        assert_eq!(p[2], ("scope".into(), "repository:library/busybox:pull".into()));
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
    }
}
