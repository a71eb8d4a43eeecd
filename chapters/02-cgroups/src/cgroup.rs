//! One [`Cgroup`] type over both cgroup versions.
//!
//! A cgroup is a directory in a cgroup file system; its files are its settings. On
//! **cgroup v1** every controller (memory, cpu, pids, ...) has a tree of its own, mounted
//! at `/sys/fs/cgroup/<controller>`, so "one cgroup" is really one directory in each of
//! several trees, and a process must be added to each. On **cgroup v2** there is one
//! tree at `/sys/fs/cgroup`; a directory holds every controller's files, and a parent
//! decides which controllers its children get through `cgroup.subtree_control`.
//!
//! The version is detected at run time from the mounts ([`CgroupLayout`]), never
//! assumed. A "hybrid" machine (v1 hierarchies plus a cgroup2 mount that holds at most a
//! leftover controller such as hugetlb) is driven through its v1 hierarchies, as runc does.
//!
//! What the real runc does differently: `libcontainer/cgroups` has a v1 manager with one
//! "subsystem" type per controller and a v2 manager (`fs2`), plus systemd managers that
//! ask systemd over D-Bus to create a transient scope instead of calling `mkdir` itself;
//! that is what Docker and the kubelet use on systemd machines. runc also supports
//! hybrid mode's unified mount for the systemd tree, device rules via eBPF on v2, and
//! writes `cgroup.procs` from the `runc init` process before the user's program runs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kthw_lab::host::{CgroupLayout, CgroupMode};

use crate::limits::Limits;
use crate::{Error, Result};

/// The v1 controllers we create a directory for: the four we limit, `cpuacct` for CPU
/// usage and `freezer` for pausing.
pub const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"];

/// The v2 controllers we enable for our cgroups. CPU usage and freezing are built into
/// every v2 cgroup, so they need no controller.
pub const V2_CONTROLLERS: [&str; 4] = ["cpu", "cpuset", "memory", "pids"];

/// How long [`Cgroup::delete`] and [`Cgroup::freeze`] wait for the kernel.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which set of files a cgroup has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One directory of a cgroup: on v1 one per hierarchy, on v2 exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    /// The controllers of the hierarchy this directory is in.
    pub controllers: Vec<String>,
    /// The directory, e.g. `/sys/fs/cgroup/memory/kthw/run-42`.
    pub path: PathBuf,
}

/// A cgroup: its path (as `/proc/PID/cgroup` shows it) and its directories.
#[derive(Debug, Clone)]
pub struct Cgroup {
    mode: CgroupMode,
    path: String,
    dirs: Vec<Dir>,
}

/// A cgroup that is deleted when this value is dropped, even when the code using it
/// returns early with an error or a test panics half-way. Like `docker run --rm`.
#[derive(Debug)]
pub struct CgroupGuard(Option<Cgroup>);

impl Cgroup {
    /// Creates the cgroup `path` (e.g. `kthw/run-42`) and its parents, in every
    /// hierarchy that holds one of our controllers (v1) or in the one tree (v2).
    /// Creating a cgroup that exists already is not an error: it is reused.
    ///
    /// # Errors
    /// Not root, a bad path, or a parent that cannot delegate controllers (v2).
    pub fn create(layout: &CgroupLayout, path: &str) -> Result<Cgroup> {
        let parts = components(path)?;
        let version = version_of(layout.mode);
        let mut dirs = Vec::new();
        match version {
            Version::V2 => {
                let mount = layout.unified().ok_or_else(|| Error::NotFound { path: path.into() })?;
                let wanted: Vec<&str> =
                    V2_CONTROLLERS.into_iter().filter(|c| mount.controllers.iter().any(|m| m == c)).collect();
                let dir = create_v2(&mount.path, &parts, &wanted)?;
                dirs.push(Dir { controllers: mount.controllers.clone(), path: dir });
            }
            Version::V1 => {
                for mount in layout.mounts.iter().filter(|m| m.version == 1) {
                    let ours = mount.controllers.iter().any(|c| V1_CONTROLLERS.contains(&c.as_str()));
                    if !ours || dirs.iter().any(|d: &Dir| d.controllers == mount.controllers) {
                        continue;
                    }
                    let is_cpuset = mount.controllers.iter().any(|c| c == "cpuset");
                    let dir = create_v1(&mount.path, &parts, is_cpuset)?;
                    dirs.push(Dir { controllers: mount.controllers.clone(), path: dir });
                }
            }
        }
        if dirs.is_empty() {
            return Err(Error::ControllerUnavailable {
                controller: "cpu, cpuacct, cpuset, memory, pids or freezer".into(),
                mode: layout.mode.to_string(),
                purpose: "a kthw cgroup".into(),
                fix: "No v1 hierarchy holds any of them: mount them, e.g. `mount -t cgroup -o memory cgroup \
                      /sys/fs/cgroup/memory`, or boot with cgroup v2"
                    .into(),
            });
        }
        tracing::debug!(path, ?dirs, "created cgroup");
        Ok(Cgroup { mode: layout.mode, path: format!("/{}", parts.join("/")), dirs })
    }

    /// Opens an existing cgroup: every hierarchy where `path` exists, whatever its
    /// controllers, so that [`Cgroup::delete`] removes it from all of them.
    ///
    /// # Errors
    /// [`Error::NotFound`] if no hierarchy has it.
    pub fn open(layout: &CgroupLayout, path: &str) -> Result<Cgroup> {
        // A directory such as /sys/fs/cgroup/memory/kthw/lab02 names the same cgroup as
        // /kthw/lab02: drop the mount point in front.
        let mut mounts: Vec<&Path> = layout.mounts.iter().map(|m| m.path.as_path()).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        let path =
            mounts.iter().find_map(|m| Path::new(path).strip_prefix(m).ok().and_then(|p| p.to_str())).unwrap_or(path);
        let parts = components(path)?;
        let dirs: Vec<Dir> = layout
            .mounts
            .iter()
            .map(|m| Dir { controllers: m.controllers.clone(), path: m.path.join(parts.join("/")) })
            .filter(|d| d.path.is_dir())
            .collect();
        if dirs.is_empty() {
            return Err(Error::NotFound { path: path.into() });
        }
        Ok(Cgroup { mode: layout.mode, path: format!("/{}", parts.join("/")), dirs })
    }

    /// A cgroup made of the given directories, for tests that read fixture files.
    pub fn from_dirs(mode: CgroupMode, path: &str, dirs: Vec<Dir>) -> Cgroup {
        Cgroup { mode, path: path.into(), dirs }
    }

    /// Deletes this cgroup when the returned guard is dropped.
    pub fn guard(self) -> CgroupGuard {
        CgroupGuard(Some(self))
    }

    /// The path as `/proc/PID/cgroup` shows it, e.g. `/kthw/run-42`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The machine's cgroup mode.
    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// Which set of files this cgroup has (hybrid machines use v1's).
    pub fn version(&self) -> Version {
        version_of(self.mode)
    }

    /// The directories of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> &[Dir] {
        &self.dirs
    }

    /// The directory that holds `controller`'s files. On v2 that is the one directory
    /// for every controller (CPU usage and the freezer are part of every v2 cgroup).
    pub fn dir_for(&self, controller: &str) -> Option<&Path> {
        match self.version() {
            Version::V2 => self
                .dirs
                .iter()
                .find(|d| matches!(controller, "cpuacct" | "freezer") || d.controllers.iter().any(|c| c == controller)),
            Version::V1 => self.dirs.iter().find(|d| d.controllers.iter().any(|c| c == controller)),
        }
        .map(|d| d.path.as_path())
    }

    /// Like [`Cgroup::dir_for`], but a missing controller is an error that says how to
    /// get it. `purpose` is what the caller wanted to do, e.g. "a memory limit".
    ///
    /// # Errors
    /// [`Error::ControllerUnavailable`].
    pub fn require(&self, controller: &str, purpose: &str) -> Result<&Path> {
        self.dir_for(controller).ok_or_else(|| Error::ControllerUnavailable {
            controller: controller.into(),
            mode: self.mode.to_string(),
            purpose: purpose.into(),
            fix: match self.version() {
                Version::V2 => format!(
                    "Check that `{controller}` is listed in /sys/fs/cgroup/cgroup.controllers; if it is, \
                     enable it for our cgroups with `echo +{controller} > /sys/fs/cgroup/cgroup.subtree_control`"
                ),
                Version::V1 => format!(
                    "Mount its v1 hierarchy: `mkdir -p /sys/fs/cgroup/{controller} && mount -t cgroup -o \
                     {controller} cgroup /sys/fs/cgroup/{controller}`"
                ),
            },
        })
    }

    /// Reads one file of `controller`, trimmed; `None` if it does not exist.
    pub fn read(&self, controller: &str, file: &str) -> Option<String> {
        let dir = self.dir_for(controller)?;
        std::fs::read_to_string(dir.join(file)).ok().map(|s| s.trim().to_string())
    }

    /// Writes `value` to `file` of `controller`. `purpose` goes into the error message.
    ///
    /// # Errors
    /// A missing controller or file, or the kernel refusing the value.
    pub fn write(&self, controller: &str, file: &str, value: &str, purpose: &str) -> Result<()> {
        let path = self.require(controller, purpose)?.join(file);
        if !path.exists() {
            return Err(Error::Unsupported {
                path,
                mode: self.mode.to_string(),
                purpose: purpose.into(),
                fix: "the book's troubleshooting section lists which file each version has".into(),
            });
        }
        write_file(&path, value)
    }

    // ANCHOR: apply
    /// Sets `limits`: the same four limits, written to different files on v1 and v2.
    ///
    /// # Errors
    /// A controller or file this machine lacks, or a value the kernel refuses.
    pub fn apply(&self, limits: &Limits) -> Result<()> {
        let v1 = self.version() == Version::V1;
        if let Some(bytes) = limits.memory {
            if v1 {
                self.set_v1_memory(bytes)?;
            } else {
                self.write("memory", "memory.max", &bytes.to_string(), "a memory limit")?;
                // No swap on top of the limit, so that reaching it means the OOM killer.
                if self.read("memory", "memory.swap.max").is_some() {
                    self.write("memory", "memory.swap.max", "0", "a swap limit")?;
                }
            }
        }
        if let Some(cpu) = limits.cpu {
            if v1 {
                self.write("cpu", "cpu.cfs_period_us", &cpu.period_us.to_string(), "a CPU limit")?;
                self.write("cpu", "cpu.cfs_quota_us", &cpu.quota_us.to_string(), "a CPU limit")?;
            } else {
                let value = format!("{} {}", cpu.quota_us, cpu.period_us);
                self.write("cpu", "cpu.max", &value, "a CPU limit")?;
            }
        }
        if let Some(pids) = limits.pids {
            // The one limit whose file is the same on both versions.
            self.write("pids", "pids.max", &pids.to_string(), "a pids limit")?;
        }
        if let Some(cpus) = &limits.cpuset {
            self.write("cpuset", "cpuset.cpus", cpus, "a cpuset")?;
        }
        Ok(())
    }
    // ANCHOR_END: apply

    /// v1 has two memory limits: memory alone, and memory plus swap (`memsw`, present
    /// when the kernel accounts swap). The second may never be below the first, so the
    /// order of the writes depends on whether the limit grows or shrinks.
    fn set_v1_memory(&self, bytes: u64) -> Result<()> {
        let value = bytes.to_string();
        let memsw = self.read("memory", "memory.memsw.limit_in_bytes").and_then(|s| s.parse::<u64>().ok());
        let mem = ("memory.limit_in_bytes", "a memory limit");
        let swap = ("memory.memsw.limit_in_bytes", "a memory+swap limit");
        let order = match memsw {
            None => vec![mem],
            Some(current) if bytes > current => vec![swap, mem],
            Some(_) => vec![mem, swap],
        };
        for (file, purpose) in order {
            self.write("memory", file, &value, purpose)?;
        }
        Ok(())
    }

    /// Moves process `pid` (all its threads) into this cgroup, in every hierarchy.
    ///
    /// # Errors
    /// No such process, or the kernel refusing the move (see [`write_file`]'s hints).
    pub fn add_process(&self, pid: u32) -> Result<()> {
        for dir in &self.dirs {
            write_file(&dir.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    // ANCHOR: join_files
    /// The `cgroup.procs` files of this cgroup, opened for writing, one per hierarchy.
    /// A child process writes `0` ("myself") to each of them between `fork` and `exec`
    /// (see [`crate::run`]), so the command starts inside the cgroup and has no moment
    /// outside it in which to fork an escapee.
    ///
    /// `cgroup.procs` moves a whole process; v1's `tasks` file moves one thread, which is
    /// how old tools ended up with a process split across two cgroups.
    ///
    /// # Errors
    /// If a file cannot be opened.
    pub fn join_files(&self) -> Result<Vec<File>> {
        self.dirs
            .iter()
            .map(|d| d.path.join("cgroup.procs"))
            .map(|p| OpenOptions::new().write(true).open(&p).map_err(Error::io("open", p)))
            .collect()
    }
    // ANCHOR_END: join_files

    /// The processes in this cgroup and every cgroup below it, in any hierarchy.
    pub fn procs(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .dirs
            .iter()
            .flat_map(|d| subtree(&d.path))
            .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    // ANCHOR: freeze
    /// Stops every process in the cgroup, as `docker pause` does. The processes keep
    /// their memory and open files; they just get no CPU until [`Cgroup::thaw`].
    ///
    /// # Errors
    /// No freezer, or the processes not freezing within 5 seconds.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Lets the processes of a frozen cgroup run again (`docker unpause`).
    ///
    /// # Errors
    /// No freezer, or the kernel not finishing within 5 seconds.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let purpose = if frozen { "freezing" } else { "thawing" };
        match self.version() {
            Version::V1 => self.write("freezer", "freezer.state", if frozen { "FROZEN" } else { "THAWED" }, purpose)?,
            Version::V2 => self.write("freezer", "cgroup.freeze", if frozen { "1" } else { "0" }, purpose)?,
        }
        // Freezing is asynchronous: v1 says FREEZING, v2's cgroup.events says frozen 0,
        // until every process has stopped.
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while self.is_frozen() != Some(frozen) {
            if Instant::now() > deadline {
                return Err(Error::Busy { path: self.require("freezer", purpose)?.into(), pids: self.procs() });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Whether the cgroup is frozen: `None` without a freezer. A cgroup that is still
    /// freezing counts as not frozen.
    pub fn is_frozen(&self) -> Option<bool> {
        match self.version() {
            Version::V1 => self.read("freezer", "freezer.state").map(|s| s == "FROZEN"),
            Version::V2 => {
                let events = self.read("freezer", "cgroup.events")?;
                Some(events.lines().any(|l| l == "frozen 1"))
            }
        }
    }
    // ANCHOR_END: freeze

    // ANCHOR: oom_kills
    /// How many processes the OOM killer killed in this cgroup: v2's `memory.events`
    /// counts it as `oom_kill`; v1's `memory.oom_control` has had the same line since
    /// Linux 4.13. `None` if neither file says.
    pub fn oom_kills(&self) -> Option<u64> {
        let text = match self.version() {
            Version::V2 => self.read("memory", "memory.events")?,
            Version::V1 => self.read("memory", "memory.oom_control")?,
        };
        field(&text, "oom_kill")
    }

    /// v1's fallback on kernels before 4.13: how often usage hit the limit. Hitting it
    /// is not proof of a kill (the kernel may reclaim cache instead), so callers also
    /// look at how the process died.
    pub fn memory_failcnt(&self) -> Option<u64> {
        match self.version() {
            Version::V1 => self.read("memory", "memory.failcnt")?.parse().ok(),
            Version::V2 => None,
        }
    }
    // ANCHOR_END: oom_kills

    // ANCHOR: delete
    /// Deletes this cgroup and every cgroup below it, in every hierarchy. A cgroup with
    /// processes cannot be removed (`rmdir` says `EBUSY`), so first every process is
    /// killed, then the directories are removed deepest first. Their files need no
    /// removing: the kernel makes them and takes them away with the directory.
    ///
    /// # Errors
    /// [`Error::Busy`] if processes outlive SIGKILL for 5 seconds.
    pub fn delete(&self) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let pids = self.procs();
            if pids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Busy { path: self.dirs[0].path.clone(), pids });
            }
            self.kill_all(&pids);
            std::thread::sleep(Duration::from_millis(10));
        }
        for dir in &self.dirs {
            // Deepest first: a cgroup with child cgroups is busy too.
            let mut tree = subtree(&dir.path);
            tree.reverse();
            for d in tree {
                remove_dir(&d, deadline)?;
            }
        }
        Ok(())
    }

    /// Kills `pids` and whatever else is in the cgroup. v2 (Linux 5.14+) has
    /// `cgroup.kill`, which kills every process at once, so a fork loop cannot outrun it.
    /// Elsewhere we send SIGKILL one by one, after thawing every frozen cgroup below:
    /// a process frozen by the v1 freezer does not die until it is thawed.
    fn kill_all(&self, pids: &[u32]) {
        if self.version() == Version::V2 {
            if let Some(dir) = self.dirs.first().map(|d| d.path.join("cgroup.kill")).filter(|p| p.exists()) {
                if write_file(&dir, "1").is_ok() {
                    return;
                }
            }
        }
        self.thaw_subtree();
        for &pid in pids {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            }
        }
    }

    /// Thaws this cgroup and every cgroup below it. Each level has its own freezer
    /// state: thawing a parent does not thaw a child that was frozen by itself.
    fn thaw_subtree(&self) {
        let Some(dir) = self.dir_for("freezer") else { return };
        let (file, thawed) = match self.version() {
            Version::V1 => ("freezer.state", "THAWED"),
            Version::V2 => ("cgroup.freeze", "0"),
        };
        for d in subtree(dir) {
            let state = std::fs::read_to_string(d.join(file)).unwrap_or_default();
            if !state.trim().is_empty() && state.trim() != thawed {
                let _ = write_file(&d.join(file), thawed);
            }
        }
    }
    // ANCHOR_END: delete
}

impl CgroupGuard {
    /// The cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        self.0.as_ref().expect("a guard holds its cgroup until dropped")
    }

    /// Deletes the cgroup now and reports errors, instead of at drop.
    ///
    /// # Errors
    /// As [`Cgroup::delete`].
    pub fn delete(mut self) -> Result<()> {
        match self.0.take() {
            Some(cg) => cg.delete(),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for CgroupGuard {
    type Target = Cgroup;
    fn deref(&self) -> &Cgroup {
        self.cgroup()
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take() {
            if let Err(err) = cg.delete() {
                tracing::warn!(path = cg.path(), %err, "could not delete cgroup");
            }
        }
    }
}

fn version_of(mode: CgroupMode) -> Version {
    match mode {
        CgroupMode::V2 => Version::V2,
        CgroupMode::V1 | CgroupMode::Hybrid => Version::V1,
    }
}

/// Splits `kthw/run-42` (or `/kthw/run-42`) into its parts, refusing `..` and empty paths
/// so that a path given by a user cannot point outside the cgroup file systems.
fn components(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(Error::BadLimit {
            flag: "cgroup path",
            value: path.into(),
            why: "expected a path below a hierarchy's root such as /kthw/lab02, without `..`".into(),
        });
    }
    Ok(parts)
}

// ANCHOR: create_v1
/// Creates `parts` below a v1 hierarchy's mount. A new cpuset cgroup starts with empty
/// `cpuset.cpus` and `cpuset.mems`, and a process cannot join it (`ENOSPC`) until both
/// are set, so we copy them from the parent at every level.
fn create_v1(mount: &Path, parts: &[&str], is_cpuset: bool) -> Result<PathBuf> {
    let mut dir = mount.to_path_buf();
    for part in parts {
        let parent = dir.clone();
        dir.push(part);
        make_dir(&dir)?;
        if is_cpuset {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
                if current.trim().is_empty() {
                    let from_parent =
                        std::fs::read_to_string(parent.join(file)).map_err(Error::io("read", parent.join(file)))?;
                    write_file(&dir.join(file), from_parent.trim())?;
                }
            }
        }
    }
    Ok(dir)
}
// ANCHOR_END: create_v1

// ANCHOR: create_v2
/// Creates `parts` below the v2 mount. A v2 cgroup only gets the controllers its
/// parent lists in `cgroup.subtree_control`, so each level enables `controllers` for
/// the next before creating it.
///
/// The "no internal processes" rule: a cgroup that enables controllers for its children
/// may not hold processes itself (the root is exempt). Our parents (`/kthw`) never hold
/// any; processes only go into the leaves.
fn create_v2(mount: &Path, parts: &[&str], controllers: &[&str]) -> Result<PathBuf> {
    let mut dir = mount.to_path_buf();
    for part in parts {
        let control = dir.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&control).map_err(Error::io("read", &control))?;
        for c in controllers {
            if !enabled.split_whitespace().any(|e| e == *c) {
                write_file(&control, &format!("+{c}"))?;
            }
        }
        dir.push(part);
        make_dir(&dir)?;
    }
    Ok(dir)
}
// ANCHOR_END: create_v2

fn make_dir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create the cgroup", dir)(e)),
    }
}

/// `dir` and every directory below it, parents before children.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            let mut children: Vec<PathBuf> =
                entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    out.retain(|d| d.is_dir());
    out
}

/// `rmdir`, retried while the kernel still says `EBUSY`: processes that were just
/// killed leave their cgroup a moment after they die.
fn remove_dir(dir: &Path, deadline: Instant) -> Result<()> {
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::io("remove the cgroup", dir)(e)),
        }
    }
}

// ANCHOR: write_file
/// Writes one value to a cgroup file, in one `write(2)`: the kernel parses each write
/// on its own. Its errno becomes a hint about the usual cause.
///
/// # Errors
/// [`Error::Write`] with the hint, or [`Error::NotRoot`].
pub fn write_file(path: &Path, value: &str) -> Result<()> {
    let result = OpenOptions::new().write(true).open(path).and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied && !kthw_lab::host::is_root() {
            return Error::io("write", path)(source);
        }
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let hint = match (source.raw_os_error().unwrap_or(0), file) {
            (libc::ENOSPC, "cgroup.procs" | "tasks") => {
                "On v1 a cpuset cgroup needs cpuset.cpus and cpuset.mems set before a process can join"
            }
            (libc::EBUSY, "cgroup.procs") => {
                "On v2 a process may only join a leaf cgroup, or one that enables no controllers \
                 for its children (the no-internal-processes rule)"
            }
            (libc::EBUSY, "cgroup.subtree_control") => {
                "This cgroup holds processes, and the no-internal-processes rule forbids enabling \
                 controllers for its children; move the processes into a child cgroup first"
            }
            (libc::ENOENT, "cgroup.subtree_control") | (libc::EINVAL, "cgroup.subtree_control") => {
                "The controller is not in this cgroup's cgroup.controllers: enable it in the parent's \
                 cgroup.subtree_control first, or it is bound to a v1 hierarchy (hybrid mode)"
            }
            (libc::ESRCH, _) => "No such process (it has exited)",
            (libc::EINVAL | libc::ERANGE, "cpuset.cpus") => {
                "Those CPUs do not exist or are not in the parent's cpuset (see /sys/devices/system/cpu/online)"
            }
            (libc::EINVAL, "cpu.cfs_quota_us" | "cpu.max") => {
                "The quota is larger than a parent cgroup's quota allows, or smaller than 1 ms"
            }
            (libc::EBUSY, "memory.limit_in_bytes" | "memory.max") => {
                "The processes use more memory than the new limit and it cannot be reclaimed"
            }
            (libc::EINVAL, _) => "The kernel rejected the value",
            _ => "",
        };
        let hint = if hint.is_empty() { String::new() } else { format!(". {hint}") };
        Error::Write { path: path.into(), value: value.into(), hint, cause: source }
    })
}
// ANCHOR_END: write_file

// ANCHOR: process_cgroup
/// The cgroup of process `pid` that holds `controller`, read from `/proc/PID/cgroup`,
/// whose lines are `ID:CONTROLLERS:PATH`. On v1 there is one line per hierarchy
/// (`4:memory:/kthw/lab02`); on v2 just one, with ID 0 and no controllers (`0::/kthw/lab02`).
pub fn process_cgroup(pid: u32, version: Version, controller: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup_line(&text, version, controller)
}

fn cgroup_line(text: &str, version: Version, controller: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match version {
            Version::V2 => id == "0" && controllers.is_empty(),
            Version::V1 => controllers.split(',').any(|c| c == controller),
        };
        matches.then(|| path.to_string())
    })
}
// ANCHOR_END: process_cgroup

/// The number after `name` in a "key value" file such as `memory.events` or `cpu.stat`.
pub fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paths are written as in /proc/PID/cgroup, and may not climb out with `..`.
    #[test]
    fn paths_are_checked() {
        assert_eq!(components("/kthw/lab02").unwrap(), ["kthw", "lab02"]);
        assert_eq!(components("kthw//run-1/").unwrap(), ["kthw", "run-1"]);
        assert!(components("/").is_err());
        assert!(components("kthw/../../etc").is_err());
    }

    // /proc/PID/cgroup is read per hierarchy on v1 and from the one line on v2.
    #[test]
    fn process_cgroups_are_read_per_version() {
        let hybrid = "9:name=systemd:/\n4:memory:/kthw/lab02\n2:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(cgroup_line(hybrid, Version::V1, "memory").as_deref(), Some("/kthw/lab02"));
        assert_eq!(cgroup_line(hybrid, Version::V1, "cpuacct").as_deref(), Some("/x"));
        assert_eq!(cgroup_line(hybrid, Version::V1, "pids"), None);
        assert_eq!(cgroup_line("0::/kthw/lab02\n", Version::V2, "memory").as_deref(), Some("/kthw/lab02"));
    }

    // "key value" files are read by key, whatever the order of the lines.
    #[test]
    fn fields_are_found_by_name() {
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(field(events, "oom_kill"), Some(1));
        assert_eq!(field(events, "oom"), Some(1));
        assert_eq!(field(events, "nope"), None);
    }

    // On v2 CPU usage and the freezer live in the one directory; on v1 each controller
    // is looked up in its own hierarchy, and a missing one is an error with a fix.
    #[test]
    fn controllers_map_to_directories() {
        let v2 = Cgroup::from_dirs(
            CgroupMode::V2,
            "/k/x",
            vec![Dir { controllers: vec!["memory".into(), "cpu".into()], path: "/cg/k/x".into() }],
        );
        assert_eq!(v2.dir_for("freezer"), Some(Path::new("/cg/k/x")));
        assert_eq!(v2.dir_for("cpuacct"), Some(Path::new("/cg/k/x")));
        assert!(v2.dir_for("pids").is_none());
        let v1 = Cgroup::from_dirs(
            CgroupMode::Hybrid,
            "/k/x",
            vec![
                Dir { controllers: vec!["memory".into()], path: "/cg/memory/k/x".into() },
                Dir { controllers: vec!["cpu".into(), "cpuacct".into()], path: "/cg/cpu,cpuacct/k/x".into() },
            ],
        );
        assert_eq!(v1.version(), Version::V1);
        assert_eq!(v1.dir_for("cpuacct"), Some(Path::new("/cg/cpu,cpuacct/k/x")));
        let err = v1.require("pids", "a pids limit").unwrap_err().to_string();
        assert!(err.contains("pids controller is not available on this hybrid machine"), "{err}");
        assert!(err.contains("mount -t cgroup -o pids"), "{err}");
    }
}
