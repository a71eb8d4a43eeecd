//! # Chapter 5 — pods and the pause container
//!
//! A pod is a group of containers that share a network, an IPC namespace and a host name,
//! held open by a tiny *pause* container, so that they can talk over `localhost` like
//! processes on one machine. This crate is the node-local heart of the kubelet: given a Pod
//! manifest as Kubernetes writes it, make it run here (chapter 7 connects it to the API
//! server).
//!
//! ## Layout
//! - [`api`]: the Pod as Kubernetes writes it (`apiVersion: v1`, `kind: Pod`).
//! - [`sync`]: the kubelet's SyncPod decision, a pure function from desired and actual state.
//! - [`pause`]: the pause image: our `kthw-pause` binary (`src/bin/`) packaged locally.
//! - [`cni`]: calling CNI plugins, and our own bridge + host-local plugin (`kthw-cni-bridge`).
//! - [`kubelet`]: running a pod on this node: sandbox, pod cgroups, containers, the sync loop.
//! - [`bench`]: `kthw bench pod`, a pod start against two `crun run`s.
//! - [`lab`]: lab 05's checker (`kthw lab check 05`).
//! - [`error`]: the crate's one error type.

pub mod api;
pub mod bench;
pub mod cni;
pub mod error;
pub mod kubelet;
pub mod lab;
pub mod pause;
pub mod sync;

pub use error::{Error, Result};
