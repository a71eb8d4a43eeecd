//! End-to-end tests of the assembled `kthw` binary's command line.

use std::process::Command;

fn kthw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kthw")).args(args).output().expect("run kthw")
}

// `kthw --help` lists one command group per written chapter, each marked with its chapter.
#[test]
fn help_lists_chapter_groups() {
    let out = kthw(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["doctor", "lab", "reset", "completions"] {
        assert!(help.contains(&format!("\n  {command} ")), "{command} missing from:\n{help}");
    }
    assert!(help.contains("[ch 0]"), "{help}");
}

// `kthw --version` prints the package version.
#[test]
fn version_is_printed() {
    let out = kthw(&["--version"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("kthw {}", env!("CARGO_PKG_VERSION")));
}

// Completion scripts are generated for bash, zsh and fish, and know the subcommands.
#[test]
fn completions_for_three_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kthw(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("doctor"), "{shell} completion does not know `doctor`");
    }
    let out = kthw(&["completions", "powershell-or-such"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: bash, zsh, fish"));
}

// RUST_LOG controls the logs: they go to stderr, never into a command's output.
#[test]
fn logs_go_to_stderr() {
    let out = Command::new(env!("CARGO_BIN_EXE_kthw")).args(["lab", "list"]).env("RUST_LOG", "trace").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("00  "));
}

// A bad flag is a clear error with usage, not a panic.
#[test]
fn bad_flags_are_clear_errors() {
    let out = kthw(&["lab", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("required arguments were not provided"));
    let out = kthw(&["lab", "check", "77"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no lab 77; `kthw lab list` shows the labs"));
}
