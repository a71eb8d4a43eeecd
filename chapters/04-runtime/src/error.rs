//! The one error type of chapter 4.
//!
//! Each variant names what it concerns (a container, a bundle field, a Dockerfile line,
//! a command that failed) and says how to fix it. Errors of the chapters below are kept
//! whole, so their hints reach the reader.
//!
//! This file is shared by every part of the crate: add a variant where your part needs
//! one, keep the message a full sentence that says what, why and how to fix.

use std::path::PathBuf;

/// Everything that can go wrong in chapter 4.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of ours (state, config, log) could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Sys {
        call: String,
        #[source]
        source: nix::Error,
    },
    /// Input (a flag, a `config.json`, a Dockerfile, a JSON file) that we cannot use.
    #[error("{what}: {why}")]
    Bad { what: String, why: String },
    /// A program we run (`ip`, `iptables`, ...) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    /// No container has this id or name.
    #[error("no container {0}; `kthw ps -a` lists the containers (`kthw runtime list` for bundles)")]
    NoSuchContainer(String),
    /// A container with this id or name exists already.
    #[error("a container named {0} exists already; pick another name or remove it first")]
    ContainerExists(String),
    /// The container is not in a state that allows this operation.
    #[error("container {id} is {status}: {why}")]
    WrongState { id: String, status: String, why: String },
    /// A Dockerfile line that cannot be parsed or built (`kthw build`).
    #[error("{}:{line}: {why}", file.display())]
    Dockerfile { file: PathBuf, line: usize, why: String },
    /// A build step failed for a reason of the layers below (a store or runtime error).
    /// The cause is part of the message (not a `source`), so it is printed once.
    #[error("{}:{line}: {step}: {cause}", file.display())]
    BuildStep { file: PathBuf, line: usize, step: String, cause: Box<Error> },
    /// The container's init failed at a step of its setup (runtime `create`/`run`).
    #[error("container {id}: the init could not {step}: {errno}{hint}")]
    Init { id: String, step: String, errno: nix::errno::Errno, hint: String },
    /// Chapter 1's error (namespaces).
    #[error(transparent)]
    Namespaces(#[from] kthw_namespaces::Error),
    /// Chapter 2's error (cgroups).
    #[error(transparent)]
    Cgroups(#[from] kthw_cgroups::Error),
    /// Chapter 3's error (images and root filesystems).
    #[error(transparent)]
    Rootfs(#[from] kthw_rootfs::Error),
    /// Chapter 0's error (state paths, host facts).
    #[error(transparent)]
    Lab(#[from] kthw_lab::Error),
}

/// `Result` with chapter 4's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the action and path it concerned.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    /// Wraps a failed system call; `call` says which and on what.
    pub fn sys(call: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
        let call = call.into();
        move |source| Error::Sys { call, source }
    }

    /// Input we cannot use: `what` names it, `why` says what is wrong and how to fix it.
    pub fn bad(what: impl Into<String>, why: impl ToString) -> Error {
        Error::Bad { what: what.into(), why: why.to_string() }
    }
}
