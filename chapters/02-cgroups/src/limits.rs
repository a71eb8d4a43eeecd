//! The limits a cgroup can put on its processes, and how `docker run`'s flags turn into
//! them: `--memory 64M` is a byte count, `--cpus 0.5` is a CFS quota per period,
//! `--pids-limit 20` a process count, `--cpuset-cpus 0` a list of CPUs.
//!
//! This file only parses and checks values; [`crate::cgroup`] writes them to the files of
//! whichever cgroup version the machine runs.
//!
//! What the real tools do differently: Docker parses sizes with `go-units` (`RAMInBytes`)
//! and passes an OCI `linux.resources` section to runc, which writes the files. runc also
//! knows block I/O weights, hugetlb, network classes and device rules; we keep the four
//! limits that every container runtime sets.

use std::fmt;

use crate::{Error, Result};

// ANCHOR: limits
/// What `kthw cgroup run` may limit. `None` leaves that resource unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory in bytes (`docker run --memory`). Swap is not allowed on top of it, as
    /// with `--memory-swap` equal to `--memory`, so that hitting it means the OOM killer.
    pub memory: Option<u64>,
    /// CPU time per period (`docker run --cpus`).
    pub cpu: Option<CpuQuota>,
    /// The most processes and threads at once (`docker run --pids-limit`).
    pub pids: Option<u64>,
    /// The CPUs the processes may run on, in the kernel's list syntax, e.g. `0` or
    /// `0-2,4` (`docker run --cpuset-cpus`).
    pub cpuset: Option<String>,
}

/// The CFS bandwidth limit: at most `quota_us` of CPU time in every `period_us`.
/// `--cpus 0.5` is 50 000 µs per 100 000 µs: half of one CPU, or a quarter of each of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}
// ANCHOR_END: limits

/// The period Docker uses for `--cpus`: 100 ms, the kernel's default.
pub const DEFAULT_PERIOD_US: u64 = 100_000;

impl Limits {
    /// Parses the command line's limits. Each argument is optional.
    ///
    /// # Errors
    /// [`Error::BadLimit`] naming the flag, the value and what a valid value looks like.
    pub fn parse(memory: Option<&str>, cpus: Option<&str>, pids: Option<&str>, cpuset: Option<&str>) -> Result<Limits> {
        Ok(Limits {
            memory: memory.map(parse_memory).transpose()?,
            cpu: cpus.map(parse_cpus).transpose()?,
            pids: pids.map(parse_pids).transpose()?,
            cpuset: cpuset.map(parse_cpuset).transpose()?,
        })
    }

    /// Whether no limit at all is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// `64M` → 67 108 864. Suffixes `k`, `m`, `g` (either case) are powers of 1024, as in
/// Docker; a bare number is bytes.
///
/// # Errors
/// If the value is not a positive number with an optional suffix.
pub fn parse_memory(value: &str) -> Result<u64> {
    let bad = |why: &str| Error::BadLimit { flag: "--memory", value: value.into(), why: why.into() };
    let trimmed = value.trim();
    let (digits, unit) = match trimmed.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&trimmed[..i], c.to_ascii_lowercase()),
        _ => (trimmed, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => return Err(bad("the unit must be k, m or g (powers of 1024), e.g. 64M")),
    };
    let n: u64 = digits.parse().map_err(|_| bad("expected a whole number with k, m or g, e.g. 64M"))?;
    if n == 0 {
        return Err(bad("a limit of 0 bytes would kill the process at once; give e.g. 64M"));
    }
    n.checked_mul(1 << shift).ok_or_else(|| bad("too large"))
}

/// `0.5` → 50 000 µs per 100 000 µs, as `docker run --cpus 0.5` does.
///
/// # Errors
/// If the value is not a positive decimal number, or gives less than the kernel's
/// minimum quota of 1 ms per period.
pub fn parse_cpus(value: &str) -> Result<CpuQuota> {
    let bad = |why: &str| Error::BadLimit { flag: "--cpus", value: value.into(), why: why.into() };
    let cpus: f64 = value.trim().parse().map_err(|_| bad("expected a decimal number of CPUs, e.g. 0.5"))?;
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(bad("the number of CPUs must be greater than 0"));
    }
    // Rounded, not truncated: 0.3 is 29 999.999... in binary floating point.
    let quota = (cpus * DEFAULT_PERIOD_US as f64).round();
    if quota < 1000.0 {
        return Err(bad("the kernel's smallest quota is 1 ms per 100 ms period, i.e. --cpus 0.01"));
    }
    if quota > 1e12 {
        return Err(bad("too large"));
    }
    Ok(CpuQuota { quota_us: quota as u64, period_us: DEFAULT_PERIOD_US })
}

/// `20` → 20. At least 1: the first process counts too.
///
/// # Errors
/// If the value is not a whole number of at least 1.
pub fn parse_pids(value: &str) -> Result<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Error::BadLimit {
            flag: "--pids",
            value: value.into(),
            why: "expected a whole number of at least 1 (the command itself is one process)".into(),
        }),
    }
}

/// Checks a CPU list such as `0`, `0-1` or `0,2-3`. Whether those CPUs exist is for
/// the kernel to say, when the list is written.
///
/// # Errors
/// If the list is not comma-separated numbers and `low-high` ranges.
pub fn parse_cpuset(value: &str) -> Result<String> {
    let bad = |why: &str| Error::BadLimit { flag: "--cpuset", value: value.into(), why: why.into() };
    let list = value.trim();
    if list.is_empty() {
        return Err(bad("expected a CPU list such as 0, 0-1 or 0,2-3"));
    }
    for part in list.split(',') {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        match (low.parse::<u32>(), high.parse::<u32>()) {
            (Ok(l), Ok(h)) if l <= h => {}
            _ => return Err(bad("expected a CPU list such as 0, 0-1 or 0,2-3 (see /sys/devices/system/cpu/online)")),
        }
    }
    Ok(list.to_string())
}

/// A byte count for people: `64.0 MiB`. Exact multiples of 1024 keep one decimal so
/// that a limit reads back the way it was given.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

impl fmt::Display for CpuQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus = self.quota_us as f64 / self.period_us as f64;
        write!(f, "{cpus} CPU ({} µs per {} µs)", self.quota_us, self.period_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sizes use Docker's suffixes, powers of 1024.
    #[test]
    fn memory_sizes_parse_like_docker() {
        assert_eq!(parse_memory("64M").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("512k").unwrap(), 512 << 10);
        assert_eq!(parse_memory("4096").unwrap(), 4096);
    }

    // Bad sizes are errors that name the flag and show a valid value.
    #[test]
    fn bad_memory_sizes_say_what_is_valid() {
        for bad in ["", "M", "64X", "-1M", "0", "1.5G", "99999999999999g"] {
            let err = parse_memory(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid --memory"), "{bad}: {err}");
        }
        assert!(parse_memory("64X").unwrap_err().to_string().contains("64M"));
    }

    // --cpus 0.5 is Docker's 50 000 µs per 100 000 µs; tiny values are refused.
    #[test]
    fn cpus_become_a_cfs_quota() {
        assert_eq!(parse_cpus("0.5").unwrap(), CpuQuota { quota_us: 50_000, period_us: 100_000 });
        assert_eq!(parse_cpus("2").unwrap().quota_us, 200_000);
        assert_eq!(parse_cpus("0.3").unwrap().quota_us, 30_000);
        for bad in ["0", "-1", "abc", "NaN", "inf", "0.001"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert!(parse_cpus("0.001").unwrap_err().to_string().contains("1 ms"));
    }

    // A pids limit counts the command itself, so 0 is refused.
    #[test]
    fn pids_limit_is_at_least_one() {
        assert_eq!(parse_pids("20").unwrap(), 20);
        assert!(parse_pids("0").is_err());
        assert!(parse_pids("x").is_err());
    }

    // CPU lists follow the kernel's syntax.
    #[test]
    fn cpusets_follow_the_kernel_list_syntax() {
        for good in ["0", "0-1", "0,2-3"] {
            assert_eq!(parse_cpuset(good).unwrap(), good);
        }
        for bad in ["", "a", "1-0", "0,", "0--1"] {
            assert!(parse_cpuset(bad).is_err(), "{bad:?}");
        }
    }

    // Every flag is optional; nothing given means no limits.
    #[test]
    fn limits_parse_together() {
        assert!(Limits::parse(None, None, None, None).unwrap().is_empty());
        let l = Limits::parse(Some("32M"), Some("0.5"), Some("10"), Some("0")).unwrap();
        assert_eq!(l.memory, Some(32 << 20));
        assert_eq!(l.pids, Some(10));
        assert_eq!(l.cpuset.as_deref(), Some("0"));
    }

    #[test]
    fn bytes_read_back_as_given() {
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
