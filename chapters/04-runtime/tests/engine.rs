//! The engine, through its library API: containers from a busybox image, with their
//! supervisor, log, network, limits and volumes, and everything undone by `rm`.
//!
//! Every test has its own `TestHome` (state folders, instance prefix, bridge and subnet)
//! and a guard that removes its containers and runs `kthw reset` for that instance when
//! the test ends, also when it fails. The supervisor is forked by the library, which must
//! not happen while another thread of the process is busy: the tests take one lock.
//! Traffic only goes to loopback and to the test's own bridge.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_runtime::engine::record::Status;
use kthw_runtime::engine::{Engine, ExecOptions, RunOptions, RunOutcome};

static FORK_LOCK: Mutex<()> = Mutex::new(());

/// A test's engine with a `busybox` image; everything of its instance is removed on drop.
struct Lab {
    engine: Engine,
    home: TestHome,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Lab {
    fn new() -> Lab {
        let guard = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let home = TestHome::new();
        let engine = Engine::open(&home.paths).expect("open the engine");
        let tree = home.path().join("busybox");
        kthw_runtime::spec::busybox_rootfs(&tree).expect("a busybox tree");
        kthw_rootfs::import::import_dir(&engine.store, &tree, "busybox").expect("import busybox");
        Lab { engine, home, _one_at_a_time: guard }
    }

    /// `kthw run -d --name NAME busybox ARGS` with `f` applied to the options.
    fn run_d(&self, name: &str, args: &[&str], f: impl FnOnce(&mut RunOptions)) -> String {
        let mut opts = RunOptions {
            image: "busybox".into(),
            command: args.iter().map(|s| s.to_string()).collect(),
            name: Some(name.into()),
            detach: true,
            ..Default::default()
        };
        f(&mut opts);
        match self.engine.run(&opts).expect("kthw run -d") {
            RunOutcome::Detached { id } => id,
            other => panic!("expected a detached container, got {other:?}"),
        }
    }

    fn status(&self, name: &str) -> Status {
        self.engine.find(name).expect("the container").0.status()
    }

    /// Waits until the container has exited; its exit code.
    fn wait_exit(&self, name: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.status(name) {
                Status::Exited { code, .. } => return code,
                s if Instant::now() > deadline => panic!("{name} did not exit: {s:?}"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn logs(&self, name: &str) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        self.engine.logs(name, false, &mut out, &mut err).expect("logs");
        (String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }

    /// Waits until `name`'s stdout contains `text`.
    fn wait_log(&self, name: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.logs(name).0.contains(text) {
            assert!(Instant::now() < deadline, "{name} never printed {text:?}: {:?}", self.logs(name));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        self.engine.inspect(name).expect("inspect")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Ok(all) = self.engine.list() {
            for (_, record) in all {
                if let Err(e) = self.engine.rm(&record.id, true) {
                    eprintln!("cleanup: rm {}: {e}", record.name);
                }
            }
        }
        let problems = kthw_lab::reset::plan(&self.home.paths).map(|plan| kthw_lab::reset::apply(&plan));
        match kthw_lab::reset::plan(&self.home.paths) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => eprintln!("cleanup left {left:?}: {problems:?}"),
            Err(e) => eprintln!("cleanup: {e}"),
        }
    }
}

/// A TCP port for this test process: high, and different per process and per use.
fn free_port(n: u16) -> u16 {
    20000 + (std::process::id() % 2000) as u16 * 10 + n
}

fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().expect("an address"), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

fn retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("gave up: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// A detached container runs under its supervisor, its output is in the log, and `stop`
// ends it with SIGTERM when it handles it: exit code 143.
#[test]
fn detached_container_runs_logs_and_stops_with_143() {
    require!(Need::Root, Need::Overlayfs, Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    let script = "trap 'echo bye; exit 143' TERM; echo ready; echo oops >&2; while true; do sleep 0.1; done";
    lab.run_d("svc", &["sh", "-c", script], |_| {});
    lab.wait_log("svc", "ready");
    assert!(matches!(lab.status("svc"), Status::Running { .. }), "{:?}", lab.status("svc"));
    assert_eq!(lab.engine.ps(false).unwrap().len(), 1, "ps shows the running container");
    assert_eq!(lab.logs("svc").1, "oops\n", "stderr lines go back to stderr");
    let t = Instant::now();
    lab.engine.stop("svc", Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "SIGTERM was enough: {:?}", t.elapsed());
    assert!(matches!(lab.status("svc"), Status::Exited { code: 143, .. }), "{:?}", lab.status("svc"));
    assert!(lab.logs("svc").0.ends_with("bye\n"), "the log has the output up to the end");
    assert!(lab.engine.ps(false).unwrap().is_empty(), "ps without -a hides an exited container");
    let json = lab.inspect("svc");
    assert_eq!(json["State"]["ExitCode"], 143);
    assert_eq!(json["State"]["Status"], "exited");
}

// A process that ignores SIGTERM (sleep as pid 1 has no handler) is SIGKILLed after the
// grace period: exit code 137.
#[test]
fn stop_kills_after_the_grace_period_with_137() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    lab.run_d("sleeper", &["sleep", "1000"], |o| o.network = Some("none".into()));
    let t = Instant::now();
    lab.engine.stop("sleeper", Duration::from_secs(1)).unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "it waited the grace period");
    assert!(matches!(lab.status("sleeper"), Status::Exited { code: 137, .. }), "{:?}", lab.status("sleeper"));
}

// -e sets the environment and -v binds a host folder; a :ro bind refuses writes.
#[test]
fn env_and_volumes_reach_the_container() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    let (ro, rw) = (lab.home.path().join("ro"), lab.home.path().join("rw"));
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("f"), "from the host\n").unwrap();
    let script = "echo $GREETING; cat /ro/f; echo x > /ro/new && echo wrote-ro; echo y > /rw/new && echo wrote-rw";
    lab.run_d("vol", &["sh", "-c", script], |o| {
        o.env = vec!["GREETING=hello".into()];
        o.volumes = vec![format!("{}:/ro:ro", ro.display()), format!("{}:/rw", rw.display())];
        o.network = Some("none".into());
    });
    lab.wait_exit("vol");
    let (out, err) = lab.logs("vol");
    assert_eq!(out, "hello\nfrom the host\nwrote-rw\n");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!ro.join("new").exists());
    assert_eq!(std::fs::read_to_string(rw.join("new")).unwrap(), "y\n");
    assert_eq!(lab.inspect("vol")["HostConfig"]["Binds"][0], format!("{}:/ro:ro", ro.display()));
}

// --memory and --cpus land in the container's cgroup.
#[test]
fn limits_land_in_the_cgroup() {
    require!(Need::Root, Need::Overlayfs, Need::Controller("memory"), Need::Controller("cpu"));
    let lab = Lab::new();
    let id = lab.run_d("limited", &["sleep", "1000"], |o| {
        o.memory = Some("64M".into());
        o.cpus = Some("0.5".into());
        o.network = Some("none".into());
    });
    let layout = kthw_lab::host::CgroupLayout::detect().unwrap();
    let cg = kthw_cgroups::Cgroup::open(&layout, &format!("{}/{id}", lab.home.paths.cgroup_root())).unwrap();
    let memory = cg.read("memory", "memory.max").or_else(|| cg.read("memory", "memory.limit_in_bytes"));
    assert_eq!(memory.as_deref().map(str::trim), Some("67108864"));
    let cpu = cg.read("cpu", "cpu.max").or_else(|| cg.read("cpu", "cpu.cfs_quota_us")).unwrap_or_default();
    assert!(cpu.starts_with("50000"), "{cpu}");
    assert_eq!(lab.inspect("limited")["HostConfig"]["NanoCpus"], 500_000_000u64);
}

// exec runs in the container's namespaces: same host name, and it sees the container's
// init as pid 1; its exit code comes back.
#[test]
fn exec_joins_the_container() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    let id = lab.run_d("box", &["sleep", "1000"], |o| {
        o.hostname = Some("inside".into());
        o.network = Some("none".into());
    });
    let opts = ExecOptions {
        command: vec!["sh".into(), "-c".into(), "hostname > /tmp/h; cat /proc/1/cmdline > /tmp/one; exit 7".into()],
        ..Default::default()
    };
    assert_eq!(lab.engine.exec("box", &opts).unwrap(), 7);
    let rootfs = lab.engine.container_dir(&id).join("bundle/rootfs");
    assert_eq!(std::fs::read_to_string(rootfs.join("tmp/h")).unwrap(), "inside\n");
    assert_eq!(std::fs::read_to_string(rootfs.join("tmp/one")).unwrap(), "sleep\u{0}1000\u{0}");
    let missing = ExecOptions { command: vec!["nosuch".into()], ..Default::default() };
    assert!(lab.engine.exec("box", &missing).unwrap_err().to_string().contains("not found"));
}

/// Whether `path` is a mount point now.
fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.display().to_string();
    info.lines().any(|l| l.split(' ').nth(4) == Some(path.as_str()))
}

// -p reaches a web server inside from 127.0.0.1, and rm removes everything the
// container had: mount, cgroup, veth, DNAT rules, address, rootfs, record, image hold.
#[test]
fn published_port_works_and_rm_removes_everything() {
    require!(Need::Root, Need::Overlayfs, Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    let port = free_port(1);
    let script = "mkdir /www; echo hello from inside > /www/index.html; echo up; exec httpd -f -p 80 -h /www";
    let id = lab.run_d("web", &["sh", "-c", script], |o| o.publish = vec![format!("127.0.0.1:{port}:80")]);
    lab.wait_log("web", "up");
    let body = retry(|| http_get(&format!("127.0.0.1:{port}"), "/index.html"));
    assert!(body.contains("hello from inside"), "{body}");

    let json = lab.inspect("web");
    let veth = json["NetworkSettings"]["HostVeth"].as_str().unwrap().to_string();
    assert!(Path::new("/sys/class/net").join(&veth).exists());
    let network = kthw_runtime::network::Network::open(&lab.home.paths).unwrap();
    assert!(!network.rules_of(&id).unwrap().is_empty(), "the DNAT rules exist while it runs");
    let dir = lab.engine.container_dir(&id);
    assert!(mounted(&dir.join("bundle/rootfs")));
    assert!(lab.engine.store.remove("busybox").is_err(), "the image is held while a container uses it");

    lab.engine.rm("web", true).unwrap();
    assert!(!mounted(&dir.join("bundle/rootfs")), "no mount");
    assert!(!dir.exists(), "no record");
    assert!(!Path::new("/sys/class/net").join(&veth).exists(), "no veth");
    assert!(network.rules_of(&id).unwrap().is_empty(), "no DNAT rules");
    assert!(network.endpoint(&id).unwrap().is_none(), "no address");
    let layout = kthw_lab::host::CgroupLayout::detect().unwrap();
    let left: Vec<_> = layout
        .mounts
        .iter()
        .map(|m| m.path.join(lab.home.paths.cgroup_root()).join(&id))
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "no cgroup: {left:?}");
    assert!(!kthw_rootfs::rootfs::root_dir(&lab.home.paths).join(&id).exists(), "no rootfs");
    assert!(lab.engine.store.holds().unwrap().is_empty(), "the image is released");
    assert!(lab.engine.find("web").is_err());
}

// Two containers on the bridge talk to each other by address.
#[test]
fn two_containers_talk_over_the_bridge() {
    require!(Need::Root, Need::Overlayfs, Need::Command("ip"), Need::Command("iptables"));
    let lab = Lab::new();
    let script = "mkdir /www; echo hi neighbour > /www/index.html; echo up; exec httpd -f -p 80 -h /www";
    lab.run_d("server", &["sh", "-c", script], |_| {});
    lab.wait_log("server", "up");
    let ip = lab.inspect("server")["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    // No `-T`: busybox 1.35's wget crashes with it.
    let client = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://{ip}/index.html && exit 0; sleep 0.2; done; exit 1"
    );
    lab.run_d("client", &["sh", "-c", &client], |_| {});
    assert_eq!(lab.wait_exit("client"), 0, "{:?}", lab.logs("client"));
    assert_eq!(lab.logs("client").0, "hi neighbour\n");
}

// commit turns the container's changes into a layer; a container of the new image sees
// them and runs the committed command.
#[test]
fn commit_makes_an_image_of_the_changes() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    lab.run_d("maker", &["sh", "-c", "echo made > /made; rm /etc/group"], |o| o.network = Some("none".into()));
    lab.wait_exit("maker");
    let image = lab.engine.commit("maker", "made:1").unwrap();
    let cmd = image.config.config().clone().unwrap().cmd().clone().unwrap();
    assert_eq!(cmd, ["sh", "-c", "echo made > /made; rm /etc/group"]);
    let mut opts = RunOptions {
        image: "made:1".into(),
        command: vec!["sh".into(), "-c".into(), "cat /made; test -e /etc/group || echo gone".into()],
        name: Some("user".into()),
        detach: true,
        network: Some("none".into()),
        ..Default::default()
    };
    lab.engine.run(&opts).unwrap();
    lab.wait_exit("user");
    assert_eq!(lab.logs("user").0, "made\ngone\n");
    opts.name = Some("user2".into());
    opts.command = vec![];
    lab.engine.run(&opts).unwrap();
    lab.wait_exit("user2");
}

// --rm removes the container once it exited; events record its life.
#[test]
fn auto_remove_and_events() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    let id = lab.run_d("brief", &["true"], |o| {
        o.auto_remove = true;
        o.network = Some("none".into());
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.engine.find("brief").is_ok() {
        assert!(Instant::now() < deadline, "--rm did not remove it");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The record goes first, then the event is written: wait for it.
    let actions = || -> Vec<String> {
        lab.engine.events.read().unwrap().into_iter().filter(|e| e.id == id).map(|e| e.action).collect()
    };
    while actions().len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(actions(), ["create", "start", "die", "destroy"]);
}

// A container whose program cannot be started is reported with the runtime's error,
// and leaves nothing running.
#[test]
fn a_missing_program_is_a_clear_error() {
    require!(Need::Root, Need::Overlayfs);
    let lab = Lab::new();
    let opts = RunOptions {
        image: "busybox".into(),
        command: vec!["/no/such/program".into()],
        name: Some("broken".into()),
        detach: true,
        network: Some("none".into()),
        ..Default::default()
    };
    let err = lab.engine.run(&opts).unwrap_err().to_string();
    assert!(err.contains("/no/such/program"), "{err}");
    assert!(matches!(lab.status("broken"), Status::Exited { .. }), "{:?}", lab.status("broken"));
    lab.engine.rm("broken", false).unwrap();
}
