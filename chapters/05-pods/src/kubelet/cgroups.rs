//! Pod cgroups: one cgroup per pod with a child per container, like the kubelet's
//! `kubepods/pod<uid>/<container>` tree, under our own cgroup root.
//!
//! ```text
//! /<instance>/kubepods/                  all pods of this node
//!              └ pod<uid>/               the pod: the sum of its containers' limits
//!                 ├ <uid>_sandbox        the pause container
//!                 ├ <uid>_c_app          one per container, its own limits
//!                 └ <uid>_c_shipper
//! ```
//!
//! The pod level caps the whole pod: its memory limit is the sum of the containers'
//! limits, set only when every container has one (one container without a limit makes
//! the pod unlimited, as in Kubernetes); the same for CPU. Chapter 2's [`Cgroup`] does
//! the writing, on cgroup v1 and v2 alike.
//!
//! What the kubelet does differently: `kubepods` is split by QoS class
//! (`kubepods/burstable/pod<uid>`, `kubepods/besteffort/...`; Guaranteed pods sit right
//! under `kubepods`); requests become `cpu.weight` (`cpu.shares` on v1); and with the
//! systemd driver the names are `kubepods-burstable-pod<uid>.slice`.

use kthw_cgroups::Cgroup;
use kthw_cgroups::limits::{CpuQuota, DEFAULT_PERIOD_US, Limits};
use kthw_lab::Paths;
use kthw_lab::host::CgroupLayout;

use crate::Result;
use crate::api::Pod;

/// `/<instance>/kubepods`.
pub fn kubepods(paths: &Paths) -> String {
    format!("/{}/kubepods", paths.cgroup_root())
}

/// `/<instance>/kubepods/pod<uid>`.
pub fn pod_path(paths: &Paths, uid: &str) -> String {
    format!("{}/pod{uid}", kubepods(paths))
}

/// The cgroup of container `id` (a runtime id) of the pod.
pub fn container_path(paths: &Paths, uid: &str, id: &str) -> String {
    format!("{}/{id}", pod_path(paths, uid))
}

// ANCHOR: pod_limits
/// The pod's limits: the sum of its app containers' limits, for each resource that
/// every app container limits. Init containers run one at a time before the apps, so
/// the pod needs room for the largest of them or the apps' sum, whichever is more.
pub fn pod_limits(pod: &Pod) -> Limits {
    let apps: Vec<_> = pod.spec.containers.iter().map(|c| c.resources()).collect();
    let inits: Vec<_> = pod.spec.init_containers.iter().map(|c| c.resources()).collect();
    let sum = |f: fn(&crate::api::Resources) -> Option<i64>| -> Option<i64> {
        let apps: Option<i64> = apps.iter().map(f).sum();
        let init: Option<i64> = inits.iter().map(f).try_fold(0, |max: i64, v| v.map(|v| max.max(v)));
        Some(apps?.max(init?))
    };
    Limits {
        memory: sum(|r| r.memory_limit_bytes).map(|b| b.max(0) as u64),
        cpu: sum(|r| r.cpu_limit_millis).map(millis_to_quota),
        ..Limits::default()
    }
}
// ANCHOR_END: pod_limits

/// CPU millicores as a CFS quota: 500m is 50 ms per 100 ms period.
pub fn millis_to_quota(millis: i64) -> CpuQuota {
    CpuQuota { quota_us: (millis.max(1) as u64) * DEFAULT_PERIOD_US / 1000, period_us: DEFAULT_PERIOD_US }
}

/// Creates the pod's cgroup with its limits.
///
/// # Errors
/// If the cgroup cannot be made or a limit written.
pub fn create(paths: &Paths, pod: &Pod, uid: &str) -> Result<Cgroup> {
    let layout = CgroupLayout::detect().map_err(kthw_runtime::Error::from)?;
    let cgroup = Cgroup::create(&layout, &pod_path(paths, uid)).map_err(kthw_runtime::Error::from)?;
    cgroup.apply(&pod_limits(pod)).map_err(kthw_runtime::Error::from)?;
    Ok(cgroup)
}

/// Removes the pod's cgroup (killing what is left in it), then `kubepods` and our root
/// if no other pod or container uses them. Succeeds if they are gone already.
///
/// # Errors
/// If the pod's cgroup cannot be removed.
pub fn remove(paths: &Paths, uid: &str) -> Result<()> {
    let layout = CgroupLayout::detect().map_err(kthw_runtime::Error::from)?;
    if let Ok(cgroup) = Cgroup::open(&layout, &pod_path(paths, uid)) {
        cgroup.delete().map_err(kthw_runtime::Error::from)?;
    }
    // Empty parents: rmdir fails on a cgroup with children or processes, which is what
    // we want (another pod still lives there).
    for parent in [kubepods(paths), format!("/{}", paths.cgroup_root())] {
        if let Ok(cgroup) = Cgroup::open(&layout, &parent) {
            for dir in cgroup.dirs() {
                let _ = std::fs::remove_dir(&dir.path);
            }
        }
    }
    Ok(())
}
