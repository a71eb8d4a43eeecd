//! The pause image: our `kthw-pause` binary (`src/bin/kthw-pause.rs`) packaged as an image
//! in chapter 3's store, made locally, with no download.
//!
//! Every Kubernetes pod starts with a *sandbox* container running `registry.k8s.io/pause`.
//! It holds the pod's network, IPC and UTS namespaces (and its PID namespace when
//! `shareProcessNamespace` is set), so the app containers can join them and restart
//! without the pod losing its IP address. The image is one file, `/pause`, and its config
//! says `Entrypoint: ["/pause"]`, `User: 65535:65535`.
//!
//! [`image`] makes the same from a binary on the host. A statically linked binary is
//! copied alone. A dynamically linked one (what a plain `cargo build` makes) is copied
//! with its ELF interpreter and the shared libraries `ldd` lists, at the paths where the
//! loader looks for them, so the image works either way; [`is_static`] tells which.
//! To build the static one (about 1.2 MB with glibc, stripped):
//!
//! ```text
//! cargo rustc -p kthw-pods --release --bin kthw-pause -- -C target-feature=+crt-static
//! ```
//!
//! What the real one does differently: `registry.k8s.io/pause` is built from `pause.c`
//! with `-Os -static` for a dozen architectures and pushed as a multi-arch image; the
//! kubelet pulls it (`--pod-infra-container-image`, now containerd's `sandbox_image`)
//! and pins it so that image garbage collection never removes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use kthw_rootfs::{Image, Store};

use crate::{Error, Result};

/// The name the pause image gets in the store.
pub const IMAGE: &str = "kthw/pause:1.0";

/// Where the binary is inside the image, and its entrypoint.
pub const ENTRYPOINT: &str = "/pause";

/// The user the real pause image runs as: `nobody` on most systems. Pause needs no
/// privilege at all, so it gets none.
pub const USER: &str = "65535:65535";

/// Packages `binary` as the image `name` (use [`IMAGE`]): `/pause`, plus its interpreter
/// and libraries if it is dynamically linked; `Entrypoint ["/pause"]`, no `Cmd`,
/// `User 65535:65535`. Replaces an older image of that name.
///
/// # Errors
/// If `binary` is not an ELF executable, `ldd` fails on it, or the store cannot be
/// written.
pub fn image(store: &Store, binary: &Path, name: &str) -> Result<Image> {
    let staging = store.tmp_path("pause-image");
    let made = (|| {
        copy_into(&staging, binary, Path::new(ENTRYPOINT))?;
        if !is_static(binary)? {
            for lib in libraries(binary)? {
                copy_into(&staging, &lib, &lib)?;
            }
        }
        let layer = kthw_rootfs::import::store_layer(store, |w| {
            kthw_rootfs::diff::write_tar(&staging, w, &kthw_rootfs::diff::TarOptions::default()).map(|_| ())
        })
        .map_err(kthw_runtime::Error::from)?;
        let mut config = kthw_rootfs::import::base_config(&format!("kthw pause image from {}", binary.display()))
            .map_err(kthw_runtime::Error::from)?;
        let mut run = config.config().clone().unwrap_or_default();
        run.set_entrypoint(Some(vec![ENTRYPOINT.to_string()]));
        run.set_cmd(None);
        run.set_user(Some(USER.to_string()));
        config.set_config(Some(run));
        kthw_rootfs::import::write_image(store, name, config, vec![], vec![layer], None)
            .map_err(|e| Error::Runtime(e.into()))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    made
}

/// Copies the file `from` (following symbolic links) to `root/inside`, executable.
fn copy_into(root: &Path, from: &Path, inside: &Path) -> Result<()> {
    let to = root.join(inside.strip_prefix("/").unwrap_or(inside));
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    std::fs::copy(from, &to).map_err(Error::io("copy", from))?;
    Ok(())
}

/// Whether the ELF file at `path` is statically linked: it has no `PT_INTERP` program
/// header, the one that names the dynamic loader (`/lib64/ld-linux-x86-64.so.2`) the
/// kernel must start first. (`file` and `ldd` decide the same way.)
///
/// # Errors
/// If the file cannot be read or is not a 64-bit little-endian ELF file.
pub fn is_static(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    let not_elf = || Error::bad(path.display().to_string(), "is not a 64-bit little-endian ELF executable");
    if bytes.len() < 64 || !bytes.starts_with(b"\x7fELF\x02\x01") {
        return Err(not_elf());
    }
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let phoff = bytes.get(0x20..0x28).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize);
    let (Some(phoff), Some(size), Some(count)) = (phoff, u16_at(0x36), u16_at(0x38)) else {
        return Err(not_elf());
    };
    const PT_INTERP: u32 = 3;
    for i in 0..count {
        match u32_at(phoff + i * size) {
            Some(PT_INTERP) => return Ok(false),
            Some(_) => {}
            None => return Err(not_elf()),
        }
    }
    Ok(true)
}

/// The shared libraries and the loader that `binary` needs, as absolute paths: what
/// `ldd` prints (`libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`), without the
/// kernel's `linux-vdso.so.1`, which is no file.
///
/// # Errors
/// If `ldd` cannot run or fails (it is in Debian's `libc-bin`).
pub fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().map_err(Error::io("run ldd on", binary))?;
    if !out.status.success() {
        return Err(Error::bad(
            format!("ldd {}", binary.display()),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// The absolute paths in `ldd`'s output.
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // ldd's lines become the loader and the libraries; the vDSO and "not found" are left out.
    #[test]
    fn ldd_output_is_parsed() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f01)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
                    \tlibfoo.so => not found\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        let got = parse_ldd(text);
        let want: Vec<PathBuf> =
            ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
                .iter()
                .map(PathBuf::from)
                .collect();
        assert_eq!(got, want);
    }

    // A dynamically linked program (this test binary) has an interpreter; a text file is no ELF.
    #[test]
    fn static_or_not_is_read_from_the_elf_headers() {
        let me = std::env::current_exe().unwrap();
        assert!(!is_static(&me).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("script");
        std::fs::write(&text, "#!/bin/sh\n").unwrap();
        let err = is_static(&text).unwrap_err().to_string();
        assert!(err.contains("not a 64-bit little-endian ELF"), "{err}");
    }
}
