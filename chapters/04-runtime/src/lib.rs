//! # Chapter 4 — a container runtime of our own
//!
//! Chapters 1 to 3 built the parts of a container: namespaces, cgroups and a root
//! filesystem. This crate puts them together twice, in the two layers of the real stack:
//!
//! - **low level, like runc**: given an OCI runtime *bundle* (a `config.json` and a root
//!   filesystem), create, start, signal and delete one container, and keep its state on
//!   disk between those commands (`kthw runtime ...`);
//! - **high level, like Docker**: images in, containers out — `kthw run`, `ps`, `logs`,
//!   `exec`, `stop`, `rm`, `commit`, `build` — with a small supervisor per container (like
//!   containerd-shim), a bridge network with NAT and published ports.
//!
//! ```text
//! docker ─▶ dockerd ─▶ containerd ─▶ containerd-shim ─▶ runc ─▶ container
//! kthw run ───────────▶ engine ───▶ supervisor ──────▶ lifecycle ─▶ container
//! ```
//!
//! ## Layout
//! The OCI runtime (runc's part):
//! - [`spec`]: making a `config.json` (`kthw runtime spec`, like `runc spec`), Docker's
//!   default capabilities, and a busybox root filesystem for test bundles.
//! - [`bundle`]: reading a bundle and refusing, clearly, what we do not support.
//! - [`state`]: the OCI state of a container, kept on disk between commands.
//! - [`lifecycle`]: [`Runtime`]: `create`, `start`, `state`, `kill`, `delete`, `run`.
//! - [`init`]: what the container's first process does between `clone` and `execve`.
//! - [`mounts`]: the spec's mounts, `/dev`, masked and read-only paths.
//! - [`security`]: user, capabilities, `no_new_privs`, rlimits.
//! - [`resources`]: the spec's `linux.resources` as chapter 2's cgroup limits.
//!
//! The engine (Docker's part):
//! - [`engine`]: containers from images: records on disk, the supervisor, logs, `exec`,
//!   `stop`, `inspect`, `commit`, `events`, `system df` and `prune`.
//! - [`network`]: the `kthw0` bridge, veth pairs, IP allocation, NAT and `-p` publishing.
//! - [`build`]: `kthw build` from a Dockerfile, one layer per step, with a cache.
//!
//! And around them:
//! - [`bench`]: ours against runc and crun, interleaved in one run.
//! - [`lab`]: lab 04's checker.
//! - [`error`]: the crate's one error type.

pub mod bench;
pub mod build;
pub mod bundle;
pub mod engine;
pub mod error;
pub mod init;
pub mod lab;
pub mod lifecycle;
pub mod mounts;
pub mod network;
pub mod resources;
pub mod security;
pub mod spec;
pub mod state;

pub use error::{Error, Result};
pub use lifecycle::Runtime;
