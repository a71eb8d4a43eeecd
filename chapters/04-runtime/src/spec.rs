//! Making a `config.json`: `kthw runtime spec`, like `runc spec`.
//!
//! An OCI bundle is a folder with a `config.json` and a root filesystem. `runc spec`
//! writes a starting point that runs `sh` with a terminal in new pid, network, ipc, uts
//! and mount namespaces, with a small set of capabilities and the usual `/proc`, `/dev`
//! and `/sys` mounts. Docker never calls `runc spec`: it builds the spec in code
//! (moby's `oci/defaults.go`), with a larger capability set ([`DOCKER_DEFAULT_CAPS`])
//! and then adds the image's environment, working directory and user.
//!
//! Ours is runc's template with Docker's capabilities and no terminal, because its users
//! (the engine, `kthw build`, tests, the benchmark) run commands, not shells.
//! [`busybox_rootfs`] makes a tiny root filesystem for such bundles.
//!
//! What runc does differently: `runc spec --rootless` writes a spec with a user
//! namespace and id maps; Docker also adds a seccomp profile and an AppArmor profile,
//! which we do not implement.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::{Error, Result};

// ANCHOR: docker_caps
/// Docker's default capability set: the 14 of moby's `oci/caps/defaults.go`. Everything
/// else root can do (mount file systems, load modules, change the clock, trace other
/// processes, ...) is dropped.
pub const DOCKER_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
// ANCHOR_END: docker_caps

/// A `config.json` like `runc spec`'s: pid, network, ipc, uts and mount namespaces;
/// `/proc`, a tmpfs `/dev`, devpts, shm, mqueue and a read-only sysfs; masked and
/// read-only `/proc` paths; Docker's capabilities; a NOFILE rlimit; `noNewPrivileges`;
/// root `rootfs`; `process.args` = `args`; no terminal.
///
/// The template is written as JSON, as the reader finds it in the bundle, and parsed
/// with `oci-spec`'s types, so it is checked against the specification's schema.
///
/// # Errors
/// An empty `args`.
pub fn default_spec(args: &[String]) -> Result<Spec> {
    if args.is_empty() {
        return Err(Error::bad("the command of the spec", "it is empty; give the program to run, e.g. `sh`"));
    }
    let caps = DOCKER_DEFAULT_CAPS;
    let json = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            // Docker gives no inheritable or ambient capabilities (CVE-2022-24769): a
            // program of a non-root user gains none by exec.
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "kthw",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    serde_json::from_value(json).map_err(|e| Error::bad("the default spec", e))
}

/// The spec as `config.json` text: pretty, with the capability lists sorted (`oci-spec`
/// keeps them in hash sets, whose order changes from run to run).
///
/// # Errors
/// Only if serialisation fails, which it does not for a valid spec.
pub fn to_json(spec: &Spec) -> Result<String> {
    let mut json = serde_json::to_value(spec).map_err(|e| Error::bad("the spec", e))?;
    if let Some(caps) = json.pointer_mut("/process/capabilities").and_then(|c| c.as_object_mut()) {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&json).map_err(|e| Error::bad("the spec", e))?;
    text.push('\n');
    Ok(text)
}

/// Where Debian's `busybox-static` puts its binary.
const BUSYBOX: &str = "/bin/busybox";

/// Writes a busybox root filesystem into `dir`: `bin/busybox`, a link for each applet
/// where busybox installs it (`bin/sh`, `usr/bin/env`, ...), `etc/passwd` and
/// `etc/group` with root and user 1000, and the empty mount points. For test and
/// benchmark bundles: it takes a few milliseconds and no image store.
///
/// The applet links are hard links to one copy, as in Docker's busybox image, so the tree
/// costs one binary's space (and chapter 3's layer tarballs store them as link entries).
///
/// # Errors
/// No static busybox on the host (install it with `apt-get install busybox-static`), or
/// `dir` cannot be written.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    let host = Path::new(BUSYBOX);
    if !is_static_busybox(host) {
        return Err(Error::bad(
            "the busybox root filesystem",
            format!("{BUSYBOX} is missing or not statically linked; install it with `apt-get install busybox-static`"),
        ));
    }
    let listing = std::process::Command::new(host)
        .arg("--list-full")
        .output()
        .map_err(Error::io("run", format!("{BUSYBOX} --list-full")))?;
    let applets = String::from_utf8_lossy(&listing.stdout).into_owned();

    for sub in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
    }
    let binary = dir.join("bin/busybox");
    if !binary.exists() {
        std::fs::copy(host, &binary).map_err(Error::io("copy busybox to", &binary))?;
    }
    for applet in applets.lines().map(str::trim).filter(|l| !l.is_empty() && !l.contains("..")) {
        let link = dir.join(applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        std::fs::hard_link(&binary, &link).map_err(Error::io("link", &link))?;
    }
    let files = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"),
        ("etc/group", "root:x:0:\ntty:x:5:\nuser:x:1000:\n"),
        ("etc/hostname", "kthw\n"),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(Error::io("write", &path))?;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.join("tmp");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).map_err(Error::io("chmod", &tmp))?;
    let home = dir.join("home/user");
    std::os::unix::fs::chown(&home, Some(1000), Some(1000)).map_err(Error::io("chown", &home))?;
    Ok(())
}

/// A static binary has no `PT_INTERP` program header; we look for the interpreter's
/// name instead of parsing ELF, which is enough to tell Debian's two busybox packages apart.
fn is_static_busybox(path: &Path) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => bytes.starts_with(b"\x7fELF") && !bytes.windows(13).any(|w| w == b"/lib64/ld-lin"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The default spec has Docker's 14 capabilities, the five namespaces and the command.
    #[test]
    fn default_spec_is_runc_like_with_docker_caps() {
        let spec = default_spec(&["/bin/true".into()]).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_deref(), Some(&["/bin/true".to_string()][..]));
        assert_eq!(process.terminal(), Some(false));
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.ambient().is_none());
        let namespaces = spec.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        assert_eq!(namespaces.len(), 5);
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
    }

    // An empty command is refused with a message that says what to give.
    #[test]
    fn empty_command_is_refused() {
        let err = default_spec(&[]).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }
}
