//! The one error type of chapter 3.
//!
//! Every variant names what it concerns (an image, a digest, a layer entry, a URL) so the
//! message tells the reader what to do. A refused layer names the tar entry and why.

use std::path::PathBuf;

/// Everything that can go wrong in chapter 3.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the store, a layer or a rootfs could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call (mount, pivot_root, mknod, ...) failed.
    #[error("{call} failed: {source}")]
    Sys {
        call: String,
        #[source]
        source: nix::Error,
    },
    /// Content does not hash to the digest it is stored or announced under.
    #[error("{what} should have digest {expected} but has {actual}: it was corrupted or tampered with")]
    DigestMismatch { what: String, expected: String, actual: String },
    /// A string is not a `sha256:<64 hex>` digest.
    #[error("{0:?} is not a sha256 digest (expected sha256: and 64 lowercase hex digits)")]
    BadDigest(String),
    /// An image name or registry reference cannot be parsed.
    #[error("{name:?} is not a valid image reference: {why}")]
    BadReference { name: String, why: String },
    /// No image has this name in the store.
    #[error("no image named {0}; `kthw image ls` lists the images")]
    NoSuchImage(String),
    /// The image is held by a rootfs or container, so it cannot be removed.
    #[error("image {image} is in use by {}; remove {} first", holders.join(", "), if holders.len() == 1 { "it" } else { "them" })]
    ImageInUse { image: String, holders: Vec<String> },
    /// A layer tarball has an entry we refuse to extract.
    #[error("refused layer {layer}: entry {entry:?} {why}; nothing was stored")]
    UnsafeEntry { layer: String, entry: String, why: String },
    /// An image, manifest, layout or layer is not what the OCI spec says it should be.
    #[error("bad {what}: {detail}")]
    BadImage { what: String, detail: String },
    /// No rootfs has this name.
    #[error("no rootfs named {0}; `kthw rootfs ls` lists them")]
    NoSuchRootfs(String),
    /// A rootfs with this name exists already.
    #[error("a rootfs named {0} exists already; pick another --name or `kthw rootfs rm {0}`")]
    RootfsExists(String),
    /// A registry answered with an error or something we cannot use.
    #[error("registry: {url}: {detail}")]
    Registry { url: String, detail: String },
}

/// `Result` with chapter 3's [`Error`].
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

    /// A malformed image part.
    pub fn bad(what: impl Into<String>, detail: impl ToString) -> Error {
        Error::BadImage { what: what.into(), detail: detail.to_string() }
    }
}
