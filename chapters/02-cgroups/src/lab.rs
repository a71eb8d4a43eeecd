//! Lab 02's checker. The learner makes a cgroup named `lab02` under the instance's
//! cgroup root by hand, limits it, runs a sleeper in it and an OOM in it; each stage
//! looks at the cgroup files of the running hierarchy and at `/proc`, never at what the
//! learner typed. The sheet is `labs/02-cgroups/README.md`.
//!
//! What graders elsewhere do differently: the CKA exam checks a Pod's `resources` in
//! the API; nobody there looks at the cgroup files that the kubelet finally writes.

use kthw_lab::host::CgroupLayout;
use kthw_lab::lab::{Context, Failure, Lab, Outcome, Stage};

use crate::cgroup::{Cgroup, Version, process_cgroup};

/// The name of the learner's cgroup, under the instance's cgroup root.
pub const LAB_CGROUP: &str = "lab02";
/// The file holding the sleeper's PID, under `Paths::lab()`.
pub const SLEEPER_PID_FILE: &str = "02-sleeper.pid";
/// The memory limit the sheet asks for: 64 MiB.
pub const LAB_MEMORY: u64 = 64 << 20;

/// Lab 02: a cgroup made by hand.
pub fn lab() -> Lab {
    Lab {
        id: "02",
        title: "cgroups",
        sheet: "labs/02-cgroups/README.md",
        stages: vec![
            Stage::new("the lab02 cgroup exists", "ch02-cgroups.md#creating-a-cgroup", exists),
            Stage::new("its memory limit is 64M", "ch02-cgroups.md#setting-limits", memory_limit),
            Stage::new("its pids limit is set", "ch02-cgroups.md#setting-limits", pids_limit),
            Stage::new("a sleeper runs in it", "ch02-cgroups.md#joining-a-cgroup-before-exec", sleeper),
            Stage::new("the OOM killer struck in it", "ch02-cgroups.md#the-oom-killer", oom),
        ],
    }
}

fn lab_path(ctx: &Context) -> String {
    format!("/{}/{LAB_CGROUP}", ctx.paths.cgroup_root())
}

/// The learner's cgroup, with its memory directory.
fn open(ctx: &Context) -> Result<Cgroup, Failure> {
    let layout = CgroupLayout::detect().map_err(|e| Failure::new(e.to_string(), "mount the cgroup file systems"))?;
    let path = lab_path(ctx);
    let hint = match layout.hierarchy_for("memory") {
        Some(m) => format!("create it: `mkdir -p {}{path}`", m.path.display()),
        None => "this machine has no memory controller; use the lab VM".to_string(),
    };
    let cg =
        Cgroup::open(&layout, &path).map_err(|_| Failure::new(format!("no cgroup {path} in any hierarchy"), &hint))?;
    match cg.dir_for("memory") {
        Some(_) => Ok(cg),
        None => Err(Failure::new(format!("{path} exists, but not in the memory hierarchy"), hint)),
    }
}

fn exists(ctx: &Context) -> Outcome {
    let cg = open(ctx)?;
    let dirs: Vec<String> = cg.dirs().iter().map(|d| d.path.display().to_string()).collect();
    Ok(format!("{} ({}): {}", cg.path(), cg.mode(), dirs.join(", ")))
}

fn memory_limit(ctx: &Context) -> Outcome {
    let cg = open(ctx)?;
    let file = match cg.version() {
        Version::V1 => "memory.limit_in_bytes",
        Version::V2 => "memory.max",
    };
    let value = cg.read("memory", file).unwrap_or_default();
    if value.parse::<u64>().ok() == Some(LAB_MEMORY) {
        Ok(format!("{file} = {value}"))
    } else {
        Err(Failure::new(
            format!("{file} is {value:?}, not {LAB_MEMORY}"),
            format!(
                "write the limit: `echo 64M > {}`",
                cg.dir_for("memory").unwrap_or(std::path::Path::new("")).join(file).display()
            ),
        ))
    }
}

fn pids_limit(ctx: &Context) -> Outcome {
    let cg = open(ctx)?;
    let Some(dir) = cg.dir_for("pids") else {
        return Err(Failure::new(
            format!("{} has no directory in the pids hierarchy", cg.path()),
            "create the cgroup in the pids hierarchy too (v1: mkdir under /sys/fs/cgroup/pids/...)",
        ));
    };
    match cg.read("pids", "pids.max").as_deref() {
        Some(n) if n.parse::<u64>().is_ok() => Ok(format!("pids.max = {n}")),
        other => Err(Failure::new(
            format!("pids.max is {:?}", other.unwrap_or("missing")),
            format!("write a limit: `echo 20 > {}`", dir.join("pids.max").display()),
        )),
    }
}

fn sleeper(ctx: &Context) -> Outcome {
    let cg = open(ctx)?;
    let file = ctx.paths.lab().join(SLEEPER_PID_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Failure::new(
            format!("cannot read {}: {e}", file.display()),
            "start the sleeper and write its PID there (step 4)",
        )
    })?;
    let pid: u32 = text.trim().parse().map_err(|_| {
        Failure::new(format!("{} holds {:?}, not a PID", file.display(), text.trim()), "write `$!` into it")
    })?;
    let Some(path) = process_cgroup(pid, cg.version(), "memory") else {
        return Err(Failure::new(format!("process {pid} is not running"), "start `sleep infinity` again (step 4)"));
    };
    if path == cg.path() {
        Ok(format!("process {pid} is in {path}"))
    } else {
        Err(Failure::new(
            format!("process {pid} is in memory cgroup {path}, not {}", cg.path()),
            "write its PID to the cgroup's cgroup.procs in every hierarchy (step 4)",
        ))
    }
}

fn oom(ctx: &Context) -> Outcome {
    let cg = open(ctx)?;
    match (cg.oom_kills(), cg.memory_failcnt()) {
        (Some(n), _) if n >= 1 => Ok(format!("oom_kill = {n}")),
        (None, Some(n)) if n >= 1 => Ok(format!("memory.failcnt = {n} (this kernel has no oom_kill counter)")),
        (kills, _) => Err(Failure::new(
            format!("the OOM counter of {} is {}", cg.path(), kills.map_or("missing".into(), |n| n.to_string())),
            "run a memory hog inside the cgroup (step 5); it must use more than 64M",
        )),
    }
}
