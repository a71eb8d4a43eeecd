//! `kthw doctor`: can this machine run every chapter of the book?
//!
//! `kubeadm init` starts with *preflight checks*: it refuses to build a control plane on a
//! machine with swap on, a missing `conntrack`, or IP forwarding off, and says how to fix
//! each. `docker info` and `containerd config dump` answer similar questions. Our doctor
//! does the same for the book, in two steps that are easy to test apart:
//!
//! 1. [`probe`] looks at the machine and gathers [`probe::Facts`] — by *trying* things
//!    (create each kind of namespace, mount an overlay, make a test cgroup), not by reading
//!    kernel config, because a config can say yes while the kernel (or the container we
//!    run in) says no;
//! 2. [`judge`] turns facts into [`Check`]s — ok, warn or fail, each with a reason and a
//!    fix. It is a pure function, so its rules are unit-tested over made-up machines.
//!
//! What kubeadm does differently: its checks can be skipped one by one
//! (`--ignore-preflight-errors`), and it also checks ports, swap and container runtimes,
//! which arrive in later chapters here.

pub mod judge;
pub mod probe;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::Paths;

// ANCHOR: check
/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The machine has what the book needs.
    Ok,
    /// Something will not work as the book shows, but you can go on.
    Warn,
    /// A chapter cannot work here until this is fixed.
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Short and stable, e.g. `namespace net` or `cgroup memory`.
    pub name: String,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// How to fix it, for a warning or a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}
// ANCHOR_END: check

impl Check {
    pub fn ok(name: impl Into<String>, message: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Ok, message: message.into(), fix: None }
    }
    pub fn warn(name: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Warn, message: message.into(), fix: Some(fix.into()) }
    }
    pub fn fail(name: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Fail, message: message.into(), fix: Some(fix.into()) }
    }
}

/// The whole report, as `kthw doctor --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub host: String,
    pub kernel: String,
    /// `v1`, `hybrid`, `v2`, or `unknown`.
    pub cgroup_mode: String,
    pub checks: Vec<Check>,
    /// Whether no check failed.
    pub passed: bool,
}

/// Probes this machine and judges the result.
pub fn run(paths: &Paths) -> Report {
    let facts = probe::probe(paths);
    report(&facts)
}

/// Builds the report from facts (pure).
pub fn report(facts: &probe::Facts) -> Report {
    let checks = judge::judge(facts);
    Report {
        host: facts.host.clone(),
        kernel: facts.kernel.clone().map(|k| k.release).unwrap_or_else(|_| "unknown".into()),
        cgroup_mode: facts.cgroups.as_ref().map(|l| l.mode.to_string()).unwrap_or_else(|_| "unknown".into()),
        passed: checks.iter().all(|c| c.status != Status::Fail),
        checks,
    }
}

/// Formats the report for a terminal: one line per check, the fix under each warning
/// or failure, and a summary.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "kthw doctor: host {}, kernel {}, cgroups {}\n", report.host, report.kernel, report.cgroup_mode);
    let width = report.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in &report.checks {
        let mark = match check.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "{mark}  {:<width$}  {}", check.name, check.message);
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "      {:<width$}  fix: {fix}", "");
        }
    }
    let (ok, warnings, failures) = judge::counts(&report.checks);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = write!(out, "\n{ok} ok, {}, {}: ", plural(warnings, "warning"), plural(failures, "failure"));
    out.push_str(if report.passed {
        "this machine can run the book.\n"
    } else {
        "fix the failures above, then run `kthw doctor` again.\n"
    });
    out
}
