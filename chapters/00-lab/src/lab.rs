//! The lab framework: a lab is an ordered list of stages, each a check of real system
//! state or of a command's output, and the checker runs them in order.
//!
//! Each chapter crate builds its own [`Lab`] (so its checks reuse the chapter's code);
//! the `kthw` binary only registers them. `kthw lab check NN` prints one line per stage,
//! and on the first failure names the book section to reread and the likely cause. The
//! stages after a failure are reported as skipped: later stages build on earlier ones,
//! as the steps of the lab sheet do.
//!
//! With `--json` the checker writes a [`Report`] that an instructor collects from many
//! learners; its format is documented in `labs/README.md` and versioned by
//! [`REPORT_FORMAT`].
//!
//! What real tools do differently: Kubernetes the Hard Way has no checker at all; the
//! CKA exam's graders are shell scripts run against the candidate's cluster. Ours are Rust
//! functions that reuse the chapter's own code to look at the machine.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::Paths;
use crate::host::{self, CgroupLayout, Kernel};

/// The version of the JSON report format, bumped on any incompatible change.
pub const REPORT_FORMAT: &str = "kthw.lab.report/v1";

// ANCHOR: stage
/// What a stage's check returns: evidence of success, or a [`Failure`].
pub type Outcome = Result<String, Failure>;

/// One step of a lab: a name, the book section it exercises, and a check.
pub struct Stage {
    /// What the learner should have achieved, e.g. "IP forwarding is on".
    pub name: &'static str,
    /// The book page and heading to reread when it fails, relative to `book/src`,
    /// e.g. `ch00-lab-machine.md#ip-forwarding`. A test checks that it exists.
    pub book: &'static str,
    /// Looks at the machine and says whether the stage is done.
    pub check: Box<dyn Fn(&Context) -> Outcome + Send + Sync>,
}

/// Why a stage failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What the checker saw, e.g. "net.ipv4.ip_forward is 0".
    pub what: String,
    /// The most likely cause, phrased as what to do, e.g. "run `sysctl -w ...`".
    pub likely_cause: String,
}
// ANCHOR_END: stage

impl Failure {
    pub fn new(what: impl Into<String>, likely_cause: impl Into<String>) -> Failure {
        Failure { what: what.into(), likely_cause: likely_cause.into() }
    }
}

/// A lab: one per chapter.
pub struct Lab {
    /// The chapter number as two digits: `00`, `01`, ...
    pub id: &'static str,
    /// The chapter's title.
    pub title: &'static str,
    /// The lab sheet, relative to the repository: `labs/00-lab/README.md`.
    pub sheet: &'static str,
    pub stages: Vec<Stage>,
}

impl Stage {
    /// A stage from a name, a book reference and a check function.
    pub fn new(
        name: &'static str,
        book: &'static str,
        check: impl Fn(&Context) -> Outcome + Send + Sync + 'static,
    ) -> Stage {
        Stage { name, book, check: Box::new(check) }
    }
}

/// What a check may look at besides the machine itself.
#[derive(Debug, Clone)]
pub struct Context {
    /// The state directories of the kthw installation under test.
    pub paths: Paths,
}

/// How one stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageResult {
    Pass,
    Fail,
    /// Not run, because an earlier stage failed.
    Skipped,
}

/// One stage in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageReport {
    pub name: String,
    pub result: StageResult,
    /// The evidence on a pass, what was seen on a failure, why on a skip.
    pub detail: String,
    /// The book section to reread (on a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_section: Option<String>,
    /// What most likely went wrong (on a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely_cause: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
}

// ANCHOR: report
/// The result of checking one lab on one machine: what an instructor collects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// The lab's chapter: `00`, `01`, ...
    pub chapter: String,
    pub title: String,
    /// The machine's host name.
    pub host: String,
    /// The kernel release.
    pub kernel: String,
    /// `v1`, `hybrid` or `v2`; `unknown` if no cgroup filesystem is mounted.
    pub cgroup_mode: String,
    /// The version of kthw that checked.
    pub kthw_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    /// Whether every stage passed.
    pub passed: bool,
    pub stages: Vec<StageReport>,
}
// ANCHOR_END: report

// ANCHOR: run
/// Runs the stages of `lab` in order, calling `progress` after each one (the CLI prints
/// it), and returns the report. The first failure skips the stages after it.
pub fn run(lab: &Lab, ctx: &Context, mut progress: impl FnMut(&StageReport)) -> Report {
    let started = SystemTime::now();
    let clock = Instant::now();
    let mut stages = Vec::with_capacity(lab.stages.len());
    let mut failed = false;
    for stage in &lab.stages {
        let stage_started = SystemTime::now();
        let stage_clock = Instant::now();
        let report = if failed {
            StageReport {
                name: stage.name.to_string(),
                result: StageResult::Skipped,
                detail: "an earlier stage failed".to_string(),
                book_section: None,
                likely_cause: None,
                started_at: rfc3339(stage_started),
                duration_ms: 0,
            }
        } else {
            let outcome = (stage.check)(ctx);
            let (result, detail, book_section, likely_cause) = match outcome {
                Ok(evidence) => (StageResult::Pass, evidence, None, None),
                Err(f) => (StageResult::Fail, f.what, Some(stage.book.to_string()), Some(f.likely_cause)),
            };
            failed = result == StageResult::Fail;
            StageReport {
                name: stage.name.to_string(),
                result,
                detail,
                book_section,
                likely_cause,
                started_at: rfc3339(stage_started),
                duration_ms: millis(stage_clock.elapsed()),
            }
        };
        progress(&report);
        stages.push(report);
    }
    Report {
        format: REPORT_FORMAT.to_string(),
        chapter: lab.id.to_string(),
        title: lab.title.to_string(),
        host: host::hostname(),
        kernel: Kernel::current().map(|k| k.release).unwrap_or_else(|_| "unknown".into()),
        cgroup_mode: CgroupLayout::detect().map(|l| l.mode.to_string()).unwrap_or_else(|_| "unknown".into()),
        kthw_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: rfc3339(started),
        finished_at: rfc3339(SystemTime::now()),
        duration_ms: millis(clock.elapsed()),
        passed: !failed,
        stages,
    }
}
// ANCHOR_END: run

/// Formats one stage as the checker prints it: a mark, the name, and on failure the
/// book section and likely cause on their own lines.
pub fn render_stage(stage: &StageReport) -> String {
    let mark = match stage.result {
        StageResult::Pass => "PASS",
        StageResult::Fail => "FAIL",
        StageResult::Skipped => "SKIP",
    };
    let mut out = format!("{mark}  {}", stage.name);
    match stage.result {
        StageResult::Pass => out.push_str(&format!("\n      {}", stage.detail)),
        StageResult::Fail => {
            out.push_str(&format!("\n      saw:     {}", stage.detail));
            if let Some(cause) = &stage.likely_cause {
                out.push_str(&format!("\n      likely:  {cause}"));
            }
            if let Some(section) = &stage.book_section {
                out.push_str(&format!("\n      reread:  book/src/{section}"));
            }
        }
        StageResult::Skipped => {}
    }
    out
}

/// `GET path` on `addr`, HTTP/1.0 by hand (a checker needs no HTTP client), with 3 s
/// timeouts: the status line and the body. For labs whose stage fetches a page that a
/// container serves (on loopback or on the project's own bridge).
///
/// # Errors
/// What failed (connect, send or read) and where, as a stage's evidence.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(String, String), String> {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(3);
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip()).as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((head.lines().next().unwrap_or("").to_string(), body.to_string()))
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T03:04:05.678Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(stages: Vec<Stage>) -> Lab {
        Lab { id: "99", title: "Test lab", sheet: "labs/99/README.md", stages }
    }

    fn ctx() -> Context {
        Context { paths: Paths::default() }
    }

    // Stages run in order; every stage passing makes a passing report.
    #[test]
    fn all_stages_pass() {
        let lab = lab(vec![
            Stage::new("first", "a.md#x", |_| Ok("one".into())),
            Stage::new("second", "a.md#y", |_| Ok("two".into())),
        ]);
        let mut seen = Vec::new();
        let report = run(&lab, &ctx(), |s| seen.push(s.name.clone()));
        assert_eq!(seen, ["first", "second"]);
        assert!(report.passed);
        assert_eq!(report.format, REPORT_FORMAT);
        assert_eq!(report.chapter, "99");
        assert!(report.stages.iter().all(|s| s.result == StageResult::Pass && s.book_section.is_none()));
    }

    // The first failure names the book section and cause, and the rest are skipped, not run.
    #[test]
    fn first_failure_skips_the_rest() {
        let lab = lab(vec![
            Stage::new("ok", "a.md#x", |_| Ok("fine".into())),
            Stage::new("broken", "a.md#why", |_| Err(Failure::new("saw 0", "run sysctl"))),
            Stage::new("later", "a.md#z", |_| panic!("must not run after a failure")),
        ]);
        let report = run(&lab, &ctx(), |_| {});
        assert!(!report.passed);
        let broken = &report.stages[1];
        assert_eq!(broken.result, StageResult::Fail);
        assert_eq!(broken.book_section.as_deref(), Some("a.md#why"));
        assert_eq!(broken.likely_cause.as_deref(), Some("run sysctl"));
        assert_eq!(report.stages[2].result, StageResult::Skipped);
        let text = render_stage(broken);
        assert!(text.contains("FAIL  broken") && text.contains("reread:  book/src/a.md#why"), "{text}");
    }

    // The JSON report round-trips and uses the documented field names.
    #[test]
    fn report_json_has_documented_fields() {
        let report = run(&lab(vec![Stage::new("s", "a.md#x", |_| Ok("e".into()))]), &ctx(), |_| {});
        let json = serde_json::to_value(&report).unwrap();
        for field in [
            "format",
            "chapter",
            "title",
            "host",
            "kernel",
            "cgroup_mode",
            "kthw_version",
            "started_at",
            "finished_at",
            "duration_ms",
            "passed",
            "stages",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["stages"][0]["result"], "pass");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
