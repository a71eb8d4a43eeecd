//! The one error type of chapter 5. Shared by every part of the crate: add variants with
//! small edits; each message says what, why and how to fix.

use std::path::PathBuf;

/// Everything that can go wrong in chapter 5.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Input (a manifest, a CNI config, a flag) that we cannot use.
    #[error("{what}: {why}")]
    Bad { what: String, why: String },
    /// A CNI plugin failed: its error JSON (`code`, `msg`, `details`), or what went wrong
    /// running it (then `code` is 0 and `msg` says why).
    #[error("CNI plugin {plugin} failed on {command} (code {code}): {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Cni { plugin: String, command: String, code: u32, msg: String, details: String },
    /// A manifest that does not decode, has unknown fields in strict mode, or does not
    /// validate. Each problem names the field path (`spec.containers[0].image`) and the fix.
    #[error("{what} is not a valid {kind}:{}", crate::api::bullet_list(problems))]
    Invalid { what: String, kind: &'static str, problems: Vec<crate::api::FieldError> },
    /// Chapter 4's error (the runtime and engine).
    #[error(transparent)]
    Runtime(#[from] kthw_runtime::Error),
}

/// `Result` with chapter 5's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the action and path it concerned.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    /// Input we cannot use: `what` names it, `why` says what is wrong and how to fix it.
    pub fn bad(what: impl Into<String>, why: impl ToString) -> Error {
        Error::Bad { what: what.into(), why: why.to_string() }
    }
}
