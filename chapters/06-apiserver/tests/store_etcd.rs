//! The store's behavioural suite against a real etcd (Debian's etcd-server), started on
//! free loopback ports with a temporary data folder, one per test.
#![cfg(feature = "etcd")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kthw_apiserver::store::{EtcdStore, Store};

/// A private etcd: killed, and its data removed, on drop.
struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts etcd and connects to it; `None` (skip) if etcd is not installed, outside CI.
async fn open_fresh_etcd_store() -> Option<(Arc<dyn Store>, Etcd)> {
    if !kthw_lab::systest::can_run(&[kthw_lab::systest::Need::Command("etcd")]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--name", "test", "--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("test={peer_url}"), "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let etcd = Etcd { child, _dir: dir };
    for _ in 0..100 {
        if let Ok(store) = EtcdStore::connect(&client_url).await {
            return Some((Arc::new(store), etcd));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not start on {client_url} within 10 s");
}

kthw_apiserver::store_conformance!(open_fresh_etcd_store);
