//! System tests of the pause container: our `kthw-pause` binary, packaged as an image
//! by `kthw_pods::pause::image` and run by chapter 4's OCI runtime, is PID 1 of its
//! PID namespace, reaps orphans that are re-parented to it, and exits 0 on SIGTERM.
//! Root only; every test has its own `TestHome` and is cleaned up with `kthw reset`.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_pods::pause;
use kthw_rootfs::Store;
use kthw_rootfs::rootfs::Rootfs;
use kthw_runtime::Runtime;
use kthw_runtime::lifecycle::CreateOptions;
use kthw_runtime::spec::{busybox_rootfs, default_spec};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The pause binary: `$KTHW_PAUSE` if set (e.g. a static build, see `kthw_pods::pause`),
/// else the one cargo built for these tests (dynamically linked in a normal build).
fn pause_binary() -> PathBuf {
    std::env::var_os("KTHW_PAUSE").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kthw-pause")), PathBuf::from)
}

/// One test's runtime and image store; containers deleted and `kthw reset` on drop.
struct Lab {
    home: TestHome,
    rt: Runtime,
    store: Store,
}

impl Lab {
    fn new() -> Lab {
        let home = TestHome::new();
        let rt = Runtime::for_paths(&home.paths);
        let store = Store::open(home.paths.images()).unwrap();
        Lab { home, rt, store }
    }

    /// Writes `dir/config.json`: the default spec running `args`.
    fn write_spec(dir: &Path, args: &[&str]) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let spec = default_spec(&args).unwrap();
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    }

    /// Creates and starts container `id` from `bundle`, stderr into a file; returns its host pid.
    fn start(&self, id: &str, bundle: &Path) -> i32 {
        let err = self.home.path().join(format!("{id}.err"));
        let fd: OwnedFd = std::fs::File::create(&err).unwrap().into();
        let opts = CreateOptions { stdio: [None, None, Some(fd)], ..Default::default() };
        let state = self.rt.create(id, bundle, opts).unwrap_or_else(|e| panic!("create {id}: {e}"));
        self.rt.start(id).unwrap_or_else(|e| panic!("start {id}: {e}"));
        state.pid
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for state in self.rt.list().unwrap_or_default() {
            let _ = self.rt.delete(&state.id, true);
        }
        if let Ok(mut rootfs) = Rootfs::open(&self.home.paths, "pause") {
            let _ = rootfs.unmount();
        }
        let problems = kthw_lab::reset::plan(&self.home.paths).map(|plan| kthw_lab::reset::apply(&plan));
        match kthw_lab::reset::plan(&self.home.paths) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => eprintln!("cleanup left {left:?}: {problems:?}"),
            Err(e) => eprintln!("cleanup: {e}"),
        }
    }
}

/// The process's pid inside its own PID namespace: the last number of `NSpid:`.
fn pid_inside(pid: i32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("NSpid:")).expect("NSpid in /proc/PID/status");
    line.split_whitespace().last().unwrap().parse().unwrap()
}

/// The children of `pid`, from `/proc/PID/task/PID/children`.
fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits up to `limit` for our child `pid` to exit; its exit code, or `None` on time-out.
fn wait_exit(pid: i32, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::Exited(_, code) => return Some(code),
            WaitStatus::Signaled(_, sig, _) => return Some(128 + sig as i32),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    None
}

/// Polls `ok` every 10 ms for up to `limit`.
fn eventually(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// The pause image is made locally: one layer with /pause (and, for a dynamic binary,
// its loader and libraries), Entrypoint ["/pause"], no Cmd, user 65535.
#[test]
fn pause_image_is_made_locally_with_its_entrypoint() {
    require!(Need::Root);
    let lab = Lab::new();
    let image = pause::image(&lab.store, &pause_binary(), pause::IMAGE).unwrap();
    let config = image.config.config().clone().unwrap();
    assert_eq!(config.entrypoint().as_deref(), Some(&["/pause".to_string()][..]));
    assert_eq!(config.cmd(), &None);
    assert_eq!(config.user().as_deref(), Some(pause::USER));
    assert_eq!(image.diff_ids().len(), 1);
    assert_eq!(lab.store.image(pause::IMAGE).unwrap().id(), image.id());
}

// The pause image runs with chapter 4's runtime: pause is PID 1 of the container and
// exits 0 promptly on SIGTERM (PID 1 gets only the signals it handles).
#[test]
fn pause_is_pid_1_and_exits_0_on_sigterm() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    pause::image(&lab.store, &pause_binary(), pause::IMAGE).unwrap();
    let bundle = lab.home.path().join("bundles/pause");
    let mut rootfs = Rootfs::create(&lab.home.paths, &lab.store, pause::IMAGE, "pause", None, vec![]).unwrap();
    rootfs.mount(&lab.store, &bundle.join("rootfs")).unwrap();
    Lab::write_spec(&bundle, &[pause::ENTRYPOINT]);

    let pid = lab.start("pause", &bundle);
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe.ends_with("pause"))),
        "pause did not exec"
    );
    assert_eq!(pid_inside(pid), 1, "pause is PID 1 of its namespace");
    // Still running a moment later: pause() sleeps, it does not return.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(wait_exit(pid, Duration::ZERO), None, "pause exited on its own");

    let sent = Instant::now();
    lab.rt.kill("pause", Signal::SIGTERM).unwrap();
    let code = wait_exit(pid, Duration::from_secs(2));
    assert_eq!(code, Some(0), "exit code after SIGTERM (None: still running after 2 s)");
    assert!(sent.elapsed() < Duration::from_secs(1), "took {:?}", sent.elapsed());
    let stderr = std::fs::read_to_string(lab.home.path().join("pause.err")).unwrap();
    assert!(stderr.contains("Shutting down, got signal: Terminated"), "{stderr}");
    assert!(!stderr.contains("Warning"), "as PID 1 there is no warning: {stderr}");
    lab.rt.delete("pause", false).unwrap();
    rootfs.remove(&lab.store).unwrap();
}

// An orphan that exits inside the pod's PID namespace is reaped by pause: it is
// re-parented to pause while it runs, and leaves no zombie when it exits.
#[test]
fn pause_reaps_an_orphan() {
    require!(Need::Root);
    let lab = Lab::new();
    // busybox for the helper's shell, and pause with what it needs to start.
    let bundle = lab.home.path().join("bundles/reap");
    let root = bundle.join("rootfs");
    busybox_rootfs(&root).unwrap();
    let mut files = vec![(pause_binary(), PathBuf::from("pause"))];
    if !pause::is_static(&pause_binary()).unwrap() {
        for lib in pause::libraries(&pause_binary()).unwrap() {
            files.push((lib.clone(), lib.strip_prefix("/").unwrap().to_path_buf()));
        }
    }
    for (from, to) in files {
        std::fs::create_dir_all(root.join(&to).parent().unwrap()).unwrap();
        std::fs::copy(&from, root.join(&to)).unwrap();
    }
    Lab::write_spec(&bundle, &[pause::ENTRYPOINT]);
    let pid = lab.start("reap", &bundle);
    assert!(eventually(Duration::from_secs(5), || pid_inside(pid) == 1
        && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e.ends_with("pause"))));

    // The shell starts `sleep` in the background and exits at once: `sleep` is orphaned.
    let script = "sleep 1 & exit 0";
    let helper = kthw_namespaces::exec::spawn(
        Pid::from_raw(pid),
        &["/bin/sh".into(), "-c".into(), script.into()],
        kthw_namespaces::spec::Stdio::default(),
    )
    .unwrap();
    assert_eq!(helper.wait().unwrap(), 0);

    let mut orphan = None;
    assert!(
        eventually(Duration::from_millis(900), || {
            orphan = children(pid).into_iter().next();
            orphan.is_some()
        }),
        "the orphan was not re-parented to pause"
    );
    let orphan = orphan.unwrap();
    // (Its name may still be `sh`: busybox forks, then runs `sleep` with or without exec.)
    assert!(pid_inside(orphan) > 1, "the orphan lives in the pod's PID namespace");
    // Reaped: gone from the process table, not left as a zombie (state Z) child of pause.
    assert!(
        eventually(Duration::from_secs(5), || !Path::new(&format!("/proc/{orphan}")).exists()),
        "orphan {orphan} is left: {}",
        std::fs::read_to_string(format!("/proc/{orphan}/stat")).unwrap_or_default()
    );
    assert!(children(pid).is_empty());
    assert_eq!(wait_exit(pid, Duration::ZERO), None, "pause keeps running after reaping");
}
