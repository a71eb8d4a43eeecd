//! `kthw bench pod`: how long it takes to start a pod, against two `crun run`s in the
//! same run.
//!
//! What is measured: from "here is a Pod" to "the pod is Running": its sandbox is up and
//! its one app container's process has been exec'd. That is the part of a pod start that
//! belongs to the node. A real kubelet gets there like this: its sync loop calls the CRI
//! runtime (containerd) with `RunPodSandbox` (containerd makes a network namespace, calls
//! the CNI plugins on it, and starts the pause container with runc), then `CreateContainer`
//! and `StartContainer` for the app (runc again, the app joining the pause's namespaces).
//! The kubelet also makes the pod's cgroup before all that.
//!
//! Ours makes the same calls of this crate as the kubelet's executor does, in the same
//! order, with a clock between them ([`start_pod`]):
//! 1. the pod's folder and uid, and its cgroup `/<instance>/kubepods/pod<uid>` with the
//!    summed limits ([`kubelet::cgroups`]);
//! 2. the pause container created (its rootfs overlay, namespaces, cgroup), CNI ADD with
//!    our `kthw-bridge` plugin (veth pair, address, route), the pause started
//!    ([`kubelet::sandbox`]);
//! 3. one app container (busybox `sleep`) created, joining the pause's network, IPC and
//!    UTS namespaces, and started; we wait until its process has exec'd `sleep`
//!    ([`kubelet::containers`]).
//!
//! Then the pod is torn down (the app and pause killed, CNI DEL, containers, rootfs and
//! cgroups removed). That is timed too, but on its own line, outside the ratio.
//!
//! The peer is two sequential `crun run`s of a busybox `/bin/true` bundle, chapter 4's
//! benchmark bundle: two full containers, each with its own namespaces and cgroups, each
//! created, started, waited for and deleted. They do *not* have a network (no CNI, no
//! veth), an image store or an overlay root filesystem (the bundle's rootfs is a plain
//! folder), and they include their own teardown. runc's two runs are shown for context.
//! Target (goal G4 of the project's performance notes): **ours ≤ 1.0× (2 × crun)**;
//! the notes' must-have is 1.25×.
//!
//! The method is chapter 4's (`kthw_runtime::bench`): every iteration runs each party
//! once, in a shuffled order, after warm-ups, in rounds; all in a private mount namespace
//! with a tmpfs over the cgroup2 mount of a hybrid host, so crun runs and every party sees
//! the same cgroup v1 layout. Ours runs in a throw-away kthw home of its own (its own
//! instance name, bridge, pod subnet and cgroup root), removed with `kthw reset`'s code at
//! the end.
//!
//! What a real pod start costs besides: the API server and scheduler (chapters 6–8), the
//! image pull (images are local here), gRPC between kubelet and containerd, containerd's
//! shim process per pod, and the status reaching the API server. The official SLO is
//! 5 s at p99 for all of it, with images pre-pulled.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kthw_lab::Paths;
use kthw_runtime::bench::{CgroupMask, Contender, ID_PREFIX, Shuffle, Stats};

use crate::api::{Pod, Strictness};
use crate::kubelet::containers::{self, Started};
use crate::kubelet::{Kubelet, cgroups, sandbox, store};
use crate::{Error, Result};

/// Warm-up runs of each party before each round (page cache, the bridge and the
/// `kubepods` cgroup made by the first pod, the pause image made the first time).
const WARMUPS: usize = 3;

/// The image of the app container: chapter 4's busybox root filesystem, imported.
const APP_IMAGE: &str = "busybox:bench";

/// How `kthw bench pod` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Iterations per round; each iteration runs every party once.
    pub n: usize,
    /// Rounds; each has its own warm-ups, and the report shows every round's median.
    pub rounds: usize,
    /// Also print the median of each phase of our pod start.
    pub profile: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { n: 50, rounds: 3, profile: false }
    }
}

impl Options {
    /// Checks the numbers.
    ///
    /// # Errors
    /// `n` or `rounds` of 0: there would be no median.
    pub fn check(&self) -> Result<()> {
        if self.n == 0 || self.rounds == 0 {
            return Err(Error::bad(
                format!("-n {} --rounds {}", self.n, self.rounds),
                "both must be at least 1 (a median needs a sample); the defaults are -n 50 --rounds 3",
            ));
        }
        Ok(())
    }
}

// ANCHOR: phases
/// The steps of our pod start, in order, each timed with [`Instant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The pod's folder, its uid and its cgroup with the summed limits.
    PodCgroup,
    /// The pause container created: rootfs, bundle, namespaces, cgroup, waiting for start.
    PauseCreate,
    /// CNI ADD: our plugin makes the veth pair, the address and the route.
    CniAdd,
    /// The pause container started.
    PauseStart,
    /// The app container created, joining the pause's namespaces.
    AppCreate,
    /// The app container started, until its process has exec'd.
    AppStart,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::PodCgroup, Phase::PauseCreate, Phase::CniAdd, Phase::PauseStart, Phase::AppCreate, Phase::AppStart];

    pub fn label(self) -> &'static str {
        match self {
            Phase::PodCgroup => "pod folder + cgroup",
            Phase::PauseCreate => "pause: create",
            Phase::CniAdd => "CNI ADD (kthw-bridge)",
            Phase::PauseStart => "pause: start",
            Phase::AppCreate => "app: create (joins the sandbox)",
            Phase::AppStart => "app: start, until exec'd",
        }
    }
}

/// A clock that splits one pod start into [`Phase`]s.
struct Clock {
    last: Instant,
    phases: [Duration; 6],
}

impl Clock {
    fn start() -> Clock {
        Clock { last: Instant::now(), phases: [Duration::ZERO; 6] }
    }

    /// The time since the last lap goes to `phase`.
    fn lap(&mut self, phase: Phase) {
        let now = Instant::now();
        self.phases[phase as usize] += now - self.last;
        self.last = now;
    }
}
// ANCHOR_END: phases

/// A running pod of the benchmark: what [`stop_pod`] needs to remove it.
#[derive(Debug)]
pub struct Running {
    pub name: String,
    pub uid: String,
    pub pause_pid: i32,
    pub app_pid: i32,
    /// The app container's runtime id.
    pub app_id: String,
    /// The containers' output pipes: kept open while the pod runs, as the executor does.
    outputs: Vec<Started>,
}

/// The benchmark's pod: one busybox container that sleeps.
///
/// # Errors
/// Never in practice: the manifest is ours.
pub fn bench_pod(name: &str) -> Result<Pod> {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n\
         spec:\n  containers: [{{name: app, image: \"{APP_IMAGE}\", command: [sleep, \"3600\"]}}]\n"
    );
    Ok(Pod::load(&text, "the benchmark's pod", Strictness::Strict)?.object)
}

// ANCHOR: start_pod
/// Starts `pod` the way the executor's first sync does (pod cgroup, sandbox, app
/// container), timing each step; returns once the app's process has exec'd.
///
/// # Errors
/// Any step failing; what was made is then removed.
pub fn start_pod(kubelet: &Kubelet, mut pod: Pod) -> Result<(Running, [Duration; 6])> {
    let mut clock = Clock::start();
    pod.apply_defaults();
    let name = pod.name().to_string();
    let dir = store::dir(&kubelet.paths, &name);
    std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    let uid = kthw_runtime::engine::names::new_id()?;
    pod.metadata.uid = Some(uid.clone());
    let app = &pod.spec.containers[0];
    let mut running = Running {
        name: name.clone(),
        uid: uid.clone(),
        pause_pid: 0,
        app_pid: 0,
        app_id: containers::id(&name, &app.name),
        outputs: vec![],
    };
    let made = (|| {
        cgroups::create(&kubelet.paths, &pod, &uid)?;
        clock.lap(Phase::PodCgroup);

        // sandbox::create, step by step.
        let sandbox_dir = store::container_dir(&kubelet.paths, &name, "_sandbox");
        std::fs::create_dir_all(&sandbox_dir).map_err(Error::io("create", &sandbox_dir))?;
        let pause = sandbox::create_pause(kubelet, &pod, &uid, &sandbox_dir)?;
        running.pause_pid = pause.pid;
        running.outputs.push(pause);
        clock.lap(Phase::PauseCreate);
        sandbox::connect(kubelet, &name, &uid, running.pause_pid)?;
        clock.lap(Phase::CniAdd);
        kubelet.runtime.start(&sandbox::id(&name))?;
        clock.lap(Phase::PauseStart);

        // The executor's start_container.
        let started = containers::create_in_sandbox(kubelet, &pod, &pod.spec.containers[0], running.pause_pid)?;
        running.app_pid = started.pid;
        running.outputs.push(started);
        clock.lap(Phase::AppCreate);
        kubelet.runtime.start(&running.app_id)?;
        wait_exec(running.app_pid)?;
        clock.lap(Phase::AppStart);
        Ok(())
    })();
    match made {
        Ok(()) => Ok((running, clock.phases)),
        Err(e) => {
            stop_pod(kubelet, running);
            Err(e)
        }
    }
}
// ANCHOR_END: start_pod

/// Waits until process `pid` has exec'd its program: until `/proc/PID/exe` no longer
/// names our own binary (the container's init is a clone of us until its `execve`).
/// `start` returns when the init has been let go, a few microseconds before that.
fn wait_exec(pid: i32) -> Result<()> {
    let ours = std::fs::read_link("/proc/self/exe").map_err(Error::io("read", "/proc/self/exe"))?;
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_link(&exe) {
            Ok(target) if target != ours => return Ok(()),
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(20)),
            Ok(_) => return Err(Error::bad(format!("the app container (pid {pid})"), "did not exec within 10 s")),
            Err(e) => return Err(Error::io("read", exe)(e)),
        }
    }
}

/// Removes a pod of [`start_pod`], as the executor's teardown does: the app container,
/// then the sandbox (CNI DEL, the pause), each reaped (we are their parent), then the
/// pod's cgroup and folder. Quiet: it also cleans up after a half-made pod.
pub fn stop_pod(kubelet: &Kubelet, running: Running) {
    let Running { name, uid, pause_pid, app_pid, app_id, outputs } = running;
    containers::remove(&kubelet.paths, &kubelet.store, &kubelet.runtime, &app_id);
    reap(app_pid);
    sandbox::remove(kubelet, &name, &uid, pause_pid);
    reap(pause_pid);
    let _ = cgroups::remove(&kubelet.paths, &uid);
    let _ = std::fs::remove_dir_all(store::dir(&kubelet.paths, &name));
    drop(outputs);
}

fn reap(pid: i32) {
    if pid > 0 {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
}

/// One party of the benchmark.
enum Party {
    /// Our pod start, in this process.
    Ours,
    /// Two sequential `run`s of the bundle with this runtime.
    Twice(Contender),
}

/// What was measured of one party: its wall times, and for ours the phases and teardowns.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub name: String,
    pub samples: Vec<Duration>,
    pub round_medians: Vec<f64>,
    /// Ours only: one entry per pod start.
    pub phases: Vec<[Duration; 6]>,
    pub teardown: Vec<Duration>,
}

/// Our side of the benchmark: a kubelet in a throw-away home.
struct Node {
    kubelet: Kubelet,
    next: usize,
}

impl Node {
    /// One pod start (timed) and its teardown (timed separately).
    fn pod(&mut self, tag: &str) -> Result<([Duration; 6], Duration, Duration)> {
        self.next += 1;
        let pod = bench_pod(&format!("bench-{tag}-{}", self.next))?;
        let started = Instant::now();
        let (running, phases) = start_pod(&self.kubelet, pod)?;
        let start = started.elapsed();
        let stopping = Instant::now();
        stop_pod(&self.kubelet, running);
        Ok((phases, start, stopping.elapsed()))
    }
}

fn run_once(party: &Party, node: &mut Node, bundle: &Path, tag: &str, m: &mut Measured) -> Result<Duration> {
    match party {
        Party::Ours => {
            let (phases, start, teardown) = node.pod(tag)?;
            m.phases.push(phases);
            m.teardown.push(teardown);
            Ok(start)
        }
        Party::Twice(c) => {
            let id = |k: usize| format!("{ID_PREFIX}{}-{}-{tag}-{k}", std::process::id(), c.name);
            Ok(c.time_one(bundle, &id(0))?.wall + c.time_one(bundle, &id(1))?.wall)
        }
    }
}

/// Every party `opts.n` times per round, in a new random order each iteration, after
/// [`WARMUPS`] runs of each; warm-ups are not kept.
fn measure(
    parties: &[Party],
    node: &mut Node,
    bundle: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Measured>> {
    let mut measured: Vec<Measured> =
        parties.iter().map(|p| Measured { name: party_name(p), ..Measured::default() }).collect();
    let mut rng = Shuffle::seeded();
    let mut order: Vec<usize> = (0..parties.len()).collect();
    for round in 0..opts.rounds {
        progress(&format!("round {}/{}: {WARMUPS} warm-ups and {} runs of each party", round + 1, opts.rounds, opts.n));
        for party in parties {
            let mut discarded = Measured::default();
            for w in 0..WARMUPS {
                run_once(party, node, bundle, &format!("w{round}{w}"), &mut discarded)?;
            }
        }
        let mut this_round = vec![Vec::with_capacity(opts.n); parties.len()];
        for i in 0..opts.n {
            rng.shuffle(&mut order);
            for &p in &order {
                let wall = run_once(&parties[p], node, bundle, &format!("{round}-{i}"), &mut measured[p])?;
                this_round[p].push(wall);
            }
        }
        for (m, samples) in measured.iter_mut().zip(this_round) {
            m.round_medians.push(Stats::of(&samples).map_or(f64::NAN, |s| s.median));
            m.samples.extend(samples);
        }
    }
    Ok(measured)
}

fn party_name(party: &Party) -> String {
    match party {
        Party::Ours => "kthw pod".into(),
        Party::Twice(c) => format!("{} run x2", c.name),
    }
}

fn stats_line(name: &str, s: &Stats, rounds: &[f64]) -> String {
    let rounds: Vec<String> = rounds.iter().map(|r| format!("{r:.2}")).collect();
    format!(
        "{name:<14} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>5}   {}",
        s.median,
        s.p10,
        s.p90,
        s.min,
        s.max,
        s.n,
        rounds.join(" / ")
    )
}

/// The table, the ratios and the target, as lines. The target line ends with `MET` or
/// `MISSED` (the CLI's exit code), the leftover line with `ok` or `MISSED`.
pub fn report(measured: &[Measured], left: &[String]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5}   {}",
        "party", "median", "p10", "p90", "min", "max", "n", "round medians"
    )];
    let stats: BTreeMap<&str, Stats> =
        measured.iter().filter_map(|m| Some((m.name.as_str(), Stats::of(&m.samples)?))).collect();
    for m in measured {
        if let Some(s) = stats.get(m.name.as_str()) {
            lines.push(stats_line(&m.name, s, &m.round_medians));
        }
    }
    let ours = measured.iter().find(|m| m.name == "kthw pod");
    let teardown = ours.and_then(|m| Stats::of(&m.teardown));
    if let Some(t) = &teardown {
        lines.push(stats_line("kthw teardown", t, &[]));
    }
    lines.push(
        "(ms, wall; kthw pod: to Running with the app exec'd; x2: two sequential `run`s of /bin/true, \
         each create+start+wait+delete; teardown: after each pod, not in the ratios)"
            .into(),
    );
    let (Some(ours), Some(crun)) = (ours, measured.iter().find(|m| m.name == "crun run x2")) else {
        lines.push("target  kthw pod <= 1.0x (2 x crun)  not measured".into());
        return lines;
    };
    let (o, c) = (stats["kthw pod"], stats["crun run x2"]);
    let ratio = o.median / c.median;
    let per_round: Vec<String> =
        ours.round_medians.iter().zip(&crun.round_medians).map(|(a, b)| format!("{:.2}", a / b)).collect();
    lines.push(format!(
        "ratio of medians kthw pod/(2 x crun) {ratio:.2}  (p90 {:.2}; per round {})",
        o.p90 / c.p90,
        per_round.join(" / ")
    ));
    if let Some(runc) = stats.get("runc run x2") {
        lines.push(format!("ratio of medians kthw pod/(2 x runc) {:.2}", o.median / runc.median));
    }
    if let Some(t) = &teardown {
        lines
            .push(format!("ratio (kthw pod + teardown)/(2 x crun) {:.2}  (context)", (o.median + t.median) / c.median));
    }
    let verdict = |limit: f64| if ratio <= limit { "MET" } else { "MISSED" };
    lines.push(format!("target  kthw pod <= 1.0x (2 x crun)  {ratio:.2}x  {}", verdict(1.0)));
    // The notes' must-have; shown, but only the target above decides the exit code.
    lines.push(format!("must    kthw pod <= 1.25x (2 x crun)  {ratio:.2}x  {}", verdict(1.25).to_lowercase()));
    if left.is_empty() {
        lines.push("left behind: no pods, mounts, interfaces, cgroups or state folders  ok".into());
    } else {
        lines.push(format!("left behind: {}  MISSED", left.join(", ")));
    }
    lines
}

/// The median of each phase of our pod starts, with its share of their sum.
pub fn phase_table(ours: &Measured) -> Vec<String> {
    let mut lines = vec![format!("{:<36} {:>8} {:>6}", "phase of kthw pod (n starts)", "median", "share")];
    let medians: Vec<f64> = Phase::ALL
        .iter()
        .map(|p| {
            let samples: Vec<Duration> = ours.phases.iter().map(|ph| ph[*p as usize]).collect();
            Stats::of(&samples).map_or(f64::NAN, |s| s.median)
        })
        .collect();
    let sum: f64 = medians.iter().sum();
    for (phase, m) in Phase::ALL.iter().zip(&medians) {
        lines.push(format!("{:<36} {m:>8.2} {:>5.0}%", phase.label(), 100.0 * m / sum));
    }
    lines.push(format!("{:<36} {sum:>8.2}", "sum of the phase medians"));
    if let Some(s) = Stats::of(&ours.samples) {
        let mut line = String::new();
        let _ = write!(line, "{:<36} {:>8.2}   (n = {})", "median of the whole start", s.median, ours.phases.len());
        lines.push(line);
    }
    lines
}

/// What our throw-away home left on the host (from `kthw reset`'s plan, without its
/// folders, which go with the scratch folder, and without `but`), and the peers' state
/// and cgroups.
fn leftovers(paths: &Paths, but: &[String], peers: &[Contender], mask: &CgroupMask) -> Result<Vec<String>> {
    let plan = kthw_lab::reset::plan(paths).map_err(kthw_runtime::Error::from)?;
    let mut left: Vec<String> = plan.cgroups.iter().chain(&plan.mounts).map(|p| p.display().to_string()).collect();
    left.extend(plan.netns.iter().chain(&plan.links).filter(|l| !but.contains(l)).cloned());
    left.extend(plan.chains.iter().map(|(table, chain)| format!("iptables -t {table} {chain}")));
    left.extend(kthw_runtime::bench::leftovers(peers, mask).iter().map(|p| p.display().to_string()));
    Ok(left)
}

/// `kthw bench pod`: ours, crun and runc interleaved, in `scratch` (an empty folder).
/// Call it before any thread starts (see [`CgroupMask::enter`]).
///
/// # Errors
/// If the mask cannot be set up, a peer or helper binary is missing, or a run fails.
pub fn run_pod_bench(scratch: &Path, opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Vec<String>> {
    opts.check()?;
    let mask = CgroupMask::enter()?;
    progress(&mask.description);
    let bundle = scratch.join("bundle");
    kthw_runtime::bench::write_bundle(&bundle)?;
    let peers = vec![Contender::peer("crun", scratch)?, Contender::peer("runc", scratch)?];
    for c in &peers {
        std::fs::create_dir_all(&c.root).map_err(Error::io("create", &c.root))?;
    }
    // Our node: a home of its own, with busybox imported as the app's image.
    let paths = Paths::under(&scratch.join("home"));
    let kubelet = Kubelet::open(&paths)?;
    let rootfs = scratch.join("busybox");
    kthw_runtime::spec::busybox_rootfs(&rootfs)?;
    kthw_rootfs::import::import_dir(&kubelet.store, &rootfs, APP_IMAGE).map_err(kthw_runtime::Error::from)?;
    let mut node = Node { kubelet, next: 0 };
    let mut parties = vec![Party::Ours];
    parties.extend(peers.iter().cloned().map(Party::Twice));
    let measured = measure(&parties, &mut node, &bundle, opts, progress);
    // Each pod's teardown must leave nothing but the node's bridge (CNI's bridge plugins
    // never delete it). Then, whatever happened, the bridge and the rest of our home
    // go (`kthw reset`'s code), and nothing may be left after that.
    let bridge = vec![crate::cni::bridge_name(&paths)];
    let mut left = leftovers(&paths, &bridge, &peers, &mask)?;
    let plan = kthw_lab::reset::plan(&paths).map_err(kthw_runtime::Error::from)?;
    left.extend(kthw_lab::reset::apply(&plan));
    for after in leftovers(&paths, &[], &peers, &mask)? {
        if !left.contains(&after) {
            left.push(after);
        }
    }
    let measured = measured?;
    let mut lines = vec![
        mask.description.clone(),
        format!(
            "our node: a throw-away kthw home, instance {}, bridge {} (removed at the end)",
            paths.instance,
            crate::cni::bridge_name(&paths)
        ),
    ];
    lines.extend(report(&measured, &left));
    if opts.profile {
        lines.push(String::new());
        lines.extend(phase_table(&measured[0]));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|x| Duration::from_millis(*x)).collect()
    }

    fn party(name: &str, samples: &[u64]) -> Measured {
        let samples = ms(samples);
        let median = Stats::of(&samples).unwrap().median;
        Measured { name: name.into(), samples, round_medians: vec![median], ..Measured::default() }
    }

    // The ratio is ours over the two crun runs, and the target line decides by it.
    #[test]
    fn report_gives_the_ratio_and_the_verdict() {
        let lines = report(&[party("kthw pod", &[30, 40, 50]), party("crun run x2", &[40, 50, 60])], &[]);
        let text = lines.join("\n");
        assert!(text.contains("ratio of medians kthw pod/(2 x crun) 0.80"), "{text}");
        assert!(text.contains("target  kthw pod <= 1.0x (2 x crun)  0.80x  MET"), "{text}");
        let slow = report(&[party("kthw pod", &[60]), party("crun run x2", &[40])], &["/x".into()]);
        assert!(slow.iter().any(|l| l.ends_with("1.50x  MISSED")), "{slow:?}");
        assert!(slow.iter().any(|l| l == "left behind: /x  MISSED"), "{slow:?}");
    }

    // Each phase's median and its share of the sum of the phase medians.
    #[test]
    fn phase_table_shows_each_phase() {
        let mut ours = party("kthw pod", &[21]);
        let d = Duration::from_millis;
        ours.phases = vec![[d(1), d(5), d(10), d(1), d(3), d(1)]];
        let table = phase_table(&ours);
        assert_eq!(table.len(), Phase::ALL.len() + 3, "{table:?}");
        assert!(
            table[3].starts_with("CNI ADD") && table[3].contains("10.00") && table[3].ends_with("48%"),
            "{table:?}"
        );
        assert!(table[7].contains("21.00"), "{table:?}");
    }

    // A run with nothing to measure is refused with the fix, not a panic.
    #[test]
    fn zero_iterations_are_refused() {
        let e = Options { n: 0, ..Options::default() }.check().unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
        assert!(Options::default().check().is_ok());
    }

    // The benchmark's pod is a valid manifest with one sleeping container.
    #[test]
    fn bench_pod_is_valid() {
        let pod = bench_pod("bench-1").unwrap();
        assert_eq!(pod.spec.containers.len(), 1);
        assert_eq!(pod.spec.containers[0].command, vec!["sleep", "3600"]);
    }
}
