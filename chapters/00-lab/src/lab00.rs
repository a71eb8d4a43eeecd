//! Lab 0: make this machine ready for the book, and prove it.
//!
//! The lab sheet is `labs/00-lab/README.md`. Each stage below checks real state: the
//! user id, the busybox binary's ELF headers, the kernel's `ip_forward` setting, a fresh
//! run of the doctor, and the report the learner saved.
//!
//! What real courses do differently: Kubernetes the Hard Way's "prerequisites" page is a
//! list to read; nothing checks that you followed it.

use crate::doctor::{self, Status, probe};
use crate::host::{self, CgroupLayout};
use crate::lab::{Context, Failure, Lab, Outcome, Stage};

/// The file the learner saves `kthw doctor --json` into, under the lab directory.
pub const DOCTOR_REPORT: &str = "00-doctor.json";

// ANCHOR: lab
/// Lab 0's stages, in the order of the lab sheet.
pub fn lab() -> Lab {
    Lab {
        id: "00",
        title: "Your lab machine",
        sheet: "labs/00-lab/README.md",
        stages: vec![
            Stage::new("you are root", "ch00-lab-machine.md#why-root", root),
            Stage::new("busybox is statically linked", "ch00-lab-machine.md#busybox-static", busybox),
            Stage::new("IP forwarding is on", "ch00-lab-machine.md#ip-forwarding", ip_forward),
            Stage::new("kthw doctor finds no failure", "ch00-lab-machine.md#running-the-doctor", doctor_passes),
            Stage::new("your doctor report is saved", "ch00-lab-machine.md#saving-the-report", report_saved),
        ],
    }
}
// ANCHOR_END: lab

fn root(_: &Context) -> Outcome {
    if host::is_root() {
        Ok("effective uid is 0".into())
    } else {
        Err(Failure::new(
            format!("effective uid is {}", nix::unistd::geteuid()),
            "run the checker as root: `sudo kthw lab check 00`",
        ))
    }
}

fn busybox(_: &Context) -> Outcome {
    let path = std::path::Path::new("/bin/busybox");
    let elf = std::fs::read(path).map_err(|e| {
        Failure::new(format!("cannot read {}: {e}", path.display()), "install it: `apt-get install busybox-static`")
    })?;
    if probe::has_interpreter(&elf) {
        Err(Failure::new(
            "/bin/busybox names a dynamic loader (PT_INTERP): it is the dynamically linked `busybox` package",
            "replace it: `apt-get install busybox-static` (it removes `busybox`)",
        ))
    } else {
        Ok("/bin/busybox has no PT_INTERP header: it is static".into())
    }
}

fn ip_forward(_: &Context) -> Outcome {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let value = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {path}: {e}"), "check that /proc is mounted"))?;
    match value.trim() {
        "1" => Ok("net.ipv4.ip_forward = 1".into()),
        other => {
            Err(Failure::new(format!("net.ipv4.ip_forward = {other}"), "turn it on: `sysctl -w net.ipv4.ip_forward=1`"))
        }
    }
}

fn doctor_passes(ctx: &Context) -> Outcome {
    let report = doctor::run(&ctx.paths);
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    if failed.is_empty() {
        let warnings = report.checks.iter().filter(|c| c.status == Status::Warn).count();
        Ok(format!("{} checks, no failure, {warnings} warnings", report.checks.len()))
    } else {
        Err(Failure::new(failed.join("; "), "run `sudo kthw doctor` and apply the fix it prints under each FAIL"))
    }
}

fn report_saved(ctx: &Context) -> Outcome {
    let path = ctx.paths.lab().join(DOCTOR_REPORT);
    let save = format!("save it: `sudo kthw doctor --json > {}`", path.display());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display()), save.clone()))?;
    let saved: doctor::Report = serde_json::from_str(&text)
        .map_err(|e| Failure::new(format!("{} is not a doctor report: {e}", path.display()), save.clone()))?;
    if saved.host != host::hostname() {
        return Err(Failure::new(
            format!("the saved report is from host {:?}, this is {:?}", saved.host, host::hostname()),
            save,
        ));
    }
    let mode = CgroupLayout::detect().map(|l| l.mode.to_string()).unwrap_or_else(|_| "unknown".into());
    if saved.cgroup_mode != mode {
        return Err(Failure::new(
            format!("the saved report says cgroups are {}, but they are {mode} now", saved.cgroup_mode),
            save,
        ));
    }
    if !saved.passed {
        return Err(Failure::new("the saved report has failures", format!("fix them, then {save}")));
    }
    Ok(format!("{} is this machine's passing report (cgroups {mode})", path.display()))
}
