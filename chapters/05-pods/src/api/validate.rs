//! Validation: what the API server refuses before a pod ever reaches a node.
//!
//! Messages follow Kubernetes' field errors (`Required value`, `Invalid value`,
//! `Duplicate value`, `Not found`, `Unsupported value`), each followed by how to fix it.
//!
//! What Kubernetes does differently: `pkg/apis/core/validation` checks much more (every
//! field, cross-field rules, feature gates); we check what a node relies on.

use std::collections::BTreeSet;

use super::{Container, FieldError, IntOrString, Pod, Probe, QUANTITY_FORMAT, Quantity};

/// Every problem found in `pod`, in manifest order; empty when it is valid.
pub fn validate(pod: &Pod) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut error = |field: String, message: String| errors.push(FieldError { field, message });

    if pod.api_version != "v1" {
        error(
            "apiVersion".into(),
            format!("Unsupported value: {:?}: a Pod is in \"v1\"; write `apiVersion: v1`", pod.api_version),
        );
    }
    if pod.kind != "Pod" {
        error("kind".into(), format!("Unsupported value: {:?}: write `kind: Pod`", pod.kind));
    }
    match (&pod.metadata.name, &pod.metadata.generate_name) {
        (None, None) => error("metadata.name".into(), "Required value: name or generateName is required".into()),
        (Some(name), _) => {
            if let Err(why) = dns_subdomain(name) {
                error("metadata.name".into(), format!("Invalid value: {name:?}: {why}"));
            }
        }
        (None, Some(_)) => {}
    }
    if let Some(hostname) = &pod.spec.hostname
        && let Err(why) = dns_label(hostname)
    {
        error("spec.hostname".into(), format!("Invalid value: {hostname:?}: {why}"));
    }
    if let Some(grace) = pod.spec.termination_grace_period_seconds
        && grace < 0
    {
        error(
            "spec.terminationGracePeriodSeconds".into(),
            format!("Invalid value: {grace}: must be greater than or equal to 0"),
        );
    }

    // Volumes: unique names, exactly one source each.
    let mut volumes = BTreeSet::new();
    for (i, volume) in pod.spec.volumes.iter().enumerate() {
        let at = format!("spec.volumes[{i}]");
        if volume.name.is_empty() {
            error(format!("{at}.name"), "Required value: give the volume a name for volumeMounts to use".into());
        } else if !volumes.insert(volume.name.as_str()) {
            error(format!("{at}.name"), format!("Duplicate value: {:?}: volume names must be unique", volume.name));
        }
        match (&volume.empty_dir, &volume.host_path) {
            (None, None) => error(
                at.clone(),
                "Required value: must specify a volume type; kthw supports `emptyDir: {}` and `hostPath: {path: ...}`"
                    .into(),
            ),
            (Some(_), Some(_)) => error(at.clone(), "Forbidden: may not specify more than 1 volume type".into()),
            _ => {}
        }
        if let Some(host_path) = &volume.host_path
            && !host_path.path.starts_with('/')
        {
            error(
                format!("{at}.hostPath.path"),
                format!("Invalid value: {:?}: must be an absolute path on the node", host_path.path),
            );
        }
        if let Some(limit) = volume.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
            check_quantity(&mut error, format!("{at}.emptyDir.sizeLimit"), limit);
        }
    }

    // Containers: at least one; names unique across init and app containers.
    if pod.spec.containers.is_empty() {
        error("spec.containers".into(), "Required value: a pod needs at least one container".into());
    }
    let mut names = BTreeSet::new();
    let groups =
        [("spec.initContainers", &pod.spec.init_containers, true), ("spec.containers", &pod.spec.containers, false)];
    for (list, containers, init) in groups {
        for (i, container) in containers.iter().enumerate() {
            let at = format!("{list}[{i}]");
            if container.name.is_empty() {
                error(format!("{at}.name"), "Required value: every container needs a name".into());
            } else if let Err(why) = dns_label(&container.name) {
                error(format!("{at}.name"), format!("Invalid value: {:?}: {why}", container.name));
            } else if !names.insert(container.name.as_str()) {
                error(
                    format!("{at}.name"),
                    format!(
                        "Duplicate value: {:?}: container names must be unique in the pod, init containers included; rename one",
                        container.name
                    ),
                );
            }
            validate_container(&mut error, &at, container, init, &volumes);
        }
    }
    errors
}

fn validate_container(
    error: &mut impl FnMut(String, String),
    at: &str,
    container: &Container,
    init: bool,
    volumes: &BTreeSet<&str>,
) {
    if container.image.as_deref().is_none_or(|image| image.trim().is_empty()) {
        error(format!("{at}.image"), "Required value: name the image to run, e.g. `image: busybox`".into());
    }
    for (i, env) in container.env.iter().enumerate() {
        if env.name.is_empty() {
            error(format!("{at}.env[{i}].name"), "Required value".into());
        }
        if env.value_from.is_some() {
            error(
                format!("{at}.env[{i}].valueFrom"),
                "Forbidden: kthw cannot read ConfigMaps, Secrets or pod fields (it has no API server until chapter 7); \
                 write the value with `value:`"
                    .into(),
            );
        }
    }
    for (i, port) in container.ports.iter().enumerate() {
        if !(1..=65535).contains(&port.container_port) {
            error(
                format!("{at}.ports[{i}].containerPort"),
                format!("Invalid value: {}: must be between 1 and 65535, inclusive", port.container_port),
            );
        }
        if let Some(host_port) = port.host_port
            && !(0..=65535).contains(&host_port)
        {
            error(
                format!("{at}.ports[{i}].hostPort"),
                format!("Invalid value: {host_port}: must be between 0 and 65535, inclusive"),
            );
        }
    }
    if let Some(resources) = &container.resources {
        for (kind, map) in [("limits", &resources.limits), ("requests", &resources.requests)] {
            for (name, quantity) in map {
                check_quantity(error, format!("{at}.resources.{kind}[{name}]"), quantity);
            }
        }
        for (name, scale) in [("cpu", Quantity::millis as fn(&Quantity) -> Option<i64>), ("memory", Quantity::value)] {
            let request = resources.requests.get(name);
            let limit = resources.limits.get(name);
            if let (Some(request), Some(limit)) = (request, limit)
                && let (Some(r), Some(l)) = (scale(request), scale(limit))
                && r > l
            {
                error(
                    format!("{at}.resources.requests"),
                    format!("Invalid value: \"{request}\": must be less than or equal to {name} limit of {limit}"),
                );
            }
        }
    }
    for (i, mount) in container.volume_mounts.iter().enumerate() {
        if !volumes.contains(mount.name.as_str()) {
            error(
                format!("{at}.volumeMounts[{i}].name"),
                format!("Not found: {:?}: add a volume of that name under spec.volumes, or fix the name", mount.name),
            );
        }
        if !mount.mount_path.starts_with('/') {
            error(
                format!("{at}.volumeMounts[{i}].mountPath"),
                format!("Invalid value: {:?}: must be an absolute path in the container", mount.mount_path),
            );
        }
    }
    let probes = [
        ("livenessProbe", &container.liveness_probe, true),
        ("readinessProbe", &container.readiness_probe, false),
        ("startupProbe", &container.startup_probe, true),
    ];
    for (kind, probe, success_must_be_one) in probes {
        let Some(probe) = probe else { continue };
        let at = format!("{at}.{kind}");
        if init {
            error(at.clone(), "Forbidden: may not be set for init containers (they run to completion)".into());
            continue;
        }
        validate_probe(error, &at, probe, success_must_be_one, container);
    }
}

fn validate_probe(
    error: &mut impl FnMut(String, String),
    at: &str,
    probe: &Probe,
    success_must_be_one: bool,
    container: &Container,
) {
    let handlers = [probe.exec.is_some(), probe.http_get.is_some(), probe.tcp_socket.is_some()];
    match handlers.iter().filter(|h| **h).count() {
        0 => error(at.into(), "Required value: must specify a handler type: exec, httpGet or tcpSocket".into()),
        1 => {}
        _ => error(at.into(), "Forbidden: may not specify more than 1 handler type".into()),
    }
    if let Some(exec) = &probe.exec
        && exec.command.is_empty()
    {
        error(format!("{at}.exec.command"), "Required value: the command to run, e.g. [cat, /tmp/healthy]".into());
    }
    let ports = [
        probe.http_get.as_ref().map(|h| (&h.port, "httpGet")),
        probe.tcp_socket.as_ref().map(|t| (&t.port, "tcpSocket")),
    ];
    for (port, handler) in ports.into_iter().flatten() {
        match port {
            IntOrString::Int(n) if !(1..=65535).contains(n) => error(
                format!("{at}.{handler}.port"),
                format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
            ),
            IntOrString::String(name) if !container.ports.iter().any(|p| p.name.as_deref() == Some(name)) => error(
                format!("{at}.{handler}.port"),
                format!("Not found: {name:?}: name a port of the container's `ports`, or give the number"),
            ),
            _ => {}
        }
    }
    for (field, value, min) in [
        ("initialDelaySeconds", probe.initial_delay_seconds, 0),
        ("periodSeconds", probe.period_seconds, 1),
        ("timeoutSeconds", probe.timeout_seconds, 1),
        ("failureThreshold", probe.failure_threshold, 1),
        ("successThreshold", probe.success_threshold, 1),
    ] {
        if let Some(value) = value
            && value < min
        {
            error(format!("{at}.{field}"), format!("Invalid value: {value}: must be greater than or equal to {min}"));
        }
    }
    if success_must_be_one
        && let Some(n) = probe.success_threshold
        && n != 1
    {
        error(format!("{at}.successThreshold"), format!("Invalid value: {n}: must be 1"));
    }
}

fn check_quantity(error: &mut impl FnMut(String, String), field: String, quantity: &Quantity) {
    if !quantity.is_valid() {
        error(field, format!("Invalid value: {:?}: {QUANTITY_FORMAT}", quantity.0));
    } else if quantity.millis().is_some_and(|m| m < 0) {
        error(field, format!("Invalid value: {:?}: must be greater than or equal to 0", quantity.0));
    }
}

/// A DNS label (RFC 1123): container names, hostnames.
fn dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character, at most 63 characters (e.g. 'my-name', or '123-abc')"
            .into())
    }
}

/// A DNS subdomain (RFC 1123): object names.
fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() <= 253 && s.split('.').all(|part| dns_label(part).is_ok()) {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com')"
            .into())
    }
}
