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

// A container that exits is restarted with back-off, and restartCount counts the restarts;
// while it waits its state is CrashLoopBackOff with the kubelet's message, its lastState
// the exit, and `pod ls` says CrashLoopBackOff.
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
    // The back-off doubles from 200 ms: soon the container spends most of its time waiting.
    let r = wait_for(&s, "crash", "CrashLoopBackOff", |r| {
        r["pod"]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let c = &r["pod"]["status"]["containerStatuses"][0];
    let uid = r["pod"]["metadata"]["uid"].as_str().unwrap();
    let message = c["state"]["waiting"]["message"].as_str().unwrap();
    assert!(message.starts_with("back-off "), "{message}");
    assert!(message.ends_with(&format!(" restarting failed container=c pod=crash_default({uid})")), "{message}");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3, "{c:#}");
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error", "{c:#}");
    assert!(c["lastState"]["terminated"]["startedAt"].is_string(), "{c:#}");
    assert!(c["imageID"].as_str().unwrap().starts_with("sha256:"), "{c:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ls = s.ok(&["pod", "ls"]);
        let line = ls.lines().find(|l| l.starts_with("crash ")).unwrap_or_default().to_string();
        if line.contains("CrashLoopBackOff") {
            assert!(line.contains(" 0/1 "), "{ls}");
            break;
        }
        assert!(Instant::now() < deadline, "pod ls never said CrashLoopBackOff: {ls}");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.ok(&["pod", "rm", "crash"]);
}

// `kthw pod run -d` of a name that runs already fails and says so, leaving the running pod
// alone; once its supervisor died, `pod ls` says Unknown and a new run says the pod has
// stopped; after `pod rm` the name is free again.
#[test]
fn a_pod_name_runs_once() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = s.manifest(
        "twice.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: twice\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: c\n      image: busybox:1.36\n      command: [\"sleep\", \"600\"]\n",
    );
    s.ok(&["pod", "run", "-d", "-f", &manifest]);
    let first = s.inspect("twice");
    let ls = s.ok(&["pod", "ls"]);
    let line = ls.lines().find(|l| l.starts_with("twice ")).unwrap_or_default();
    assert!(line.contains(" 1/1 ") && line.contains(" Running "), "{ls}");
    for args in [&["pod", "run", "-d", "-f", &manifest][..], &["pod", "run", "-f", &manifest][..]] {
        let out = s.kthw(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains("runs already") && err.contains("kthw pod rm twice"), "{args:?}: {err}");
    }
    let again = s.inspect("twice");
    assert_eq!(again["supervisor"], first["supervisor"]);
    assert_eq!(again["containers"]["c"]["pid"], first["containers"]["c"]["pid"]);

    // A supervisor that dies leaves a stale record behind.
    let supervisor = first["supervisor"].as_i64().unwrap() as i32;
    assert!(Command::new("kill").args(["-KILL", &supervisor.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{supervisor}")).exists() {
        assert!(Instant::now() < deadline, "the supervisor {supervisor} does not die");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ls = s.ok(&["pod", "ls"]);
    assert!(ls.lines().any(|l| l.starts_with("twice ") && l.contains(" Unknown ")), "{ls}");
    let out = s.kthw(&["pod", "run", "-d", "-f", &manifest]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("has stopped") && err.contains("kthw pod rm twice"), "{err}");
    s.ok(&["pod", "rm", "twice"]);
    s.ok(&["pod", "run", "-d", "-f", &manifest]);
    s.ok(&["pod", "rm", "twice"]);
}

// A foreground `kthw pod run` shows its containers' output, each line prefixed with the
// container's name and sent to the stream it came from, among the sync loop's events; a
// restarted container's new lines follow; the command ends when the pod does.
#[test]
fn foreground_run_streams_container_output() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = s.manifest(
        "stream.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: stream
spec:
  restartPolicy: OnFailure
  volumes:
    - name: v
      emptyDir: {}
  containers:
    - name: a
      image: busybox:1.36
      command: ["sh", "-c", "echo hello from a; echo oops from a >&2"]
    - name: b
      image: busybox:1.36
      command: ["sh", "-c", "if [ -e /v/once ]; then echo second run; else touch /v/once; echo first run; exit 1; fi"]
      volumeMounts:
        - name: v
          mountPath: /v
"#,
    );
    let mut child = Command::new(KTHW)
        .args(["pod", "run", "-f", &manifest])
        .env("KTHW_HOME", s.home.path())
        .env("KTHW_BACKOFF_MS", "200")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kthw pod run did not end with its pod: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let at = |text: &str| stdout.find(text).unwrap_or_else(|| panic!("no {text:?} in:\n{stdout}"));
    at("[a] hello from a\n");
    assert!(stderr.contains("[a] oops from a\n"), "{stderr}");
    assert!(!stdout.contains("oops"), "{stdout}");
    assert!(at("started container b") < at("[b] first run\n"), "{stdout}");
    assert!(at("[b] first run\n") < at("[b] second run\n"), "{stdout}");
    assert!(stdout.trim_end().ends_with("pod stream Succeeded"), "{stdout}");
    s.ok(&["pod", "rm", "stream"]);
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

/// The processes in the pid namespace `pid_ns` (a `/proc/PID/ns/pid` link), as the host
/// sees them: (pid, parent, state, comm).
fn processes_in(pid_ns: &str) -> Vec<(i64, i64, String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i64>() else { continue };
        let in_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l.display().to_string() == pid_ns);
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if in_ns && rest.len() > 1 {
            out.push((pid, rest[1].parse().unwrap_or(0), rest[0].to_string(), stat[open + 1..close].to_string()));
        }
    }
    out
}

/// `ps -o pid,args` run by `kthw pod exec` in container `c`: (pid inside, command line).
fn ps_in(s: &Session, pod: &str, c: &str) -> Vec<(String, String)> {
    let text = s.ok(&["pod", "exec", pod, "-c", c, "--", "ps", "-o", "pid,args"]);
    let rows = text.lines().skip(1).filter_map(|l| l.trim().split_once(' '));
    rows.map(|(pid, args)| (pid.to_string(), args.trim().to_string())).collect()
}

// With shareProcessNamespace the containers join pause's pid namespace: `ps` in one shows
// the other's process, pause is PID 1 and reaps the orphan a container leaves behind.
// Without it, each container is PID 1 of a namespace of its own, as before.
#[test]
fn share_process_namespace_puts_pause_at_pid_1() {
    require!(Need::Root);
    let s = Session::new();
    let manifest = s.manifest(
        "shared.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: shared
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1 # sleep ignores SIGTERM as PID 1: do not wait 30 s
  containers:
    - name: a
      image: busybox:1.36
      command: ["sleep", "3001"]
    - name: b
      image: busybox:1.36
      # The subshell exits at once: its `sleep 8` is orphaned, re-parented to PID 1.
      command: ["sh", "-c", "(sleep 8 &); exec sleep 3002"]
"#,
    );
    s.ok(&["pod", "run", "-d", "-f", &manifest]);
    let r = wait_for(&s, "shared", "both containers to run", |r| {
        r["containers"]["a"]["pid"].is_i64() && r["containers"]["b"]["pid"].is_i64()
    });
    let pause = r["sandbox"]["pid"].as_i64().unwrap();
    let (a, b) = (r["containers"]["a"]["pid"].as_i64().unwrap(), r["containers"]["b"]["pid"].as_i64().unwrap());
    let pid_ns = ns(pause, "pid");
    assert_eq!(ns(a, "pid"), pid_ns, "a is in pause's pid namespace");
    assert_eq!(ns(b, "pid"), pid_ns, "b is in pause's pid namespace");
    assert_ne!(ns(a, "mnt"), ns(b, "mnt"), "each keeps its own files");
    // The orphan's parent is pause, and once it exits pause reaps it: no zombie is left.
    let deadline = Instant::now() + Duration::from_secs(20);
    let orphan =
        |p: &[(i64, i64, String, String)]| p.iter().any(|(pid, _, _, comm)| comm == "sleep" && ![a, b].contains(pid));
    let adopted = |p: &[(i64, i64, String, String)]| {
        p.iter().any(|(pid, ppid, _, comm)| comm == "sleep" && *ppid == pause && ![a, b].contains(pid))
    };
    let mut seen = processes_in(&pid_ns);
    while !adopted(&seen) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = processes_in(&pid_ns);
    }
    assert!(adopted(&seen), "b's orphan `sleep 8` is a child of pause (pid {pause}): {seen:?}");
    while orphan(&processes_in(&pid_ns)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = processes_in(&pid_ns);
    assert!(!orphan(&after), "the orphan exited: {after:?}");
    assert!(after.iter().all(|(_, _, state, _)| state != "Z"), "pause reaped it, no zombie: {after:?}");
    // Inside: b sees pause as PID 1, a's sleep, and is not PID 1 itself.
    let ps = ps_in(&s, "shared", "b");
    assert!(ps.contains(&("1".into(), "/pause".into())), "PID 1 is pause: {ps:?}");
    assert!(ps.iter().any(|(_, args)| args == "sleep 3001"), "b sees a's process: {ps:?}");
    let b_inside = ps.iter().find(|(_, args)| args == "sleep 3002").map(|(pid, _)| pid.clone());
    assert!(b_inside.is_some_and(|pid| pid != "1"), "b's init is not PID 1: {ps:?}");

    // Without shareProcessNamespace: a namespace per container, with its init as PID 1.
    let manifest = s.manifest(
        "apart.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: apart
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: b
      image: busybox:1.36
      command: ["sleep", "3003"]
"#,
    );
    s.ok(&["pod", "run", "-d", "-f", &manifest]);
    let r = wait_for(&s, "apart", "the container to run", |r| r["containers"]["b"]["pid"].is_i64());
    let (pause, b) = (r["sandbox"]["pid"].as_i64().unwrap(), r["containers"]["b"]["pid"].as_i64().unwrap());
    assert_ne!(ns(b, "pid"), ns(pause, "pid"));
    let ps = ps_in(&s, "apart", "b");
    assert!(ps.contains(&("1".into(), "sleep 3003".into())), "b's init is PID 1: {ps:?}");
    assert!(ps.iter().all(|(_, args)| args != "/pause"), "pause is not visible: {ps:?}");

    s.ok(&["pod", "rm", "shared"]);
    s.ok(&["pod", "rm", "apart"]);
    let plan = kthw_lab::reset::plan(&s.home.paths).unwrap();
    assert!(plan.mounts.is_empty(), "{plan:?}");
    assert!(plan.cgroups.is_empty(), "{plan:?}");
}
