//! # Chapter 5 — pods and the pause container (being written)
//!
//! ## Layout
//! - [`api`]: the Pod as Kubernetes writes it (`apiVersion: v1`, `kind: Pod`).
//! - [`sync`]: the kubelet's SyncPod decision, a pure function from desired and actual state.
//! - [`cni`]: calling CNI plugins, and our own bridge + host-local plugin.
//! - [`kubelet`]: running a pod on this node: sandbox, containers, the sync loop.
//! - [`error`]: the crate's one error type.

pub mod api;
pub mod cni;
pub mod error;
pub mod kubelet;
pub mod pause;
pub mod sync;

pub use error::{Error, Result};
