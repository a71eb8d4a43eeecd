//! Content addressing: a blob's name is the sha256 of its bytes, `sha256:<64 hex>`.
//!
//! That one rule is what makes an image store safe to share: two images that contain the
//! same layer store it once, and content that was changed on disk or on the wire no
//! longer matches its name, so it is caught on write *and* on read.
//!
//! What the real stores do differently: containerd's content store and the registry
//! accept other algorithms (sha512), and verify with the `opencontainers/go-digest`
//! package; we know only sha256, which is what every registry serves today.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// The digest of `bytes`: `sha256:` and 64 hex digits.
pub fn of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The 64 hex digits of a well-formed digest, refusing anything else (so a digest can
/// safely become a file name: no `/`, no `..`).
///
/// # Errors
/// [`Error::BadDigest`] if `digest` is not `sha256:` and 64 lowercase hex digits.
pub fn hex_of(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(hex)
        }
        _ => Err(Error::BadDigest(digest.to_string())),
    }
}

/// The short form shown in listings, like Docker's 12-digit image ids.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// A reader that hashes what passes through it, to check a stream against a digest
/// without holding it in memory.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), count: 0 }
    }

    /// The digest and size of everything read so far.
    pub fn finish(self) -> (String, u64) {
        (format!("sha256:{}", hex::encode(self.hasher.finalize())), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), count: 0 }
    }

    /// The writer, and the digest and size of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, format!("sha256:{}", hex::encode(self.hasher.finalize())), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The digest of the empty JSON object is the one the OCI spec prints.
    #[test]
    fn digest_of_empty_json_matches_the_spec() {
        assert_eq!(of(b"{}"), "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    // Only well-formed sha256 digests become file names: no paths, no other algorithms.
    #[test]
    fn malformed_digests_are_refused() {
        assert!(hex_of(&of(b"x")).is_ok());
        for bad in ["sha256:../../etc/passwd", "sha512:00", "sha256:ABC", "", "sha256:"] {
            assert!(matches!(hex_of(bad), Err(Error::BadDigest(_))), "{bad}");
        }
    }

    // A hashing reader gives the same digest as hashing the bytes at once.
    #[test]
    fn hashing_reader_agrees_with_of() {
        let mut r = HashingReader::new(&b"hello layers"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish(), (of(b"hello layers"), 12));
    }
}
