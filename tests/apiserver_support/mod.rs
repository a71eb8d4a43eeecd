//! Shared by the `apiserver_*` tests: a real `kthw apiserver` process on a free port.
#![allow(dead_code)] // Each test file uses a different part.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `kthw apiserver` with a store in a temporary folder; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sled:{}", dir.path().join("store").display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_kthw"))
            .args(["apiserver", "--store", &store, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url =
            line.split_whitespace().find(|w| w.starts_with("http://")).expect("the server prints its URL").to_string();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: k, cluster: {{server: \"{url}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: k, context: {{cluster: k, user: u, namespace: default}}}}]\n\
             current-context: k\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        Server { child, url, dir }
    }

    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Runs kubectl to completion (at most 30 s: a hang is a failure) and returns
    /// (success, stdout, stderr).
    pub fn kubectl(&self, kubectl: &Path, args: &[&str]) -> (bool, String, String) {
        let mut child = self.kubectl_command(kubectl, args).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("`kubectl {}` hung for 30 s", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (mut out, mut err) = (String::new(), String::new());
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (status.success(), out, err)
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn ok(&self, kubectl: &Path, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(kubectl, args);
        assert!(ok, "`kubectl {}` failed:\n{out}\n{err}", args.join(" "));
        out
    }

    pub fn kubectl_command(&self, kubectl: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl);
        command
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
