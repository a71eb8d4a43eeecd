//! # Chapter 6 — the API server and its store
//!
//! Everything in Kubernetes goes through one component: the API server. `kubectl`,
//! the scheduler, the kubelet and every controller only ever talk to it, over HTTP and
//! JSON. It checks requests, stamps objects with server-owned metadata, keeps them in a
//! store with MVCC (etcd), and streams every change to whoever watches.
//!
//! ## Layout
//! - [`store`]: the MVCC key-value store — the [`store::Store`] trait, its sled backend,
//!   and the behavioural test suite every backend must pass.
//! - [`object`]: the shape of a Kubernetes object (`apiVersion`, `kind`, `metadata`, ...)
//!   on top of plain JSON, and the server-owned metadata.
//! - [`registry`]: the kinds the server knows (Namespace, Pod, Node, Event, ...) and how
//!   later chapters register theirs.
//! - [`server`]: the HTTP API (axum): routing, discovery, CRUD, list and watch, patches,
//!   tables and `Status` errors.
//! - [`client`]: a small client (`kthw ctl`): kubeconfig, discovery, list-then-watch.
//! - [`lab`]: lab 06's checker, which reads etcd directly.
//! - `bench` (feature `etcd`): the store and the API server measured against a real etcd.
//! - [`error`]: the crate's one error type.

#[cfg(feature = "etcd")]
pub mod bench;
pub mod client;
pub mod error;
pub mod lab;
pub mod object;
pub mod registry;
pub mod server;
pub mod store;

pub use error::{Error, Result};
