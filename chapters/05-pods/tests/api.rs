//! The Pod API: real manifests load unchanged, unknown fields are reported, quantities
//! parse as Kubernetes parses them, defaults are Kubernetes', bad manifests are refused
//! with the field path, and what we write back is what we read.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use kthw_lab::require;
use kthw_lab::systest::Need;
use kthw_pods::Error;
use kthw_pods::api::{
    self, Format, HostPathType, IntOrString, Pod, PodPhase, Protocol, PullPolicy, Quantity, RestartPolicy, Strictness,
    Warning,
};

/// The two pattern manifests of chapter 5, shared with the lab and the book.
fn lab_manifest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs/05-pods").join(name)
}

const PATTERNS: [&str; 2] = ["init-container.yaml", "sidecar.yaml"];

fn yaml_as_json(text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).expect("test YAML parses")
}

// The chapter's pattern manifests load strictly (no unknown field), validate, and
// serialise back to exactly what the file says.
#[test]
fn pattern_manifests_load_unchanged() {
    for name in PATTERNS {
        let path = lab_manifest(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let decoded = Pod::load_file(&path, Strictness::Strict).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.warnings, [], "{name}");
        let back = serde_json::to_value(&decoded.object).unwrap();
        assert_eq!(back, yaml_as_json(&text), "{name} does not round-trip");
    }
    let web = Pod::load_file(&lab_manifest("init-container.yaml"), Strictness::Strict).unwrap().object;
    assert_eq!(web.spec.init_containers[0].name, "install");
    assert_eq!(web.spec.containers[0].volume_mounts[0].read_only, Some(true));
    let probe = web.spec.containers[0].readiness_probe.as_ref().unwrap();
    assert_eq!(probe.http_get.as_ref().unwrap().port, IntOrString::String("http".into()));
    assert_eq!(web.spec.containers[0].resources().memory_limit_bytes, Some(64 << 20));
    let logger = Pod::load_file(&lab_manifest("sidecar.yaml"), Strictness::Strict).unwrap().object;
    assert_eq!(logger.spec.containers.len(), 2);
}

/// Serves the three discovery documents kubectl reads before it will even dry-run a
/// file (`/api`, `/apis`, `/api/v1`) on a loopback port, for as long as the test runs.
fn discovery_stub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Skip the headers: we answer by path alone.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let body = match path.split('?').next().unwrap_or("") {
                "/api" => r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}"#,
                "/apis" => r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#,
                "/api/v1" => {
                    r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[
                    {"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","shortNames":["po"],
                     "verbs":["create","delete","get","list","patch","update","watch"]}]}"#
                }
                _ => "",
            };
            let status = if body.is_empty() { "404 Not Found" } else { "200 OK" };
            let _ = write!(
                &stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

// A real kubectl accepts both pattern manifests (`apply --dry-run=client`), and the
// object it would send loads here with no unknown field and the same spec.
#[test]
fn kubectl_accepts_the_pattern_manifests() {
    require!(Need::Command("kubectl"));
    // kubectl asks the server for discovery even with --dry-run=client; a stub answers.
    let server = discovery_stub();
    let cache = tempfile::tempdir().unwrap();
    for name in PATTERNS {
        let path = lab_manifest(name);
        let output = Command::new("kubectl")
            .args(["apply", "--dry-run=client", "--validate=false", "-o", "json", "-f"])
            .arg(&path)
            .args(["--server", &server, "--cache-dir"])
            .arg(cache.path())
            .env("KUBECONFIG", "/dev/null")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "kubectl refused {name}: {stderr}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let theirs = api::from_json::<Pod>(&stdout).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(theirs.warnings, [], "kubectl's object for {name} has fields we do not know");
        let ours = Pod::load_file(&path, Strictness::Strict).unwrap().object;
        assert_eq!(theirs.object.spec, ours.spec, "{name}");
        assert_eq!(theirs.object.metadata.name, ours.metadata.name);
    }
}

const TYPO: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: typo
  labels: {app: typo}
spec:
  dnsPolicy: ClusterFirst
  containers:
    - name: app
      imagee: busybox
      image: busybox
      ports:
        - containerPort: 80
          protocoll: TCP
  volumes:
    - name: config
      configMap: {name: app-config}
    - name: data
      emptyDir: {}
";

// Unknown fields are reported with their path, as kubectl's strict decoding names
// them; Kubernetes fields kthw does not implement are reported as ignored; and in
// strict mode an unknown field refuses the manifest.
#[test]
fn unknown_fields_are_reported_not_dropped() {
    let decoded: api::Decoded<Pod> = api::decode(TYPO, Format::Yaml).unwrap();
    let warnings: Vec<String> = decoded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            r#"unknown field "spec.containers[0].imagee""#,
            r#"unknown field "spec.containers[0].ports[0].protocoll""#,
            r#"field "spec.dnsPolicy" is not implemented by kthw and is ignored"#,
            r#"field "spec.volumes[0].configMap" is not implemented by kthw and is ignored"#,
        ]
    );
    assert_eq!(decoded.warnings[0], Warning::UnknownField("spec.containers[0].imagee".into()));

    // Warn mode: loads (the configMap volume has no source we support: refused by validation).
    let err = Pod::load(TYPO, "typo.yaml", Strictness::Warn).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("spec.volumes[0]: Required value: must specify a volume type"), "{text}");
    assert!(!text.contains("imagee"), "{text}");

    // Strict mode: the unknown fields are errors too, the ignored ones are not.
    let Error::Invalid { problems, .. } = Pod::load(TYPO, "typo.yaml", Strictness::Strict).unwrap_err() else {
        panic!("expected Error::Invalid")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["spec.containers[0].imagee", "spec.containers[0].ports[0].protocoll", "spec.volumes[0]"]);

    // JSON is decoded the same way.
    let json = serde_json::to_string(&yaml_as_json(TYPO)).unwrap();
    let from_json: api::Decoded<Pod> = api::from_json(&json).unwrap();
    assert_eq!(from_json.warnings, decoded.warnings);
}

// Quantities parse as Kubernetes' resource.Quantity: CPU in millicores, memory in bytes,
// with binary and decimal suffixes and exponents; anything else is refused.
#[test]
fn quantities_parse_like_kubernetes() {
    let table: &[(&str, Option<i64>, Option<i64>)] = &[
        // text, millis (CPU), value (bytes)
        ("500m", Some(500), Some(1)),
        ("1", Some(1000), Some(1)),
        ("0.5", Some(500), Some(1)),
        ("2.25", Some(2250), Some(3)),
        ("100u", Some(1), Some(1)),
        ("64Mi", Some(67_108_864_000), Some(67_108_864)),
        ("1Gi", Some(1_073_741_824_000), Some(1_073_741_824)),
        ("1G", Some(1_000_000_000_000), Some(1_000_000_000)),
        ("1k", Some(1_000_000), Some(1000)),
        ("1Ki", Some(1_024_000), Some(1024)),
        ("128974848", Some(128_974_848_000), Some(128_974_848)),
        ("129e6", Some(129_000_000_000), Some(129_000_000)),
        ("129M", Some(129_000_000_000), Some(129_000_000)),
        ("123Mi", Some(128_974_848_000), Some(128_974_848)),
        ("1E3", Some(1_000_000), Some(1000)),
        ("1e-3", Some(1), Some(1)),
        ("+1", Some(1000), Some(1)),
        ("-1", Some(-1000), Some(-1)),
        ("8Ei", None, None),
        ("64MB", None, None),
        ("1.2.3", None, None),
        ("ten", None, None),
        ("", None, None),
    ];
    for (text, millis, value) in table {
        let q = Quantity::new(*text);
        assert_eq!((q.millis(), q.value()), (*millis, *value), "{text:?}");
    }
    // `8Ei` is a quantity, just too large for an i64 count of bytes.
    assert!(Quantity::new("8Ei").is_valid());
    // YAML numbers are quantities too: `cpu: 1`, `memory: 128974848`.
    let pod: Pod = serde_yaml::from_str(
        "spec: {containers: [{name: a, resources: {limits: {cpu: 1, memory: 128974848}, requests: {cpu: 0.25}}}]}",
    )
    .unwrap();
    let r = pod.spec.containers[0].resources();
    assert_eq!(
        (r.cpu_request_millis, r.cpu_limit_millis, r.memory_limit_bytes),
        (Some(250), Some(1000), Some(128_974_848))
    );
    // A limit without a request: the request is the limit.
    assert_eq!(r.memory_request_bytes, Some(128_974_848));
}

const MINIMAL: &str = "
apiVersion: v1
kind: Pod
metadata: {name: minimal}
spec:
  containers:
    - name: app
      image: busybox
      ports: [{containerPort: 80}]
      livenessProbe: {tcpSocket: {port: 80}}
      resources: {limits: {memory: 32Mi}}
    - {name: pinned, image: 'busybox:1.36'}
  volumes:
    - {name: logs, hostPath: {path: /var/log}}
";

// Absent fields mean Kubernetes' defaults: restartPolicy Always, a 30 s grace period,
// probes every 10 s with timeout 1 s and failure threshold 3, pull Always for an untagged
// image; apply_defaults writes them in as the API server does.
#[test]
fn defaults_are_kubernetes_defaults() {
    let mut pod = Pod::load(MINIMAL, "minimal", Strictness::Strict).unwrap().object;
    assert_eq!(pod.spec.restart_policy(), RestartPolicy::Always);
    assert_eq!(pod.spec.grace_period().as_secs(), 30);
    let probe = pod.spec.containers[0].liveness_probe.clone().unwrap();
    assert_eq!((probe.initial_delay().as_secs(), probe.period().as_secs(), probe.timeout().as_secs()), (0, 10, 1));
    assert_eq!((probe.failure_threshold(), probe.success_threshold()), (3, 1));
    assert_eq!(pod.spec.containers[0].pull_policy(), PullPolicy::Always);
    assert_eq!(pod.spec.containers[1].pull_policy(), PullPolicy::IfNotPresent);
    assert_eq!(pod.namespace(), "default");

    pod.apply_defaults();
    assert_eq!(pod.spec.restart_policy, Some(RestartPolicy::Always));
    assert_eq!(pod.spec.termination_grace_period_seconds, Some(30));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let app = &pod.spec.containers[0];
    assert_eq!(app.ports[0].protocol, Some(Protocol::Tcp));
    assert_eq!(app.liveness_probe.as_ref().unwrap().period_seconds, Some(10));
    assert_eq!(app.resources.as_ref().unwrap().requests["memory"], Quantity::new("32Mi"));
    assert_eq!(pod.spec.volumes[0].host_path.as_ref().unwrap().kind, Some(HostPathType::Unset));
    // The defaulted pod is still valid, and defaulting twice changes nothing.
    assert_eq!(api::validate(&pod), []);
    let once = pod.clone();
    pod.apply_defaults();
    assert_eq!(pod, once);
}

const BAD: &str = "
apiVersion: v1
kind: Pod
metadata:
  labels: {app: bad}
spec:
  initContainers:
    - name: web
      image: busybox
      readinessProbe: {exec: {command: [true]}}
  containers:
    - name: web
      image: busybox
      env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
      ports: [{containerPort: 0}]
      resources:
        requests: {cpu: '2', memory: 64MB}
        limits: {cpu: '1'}
      volumeMounts: [{name: data, mountPath: data}]
      livenessProbe: {httpGet: {port: http}, successThreshold: 2}
    - name: Sidecar
  volumes:
    - {name: logs, emptyDir: {}}
";

// A bad manifest is refused with every problem at once, each naming its field path
// and what to do, in Kubernetes' wording.
#[test]
fn validation_names_the_field_and_the_fix() {
    let err = Pod::load(BAD, "bad.yaml", Strictness::Strict).unwrap_err();
    let Error::Invalid { problems, .. } = &err else { panic!("expected Error::Invalid, got {err}") };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.initContainers[0].readinessProbe",
            "spec.containers[0].name",
            "spec.containers[0].env[0].valueFrom",
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].resources.requests[memory]",
            "spec.containers[0].resources.requests",
            "spec.containers[0].volumeMounts[0].name",
            "spec.containers[0].volumeMounts[0].mountPath",
            "spec.containers[0].livenessProbe.httpGet.port",
            "spec.containers[0].livenessProbe.successThreshold",
            "spec.containers[1].name",
            "spec.containers[1].image",
        ]
    );
    kthw_lab::snapshot::settings().bind(|| insta::assert_snapshot!("pod_validation", err.to_string()));
}

// A wrong type or an unsupported enum value is refused at decoding, naming the field
// and the values that are allowed.
#[test]
fn decoding_errors_name_the_field() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Sometimes\n  containers: []\n";
    let err = Pod::load(text, "p.yaml", Strictness::Warn).unwrap_err().to_string();
    assert!(
        err.starts_with("p.yaml is not a valid Pod:\n  - spec.restartPolicy: unknown variant `Sometimes`"),
        "{err}"
    );
    assert!(err.contains("`Always`, `OnFailure`, `Never`"), "{err}");

    let text = r#"{"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}}"#;
    let err = Pod::load(text, "p.json", Strictness::Warn).unwrap_err().to_string();
    assert!(err.contains("spec.containers[0].ports[0].containerPort: invalid type: string \"80\""), "{err}");

    let err = Pod::load("kind: Pod\n---\nkind: Pod\n", "two.yaml", Strictness::Warn).unwrap_err().to_string();
    assert!(err.contains("the file holds 2 YAML documents"), "{err}");
}

/// A pod as `kubectl get pod -o yaml` shows it on a node: spec and status.
const FULL: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  uid: 0b6f4a53-8d6e-4c1b-9a0e-5d2f8f0c1e7a
  resourceVersion: "42"
  creationTimestamp: "2026-05-01T10:00:00Z"
  labels: {app: web, tier: front}
  annotations: {kthw.example/note: "a pod with everything"}
spec:
  hostname: web-0
  shareProcessNamespace: true
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  securityContext: {runAsUser: 1000, fsGroup: 2000}
  initContainers:
    - name: install
      image: busybox:1.36
      command: [sh, -c, "echo hi > /app/index.html"]
      volumeMounts: [{name: app, mountPath: /app}]
  containers:
    - name: server
      image: busybox:1.36
      imagePullPolicy: IfNotPresent
      command: [httpd]
      args: [-f, -p, "8080"]
      workingDir: /www
      env: [{name: GREETING, value: hello}]
      ports: [{name: http, containerPort: 8080, protocol: TCP, hostPort: 18080}]
      resources:
        requests: {cpu: 250m, memory: 64Mi}
        limits: {cpu: "1", memory: 128Mi}
      volumeMounts:
        - {name: app, mountPath: /www, readOnly: true}
        - {name: logs, mountPath: /var/log/httpd}
      livenessProbe:
        tcpSocket: {port: 8080}
        initialDelaySeconds: 3
        failureThreshold: 5
      readinessProbe:
        httpGet: {path: /healthz, port: http, host: 127.0.0.1}
        periodSeconds: 2
        successThreshold: 2
      startupProbe:
        exec: {command: [cat, /www/index.html]}
        periodSeconds: 1
        failureThreshold: 30
      securityContext:
        runAsNonRoot: true
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
  volumes:
    - {name: app, emptyDir: {}}
    - {name: logs, hostPath: {path: /var/log/kthw-web, type: DirectoryOrCreate}}
status:
  phase: Running
  conditions:
    - {type: Initialized, status: "True", lastTransitionTime: "2026-05-01T10:00:02Z"}
    - {type: Ready, status: "False", lastTransitionTime: "2026-05-01T10:00:03Z", reason: ContainersNotReady, message: "containers with unready status: [server]"}
  hostIP: 192.168.56.10
  hostIPs: [{ip: 192.168.56.10}]
  podIP: 10.88.0.7
  podIPs: [{ip: 10.88.0.7}]
  startTime: "2026-05-01T10:00:00Z"
  initContainerStatuses:
    - name: install
      image: busybox:1.36
      imageID: sha256:1c35c441208254cb7c3844ba95a96485388cef9ccc0646d562c7fc026e04c807
      containerID: kthw://install-1
      ready: false
      restartCount: 0
      state: {terminated: {exitCode: 0, reason: Completed, startedAt: "2026-05-01T10:00:01Z", finishedAt: "2026-05-01T10:00:02Z"}}
      lastState: {}
  containerStatuses:
    - name: server
      image: busybox:1.36
      imageID: sha256:1c35c441208254cb7c3844ba95a96485388cef9ccc0646d562c7fc026e04c807
      containerID: kthw://server-2
      ready: false
      started: true
      restartCount: 1
      state: {running: {startedAt: "2026-05-01T10:00:20Z"}}
      lastState: {terminated: {exitCode: 137, reason: Error, startedAt: "2026-05-01T10:00:03Z", finishedAt: "2026-05-01T10:00:19Z"}}
"#;

// A pod with every field we model, spec and status, goes YAML → Pod → JSON → Pod → YAML
// without losing or changing anything, with Kubernetes' field names (podIP, imageID).
#[test]
fn round_trip_keeps_everything() {
    let decoded = Pod::load(FULL, "full.yaml", Strictness::Strict).unwrap();
    assert_eq!(decoded.warnings, []);
    let pod = decoded.object;
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(PodPhase::Running));
    assert_eq!(status.container_statuses[0].last_state.terminated.as_ref().unwrap().exit_code, 137);

    let json = pod.to_json();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), yaml_as_json(FULL));
    let again = Pod::load(&json, "full.json", Strictness::Strict).unwrap().object;
    assert_eq!(again, pod);
    assert_eq!(yaml_as_json(&again.to_yaml()), yaml_as_json(FULL));
    for name in ["\"podIP\"", "\"hostIPs\"", "\"imageID\"", "\"containerID\"", "\"lastState\": {}"] {
        assert!(json.contains(name), "{name} missing from {json}");
    }
    kthw_lab::snapshot::settings().bind(|| insta::assert_snapshot!("pod_round_trip_json", json));
}

// What we write leaves out absent and empty fields, as Kubernetes does: a pod made in
// code serialises to the few lines a user would write.
#[test]
fn empty_fields_are_left_out() {
    let mut pod = Pod { api_version: "v1".into(), kind: "Pod".into(), ..Pod::default() };
    pod.metadata.name = Some("tiny".into());
    pod.spec.containers.push(api::Container {
        name: "app".into(),
        image: Some("busybox".into()),
        ..Default::default()
    });
    assert_eq!(
        pod.to_yaml(),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: tiny\nspec:\n  containers:\n  - name: app\n    image: busybox\n"
    );
    assert_eq!(api::validate(&pod), []);
}
