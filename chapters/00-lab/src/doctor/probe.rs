//! Gathering facts about the machine, by trying rather than reading configuration.
//!
//! Every field is a plain value or a `Result` whose error is the kernel's (or the
//! tool's) own words, so [`super::judge`] can explain a failure without probing again.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::Paths;
use crate::host::{self, CgroupLayout, CgroupMode, Kernel, Namespace};

/// The cgroup controllers the book uses (chapter 2 onwards).
pub const CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "memory", "pids", "freezer"];

/// Everything the doctor needs to know about a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub host: String,
    pub kernel: Result<Kernel, String>,
    pub euid: u32,
    /// Whether a namespace of each kind could be created.
    pub namespaces: Vec<(Namespace, Result<(), String>)>,
    pub cgroups: Result<CgroupLayout, String>,
    /// For each of [`CONTROLLERS`]: where a test cgroup could be made, or why not.
    pub controllers: Vec<(String, Result<PathBuf, String>)>,
    pub overlayfs: Result<(), String>,
    /// `iptables -V`, if iptables runs at all.
    pub iptables_version: Option<String>,
    /// Whether `iptables -t nat -S` works (needs root and the kernel's netfilter).
    pub iptables_works: Result<(), String>,
    /// Whether `nft` is installed.
    pub nft: bool,
    /// `net.ipv4.ip_forward`, if readable.
    pub ip_forward: Option<bool>,
    pub busybox: Busybox,
    /// Free bytes on the filesystem of the state directory, and that directory.
    pub disk_free: Result<(PathBuf, u64), String>,
    /// `MemAvailable` in bytes.
    pub mem_available: Option<u64>,
}

/// What we know about `busybox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Busybox {
    Missing,
    /// Found, but linked against shared libraries: it cannot run in an empty rootfs.
    Dynamic(PathBuf),
    Static(PathBuf),
}

/// Probes this machine. Takes a second or two: it forks a child per namespace kind.
pub fn probe(paths: &Paths) -> Facts {
    let cgroups = CgroupLayout::detect().map_err(|e| e.to_string());
    let controllers = match &cgroups {
        Ok(layout) => CONTROLLERS.iter().map(|c| (c.to_string(), try_controller(layout, c, &paths.instance))).collect(),
        Err(_) => Vec::new(),
    };
    let scratch = std::env::temp_dir().join(format!("kthw-doctor-overlay-{}", std::process::id()));
    Facts {
        host: host::hostname(),
        kernel: Kernel::current().map_err(|e| e.to_string()),
        euid: nix::unistd::geteuid().as_raw(),
        namespaces: Namespace::ALL.iter().map(|ns| (*ns, host::try_namespace(*ns).map_err(errno_text))).collect(),
        cgroups,
        controllers,
        overlayfs: host::try_overlayfs(&scratch).map_err(errno_text),
        iptables_version: output("iptables", &["-V"]).ok(),
        iptables_works: output("iptables", &["-w", "5", "-t", "nat", "-S"]).map(|_| ()),
        nft: host::which("nft").is_some(),
        ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok().map(|s| s.trim() == "1"),
        busybox: busybox(),
        disk_free: disk_free(&paths.state),
        mem_available: mem_available(),
    }
}

/// Makes and removes a test cgroup in the hierarchy that holds `controller`.
///
/// On v2 the controller must also be listed in the root's `cgroup.controllers`; the
/// freezer is not a controller there but a file of every cgroup (`cgroup.freeze`).
fn try_controller(layout: &CgroupLayout, controller: &str, instance: &str) -> Result<PathBuf, String> {
    let mount = match layout.hierarchy_for(controller) {
        Some(m) => m.path.clone(),
        None if controller == "freezer" && layout.mode == CgroupMode::V2 => {
            layout.unified().map(|m| m.path.clone()).ok_or("no cgroup2 mount")?
        }
        None => return Err(format!("no mounted hierarchy holds the {controller} controller")),
    };
    let probe = mount.join(format!("{instance}-doctor-{}", std::process::id()));
    std::fs::create_dir(&probe).map_err(|e| format!("cannot create {}: {e}", probe.display()))?;
    std::fs::remove_dir(&probe).map_err(|e| format!("cannot remove {}: {e}", probe.display()))?;
    Ok(mount)
}

/// Runs a program and returns its first line of output, or why it failed.
fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("`{program} {}` failed: {}", args.join(" "), err.lines().next().unwrap_or("").trim()))
    }
}

fn busybox() -> Busybox {
    let Some(path) = ["/bin/busybox", "/usr/bin/busybox"].iter().map(PathBuf::from).find(|p| p.is_file()) else {
        return Busybox::Missing;
    };
    match std::fs::read(&path).map(|elf| has_interpreter(&elf)) {
        Ok(false) => Busybox::Static(path),
        _ => Busybox::Dynamic(path),
    }
}

// ANCHOR: static_elf
/// Whether an ELF executable names a dynamic loader (a `PT_INTERP` program header).
/// A statically linked program has none, so it runs in a root filesystem that holds
/// nothing else — which is why the book uses `busybox-static`, not `busybox`.
pub fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| elf.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |at: usize| elf.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) || elf.get(5) != Some(&1) {
        return false; // not a little-endian ELF file: nothing to load
    }
    // The program header table's offset, entry size and count sit at different offsets
    // in 32-bit (class 1) and 64-bit (class 2) files.
    let (phoff, phentsize, phnum) = match elf.get(4) {
        Some(1) => (u32_at(0x1c).map(|o| o as usize), u16_at(0x2a), u16_at(0x2c)),
        Some(2) => (u64_at(0x20).map(|o| o as usize), u16_at(0x36), u16_at(0x38)),
        _ => return false,
    };
    let (Some(phoff), Some(size), Some(count)) = (phoff, phentsize, phnum) else { return false };
    (0..count).any(|i| u32_at(phoff + i * size) == Some(PT_INTERP))
}
// ANCHOR_END: static_elf

/// Free space for kthw's state: on the state directory, or its closest existing parent.
fn disk_free(state: &Path) -> Result<(PathBuf, u64), String> {
    let dir = state.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_path_buf();
    let st = nix::sys::statvfs::statvfs(&dir).map_err(errno_text)?;
    let free = st.blocks_available() * st.fragment_size();
    Ok((dir, free))
}

fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn errno_text(e: nix::Error) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test binary itself is dynamically linked: it names an interpreter.
    #[test]
    fn a_dynamic_executable_has_an_interpreter() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me));
    }

    // Garbage and truncated files are "no interpreter", never a panic.
    #[test]
    fn garbage_is_not_an_elf() {
        assert!(!has_interpreter(b""));
        assert!(!has_interpreter(b"#!/bin/sh\n"));
        assert!(!has_interpreter(b"\x7fELF\x02\x01"));
    }
}
