//! # Chapter 2 — cgroups: processes that get less
//!
//! Namespaces (chapter 1) decide what a process can *see*; control groups decide how
//! much it can *use*. `docker run --memory 64M --cpus 0.5 --pids-limit 20` turns into a
//! handful of writes to files under `/sys/fs/cgroup`, and this crate makes those writes,
//! on both cgroup versions, detected at run time:
//!
//! - **v1** (this book's build machine): one tree per controller, e.g.
//!   `/sys/fs/cgroup/memory/kthw/run-42/memory.limit_in_bytes`;
//! - **v2** (the lab VMs, every current distribution): one tree,
//!   `/sys/fs/cgroup/kthw/run-42/memory.max`.
//!
//! ## Layout
//! - [`limits`]: the four limits (memory, CPU quota, pids, cpuset) and parsing of the
//!   command-line values (`64M`, `0.5`).
//! - [`cgroup`]: [`Cgroup`], one type over both versions: create, set limits, add a
//!   process, freeze and thaw, read files, delete (killing what is left).
//! - [`stats`]: [`Stats`], the usage of a cgroup in one shape for both versions
//!   (`kthw cgroup stat`).
//! - [`run`]: `kthw cgroup run`: a command in a fresh cgroup, joined before `exec`,
//!   with its OOM kill reported.
//! - [`lab`]: lab 02's checker.
//! - [`error`]: the crate's one error type.

pub mod cgroup;
pub mod error;
pub mod lab;
pub mod limits;
pub mod run;
pub mod stats;

pub use cgroup::{Cgroup, CgroupGuard, Version};
pub use error::{Error, Result};
pub use limits::Limits;
pub use stats::Stats;
