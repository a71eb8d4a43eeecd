//! The one error type of chapter 6.
//!
//! Store errors are here. The API server turns errors into Kubernetes `Status` objects
//! (see [`crate::server::status`]), which is what clients read.

/// Everything that can go wrong in chapter 6.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store backend failed (disk, sled, the connection to etcd).
    #[error("the store failed to {action}: {detail}")]
    Store { action: String, detail: String },
    /// The history a watch or a list needs was compacted away.
    #[error(
        "revision {requested} has been compacted (history starts at {compacted}); list again and watch from the list's revision"
    )]
    Compacted { requested: i64, compacted: i64 },
    /// Compacting to a revision that does not exist yet.
    #[error("cannot compact to revision {requested}: the current revision is {current}")]
    FutureRevision { requested: i64, current: i64 },
    /// A record in the store cannot be decoded.
    #[error("the store holds a corrupt record: {0}")]
    Corrupt(String),
    /// A `--store` value we do not understand.
    #[error("cannot use store `{spec}`: {why}; use sled:PATH or etcd:http://HOST:PORT")]
    BadStoreSpec { spec: String, why: String },
    /// A listening address we refuse to use.
    #[error("{0}")]
    Listen(String),
    /// An I/O error, for example when binding the listening socket.
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with chapter 6's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a sled error with what we were doing.
    pub(crate) fn sled(action: impl std::fmt::Display) -> impl FnOnce(sled::Error) -> Error {
        let action = action.to_string();
        move |err| Error::Store { action, detail: err.to_string() }
    }
}
