//! `kthw reset`: remove everything kthw made on this machine, so a learner can start a
//! chapter again from a clean slate.
//!
//! `kubeadm reset` does this for a Kubernetes node: it stops the kubelet, removes
//! containers, unmounts `/var/lib/kubelet`, deletes `/etc/kubernetes` and tells you to
//! flush iptables and remove CNI config yourself. `docker system prune` removes unused
//! objects but never touches the host's network or mounts. Ours removes all of what one
//! kthw instance made, and only that, found by the instance's name (see [`crate::state`]):
//!
//! 1. processes in our cgroups are killed, then the cgroups removed, deepest first,
//!    in every hierarchy;
//! 2. mounts under our state and run directories are detached, deepest first;
//! 3. network namespaces, interfaces (bridges, veths) and iptables chains whose names
//!    start with the instance name are deleted, with the rules that jump to them;
//! 4. the state and run directories are removed — but only if no mount is left under
//!    them, so a bind mount of a host folder can never have its contents deleted.
//!
//! Every step goes on after an error and reports it: a reset that stops half-way
//! leaves the learner worse off than one that does all it can.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host::{CgroupLayout, which};
use crate::{Error, Paths, Result};

/// What a reset would remove, found before anything is touched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Our cgroups, deepest first.
    pub cgroups: Vec<PathBuf>,
    /// Mount points under our directories, deepest first.
    pub mounts: Vec<PathBuf>,
    /// Files under `/run/netns` named after the instance.
    pub netns: Vec<String>,
    /// Network interfaces named after the instance.
    pub links: Vec<String>,
    /// `(table, chain)` for every iptables chain of ours.
    pub chains: Vec<(String, String)>,
    /// The state and run directories, if they exist.
    pub dirs: Vec<PathBuf>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

/// The tables whose chains we look at.
const TABLES: [&str; 3] = ["filter", "nat", "mangle"];

/// Finds everything of `paths.instance` on this machine.
///
/// # Errors
/// Fails only if `/proc/self/mountinfo` cannot be read.
pub fn plan(paths: &Paths) -> Result<Plan> {
    let mut plan = Plan::default();
    if let Ok(layout) = CgroupLayout::detect() {
        for mount in &layout.mounts {
            let root = mount.path.join(paths.cgroup_root());
            if root.is_dir() {
                let mut found = Vec::new();
                walk_dirs(&root, &mut found);
                plan.cgroups.extend(found);
            }
        }
    }
    plan.cgroups.sort_by_key(|p| std::cmp::Reverse(p.components().count()));

    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(Error::io("read", "/proc/self/mountinfo"))?;
    plan.mounts = mounts_under(&mountinfo, &[&paths.state, &paths.run]);

    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        plan.netns = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&paths.instance))
            .collect();
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        plan.links = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&paths.instance))
            .collect();
        plan.links.sort();
    }
    if which("iptables").is_some() {
        let prefix = paths.chain("");
        for table in TABLES {
            let rules = run("iptables", &["-w", "5", "-t", table, "-S"]).unwrap_or_default();
            for line in rules.lines() {
                if let Some(chain) = line.strip_prefix("-N ").filter(|c| c.starts_with(&prefix)) {
                    plan.chains.push((table.to_string(), chain.to_string()));
                }
            }
        }
    }
    plan.dirs = [&paths.state, &paths.run].into_iter().filter(|d| d.exists()).cloned().collect();
    Ok(plan)
}

/// Carries out a plan. Returns one line per thing that could not be removed.
pub fn apply(plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    for cgroup in &plan.cgroups {
        if let Err(e) = remove_cgroup(cgroup) {
            problems.push(e);
        }
    }
    for mount in &plan.mounts {
        if let Err(e) = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH) {
            problems.push(format!("cannot unmount {}: {e}", mount.display()));
        }
    }
    for ns in &plan.netns {
        if let Err(e) = run("ip", &["netns", "delete", ns]) {
            problems.push(e.to_string());
        }
    }
    for link in &plan.links {
        // Deleting one end of a veth pair deletes the other: it may be gone already.
        if Path::new("/sys/class/net").join(link).exists() {
            if let Err(e) = run("ip", &["link", "delete", link]) {
                problems.push(e.to_string());
            }
        }
    }
    problems.extend(remove_chains(&plan.chains));
    for dir in &plan.dirs {
        // Never delete through a mount that is still there: it may be a host folder.
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let left = mounts_under(&text, &[dir]);
        if !left.is_empty() {
            problems.push(format!(
                "not removing {}: {} is still mounted under it (unmount it, then run `kthw reset` again)",
                dir.display(),
                left[0].display()
            ));
        } else if let Err(e) = std::fs::remove_dir_all(dir) {
            problems.push(format!("cannot remove {}: {e}", dir.display()));
        }
    }
    problems
}

/// Lists every directory under `root` (itself included).
fn walk_dirs(root: &Path, out: &mut Vec<PathBuf>) {
    out.push(root.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk_dirs(&entry.path(), out);
            }
        }
    }
}

/// Mount points under any of `dirs`, deepest first.
fn mounts_under(mountinfo: &str, dirs: &[&PathBuf]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| dirs.iter().any(|d| m.starts_with(d)))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Kills what runs in a cgroup and removes it. A frozen cgroup is thawed first, or its
/// processes could never act on SIGKILL.
fn remove_cgroup(cgroup: &Path) -> std::result::Result<(), String> {
    let _ = std::fs::write(cgroup.join("cgroup.freeze"), "0"); // v2
    let _ = std::fs::write(cgroup.join("freezer.state"), "THAWED"); // v1
    for _ in 0..50 {
        let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A cgroup whose last process just died may stay busy for a moment.
    let mut last = None;
    for _ in 0..50 {
        match std::fs::remove_dir(cgroup) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("cannot remove cgroup {}: {}", cgroup.display(), last.map(|e| e.to_string()).unwrap_or_default()))
}

/// Deletes our chains: first every rule (in any chain) that jumps to one of them, then
/// the chains' own rules, then the chains.
fn remove_chains(chains: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for table in TABLES {
        let ours: Vec<&str> = chains.iter().filter(|(t, _)| t == table).map(|(_, c)| c.as_str()).collect();
        if ours.is_empty() {
            continue;
        }
        let rules = run("iptables", &["-w", "5", "-t", table, "-S"]).unwrap_or_default();
        for rule in rules.lines().filter_map(|l| l.strip_prefix("-A ")) {
            let jumps_to_ours =
                ours.iter().any(|c| rule.ends_with(&format!("-j {c}")) || rule.contains(&format!("-j {c} ")));
            if jumps_to_ours {
                let mut args = vec!["-w", "5", "-t", table, "-D"];
                args.extend(rule.split_whitespace());
                if let Err(e) = run("iptables", &args) {
                    problems.push(e.to_string());
                }
            }
        }
        for action in ["-F", "-X"] {
            for chain in &ours {
                if let Err(e) = run("iptables", &["-w", "5", "-t", table, action, chain]) {
                    problems.push(e.to_string());
                }
            }
        }
    }
    problems
}

/// Runs a command and returns its standard output.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::Command { command: command.clone(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command { command, detail: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only mounts under our directories are ours, and the deepest come first.
    #[test]
    fn mounts_under_our_dirs_deepest_first() {
        let mountinfo = "\
1 0 0:1 / / rw - ext4 /dev/vda rw
2 1 0:2 / /var/lib/kthw/containers/a/rootfs rw - overlay overlay rw
3 2 0:3 / /var/lib/kthw/containers/a/rootfs/proc rw - proc proc rw
4 1 0:4 / /var/lib/kthwx rw - tmpfs tmpfs rw
5 1 0:5 / /run/kthw/netns/x rw - nsfs nsfs rw
";
        let state = PathBuf::from("/var/lib/kthw");
        let run = PathBuf::from("/run/kthw");
        let found = mounts_under(mountinfo, &[&state, &run]);
        assert_eq!(
            found,
            [
                PathBuf::from("/var/lib/kthw/containers/a/rootfs/proc"),
                PathBuf::from("/var/lib/kthw/containers/a/rootfs"),
                PathBuf::from("/run/kthw/netns/x"),
            ]
        );
    }
}
