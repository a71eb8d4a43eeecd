//! System tests of the OCI runtime (`kthw_runtime::Runtime`): each proves one thing a
//! container must have — or must not have — by running busybox in it. They need root and
//! run on whichever cgroup version the machine has (v1 or hybrid here, v2 in the lab VMs).
//! The `kthw runtime` command line and the interoperability with runc are tested in the
//! workspace's `tests/ch04_runtime.rs`, which runs the binary.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use kthw_cgroups::Cgroup;
use kthw_lab::host::CgroupLayout;
use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_runtime::lifecycle::CreateOptions;
use kthw_runtime::security::cap_bits;
use kthw_runtime::spec::{DOCKER_DEFAULT_CAPS, busybox_rootfs, default_spec, to_json};
use kthw_runtime::state::Status;
use kthw_runtime::{Error, Runtime};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// One test's runtime: its own state folder and cgroup root, removed at drop.
struct Lab {
    home: TestHome,
    rt: Runtime,
}

/// What a container printed, and how it ended.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Lab {
    fn new() -> Lab {
        let home = TestHome::new();
        let rt = Runtime::for_paths(&home.paths);
        Lab { home, rt }
    }

    /// A bundle with a busybox root and the default spec running `args`, changed by `edit`.
    fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.home.path().join("bundles").join(name);
        busybox_rootfs(&dir.join("rootfs")).expect("busybox rootfs");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut spec = serde_json::to_value(default_spec(&args).unwrap()).unwrap();
        edit(&mut spec);
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        dir
    }

    /// Files for the container's stdout and stderr.
    fn stdio(&self, id: &str) -> (CreateOptions, PathBuf, PathBuf) {
        let out = self.home.path().join(format!("{id}.out"));
        let err = self.home.path().join(format!("{id}.err"));
        let fd = |p: &Path| -> OwnedFd { std::fs::File::create(p).unwrap().into() };
        let opts = CreateOptions { stdio: [None, Some(fd(&out)), Some(fd(&err))], ..Default::default() };
        (opts, out, err)
    }

    /// `Runtime::run` with stdout and stderr captured.
    fn run(&self, id: &str, bundle: &Path) -> Output {
        let (opts, out, err) = self.stdio(id);
        let code = self.rt.run(id, bundle, opts).unwrap_or_else(|e| panic!("run {id}: {e}"));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        Output { code, stdout: read(&out), stderr: read(&err) }
    }

    /// Runs `sh -c SCRIPT` in a default container changed by `edit`.
    fn sh(&self, id: &str, script: &str, edit: impl FnOnce(&mut Value)) -> Output {
        let bundle = self.bundle(id, &["sh", "-c", script], edit);
        self.run(id, &bundle)
    }

    fn cgroup_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.home.paths.cgroup_root())
    }

    /// Whatever of this test's cgroups is left in any hierarchy.
    fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let layout = CgroupLayout::detect().unwrap();
        let root = self.home.paths.cgroup_root();
        layout
            .mounts
            .iter()
            .map(|m| m.path.join(root))
            .filter(|p| p.exists() && std::fs::read_dir(p).unwrap().flatten().any(|e| e.path().is_dir()))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for state in self.rt.list().unwrap_or_default() {
            let _ = self.rt.delete(&state.id, true);
        }
        if let Ok(layout) = CgroupLayout::detect()
            && let Ok(cg) = Cgroup::open(&layout, self.home.paths.cgroup_root())
        {
            let _ = cg.delete();
        }
    }
}

fn reap(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected {other:?}"),
    }
}

// A busybox bundle runs, its output and its exit code come back, and nothing is left.
#[test]
fn busybox_runs_and_its_exit_code_comes_back() {
    require!(Need::Root);
    let lab = Lab::new();
    let out = lab.sh("exit3", "echo hello; exit 3", |_| {});
    assert_eq!(out.code, 3, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "hello\n");
    assert!(lab.rt.list().unwrap().is_empty(), "the state is removed");
    assert!(lab.leftover_cgroups().is_empty(), "left: {:?}", lab.leftover_cgroups());
}

// create leaves the init waiting: created, then running after start, stopped after it dies.
#[test]
fn create_then_start_is_split() {
    require!(Need::Root);
    let lab = Lab::new();
    let bundle = lab.bundle("split", &["sleep", "1000"], |_| {});
    let (opts, _, _) = lab.stdio("split");
    let state = lab.rt.create("split", &bundle, opts).unwrap();
    assert_eq!(state.status, Status::Created);
    assert_eq!(lab.rt.state("split").unwrap().status, Status::Created);
    let exe = |pid: i32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    assert_eq!(exe(state.pid), me, "before start, the init is still a copy of us");
    lab.rt.start("split").unwrap();
    assert_eq!(lab.rt.state("split").unwrap().status, Status::Running);
    // `start` returns once the init has read the go-ahead; its execve follows a moment later
    // (as with runc), so wait for it, for at most two seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while exe(state.pid) == me && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(exe(state.pid).file_name().unwrap(), "sleep", "after start, it runs the program");
    assert!(matches!(lab.rt.delete("split", false), Err(Error::WrongState { .. })), "a running one needs --force");
    lab.rt.kill("split", Signal::SIGKILL).unwrap();
    // Wait for it to exit, but leave it unreaped (WNOWAIT).
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    waitid(Id::Pid(Pid::from_raw(state.pid)), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).unwrap();
    // We are its parent: until we reap it, it is a zombie, and that counts as stopped.
    let stopped = lab.rt.state("split").unwrap();
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(reap(state.pid), 128 + 9);
    lab.rt.delete("split", false).unwrap();
    assert!(matches!(lab.rt.state("split"), Err(Error::NoSuchContainer(_))));
    assert!(lab.leftover_cgroups().is_empty());
}

// Inside: the spec's host name, the program is pid 1, and the network has only lo, up.
#[test]
fn hostname_pid_1_and_only_lo() {
    require!(Need::Root);
    let lab = Lab::new();
    let out = lab
        .sh("iso", "hostname; echo $$; ls /sys/class/net; ip -o link | grep -c UP", |s| s["hostname"] = json!("box1"));
    assert_eq!(out.stdout, "box1\n1\nlo\n1\n", "stderr: {}", out.stderr);
}

// linux.resources.memory.limit lands in the cgroup's memory file (v1 or v2 name).
#[test]
fn memory_limit_lands_in_the_cgroup() {
    require!(Need::Root, Need::Controller("memory"), Need::Controller("pids"));
    let lab = Lab::new();
    let bundle = lab.bundle("mem", &["true"], |s| {
        s["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}});
    });
    let (opts, _, _) = lab.stdio("mem");
    let state = lab.rt.create("mem", &bundle, opts).unwrap();
    let layout = CgroupLayout::detect().unwrap();
    let cg = Cgroup::open(&layout, &lab.cgroup_path("mem")).unwrap();
    let limit = cg.read("memory", "memory.limit_in_bytes").or_else(|| cg.read("memory", "memory.max"));
    assert_eq!(limit.as_deref(), Some("67108864"));
    assert_eq!(cg.read("pids", "pids.max").as_deref(), Some("20"));
    assert!(cg.procs().contains(&(state.pid as u32)), "the init is in the cgroup before start");
    lab.rt.delete("mem", false).unwrap();
    reap(state.pid);
    assert!(lab.leftover_cgroups().is_empty());
}

// Root inside has exactly Docker's 14 capabilities; without CAP_SYS_ADMIN, mount fails.
#[test]
fn capabilities_are_dockers_default_set() {
    require!(Need::Root);
    let lab = Lab::new();
    let out =
        lab.sh("caps", "grep -E 'Cap(Eff|Bnd)' /proc/self/status; mount -t tmpfs none /tmp; echo mount=$?", |_| {});
    let docker = format!("{:016x}", cap_bits(DOCKER_DEFAULT_CAPS).unwrap());
    assert!(out.stdout.contains(&format!("CapEff:\t{docker}\n")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("CapBnd:\t{docker}\n")), "{}", out.stdout);
    assert!(out.stdout.contains("mount=1") || out.stdout.contains("mount=255"), "{}", out.stdout);
    let err = out.stderr.to_lowercase();
    assert!(err.contains("not permitted") || err.contains("permission denied"), "{}", out.stderr);
}

// noNewPrivileges sets the kernel's no_new_privs flag.
#[test]
fn no_new_privs_is_set() {
    require!(Need::Root);
    let lab = Lab::new();
    let out = lab.sh("nnp", "grep NoNewPrivs /proc/self/status", |_| {});
    assert_eq!(out.stdout, "NoNewPrivs:\t1\n");
}

// /proc/kcore and /proc/timer_list are masked (empty) and /proc/sys is read-only.
#[test]
fn masked_and_readonly_paths() {
    require!(Need::Root);
    let lab = Lab::new();
    // Some kernels (and VMs) have no /proc/kcore; a missing masked path is skipped.
    let script = "[ -e /proc/kcore ] && wc -c < /proc/kcore || echo 0; wc -c < /proc/timer_list; \
                  echo x > /proc/sys/kernel/domainname; echo write=$?";
    assert!(std::path::Path::new("/proc/timer_list").exists());
    let out = lab.sh("masks", script, |_| {});
    assert_eq!(out.stdout, "0\n0\nwrite=1\n", "stderr: {}", out.stderr);
    assert!(out.stderr.contains("Read-only file system"), "{}", out.stderr);
}

// process.rlimits are applied: RLIMIT_NOFILE 4242.
#[test]
fn rlimit_nofile_is_applied() {
    require!(Need::Root);
    let lab = Lab::new();
    let out = lab.sh("nofile", "ulimit -n", |s| {
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 4242, "hard": 4242}]);
    });
    assert_eq!(out.stdout, "4242\n", "stderr: {}", out.stderr);
}

// process.user 1000:1000 with an additional group runs as that user, with no capabilities.
#[test]
fn user_1000_runs_as_1000() {
    require!(Need::Root);
    let lab = Lab::new();
    let out = lab.sh("user", "id -u; id -g; id -G; grep CapEff /proc/self/status; pwd", |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5]});
        s["process"]["cwd"] = json!("/home/user");
    });
    assert_eq!(out.stdout, "1000\n1000\n1000 5\nCapEff:\t0000000000000000\n/home/user\n", "stderr: {}", out.stderr);
}

// A bad config.json (bad JSON, no root, an unsupported field) is a clear error, and
// nothing is created: no state, no cgroup.
#[test]
fn bad_config_is_a_clear_error_and_touches_nothing() {
    require!(Need::Root);
    let lab = Lab::new();
    type Breaker = Box<dyn Fn(&Path)>;
    let cases: [(&str, Breaker, &str); 4] = [
        (
            "json",
            Box::new(|d| std::fs::write(d.join("config.json"), "{\"ociVersion\": \"1.0.2\",\n  oops}").unwrap()),
            "line 2",
        ),
        ("noroot", Box::new(|d| edit(d, |s| drop(s.as_object_mut().unwrap().remove("root")))), "config.json: root"),
        (
            "seccomp",
            Box::new(|d| edit(d, |s| s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO"}))),
            "config.json: linux.seccomp",
        ),
        ("noprog", Box::new(|d| edit(d, |s| s["process"]["args"] = json!(["no-such-program"]))), "no-such-program"),
    ];
    for (id, break_it, expected) in cases {
        let bundle = lab.bundle(id, &["true"], |_| {});
        break_it(&bundle);
        let err = lab.rt.run(id, &bundle, CreateOptions::default()).expect_err(id).to_string();
        assert!(err.contains(expected), "{id}: {err}");
        assert!(lab.rt.list().unwrap().is_empty(), "{id}: no state is left");
        assert!(!lab.rt.root().join(id).exists(), "{id}: no state folder is left");
        assert!(lab.leftover_cgroups().is_empty(), "{id}: no cgroup is left: {:?}", lab.leftover_cgroups());
    }
}

fn edit(bundle: &Path, f: impl FnOnce(&mut Value)) {
    let path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut spec);
    std::fs::write(&path, serde_json::to_string(&spec).unwrap()).unwrap();
}

// A container with terminal=true gets the pty master over --console-socket, and its
// stdio is the slave: `tty` inside names /dev/pts/0.
#[test]
fn console_socket_receives_the_pty_master() {
    require!(Need::Root);
    let lab = Lab::new();
    let bundle = lab.bundle("tty", &["sh", "-c", "tty; exit 4"], |s| s["process"]["terminal"] = json!(true));
    let sock_path = lab.home.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        recv_fd(&stream)
    });
    let opts = CreateOptions { console_socket: Some(sock_path), ..Default::default() };
    let state = lab.rt.create("tty", &bundle, opts).unwrap();
    let master = receiver.join().unwrap();
    lab.rt.start("tty").unwrap();
    let mut text = String::new();
    let mut master = std::fs::File::from(master);
    // The pty gives EIO once the slave side is closed: the end of the output.
    let mut buf = [0u8; 256];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(reap(state.pid), 4);
    assert_eq!(text.trim(), "/dev/pts/0");
    lab.rt.delete("tty", false).unwrap();
}

fn recv_fd(stream: &std::os::unix::net::UnixStream) -> OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut name = [0u8; 64];
    let mut iov = libc::iovec { iov_base: name.as_mut_ptr().cast(), iov_len: name.len() };
    let mut space = [0u64; 8];
    // SAFETY: recvmsg into buffers on our stack; the received descriptor becomes ours.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&space) as _;
        assert!(libc::recvmsg(stream.as_raw_fd(), &mut msg, 0) > 0, "recvmsg");
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS);
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>()))
    }
}

// Our spec file is valid JSON that our own loader accepts (the CLI writes it with to_json).
#[test]
fn spec_json_round_trips() {
    let spec = default_spec(&["sh".into()]).unwrap();
    let text = to_json(&spec).unwrap();
    let back: oci_spec::runtime::Spec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, spec);
    kthw_runtime::bundle::check(&back).unwrap();
}

// A container whose spec joins another's pid namespace by path runs inside it: it sees
// the first container's init as PID 1 and is not PID 1 itself, what it leaves behind is
// killed by delete, our thread is back in its own pid namespace, and both delete clean.
#[test]
fn a_container_joins_another_pid_namespace_by_path() {
    require!(Need::Root);
    let lab = Lab::new();
    let ns = |pid: &str, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    let bundle_a = lab.bundle("a", &["sleep", "1000"], |_| {});
    let (opts, _, _) = lab.stdio("a");
    let a = lab.rt.create("a", &bundle_a, opts).unwrap();
    lab.rt.start("a").unwrap();
    let joined = json!({"type": "pid", "path": format!("/proc/{}/ns/pid", a.pid)});
    let join_a = |s: &mut Value| {
        for entry in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if entry["type"] == "pid" {
                *entry = joined.clone();
            }
        }
    };
    // B leaves a `sleep` behind in the background: with a pid namespace of its own it would
    // die with B's init; here only delete's sweep of the cgroup can kill it.
    let script = "echo $$; cat /proc/1/comm; ls /proc | grep -c '^[0-9]'; sleep 1000 & echo started; exec sleep 999";
    let bundle_b = lab.bundle("b", &["sh", "-c", script], join_a);
    let (opts, out, err) = lab.stdio("b");
    let b = lab.rt.create("b", &bundle_b, opts).unwrap();
    assert_eq!(ns(&b.pid.to_string(), "pid"), ns(&a.pid.to_string(), "pid"), "B's init is in A's pid namespace");
    assert_ne!(ns(&b.pid.to_string(), "mnt"), ns(&a.pid.to_string(), "mnt"), "but has its own files");
    assert_eq!(ns("thread-self", "pid_for_children"), ns("self", "pid"), "create gave our thread back");
    assert_eq!(lab.rt.state("b").unwrap().status, Status::Created);
    lab.rt.start("b").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !std::fs::read_to_string(&out).unwrap().contains("started") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(lines.len(), 4, "stdout: {text:?}, stderr: {stderr}");
    assert_ne!(lines[0], "1", "B's init is not PID 1 of the namespace it joined");
    assert_eq!(lines[1], "sleep", "PID 1 there is A's init");
    assert!(lines[2].parse::<u32>().unwrap() >= 2, "its /proc shows A's and B's processes: {text:?}");
    assert_eq!(lab.rt.state("b").unwrap().status, Status::Running);
    let layout = CgroupLayout::detect().unwrap();
    let b_cgroup = Cgroup::open(&layout, &lab.cgroup_path("b")).unwrap();
    assert_eq!(b_cgroup.procs().len(), 2, "B's init and the sleep it started");
    // A failed create (no such program) gives our thread back too, and leaves nothing.
    let bundle_bad = lab.bundle("bad", &["no-such-program"], join_a);
    let e = lab.rt.create("bad", &bundle_bad, CreateOptions::default()).expect_err("no such program");
    assert!(e.to_string().contains("no-such-program"), "{e}");
    assert_eq!(ns("thread-self", "pid_for_children"), ns("self", "pid"), "a failed create gave our thread back");
    lab.rt.kill("b", Signal::SIGKILL).unwrap();
    assert_eq!(reap(b.pid), 128 + 9);
    lab.rt.delete("b", false).unwrap();
    assert!(matches!(lab.rt.state("b"), Err(Error::NoSuchContainer(_))));
    lab.rt.delete("a", true).unwrap();
    assert_eq!(reap(a.pid), 128 + 9);
    assert!(lab.rt.list().unwrap().is_empty(), "no state is left");
    assert!(lab.leftover_cgroups().is_empty(), "left: {:?}", lab.leftover_cgroups());
}
