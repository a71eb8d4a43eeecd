//! # Chapter 0 — your lab machine
//!
//! The lowest crate of kthw. Every later chapter may use it; it uses none of them.
//! It answers three questions before any container exists:
//!
//! - *Can this machine run the book?* [`doctor`] is a preflight like `kubeadm init`'s:
//!   it tries each kernel feature the chapters need and says ok / warn / fail, and how to fix.
//! - *Did the learner do the lab?* [`lab`] runs a chapter's lab checker: ordered stages,
//!   each a check of real system state. Chapter 0's own lab is in [`lab00`].
//! - *Can this system test run here?* [`systest`] decides, in one place, whether a test
//!   that needs root or a kernel feature runs, is skipped (with how to run it) or fails (CI).
//!
//! ## Layout
//! - [`host`]: facts about the machine — kernel, cgroup layout, namespaces, overlayfs.
//! - [`state`]: where kthw keeps its state and how it names what it creates on the host.
//! - [`doctor`]: the preflight checks, split into probing the machine and judging the facts.
//! - [`lab`]: the lab framework and its JSON report; [`lab00`]: chapter 0's lab.
//! - [`reset`]: `kthw reset`, which removes everything kthw made.
//! - [`systest`]: the system-test helper and its [`require!`] macro.
//! - `snapshot` (feature `snapshots`): insta settings with kthw's standard redactions.
//! - [`error`]: the crate's one error type.

pub mod doctor;
pub mod error;
pub mod host;
pub mod lab;
pub mod lab00;
pub mod reset;
#[cfg(feature = "snapshots")]
pub mod snapshot;
pub mod state;
pub mod systest;

pub use error::{Error, Result};
pub use state::Paths;
