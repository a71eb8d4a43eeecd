//! The behavioural test suite of [`Store`]: what every backend must do, written once.
//!
//! Each function takes a fresh, empty store and panics if the backend misbehaves. The
//! [`store_conformance!`](crate::store_conformance) macro turns them into one `#[tokio::test]`
//! each, for a backend:
//!
//! ```ignore
//! kthw_apiserver::store_conformance!(open_fresh_sled_store);
//! ```
//!
//! where `open_fresh_sled_store()` is an `async fn` returning the store and a guard that
//! cleans up when dropped (a temporary folder, an etcd process).
//!
//! What etcd does differently: its own suite (`tests/integration`, the robustness tests
//! with Jepsen-style linearizability checking) is far larger; this one states the parts
//! of the contract the API server relies on.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use super::{Compare, Event, EventKind, EventStream, Op, Store, TxnOutcome};
use crate::error::Error;

/// Every behaviour, by name, for the macro.
#[macro_export]
macro_rules! store_conformance {
    ($open:path) => {
        $crate::store_conformance!(@tests $open;
            put_sets_revisions_and_version,
            delete_bumps_revision_and_removes_key,
            range_reads_a_prefix_in_pages,
            txn_compares_mod_revision,
            concurrent_cas_loses_no_update,
            watch_replays_history_then_streams_live,
            watch_sees_only_its_prefix,
            watch_from_zero_starts_now,
            compaction_makes_old_watches_fail,
        );
    };
    (@tests $open:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _guard)) = $open().await else { return };
                $crate::store::conformance::$name(store).await;
            }
        )+
    };
}

/// Waits for the next event, failing the test after 5 s (a watch that never delivers).
pub async fn next_event(stream: &mut EventStream) -> Event {
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("the watch failed: {err}"),
        Ok(None) => panic!("the watch ended"),
        Err(_) => panic!("no event within 5 s"),
    }
}

// A create starts at version 1 with create_revision == mod_revision; each later put
// keeps create_revision, moves mod_revision to the new global revision and bumps version.
pub async fn put_sets_revisions_and_version(store: Arc<dyn Store>) {
    let start = store.revisions().await.unwrap().current;
    let first = store.put("/t/a", b"1".to_vec()).await.unwrap();
    assert_eq!((first.create_revision, first.mod_revision, first.version), (start + 1, start + 1, 1));
    store.put("/t/other", b"x".to_vec()).await.unwrap();
    let second = store.put("/t/a", b"2".to_vec()).await.unwrap();
    assert_eq!((second.create_revision, second.mod_revision, second.version), (start + 1, start + 3, 2));
    let read = store.get("/t/a").await.unwrap().expect("the key exists");
    assert_eq!(read, second);
    assert_eq!(read.value, b"2");
    assert_eq!(store.revisions().await.unwrap().current, start + 3);
}

// A delete takes a revision and the key is gone; deleting a missing key changes nothing.
pub async fn delete_bumps_revision_and_removes_key(store: Arc<dyn Store>) {
    let put = store.put("/t/a", b"1".to_vec()).await.unwrap();
    let gone = store.delete("/t/a").await.unwrap().expect("it existed");
    assert_eq!(gone.value, b"1");
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    let after = store.revisions().await.unwrap().current;
    assert_eq!(after, put.mod_revision + 1);
    assert_eq!(store.delete("/t/a").await.unwrap(), None);
    assert_eq!(store.revisions().await.unwrap().current, after, "a no-op delete took a revision");
    // Re-created, the key starts over at version 1.
    let again = store.put("/t/a", b"2".to_vec()).await.unwrap();
    assert_eq!((again.version, again.create_revision), (1, after + 1));
}

// A range returns the keys under a prefix in order; `limit` cuts it into pages and says
// whether more remain; `start_after` continues after the last key of a page.
pub async fn range_reads_a_prefix_in_pages(store: Arc<dyn Store>) {
    for key in ["/r/pods/b", "/r/pods/a", "/r/pods/c", "/r/podsx/z", "/r/nodes/n"] {
        store.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let all = store.range("/r/pods/", None, 0).await.unwrap();
    let keys: Vec<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/pods/a", "/r/pods/b", "/r/pods/c"]);
    assert!(!all.more);
    assert_eq!(all.revision, store.revisions().await.unwrap().current);

    let page1 = store.range("/r/pods/", None, 2).await.unwrap();
    assert_eq!(page1.kvs.len(), 2);
    assert!(page1.more);
    let page2 = store.range("/r/pods/", Some(&page1.kvs[1].key), 2).await.unwrap();
    let keys: Vec<&str> = page2.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/pods/c"]);
    assert!(!page2.more);
    assert!(store.range("/r/none/", None, 0).await.unwrap().kvs.is_empty());
}

// Compare-and-swap: a create fails if the key exists, an update fails if the key
// changed since it was read, and a failure reports the key as it is now.
pub async fn txn_compares_mod_revision(store: Arc<dyn Store>) {
    let TxnOutcome::Done(created) = store.txn("/t/x", Compare::Absent, Op::Put(b"1".to_vec())).await.unwrap() else {
        panic!("a create of a missing key must succeed")
    };
    let TxnOutcome::Failed(Some(now)) = store.txn("/t/x", Compare::Absent, Op::Put(b"2".to_vec())).await.unwrap()
    else {
        panic!("a second create must fail and return the current key")
    };
    assert_eq!(now, created);

    let rev = created.mod_revision;
    let TxnOutcome::Done(updated) = store.txn("/t/x", Compare::ModRevision(rev), Op::Put(b"3".to_vec())).await.unwrap()
    else {
        panic!("an update at the current mod_revision must succeed")
    };
    assert_eq!(updated.version, 2);
    // The same update again is stale now: someone (we) wrote since revision `rev`.
    let stale = store.txn("/t/x", Compare::ModRevision(rev), Op::Put(b"4".to_vec())).await.unwrap();
    assert_eq!(stale, TxnOutcome::Failed(Some(updated.clone())));
    assert_eq!(store.get("/t/x").await.unwrap().unwrap().value, b"3");

    let stale_delete = store.txn("/t/x", Compare::ModRevision(rev), Op::Delete).await.unwrap();
    assert!(matches!(stale_delete, TxnOutcome::Failed(Some(_))));
    let deleted = store.txn("/t/x", Compare::ModRevision(updated.mod_revision), Op::Delete).await.unwrap();
    assert!(matches!(deleted, TxnOutcome::Done(_)));
    assert_eq!(store.get("/t/x").await.unwrap(), None);
    let missing = store.txn("/t/x", Compare::ModRevision(1), Op::Put(vec![])).await.unwrap();
    assert_eq!(missing, TxnOutcome::Failed(None));
}

// Many writers increment one counter with read-modify-CAS loops: no increment is lost.
// This is optimistic concurrency, exactly as kubectl and controllers use it.
pub async fn concurrent_cas_loses_no_update(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const EACH: usize = 10;
    store.put("/t/counter", b"0".to_vec()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..EACH {
                loop {
                    let kv = store.get("/t/counter").await.unwrap().unwrap();
                    let n: usize = String::from_utf8(kv.value).unwrap().parse().unwrap();
                    let op = Op::Put((n + 1).to_string().into_bytes());
                    match store.txn("/t/counter", Compare::ModRevision(kv.mod_revision), op).await.unwrap() {
                        TxnOutcome::Done(_) => break,
                        TxnOutcome::Failed(_) => conflicts += 1,
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let kv = store.get("/t/counter").await.unwrap().unwrap();
    assert_eq!(String::from_utf8(kv.value).unwrap(), (WRITERS * EACH).to_string());
    assert_eq!(kv.version as usize, WRITERS * EACH + 1);
}

// A watch from an old revision first replays what happened since (puts and deletes, in
// revision order), then delivers new writes as they happen.
pub async fn watch_replays_history_then_streams_live(store: Arc<dyn Store>) {
    let a1 = store.put("/w/a", b"1".to_vec()).await.unwrap();
    store.put("/w/a", b"2".to_vec()).await.unwrap();
    store.delete("/w/a").await.unwrap();
    let mut stream = store.watch("/w/", a1.mod_revision + 1).await.unwrap();
    let modified = next_event(&mut stream).await;
    assert_eq!((modified.kind, modified.kv.value.as_slice(), modified.kv.version), (EventKind::Put, &b"2"[..], 2));
    let deleted = next_event(&mut stream).await;
    assert_eq!(deleted.kind, EventKind::Delete);
    assert_eq!(deleted.kv.value, b"2", "a delete event carries the last value");
    assert_eq!(deleted.kv.mod_revision, a1.mod_revision + 2);
    let live = store.put("/w/b", b"live".to_vec()).await.unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!((event.kind, &event.kv), (EventKind::Put, &live));
}

// A watch sees only keys under its prefix.
pub async fn watch_sees_only_its_prefix(store: Arc<dyn Store>) {
    let mut stream = store.watch("/w/pods/", 0).await.unwrap();
    store.put("/w/nodes/n1", b"n".to_vec()).await.unwrap();
    store.put("/w/podsx/p", b"x".to_vec()).await.unwrap();
    store.put("/w/pods/p1", b"p".to_vec()).await.unwrap();
    assert_eq!(next_event(&mut stream).await.kv.key, "/w/pods/p1");
}

// A watch from revision 0 delivers only changes made after it started.
pub async fn watch_from_zero_starts_now(store: Arc<dyn Store>) {
    store.put("/w/old", b"o".to_vec()).await.unwrap();
    let mut stream = store.watch("/w/", 0).await.unwrap();
    store.put("/w/new", b"n".to_vec()).await.unwrap();
    assert_eq!(next_event(&mut stream).await.kv.key, "/w/new");
}

// After compaction to revision C, a watch from before C fails with a clear "compacted"
// error, a watch from C still works, and the current values are untouched.
pub async fn compaction_makes_old_watches_fail(store: Arc<dyn Store>) {
    let first = store.put("/c/a", b"1".to_vec()).await.unwrap();
    for n in 2..=5 {
        store.put("/c/a", n.to_string().into_bytes()).await.unwrap();
    }
    let keep = first.mod_revision + 3;
    store.compact(keep).await.unwrap();
    assert_eq!(store.revisions().await.unwrap().compacted, keep);
    match store.watch("/c/", first.mod_revision).await {
        Err(Error::Compacted { requested, compacted }) => {
            assert_eq!((requested, compacted), (first.mod_revision, keep))
        }
        Err(other) => panic!("expected Compacted, got {other}"),
        Ok(_) => panic!("a watch from a compacted revision must fail"),
    }
    let err = store.watch("/c/", first.mod_revision).await.err().unwrap().to_string();
    assert!(err.contains("compacted"), "{err}");
    let mut stream = store.watch("/c/", keep).await.unwrap();
    assert_eq!(next_event(&mut stream).await.kv.mod_revision, keep);
    assert_eq!(store.get("/c/a").await.unwrap().unwrap().value, b"5");
    // Compacting again to an older revision is a no-op, to a future one an error.
    store.compact(first.mod_revision).await.unwrap();
    assert!(store.compact(keep + 100).await.is_err());
}
