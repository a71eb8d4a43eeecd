//! The one error type of chapter 0.
//!
//! Every variant says what failed and carries enough context (a path, a command) for the
//! message to tell the reader how to fix it. Bad input never panics.
//!
//! The underlying error is part of each message (`cannot read X: permission denied`) and
//! is deliberately not also a `#[source]`, so `anyhow`'s `{:#}` does not print it twice.

use std::path::PathBuf;

/// Everything that can go wrong in chapter 0.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file under /proc or /sys, or a state file, could not be read or written.
    #[error("cannot {action} {path}: {error}")]
    Io { action: &'static str, path: PathBuf, error: std::io::Error },
    /// A system call failed.
    #[error("{call} failed: {error}")]
    Sys { call: &'static str, error: nix::Error },
    /// A command we run (iptables, ip, ...) could not be started or failed.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    /// Text we parse (mountinfo, a lab report, ...) is not what we expect.
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    /// No lab has this number.
    #[error("there is no lab {0}; `kthw lab list` shows the labs that exist")]
    NoSuchLab(String),
}

/// `Result` with chapter 0's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the action and path it concerned.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io { action, path, error }
    }

    /// Wraps a failed system call.
    pub fn sys(call: &'static str) -> impl FnOnce(nix::Error) -> Error {
        move |error| Error::Sys { call, error }
    }
}
