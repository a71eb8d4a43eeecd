//! The store's behavioural suite against the sled backend, and the kill -9 durability test.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;

use kthw_apiserver::store::{SledStore, Store};

async fn open_fresh_sled_store() -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    Some((Arc::new(store), dir))
}

kthw_apiserver::store_conformance!(open_fresh_sled_store);

/// The environment variable that turns the helper test below into the writer process.
const CHILD_DIR: &str = "KTHW_DURABILITY_CHILD_DIR";

// Every write the store acknowledged survives `kill -9` of the process: the child writes
// keys and prints each one after `put` returns; we kill it mid-stream, reopen the store,
// and find every printed key, with revisions that go on from where they stopped.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "durability_child_writer", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(ack) = line.strip_prefix("ACK ") {
            let (key, revision) = ack.split_once(' ').unwrap();
            acknowledged.push((key.to_string(), revision.parse::<i64>().unwrap()));
            if acknowledged.len() == 300 {
                break; // The child is still writing as fast as it can.
            }
        }
    }
    // SIGKILL: no destructor, no flush, no goodbye.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acknowledged.len(), 300, "the child stopped early");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SledStore::open(&dir.path().join("store")).unwrap();
        for (key, revision) in &acknowledged {
            let kv = store.get(key).await.unwrap().unwrap_or_else(|| panic!("acknowledged {key} is lost"));
            assert_eq!(kv.mod_revision, *revision);
        }
        let last = acknowledged.last().unwrap().1;
        let current = store.revisions().await.unwrap().current;
        assert!(current >= last, "the revision went back from {last} to {current}");
        let next = store.put("/after/restart", b"x".to_vec()).await.unwrap();
        assert_eq!(next.mod_revision, current + 1, "revisions continue after a restart");
    });
}

// Not a test: the writer process of `acknowledged_writes_survive_kill_9`.
#[test]
#[ignore = "helper process of acknowledged_writes_survive_kill_9"]
fn durability_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SledStore::open(&std::path::Path::new(&dir).join("store")).unwrap();
        let mut out = std::io::stdout().lock();
        for n in 0.. {
            let key = format!("/durable/{n:06}");
            let kv = store.put(&key, vec![b'v'; 200]).await.unwrap();
            writeln!(out, "ACK {key} {}", kv.mod_revision).unwrap();
            out.flush().unwrap();
        }
    });
}
