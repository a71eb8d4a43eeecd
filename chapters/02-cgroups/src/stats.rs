//! Reading what a cgroup's processes use: memory, CPU time, process count, and whether
//! the cgroup is frozen. Both versions count the same things in differently named files;
//! [`Stats`] gives them one shape, and `kthw cgroup stat` prints it the same way on both.
//!
//! | what | v1 file | v2 file |
//! |---|---|---|
//! | memory now / peak / limit | `memory.usage_in_bytes` / `memory.max_usage_in_bytes` / `memory.limit_in_bytes` | `memory.current` / `memory.peak` / `memory.max` |
//! | CPU time used | `cpuacct.usage` (ns) | `cpu.stat` `usage_usec` |
//! | throttling | `cpu.stat` `nr_throttled`, `throttled_time` (ns) | `cpu.stat` `nr_throttled`, `throttled_usec` |
//! | processes | `pids.current` / `pids.max` | the same |
//! | frozen | `freezer.state` | `cgroup.events` `frozen` |
//!
//! What the real tools do differently: `docker stats` reads the same files through
//! runc's `libcontainer/cgroups` (`GetStats`), and the kubelet gets them from cAdvisor,
//! which also reads per-CPU usage, memory pressure, I/O and network counters.

use std::fmt::Write as _;

use kthw_lab::host::CgroupMode;

use crate::cgroup::{Cgroup, Version, field};
use crate::limits::{CpuQuota, human_bytes};

/// A snapshot of one cgroup's usage. A part is `None` when its controller is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The cgroup, as in `/proc/PID/cgroup`.
    pub path: String,
    pub mode: CgroupMode,
    pub memory: Option<MemoryStats>,
    pub cpu: Option<CpuStats>,
    pub pids: Option<PidsStats>,
    /// `None` without a freezer.
    pub frozen: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes charged now (process memory and page cache).
    pub current: u64,
    /// The most ever charged; `None` on v2 kernels before 5.19 (no `memory.peak`).
    pub peak: Option<u64>,
    /// The limit; `None` when unlimited.
    pub max: Option<u64>,
    /// Processes killed by the OOM killer; `None` on v1 kernels before 4.13.
    pub oom_kills: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuStats {
    /// CPU time used by every process that ever ran in the cgroup, in µs.
    pub usage_us: u64,
    /// The quota; `None` when unlimited.
    pub quota: Option<CpuQuota>,
    /// Periods in which the cgroup ran, and in how many it used up its quota.
    pub periods: Option<u64>,
    pub throttled: Option<u64>,
    /// Time the processes were ready to run but had to wait for the next period, in µs.
    pub throttled_us: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub max: Option<u64>,
}

/// v1 spells "no limit" as a huge number (the largest page count times the page size).
const V1_UNLIMITED: u64 = 1 << 62;

// ANCHOR: read_stats
impl Stats {
    /// Reads the usage of `cg` from its files.
    pub fn read(cg: &Cgroup) -> Stats {
        let num = |controller: &str, file: &str| cg.read(controller, file).and_then(|s| s.parse::<u64>().ok());
        // v2 writes "max" for no limit; v1 writes a huge number or -1.
        let limit = |controller: &str, file: &str| num(controller, file).filter(|&n| n < V1_UNLIMITED);
        let (memory, cpu) = match cg.version() {
            Version::V1 => {
                let memory = num("memory", "memory.usage_in_bytes").map(|current| MemoryStats {
                    current,
                    peak: num("memory", "memory.max_usage_in_bytes"),
                    max: limit("memory", "memory.limit_in_bytes"),
                    oom_kills: cg.oom_kills(),
                });
                let stat = cg.read("cpu", "cpu.stat").unwrap_or_default();
                let quota = limit("cpu", "cpu.cfs_quota_us")
                    .zip(num("cpu", "cpu.cfs_period_us"))
                    .map(|(quota_us, period_us)| CpuQuota { quota_us, period_us });
                let cpu = num("cpuacct", "cpuacct.usage").map(|ns| CpuStats {
                    usage_us: ns / 1000,
                    quota,
                    periods: field(&stat, "nr_periods"),
                    throttled: field(&stat, "nr_throttled"),
                    throttled_us: field(&stat, "throttled_time").map(|ns| ns / 1000),
                });
                (memory, cpu)
            }
            Version::V2 => {
                let memory = num("memory", "memory.current").map(|current| MemoryStats {
                    current,
                    peak: num("memory", "memory.peak"),
                    max: limit("memory", "memory.max"),
                    oom_kills: cg.oom_kills(),
                });
                let stat = cg.read("cpuacct", "cpu.stat").unwrap_or_default();
                let quota = cg.read("cpu", "cpu.max").and_then(|s| {
                    let (quota, period) = s.split_once(' ')?;
                    Some(CpuQuota { quota_us: quota.parse().ok()?, period_us: period.parse().ok()? })
                });
                let cpu = field(&stat, "usage_usec").map(|usage_us| CpuStats {
                    usage_us,
                    quota,
                    periods: field(&stat, "nr_periods"),
                    throttled: field(&stat, "nr_throttled"),
                    throttled_us: field(&stat, "throttled_usec"),
                });
                (memory, cpu)
            }
        };
        let pids = num("pids", "pids.current").map(|current| PidsStats { current, max: limit("pids", "pids.max") });
        Stats { path: cg.path().to_string(), mode: cg.mode(), memory, cpu, pids, frozen: cg.is_frozen() }
    }
}
// ANCHOR_END: read_stats

impl Stats {
    /// The lines `kthw cgroup stat` prints: one per resource, the same on v1 and v2.
    pub fn render(&self) -> String {
        let mut out = format!("cgroup   {} ({})\n", self.path, self.mode);
        let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        match &self.memory {
            Some(m) => writeln!(
                out,
                "memory   current {}, peak {}, limit {}, OOM kills {}",
                human_bytes(m.current),
                or_dash(m.peak.map(human_bytes)),
                or_none(m.max.map(human_bytes)),
                or_dash(m.oom_kills.map(|n| n.to_string())),
            ),
            None => writeln!(out, "memory   - (no memory controller)"),
        }
        .ok();
        match &self.cpu {
            Some(c) => writeln!(
                out,
                "cpu      used {}, limit {}, throttled {} of {} periods ({})",
                seconds(c.usage_us),
                or_none(c.quota.map(|q| q.to_string())),
                or_dash(c.throttled.map(|n| n.to_string())),
                or_dash(c.periods.map(|n| n.to_string())),
                or_dash(c.throttled_us.map(seconds)),
            ),
            None => writeln!(out, "cpu      - (no cpu accounting)"),
        }
        .ok();
        match &self.pids {
            Some(p) => writeln!(out, "pids     current {}, limit {}", p.current, or_none(p.max.map(|n| n.to_string()))),
            None => writeln!(out, "pids     - (no pids controller)"),
        }
        .ok();
        let freezer = match self.frozen {
            Some(true) => "frozen",
            Some(false) => "thawed",
            None => "- (no freezer)",
        };
        writeln!(out, "freezer  {freezer}").ok();
        out
    }
}

/// µs as seconds with millisecond precision: `1.234 s`.
fn seconds(us: u64) -> String {
    format!("{}.{:03} s", us / 1_000_000, (us % 1_000_000) / 1000)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cgroup::Dir;

    fn write_files(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    fn dir(path: &Path, controllers: &[&str]) -> Dir {
        Dir { controllers: controllers.iter().map(|c| c.to_string()).collect(), path: path.to_path_buf() }
    }

    // The same usage, written the v1 way (several hierarchies, nanoseconds, huge numbers
    // for "no limit") and the v2 way (one directory, µs, "max"), reads and prints the same.
    #[test]
    fn v1_and_v2_files_read_into_the_same_stats() {
        let tmp = tempfile::tempdir().unwrap();
        let v1 = tmp.path().join("v1");
        write_files(
            &v1.join("memory"),
            &[
                ("memory.usage_in_bytes", "1048576\n"),
                ("memory.max_usage_in_bytes", "33554432\n"),
                ("memory.limit_in_bytes", "33554432\n"),
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
            ],
        );
        write_files(
            &v1.join("cpu"),
            &[
                ("cpu.cfs_quota_us", "50000\n"),
                ("cpu.cfs_period_us", "100000\n"),
                ("cpu.stat", "nr_periods 10\nnr_throttled 9\nthrottled_time 296000000\n"),
            ],
        );
        write_files(&v1.join("cpuacct"), &[("cpuacct.usage", "536000000\n")]);
        write_files(&v1.join("pids"), &[("pids.current", "4\n"), ("pids.max", "max\n")]);
        write_files(&v1.join("freezer"), &[("freezer.state", "FROZEN\n")]);
        let v1 = Cgroup::from_dirs(
            CgroupMode::V1,
            "/kthw/x",
            ["memory", "cpu", "cpuacct", "pids", "freezer"].iter().map(|c| dir(&v1.join(c), &[c])).collect(),
        );

        let v2 = tmp.path().join("v2");
        write_files(
            &v2,
            &[
                ("memory.current", "1048576\n"),
                ("memory.peak", "33554432\n"),
                ("memory.max", "33554432\n"),
                ("memory.events", "low 0\nhigh 0\nmax 40\noom 1\noom_kill 1\n"),
                ("cpu.max", "50000 100000\n"),
                ("cpu.stat", "usage_usec 536000\nnr_periods 10\nnr_throttled 9\nthrottled_usec 296000\n"),
                ("pids.current", "4\n"),
                ("pids.max", "max\n"),
                ("cgroup.events", "populated 1\nfrozen 1\n"),
            ],
        );
        let v2 = Cgroup::from_dirs(CgroupMode::V2, "/kthw/x", vec![dir(&v2, &["cpu", "memory", "pids"])]);

        let (a, b) = (Stats::read(&v1), Stats::read(&v2));
        assert_eq!(Stats { mode: CgroupMode::V2, ..a.clone() }, b);
        assert_eq!(a.render().replace("(v1)", "(v2)"), b.render());
        assert_eq!(
            b.render(),
            "cgroup   /kthw/x (v2)\n\
             memory   current 1.0 MiB, peak 32.0 MiB, limit 32.0 MiB, OOM kills 1\n\
             cpu      used 0.536 s, limit 0.5 CPU (50000 µs per 100000 µs), throttled 9 of 10 periods (0.296 s)\n\
             pids     current 4, limit none\n\
             freezer  frozen\n"
        );
    }

    // A v1 cgroup made by hand in only some hierarchies shows `-` for the rest.
    #[test]
    fn missing_controllers_show_a_dash() {
        let tmp = tempfile::tempdir().unwrap();
        write_files(
            tmp.path(),
            &[("memory.usage_in_bytes", "0\n"), ("memory.limit_in_bytes", "9223372036854771712\n")],
        );
        let cg = Cgroup::from_dirs(CgroupMode::Hybrid, "/kthw/y", vec![dir(tmp.path(), &["memory"])]);
        let text = Stats::read(&cg).render();
        assert!(text.contains("limit none, OOM kills -"), "{text}");
        assert!(text.contains("cpu      - (no cpu accounting)"), "{text}");
        assert!(text.contains("freezer  - (no freezer)"), "{text}");
    }
}
