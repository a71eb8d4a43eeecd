//! The spec's `linux.resources` as chapter 2's cgroup limits, and the container's cgroup
//! path.
//!
//! The OCI spec describes limits the way cgroup v1 files did (`memory.limit` in bytes,
//! `cpu.quota` and `cpu.period` in microseconds, `pids.limit`, `cpu.cpus`); chapter 2's
//! [`Cgroup::apply`](kthw_cgroups::Cgroup::apply) already writes those to v1's or v2's
//! files, whichever the machine has. The cgroup itself is `linux.cgroupsPath` if the
//! spec gives one, else `/<instance>/<id>` below our own cgroup root, so `kthw reset`
//! finds it.
//!
//! What runc does differently: it implements every resource of the spec (block I/O
//! weights and throttles, hugetlb, RDMA, network classes, the `unified` map of raw v2
//! files) and the device allow-list (a v1 `devices` cgroup or an eBPF program on v2).
//! We enforce no device rules: the container's `/dev` only has the nodes we create.
//! `runc spec` writes a deny-all device rule, which we accept and ignore.

use kthw_cgroups::limits::{CpuQuota, DEFAULT_PERIOD_US, Limits};
use oci_spec::runtime::Spec;

use crate::{Error, Result};

fn unsupported(field: &str) -> Error {
    Error::bad(
        format!("config.json: linux.resources.{field}"),
        "kthw's runtime only sets memory.limit, cpu.quota/period, cpu.cpus and pids.limit; remove it",
    )
}

/// Refuses resources we would not enforce.
///
/// # Errors
/// The first such field.
pub fn check(spec: &Spec) -> Result<()> {
    let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else { return Ok(()) };
    if res.block_io().is_some() {
        return Err(unsupported("blockIO"));
    }
    if res.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(unsupported("hugepageLimits"));
    }
    if res.network().is_some() {
        return Err(unsupported("network"));
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(unsupported("rdma"));
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(unsupported("unified"));
    }
    limits(spec).map(drop)
}

// ANCHOR: limits
/// Chapter 2's limits from `linux.resources`. A negative or absent value is "unlimited",
/// as in the spec.
///
/// # Errors
/// A quota without a sensible period.
pub fn limits(spec: &Spec) -> Result<Limits> {
    let mut limits = Limits::default();
    let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else { return Ok(limits) };
    if let Some(memory) = res.memory() {
        limits.memory = memory.limit().filter(|l| *l > 0).map(|l| l as u64);
    }
    if let Some(cpu) = res.cpu() {
        if let Some(quota) = cpu.quota().filter(|q| *q > 0) {
            let period = cpu.period().unwrap_or(DEFAULT_PERIOD_US);
            if period == 0 {
                return Err(Error::bad("config.json: linux.resources.cpu.period", "it must be above 0 µs"));
            }
            limits.cpu = Some(CpuQuota { quota_us: quota as u64, period_us: period });
        }
        limits.cpuset = cpu.cpus().clone().filter(|c| !c.is_empty());
    }
    if let Some(pids) = res.pids() {
        limits.pids = Some(pids.limit()).filter(|l| *l > 0).map(|l| l as u64);
    }
    Ok(limits)
}
// ANCHOR_END: limits

/// The container's cgroup: `linux.cgroupsPath`, or `/<cgroup_root>/<id>`.
pub fn cgroup_path(spec: &Spec, cgroup_root: &str, id: &str) -> String {
    match spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()) {
        Some(path) if !path.as_os_str().is_empty() => format!("/{}", path.to_string_lossy().trim_start_matches('/')),
        _ => format!("/{cgroup_root}/{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // linux.resources become chapter 2's limits; a spec without them has none.
    #[test]
    fn resources_become_limits() {
        let mut json = serde_json::to_value(crate::spec::default_spec(&["sh".into()]).unwrap()).unwrap();
        assert!(limits(&serde_json::from_value(json.clone()).unwrap()).unwrap().is_empty());
        json["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864}, "cpu": {"quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 20}
        });
        let spec: Spec = serde_json::from_value(json).unwrap();
        let l = limits(&spec).unwrap();
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.cpu, Some(CpuQuota { quota_us: 50_000, period_us: 100_000 }));
        assert_eq!(l.pids, Some(20));
        assert_eq!(l.cpuset.as_deref(), Some("0"));
        assert_eq!(cgroup_path(&spec, "kthw", "c1"), "/kthw/c1");
    }
}
