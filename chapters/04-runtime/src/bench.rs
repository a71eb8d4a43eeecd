//! `kthw bench runtime`: our runtime against Debian's runc and crun, in the same run.
//!
//! One benchmark, the one every OCI runtime publishes: how long `run` of a busybox bundle
//! whose process is `/bin/true` takes, from spawning the runtime's command to its exit.
//! That is create + start + wait + delete, with nothing for the container to do, so what
//! is left is the runtime's own cost: starting up, reading `config.json`, namespaces,
//! cgroups, mounts, `pivot_root`, `execve`, reaping and tearing it all down.
//!
//! Absolute milliseconds on a shared 2-core machine move by a third from one run to the
//! next. Ratios between runtimes measured *interleaved* barely move: every iteration runs
//! each runtime once, in a shuffled order, so a noisy neighbour slows all of them alike.
//! So the target is a ratio of medians: **ours ≤ 1.0× crun** (stretch: ≤ 0.8×).
//!
//! The same bundle, the same cgroup layout for all three:
//! - one bundle folder: a busybox root filesystem and the `config.json` of `runc spec`,
//!   with `process.args = ["/bin/true"]` and `terminal: false` (all three accept it; it has
//!   no `linux.cgroupsPath`, so each runtime picks its default: `/<id>` for runc and crun,
//!   `/<instance>/<id>` for ours);
//! - each runtime keeps its state in a `--root` folder of its own, in a scratch folder;
//! - on a *hybrid* cgroup host crun refuses to run ("cgroups in hybrid mode not
//!   supported"), so before spawning anything the benchmark moves itself into a private
//!   mount namespace and mounts a throw-away tmpfs over `/sys/fs/cgroup/unified`
//!   ([`CgroupMask`]); every runtime then sees the same pure cgroup v1 layout. The host's
//!   mount table is never changed. On pure cgroup v2 no mask is needed.
//!
//! [`profile`] shows where the time goes: it runs each runtime under
//! `strace -f --seccomp-bpf` (only the syscalls that mark a phase stop the tracee, which
//! keeps the overhead down, but each run still takes 2–3× as long; read the shares, not
//! the milliseconds) and splits each run's wall time into phases ([`phases`]): a `mount`
//! means "mounts", a `mkdir` under `/sys/fs/cgroup` "cgroups", and so on; the gaps between
//! two phases are the runtime's own code, its IPC and its waits.
//!
//! What the runtimes' own benchmarks do differently: youki's README uses `hyperfine` over
//! `create`, `start` and `delete` as three commands, with `drop_caches` before each run;
//! crun's README times 100 sequential `crun run`s. Both run one runtime after the other,
//! so drift between the blocks lands in the comparison; we interleave.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kthw_lab::host::{CgroupLayout, CgroupMode};

use crate::error::{Error, Result};

/// Every container id of the benchmark starts with this and our pid, so this run's
/// leftovers are easy to find.
pub const ID_PREFIX: &str = "kthwbench-";

/// A container id of this run: `kthwbench-PID-TAG`.
fn container_id(tag: &str) -> String {
    format!("{ID_PREFIX}{}-{tag}", std::process::id())
}

/// Warm-up runs per runtime before each round: page cache, the dynamic loader, and the
/// kernel's first-time work (e.g. creating our instance's parent cgroups) stay out of the numbers.
const WARMUPS: usize = 3;

/// How `kthw bench runtime` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Iterations per round; each iteration runs every runtime once.
    pub n: usize,
    /// Rounds; the medians of each round are shown, the targets use all samples.
    pub rounds: usize,
    /// Also trace each runtime with strace and show its phases.
    pub profile: bool,
    /// Runs of each runtime under strace for the profile.
    pub profile_runs: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { n: 100, rounds: 3, profile: false, profile_runs: 20 }
    }
}

// ANCHOR: stats
/// The spread of one runtime's samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stats {
    /// Nearest-rank percentiles of `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Stats> {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Some(Stats {
            median: percentile_median(&ms)?,
            p10: at(0.10),
            p90: at(0.90),
            min: *ms.first()?,
            max: *ms.last()?,
            n: ms.len(),
        })
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
fn percentile_median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}
// ANCHOR_END: stats

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Spawn to exit, as the caller sees it.
    pub wall: Duration,
    /// CPU time (user + system) of the runtime and what it reaped. The kernel splits
    /// it into user and system by sampling at each tick (4 ms here), so only the sum is
    /// worth reading for a 10 ms run.
    pub cpu: Duration,
    /// Minor page faults: how much memory the runtime touched (its binary, its heap).
    pub faults: u64,
}

/// One runtime under test: how to run a bundle with it.
#[derive(Debug, Clone)]
pub struct Contender {
    /// `kthw`, `runc` or `crun`.
    pub name: String,
    pub program: PathBuf,
    /// Arguments before the bundle and id, e.g. `--root DIR run --bundle`.
    pub args: Vec<OsString>,
    /// Its state folder (`--root`), checked for leftovers at the end.
    pub root: PathBuf,
    /// Environment variables to remove (our `RUST_LOG` would make ours log).
    pub env_remove: Vec<&'static str>,
    /// Arguments before the id that force-delete a container, to clean up after a failed run.
    pub delete_args: Vec<OsString>,
}

impl Contender {
    /// Debian's runc or crun, found on `PATH`, with its state in `scratch/state-NAME`.
    ///
    /// # Errors
    /// If the program is not installed.
    pub fn peer(name: &str, scratch: &Path) -> Result<Contender> {
        let program = kthw_lab::host::which(name).ok_or_else(|| {
            Error::bad(format!("`{name}` for the benchmark"), format!("it is not installed; apt-get install {name}"))
        })?;
        let root = scratch.join(format!("state-{name}"));
        let args = vec!["--root".into(), root.clone().into(), "run".into(), "--bundle".into()];
        let delete_args = vec!["--root".into(), root.clone().into(), "delete".into(), "--force".into()];
        Ok(Contender { name: name.into(), program, args, root, env_remove: vec![], delete_args })
    }

    /// Our runtime: `kthw runtime run --root DIR --bundle BUNDLE ID`, run as `kthw_exe`
    /// (the binary that runs the benchmark, so ours is always the build being measured).
    pub fn ours(kthw_exe: &Path, scratch: &Path) -> Contender {
        let root = scratch.join("state-kthw");
        let args = vec!["runtime".into(), "run".into(), "--root".into(), root.clone().into(), "--bundle".into()];
        let delete_args =
            vec!["runtime".into(), "delete".into(), "--root".into(), root.clone().into(), "--force".into()];
        Contender {
            name: "kthw".into(),
            program: kthw_exe.into(),
            args,
            root,
            env_remove: vec!["RUST_LOG"],
            delete_args,
        }
    }

    fn command(&self, bundle: &Path, id: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).arg(bundle).arg(id);
        for var in &self.env_remove {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    }

    // ANCHOR: time_one
    /// Runs the bundle once: the wall time from spawn to exit, and the CPU time (user +
    /// system) of the runtime and the processes it reaped, the container's init among them.
    ///
    /// # Errors
    /// If the runtime cannot be started or exits with an error (its stderr is kept).
    pub fn time_one(&self, bundle: &Path, id: &str) -> Result<Sample> {
        let mut cmd = self.command(bundle, id);
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(Error::io("run", &self.program))?;
        // wait4 rather than Child::wait: it also reports the resources the child used.
        let (mut status, mut usage) = (0, std::mem::MaybeUninit::<libc::rusage>::zeroed());
        // SAFETY: `usage` is valid for writes; the pid is our own unreaped child.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, usage.as_mut_ptr()) };
        let wall = start.elapsed();
        if pid < 0 {
            return Err(Error::io("wait for", &self.program)(std::io::Error::last_os_error()));
        }
        // SAFETY: wait4 succeeded, so it filled `usage` in.
        let usage = unsafe { usage.assume_init() };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            self.clean_up(id);
            return Err(Error::Command {
                command: format!("{} ... {id}", self.program.display()),
                status: format!("wait status {status:#x}"),
                stderr: stderr.trim().to_string(),
            });
        }
        Ok(Sample { wall, cpu, faults: usage.ru_minflt as u64 })
    }
    // ANCHOR_END: time_one

    /// After a failed run: `delete --force` whatever is left of container `id`.
    fn clean_up(&self, id: &str) {
        let _ = Command::new(&self.program)
            .args(&self.delete_args)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ANCHOR: mask
/// The benchmark's own mount namespace, with a tmpfs over the cgroup2 mount of a hybrid
/// host, so that crun runs and every runtime sees the same cgroup v1 layout.
#[derive(Debug)]
pub struct CgroupMask {
    /// What was done, for the report.
    pub description: String,
    /// The layout the host had (and every other process still sees).
    pub host_layout: CgroupLayout,
    /// The path hidden under the tmpfs, if any.
    pub masked: Option<PathBuf>,
}

impl CgroupMask {
    /// Moves the calling process (and what it spawns later) into a private mount
    /// namespace; on a hybrid host mounts a tmpfs over the cgroup2 mount. Call it before
    /// starting threads: `unshare(CLONE_NEWNS)` applies to the calling thread only.
    ///
    /// # Errors
    /// If the layout cannot be read or the unshare or mounts fail (not root?).
    pub fn enter() -> Result<CgroupMask> {
        use nix::mount::{MsFlags, mount};
        let host_layout = CgroupLayout::detect()?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(Error::sys("unshare(CLONE_NEWNS) for the benchmark (run it as root)"))?;
        // Slave, not private: mounts the host makes still reach us, ours never reach it.
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
            .map_err(Error::sys("mount --make-rslave /"))?;
        let unified = match host_layout.mode {
            CgroupMode::Hybrid => host_layout.unified().map(|m| m.path.clone()),
            CgroupMode::V1 | CgroupMode::V2 => None,
        };
        let description = match &unified {
            Some(path) => {
                mount(Some("kthw-bench"), path, Some("tmpfs"), MsFlags::empty(), Some("size=16m"))
                    .map_err(Error::sys(format!("mount tmpfs over {}", path.display())))?;
                format!(
                    "hybrid host: private mount namespace with a tmpfs over {} (all runtimes see cgroup v1)",
                    path.display()
                )
            }
            None => format!("{:?} host: private mount namespace, no cgroup mask needed", host_layout.mode),
        };
        Ok(CgroupMask { description, host_layout, masked: unified })
    }
}
// ANCHOR_END: mask

/// Writes the benchmark bundle into `dir`: a busybox root filesystem and `runc spec`'s
/// `config.json` with `process.args = ["/bin/true"]` and `terminal: false`.
///
/// # Errors
/// If busybox or runc is missing, or a file cannot be written.
pub fn write_bundle(dir: &Path) -> Result<()> {
    crate::spec::busybox_rootfs(&dir.join("rootfs"))?;
    let runc = kthw_lab::host::which("runc")
        .ok_or_else(|| Error::bad("the benchmark bundle", "it is made with `runc spec`; apt-get install runc"))?;
    let config = dir.join("config.json");
    let _ = std::fs::remove_file(&config);
    let out = Command::new(&runc).arg("spec").arg("--bundle").arg(dir).output().map_err(Error::io("run", &runc))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: "runc spec".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    let text = std::fs::read_to_string(&config).map_err(Error::io("read", &config))?;
    let mut spec: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad(config.display().to_string(), e))?;
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    let text = serde_json::to_string_pretty(&spec).map_err(|e| Error::bad("config.json", e))?;
    std::fs::write(&config, text).map_err(Error::io("write", &config))
}

/// A small xorshift generator: enough to shuffle the order of the runtimes, and no
/// dependency for it. Public for chapter 5's `kthw bench pod`, which interleaves the same way.
pub struct Shuffle(u64);

impl Shuffle {
    /// Seeded from the clock and our pid: a new order every run.
    pub fn seeded() -> Shuffle {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        Shuffle((nanos as u64 ^ u64::from(std::process::id())) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// What [`measure`] found: per contender, all samples and each round's median.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    /// Wall times.
    pub samples: Vec<Duration>,
    /// CPU times and minor page faults, in the same order.
    pub cpu: Vec<Duration>,
    pub faults: Vec<u64>,
    pub round_medians: Vec<f64>,
}

// ANCHOR: interleave
/// Runs every contender `opts.n` times per round, interleaved: each iteration runs them
/// all once, in a new random order. `progress` hears about each round.
///
/// # Errors
/// If any run fails: a benchmark of a runtime that fails measures nothing.
pub fn measure(
    contenders: &[Contender],
    bundle: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Measured>> {
    let mut rng = Shuffle::seeded();
    let mut measured: Vec<Measured> = contenders
        .iter()
        .map(|c| Measured {
            name: c.name.clone(),
            samples: Vec::new(),
            cpu: Vec::new(),
            faults: Vec::new(),
            round_medians: Vec::new(),
        })
        .collect();
    let mut order: Vec<usize> = (0..contenders.len()).collect();
    for round in 0..opts.rounds {
        progress(&format!(
            "round {}/{}: {} warm-ups and {} runs of each runtime",
            round + 1,
            opts.rounds,
            WARMUPS,
            opts.n
        ));
        for (c, contender) in contenders.iter().enumerate() {
            for w in 0..WARMUPS {
                contender.time_one(bundle, &container_id(&format!("{c}-w{round}-{w}")))?;
            }
        }
        let mut this_round = vec![Vec::with_capacity(opts.n); contenders.len()];
        for i in 0..opts.n {
            rng.shuffle(&mut order);
            for &c in &order {
                let sample = contenders[c].time_one(bundle, &container_id(&format!("{c}-{round}-{i}")))?;
                this_round[c].push(sample);
            }
        }
        for (m, samples) in measured.iter_mut().zip(this_round) {
            let wall: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
            m.round_medians.push(Stats::of(&wall).map_or(f64::NAN, |s| s.median));
            m.samples.extend(wall);
            m.cpu.extend(samples.iter().map(|s| s.cpu));
            m.faults.extend(samples.iter().map(|s| s.faults));
        }
    }
    Ok(measured)
}
// ANCHOR_END: interleave

/// Container state folders and cgroups left behind by the benchmark, as paths.
///
/// Looks in each runtime's `--root` and, two levels deep, in every cgroup hierarchy of
/// the host (not in the masked one: its tmpfs goes away with our mount namespace).
pub fn leftovers(contenders: &[Contender], mask: &CgroupMask) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for c in contenders {
        if let Ok(entries) = std::fs::read_dir(&c.root) {
            found.extend(entries.flatten().map(|e| e.path()));
        }
    }
    for mount in &mask.host_layout.mounts {
        if mask.masked.as_ref() == Some(&mount.path) {
            continue;
        }
        find_named(&mount.path, 2, &mut found);
    }
    found
}

fn find_named(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(&container_id("")) {
            found.push(entry.path());
        } else if depth > 1 {
            find_named(&entry.path(), depth - 1, found);
        }
    }
}

/// The table of [`measure`]'s results, the ratios and the targets, as lines. A target
/// line ends with `MET` or `MISSED`; the leftover line with `ok` or `MISSED`.
pub fn report(measured: &[Measured], left: &[PathBuf]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>7} {:>7}   {}",
        "runtime", "median", "p10", "p90", "min", "max", "n", "cpu", "faults", "round medians"
    )];
    let mut stats = Vec::new();
    for m in measured {
        let Some(s) = Stats::of(&m.samples) else { continue };
        let rounds: Vec<String> = m.round_medians.iter().map(|r| format!("{r:.2}")).collect();
        let cpu = Stats::of(&m.cpu).map_or(f64::NAN, |c| c.median);
        let mut faults = m.faults.clone();
        faults.sort_unstable();
        let faults = faults.get(faults.len() / 2).copied().unwrap_or(0);
        lines.push(format!(
            "{:<8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>5} {:>7.2} {:>7}   {}",
            m.name,
            s.median,
            s.p10,
            s.p90,
            s.min,
            s.max,
            s.n,
            cpu,
            faults,
            rounds.join(" / ")
        ));
        stats.push((m, s));
    }
    lines.push("(ms; wall: spawn to exit; cpu: user+sys ms and minor page faults, medians)".into());
    let find = |name: &str| stats.iter().find(|(m, _)| m.name == name);
    if let Some((crun, crun_s)) = find("crun") {
        for (m, s) in &stats {
            if m.name == "crun" {
                continue;
            }
            let rounds: Vec<String> =
                m.round_medians.iter().zip(&crun.round_medians).map(|(a, b)| format!("{:.2}", a / b)).collect();
            lines.push(format!(
                "ratio of medians {}/crun {:>5.2}  (p90 {:.2}; per round {})",
                m.name,
                s.median / crun_s.median,
                s.p90 / crun_s.p90,
                rounds.join(" / ")
            ));
        }
        match find("kthw") {
            Some((_, ours)) => {
                let ratio = ours.median / crun_s.median;
                let verdict = |limit: f64| if ratio <= limit { "MET" } else { "MISSED" };
                lines.push(format!("target  kthw <= 1.0x crun  {:.2}x  {}", ratio, verdict(1.0)));
                // The stretch goal is shown, but only the target decides the exit code.
                lines.push(format!("stretch kthw <= 0.8x crun  {:.2}x  {}", ratio, verdict(0.8).to_lowercase()));
            }
            None => lines.push("target  kthw <= 1.0x crun  not measured (ours is not runnable yet)".into()),
        }
    }
    if left.is_empty() {
        lines.push("left behind: no state folders, no cgroups  ok".into());
    } else {
        let paths: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        lines.push(format!("left behind: {}  MISSED", paths.join(", ")));
    }
    lines
}

/// Whether this `kthw` binary has a working `runtime run` yet (the runtime is the part of
/// the chapter the benchmark measures; during development it may not exist).
pub fn ours_available(kthw_exe: &Path) -> bool {
    Command::new(kthw_exe)
        .args(["runtime", "run", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `kthw bench runtime`: ours, runc and crun, interleaved; then the profile if asked.
/// `scratch` is an empty folder for the bundle and the state folders; `kthw_exe` runs ours.
///
/// # Errors
/// If the mask cannot be set up, a peer is missing or a run fails.
pub fn run_runtime_bench(
    scratch: &Path,
    kthw_exe: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>> {
    let mask = CgroupMask::enter()?;
    progress(&mask.description);
    let bundle = scratch.join("bundle");
    write_bundle(&bundle)?;
    let mut contenders = Vec::new();
    if ours_available(kthw_exe) {
        contenders.push(Contender::ours(kthw_exe, scratch));
    } else {
        progress("kthw runtime run is not available in this build: measuring runc and crun only");
    }
    contenders.push(Contender::peer("runc", scratch)?);
    contenders.push(Contender::peer("crun", scratch)?);
    for c in &contenders {
        std::fs::create_dir_all(&c.root).map_err(Error::io("create", &c.root))?;
    }
    let measured = measure(&contenders, &bundle, opts, progress)?;
    let profiled =
        if opts.profile { Some(profile(&contenders, &bundle, &measured, opts.profile_runs, progress)?) } else { None };
    let mut lines = vec![mask.description.clone()];
    lines.extend(report(&measured, &leftovers(&contenders, &mask)));
    if let Some(masked) = &mask.masked {
        // crun creates `<id>` in the cgroup2 mount too and never removes it; under the
        // mask that is our tmpfs, which goes away with us.
        let count = std::fs::read_dir(masked).map_or(0, |d| d.flatten().filter(|e| e.path().is_dir()).count());
        lines.push(format!("(in the tmpfs over {}: {count} cgroup folders, gone with it)", masked.display()));
    }
    if let Some(profiled) = profiled {
        lines.push(String::new());
        lines.extend(profiled);
    }
    Ok(lines)
}

// ---------------------------------------------------------------------------------------
// Where the time goes: phases from an strace of each run.

/// The syscalls that mark a phase. With `--seccomp-bpf` only these stop the traced process.
const TRACED: &str = "execve,execveat,clone,clone3,unshare,setns,openat,write,mkdir,mkdirat,rmdir,unlinkat,\
                      mknodat,symlink,symlinkat,mount,umount2,pivot_root,sethostname,capset,prctl,prlimit64,\
                      setgroups,setresuid,setresgid,exit_group";

/// The phases of a run, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    StartUp,
    ReExec,
    Namespaces,
    CgroupCreate,
    Mounts,
    PivotRoot,
    ProcessSetup,
    Container,
    Wait,
    CgroupDelete,
    StateFiles,
    Between,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Phase::StartUp,
        Phase::ReExec,
        Phase::Namespaces,
        Phase::CgroupCreate,
        Phase::Mounts,
        Phase::PivotRoot,
        Phase::ProcessSetup,
        Phase::Container,
        Phase::Wait,
        Phase::CgroupDelete,
        Phase::StateFiles,
        Phase::Between,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Phase::StartUp => "start-up: exec runtime, read config",
            Phase::ReExec => "re-exec (runc init, crun's sealed copy)",
            Phase::Namespaces => "namespaces: clone/unshare/setns",
            Phase::CgroupCreate => "cgroup create + attach",
            Phase::Mounts => "mounts: rootfs, /proc, /dev, masks",
            Phase::PivotRoot => "pivot_root + detach old root",
            Phase::ProcessSetup => "process: caps, rlimits, no_new_privs",
            Phase::Container => "container: execve + /bin/true",
            Phase::Wait => "wait for the exit + reap",
            Phase::CgroupDelete => "cgroup delete",
            Phase::StateFiles => "state files: write, remove",
            Phase::Between => "between the steps: code, IPC, waits",
        }
    }

    /// A span phase lasts from its marker to the next marker (whatever happens in between
    /// is its work: loading the program, running `/bin/true`); a block phase lasts from
    /// its first marker to the end of its last, and the gap to the next phase is `Between`.
    fn is_span(self) -> bool {
        matches!(self, Phase::StartUp | Phase::ReExec | Phase::Container | Phase::Wait)
    }
}

/// Milliseconds per phase, indexed like [`Phase::ALL`], and the total.
pub type Split = ([f64; Phase::ALL.len()], f64);

/// Splits one strace log (`strace -f -ttt -T -y`) of a runtime's `run` into time per
/// phase and the total from the runtime's `execve` to its exit. Marker syscalls, in any
/// process of the run, say which phase is going on ([`marker`]).
pub fn phases(log: &str, state_root: &Path, container_exe: &str) -> Option<Split> {
    let state_root = state_root.to_string_lossy();
    let mut per = [0.0; Phase::ALL.len()];
    let mut add = |phase: Phase, seconds: f64| per[phase as usize] += seconds.max(0.0) * 1000.0;
    let (mut top, mut container, mut in_namespaces) = (None, None, false);
    // The phase going on: (phase, when it began, when its last syscall ended).
    let mut current: Option<(Phase, f64, f64)> = None;
    let mut first = None::<f64>;
    for line in log.lines() {
        // "PID TIMESTAMP CALL": strace pads the pid to a width of 5.
        let Some((pid, rest)) = line.trim_start().split_once(' ') else { continue };
        let Some((ts, call)) = rest.trim_start().split_once(' ') else { continue };
        let (Ok(pid), Ok(ts), call) = (pid.parse::<u32>(), ts.parse::<f64>(), call.trim_start()) else { continue };
        if call.starts_with("<...") {
            continue; // the end of a syscall whose start we saw already
        }
        let exited = call.starts_with("+++");
        if Some(pid) == container && !exited {
            continue; // busybox's own syscalls are the container's time
        }
        let top_pid = *top.get_or_insert(pid);
        let start = *first.get_or_insert(ts);
        let name = call.split('(').next().unwrap_or("");
        let is_exec = matches!(name, "execve" | "execveat");
        let phase = if exited && Some(pid) == container {
            Some(Phase::Wait)
        } else if exited && pid == top_pid {
            // The runtime is gone: the run is over.
            if let Some((phase, since, end)) = current {
                close(&mut add, phase, since, end, ts);
            }
            return Some((per, (ts - start) * 1000.0));
        } else if is_exec && pid == top_pid && ts == start {
            Some(Phase::StartUp)
        } else if is_exec && call.contains(&format!("\"{container_exe}\"")) {
            container = Some(pid);
            Some(Phase::Container)
        } else {
            marker(name, call, &state_root, in_namespaces, current.map(|c| c.0))
        };
        let Some(phase) = phase else { continue };
        in_namespaces |= phase == Phase::Namespaces;
        let end = ts + syscall_seconds(call);
        current = match current {
            Some((now, since, last_end)) if now == phase => Some((now, since, last_end.max(end))),
            Some((now, since, last_end)) => {
                close(&mut add, now, since, last_end, ts);
                Some((phase, ts, end))
            }
            None => Some((phase, ts, end)),
        };
    }
    None
}

// ANCHOR: phases
/// The phase that one traced syscall `name(...)` (a line of `strace -y`) marks, if any.
/// `in_namespaces`: a namespace was made already; `now`: the phase going on.
fn marker(name: &str, call: &str, state_root: &str, in_namespaces: bool, now: Option<Phase>) -> Option<Phase> {
    let cgroup = call.contains("/sys/fs/cgroup/");
    let state = call.contains(state_root);
    Some(match name {
        // runc re-executes itself as `runc init`; crun a sealed copy of itself.
        "execve" | "execveat" => Phase::ReExec,
        "clone" | "clone3" if call.contains("CLONE_NEW") => Phase::Namespaces,
        "unshare" | "setns" | "sethostname" => Phase::Namespaces,
        // The first write to a v1 cgroup.procs waits for an RCU grace period: often the
        // longest single syscall of a run.
        "write" if fd_path(call).starts_with("/sys/fs/cgroup/") => Phase::CgroupCreate,
        "openat" | "mkdir" | "mkdirat" if cgroup => Phase::CgroupCreate,
        "rmdir" | "unlinkat" if cgroup => Phase::CgroupDelete,
        "mkdir" | "mkdirat" | "rmdir" | "unlinkat" | "mknodat" | "symlink" | "symlinkat" if state => Phase::StateFiles,
        "openat" if state && call.contains("O_CREAT") => Phase::StateFiles,
        // Device nodes and /dev/fd links in the container's /dev.
        "mknodat" | "symlink" | "symlinkat" if in_namespaces => Phase::Mounts,
        "mount" => Phase::Mounts,
        // Detaching the old root belongs to pivot_root.
        "umount2" if now == Some(Phase::PivotRoot) => Phase::PivotRoot,
        "umount2" => Phase::Mounts,
        "pivot_root" => Phase::PivotRoot,
        // Before the namespaces exist, rlimits and prctls are the runtime's own start-up
        // (Go raises its file limit, libcap probes the bounding set, threads get names).
        "capset" | "prctl" | "prlimit64" | "setgroups" | "setresuid" | "setresgid"
            if in_namespaces && !call.contains("PR_CAPBSET_READ") && !call.contains("_NAME") =>
        {
            Phase::ProcessSetup
        }
        _ => return None,
    })
}
// ANCHOR_END: phases

/// Ends a phase at `next` (when the next phase began).
fn close(add: &mut impl FnMut(Phase, f64), phase: Phase, since: f64, end: f64, next: f64) {
    if phase.is_span() {
        add(phase, next - since);
    } else {
        add(phase, end.min(next) - since);
        add(Phase::Between, next - end);
    }
}

/// The path that `strace -y` shows for the first argument, a file descriptor: `4</a/b>`.
fn fd_path(call: &str) -> &str {
    let args = call.split_once('(').map_or("", |(_, a)| a);
    let first = args.split(", ").next().unwrap_or("");
    first.split_once('<').and_then(|(_, p)| p.strip_suffix('>')).unwrap_or("")
}

/// The `<0.000123>` that `strace -T` puts after a finished syscall, in seconds.
fn syscall_seconds(call: &str) -> f64 {
    call.rsplit_once('<').and_then(|(_, t)| t.strip_suffix('>')).and_then(|t| t.parse().ok()).unwrap_or(0.0)
}

/// Runs each contender `runs` times under strace (interleaved) and prints the median time
/// of each phase with its share of the traced median, next to the untraced median.
///
/// # Errors
/// If strace is missing or a traced run fails.
pub fn profile(
    contenders: &[Contender],
    bundle: &Path,
    measured: &[Measured],
    runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<String>> {
    let strace = kthw_lab::host::which("strace")
        .ok_or_else(|| Error::bad("kthw bench runtime --profile", "it needs strace; apt-get install strace"))?;
    progress(&format!("profile: {runs} runs of each runtime under strace"));
    let log = bundle.with_file_name("strace.log");
    let mut per: Vec<Vec<Split>> = vec![Vec::new(); contenders.len()];
    let mut rng = Shuffle::seeded();
    let mut order: Vec<usize> = (0..contenders.len()).collect();
    for i in 0..runs {
        rng.shuffle(&mut order);
        for &c in &order {
            let contender = &contenders[c];
            let id = container_id(&format!("{c}-p-{i}"));
            let inner = contender.command(bundle, &id);
            let mut cmd = Command::new(&strace);
            cmd.args(["-f", "--seccomp-bpf", "-q", "-ttt", "-T", "-y", "-e"])
                .arg(format!("trace={TRACED}"))
                .arg("-o")
                .arg(&log)
                .arg(inner.get_program())
                .args(inner.get_args());
            for var in &contender.env_remove {
                cmd.env_remove(var);
            }
            let out = cmd.stdin(Stdio::null()).stdout(Stdio::null()).output().map_err(Error::io("run", &strace))?;
            if !out.status.success() {
                contender.clean_up(&id);
                return Err(Error::Command {
                    command: format!("strace ... {}", contender.name),
                    status: out.status.to_string(),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().into(),
                });
            }
            let text = std::fs::read_to_string(&log).map_err(Error::io("read", &log))?;
            if let Some(split) = phases(&text, &contender.root, "/bin/true") {
                per[c].push(split);
            }
        }
    }
    let _ = std::fs::remove_file(&log);
    if let Some((c, _)) = contenders.iter().zip(&per).find(|(_, runs)| runs.is_empty()) {
        return Err(Error::bad(
            format!("the strace logs of {}", c.name),
            "none could be split into phases (no exit of the runtime found); is this strace 6 or newer?",
        ));
    }
    Ok(profile_table(contenders, measured, &per))
}

/// The profile as a table: one row per phase, per runtime its median ms and share.
fn profile_table(contenders: &[Contender], measured: &[Measured], per: &[Vec<Split>]) -> Vec<String> {
    let mut header = format!("{:<40}", "phase (ms, median of traced runs; share)");
    for c in contenders {
        let _ = write!(header, " {:>15}", c.name);
    }
    let mut lines = vec![header];
    let median_of = |values: Vec<f64>| {
        let mut v = values;
        v.sort_by(f64::total_cmp);
        percentile_median(&v).unwrap_or(f64::NAN)
    };
    let totals: Vec<f64> = per.iter().map(|runs| median_of(runs.iter().map(|r| r.1).collect())).collect();
    for (p, phase) in Phase::ALL.iter().enumerate() {
        let medians: Vec<f64> = per.iter().map(|runs| median_of(runs.iter().map(|r| r.0[p]).collect())).collect();
        if medians.iter().all(|m| *m < 0.005) {
            continue; // no runtime spends time here (e.g. the re-exec is runc's alone)
        }
        let mut line = format!("{:<40}", phase.label());
        for (m, total) in medians.iter().zip(&totals) {
            let _ = write!(line, " {:>7.2} ({:>3.0}%)", m, 100.0 * m / total);
        }
        lines.push(line);
    }
    let mut line = format!("{:<40}", "total under strace (median)");
    for total in &totals {
        let _ = write!(line, " {total:>7.2}       ");
    }
    lines.push(line);
    let mut line = format!("{:<40}", "untraced median (above)");
    for c in contenders {
        let m = measured.iter().find(|m| m.name == c.name).and_then(|m| Stats::of(&m.samples));
        let _ = write!(line, " {:>7.2}       ", m.map_or(f64::NAN, |s| s.median));
    }
    lines.push(line);
    let mut line = format!("{:<40}", "traced runs parsed");
    for runs in per {
        let _ = write!(line, " {:>7}       ", runs.len());
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    // The median of an odd count is the middle sample, of an even count the mean of the two middle ones.
    #[test]
    fn median_is_the_middle() {
        assert_eq!(Stats::of(&ms(&[30, 10, 20])).unwrap().median, 20.0);
        assert_eq!(Stats::of(&ms(&[40, 10, 20, 30])).unwrap().median, 25.0);
        assert!(Stats::of(&[]).is_none());
    }

    // p10 and p90 are nearest-rank percentiles; min, max and n are the extremes and the count.
    #[test]
    fn spread_is_nearest_rank() {
        let samples = ms(&(1..=11).rev().collect::<Vec<_>>());
        let s = Stats::of(&samples).unwrap();
        assert_eq!((s.p10, s.median, s.p90), (2.0, 6.0, 10.0));
        assert_eq!((s.min, s.max, s.n), (1.0, 11.0, 11));
    }

    // The shuffle is a permutation: every runtime still runs once per iteration.
    #[test]
    fn shuffle_keeps_every_item() {
        let mut rng = Shuffle(12345);
        let mut order: Vec<usize> = (0..5).collect();
        rng.shuffle(&mut order);
        order.sort();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }

    // A write counts for the cgroups by the file it writes to, not by what it writes.
    #[test]
    fn writes_are_classified_by_their_file() {
        assert_eq!(
            fd_path(r#"write(4</sys/fs/cgroup/cpu/x/cgroup.procs>, "0", 1) = 1"#),
            "/sys/fs/cgroup/cpu/x/cgroup.procs"
        );
        assert_eq!(fd_path(r#"write(5</st/x/state.json>, "{\"/sys/fs/cgroup/\"}", 20) = 20"#), "/st/x/state.json");
        assert_eq!(fd_path("exit_group(0) = ?"), "");
    }

    // A trace is split at each marker syscall; block phases end with their last syscall,
    // and the gaps between them count as "between"; everything adds up to the whole run.
    #[test]
    fn phases_split_a_trace_at_markers() {
        let log = "\
10    100.000 execve(\"/usr/bin/crun\", [\"crun\", \"run\", \"x\"], 0x0 /* 1 vars */) = 0 <0.000500>
10 100.001 prlimit64(0, RLIMIT_NOFILE, NULL, {rlim_cur=1024, rlim_max=4096}) = 0 <0.000010>
10 100.002 mkdir(\"/st/x\", 0700) = 0 <0.000500>
10 100.003 clone(child_stack=NULL, flags=CLONE_NEWNS|CLONE_NEWPID|SIGCHLD) = 11 <0.000500>
10 100.004 mkdirat(AT_FDCWD, \"/sys/fs/cgroup/cpu/x\", 0755) = 0 <0.000100>
10 100.005 openat(AT_FDCWD, \"/sys/fs/cgroup/cpu/x/cgroup.procs\", O_WRONLY) = 3 <0.000500>
11 100.006 mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE, NULL) = 0 <0.001000>
11 100.010 pivot_root(\".\", \".\") = 0 <0.000100>
11 100.011 umount2(\".\", MNT_DETACH) = 0 <0.000500>
11 100.012 execve(\"/bin/true\", [\"/bin/true\"], 0x0 /* 3 vars */) = 0 <0.000300>
11 100.0125 prlimit64(0, RLIMIT_NOFILE, NULL, {rlim_cur=1024, rlim_max=4096}) = 0 <0.000010>
11 100.013 +++ exited with 0 +++
10 100.014 rmdir(\"/sys/fs/cgroup/cpu/x\") = 0 <0.000500>
10 100.015 unlinkat(3</st>, \"x\", AT_REMOVEDIR) = 0 <0.000500>
10 100.016 +++ exited with 0 +++
";
        let (per, total) = phases(log, Path::new("/st"), "/bin/true").unwrap();
        let at = |phase: Phase| per[phase as usize];
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(total, 16.0), "{total}");
        assert!(close(per.iter().sum::<f64>(), 16.0), "{per:?}");
        // The prlimit64 before the namespaces is start-up; busybox's own is the container's.
        assert!(close(at(Phase::StartUp), 2.0) && close(at(Phase::Container), 1.0), "{per:?}");
        assert!(close(at(Phase::StateFiles), 1.0) && close(at(Phase::Namespaces), 0.5));
        assert!(close(at(Phase::CgroupCreate), 1.5) && close(at(Phase::Mounts), 1.0));
        assert!(close(at(Phase::PivotRoot), 1.5) && close(at(Phase::Wait), 1.0));
        assert!(close(at(Phase::CgroupDelete), 0.5));
        // 0.5 after the state mkdir, the clone and the cgroup attach, 3 after the mount,
        // 0.5 after pivot_root's umount2, 0.5 after the rmdir and the unlinkat.
        assert!(close(at(Phase::Between), 6.0), "{per:?}");
    }
}
