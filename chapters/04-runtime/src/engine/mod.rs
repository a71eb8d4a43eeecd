//! The engine: containers from images, like Docker (`kthw run`, `ps`, `logs`, `exec`,
//! `stop`, `kill`, `rm`, `inspect`, `commit`, `events`, `system df` and `prune`).
//!
//! The OCI runtime ([`crate::lifecycle`]) knows bundles, not images; Docker's job is
//! everything around it. For `kthw run IMAGE CMD`:
//!
//! 1. check every flag, find the image in chapter 3's store ([`config::check`]);
//! 2. give the container an id and a name, and write its record ([`record`]);
//! 3. make a chapter-3 rootfs for it (it **holds** the image: `kthw image rm` refuses)
//!    and mount the overlay at the bundle's `rootfs/`;
//! 4. write the bundle's `config.json` from the image's config and the flags ([`config::spec`]);
//! 5. fork the supervisor ([`supervisor`]), which runs `Runtime::create`, plugs the
//!    network in from the host side ([`crate::network`]), then `Runtime::start`, and stays
//!    to collect the output ([`log`]) and the exit code;
//! 6. print the id (`-d`), or follow the log and exit with the container's code.
//!
//! Everything is undone by `kthw rm`, in reverse: the runtime's state and cgroup, the
//! veth, the DNAT rules and the address, the mount, the rootfs, the record.
//!
//! ## Layout
//! - [`record`]: the files of a container and the status derived from them.
//! - [`names`]: ids and names.
//! - [`config`]: flags and image config → record → OCI spec.
//! - [`supervisor`]: the per-container supervisor and the run sequence.
//! - [`log`]: the json-file log.
//! - [`pty`]: terminals for `-it`.
//! - [`exec`]: `kthw exec`, by `setns`.
//! - [`render`]: `ps`, `inspect` and `system df` output.
//! - [`events`]: `kthw events`.
//!
//! What Docker does differently: `docker` is a client of `dockerd`, a daemon that keeps
//! the containers' state in memory and asks containerd (another daemon) to run them
//! through a shim per container. We have no daemon: each `kthw` command reads the state
//! from disk, acts, and exits; only the supervisors stay. That is Podman's design.

pub mod config;
pub mod events;
pub mod exec;
pub mod log;
pub mod names;
pub mod net;
pub mod pty;
pub mod record;
pub mod render;
pub mod supervisor;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use kthw_lab::Paths;
use kthw_rootfs::rootfs::Rootfs;
use kthw_rootfs::{Image, Store};
use nix::sys::signal::Signal;

use crate::{Error, Result, Runtime};
use record::{Dir, Exited, Record, Status};

pub use exec::ExecOptions;

/// What `kthw run` was asked for, unparsed: [`config::check`] refuses bad values.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub image: String,
    /// The arguments after the image: they replace the image's Cmd.
    pub command: Vec<String>,
    pub name: Option<String>,
    pub detach: bool,
    /// `-e NAME=VALUE`
    pub env: Vec<String>,
    /// `-v HOST:CONTAINER[:ro]`
    pub volumes: Vec<String>,
    /// `-p [IP:]HOST:CONTAINER[/udp]`
    pub publish: Vec<String>,
    /// `--memory 64M`
    pub memory: Option<String>,
    /// `--cpus 0.5`
    pub cpus: Option<String>,
    pub hostname: Option<String>,
    /// `--rm`
    pub auto_remove: bool,
    pub interactive: bool,
    pub tty: bool,
    /// `bridge` (default) or `none`.
    pub network: Option<String>,
    pub entrypoint: Option<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// How `kthw run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// `-d`: it runs, in the care of its supervisor.
    Detached { id: String },
    /// In the foreground: it ran and exited with `code`.
    Exited { id: String, code: i32 },
}

/// A row of `kthw ps`.
#[derive(Debug, Clone)]
pub struct Summary {
    pub record: Record,
    pub status: Status,
}

/// The engine of one kthw installation.
#[derive(Debug, Clone)]
pub struct Engine {
    pub paths: Paths,
    pub store: Store,
    pub runtime: Runtime,
    pub events: events::Events,
}

/// The signal a foreground `kthw run` got (Ctrl-C), to pass on to the container.
static FORWARD: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember_signal(sig: libc::c_int) {
    FORWARD.store(sig, Ordering::Relaxed);
}

impl Engine {
    /// Opens the engine: the image store and the containers' folder.
    ///
    /// # Errors
    /// If the folders cannot be created.
    pub fn open(paths: &Paths) -> Result<Engine> {
        let containers = paths.containers();
        fs::create_dir_all(&containers).map_err(Error::io("create", &containers))?;
        let engine_run = paths.run.join("engine");
        fs::create_dir_all(&engine_run).map_err(Error::io("create", &engine_run))?;
        Ok(Engine {
            paths: paths.clone(),
            store: Store::open(paths.images())?,
            runtime: Runtime::for_paths(paths),
            events: events::Events::new(&paths.state),
        })
    }

    fn dir(&self, id: &str) -> Dir {
        Dir::new(&self.paths.containers(), id)
    }

    /// The unix socket on which the runtime sends a container's pty master. Under the
    /// run folder and short: socket paths may have at most 107 bytes.
    fn console_socket(&self, id: &str) -> PathBuf {
        self.paths.run.join("engine").join(format!("{}.console", &id[..12]))
    }

    /// Every container, newest first.
    ///
    /// # Errors
    /// An unreadable folder or record.
    pub fn list(&self) -> Result<Vec<(Dir, Record)>> {
        let root = self.paths.containers();
        let mut out = Vec::new();
        for entry in fs::read_dir(&root).map_err(Error::io("read", &root))?.flatten() {
            let dir = Dir { path: entry.path() };
            if dir.record().exists() {
                out.push((dir.clone(), dir.load()?));
            }
        }
        out.sort_by(|a, b| b.1.created.cmp(&a.1.created));
        Ok(out)
    }

    /// Finds a container by name, id, or unique id prefix, as Docker does.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], or a prefix that matches several.
    pub fn find(&self, name_or_id: &str) -> Result<(Dir, Record)> {
        let all = self.list()?;
        if let Some(found) = all.iter().find(|(_, r)| r.name == name_or_id || r.id == name_or_id) {
            return Ok(found.clone());
        }
        let matches: Vec<_> =
            all.iter().filter(|(_, r)| !name_or_id.is_empty() && r.id.starts_with(name_or_id)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NoSuchContainer(name_or_id.to_string())),
            _ => Err(Error::bad(
                format!("the id prefix {name_or_id}"),
                format!("{} containers start with it; give more digits or the name", matches.len()),
            )),
        }
    }

    // ANCHOR: run
    /// `kthw run`: image → record → rootfs → bundle → supervisor (see the module docs).
    ///
    /// # Errors
    /// A bad flag, a missing image, or a container that could not start (its record is
    /// kept, as Docker keeps it, unless `--rm`).
    pub fn run(&self, opts: &RunOptions) -> Result<RunOutcome> {
        let checked = config::check(opts)?;
        let image = self.store.image(&opts.image)?;
        let (dir, record) = self.new_record(&image, opts, checked)?;
        if let Err(e) = self.prepare(&dir, &record) {
            let _ = self.destroy_quietly(&dir, &record);
            return Err(e);
        }
        self.events.emit("create", &record.id, &[("name", &record.name), ("image", &record.image)]);

        if opts.tty && !opts.detach {
            // The foreground terminal: this process is the supervisor (see supervisor.rs).
            let io = supervisor::Io::Tty { foreground: true, interactive: opts.interactive };
            let code = supervisor::supervise(self, &dir, &record, io, supervisor::Notifier::none());
            return Ok(RunOutcome::Exited { id: record.id, code });
        }
        let io = if opts.tty {
            supervisor::Io::Tty { foreground: false, interactive: false }
        } else {
            let stdin = if opts.interactive && !opts.detach { Some(supervisor::dup_stdin()?) } else { None };
            supervisor::Io::Pipes { stdin }
        };
        let log = fs::File::open(dir.log()).map_err(Error::io("open", dir.log()))?;
        let mut handle = supervisor::spawn(self, &dir, &record, io)?;
        handle.started(&dir)?;
        if opts.detach {
            return Ok(RunOutcome::Detached { id: record.id });
        }
        let code = self.follow(&record, log, &mut handle)?;
        Ok(RunOutcome::Exited { id: record.id, code })
    }
    // ANCHOR_END: run

    /// Id, name and record of a new container, with its folder and empty log made.
    fn new_record(&self, image: &Image, opts: &RunOptions, checked: config::Checked) -> Result<(Dir, Record)> {
        let id = names::new_id()?;
        // One lock for picking a name and writing the record, so two `kthw run --name web`
        // at once cannot both get it.
        let lock_path = self.paths.containers().join(".lock");
        let lock = fs::File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys("flock the containers folder")(e))?;
        let taken: Vec<String> = self.list()?.into_iter().map(|(_, r)| r.name).collect();
        let name = match &opts.name {
            Some(n) if taken.contains(n) => return Err(Error::ContainerExists(n.clone())),
            Some(n) => n.clone(),
            None => names::random_name(|n| taken.iter().any(|t| t == n))?,
        };
        let record = config::record(&id, &name, &image.name, &image.id(), &image.config, opts, checked)?;
        let dir = self.dir(&id);
        fs::create_dir_all(dir.bundle()).map_err(Error::io("create", dir.bundle()))?;
        record::write_json(&dir.record(), &record)?;
        fs::File::create(dir.log()).map_err(Error::io("create", dir.log()))?;
        Ok((dir, record))
    }

    /// The container's rootfs, mounted at the bundle's `rootfs/`, and the bundle's spec.
    fn prepare(&self, dir: &Dir, record: &Record) -> Result<()> {
        let volumes = record.volumes.iter().map(|v| (v.host.clone(), v.container.clone())).collect();
        let mut rootfs =
            Rootfs::create(&self.paths, &self.store, &record.image, &record.id, Some(&record.hostname), volumes)?;
        rootfs.mount(&self.store, &dir.rootfs())?;
        for v in &record.volumes {
            // The mount point, inside the container's own upper layer (left out of commits).
            let target = dir.rootfs().join(v.container.strip_prefix("/").unwrap_or(&v.container));
            if v.host.is_dir() {
                fs::create_dir_all(&target).map_err(Error::io("create", &target))?;
            } else if !target.exists() {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
                }
                fs::File::create(&target).map_err(Error::io("create", &target))?;
            }
        }
        let spec = config::spec(record, &dir.rootfs())?;
        let path = dir.bundle().join("config.json");
        let text = serde_json::to_vec_pretty(&spec).map_err(|e| Error::bad("the spec", e))?;
        fs::write(&path, text).map_err(Error::io("write", &path))
    }

    /// A foreground `kthw run`: prints the log as it grows until the supervisor says the
    /// container exited; Ctrl-C and SIGTERM are passed on to the container, as Docker's
    /// `--sig-proxy` does.
    fn follow(&self, record: &Record, log: fs::File, handle: &mut supervisor::Handle) -> Result<i32> {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
        let action = SigAction::new(SigHandler::Handler(remember_signal), SaFlags::SA_RESTART, SigSet::empty());
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores a number.
            let _ = unsafe { sigaction(sig, &action) };
        }
        let mut outcome = None;
        let mut done = || {
            let sig = FORWARD.swap(0, Ordering::Relaxed);
            if let Ok(signal) = Signal::try_from(sig) {
                let _ = self.runtime.kill(&record.id, signal);
            }
            match handle.poll_exit() {
                Some(result) => {
                    outcome = Some(result);
                    true
                }
                None => false,
            }
        };
        log::print(log, true, &mut done, &mut std::io::stdout(), &mut std::io::stderr())?;
        match outcome {
            Some(Ok(code)) => Ok(code),
            _ => Err(Error::WrongState {
                id: record.name.clone(),
                status: "without a supervisor".into(),
                why: format!(
                    "the supervisor died before the container exited; see {}",
                    self.dir(&record.id).supervisor_log().display()
                ),
            }),
        }
    }

    /// `kthw ps`: running containers (and those whose supervisor died); with `all`, every one.
    ///
    /// # Errors
    /// An unreadable record.
    pub fn ps(&self, all: bool) -> Result<Vec<Summary>> {
        Ok(self
            .list()?
            .into_iter()
            .map(|(dir, record)| Summary { status: dir.status(), record })
            .filter(|s| {
                all || matches!(s.status, Status::Running { .. } | Status::SupervisorDied { init_alive: true, .. })
            })
            .collect())
    }

    /// `kthw logs`: the container's output, each line to the stream it came from; with
    /// `follow`, until the container exits.
    ///
    /// # Errors
    /// No such container, or an unreadable log.
    pub fn logs(&self, name: &str, follow: bool, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<()> {
        let (dir, _) = self.find(name)?;
        let file = log::open(&dir.log())?;
        // Done once it exited, lost its supervisor, or was never started by one.
        let mut done = || match dir.status() {
            Status::Running { .. } => !dir.record().exists(),
            Status::Created => !dir.supervisor().is_some_and(|s| s.alive()),
            _ => true,
        };
        log::print(file, follow, &mut done, stdout, stderr)
    }

    /// `kthw exec`: runs a command in a running container (see [`exec`]).
    ///
    /// # Errors
    /// As [`exec::exec`].
    pub fn exec(&self, name: &str, opts: &ExecOptions) -> Result<i32> {
        let (dir, record) = self.find(name)?;
        exec::exec(self, &dir, &record, opts)
    }

    /// Waits up to `timeout` for `exit.json`; true if it came.
    fn wait_exit(&self, dir: &Dir, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match dir.status() {
                Status::Exited { .. } => return true,
                Status::SupervisorDied { .. } => return false,
                _ if Instant::now() >= deadline => return false,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// `kthw stop`: SIGTERM, up to `grace` to exit, then SIGKILL, as `docker stop -t`.
    /// The supervisor records the code: 143 if SIGTERM ended it, 137 if SIGKILL did.
    ///
    /// # Errors
    /// No such container, or a container that does not die.
    pub fn stop(&self, name: &str, grace: Duration) -> Result<String> {
        let (dir, record) = self.find(name)?;
        match dir.status() {
            Status::Running { .. } => {
                let _ = self.runtime.kill(&record.id, Signal::SIGTERM);
                if !self.wait_exit(&dir, grace) && matches!(dir.status(), Status::Running { .. }) {
                    let _ = self.runtime.kill(&record.id, Signal::SIGKILL);
                    self.wait_exit(&dir, Duration::from_secs(10));
                }
            }
            Status::SupervisorDied { init_alive: true, .. } => self.stop_orphan(&dir, &record, grace)?,
            _ => {}
        }
        match dir.status() {
            Status::Exited { .. } => {
                self.events.emit("stop", &record.id, &[("name", &record.name), ("image", &record.image)]);
                Ok(record.id)
            }
            Status::SupervisorDied { .. } => self.stop_orphan(&dir, &record, grace).map(|()| record.id),
            other => Err(Error::WrongState {
                id: record.name,
                status: other.name().into(),
                why: "it did not stop after SIGKILL; see `kthw inspect` and the supervisor.log".into(),
            }),
        }
    }

    /// Stops a container whose supervisor died: nobody will collect its exit code, so we
    /// signal the init directly, wait for it to vanish, clean up, and record a code that
    /// says which signal we sent.
    fn stop_orphan(&self, dir: &Dir, record: &Record, grace: Duration) -> Result<()> {
        let started = dir.started_info()?;
        let gone = |s: &Option<record::Started>| s.as_ref().is_none_or(|s| !record::alive(s.pid, s.pid_start_time));
        let mut code = 0;
        for (signal, wait) in [(Signal::SIGTERM, grace), (Signal::SIGKILL, Duration::from_secs(10))] {
            if gone(&started) {
                break;
            }
            if let Some(s) = &started {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid), signal);
                code = 128 + signal as i32;
            }
            let deadline = Instant::now() + wait;
            while !gone(&started) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.after_exit(dir, record);
        let exit = Exited {
            exit_code: code,
            finished_at: record::now(),
            error: Some(
                "the supervisor had died: the exit code is that of the signal we sent, not one observed".into(),
            ),
        };
        record::write_json(&dir.exited(), &exit)?;
        self.events.emit("die", &record.id, &[("name", &record.name), ("exitCode", &code.to_string())]);
        Ok(())
    }

    /// `kthw kill`: sends `signal` to the container's init (through the runtime).
    ///
    /// # Errors
    /// No such container, or one that is not running.
    pub fn kill(&self, name: &str, signal: Signal) -> Result<String> {
        let (dir, record) = self.find(name)?;
        let status = dir.status();
        if !matches!(status, Status::Running { .. } | Status::SupervisorDied { init_alive: true, .. }) {
            return Err(Error::WrongState {
                id: record.name,
                status: status.name().into(),
                why: "only a running container can be sent a signal".into(),
            });
        }
        self.runtime.kill(&record.id, signal)?;
        self.events.emit("kill", &record.id, &[("name", &record.name), ("signal", &(signal as i32).to_string())]);
        Ok(record.id)
    }

    /// What the supervisor does once the init is gone (and `rm -f` if the supervisor
    /// died): the runtime's state and cgroup, the network, the mount. Each step goes on
    /// after an error of the one before; errors are logged.
    fn after_exit(&self, dir: &Dir, record: &Record) -> Vec<String> {
        let mut problems = Vec::new();
        match self.runtime.delete(&record.id, true) {
            Ok(()) | Err(Error::NoSuchContainer(_)) => {}
            Err(e) => problems.push(format!("runtime delete: {e}")),
        }
        if let Err(e) = net::detach(&self.paths, record) {
            problems.push(format!("network detach: {e}"));
        }
        let _ = fs::remove_file(dir.network());
        match Rootfs::open(&self.paths, &record.id) {
            Ok(mut rootfs) => {
                if let Err(e) = rootfs.unmount() {
                    problems.push(format!("unmount: {e}"));
                }
            }
            Err(e) => problems.push(format!("rootfs: {e}")),
        }
        for p in &problems {
            tracing::warn!("{}: {p}", record.name);
        }
        problems
    }

    /// Removes everything of a stopped container: what [`Engine::after_exit`] removes,
    /// then the rootfs (releasing the image) and the record.
    fn destroy(&self, dir: &Dir, record: &Record) -> Result<()> {
        let problems = self.after_exit(dir, record);
        if !problems.is_empty() && problems.iter().any(|p| p.starts_with("unmount")) {
            return Err(Error::WrongState {
                id: record.name.clone(),
                status: "stopped".into(),
                why: format!("cannot remove it: {}", problems.join("; ")),
            });
        }
        if let Ok(rootfs) = Rootfs::open(&self.paths, &record.id) {
            rootfs.remove(&self.store)?;
        }
        let _ = fs::remove_file(self.console_socket(&record.id));
        fs::remove_dir_all(&dir.path).map_err(Error::io("remove", &dir.path))?;
        self.events.emit("destroy", &record.id, &[("name", &record.name), ("image", &record.image)]);
        Ok(())
    }

    fn destroy_quietly(&self, dir: &Dir, record: &Record) -> Result<()> {
        if let Ok(rootfs) = Rootfs::open(&self.paths, &record.id) {
            rootfs.remove(&self.store)?;
        }
        fs::remove_dir_all(&dir.path).map_err(Error::io("remove", &dir.path))
    }

    /// `kthw rm`: refuses a running container unless `force` (then SIGKILL first), and
    /// removes everything it had: cgroup, veth, DNAT rules, address, mount, rootfs, record.
    ///
    /// # Errors
    /// No such container, a running one without `force`, or a step that failed.
    pub fn rm(&self, name: &str, force: bool) -> Result<String> {
        let (dir, record) = self.find(name)?;
        let status = dir.status();
        let live = matches!(status, Status::Running { .. } | Status::SupervisorDied { init_alive: true, .. })
            || (status == Status::Created && dir.supervisor().is_some_and(|s| s.alive()));
        if live && !force {
            return Err(Error::WrongState {
                id: record.name,
                status: status.name().into(),
                why: "stop it first (`kthw stop`), or remove it with `kthw rm -f`".into(),
            });
        }
        if live {
            let _ = self.runtime.kill(&record.id, Signal::SIGKILL);
            if !self.wait_exit(&dir, Duration::from_secs(10)) {
                // No supervisor to do it: the runtime's forced delete kills what is left.
                self.stop_orphan(&dir, &record, Duration::ZERO)?;
            }
        }
        self.destroy(&dir, &record)?;
        Ok(record.id)
    }

    /// `kthw inspect`: Docker-shaped JSON.
    ///
    /// # Errors
    /// No such container.
    pub fn inspect(&self, name: &str) -> Result<serde_json::Value> {
        let (dir, record) = self.find(name)?;
        Ok(render::inspect(self, &dir, &record))
    }

    /// `kthw commit`: the container's upper directory becomes a new layer on top of its
    /// image's, and its command, environment and working directory the new image's config.
    ///
    /// # Errors
    /// No such container or image, or the layer cannot be written.
    pub fn commit(&self, name: &str, image: &str) -> Result<Image> {
        use kthw_rootfs::{diff, import};
        let (_, record) = self.find(name)?;
        let rootfs = Rootfs::open(&self.paths, &record.id)?;
        let base = self.store.image(&record.image)?;
        let mut exclude: Vec<PathBuf> = diff::INIT_FILES.iter().map(PathBuf::from).collect();
        exclude
            .extend(record.volumes.iter().map(|v| v.container.strip_prefix("/").unwrap_or(&v.container).to_path_buf()));
        let options = diff::TarOptions { overlay_whiteouts: true, exclude };
        let upper = rootfs.upper();
        let layer = import::store_layer(&self.store, |w| diff::write_tar(&upper, w, &options).map(|_| ()))?;

        let mut config = base.config.clone();
        let mut c = config.config().clone().unwrap_or_default();
        c.set_entrypoint((!record.entrypoint.is_empty()).then(|| record.entrypoint.clone()));
        c.set_cmd((!record.cmd.is_empty()).then(|| record.cmd.clone()));
        c.set_env(Some(record.env.clone()));
        c.set_working_dir(Some(record.working_dir.clone()));
        c.set_user((!record.user.is_empty()).then(|| record.user.clone()));
        config.set_config(Some(c));
        config.set_created(Some(record::now()));
        let comment = format!("kthw commit {} {image}", record.name);
        let layers = base.manifest.layers().clone();
        let committed = import::write_image(&self.store, image, config, layers, vec![layer], Some(&comment))?;
        self.events.emit("commit", &record.id, &[("name", &record.name), ("image", &committed.name)]);
        Ok(committed)
    }

    /// `kthw system df`.
    ///
    /// # Errors
    /// An unreadable store or record.
    pub fn df(&self) -> Result<render::Df> {
        let images = self.store.df()?;
        let mut containers = Vec::new();
        for (dir, record) in self.list()? {
            let upper =
                Rootfs::open(&self.paths, &record.id).map(|r| kthw_rootfs::store::dir_size(&r.upper())).unwrap_or(0);
            let log = fs::metadata(dir.log()).map(|m| m.len()).unwrap_or(0);
            containers.push(render::DfContainer { name: record.name.clone(), status: dir.status(), size: upper, log });
        }
        Ok(render::Df { images, containers })
    }

    /// `kthw system prune`: removes every container that does not run, then what no
    /// image uses in the store; with `all_images`, also every image no one holds.
    ///
    /// # Errors
    /// A container or image that cannot be removed.
    pub fn prune(&self, all_images: bool) -> Result<render::Pruned> {
        let mut pruned = render::Pruned::default();
        for (dir, record) in self.list()? {
            let stopped = match dir.status() {
                Status::Exited { .. } => true,
                Status::Created => !dir.supervisor().is_some_and(|s| s.alive()),
                Status::SupervisorDied { init_alive, .. } => !init_alive,
                Status::Running { .. } => false,
            };
            if stopped {
                pruned.bytes += Rootfs::open(&self.paths, &record.id)
                    .map(|r| kthw_rootfs::store::dir_size(&r.upper()))
                    .unwrap_or(0);
                self.destroy(&dir, &record)?;
                pruned.containers.push(record.id);
            }
        }
        if all_images {
            let holds = self.store.holds()?;
            for name in self.store.refs()?.into_keys() {
                if !holds.values().any(|h| *h == name) {
                    let removed = self.store.remove(&name)?;
                    pruned.bytes += removed.bytes;
                    pruned.images.push(name);
                }
            }
        }
        pruned.bytes += self.store.prune()?.bytes;
        Ok(pruned)
    }

    /// Where the containers live (for tests and the lab checker).
    pub fn containers_dir(&self) -> PathBuf {
        self.paths.containers()
    }

    /// A container's folder (for tests and the lab checker).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir(id).path
    }
}

/// Parses a signal as `kill -s` takes it: `KILL`, `SIGKILL` or `9`.
///
/// # Errors
/// A name or number that is not a signal.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::bad(format!("the signal {s:?}"), "give a name or number, e.g. TERM, SIGKILL or 9");
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Signals are taken as names, with or without SIG, or numbers.
    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").unwrap_err().to_string().contains("TERM, SIGKILL or 9"));
        assert!(parse_signal("99").is_err());
    }
}
