//! The embedded backend: MVCC on top of [sled](https://docs.rs/sled), a log-structured
//! key-value store in one folder.
//!
//! Everything lives in one sled tree, under three key prefixes:
//!
//! ```text
//! k/<key>          -> the key's current state: create_revision, mod_revision, version, value
//! h/<revision>     -> the history: what happened at that revision (put or delete, and the key)
//! m/revision       -> the revision of the last write
//! m/compacted      -> history before this revision is gone
//! ```
//!
//! A write takes the commit lock, checks its condition, and applies the new `k/` entry,
//! the new `h/` entry and `m/revision` as **one sled batch**, which sled applies
//! atomically (after a crash, all three are there or none). It then releases the lock and
//! **flushes** sled's log to disk; only then does it return, and only then may watchers
//! see the change. Writers that flush at the same time share one disk sync (group
//! commit), which is how many concurrent writers go faster than one.
//!
//! A watcher is a task with a cursor into `h/`: it reads the history from its revision up
//! to the last durable one, sends what matches its prefix, and sleeps until the durable
//! revision moves again.
//!
//! What the real etcd does differently: its history is the whole keyspace at every
//! revision (bbolt keys are `revision -> key+value`, with an in-memory B-tree index from
//! key to revisions), so it can read any key "as of" an old revision; ours keeps only the
//! current value and a log of events. It writes a Raft log (the WAL) first and the
//! key-value database in batches later, instead of one store that is both.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};

use super::{Compare, Event, EventKind, EventStream, KeyValue, Op, Range, Revisions, Store, TxnOutcome};
use crate::error::{Error, Result};

const CURRENT: &[u8] = b"k/";
const HISTORY: &[u8] = b"h/";
const META_REVISION: &[u8] = b"m/revision";
const META_COMPACTED: &[u8] = b"m/compacted";

/// The sled backend. Cheap to share: wrap it in an `Arc`.
pub struct SledStore {
    tree: sled::Db,
    /// Serialises writers. A `std` mutex, not an async one: it is held only while
    /// sled applies one in-memory batch, never across an `.await`.
    commit: std::sync::Mutex<()>,
    /// The revision of the last write applied (not necessarily flushed yet).
    revision: AtomicI64,
    /// The revision up to which every write is on disk. Watchers wait on it.
    durable: watch::Sender<i64>,
    /// Held by the one writer that is flushing; an async mutex, because it is held
    /// across the `.await` of the flush.
    flushing: tokio::sync::Mutex<()>,
    compacted: Arc<AtomicI64>,
}

impl SledStore {
    /// Opens (or creates) the store in folder `path`.
    ///
    /// # Errors
    /// [`Error::Store`] if sled cannot open the folder (for example, another process has it).
    pub fn open(path: &Path) -> Result<SledStore> {
        let tree = sled::Config::new().path(path).open().map_err(Error::sled(path.display()))?;
        let revision = read_i64(&tree, META_REVISION)?;
        let compacted = read_i64(&tree, META_COMPACTED)?;
        Ok(SledStore {
            tree,
            commit: std::sync::Mutex::new(()),
            revision: AtomicI64::new(revision),
            durable: watch::Sender::new(revision),
            flushing: tokio::sync::Mutex::new(()),
            compacted: Arc::new(AtomicI64::new(compacted)),
        })
    }

    // ANCHOR: group_commit
    /// Returns once every write up to `revision` is on disk. **Group commit**: writers
    /// queue for one flush at a time; a writer whose batch was covered by the flush it
    /// waited for returns without flushing, so one `fsync` serves many writers.
    async fn make_durable(&self, revision: i64) -> Result<()> {
        let _flushing = self.flushing.lock().await;
        if *self.durable.borrow() >= revision {
            return Ok(()); // The flush we waited for covered us.
        }
        // Everything applied so far is in sled's log; this flush makes all of it durable.
        let applied = self.revision.load(Ordering::SeqCst);
        self.flush().await?;
        self.durable.send_if_modified(|durable| {
            let moved = applied > *durable;
            *durable = (*durable).max(applied);
            moved
        });
        Ok(())
    }
    // ANCHOR_END: group_commit

    /// Writes sled's log to disk (`fsync`): what makes a write durable.
    async fn flush(&self) -> Result<()> {
        let tree = self.tree.clone();
        let flushed = tokio::task::spawn_blocking(move || tree.flush()).await;
        match flushed {
            Ok(result) => result.map(drop).map_err(Error::sled("flush")),
            Err(join) => Err(Error::Store { action: "flush".into(), detail: join.to_string() }),
        }
    }

    /// The key's current state, read from `k/<key>`.
    fn read(&self, key: &str) -> Result<Option<KeyValue>> {
        let raw = self.tree.get(current_key(key)).map_err(Error::sled("read"))?;
        raw.map(|bytes| decode_kv(key.to_string(), &bytes)).transpose()
    }

    // ANCHOR: write
    /// The one write path: check `compare` (if any), apply `op` atomically at the next
    /// revision, make it durable, then let watchers see it.
    async fn write(&self, key: &str, compare: Option<Compare>, op: Op) -> Result<TxnOutcome> {
        let (outcome, revision) = {
            let _guard = self.commit.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let before = self.read(key)?;
            let holds = match compare {
                None => true,
                Some(Compare::Absent) => before.is_none(),
                Some(Compare::ModRevision(rev)) => before.as_ref().is_some_and(|kv| kv.mod_revision == rev),
            };
            // Deleting a key that does not exist changes nothing, so it takes no revision.
            if !holds || (op == Op::Delete && before.is_none()) {
                return Ok(TxnOutcome::Failed(before));
            }
            let revision = self.revision.load(Ordering::SeqCst) + 1;
            let mut batch = sled::Batch::default();
            let (kind, kv) = match op {
                Op::Put(value) => {
                    let kv = KeyValue {
                        key: key.to_string(),
                        value,
                        create_revision: before.as_ref().map_or(revision, |b| b.create_revision),
                        mod_revision: revision,
                        version: before.as_ref().map_or(1, |b| b.version + 1),
                    };
                    batch.insert(current_key(key), encode_kv(&kv));
                    (EventKind::Put, kv)
                }
                Op::Delete => {
                    batch.remove(current_key(key));
                    let mut kv = before.expect("checked above: the key exists");
                    kv.mod_revision = revision;
                    (EventKind::Delete, kv)
                }
            };
            batch.insert(history_key(revision), encode_event(kind, &kv));
            batch.insert(META_REVISION, &revision.to_be_bytes());
            self.tree.apply_batch(batch).map_err(Error::sled("write"))?;
            self.revision.store(revision, Ordering::SeqCst);
            (TxnOutcome::Done(kv), revision)
        };
        // Outside the lock: other writers apply their batches while we wait for the disk.
        self.make_durable(revision).await?;
        Ok(outcome)
    }
    // ANCHOR_END: write
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read(key)
    }

    async fn range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range> {
        // Under the commit lock, the revision and the keys we read belong together.
        let _guard = self.commit.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let revision = self.revision.load(Ordering::SeqCst);
        let prefix_key = current_key(prefix);
        let mut kvs = Vec::new();
        let mut more = false;
        let iter = match start_after {
            // `\0` sorts right after the key itself: start strictly after it.
            Some(after) => self.tree.range(current_key(&format!("{after}\0"))..),
            None => self.tree.range(prefix_key.clone()..),
        };
        for entry in iter {
            let (raw_key, raw_value) = entry.map_err(Error::sled("range"))?;
            if !raw_key.starts_with(&prefix_key) {
                break;
            }
            if limit > 0 && kvs.len() == limit {
                more = true;
                break;
            }
            let key = String::from_utf8_lossy(&raw_key[CURRENT.len()..]).into_owned();
            kvs.push(decode_kv(key, &raw_value)?);
        }
        Ok(Range { kvs, revision, more })
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        match self.write(key, None, Op::Put(value)).await? {
            TxnOutcome::Done(kv) => Ok(kv),
            TxnOutcome::Failed(_) => unreachable!("an unconditional put always applies"),
        }
    }

    async fn delete(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.write(key, None, Op::Delete).await? {
            TxnOutcome::Done(kv) => Ok(Some(kv)),
            TxnOutcome::Failed(_) => Ok(None),
        }
    }

    async fn txn(&self, key: &str, compare: Compare, op: Op) -> Result<TxnOutcome> {
        self.write(key, Some(compare), op).await
    }

    // ANCHOR: watch
    async fn watch(&self, prefix: &str, from: i64) -> Result<EventStream> {
        let compacted = self.compacted.load(Ordering::SeqCst);
        if from > 0 && from < compacted {
            return Err(Error::Compacted { requested: from, compacted });
        }
        let mut durable = self.durable.subscribe();
        let mut next = if from > 0 { from } else { *durable.borrow() + 1 };
        let (tx, rx) = mpsc::channel(256);
        let (tree, compaction, prefix) = (self.tree.clone(), self.compacted.clone(), prefix.to_string());
        tokio::spawn(async move {
            loop {
                let upto = *durable.borrow_and_update();
                if next <= upto {
                    let events = read_history(&tree, &prefix, next, upto);
                    // Compaction may have removed entries while we read: then we missed some.
                    let compacted = compaction.load(Ordering::SeqCst);
                    let events =
                        if next < compacted { Err(Error::Compacted { requested: next, compacted }) } else { events };
                    match events {
                        Ok(events) => {
                            for event in events {
                                if tx.send(Ok(event)).await.is_err() {
                                    return; // The watcher went away.
                                }
                            }
                        }
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    }
                    next = upto + 1;
                }
                // Sleep until a write becomes durable (or the store is dropped).
                if durable.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|item| (item, rx)) }).boxed())
    }
    // ANCHOR_END: watch

    async fn compact(&self, revision: i64) -> Result<()> {
        let current = self.revision.load(Ordering::SeqCst);
        if revision > current {
            return Err(Error::FutureRevision { requested: revision, current });
        }
        let old = self.compacted.load(Ordering::SeqCst);
        if revision <= old {
            return Ok(());
        }
        // Say it first, then delete: a watcher that reads the mark knows entries may vanish.
        self.tree.insert(META_COMPACTED, &revision.to_be_bytes()).map_err(Error::sled("compact"))?;
        self.compacted.store(revision, Ordering::SeqCst);
        let mut batch = sled::Batch::default();
        for entry in self.tree.range(history_key(old)..history_key(revision)) {
            let (key, _) = entry.map_err(Error::sled("compact"))?;
            batch.remove(key);
        }
        self.tree.apply_batch(batch).map_err(Error::sled("compact"))?;
        self.flush().await?;
        Ok(())
    }

    async fn revisions(&self) -> Result<Revisions> {
        Ok(Revisions {
            current: self.revision.load(Ordering::SeqCst),
            compacted: self.compacted.load(Ordering::SeqCst),
        })
    }
}

/// The events of revisions `from..=to` whose key starts with `prefix`.
fn read_history(tree: &sled::Db, prefix: &str, from: i64, to: i64) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for entry in tree.range(history_key(from)..=history_key(to)) {
        let (_, raw) = entry.map_err(Error::sled("watch"))?;
        let event = decode_event(&raw)?;
        if event.kv.key.starts_with(prefix) {
            events.push(event);
        }
    }
    Ok(events)
}

fn read_i64(tree: &sled::Db, key: &[u8]) -> Result<i64> {
    match tree.get(key).map_err(Error::sled("open"))? {
        Some(raw) => Ok(i64_at(&raw, 0)?),
        None => Ok(0),
    }
}

fn current_key(key: &str) -> Vec<u8> {
    [CURRENT, key.as_bytes()].concat()
}

/// Big-endian, so that sled's byte order is revision order.
fn history_key(revision: i64) -> Vec<u8> {
    [HISTORY, &revision.to_be_bytes()].concat()
}

// The on-disk records: three big-endian i64 counters, then the rest. An event record
// starts with one byte for its kind and carries its key (length-prefixed) too.

fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + kv.value.len());
    for n in [kv.create_revision, kv.mod_revision, kv.version] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&kv.value);
    out
}

fn decode_kv(key: String, raw: &[u8]) -> Result<KeyValue> {
    Ok(KeyValue {
        create_revision: i64_at(raw, 0)?,
        mod_revision: i64_at(raw, 8)?,
        version: i64_at(raw, 16)?,
        value: raw[24..].to_vec(),
        key,
    })
}

fn encode_event(kind: EventKind, kv: &KeyValue) -> Vec<u8> {
    let key = kv.key.as_bytes();
    let mut out = vec![u8::from(kind == EventKind::Delete)];
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&encode_kv(kv));
    out
}

fn decode_event(raw: &[u8]) -> Result<Event> {
    let corrupt = || Error::Corrupt("a history record is too short".to_string());
    let kind = if *raw.first().ok_or_else(corrupt)? == 1 { EventKind::Delete } else { EventKind::Put };
    let len_bytes: [u8; 4] = raw.get(1..5).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?;
    let key_end = 5 + u32::from_be_bytes(len_bytes) as usize;
    let key = String::from_utf8_lossy(raw.get(5..key_end).ok_or_else(corrupt)?).into_owned();
    Ok(Event { kind, kv: decode_kv(key, &raw[key_end..])? })
}

fn i64_at(raw: &[u8], at: usize) -> Result<i64> {
    let bytes: [u8; 8] = raw
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt(format!("a record is {} bytes, too short for its counters", raw.len())))?;
    Ok(i64::from_be_bytes(bytes))
}
