//! # Chapter 1 — namespaces: processes that see less
//!
//! A container is, first of all, an ordinary process that the kernel shows a smaller
//! world: its own host name, its own process numbers starting at 1, its own mounts, its
//! own network interfaces, its own user ids. Each of those views is a *namespace*. This
//! crate starts processes in new namespaces, looks at namespaces through `/proc`, and
//! joins the namespaces of a running process — `docker run`'s and `docker exec`'s
//! first half, without images (chapter 3) or resource limits (chapter 2).
//!
//! ```no_run
//! use kthw_lab::host::Namespace;
//! use kthw_namespaces::Spec;
//!
//! let process = Spec::new(["hostname"])
//!     .namespace(Namespace::Uts)
//!     .hostname("inside")
//!     .spawn()?;
//! assert_eq!(process.wait()?, 0); // printed "inside"; the host's name is unchanged
//! # Ok::<(), kthw_namespaces::Error>(())
//! ```
//!
//! ## Layout
//! - [`spec`]: what to start — namespaces, host name, id maps, command ([`Spec`]).
//! - [`run`]: [`Spec::spawn`] (one `clone`, then the child's setup) and the [`Process`] handle.
//! - [`child`]: what a child may do between fork and exec, and how it reports failure.
//! - [`init`]: our PID 1 — reaps zombies, forwards signals.
//! - [`exec`]: `kthw ns exec`, joining a process's namespaces with `setns`.
//! - [`inspect`]: namespaces seen from `/proc`: identities, `show`, `lsns`-like listing,
//!   a process's host name, PIDs and interfaces.
//! - [`lab`]: lab 1's checker.
//! - [`error`]: the crate's one error type.
//!
//! Tests: `tests/isolation.rs` proves each isolation property on real processes (root);
//! `tests/lab.rs` runs the checker on good and bad sleepers. The book's command output
//! comes from the workspace's `tests/ch01_namespaces.rs`, which runs the real `kthw ns`
//! commands and writes the snapshots in `tests/snapshots/` here.

pub mod child;
pub mod error;
pub mod exec;
pub mod init;
pub mod inspect;
pub mod lab;
pub mod run;
pub mod spec;

pub use error::{Error, Result};
/// Process ids, as the rest of the crate's API takes them.
pub use nix::unistd::Pid;
pub use run::Process;
pub use spec::{IdMap, Spec, Stdio};
