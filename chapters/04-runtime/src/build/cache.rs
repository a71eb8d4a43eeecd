//! The build cache: a step that would do the same thing to the same image is not done
//! again; the image it made last time is used instead.
//!
//! "The same thing" is the **cache key**: the digest of the parent image's id (which
//! covers every earlier step, since each step's image id covers its parent's layers and
//! config), the instruction after variable expansion, and for `COPY`/`ADD` the digest of
//! the files it copies. A `RUN` is never looked into: `RUN apt-get update` is a cache hit
//! forever, as in Docker, until an earlier step changes.
//!
//! Each step's image is kept in the chapter 3 store under the name
//! `build-cache:<first 16 hex digits of the key>`. Being named, it survives the store's
//! garbage collection, and a lookup is a plain `store.image(name)`. [`prune`] drops
//! those names and collects what only they kept.
//!
//! What Docker does differently: the classic builder kept each step's image as a
//! dangling `<none>` image with a *parent* pointer, and searched the children of the
//! parent for one made by the same instruction; BuildKit keys an LLB vertex by the
//! digest of its definition and inputs (`cache key = digest(op, inputs' keys)`), which
//! is the same idea as ours, and can export and import the cache to a registry.

use kthw_rootfs::store::Removed;
use kthw_rootfs::{Image, Store};

use crate::Result;

/// The repository name of the cache's images.
pub const PREFIX: &str = "build-cache";

// ANCHOR: cache_key
/// The cache key of a step: its parent image, what it does, and what it copies.
pub fn key(parent_id: &str, instruction: &str, files: Option<&str>) -> String {
    let text = format!("parent {parent_id}\ninstruction {instruction}\nfiles {}\n", files.unwrap_or("-"));
    kthw_rootfs::digest::of(text.as_bytes())
}

/// The store name under which the image of the step with this key is kept.
pub fn name(key: &str) -> String {
    let hex = key.strip_prefix("sha256:").unwrap_or(key);
    format!("{PREFIX}:{}", &hex[..hex.len().min(16)])
}

/// The image a step with this key made before, if the store still has it whole.
pub fn lookup(store: &Store, key: &str) -> Option<Image> {
    let image = store.image(&name(key)).ok()?;
    store.layer_dirs(&image).ok()?;
    Some(image)
}
// ANCHOR_END: cache_key

/// Whether `name` (normalised) is one of the cache's images.
pub fn is_cache_image(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|rest| rest.starts_with(':'))
}

/// Forgets every cached step (like `docker builder prune`): drops the cache's names and
/// deletes what no other image uses. Cache images that a running build holds are kept.
///
/// # Errors
/// If the store cannot be read or changed.
pub fn prune(store: &Store) -> Result<Removed> {
    let mut total = Removed::default();
    for name in store.refs()?.into_keys().filter(|n| is_cache_image(n)) {
        match store.remove(&name) {
            Ok(removed) => {
                total.untagged.extend(removed.untagged);
                total.blobs.extend(removed.blobs);
                total.layers.extend(removed.layers);
                total.bytes += removed.bytes;
            }
            Err(kthw_rootfs::Error::ImageInUse { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every part of the key matters: another parent, instruction or file content is another key.
    #[test]
    fn key_depends_on_parent_instruction_and_files() {
        let k = key("sha256:aa", "RUN [\"true\"]", None);
        assert_eq!(k, key("sha256:aa", "RUN [\"true\"]", None));
        assert_ne!(k, key("sha256:bb", "RUN [\"true\"]", None));
        assert_ne!(k, key("sha256:aa", "RUN [\"false\"]", None));
        assert_ne!(key("p", "COPY", Some("sha256:1")), key("p", "COPY", Some("sha256:2")));
        assert!(name(&k).starts_with("build-cache:") && name(&k).len() == "build-cache:".len() + 16);
        assert!(is_cache_image(&name(&k)) && !is_cache_image("build-cached:latest"));
    }
}
