//! The kubelet's node-local half: given a Pod, make it run on this machine.
//!
//! ```text
//!  kthw pod run -f pod.yaml
//!      │ load + validate (api)          ┌──── pod cgroup  /<instance>/kubepods/pod<uid>
//!      ▼                                │
//!  executor: sync loop ──decide()──▶  sandbox: pause + CNI ADD ──▶ pod IP
//!      │                                │
//!      └ reaps, logs, restarts          └──── containers: join net/ipc/uts of the pause
//! ```
//!
//! - [`store`]: pod records on disk (`paths.pods()`).
//! - [`cgroups`]: the pod's cgroup, with the containers' limits summed.
//! - [`sandbox`]: the pause container and the pod network.
//! - [`containers`]: app and init containers joining the sandbox.
//! - [`executor`]: the sync loop that runs [`crate::sync::decide`]'s actions.
//! - [`probe`]: liveness, readiness and startup probes, counted into verdicts.
//! - [`supervisor`]: `kthw pod run -d`, the supervisor as a background process.
//! - [`follow`]: a foreground pod's container output on the terminal, `[container] line`.
//! - [`printer`]: `kthw pod ls`'s READY, STATUS and RESTARTS, by kubectl's rules.
//!
//! The process that runs [`Kubelet::run`] is the pod's supervisor: the parent of its
//! containers. `kthw pod run -d` starts that process in the background
//! ([`Kubelet::run_detached`]).
//!
//! What the real kubelet does differently: one kubelet runs every pod of the node, gets
//! them from the API server (chapter 7), and leaves sandboxes and containers to a CRI
//! runtime (containerd) whose shims are the containers' parents, so a kubelet restart
//! does not touch running pods.

pub mod cgroups;
pub mod containers;
pub mod executor;
pub mod follow;
pub mod printer;
pub mod probe;
pub mod sandbox;
pub mod store;
pub mod supervisor;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kthw_lab::Paths;
use kthw_rootfs::Store;
use kthw_runtime::Runtime;
use kthw_runtime::engine::log::Stream;
use nix::sys::signal::Signal;

pub use store::PodRecord;

use crate::api::Pod;
use crate::cni::Cni;
use crate::sync::Settings;
use crate::{Error, Result};

/// The node's kubelet: where things live, the image store, the OCI runtime, timings.
#[derive(Debug)]
pub struct Kubelet {
    pub paths: Paths,
    pub store: Store,
    pub runtime: Runtime,
    pub settings: Settings,
}

impl Kubelet {
    /// Opens the kubelet of `paths`. `KTHW_BACKOFF_MS` shortens the first back-off
    /// (for tests and impatient learners).
    ///
    /// # Errors
    /// If the image store cannot be opened.
    pub fn open(paths: &Paths) -> Result<Kubelet> {
        let store = Store::open(paths.images()).map_err(kthw_runtime::Error::from)?;
        let mut settings = Settings::default();
        if let Some(ms) = std::env::var("KTHW_BACKOFF_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
            settings.back_off_initial = Duration::from_millis(ms);
            settings.back_off_max = Duration::from_millis(ms * 30);
        }
        let runtime = Runtime::new(paths.run.join("pod-runtime"));
        Ok(Kubelet { paths: paths.clone(), store, runtime, settings })
    }

    /// The pod network of this node (see [`sandbox::network`]).
    ///
    /// # Errors
    /// As [`sandbox::network`].
    pub fn network(&self) -> Result<Cni> {
        sandbox::network(&self.paths)
    }

    /// Runs `pod` in this process until it completes or SIGTERM/SIGINT; see
    /// [`executor::run`].
    ///
    /// # Errors
    /// As [`executor::run`].
    pub fn run(&self, pod: Pod, events: &mut dyn FnMut(&str)) -> Result<PodRecord> {
        executor::stop_on_signals();
        executor::run(self, pod, events)
    }

    /// Runs `pod` like [`Kubelet::run`], and meanwhile sends each line its containers
    /// write to `output`, as `[container] line` with the stream it came from (see
    /// [`follow`]), until the pod ends. A thread follows the logs, so the sync loop
    /// does not wait for the terminal.
    ///
    /// # Errors
    /// As [`executor::run`].
    pub fn run_attached(
        &self,
        pod: Pod,
        events: &mut dyn FnMut(&str),
        output: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> Result<PodRecord> {
        // Before following: the logs of an older pod of that name are not this pod's.
        store::ensure_absent(&self.paths, pod.name())?;
        let mut follower = follow::Follower::new(&self.paths, &pod);
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                loop {
                    let last = done.load(Ordering::Acquire); // then one more full pass
                    for (container, entry) in follower.poll() {
                        output(entry.stream, &follow::prefixed(&container, &entry));
                    }
                    if last {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20)); // as `kthw logs -f`
                }
            });
            let result = self.run(pod, events);
            done.store(true, Ordering::Release);
            result
        })
    }

    /// Starts pod `name` in the background: `supervisor` is the command that runs it in
    /// the foreground (the caller's way of saying `kthw pod run --supervise -f FILE`);
    /// see [`supervisor::start`].
    ///
    /// # Errors
    /// As [`supervisor::start`].
    pub fn run_detached(&self, name: &str, supervisor: std::process::Command) -> Result<PodRecord> {
        supervisor::start(&self.paths, name, supervisor)
    }

    /// Every pod's record.
    ///
    /// # Errors
    /// An unreadable record.
    pub fn list(&self) -> Result<Vec<PodRecord>> {
        store::list(&self.paths)
    }

    /// The record of pod `name`.
    ///
    /// # Errors
    /// No such pod.
    pub fn get(&self, name: &str) -> Result<PodRecord> {
        store::read(&self.paths, name)
    }

    /// The container `container` of pod `name` (its only container when `None`), and
    /// the record.
    ///
    /// # Errors
    /// No such pod or container, or `None` for a pod of several containers.
    pub fn container(&self, name: &str, container: Option<&str>) -> Result<(PodRecord, String)> {
        let record = self.get(name)?;
        let names: Vec<&str> = record.pod.spec.containers.iter().map(|c| c.name.as_str()).collect();
        let all: Vec<&str> = record.pod.spec.all_containers().map(|c| c.name.as_str()).collect();
        let chosen = match container {
            Some(c) if all.contains(&c) => c.to_string(),
            Some(c) => {
                return Err(Error::bad(format!("container {c:?}"), format!("is not in pod {name}; it has {all:?}")));
            }
            None if names.len() == 1 => names[0].to_string(),
            None => {
                return Err(Error::bad(
                    format!("pod {name}"),
                    format!("has several containers {names:?}; choose one with -c NAME"),
                ));
            }
        };
        Ok((record, chosen))
    }

    /// Runs `command` in a running container of the pod: joins every namespace of its
    /// init (chapter 1's `exec`), with our stdio. Returns the exit code.
    ///
    /// # Errors
    /// The container is not running, or the command cannot start.
    pub fn exec(&self, name: &str, container: Option<&str>, command: &[String]) -> Result<i32> {
        let (record, chosen) = self.container(name, container)?;
        let pid = record.containers.get(&chosen).and_then(|c| c.pid).filter(|p| store::alive(*p)).ok_or_else(|| {
            Error::bad(format!("container {chosen} of pod {name}"), "is not running; see `kthw pod inspect`")
        })?;
        let process = kthw_namespaces::exec::spawn(
            nix::unistd::Pid::from_raw(pid),
            command,
            kthw_namespaces::spec::Stdio::default(),
        )
        .map_err(kthw_runtime::Error::from)?;
        Ok(process.wait().map_err(kthw_runtime::Error::from)?)
    }

    /// [`rm`](Kubelet::rm) for several pods at once: each waits out its own grace period
    /// at the same time as the others, as `kubectl delete pod a b` does (the API server
    /// marks both for deletion and their kubelets stop them side by side), instead of
    /// 30 s times the number of pods. Results in the order of `names`.
    pub fn rm_all(&self, names: &[String]) -> Vec<(String, Result<()>)> {
        std::thread::scope(|scope| {
            let removing: Vec<_> = names.iter().map(|name| (name, scope.spawn(|| self.rm(name)))).collect();
            removing
                .into_iter()
                .map(|(name, handle)| {
                    let done = handle.join().unwrap_or_else(|_| Err(Error::bad(format!("pod {name}"), "rm panicked")));
                    (name.clone(), done)
                })
                .collect()
        })
    }

    /// Stops pod `name` (SIGTERM to its supervisor, which stops the containers with the
    /// grace period) and removes everything of it: containers, sandbox, network,
    /// cgroups, volumes and its record.
    ///
    /// # Errors
    /// No such pod, or its folder cannot be removed.
    pub fn rm(&self, name: &str) -> Result<()> {
        let record = self.get(name)?;
        if let Some(pid) = record.supervisor.filter(|p| store::alive(*p)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
            let grace = record.pod.spec.grace_period() + Duration::from_secs(5);
            let deadline = std::time::Instant::now() + grace;
            while store::alive(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if store::alive(pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Whatever a dead supervisor left behind.
        let record = self.get(name).unwrap_or(record);
        for c in record.containers.values() {
            containers::remove(&self.paths, &self.store, &self.runtime, &c.id);
        }
        if let Some(s) = &record.sandbox {
            let uid = record.pod.metadata.uid.clone().unwrap_or_default();
            sandbox::remove(self, name, &uid, s.pid);
        }
        if let Some(uid) = &record.pod.metadata.uid {
            cgroups::remove(&self.paths, uid)?;
        }
        let dir = store::dir(&self.paths, name);
        std::fs::remove_dir_all(&dir).map_err(Error::io("remove", &dir))
    }
}
