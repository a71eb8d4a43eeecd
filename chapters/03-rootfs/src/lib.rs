//! # Chapter 3 — root filesystems and images
//!
//! `docker run busybox` needs files before it needs a process: a root filesystem. This
//! crate builds what gives a container one, in the order the chapter explains it:
//!
//! 1. an **image store** that keeps images as OCI manifests, configs and layer tarballs,
//!    each named by its sha256 digest ([`store`]);
//! 2. ways to get images: import a directory or tarball ([`import`]), read and write OCI
//!    image layouts that skopeo and umoci understand ([`oci`]), pull from a registry
//!    ([`registry`]);
//! 3. **layers** unpacked safely, whiteouts and all ([`layer`]);
//! 4. a container's **rootfs**: the layers, an init layer and a writable layer stacked
//!    with overlayfs ([`rootfs`]), entered with `pivot_root` and fresh `/proc`, `/dev`
//!    and `/sys` ([`pivot`]);
//! 5. the way back: an upper directory turned into a new layer, `docker commit` ([`diff`]).
//!
//! ## Layout
//! - [`digest`]: sha256 names and hashing readers and writers.
//! - [`store`]: blobs, unpacked layers, image names, holds, `rm`, `prune`, `df`.
//! - [`layer`]: unpacking one layer tarball, refusing hostile entries; whiteouts.
//! - [`import`]: one-layer images from a directory or tarball; writing new images.
//! - [`diff`]: writing a directory or an upper dir as a tar; `docker diff`'s list.
//! - [`oci`]: OCI image layout import and export.
//! - [`registry`]: pulling from an OCI / Docker registry.
//! - [`rootfs`]: named rootfses: overlay mount, init layer, commit.
//! - [`pivot`]: entering a rootfs: namespaces, `pivot_root`, `/proc`, `/dev`, `/sys`.
//! - [`lab`]: lab 03's checker.
//! - [`error`]: the crate's one error type.

pub mod diff;
pub mod digest;
pub mod error;
pub mod import;
pub mod lab;
pub mod layer;
pub mod oci;
pub mod pivot;
pub mod registry;
pub mod rootfs;
pub mod store;

pub use error::{Error, Result};
pub use store::{Image, Store};
