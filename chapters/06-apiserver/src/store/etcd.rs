//! The real-etcd backend: the same [`Store`] trait over etcd's v3 gRPC API.
//!
//! This is how a control plane outgrows one machine: run three or five etcd members on
//! different hosts, point `kthw apiserver --store etcd:http://...` at them, and the data
//! survives the loss of any machine. Each method is one etcd call:
//!
//! | [`Store`] | etcd |
//! |---|---|
//! | `get`, `range` | `Range` (with a range end for prefixes and a limit) |
//! | `put`, `delete` | `Put`, `DeleteRange` (with `prev_kv`) |
//! | `txn` | `Txn`: compare `version == 0` or `mod_revision == R`, then put or delete |
//! | `watch` | `Watch` from `start_revision`, with `prev_kv` for deletes |
//! | `compact` | `Compact` |
//!
//! What is different from the sled backend: etcd does not tell a client its compacted
//! revision, so [`Store::revisions`] reports the last compaction *this* process made;
//! a watch from a revision that someone else compacted fails in the stream (as an
//! `Err` item) instead of at the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, DeleteOptions, EventType, GetOptions, KvClient, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchClient, WatchOptions,
};
use futures::StreamExt as _;

use super::{Compare, Event, EventKind, EventStream, KeyValue, Op, Range, Revisions, Store, TxnOutcome};
use crate::error::{Error, Result};

/// A connection to an etcd cluster.
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    compacted: Arc<AtomicI64>,
}

impl EtcdStore {
    /// Connects to etcd at `endpoint`, e.g. `http://127.0.0.1:2379`.
    ///
    /// # Errors
    /// [`Error::Store`] if etcd cannot be reached.
    pub async fn connect(endpoint: &str) -> Result<EtcdStore> {
        let client = Client::connect([endpoint], None).await.map_err(etcd(format!("connect to {endpoint}")))?;
        let store = EtcdStore { kv: client.kv_client(), watch: client.watch_client(), compacted: Arc::default() };
        // Fail now, with a clear message, if nobody answers there.
        store.revisions().await?;
        Ok(store)
    }
}

fn etcd(action: impl std::fmt::Display) -> impl FnOnce(etcd_client::Error) -> Error {
    let action = action.to_string();
    move |err| Error::Store { action, detail: err.to_string() }
}

fn convert(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    }
}

/// The first key after every key that starts with `prefix`: etcd's range end.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // The empty prefix: to the end of the keyspace.
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self.kv.clone().get(key, None).await.map_err(etcd("get"))?;
        Ok(response.kvs().first().map(convert))
    }

    async fn range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range> {
        let start = match start_after {
            Some(after) => format!("{after}\0"),
            None => prefix.to_string(),
        };
        let options = GetOptions::new().with_range(prefix_end(prefix)).with_limit(limit as i64);
        let response = self.kv.clone().get(start, Some(options)).await.map_err(etcd("range"))?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(Range { kvs: response.kvs().iter().map(convert).collect(), revision, more: response.more() })
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let options = PutOptions::new().with_prev_key();
        let response = self.kv.clone().put(key, value.clone(), Some(options)).await.map_err(etcd("put"))?;
        let revision = response.header().map_or(0, |h| h.revision());
        let before = response.prev_key();
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: before.map_or(revision, |b| b.create_revision()),
            mod_revision: revision,
            version: before.map_or(1, |b| b.version() + 1),
        })
    }

    async fn delete(&self, key: &str) -> Result<Option<KeyValue>> {
        let options = DeleteOptions::new().with_prev_key();
        let response = self.kv.clone().delete(key, Some(options)).await.map_err(etcd("delete"))?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(response.prev_kvs().first().map(|kv| KeyValue { mod_revision: revision, ..convert(kv) }))
    }

    // ANCHOR: etcd_txn
    async fn txn(&self, key: &str, compare: Compare, op: Op) -> Result<TxnOutcome> {
        let condition = match compare {
            Compare::Absent => EtcdCompare::version(key, CompareOp::Equal, 0),
            Compare::ModRevision(rev) => EtcdCompare::mod_revision(key, CompareOp::Equal, rev),
        };
        let then = match op {
            // Read the key back in the same transaction: that is the key as written.
            Op::Put(value) => vec![TxnOp::put(key, value, None), TxnOp::get(key, None)],
            Op::Delete => vec![TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()))],
        };
        let txn = Txn::new().when([condition]).and_then(then).or_else([TxnOp::get(key, None)]);
        let response = self.kv.clone().txn(txn).await.map_err(etcd("txn"))?;
        let revision = response.header().map_or(0, |h| h.revision());
        let found = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(convert)),
            TxnOpResponse::Delete(del) => {
                Some(del.prev_kvs().first().map(|kv| KeyValue { mod_revision: revision, ..convert(kv) }))
            }
            _ => None,
        });
        let kv = found.flatten();
        match (response.succeeded(), kv) {
            (true, Some(kv)) => Ok(TxnOutcome::Done(kv)),
            (true, None) => Err(Error::Store { action: "txn".into(), detail: "etcd returned no key".into() }),
            (false, kv) => Ok(TxnOutcome::Failed(kv)),
        }
    }
    // ANCHOR_END: etcd_txn

    async fn watch(&self, prefix: &str, from: i64) -> Result<EventStream> {
        let compacted = self.compacted.load(Ordering::SeqCst);
        if from > 0 && from < compacted {
            return Err(Error::Compacted { requested: from, compacted });
        }
        let mut options = WatchOptions::new().with_range(prefix_end(prefix)).with_prev_key();
        if from > 0 {
            options = options.with_start_revision(from);
        }
        let stream = self.watch.clone().watch(prefix, Some(options)).await.map_err(etcd("watch"))?;
        let events = stream.flat_map(move |response| {
            let items: Vec<Result<Event>> = match response {
                Err(err) => vec![Err(etcd("watch")(err))],
                Ok(r) if r.compact_revision() > 0 => {
                    vec![Err(Error::Compacted { requested: from, compacted: r.compact_revision() })]
                }
                Ok(r) => r
                    .events()
                    .iter()
                    .filter_map(|event| {
                        let kv = event.kv()?;
                        Some(Ok(match event.event_type() {
                            EventType::Put => Event { kind: EventKind::Put, kv: convert(kv) },
                            // A delete carries only the key; the value is in prev_kv.
                            EventType::Delete => Event {
                                kind: EventKind::Delete,
                                kv: KeyValue {
                                    mod_revision: kv.mod_revision(),
                                    ..event.prev_kv().map_or_else(|| convert(kv), convert)
                                },
                            },
                        }))
                    })
                    .collect(),
            };
            futures::stream::iter(items)
        });
        Ok(events.boxed())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let current = self.revisions().await?.current;
        if revision > current {
            return Err(Error::FutureRevision { requested: revision, current });
        }
        if revision <= self.compacted.load(Ordering::SeqCst) {
            return Ok(());
        }
        match self.kv.clone().compact(revision, None).await {
            Ok(_) => {}
            // Already compacted further by someone else: nothing to do.
            Err(err) if err.to_string().contains("compacted") => {}
            Err(err) => return Err(etcd("compact")(err)),
        }
        self.compacted.fetch_max(revision, Ordering::SeqCst);
        Ok(())
    }

    async fn revisions(&self) -> Result<Revisions> {
        let options = GetOptions::new().with_count_only();
        let response = self.kv.clone().get("/", Some(options)).await.map_err(etcd("read the revision"))?;
        let current = response.header().map_or(0, |h| h.revision());
        Ok(Revisions { current, compacted: self.compacted.load(Ordering::SeqCst) })
    }
}
