//! End-to-end test of `kthw reset`: everything an instance made is removed, and only that.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use kthw_lab::host::CgroupLayout;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

fn sh(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}

/// Runs `kthw reset --force` when dropped, so a failing assertion leaves nothing behind.
struct ResetOnDrop(PathBuf);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_kthw"))
            .args(["reset", "--force"])
            .env("KTHW_HOME", &self.0)
            .stdout(Stdio::null())
            .status();
    }
}

// `kthw reset --force` kills our processes, removes our cgroups, unmounts our mounts,
// deletes our interfaces and iptables chains and our state directories.
#[test]
fn reset_removes_everything_of_the_instance() {
    require!(Need::Root, Need::Command("ip"), Need::Command("iptables"), Need::Controller("pids"));
    let home = TestHome::new();
    let paths = &home.paths;
    let _cleanup = ResetOnDrop(home.path().to_path_buf());

    // A mount under the state directory, with a file that must survive elsewhere.
    let mnt = paths.state.join("containers/x/rootfs");
    std::fs::create_dir_all(&mnt).unwrap();
    sh("mount", &["-t", "tmpfs", "tmpfs", mnt.to_str().unwrap()]);
    // A cgroup of ours with a process in it.
    let layout = CgroupLayout::detect().unwrap();
    let pids_root = layout.hierarchy_for("pids").unwrap().path.join(paths.cgroup_root());
    let cgroup: PathBuf = pids_root.join("c1");
    std::fs::create_dir_all(&cgroup).unwrap();
    let mut sleeper = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(cgroup.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    // An interface and an iptables chain of ours, with a jump into the chain.
    let link = paths.name("t0");
    sh("ip", &["link", "add", &link, "type", "bridge"]);
    let chain = paths.chain("TEST");
    sh("iptables", &["-w", "5", "-N", &chain]);
    sh("iptables", &["-w", "5", "-A", "FORWARD", "-i", &link, "-j", &chain]);

    let out = Command::new(env!("CARGO_BIN_EXE_kthw"))
        .args(["reset", "--force"])
        .env("KTHW_HOME", home.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&link) && text.contains(&chain), "{text}");

    assert!(sleeper.wait().unwrap().code().is_none(), "the process in our cgroup was killed");
    assert!(!pids_root.exists(), "cgroup left: {}", pids_root.display());
    assert!(!std::path::Path::new("/sys/class/net").join(&link).exists(), "interface left");
    let rules = Command::new("iptables").args(["-w", "5", "-S"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&rules.stdout).contains(&chain), "iptables chain or jump left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(mnt.to_str().unwrap()), "mount left");
    assert!(!paths.state.exists() && !paths.run.exists(), "state directories left");

    // A second reset finds nothing.
    let again = Command::new(env!("CARGO_BIN_EXE_kthw"))
        .args(["reset", "--force"])
        .env("KTHW_HOME", home.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("Nothing to remove"));
}

// Without --force and without a terminal, reset refuses and removes nothing.
#[test]
fn reset_without_force_and_terminal_refuses() {
    let home = TestHome::new();
    std::fs::create_dir_all(home.paths.state.join("images")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kthw"))
        .arg("reset")
        .env("KTHW_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --force"));
    assert!(home.paths.state.join("images").exists());
}
