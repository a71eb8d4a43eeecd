//! The official Kubernetes Python client (`pip install kubernetes==37.0.2`) against a real
//! `kthw apiserver`: list, create, replace (409), patch, watch and delete.
//! The script is tests/python/apiserver_client.py; `KTHW_PYTHON` picks the interpreter.

mod apiserver_support;

use std::process::Command;

use apiserver_support::Server;
use kthw_lab::require;
use kthw_lab::systest::{Need, is_ci};

fn python() -> String {
    std::env::var("KTHW_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

// The Python client's calls all work, including its watch (newline-split events).
#[test]
fn python_client_drives_the_apiserver() {
    require!(Need::Command("python3"));
    let has_client =
        Command::new(python()).args(["-c", "import kubernetes"]).output().is_ok_and(|o| o.status.success());
    if !has_client {
        let msg = "the Python `kubernetes` package is missing: pip install kubernetes==37.0.2 (or set KTHW_PYTHON)";
        assert!(!is_ci(), "CI=true forbids skipping: {msg}");
        eprintln!("SKIPPED python_client_drives_the_apiserver: {msg}");
        return;
    }
    let server = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/apiserver_client.py");
    let out = Command::new(python()).arg(script).arg(server.dir.path().join("kubeconfig")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in ["list ok", "create ok", "conflict ok", "patch ok", "watch ok", "delete ok"] {
        assert!(stdout.contains(step), "missing {step:?} in\n{stdout}");
    }
}
