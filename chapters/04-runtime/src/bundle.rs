//! Reading an OCI bundle, and refusing — clearly, before anything is created — what we
//! cannot do.
//!
//! A bundle is a folder with a `config.json` and (usually) a `rootfs` folder. The
//! specification has many optional parts; a runtime that silently skipped one would
//! run a container that is less isolated than its author asked for (no seccomp filter,
//! say). So every field we do not implement is an error that names it.
//!
//! What runc does differently: runc implements nearly the whole specification (hooks,
//! seccomp, user namespaces, AppArmor, SELinux, Intel RDT, personality, time offsets,
//! ...), and warns rather than fails on a few fields it does not know.

use std::path::{Path, PathBuf};

use kthw_lab::host::Namespace;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::{Error, Result};

/// A bundle whose `config.json` we can run.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle folder, absolute.
    pub dir: PathBuf,
    /// Its `config.json`.
    pub spec: Spec,
    /// The root filesystem on the host, absolute.
    pub rootfs: PathBuf,
}

/// Reads and checks `dir/config.json`.
///
/// # Errors
/// A missing folder or file, JSON that does not parse (with its line and column), a
/// required field that is missing, or a field we do not support.
pub fn load(dir: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(dir).map_err(Error::io("open the bundle", dir))?;
    let path = dir.join("config.json");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::bad(
                path.display().to_string(),
                "the bundle has no config.json; `kthw runtime spec` (or `runc spec`) writes one",
            ));
        }
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    let spec: Spec = serde_json::from_slice(&text)
        .map_err(|e| Error::bad(path.display().to_string(), format!("{e}; it must be an OCI runtime spec")))?;
    check(&spec)?;
    let root = spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_default();
    let rootfs = dir.join(&root);
    if !rootfs.is_dir() {
        return Err(bad(
            "root.path",
            format!("{} is not a folder; create the root filesystem there", rootfs.display()),
        ));
    }
    let rootfs = std::fs::canonicalize(&rootfs).map_err(Error::io("open the root filesystem", &rootfs))?;
    Ok(Bundle { dir, spec, rootfs })
}

fn bad(field: &str, why: impl ToString) -> Error {
    Error::bad(format!("config.json: {field}"), why)
}

fn unsupported(field: &str) -> Error {
    bad(field, "kthw's runtime does not support this field; remove it, or run the bundle with runc")
}

/// The namespace kind of an OCI namespace entry.
pub fn namespace_kind(typ: LinuxNamespaceType) -> Namespace {
    match typ {
        LinuxNamespaceType::Mount => Namespace::Mount,
        LinuxNamespaceType::Cgroup => Namespace::Cgroup,
        LinuxNamespaceType::Uts => Namespace::Uts,
        LinuxNamespaceType::Ipc => Namespace::Ipc,
        LinuxNamespaceType::User => Namespace::User,
        LinuxNamespaceType::Pid => Namespace::Pid,
        LinuxNamespaceType::Network => Namespace::Net,
        LinuxNamespaceType::Time => Namespace::Time,
    }
}

/// Whether the spec asks for a new cgroup namespace (an entry of type cgroup without a path).
pub fn has_new_cgroup_namespace(spec: &oci_spec::runtime::Spec) -> bool {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    namespaces.into_iter().flatten().any(|ns| ns.typ() == LinuxNamespaceType::Cgroup && ns.path().is_none())
}

// ANCHOR: check
/// The rules a spec must follow before we create anything.
///
/// # Errors
/// The first field that is missing, wrong or unsupported.
pub fn check(spec: &Spec) -> Result<()> {
    if !spec.version().starts_with("1.") {
        return Err(bad(
            "ociVersion",
            format!("{:?} is not a 1.x version of the runtime specification", spec.version()),
        ));
    }
    let Some(root) = spec.root() else {
        return Err(bad("root", "it is missing; add \"root\": {\"path\": \"rootfs\"}"));
    };
    if root.path().as_os_str().is_empty() {
        return Err(bad("root.path", "it is empty; name the root filesystem's folder, e.g. \"rootfs\""));
    }
    let Some(process) = spec.process() else {
        return Err(bad("process", "it is missing; add the program to run in \"process\": {\"args\": [...]}"));
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(bad("process.args", "it is empty; give the program to run, e.g. [\"sh\"]"));
    }
    if !process.cwd().is_absolute() {
        return Err(bad("process.cwd", format!("{} must be an absolute path", process.cwd().display())));
    }
    if spec.hooks().is_some() {
        return Err(unsupported("hooks"));
    }
    if process.apparmor_profile().as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(unsupported("process.apparmorProfile"));
    }
    if process.selinux_label().as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(unsupported("process.selinuxLabel"));
    }
    if process.scheduler().is_some() {
        return Err(unsupported("process.scheduler"));
    }
    if process.io_priority().is_some() {
        return Err(unsupported("process.ioPriority"));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(unsupported("process.execCPUAffinity"));
    }
    let Some(linux) = spec.linux() else {
        return Err(bad("linux", "it is missing; a Linux container needs at least \"linux\": {\"namespaces\": [...]}"));
    };
    if linux.seccomp().is_some() {
        return Err(unsupported("linux.seccomp"));
    }
    if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    {
        return Err(unsupported("linux.uidMappings/gidMappings (user namespaces)"));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt"));
    }
    if linux.personality().is_some() {
        return Err(unsupported("linux.personality"));
    }
    if linux.time_offsets().is_some() {
        return Err(unsupported("linux.timeOffsets"));
    }
    if linux.memory_policy().is_some() {
        return Err(unsupported("linux.memoryPolicy"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported("linux.netDevices"));
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(unsupported("linux.mountLabel"));
    }
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let mut seen = Vec::new();
    for ns in &namespaces {
        let kind = namespace_kind(ns.typ());
        if seen.contains(&kind) {
            return Err(bad("linux.namespaces", format!("{kind} is listed twice")));
        }
        seen.push(kind);
        match kind {
            Namespace::User => return Err(unsupported("linux.namespaces: user")),
            Namespace::Time => return Err(unsupported("linux.namespaces: time")),
            // A pid namespace with a path is joined too, but by `create` before the clone
            // rather than by the init: see lifecycle.rs.
            _ => {}
        }
        if let Some(path) = ns.path()
            && !path.exists()
        {
            return Err(bad(
                &format!("linux.namespaces: {kind}"),
                format!(
                    "{} does not exist; it should be a namespace file such as /proc/PID/ns/{}",
                    path.display(),
                    kind.proc_name()
                ),
            ));
        }
    }
    let has = |k: Namespace| seen.contains(&k);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(Namespace::Uts) {
        return Err(bad("hostname", "setting a host name needs a uts namespace; add {\"type\": \"uts\"}"));
    }
    if !has(Namespace::Mount) {
        return Err(bad(
            "linux.namespaces",
            "kthw needs a mount namespace to set up the root filesystem; add {\"type\": \"mount\"}",
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(bad(
                &format!("mounts[{i}].destination"),
                format!("{} must be an absolute path", m.destination().display()),
            ));
        }
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(unsupported(&format!("mounts[{i}].uidMappings")));
        }
    }
    if let Some(path) = linux.cgroups_path()
        && path.to_string_lossy().contains(':')
    {
        return Err(bad(
            "linux.cgroupsPath",
            "systemd's slice:prefix:name form is not supported; give a path such as /kthw/mycontainer",
        ));
    }
    crate::resources::check(spec)?;
    crate::security::check(spec)?;
    Ok(())
}
// ANCHOR_END: check

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
        let mut json = serde_json::to_value(crate::spec::default_spec(&["sh".into()]).unwrap()).unwrap();
        edit(&mut json);
        check(&serde_json::from_value(json).unwrap())
    }

    // The default spec passes; a spec without root, with hooks or seccomp, is refused by name.
    #[test]
    fn unsupported_fields_are_named() {
        spec_with(|_| {}).unwrap();
        let err = spec_with(|j| drop(j.as_object_mut().unwrap().remove("root"))).unwrap_err();
        assert!(err.to_string().contains("config.json: root"), "{err}");
        let err = spec_with(|j| j["hooks"] = serde_json::json!({"prestart": []})).unwrap_err();
        assert!(err.to_string().contains("hooks"), "{err}");
        let err =
            spec_with(|j| j["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap_err();
        assert!(err.to_string().contains("linux.seccomp"), "{err}");
    }

    // A pid namespace is joined by path like any other kind; a path that is not there is named.
    #[test]
    fn a_pid_namespace_can_be_joined_by_path() {
        let with_pid = |path: &str| {
            let path = path.to_string();
            spec_with(move |j| {
                for ns in j["linux"]["namespaces"].as_array_mut().unwrap() {
                    if ns["type"] == "pid" {
                        ns["path"] = serde_json::json!(path);
                    }
                }
            })
        };
        with_pid("/proc/self/ns/pid").unwrap();
        let err = with_pid("/proc/no-such-process/ns/pid").unwrap_err();
        assert!(err.to_string().contains("linux.namespaces: pid"), "{err}");
    }
}
