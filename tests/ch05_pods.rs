//! Chapter 5's `kthw pod` end to end, as root: the real commands on real namespaces.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

struct Session {
    home: TestHome,
}

impl Session {
    /// A home with `busybox:1.36` imported, and the pause and CNI binaries built.
    fn new() -> Session {
        let bins = Path::new(KTHW).parent().unwrap();
        if !bins.join("kthw-pause").is_file() || !bins.join("kthw-cni-bridge").is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = Command::new(cargo).args(["build", "-p", "kthw-pods", "--bins"]).status().unwrap();
            assert!(ok.success(), "cargo build -p kthw-pods --bins");
        }
        let home = TestHome::new();
        let root = home.path().join("busybox");
        kthw_runtime::spec::busybox_rootfs(&root).unwrap();
        let s = Session { home };
        let out = s.kthw(&["image", "import", root.to_str().unwrap(), "busybox:1.36"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        s
    }

    fn kthw(&self, args: &[&str]) -> Output {
        Command::new(KTHW).args(args).env("KTHW_HOME", self.home.path()).env("KTHW_BACKOFF_MS", "200").output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kthw(args);
        assert!(out.status.success(), "kthw {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["pod", "inspect", name])).unwrap()
    }

    fn manifest(&self, name: &str, text: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new(KTHW).args(["reset", "--force"]).env("KTHW_HOME", self.home.path()).output();
    }
}

fn ns(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap().display().to_string()
}

// The two containers of the sidecar pod share the pause's network namespace, each has its
// own mount namespace, the pause is PID 1 of the sandbox, the pod IP is on the bridge,
// and `pod rm` leaves no mount, cgroup or veth behind.
#[test]
fn sidecar_pod_shares_one_network_namespace() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/labs/05-pods/sidecar.yaml");
    s.ok(&["pod", "run", "-d", "-f", manifest]);
    let r = s.inspect("logger");
    let pause = r["sandbox"]["pid"].as_i64().unwrap();
    let app = r["containers"]["app"]["pid"].as_i64().unwrap();
    let shipper = r["containers"]["shipper"]["pid"].as_i64().unwrap();
    assert_eq!(ns(app, "net"), ns(pause, "net"));
    assert_eq!(ns(shipper, "net"), ns(pause, "net"));
    assert_ne!(ns(app, "mnt"), ns(shipper, "mnt"));
    let status = std::fs::read_to_string(format!("/proc/{pause}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{nspid}");
    let ip = r["pod"]["status"]["podIP"].as_str().unwrap().to_string();
    let bridge = kthw_pods::cni::bridge_name(&s.home.paths);
    let addr = Command::new("ip").args(["-4", "-br", "addr", "show", &bridge]).output().unwrap();
    let prefix: Vec<&str> = ip.split('.').take(3).collect();
    assert!(String::from_utf8_lossy(&addr.stdout).contains(&prefix.join(".")), "{ip} not on {bridge}");
    assert_eq!(s.ok(&["pod", "exec", "logger", "-c", "app", "--", "hostname"]).trim(), "logger");

    s.ok(&["pod", "rm", "logger"]);
    let plan = kthw_lab::reset::plan(&s.home.paths).unwrap();
    assert!(plan.mounts.is_empty(), "{plan:?}");
    assert!(plan.cgroups.is_empty(), "{plan:?}");
    assert!(plan.links.iter().all(|l| *l == bridge), "only the shared bridge is left: {plan:?}");
    assert!(!s.home.paths.pods().join("logger").exists());
}

// The init container runs to completion before the server starts: its file is there.
#[test]
fn init_container_runs_first() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/labs/05-pods/init-container.yaml");
    s.ok(&["pod", "run", "-d", "-f", manifest]);
    let r = s.inspect("web");
    let server = r["containers"]["server"]["pid"].as_i64().unwrap();
    let page = std::fs::read_to_string(format!("/proc/{server}/root/www/index.html")).unwrap();
    assert!(page.contains("Hello from a pod"), "{page}");
    assert_eq!(r["containers"]["install"]["exit"][0], 0);
    s.ok(&["pod", "rm", "web"]);
}

// A container that exits is restarted with back-off, and restartCount counts the restarts.
#[test]
fn exited_container_is_restarted_and_counted() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = s.manifest(
        "crash.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\nspec:\n  containers:\n    - name: c\n      image: busybox:1.36\n      command: [\"sh\", \"-c\", \"echo run; sleep 0.2; exit 3\"]\n",
    );
    s.ok(&["pod", "run", "-d", "-f", &manifest]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = loop {
        let r = s.inspect("crash");
        let count = r["pod"]["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0);
        if count >= 2 || Instant::now() > deadline {
            break count;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(count >= 2, "restartCount {count}");
    let logs = s.ok(&["pod", "logs", "crash"]);
    assert!(logs.matches("run").count() as i64 >= count, "{logs}");
    s.ok(&["pod", "rm", "crash"]);
}

/// The pod's status waits up to 60 s (a loaded 2-core machine) for `done` to hold.
fn wait_for(s: &Session, pod: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.inspect(pod);
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {r:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ready(r: &serde_json::Value) -> Option<&str> {
    let conditions = r["pod"]["status"]["conditions"].as_array()?;
    conditions.iter().find(|c| c["type"] == "Ready").and_then(|c| c["status"].as_str())
}

// A container whose liveness exec probe fails (its file was removed) is killed and
// restarted, and restartCount rises with each restart.
#[test]
fn failing_liveness_probe_restarts_the_container() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = s.manifest(
        "live.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  terminationGracePeriodSeconds: 1 # its shell ignores SIGTERM: do not wait 30 s in `pod rm`
  containers:
    - name: c
      image: busybox:1.36
      command: ["sh", "-c", "touch /tmp/healthy; sleep 1; rm /tmp/healthy; sleep 600"]
      livenessProbe:
        exec:
          command: ["cat", "/tmp/healthy"]
        periodSeconds: 1
        timeoutSeconds: 10
        failureThreshold: 2
"#,
    );
    s.ok(&["pod", "run", "-d", "-f", &manifest]);
    let count =
        |r: &serde_json::Value| r["pod"]["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0);
    wait_for(&s, "live", "a first restart", |r| count(r) >= 1);
    wait_for(&s, "live", "a second restart", |r| count(r) >= 2);
    s.ok(&["pod", "rm", "live"]);
}

// A readiness httpGet probe (to a named port) keeps the pod out of Ready while the page
// is missing (404), and makes it Ready once the page exists; the container never restarts.
#[test]
fn readiness_http_probe_gates_ready() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = s.manifest(
        "ready.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: ready
spec:
  terminationGracePeriodSeconds: 1 # its shell ignores SIGTERM: do not wait 30 s in `pod rm`
  containers:
    - name: web
      image: busybox:1.36
      command: ["sh", "-c", "mkdir -p /www; exec httpd -f -p 8080 -h /www"]
      ports:
        - name: http
          containerPort: 8080
      readinessProbe:
        httpGet:
          path: /index.html
          port: http
        periodSeconds: 1
        timeoutSeconds: 10
"#,
    );
    s.ok(&["pod", "run", "-d", "-f", &manifest]);
    wait_for(&s, "ready", "the container to run", |r| r["containers"]["web"]["pid"].is_i64());
    // Several probe periods pass with no page: still not Ready.
    std::thread::sleep(Duration::from_secs(3));
    let r = s.inspect("ready");
    assert_eq!(ready(&r), Some("False"), "{r:#}");
    assert_eq!(r["pod"]["status"]["containerStatuses"][0]["ready"], false, "{r:#}");
    s.ok(&["pod", "exec", "ready", "--", "sh", "-c", "echo ok > /www/index.html"]);
    let r = wait_for(&s, "ready", "Ready=True", |r| ready(r) == Some("True"));
    assert_eq!(r["pod"]["status"]["containerStatuses"][0]["ready"], true, "{r:#}");
    assert_eq!(r["pod"]["status"]["containerStatuses"][0]["restartCount"], 0, "{r:#}");
    s.ok(&["pod", "rm", "ready"]);
}
