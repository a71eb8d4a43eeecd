//! Lab 06: the learner runs the API server on a real etcd, creates objects with curl and
//! kubectl, provokes a conflict, and resumes a watch. The checker asks the API server
//! *and reads etcd directly*, as an administrator checks what really got stored.
//!
//! The addresses are the lab sheet's: the API server on `127.0.0.1:8080` and etcd on
//! `127.0.0.1:2379` (override with `KTHW_LAB06_API` and `KTHW_LAB06_ETCD`).

use kthw_lab::lab::{Context, Failure, Lab, Outcome, Stage};
use serde_json::Value;

/// The lab's namespace.
const NAMESPACE: &str = "lab";

fn api_url() -> String {
    std::env::var("KTHW_LAB06_API").unwrap_or_else(|_| "http://127.0.0.1:8080".to_string())
}

fn etcd_url() -> String {
    std::env::var("KTHW_LAB06_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".to_string())
}

/// Lab 06 and its stages, in the order of the lab sheet.
pub fn lab() -> Lab {
    Lab {
        id: "06",
        title: "The API server and its store",
        sheet: "labs/06-apiserver/README.md",
        stages: vec![
            Stage::new("the API server answers on 127.0.0.1:8080", "ch06-apiserver.md#running-it", api_answers),
            Stage::new(
                "etcd holds the API server's objects under /registry/",
                "ch06-apiserver.md#the-store-what-etcd-gives-kubernetes",
                etcd_holds_objects,
            ),
            Stage::new("pod `web` exists in namespace `lab`", "ch06-apiserver.md#the-shape-of-an-object", pod_exists),
            Stage::new(
                "configmap `counter` was written at least 3 times, and a stale write got 409",
                "ch06-apiserver.md#resourceversion-and-optimistic-concurrency",
                counter_and_conflict,
            ),
            Stage::new(
                "a watch resumed from a resourceVersion saw the later change",
                "ch06-apiserver.md#list-then-watch",
                watch_resumed,
            ),
        ],
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Runtime::new().map_err(|e| Failure::new(format!("cannot start a runtime: {e}"), "a broken machine"))
}

fn api_get(path: &str) -> Result<Value, Failure> {
    let url = api_url();
    runtime()?.block_on(async {
        crate::client::Client::new(&url).get(path).await.map_err(|e| {
            Failure::new(
                e.to_string(),
                format!("start it: `kthw apiserver --store etcd:{} &` (lab step 1)", etcd_url()),
            )
        })
    })
}

/// Reads one key from etcd, not through the API server.
fn etcd_get(key: &str) -> Result<Option<crate::store::KeyValue>, Failure> {
    #[cfg(feature = "etcd")]
    {
        use crate::store::Store as _;
        runtime()?.block_on(async {
            let store = crate::store::EtcdStore::connect(&etcd_url())
                .await
                .map_err(|e| Failure::new(e.to_string(), "start etcd as in lab step 1 (`etcd --data-dir ...`)"))?;
            store.get(key).await.map_err(|e| Failure::new(e.to_string(), "etcd failed; look at its log"))
        })
    }
    #[cfg(not(feature = "etcd"))]
    {
        Err(Failure::new(
            format!("cannot read {key}: kthw was built without the etcd backend"),
            "build kthw with its default features (the `etcd` feature needs protoc)",
        ))
    }
}

fn api_answers(_: &Context) -> Outcome {
    let version = api_get("/version")?;
    Ok(format!("GET /version says {}", version["gitVersion"].as_str().unwrap_or("?")))
}

fn etcd_holds_objects(_: &Context) -> Outcome {
    match etcd_get("/registry/namespaces/default")? {
        Some(kv) => Ok(format!("/registry/namespaces/default is in etcd (mod_revision {})", kv.mod_revision)),
        None => Err(Failure::new(
            "etcd has no /registry/namespaces/default",
            "the API server is not using this etcd: start it with --store etcd:http://127.0.0.1:2379",
        )),
    }
}

fn pod_exists(_: &Context) -> Outcome {
    let key = format!("/registry/pods/{NAMESPACE}/web");
    let Some(kv) = etcd_get(&key)? else {
        return Err(Failure::new(format!("etcd has no {key}"), "create it: `kubectl create -f web.yaml` (lab step 3)"));
    };
    let pod: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
    let image = pod.pointer("/spec/containers/0/image").and_then(Value::as_str).unwrap_or_default();
    let from_api = api_get(&format!("/api/v1/namespaces/{NAMESPACE}/pods/web"))?;
    let rv = from_api.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
    if rv != kv.mod_revision.to_string() {
        return Err(Failure::new(
            format!("the API server says resourceVersion {rv}, etcd says mod_revision {}", kv.mod_revision),
            "two different stores: is another API server answering on 8080?",
        ));
    }
    Ok(format!("{key} in etcd, image {image}, resourceVersion {rv} = etcd mod_revision"))
}

fn counter_and_conflict(ctx: &Context) -> Outcome {
    let key = format!("/registry/configmaps/{NAMESPACE}/counter");
    let Some(kv) = etcd_get(&key)? else {
        return Err(Failure::new(format!("etcd has no {key}"), "create the configmap (lab step 4)"));
    };
    if kv.version < 3 {
        return Err(Failure::new(
            format!("{key} has version {} in etcd", kv.version),
            "update it twice with PUT, each time with the resourceVersion you just read (lab step 4)",
        ));
    }
    let path = ctx.paths.lab().join("06-conflict.json");
    let status: Value = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| {
        Failure::new(format!("no JSON in {}", path.display()), "save the 409 answer there (lab step 5)")
    })?;
    if status["code"] != 409 || status["reason"] != "Conflict" {
        return Err(Failure::new(
            format!("{} holds code {} reason {}", path.display(), status["code"], status["reason"]),
            "PUT with an old resourceVersion, and save the answer (lab step 5)",
        ));
    }
    Ok(format!(
        "etcd version {} (create_revision {}, mod_revision {}); 409 Conflict saved",
        kv.version, kv.create_revision, kv.mod_revision
    ))
}

fn watch_resumed(ctx: &Context) -> Outcome {
    let path = ctx.paths.lab().join("06-watch.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::new(format!("cannot read {}: {e}", path.display()), "save the watch output there (lab step 6)")
    })?;
    let events: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let modified = events.iter().find(|e| e["type"] == "MODIFIED" && e["object"]["metadata"]["name"] == "counter");
    let Some(modified) = modified else {
        return Err(Failure::new(
            format!("{} has {} events, none MODIFIED for counter", path.display(), events.len()),
            "watch from the resourceVersion you read *before* changing counter (lab step 6)",
        ));
    };
    let rv: i64 = modified["object"]["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse().ok()).unwrap_or(0);
    let current = etcd_get(&format!("/registry/configmaps/{NAMESPACE}/counter"))?.map_or(0, |kv| kv.mod_revision);
    if rv == 0 || rv > current {
        return Err(Failure::new(
            format!("the event's resourceVersion {rv} is not in etcd's past (now {current})"),
            "use the real server's output",
        ));
    }
    Ok(format!("{} events; MODIFIED counter at resourceVersion {rv} (etcd is at {current})", events.len()))
}
