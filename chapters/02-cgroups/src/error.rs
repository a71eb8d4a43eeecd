//! The one error type of chapter 2.
//!
//! cgroup file systems answer every mistake with a bare errno (`EINVAL`, `EBUSY`,
//! `ENOENT`, `EACCES`). Each variant here turns one of those into what went wrong, why,
//! and how to fix it, because "Device or resource busy" alone teaches nothing.
//!
//! The underlying `io::Error` is part of each message (a field named `cause`, not
//! `source`), so that the CLI, which prints the whole error chain, shows it only once.

use std::path::PathBuf;

/// Everything that can go wrong in chapter 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating or changing cgroups needs root.
    #[error(
        "cannot {action}: permission denied (you are uid {uid}). cgroup directories belong to root; \
         run the command with sudo"
    )]
    NotRoot { action: String, uid: u32 },

    /// A limit needs a controller that no mounted hierarchy offers.
    #[error(
        "the {controller} controller is not available on this {mode} machine, so {purpose} cannot be \
         set. {fix}"
    )]
    ControllerUnavailable { controller: String, mode: String, purpose: String, fix: String },

    /// A cgroup file that this cgroup version should have is missing.
    #[error(
        "{path} does not exist, so {purpose} is not supported here. The running kernel or cgroup \
         version ({mode}) lacks this file; {fix}"
    )]
    Unsupported { path: PathBuf, mode: String, purpose: String, fix: String },

    /// A value given on the command line (a memory size, a CPU count, ...) is not valid.
    #[error("invalid {flag} {value:?}: {why}")]
    BadLimit { flag: &'static str, value: String, why: String },

    /// The kernel refused a value written to a cgroup file.
    #[error("cannot write {value:?} to {path}: {cause}{hint}")]
    Write { path: PathBuf, value: String, hint: String, cause: std::io::Error },

    /// A cgroup file or directory could not be read, created or removed.
    #[error("cannot {action} {path}: {cause}")]
    Io { action: &'static str, path: PathBuf, cause: std::io::Error },

    /// No hierarchy holds a cgroup with this path.
    #[error(
        "there is no cgroup {path:?} in any hierarchy; paths are written as in /proc/PID/cgroup, \
         e.g. /kthw/lab02 (see `cat /proc/self/cgroup`)"
    )]
    NotFound { path: String },

    /// Processes would not leave a cgroup that we are deleting.
    #[error(
        "cannot remove {path}: processes {pids:?} are still in it after SIGKILL. A process in \
         uninterruptible sleep (state D in `ps`) cannot die until its I/O ends; wait and run \
         `kthw reset`"
    )]
    Busy { path: PathBuf, pids: Vec<u32> },

    /// The command to run in the cgroup could not be started.
    #[error("cannot start {command:?}: {cause}")]
    Spawn { command: String, cause: std::io::Error },

    /// An error from chapter 0 (reading the cgroup layout).
    #[error(transparent)]
    Lab(#[from] kthw_lab::Error),
}

/// `Result` with chapter 2's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the action and path it concerned. Permission errors
    /// become [`Error::NotRoot`], the most common cause by far.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied && !kthw_lab::host::is_root() {
                Error::NotRoot { action: format!("{action} {}", path.display()), uid: nix::unistd::geteuid().as_raw() }
            } else {
                Error::Io { action, path, cause: source }
            }
        }
    }
}
