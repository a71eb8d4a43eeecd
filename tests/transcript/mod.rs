//! Shared by the end-to-end tests whose output the book shows: record a `kthw` command
//! as a learner would see it in a root shell.

use std::process::{Command, Output};

/// Runs `command` and appends to `transcript` what a terminal would show: the prompt
/// line `# kthw SHOWN`, the command's stdout, then its stderr, then `[exit status N]`
/// when it did not exit 0.
pub fn record(transcript: &mut String, command: &mut Command, shown: &str) -> Output {
    let out = command.output().expect("run kthw");
    transcript.push_str(&format!("# kthw {shown}\n"));
    transcript.push_str(&String::from_utf8_lossy(&out.stdout));
    transcript.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        transcript.push_str(&format!("[exit status {}]\n", out.status.code().unwrap_or(-1)));
    }
    out
}
