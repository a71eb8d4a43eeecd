//! Lab 06's reference answer passes its checker: etcd and `kthw apiserver` on free
//! loopback ports, objects made with kubectl and curl, a 409, a resumed watch.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `solution.sh [cleanup]` for one test home and set of ports.
struct Solution {
    home: TestHome,
    env: Vec<(&'static str, String)>,
}

impl Solution {
    fn run(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/06-apiserver/solution.sh");
        let mut command = Command::new("bash");
        command.arg(script).args(args).env("KTHW", KTHW).env("KTHW_HOME", self.home.path());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.output().unwrap()
    }
}

impl Drop for Solution {
    fn drop(&mut self) {
        let _ = self.run(&["cleanup"]);
    }
}

// After solution.sh (run twice: it is idempotent), `kthw lab check 06` passes all stages.
#[test]
fn lab_06_passes_after_the_reference_answer() {
    require!(Need::Command("etcd"), Need::Command("kubectl"), Need::Command("curl"));
    let env = vec![
        ("KTHW_LAB06_API", format!("http://127.0.0.1:{}", free_port())),
        ("KTHW_LAB06_ETCD", format!("http://127.0.0.1:{}", free_port())),
        ("KTHW_LAB06_ETCD_PEER", format!("http://127.0.0.1:{}", free_port())),
    ];
    let solution = Solution { home: TestHome::new(), env };
    for _ in 0..2 {
        let out = solution.run(&[]);
        assert!(out.status.success(), "solution.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut check = Command::new(KTHW);
    check.args(["lab", "check", "06"]).env("KTHW_HOME", solution.home.path());
    for (key, value) in &solution.env {
        check.env(key, value);
    }
    let out = check.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lab 06 failed:\n{text}");
    assert!(text.ends_with("Lab 06 PASSED: 5/5 stages\n"), "{text}");
}
