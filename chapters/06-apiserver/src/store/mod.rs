//! The store: what etcd gives Kubernetes.
//!
//! The API server keeps nothing itself. Every object lives in a key-value store under a
//! key such as `/registry/pods/default/web`, and the store gives the API server four things:
//!
//! - **a global revision**: one counter, bumped by every write. Each key remembers the
//!   revision that created it (`create_revision`), the revision of its last change
//!   (`mod_revision`) and how many times it changed (`version`). A Kubernetes
//!   `resourceVersion` *is* a `mod_revision`, printed as a string.
//! - **compare-and-swap** on `mod_revision` ([`Store::txn`]): "write this only if nobody
//!   wrote the key since I read it". That one primitive is optimistic concurrency, and
//!   it is why `kubectl` can get a 409 Conflict.
//! - **watch** from a revision ([`Store::watch`]): replay the history after that
//!   revision, then stream new changes. That is how every controller learns about changes
//!   without polling.
//! - **compaction** ([`Store::compact`]): history is kept for a while, not forever. A watch
//!   from a revision older than the compacted one fails with [`Error::Compacted`], and the
//!   client must list again.
//!
//! Two backends implement [`Store`]: [`SledStore`] (embedded; the default, nothing to
//! install) and, with the `etcd` backend, a real etcd server. One behavioural test suite
//! ([`conformance`]) runs against both, so the trait means the same thing on each.
//!
//! ## The durability contract
//! A write is **acknowledged** when [`Store::put`], [`Store::txn`] or [`Store::delete`]
//! returns `Ok`. An acknowledged write survives `kill -9` of the process and a power cut
//! (as far as the disk honours `fsync`): the sled backend flushes its log to disk before
//! it returns, and etcd fsyncs its write-ahead log. A watcher only sees a change once it
//! is durable, so nobody ever acts on a write that a crash could undo.
//!
//! What the real etcd does differently: it replicates every write to a majority of
//! members with Raft before it acknowledges it, so losing a whole machine loses nothing;
//! it keeps the full MVCC history (every old value of every key, readable "as of"
//! revision N) until compaction; it supports multi-key transactions with arbitrary
//! comparisons; and its watches are gRPC streams shared by many watchers.

// ANCHOR: types
/// One key and its value, with etcd's three counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the write that created the key (since it last did not exist).
    pub create_revision: i64,
    /// The revision of the last write to the key: the object's `resourceVersion`.
    pub mod_revision: i64,
    /// How many times the key was written since it was created: 1 after the create.
    pub version: i64,
}

/// A change to one key, as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a put, the key as it is after the write. For a delete, the key as it was just
    /// before, with `mod_revision` set to the revision of the delete.
    pub kv: KeyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created (`kv.version == 1`) or changed.
    Put,
    /// The key was deleted.
    Delete,
}

/// The condition of a compare-and-swap: what the key must look like for the write to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// The key must not exist (a create).
    Absent,
    /// The key's `mod_revision` must be exactly this (an update of what we read).
    ModRevision(i64),
}

/// What a compare-and-swap does when its condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>),
    Delete,
}

/// The outcome of a [`Store::txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// The condition held and the operation was applied at this revision. For a put, the
    /// key as written; for a delete, the key as it was before.
    Done(KeyValue),
    /// The condition failed; this is the key as it is now (`None`: it does not exist).
    Failed(Option<KeyValue>),
}

/// A page of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The store's revision when the read happened.
    pub revision: i64,
    /// Whether more keys match after the last one returned (the read hit its limit).
    pub more: bool,
}
// ANCHOR_END: types

/// A stream of changes from [`Store::watch`], in revision order. It ends with an error
/// if the watcher falls so far behind that the history it needs was compacted.
pub type EventStream = futures::stream::BoxStream<'static, Result<Event>>;

// ANCHOR: trait
/// An MVCC key-value store in the shape of etcd's API (the part Kubernetes uses).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key, or `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Up to `limit` keys (0: no limit) that start with `prefix` and sort after
    /// `start_after` (for paging: pass the last key of the previous page).
    async fn range(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Range>;

    /// Writes the key whatever its state, and returns it as written.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Deletes the key whatever its state; returns it as it was, or `None` if it did not exist.
    async fn delete(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Compare-and-swap on one key: applies `op` only if `compare` holds, atomically.
    async fn txn(&self, key: &str, compare: Compare, op: Op) -> Result<TxnOutcome>;

    /// Every change to keys under `prefix` from revision `from` on (inclusive): first the
    /// history, then live changes. `from == 0` means "from now on".
    ///
    /// # Errors
    /// [`Error::Compacted`] if `from` is below the compacted revision: that history is gone.
    async fn watch(&self, prefix: &str, from: i64) -> Result<EventStream>;

    /// Forgets the history before `revision`: watches from older revisions now fail.
    async fn compact(&self, revision: i64) -> Result<()>;

    /// The current revision (the revision of the last write) and the compacted one.
    async fn revisions(&self) -> Result<Revisions>;
}
// ANCHOR_END: trait

/// The store's two counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    /// The revision of the last write (0 for an empty store).
    pub current: i64,
    /// History before this revision is gone (0: nothing compacted yet).
    pub compacted: i64,
}

pub mod conformance;
#[cfg(feature = "etcd")]
mod etcd;
mod sled_store;

#[cfg(feature = "etcd")]
pub use etcd::EtcdStore;
pub use sled_store::SledStore;

use crate::error::{Error, Result};

/// Opens a store from a spec as given on the command line: `sled:PATH` (or a bare
/// path) or `etcd:http://HOST:PORT`.
///
/// # Errors
/// [`Error::BadStoreSpec`] for an unknown scheme; [`Error::Store`] if it cannot be opened.
pub async fn open(spec: &str) -> Result<std::sync::Arc<dyn Store>> {
    match spec.split_once(':') {
        Some(("sled", path)) => Ok(std::sync::Arc::new(SledStore::open(std::path::Path::new(path))?)),
        #[cfg(feature = "etcd")]
        Some(("etcd", endpoint)) => Ok(std::sync::Arc::new(EtcdStore::connect(endpoint).await?)),
        Some((scheme, _)) if !spec.starts_with('/') && !spec.starts_with('.') => {
            Err(Error::BadStoreSpec { spec: spec.to_string(), why: format!("unknown backend `{scheme}`") })
        }
        _ => Ok(std::sync::Arc::new(SledStore::open(std::path::Path::new(spec))?)),
    }
}
