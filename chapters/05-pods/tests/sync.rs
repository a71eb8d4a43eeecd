//! The SyncPod decision over a table of cases: every case's inputs and decided actions
//! are rendered into one snapshot (the book shows it), and the key cases are also
//! asserted directly, so a test fails for a stated reason and not only for a diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use kthw_pods::api::{ConditionStatus, Pod, PodPhase, Strictness};
use kthw_pods::sync::{
    BackOff, Decision, KillReason, Observed, ObservedContainer, ProbeResult, RunState, Sandbox, Settings, StartReason,
    decide,
};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
}

fn ago(secs: u64) -> SystemTime {
    now() - Duration::from_secs(secs)
}

/// A pod with one container `app` and this restart policy.
fn one(policy: &str) -> Pod {
    load(&format!("spec:\n  restartPolicy: {policy}\n  containers: [{{name: app, image: busybox}}]\n"))
}

/// Two init containers (`fetch`, `migrate`) before the `server`.
fn with_init(policy: &str) -> Pod {
    load(&format!(
        "spec:
  restartPolicy: {policy}
  initContainers: [{{name: fetch, image: busybox}}, {{name: migrate, image: busybox}}]
  containers: [{{name: server, image: busybox}}]
"
    ))
}

/// `app` with a liveness, a readiness and (optionally) a startup probe.
fn probed(policy: &str, startup: bool) -> Pod {
    let startup = if startup { "\n      startupProbe: {exec: {command: [cat, /ready]}}" } else { "" };
    load(&format!(
        "spec:
  restartPolicy: {policy}
  containers:
    - name: app
      image: busybox
      livenessProbe: {{tcpSocket: {{port: 80}}}}
      readinessProbe: {{httpGet: {{path: /, port: 80}}}}{startup}
"
    ))
}

/// Two app containers, `app` and `helper`.
fn two(policy: &str) -> Pod {
    load(&format!(
        "spec:\n  restartPolicy: {policy}\n  containers: [{{name: app, image: busybox}}, {{name: helper, image: busybox}}]\n"
    ))
}

fn load(spec: &str) -> Pod {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\n{spec}");
    Pod::load(&text, "case", Strictness::Strict).unwrap_or_else(|e| panic!("{e}")).object
}

fn sandbox() -> Option<Sandbox> {
    Some(Sandbox { ready: true, attempt: 0, has_ip: true, changed: None })
}

fn running(secs_ago: u64) -> ObservedContainer {
    ObservedContainer::new(RunState::Running { started_at: ago(secs_ago) })
}

fn exited(exit_code: i32, secs_ago: u64) -> ObservedContainer {
    ObservedContainer::new(RunState::Exited { exit_code, finished_at: ago(secs_ago) })
}

fn restarts(mut c: ObservedContainer, n: u32) -> ObservedContainer {
    c.restart_count = n;
    c
}

fn observed(sandbox: Option<Sandbox>, containers: &[(&str, ObservedContainer)]) -> Observed {
    Observed {
        sandbox,
        containers: containers.iter().map(|(n, c)| (n.to_string(), c.clone())).collect(),
        back_off: BTreeMap::new(),
    }
}

fn with_back_off(mut o: Observed, name: &str, delay: u64, updated_secs_ago: u64) -> Observed {
    o.back_off.insert(name.into(), BackOff { delay: Duration::from_secs(delay), last_update: ago(updated_secs_ago) });
    o
}

struct Case {
    name: &'static str,
    pod: Pod,
    observed: Observed,
    settings: Settings,
}

fn case(name: &'static str, pod: Pod, observed: Observed) -> Case {
    Case { name, pod, observed, settings: Settings::default() }
}

fn cases() -> Vec<Case> {
    let mut probes_failing = running(60);
    probes_failing.liveness = Some(ProbeResult::Failure);
    probes_failing.readiness = Some(ProbeResult::Success);
    let mut starting = running(5);
    starting.liveness = Some(ProbeResult::Failure);
    starting.startup = None;
    let mut startup_failed = running(60);
    startup_failed.startup = Some(ProbeResult::Failure);
    let mut not_ready = running(60);
    not_ready.readiness = Some(ProbeResult::Failure);
    let mut ready = running(60);
    ready.readiness = Some(ProbeResult::Success);
    ready.startup = Some(ProbeResult::Success);
    let mut changed = running(60);
    changed.spec_changed = true;
    let mut deleting = one("Always");
    deleting.metadata.deletion_timestamp = Some("2026-05-01T10:00:00Z".into());
    let dead_sandbox = Some(Sandbox { ready: false, attempt: 1, has_ip: true, changed: None });
    let changed_sandbox =
        Some(Sandbox { ready: true, attempt: 0, has_ip: true, changed: Some("hostNetwork changed".into()) });

    vec![
        // First sync of a pod: make the sandbox, then the containers.
        case("new pod", one("Always"), observed(None, &[])),
        case("new pod with init containers", with_init("Always"), observed(None, &[])),
        // Init containers: one at a time, each to completion.
        case("first init container running", with_init("Always"), observed(sandbox(), &[("fetch", running(3))])),
        case("first init container done", with_init("Always"), observed(sandbox(), &[("fetch", exited(0, 1))])),
        case(
            "init container failed, Always: retried",
            with_init("Always"),
            observed(sandbox(), &[("fetch", exited(0, 20)), ("migrate", exited(1, 2))]),
        ),
        case(
            "init container failed again, in back-off",
            with_init("Always"),
            with_back_off(
                observed(sandbox(), &[("fetch", exited(0, 60)), ("migrate", restarts(exited(1, 4), 1))]),
                "migrate",
                10,
                8,
            ),
        ),
        case(
            "init container failed, Never: pod fails",
            with_init("Never"),
            observed(sandbox(), &[("fetch", exited(0, 20)), ("migrate", exited(1, 2))]),
        ),
        case(
            "init containers done",
            with_init("Always"),
            observed(sandbox(), &[("fetch", exited(0, 20)), ("migrate", exited(0, 2))]),
        ),
        case(
            "app runs, init containers removed since",
            with_init("Always"),
            observed(sandbox(), &[("server", running(60))]),
        ),
        // Restart policies.
        case("Always: exited 0, restarted", one("Always"), observed(sandbox(), &[("app", exited(0, 1))])),
        case("OnFailure: exited 0, pod done", one("OnFailure"), observed(sandbox(), &[("app", exited(0, 1))])),
        case("OnFailure: exited 1, restarted", one("OnFailure"), observed(sandbox(), &[("app", exited(1, 1))])),
        case("Never: exited 1, pod failed", one("Never"), observed(sandbox(), &[("app", exited(1, 1))])),
        case(
            "Never: done, sandbox gone: not re-created",
            one("Never"),
            observed(
                Some(Sandbox { ready: false, attempt: 0, has_ip: true, changed: None }),
                &[("app", exited(0, 30))],
            ),
        ),
        case(
            "OnFailure: one done, one running",
            two("OnFailure"),
            observed(sandbox(), &[("app", exited(0, 10)), ("helper", running(60))]),
        ),
        case(
            "OnFailure: sandbox died, only the failed one comes back",
            two("OnFailure"),
            observed(dead_sandbox.clone(), &[("app", exited(0, 10)), ("helper", exited(2, 5))]),
        ),
        // Crash loops and back-off.
        case(
            "crash loop: exited 5 s into a 20 s back-off",
            one("Always"),
            with_back_off(observed(sandbox(), &[("app", restarts(exited(1, 5), 2))]), "app", 20, 15),
        ),
        case(
            "crash loop: back-off over, next one doubles",
            one("Always"),
            with_back_off(observed(sandbox(), &[("app", restarts(exited(1, 25), 2))]), "app", 20, 40),
        ),
        case(
            "crash loop: at the 5 minute cap",
            one("Always"),
            with_back_off(observed(sandbox(), &[("app", restarts(exited(1, 301), 9))]), "app", 300, 400),
        ),
        case(
            "crash loop: ran 20 minutes, back-off forgotten",
            one("Always"),
            with_back_off(observed(sandbox(), &[("app", restarts(exited(1, 0), 9))]), "app", 300, 1200),
        ),
        Case {
            name: "shortened back-off (tests: 1 s doubling to 4 s)",
            settings: Settings { back_off_initial: Duration::from_secs(1), back_off_max: Duration::from_secs(4) },
            ..case(
                "",
                one("Always"),
                with_back_off(observed(sandbox(), &[("app", restarts(exited(1, 5), 3))]), "app", 4, 6),
            )
        },
        // Sandboxes.
        case(
            "sandbox died: start over from the first init container",
            with_init("Always"),
            observed(dead_sandbox, &[("fetch", exited(0, 90)), ("migrate", exited(0, 80)), ("server", exited(137, 3))]),
        ),
        case("sandbox no longer fits the spec", one("Always"), observed(changed_sandbox, &[("app", running(60))])),
        // Probes.
        case(
            "liveness failed, Always: restarted",
            probed("Always", false),
            observed(sandbox(), &[("app", probes_failing.clone())]),
        ),
        case(
            "liveness failed, Never: killed, pod done",
            probed("Never", false),
            observed(sandbox(), &[("app", probes_failing)]),
        ),
        case(
            "liveness failed before the startup probe passed: ignored",
            probed("Always", true),
            observed(sandbox(), &[("app", starting)]),
        ),
        case(
            "startup probe failed: restarted",
            probed("Always", true),
            observed(sandbox(), &[("app", startup_failed)]),
        ),
        case(
            "readiness failing: running, not ready",
            probed("Always", false),
            observed(sandbox(), &[("app", not_ready)]),
        ),
        case("all probes pass: ready", probed("Always", true), observed(sandbox(), &[("app", ready)])),
        // Everything else.
        case("spec changed, Never: restarted anyway", one("Never"), observed(sandbox(), &[("app", changed)])),
        case(
            "unknown state: killed and restarted",
            one("Always"),
            observed(sandbox(), &[("app", ObservedContainer::new(RunState::Unknown))]),
        ),
        case("pod being deleted", deleting, observed(sandbox(), &[("app", running(60))])),
    ]
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

fn when(t: SystemTime) -> String {
    match now().duration_since(t) {
        Ok(d) if d.is_zero() => "now".into(),
        Ok(d) => format!("now-{}", secs(d)),
        Err(e) => format!("now+{}", secs(e.duration())),
    }
}

fn describe_state(c: &ObservedContainer) -> String {
    let mut s = match c.state {
        RunState::Running { started_at } => format!("running since {}", when(started_at)),
        RunState::Exited { exit_code, finished_at } => format!("exited {exit_code} at {}", when(finished_at)),
        RunState::Unknown => "unknown".into(),
    };
    for (what, result) in [("liveness", c.liveness), ("readiness", c.readiness), ("startup", c.startup)] {
        if let Some(r) = result {
            let _ = write!(s, ", {what} {r:?}");
        }
    }
    if c.restart_count > 0 {
        let _ = write!(s, ", {} restarts", c.restart_count);
    }
    if c.spec_changed {
        s.push_str(", spec changed");
    }
    s
}

fn start_reason(r: StartReason) -> String {
    match r {
        StartReason::NotCreated => "not created yet".into(),
        StartReason::Exited(code) => format!("exited {code}"),
        StartReason::Killed(k) => format!("restart after kill ({k:?})"),
        StartReason::NewSandbox => "new sandbox".into(),
    }
}

/// One case as text: the inputs, then what was decided.
fn render(case: &Case, d: &Decision) -> String {
    let mut out = format!("== {} ==\n", case.name);
    let spec = &case.pod.spec;
    let names = |cs: &[kthw_pods::api::Container]| cs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let _ = write!(out, "pod:      restartPolicy {:?}", spec.restart_policy());
    if !spec.init_containers.is_empty() {
        let _ = write!(out, "; init {}", names(&spec.init_containers));
    }
    let _ = write!(out, "; containers {}", names(&spec.containers));
    if case.pod.metadata.deletion_timestamp.is_some() {
        out.push_str("; being deleted");
    }
    out.push('\n');
    if case.settings != Settings::default() {
        let s = case.settings;
        let _ = writeln!(out, "settings: back-off {} doubling to {}", secs(s.back_off_initial), secs(s.back_off_max));
    }
    let o = &case.observed;
    let sandbox = match &o.sandbox {
        None => "none".to_string(),
        Some(s) => {
            let mut t = format!("{} (attempt {})", if s.ready { "ready" } else { "NOT ready" }, s.attempt);
            if let Some(why) = &s.changed {
                let _ = write!(t, ", changed: {why}");
            }
            t
        }
    };
    let _ = writeln!(out, "observed: sandbox {sandbox}");
    for (name, c) in &o.containers {
        let _ = writeln!(out, "          {name}: {}", describe_state(c));
    }
    for (name, b) in &o.back_off {
        let _ = writeln!(out, "          back-off {name}: {} (set {})", secs(b.delay), when(b.last_update));
    }
    out.push_str("decided:\n");
    let a = &d.actions;
    let mut lines = Vec::new();
    if a.kill_pod {
        lines.push("kill the pod (every container and the sandbox, if any)".to_string());
    }
    if let Some(attempt) = a.create_sandbox {
        lines.push(format!("create a sandbox (attempt {attempt})"));
    }
    for k in &a.kill {
        let then = if k.restart { ", to restart" } else { "" };
        lines.push(format!("kill {}: {:?}{then}", k.container, k.reason));
    }
    if let Some(s) = &a.start_init {
        lines.push(format!("start init {}: {}", s.container, start_reason(s.reason)));
    }
    for s in &a.start {
        lines.push(format!("start {}: {}", s.container, start_reason(s.reason)));
    }
    for w in &d.waits {
        lines.push(format!("wait {}: CrashLoopBackOff, {} left of {}", w.container, secs(w.remaining), secs(w.delay)));
    }
    for (name, b) in &d.back_off {
        lines.push(format!("remember back-off {name}: {} from {}", secs(b.delay), when(b.last_update)));
    }
    if lines.is_empty() {
        lines.push("nothing to do".into());
    }
    for line in lines {
        let _ = writeln!(out, "          {line}");
    }
    let _ = writeln!(out, "status:   phase {:?}", d.phase);
    for c in &d.conditions {
        let _ = write!(out, "          {} {:?}", c.kind, c.status);
        if let Some(reason) = &c.reason {
            let _ = write!(out, " ({reason}{})", c.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default());
        }
        out.push('\n');
    }
    for r in &d.readiness {
        let _ = writeln!(out, "          {}: started {}, ready {}", r.container, r.started, r.ready);
    }
    out
}

fn decide_case(case: &Case) -> Decision {
    decide(&case.pod, &case.observed, now(), &case.settings)
}

fn find(name: &str) -> Decision {
    let all = cases();
    let case = all.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name:?}"));
    decide_case(case)
}

fn started(d: &Decision) -> Vec<(&str, StartReason)> {
    d.actions.start.iter().map(|s| (s.container.as_str(), s.reason)).collect()
}

// Every case of the table, inputs and decision, in one reviewed snapshot.
#[test]
fn sync_pod_table() {
    let all = cases();
    let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names must be unique");
    let text: String = all.iter().map(|c| render(c, &decide_case(c))).collect::<Vec<_>>().join("\n");
    let mut settings = insta::Settings::clone_current();
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("sync_pod_table", text));
}

// A new pod gets a sandbox first; with init containers only the first one starts.
#[test]
fn new_pods_start_with_a_sandbox() {
    let d = find("new pod");
    assert_eq!(d.actions.create_sandbox, Some(0));
    assert_eq!(started(&d), [("app", StartReason::NewSandbox)]);
    let d = find("new pod with init containers");
    assert_eq!(d.actions.start_init.as_ref().map(|s| s.container.as_str()), Some("fetch"));
    assert!(d.actions.start.is_empty());
    assert_eq!(d.phase, PodPhase::Pending);
}

// Init containers run one at a time, in order; app containers wait for all of them.
#[test]
fn init_containers_run_in_order_to_completion() {
    let d = find("first init container running");
    assert_eq!((d.actions.start_init.clone(), d.actions.start.len(), d.actions.kill_pod), (None, 0, false));
    let d = find("first init container done");
    assert_eq!(d.actions.start_init.unwrap().container, "migrate");
    let d = find("init containers done");
    assert_eq!(started(&d), [("server", StartReason::NotCreated)]);
    assert_eq!(d.conditions[1].status, ConditionStatus::True, "Initialized");
    // Init containers already ran if an app container runs: they are not run again.
    let d = find("app runs, init containers removed since");
    assert_eq!((d.actions.start_init, d.actions.start.len()), (None, 0));
}

// A failed init container is retried (with back-off) unless restartPolicy is Never,
// which fails the pod.
#[test]
fn failed_init_containers_follow_the_restart_policy() {
    let d = find("init container failed, Always: retried");
    assert_eq!(d.actions.start_init.unwrap().reason, StartReason::Exited(1));
    assert_eq!(d.back_off["migrate"].delay, Duration::from_secs(10));
    let d = find("init container failed again, in back-off");
    assert_eq!(d.actions.start_init, None);
    assert_eq!(d.waits[0].remaining, Duration::from_secs(6));
    let d = find("init container failed, Never: pod fails");
    assert!(d.actions.kill_pod);
    assert_eq!((d.actions.start_init, d.phase), (None, PodPhase::Failed));
}

// restartPolicy: Always restarts any exit, OnFailure only non-zero exits, Never none;
// a pod with nothing left to run is killed and ends Succeeded or Failed.
#[test]
fn restart_policies_are_kubernetes() {
    let d = find("Always: exited 0, restarted");
    assert_eq!((started(&d), d.phase), (vec![("app", StartReason::Exited(0))], PodPhase::Running));
    let d = find("OnFailure: exited 0, pod done");
    assert_eq!((d.actions.start.len(), d.actions.kill_pod, d.phase), (0, true, PodPhase::Succeeded));
    let d = find("OnFailure: exited 1, restarted");
    assert_eq!((started(&d), d.phase), (vec![("app", StartReason::Exited(1))], PodPhase::Running));
    let d = find("Never: exited 1, pod failed");
    assert_eq!((d.actions.start.len(), d.actions.kill_pod, d.phase), (0, true, PodPhase::Failed));
    let d = find("Never: done, sandbox gone: not re-created");
    assert_eq!((d.actions.create_sandbox, d.phase), (None, PodPhase::Succeeded));
    let d = find("OnFailure: one done, one running");
    assert!(!d.actions.kill_pod && d.actions.start.is_empty());
    let d = find("OnFailure: sandbox died, only the failed one comes back");
    assert_eq!(d.actions.create_sandbox, Some(2));
    assert_eq!(started(&d), [("helper", StartReason::NewSandbox)]);
}

// Back-off: the first restart is immediate; then 10 s doubling, measured from the exit,
// capped at 5 minutes, and forgotten after a long quiet run.
#[test]
fn back_off_doubles_to_the_cap() {
    let d = find("crash loop: exited 5 s into a 20 s back-off");
    assert!(d.actions.start.is_empty());
    assert_eq!((d.waits[0].remaining, d.waits[0].delay), (Duration::from_secs(15), Duration::from_secs(20)));
    assert!(d.back_off.is_empty());
    let d = find("crash loop: back-off over, next one doubles");
    assert_eq!(started(&d), [("app", StartReason::Exited(1))]);
    assert_eq!(d.back_off["app"], BackOff { delay: Duration::from_secs(40), last_update: now() });
    assert_eq!(find("crash loop: at the 5 minute cap").back_off["app"].delay, Duration::from_secs(300));
    assert_eq!(find("crash loop: ran 20 minutes, back-off forgotten").back_off["app"].delay, Duration::from_secs(10));
    assert_eq!(find("shortened back-off (tests: 1 s doubling to 4 s)").back_off["app"].delay, Duration::from_secs(4));
}

// A dead or outdated sandbox takes everything with it: a new sandbox, and the pod starts
// over from its first init container.
#[test]
fn a_dead_sandbox_starts_everything_over() {
    let d = find("sandbox died: start over from the first init container");
    assert!(d.actions.kill_pod);
    assert_eq!(d.actions.create_sandbox, Some(2));
    assert_eq!(d.actions.start_init.unwrap().container, "fetch");
    assert_eq!(d.conditions[0].status, ConditionStatus::False, "PodReadyToStartContainers");
    assert_eq!(find("sandbox no longer fits the spec").actions.create_sandbox, Some(1));
}

// Liveness and startup failures kill the container (restarted unless Never); liveness
// is not acted on before the startup probe passed; readiness only sets Ready.
#[test]
fn probes_drive_restarts_and_readiness() {
    let d = find("liveness failed, Always: restarted");
    assert_eq!(d.actions.kill[0].reason, KillReason::LivenessFailed);
    assert_eq!(started(&d), [("app", StartReason::Killed(KillReason::LivenessFailed))]);
    let d = find("liveness failed, Never: killed, pod done");
    assert!(!d.actions.kill[0].restart && d.actions.kill_pod && d.actions.start.is_empty());
    let d = find("liveness failed before the startup probe passed: ignored");
    assert!(d.actions.kill.is_empty());
    assert!(!d.readiness[0].started);
    let d = find("startup probe failed: restarted");
    assert_eq!(d.actions.kill[0].reason, KillReason::StartupFailed);
    let d = find("readiness failing: running, not ready");
    assert!(d.actions.kill.is_empty() && !d.readiness[0].ready);
    assert_eq!((d.conditions[3].kind.as_str(), d.conditions[3].status), ("Ready", ConditionStatus::False));
    let d = find("all probes pass: ready");
    assert!(d.conditions.iter().all(|c| c.status == ConditionStatus::True), "{:?}", d.conditions);
}

// A changed spec restarts the container whatever the policy; an unknown state is
// killed before the restart; a pod being deleted is only stopped.
#[test]
fn changes_unknowns_and_deletion() {
    let d = find("spec changed, Never: restarted anyway");
    assert_eq!((d.actions.kill[0].reason, d.actions.kill[0].restart), (KillReason::SpecChanged, true));
    let d = find("unknown state: killed and restarted");
    assert_eq!(d.actions.kill[0].reason, KillReason::UnknownState);
    assert_eq!(d.actions.start.len(), 1);
    let d = find("pod being deleted");
    assert!(d.actions.kill_pod && d.actions.start.is_empty() && d.actions.create_sandbox.is_none());
}
