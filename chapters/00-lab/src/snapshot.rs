//! insta settings with kthw's standard redactions, for the snapshot tests of every
//! chapter (enable the `snapshots` feature in dev-dependencies).
//!
//! A snapshot is a reference answer: the book shows it, and a test fails when the
//! output drifts. What differs from run to run — times, durations, random ids, digests,
//! the test's own state folder — is replaced by a `[NAME]` placeholder,
//! so what is left is what a learner should see.

/// The standard redactions, applied in order: `(regex, replacement)`.
pub const FILTERS: &[(&str, &str)] = &[
    // RFC 3339 timestamps, e.g. 2026-11-22T03:04:05.678Z
    (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", "[TIME]"),
    // sha256 digests and 64-hex container ids
    (r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]"),
    (r"\b[0-9a-f]{64}\b", "[ID]"),
    // UUIDs (Kubernetes uids)
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "[UUID]"),
    // test homes and their instance names
    (r"/tmp/kthw-test-\d+-\d+", "[HOME]"),
    (r"\bk[0-9a-f]{7}\b", "[INSTANCE]"),
    // durations such as 12ms or 1.5s
    (r"\b\d+(\.\d+)?(ns|µs|us|ms|s)\b", "[DURATION]"),
];
// Process ids are not in this list: a pattern such as "pid N" would also hide the
// "PID 1" that chapter 1 is about. A test knows the PIDs it started and hides them by
// value (`settings.add_filter(&pid.to_string(), "[PID]")`).

/// insta settings with [`FILTERS`], no expression in the header (so book includes start
/// at a known line), and snapshots named without the module path.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (regex, replacement) in FILTERS {
        settings.add_filter(regex, *replacement);
    }
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings
}
