//! The store's behavioural suite against a real etcd (Debian's etcd-server), started on
//! free loopback ports with a temporary data folder, one per test.
#![cfg(feature = "etcd")]

use std::sync::Arc;

use kthw_apiserver::bench::LocalEtcd;
use kthw_apiserver::store::{EtcdStore, Store};

/// A private etcd: killed, then its data removed, on drop (fields drop in order).
struct Etcd {
    _etcd: LocalEtcd,
    _dir: tempfile::TempDir,
}

/// Starts etcd and connects to it; `None` (skip) if etcd is not installed, outside CI.
async fn open_fresh_etcd_store() -> Option<(Arc<dyn Store>, Etcd)> {
    if !kthw_lab::systest::can_run(&[kthw_lab::systest::Need::Command("etcd")]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcd::start(dir.path()).await.expect("start etcd");
    let store = EtcdStore::connect(&etcd.url).await.expect("connect to etcd");
    Some((Arc::new(store), Etcd { _etcd: etcd, _dir: dir }))
}

kthw_apiserver::store_conformance!(open_fresh_etcd_store);
