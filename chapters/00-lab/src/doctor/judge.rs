//! The doctor's rules: facts in, checks out. No I/O here, so every rule is tested on
//! made-up machines (see the tests at the bottom and their snapshots).

use super::probe::{Busybox, Facts};
use super::{Check, Status};
use crate::host::{CgroupMode, Namespace};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

// ANCHOR: judge
/// Turns facts into checks, in the order the book introduces what they are for.
pub fn judge(facts: &Facts) -> Vec<Check> {
    let mut checks = vec![kernel(facts), root(facts)];
    checks.extend(facts.namespaces.iter().map(|(ns, result)| namespace(*ns, result)));
    checks.push(cgroup_layout(facts));
    checks.extend(facts.controllers.iter().map(|(c, result)| controller(c, result)));
    checks.push(overlayfs(facts));
    checks.push(iptables(facts));
    checks.push(ip_forward(facts));
    checks.push(busybox(facts));
    checks.push(disk(facts));
    checks.push(memory(facts));
    checks
}
// ANCHOR_END: judge

fn kernel(facts: &Facts) -> Check {
    match &facts.kernel {
        Ok(k) if k.version >= (5, 10) => Check::ok("kernel", format!("{} (5.10 or newer)", k.release)),
        Ok(k) if k.version >= (4, 18) => Check::warn(
            "kernel",
            format!(
                "{} is older than 5.10: time namespaces, the cgroup v2 freezer and overlayfs in user namespaces are missing",
                k.release
            ),
            "use a current distribution (Debian 12 has 6.1), or the lab VMs",
        ),
        Ok(k) => Check::fail(
            "kernel",
            format!("{} is older than 4.18, which the book's overlayfs and cgroup code need", k.release),
            "use a current distribution (Debian 12 has 6.1), or the lab VMs",
        ),
        Err(e) => Check::fail("kernel", format!("cannot tell the kernel version: {e}"), "report this as a bug"),
    }
}

fn root(facts: &Facts) -> Check {
    if facts.euid == 0 {
        Check::ok("root", "running as uid 0")
    } else {
        Check::fail(
            "root",
            format!("running as uid {}, not root: namespaces, cgroups, mounts and iptables need root", facts.euid),
            "run as root: `sudo kthw doctor` (inside a user namespace you are root only in name)",
        )
    }
}

fn namespace(ns: Namespace, result: &Result<(), String>) -> Check {
    let name = format!("namespace {ns}");
    match result {
        Ok(()) => Check::ok(name, format!("a new {ns} namespace can be created")),
        Err(e) => {
            let fix = match ns {
                Namespace::User => {
                    "run as root; if it still fails, check `sysctl user.max_user_namespaces` (must be > 0)"
                }
                Namespace::Time => "time namespaces need Linux 5.6; only chapter 1 shows them",
                _ => "run as root, on the host or in the lab VM (not inside an unprivileged container)",
            };
            // Time and cgroup namespaces are shown, not relied on: a warning is enough.
            if matches!(ns, Namespace::Time | Namespace::Cgroup) {
                Check::warn(name, format!("cannot create a new {ns} namespace: {e}"), fix)
            } else {
                Check::fail(name, format!("cannot create a new {ns} namespace: {e}"), fix)
            }
        }
    }
}

fn cgroup_layout(facts: &Facts) -> Check {
    match &facts.cgroups {
        Ok(layout) => {
            let v1 = layout.mounts.iter().filter(|m| m.version == 1).count();
            let message = match (layout.mode, layout.unified()) {
                (CgroupMode::V2, Some(u)) => format!("v2: one unified hierarchy at {}", u.path.display()),
                (CgroupMode::Hybrid, Some(u)) => format!(
                    "hybrid: {v1} v1 hierarchies, and cgroup2 at {} with [{}]",
                    u.path.display(),
                    u.controllers.join(" ")
                ),
                _ => format!("v1: {v1} hierarchies, no cgroup2 mount"),
            };
            Check::ok("cgroup layout", message)
        }
        Err(e) => Check::fail("cgroup layout", e.clone(), "mount cgroup2 at /sys/fs/cgroup, or use the lab VMs"),
    }
}

fn controller(name: &str, result: &Result<std::path::PathBuf, String>) -> Check {
    let check = format!("cgroup {name}");
    match result {
        Ok(mount) => Check::ok(check, format!("usable in {}", mount.display())),
        Err(e) => Check::fail(
            check,
            e.clone(),
            format!("run as root; on v2, the {name} controller must be listed in /sys/fs/cgroup/cgroup.controllers"),
        ),
    }
}

fn overlayfs(facts: &Facts) -> Check {
    match &facts.overlayfs {
        Ok(()) => Check::ok("overlayfs", "an overlay mount works"),
        Err(e) => Check::fail(
            "overlayfs",
            format!("cannot mount overlay: {e}"),
            "run as root and load the module: `modprobe overlay`",
        ),
    }
}

fn iptables(facts: &Facts) -> Check {
    match (&facts.iptables_version, &facts.iptables_works) {
        (Some(v), Ok(())) => Check::ok("iptables", format!("{v} works")),
        (Some(v), Err(e)) => Check::fail(
            "iptables",
            format!("{v} is installed but does not work: {e}"),
            "run as root; if it still fails, load the kernel modules: `modprobe iptable_nat`",
        ),
        (None, _) if facts.nft => Check::fail(
            "iptables",
            "iptables is missing (nft is installed, but the book's chapters 4 and 10 speak iptables, as kube-proxy does)",
            "apt-get install iptables",
        ),
        (None, _) => Check::fail("iptables", "neither iptables nor nft is installed", "apt-get install iptables"),
    }
}

fn ip_forward(facts: &Facts) -> Check {
    match facts.ip_forward {
        Some(true) => Check::ok("ip forwarding", "net.ipv4.ip_forward = 1"),
        Some(false) => Check::warn(
            "ip forwarding",
            "net.ipv4.ip_forward = 0: containers will not reach anything beyond their bridge",
            "sysctl -w net.ipv4.ip_forward=1",
        ),
        None => {
            Check::warn("ip forwarding", "cannot read /proc/sys/net/ipv4/ip_forward", "check that /proc is mounted")
        }
    }
}

fn busybox(facts: &Facts) -> Check {
    match &facts.busybox {
        Busybox::Static(p) => Check::ok("busybox-static", format!("{} is statically linked", p.display())),
        Busybox::Dynamic(p) => Check::fail(
            "busybox-static",
            format!("{} needs shared libraries, so it cannot run in an empty root filesystem", p.display()),
            "apt-get install busybox-static",
        ),
        Busybox::Missing => Check::fail(
            "busybox-static",
            "busybox is not installed; the book's first images are made of it",
            "apt-get install busybox-static",
        ),
    }
}

fn disk(facts: &Facts) -> Check {
    match &facts.disk_free {
        Ok((dir, free)) if *free >= 5 * GIB => Check::ok("disk", format!("{} free at {}", size(*free), dir.display())),
        Ok((dir, free)) if *free >= GIB => Check::warn(
            "disk",
            format!("only {} free at {}; images and VMs need 5 GiB", size(*free), dir.display()),
            "free some space, or point KTHW_HOME at a bigger disk",
        ),
        Ok((dir, free)) => Check::fail(
            "disk",
            format!("only {} free at {}", size(*free), dir.display()),
            "free some space, or point KTHW_HOME at a bigger disk",
        ),
        Err(e) => Check::warn("disk", format!("cannot measure free space: {e}"), "check the state directory"),
    }
}

fn memory(facts: &Facts) -> Check {
    match facts.mem_available {
        Some(m) if m >= GIB => Check::ok("memory", format!("{} available", size(m))),
        Some(m) if m >= 256 * MIB => Check::warn(
            "memory",
            format!("only {} available; the later chapters run several servers", size(m)),
            "close other programs, or give the VM more memory (KTHW_VM_MEMORY)",
        ),
        Some(m) => Check::fail("memory", format!("only {} available", size(m)), "free memory or add more"),
        None => Check::warn("memory", "cannot read MemAvailable from /proc/meminfo", "check that /proc is mounted"),
    }
}

/// Bytes as GiB or MiB with one decimal, as `df -h` would.
fn size(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// How many checks have each status (ok, warn, fail).
pub fn counts(checks: &[Check]) -> (usize, usize, usize) {
    let n = |s| checks.iter().filter(|c| c.status == s).count();
    (n(Status::Ok), n(Status::Warn), n(Status::Fail))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::doctor::probe::CONTROLLERS;
    use crate::doctor::{render, report};
    use crate::host::{CgroupLayout, Kernel};

    /// The machine the book was written on: hybrid cgroups, root, everything present.
    fn hybrid_host() -> Facts {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
32 25 0:28 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset
33 25 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 25 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 25 0:31 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
";
        let layout = CgroupLayout::from_mountinfo(mountinfo, |_| Some("hugetlb".into())).unwrap();
        Facts {
            host: "lab".into(),
            kernel: Kernel::parse("6.1.0-50-amd64").map_err(|e| e.to_string()),
            euid: 0,
            namespaces: Namespace::ALL.iter().map(|ns| (*ns, Ok(()))).collect(),
            controllers: CONTROLLERS
                .iter()
                .map(|c| (c.to_string(), Ok(PathBuf::from(format!("/sys/fs/cgroup/{c}")))))
                .collect(),
            cgroups: Ok(layout),
            overlayfs: Ok(()),
            iptables_version: Some("iptables v1.8.9 (nf_tables)".into()),
            iptables_works: Ok(()),
            nft: false,
            ip_forward: Some(true),
            busybox: Busybox::Static("/bin/busybox".into()),
            disk_free: Ok(("/var/lib".into(), 80 * GIB)),
            mem_available: Some(20 * GIB),
        }
    }

    /// The same machine seen from `unshare --user kthw doctor`: root in name only.
    fn unprivileged() -> Facts {
        let eperm = || Err("EPERM: Operation not permitted".to_string());
        Facts {
            euid: 65534,
            namespaces: Namespace::ALL.iter().map(|ns| (*ns, eperm())).collect(),
            controllers: CONTROLLERS
                .iter()
                .map(|c| {
                    (
                        c.to_string(),
                        Err(format!("cannot create /sys/fs/cgroup/{c}/kthw-doctor-1: Permission denied (os error 13)")),
                    )
                })
                .collect(),
            iptables_works: Err("`iptables -w 5 -t nat -S` failed: Permission denied (you must be root)".into()),
            overlayfs: eperm(),
            ..hybrid_host()
        }
    }

    // A fully equipped hybrid host passes with no warning.
    #[test]
    fn hybrid_host_passes() {
        let report = report(&hybrid_host());
        assert!(report.passed);
        assert_eq!(counts(&report.checks), (report.checks.len(), 0, 0));
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("doctor_hybrid_host", render(&report));
        });
    }

    // Without privileges, root, cgroups, overlayfs and iptables fail, each with a reason and a fix.
    #[test]
    fn unprivileged_user_fails_with_reasons() {
        let report = report(&unprivileged());
        assert!(!report.passed);
        let failed: Vec<&str> =
            report.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.name.as_str()).collect();
        assert!(failed.contains(&"root") && failed.contains(&"overlayfs") && failed.contains(&"iptables"));
        assert!(failed.contains(&"cgroup memory"));
        assert!(report.checks.iter().filter(|c| c.status != Status::Ok).all(|c| c.fix.is_some()));
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("doctor_unprivileged", render(&report));
        });
    }

    // IP forwarding off is a warning, not a failure: chapters 0 to 3 do not need it.
    #[test]
    fn ip_forwarding_off_warns() {
        let facts = Facts { ip_forward: Some(false), ..hybrid_host() };
        let report = report(&facts);
        assert!(report.passed);
        let check = report.checks.iter().find(|c| c.name == "ip forwarding").unwrap();
        assert_eq!(check.status, Status::Warn);
        assert_eq!(check.fix.as_deref(), Some("sysctl -w net.ipv4.ip_forward=1"));
    }

    // A dynamically linked busybox fails: it cannot run inside an empty rootfs.
    #[test]
    fn dynamic_busybox_fails() {
        let facts = Facts { busybox: Busybox::Dynamic("/bin/busybox".into()), ..hybrid_host() };
        let check = judge(&facts).into_iter().find(|c| c.name == "busybox-static").unwrap();
        assert_eq!(check.status, Status::Fail);
        assert!(check.message.contains("shared libraries"));
    }

    // A missing time namespace only warns; a missing net namespace fails.
    #[test]
    fn optional_namespaces_warn_core_ones_fail() {
        let mut facts = hybrid_host();
        for (ns, result) in &mut facts.namespaces {
            if matches!(ns, Namespace::Time | Namespace::Net) {
                *result = Err("EINVAL: Invalid argument".into());
            }
        }
        let checks = judge(&facts);
        let status = |n: &str| checks.iter().find(|c| c.name == n).unwrap().status;
        assert_eq!(status("namespace time"), Status::Warn);
        assert_eq!(status("namespace net"), Status::Fail);
    }

    // On a v2 machine the layout line says so.
    #[test]
    fn v2_layout_is_reported() {
        let v2 = CgroupLayout::from_mountinfo("1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", |_| {
            Some("cpuset cpu io memory hugetlb pids".into())
        })
        .unwrap();
        let facts = Facts { cgroups: Ok(v2), ..hybrid_host() };
        let check = judge(&facts).into_iter().find(|c| c.name == "cgroup layout").unwrap();
        assert_eq!(check.message, "v2: one unified hierarchy at /sys/fs/cgroup");
    }

    // Old kernels warn or fail with the reason.
    #[test]
    fn old_kernels_are_judged() {
        let with = |r: &str| Facts { kernel: Kernel::parse(r).map_err(|e| e.to_string()), ..hybrid_host() };
        assert_eq!(kernel(&with("5.4.0")).status, Status::Warn);
        assert_eq!(kernel(&with("4.9.0")).status, Status::Fail);
    }
}
