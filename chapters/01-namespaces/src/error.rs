//! The one error type of chapter 1.
//!
//! Each variant says what failed, why it most likely failed, and how to fix it, because
//! the reader of these messages is a learner at a terminal, not a log collector. The
//! kernel's errno is part of each message (not a separate `source`), so the CLI's
//! `error: ...` line says everything once.

use std::path::PathBuf;

use kthw_lab::host::Namespace;

use crate::child::Step;

/// Everything that can go wrong in chapter 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating or joining namespaces needs root.
    #[error(
        "{action} needs root (CAP_SYS_ADMIN), but you are uid {uid}; \
         run it with sudo, or inside the lab VM (`vagrant ssh server`)"
    )]
    NotRoot { action: &'static str, uid: u32 },

    /// The kernel refused to create a namespace of this kind.
    #[error("cannot create a new {ns} namespace: {errno}; {hint}")]
    NamespaceUnavailable {
        ns: Namespace,
        errno: nix::Error,
        /// Why it most likely failed and how to fix it, chosen from the errno.
        hint: String,
    },

    /// The spec asks for something impossible, e.g. a host name without a UTS namespace.
    #[error("invalid request: {0}")]
    InvalidSpec(String),

    /// The command to run is not on `PATH` (inside the target's root, for `exec`).
    #[error("command not found: {command:?} is not a file and not on PATH ({path}); give a full path or install it")]
    CommandNotFound { command: String, path: String },

    /// A step the child takes between `clone` and `exec` failed.
    #[error("the child failed to {step}: {errno}{hint}")]
    Setup {
        step: Step,
        errno: nix::Error,
        /// Extra advice for the common causes, or empty.
        hint: &'static str,
    },

    /// There is no process with this PID (or it has already exited).
    #[error("there is no process {pid}; `ps -e` or `kthw ns ls` shows the running ones")]
    NoSuchProcess { pid: i32 },

    /// A file under /proc could not be read or written.
    #[error("cannot {action} {path}: {cause}")]
    Io { action: &'static str, path: PathBuf, cause: std::io::Error },

    /// A system call in the parent failed.
    #[error("{call} failed: {errno}")]
    Sys { call: &'static str, errno: nix::Error },

    /// Text read from /proc is not what we expect.
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
}

/// `Result` with chapter 1's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the action and path it concerned.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |cause| Error::Io { action, path, cause }
    }

    /// Wraps a failed system call.
    pub fn sys(call: &'static str) -> impl FnOnce(nix::Error) -> Error {
        move |errno| Error::Sys { call, errno }
    }

    /// The error for a namespace the kernel would not create, with advice by errno.
    pub fn unavailable(ns: Namespace, errno: nix::Error) -> Error {
        let sysctl = format!("/proc/sys/user/max_{}_namespaces", ns_sysctl_name(ns));
        let hint = match errno {
            nix::Error::EINVAL => format!(
                "this kernel was built without {ns} namespaces (CONFIG_{}_NS); use a distribution kernel such as the lab VM's",
                ns.proc_name().to_uppercase()
            ),
            nix::Error::ENOSPC | nix::Error::EUSERS => {
                format!(
                    "the limit in {sysctl} is reached or set to 0; raise it with `sysctl -w user.max_{}_namespaces=10000`",
                    ns_sysctl_name(ns)
                )
            }
            nix::Error::EPERM => "the kernel says you may not: are you root, and not inside a container that \
                                  drops CAP_SYS_ADMIN or filters unshare/clone with seccomp?"
                .to_string(),
            _ => "see `man 2 clone` for this errno".to_string(),
        };
        Error::NamespaceUnavailable { ns, errno, hint }
    }
}

/// The name used by the `user.max_*_namespaces` sysctls.
fn ns_sysctl_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Mount => "mnt",
        other => other.proc_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A namespace the kernel lacks says which config option is missing.
    #[test]
    fn unavailable_namespace_names_the_kernel_option() {
        let msg = Error::unavailable(Namespace::User, nix::Error::EINVAL).to_string();
        assert!(msg.contains("cannot create a new user namespace"), "{msg}");
        assert!(msg.contains("CONFIG_USER_NS"), "{msg}");
    }

    // A namespace limit of 0 names the sysctl to raise.
    #[test]
    fn exhausted_limit_names_the_sysctl() {
        let msg = Error::unavailable(Namespace::Mount, nix::Error::ENOSPC).to_string();
        assert!(msg.contains("/proc/sys/user/max_mnt_namespaces"), "{msg}");
    }

    // Not being root says what to do.
    #[test]
    fn not_root_says_use_sudo() {
        let msg = Error::NotRoot { action: "creating namespaces", uid: 1000 }.to_string();
        assert!(msg.contains("needs root") && msg.contains("sudo"), "{msg}");
    }
}
