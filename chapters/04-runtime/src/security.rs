//! What the container's process may do: its user and groups, its capabilities,
//! `no_new_privs` and its rlimits.
//!
//! Root in a container is root: uid 0 on the host (we have no user namespace). What makes
//! it less than the host's root is the **capabilities** it keeps. Linux splits root's
//! power into about 40 capabilities, and each process has five sets of them:
//!
//! - *bounding*: the most it can ever get, even by running a setuid or file-capability
//!   program; dropped one by one with `prctl(PR_CAPBSET_DROP)` and never regained;
//! - *permitted*: what it has; *effective*: what the kernel checks now;
//! - *inheritable* and *ambient*: what survives `execve` for a program without file
//!   capabilities. For uid 0, `execve` gives every capability in the bounding set anyway,
//!   which is why the bounding set is what keeps container root in check.
//!
//! Order matters, and is runc's (`libcontainer/init_linux.go`, `finalizeNamespace`):
//! drop the bounding set while we still have `CAP_SETPCAP`; set `PR_SET_KEEPCAPS` so the
//! permitted set survives the change of uid; change gids, groups and uid; then set the
//! effective, permitted and inheritable sets with `capset` and raise the ambient ones.
//! `no_new_privs` then makes sure no `execve` (of a setuid binary, say) ever adds any.
//!
//! Everything here runs in the container's init between `clone` and `execve`, so it
//! uses only system calls, on values [`Security::new`] prepared before the `clone`.
//!
//! What runc does differently: it uses the `capability` Go package (a wrapper around
//! the same `capset`/`prctl` calls), also applies a seccomp filter, AppArmor and SELinux
//! labels, and supports `process.user.username` lookups.

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, PosixRlimitType, Spec};

use crate::{Error, Result};

/// The capabilities by number, as `<linux/capability.h>` numbers them.
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A set of capabilities as the kernel stores it: bit N for capability N.
pub type CapSet = u64;

/// The bits of named capabilities (`CAP_CHOWN`, ...).
///
/// # Errors
/// A name that is not a capability.
pub fn cap_bits<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<CapSet> {
    let mut bits = 0;
    for name in names {
        let n = CAPABILITIES.iter().position(|c| *c == name).ok_or_else(|| {
            Error::bad(
                "config.json: process.capabilities",
                format!("{name:?} is not a capability (CAP_CHOWN, CAP_KILL, ...)"),
            )
        })?;
        bits |= 1 << n;
    }
    Ok(bits)
}

/// The names of the capabilities in `bits`, lowest first.
pub fn cap_names(bits: CapSet) -> Vec<&'static str> {
    CAPABILITIES.iter().enumerate().filter(|(n, _)| bits & (1 << n) != 0).map(|(_, c)| *c).collect()
}

fn oci_bits(set: &Option<Capabilities>) -> Result<CapSet> {
    let names: Vec<String> = set
        .iter()
        .flatten()
        .map(|c| serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())
        .collect();
    cap_bits(names.iter().map(String::as_str))
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// One rlimit, ready for `setrlimit`.
#[derive(Debug, Clone, Copy)]
pub struct Rlimit {
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// Everything [`apply`] needs, computed before `clone`.
#[derive(Debug, Clone)]
pub struct Security {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub umask: u32,
    pub bounding: CapSet,
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
    pub ambient: CapSet,
    pub last_cap: u32,
    pub no_new_privs: bool,
    pub rlimits: Vec<Rlimit>,
}

fn rlimit_resource(t: PosixRlimitType) -> i32 {
    use PosixRlimitType::*;
    (match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as i32
}

/// Refuses process fields we cannot honour.
///
/// # Errors
/// A user name without a numeric uid, a bad capability name, an rlimit listed twice.
pub fn check(spec: &Spec) -> Result<()> {
    Security::new(spec).map(drop)
}

impl Security {
    /// The process's security settings from the spec.
    ///
    /// # Errors
    /// As [`check`].
    pub fn new(spec: &Spec) -> Result<Security> {
        let process = spec.process().as_ref().ok_or_else(|| Error::bad("config.json: process", "it is missing"))?;
        let user = process.user();
        if user.username().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::bad(
                "config.json: process.user.username",
                "user names are not looked up; give the numeric uid and gid instead",
            ));
        }
        let caps = process.capabilities();
        let get = |f: fn(&oci_spec::runtime::LinuxCapabilities) -> &Option<Capabilities>| {
            caps.as_ref().map(|c| oci_bits(f(c))).transpose().map(Option::unwrap_or_default)
        };
        let mut rlimits: Vec<Rlimit> = Vec::new();
        for r in process.rlimits().iter().flatten() {
            let resource = rlimit_resource(r.typ());
            if rlimits.iter().any(|x| x.resource == resource) {
                return Err(Error::bad("config.json: process.rlimits", format!("{} is listed twice", r.typ())));
            }
            if r.soft() > r.hard() {
                return Err(Error::bad(
                    "config.json: process.rlimits",
                    format!("{}: the soft limit {} is above the hard limit {}", r.typ(), r.soft(), r.hard()),
                ));
            }
            rlimits.push(Rlimit { resource, soft: r.soft(), hard: r.hard() });
        }
        let (permitted, inheritable) = (get(|c| c.permitted())?, get(|c| c.inheritable())?);
        // The kernel raises an ambient capability only if it is permitted and
        // inheritable. `runc spec` lists ambient ones without inheritable; runc then warns
        // and goes on without them, and so do we (without the warning).
        let ambient = get(|c| c.ambient())? & permitted & inheritable;
        Ok(Security {
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            bounding: get(|c| c.bounding())?,
            effective: get(|c| c.effective())?,
            permitted,
            inheritable,
            ambient,
            last_cap: last_cap(),
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            rlimits,
        })
    }
}

// ---- Below: called in the container's init after clone. System calls only. ----

/// Which part of [`apply`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    Rlimit(usize),
    BoundingSet(u32),
    KeepCaps,
    SetGroups,
    SetGid,
    SetUid,
    Capset,
    Ambient(u32),
    NoNewPrivs,
}

/// Sets the rlimits. Done while we are still root with every capability, since raising a
/// hard limit needs `CAP_SYS_RESOURCE`.
pub fn set_rlimits(sec: &Security) -> Result<(), (Failed, Errno)> {
    for (i, r) in sec.rlimits.iter().enumerate() {
        let lim = libc::rlimit { rlim_cur: r.soft, rlim_max: r.hard };
        // SAFETY: setrlimit with a valid struct on our stack.
        if unsafe { libc::setrlimit(r.resource as _, &lim) } != 0 {
            return Err((Failed::Rlimit(i), Errno::last()));
        }
    }
    Ok(())
}

// ANCHOR: drop_caps
/// The kernel's `capset(2)` header and data (version 3: two 32-bit halves of each set).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Becomes the spec's user with the spec's capabilities, and nothing else.
pub fn become_user(sec: &Security) -> Result<(), (Failed, Errno)> {
    let last = |e: Failed| (e, Errno::last());
    // SAFETY: prctl and raw set*id system calls with plain integer arguments, and capset
    // with structs on our stack. Raw system calls, not glibc's wrappers: see chapter 1's
    // `become_root` for why glibc's setresuid hangs in a cloned child.
    unsafe {
        // 1. The bounding set: everything not listed goes, for good.
        for cap in 0..=sec.last_cap.min(63) {
            if sec.bounding & (1 << cap) == 0 && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
            {
                return Err(last(Failed::BoundingSet(cap)));
            }
        }
        // 2. Keep the permitted set across the change to a non-zero uid, which would clear it.
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(last(Failed::KeepCaps));
        }
        if libc::syscall(libc::SYS_setgroups, sec.groups.len(), sec.groups.as_ptr()) != 0 {
            return Err(last(Failed::SetGroups));
        }
        if libc::syscall(libc::SYS_setresgid, sec.gid, sec.gid, sec.gid) != 0 {
            return Err(last(Failed::SetGid));
        }
        if libc::syscall(libc::SYS_setresuid, sec.uid, sec.uid, sec.uid) != 0 {
            return Err(last(Failed::SetUid));
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 {
            return Err(last(Failed::KeepCaps));
        }
        // 3. Effective, permitted, inheritable: one capset, low 32 bits then high 32 bits.
        let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
        let half = |bits: CapSet, high: bool| if high { (bits >> 32) as u32 } else { bits as u32 };
        let data = [false, true].map(|high| CapData {
            effective: half(sec.effective, high),
            permitted: half(sec.permitted, high),
            inheritable: half(sec.inheritable, high),
        });
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(last(Failed::Capset));
        }
        // 4. Ambient: each one must already be permitted and inheritable.
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        for cap in 0..=sec.last_cap.min(63) {
            if sec.ambient & (1 << cap) != 0
                && libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap as libc::c_ulong, 0, 0) != 0
            {
                return Err(last(Failed::Ambient(cap)));
            }
        }
        // 5. No execve may add privileges from now on (setuid bits, file capabilities).
        if sec.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(last(Failed::NoNewPrivs));
        }
    }
    Ok(())
}
// ANCHOR_END: drop_caps

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cap = |n: &u32| CAPABILITIES.get(*n as usize).copied().unwrap_or("an unknown capability");
        match self {
            Failed::Rlimit(_) => write!(f, "set an rlimit (setrlimit)"),
            Failed::BoundingSet(n) => write!(f, "drop {} from the bounding set (prctl PR_CAPBSET_DROP)", cap(n)),
            Failed::KeepCaps => write!(f, "keep capabilities across setuid (prctl PR_SET_KEEPCAPS)"),
            Failed::SetGroups => write!(f, "set the additional groups (setgroups)"),
            Failed::SetGid => write!(f, "set the group id (setresgid)"),
            Failed::SetUid => write!(f, "set the user id (setresuid)"),
            Failed::Capset => write!(f, "set the effective, permitted and inheritable capabilities (capset)"),
            Failed::Ambient(n) => write!(f, "raise the ambient capability {} (prctl PR_CAP_AMBIENT)", cap(n)),
            Failed::NoNewPrivs => write!(f, "set no_new_privs (prctl PR_SET_NO_NEW_PRIVS)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Docker's default set is 14 known capabilities; CAP_SYS_ADMIN is not one of them.
    #[test]
    fn docker_caps_have_numbers() {
        let bits = cap_bits(crate::spec::DOCKER_DEFAULT_CAPS).unwrap();
        assert_eq!(bits.count_ones(), 14);
        assert_eq!(bits, 0xa80425fb, "the CapEff that `docker run` shows");
        assert!(!cap_names(bits).contains(&"CAP_SYS_ADMIN"));
        assert!(cap_bits(["CAP_NOPE"]).is_err());
    }
}
