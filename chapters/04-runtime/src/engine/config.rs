//! From `kthw run`'s flags and the image's config to a container record and an OCI spec.
//!
//! Docker's rules, which a Dockerfile's author relies on:
//! - the command is the image's `Entrypoint` followed by its `Cmd`; arguments after the
//!   image name **replace** `Cmd` (not `Entrypoint`), and `--entrypoint` replaces the
//!   entrypoint and drops the image's `Cmd`;
//! - the environment is the image's `Env`, then `-e` (a later `K=` wins);
//! - the working directory is `WorkingDir` (or `/`), the user is `User` (or root);
//! - the host name is the first 12 digits of the id unless `--hostname` says otherwise.
//!
//! The spec is the runtime's default ([`crate::spec::default_spec`]) with those values, a
//! writable root (the overlay), the bind mounts of `-v`, and `linux.resources` for
//! `--memory` and `--cpus`. It is edited as JSON, the form in which the reader finds it
//! in the bundle, and parsed back into `oci-spec`'s types, which checks it.
//!
//! What Docker does differently: moby builds the spec in code (`daemon/oci_linux.go`)
//! and adds a seccomp profile, an AppArmor profile, `/etc/hosts` & co. as bind mounts,
//! and `--memory-swap` (twice `--memory` by default).

use std::path::Path;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use super::RunOptions;
use super::record::{PortMapping, Record, Volume};
use crate::{Error, Result};

/// The flags of `kthw run`, checked: every bad value is refused here, before anything
/// is created.
#[derive(Debug, Clone)]
pub struct Checked {
    pub env: Vec<String>,
    pub volumes: Vec<Volume>,
    pub ports: Vec<PortMapping>,
    pub memory: Option<u64>,
    pub nano_cpus: Option<u64>,
    pub network: String,
}

/// Checks the flags of `kthw run`.
///
/// # Errors
/// The first bad flag, with what a good one looks like.
pub fn check(opts: &RunOptions) -> Result<Checked> {
    let env = opts.env.iter().map(|e| check_env(e)).collect::<Result<Vec<_>>>()?;
    let volumes = opts.volumes.iter().map(|v| Volume::parse(v)).collect::<Result<Vec<_>>>()?;
    let ports = opts.publish.iter().map(|p| crate::network::parse_publish(p)).collect::<Result<Vec<_>>>()?;
    let memory = opts.memory.as_deref().map(kthw_cgroups::limits::parse_memory).transpose()?;
    let nano_cpus = opts
        .cpus
        .as_deref()
        .map(|c| kthw_cgroups::limits::parse_cpus(c).map(|q| q.quota_us * 1_000_000_000 / q.period_us))
        .transpose()?;
    let network = opts.network.clone().unwrap_or_else(|| "bridge".into());
    if network != "bridge" && network != "none" {
        return Err(Error::bad(
            format!("--network {network:?}"),
            "we have two networks: bridge (the default: an address on our bridge) and none (only lo)",
        ));
    }
    if network == "none" && !ports.is_empty() {
        return Err(Error::bad("-p", "publishing a port needs the bridge network; drop --network none"));
    }
    if let Some(name) = &opts.name {
        super::names::check_name(name)?;
    }
    if let Some(h) = &opts.hostname {
        let ok =
            !h.is_empty() && h.len() <= 63 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(Error::bad(format!("--hostname {h:?}"), "a host name is 1-63 letters, digits, '-' or '.'"));
        }
    }
    if opts.detach && opts.auto_remove && opts.interactive {
        tracing::debug!("-d -i: stdin of a detached container is /dev/null");
    }
    Ok(Checked { env, volumes, ports, memory, nano_cpus, network })
}

/// `-e K=V`: there must be a `=` and a name before it.
fn check_env(e: &str) -> Result<String> {
    match e.split_once('=') {
        Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => Ok(e.to_string()),
        _ => Err(Error::bad(
            format!("-e {e:?}"),
            "expected NAME=VALUE, e.g. -e GREETING=hello (an empty value is NAME=)",
        )),
    }
}

/// Appends `extra` to `base`; a name set twice keeps the last value, in the first place.
pub fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in base.iter().chain(extra) {
        let key = e.split('=').next().unwrap_or(e);
        match out.iter_mut().find(|o| o.split('=').next() == Some(key)) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// Docker's rule for what runs: entrypoint + cmd, where arguments replace the cmd.
pub fn command(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint: Option<&str>,
    args: &[String],
) -> (Vec<String>, Vec<String>) {
    match entrypoint {
        // --entrypoint "" clears it; --entrypoint X drops the image's cmd too.
        Some("") => (vec![], args.to_vec()),
        Some(e) => (vec![e.to_string()], args.to_vec()),
        None if !args.is_empty() => (image_entrypoint.to_vec(), args.to_vec()),
        None => (image_entrypoint.to_vec(), image_cmd.to_vec()),
    }
}

/// The record of a new container.
///
/// # Errors
/// An image with nothing to run and no command given.
#[allow(clippy::too_many_arguments)]
pub fn record(
    id: &str,
    name: &str,
    image_name: &str,
    image_id: &str,
    image: &ImageConfiguration,
    opts: &RunOptions,
    checked: Checked,
) -> Result<Record> {
    let config = image.config().clone().unwrap_or_default();
    let (entrypoint, cmd) = command(
        &config.entrypoint().clone().unwrap_or_default(),
        &config.cmd().clone().unwrap_or_default(),
        opts.entrypoint.as_deref(),
        &opts.command,
    );
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(Error::bad(
            "the command",
            format!(
                "image {image_name} has no Entrypoint or Cmd: give one after the image, e.g. `kthw run {image_name} sh`"
            ),
        ));
    }
    let working_dir = opts
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !working_dir.starts_with('/') {
        return Err(Error::bad(format!("-w {working_dir:?}"), "the working directory must be an absolute path"));
    }
    let mut env = merge_env(&config.env().clone().unwrap_or_default(), &checked.env);
    if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    Ok(Record {
        id: id.to_string(),
        name: name.to_string(),
        image: image_name.to_string(),
        image_id: image_id.to_string(),
        created: super::record::now(),
        entrypoint,
        cmd,
        env,
        working_dir,
        user: opts.user.clone().or_else(|| config.user().clone()).unwrap_or_default(),
        hostname: opts.hostname.clone().unwrap_or_else(|| id[..12].to_string()),
        tty: opts.tty,
        interactive: opts.interactive,
        auto_remove: opts.auto_remove,
        network: checked.network,
        volumes: checked.volumes,
        ports: checked.ports,
        memory: checked.memory,
        nano_cpus: checked.nano_cpus,
        exposed_ports: config.exposed_ports().clone().unwrap_or_default(),
    })
}

/// Resolves `User` (`1000`, `1000:1000`, `user`, `user:group`) in the container's
/// `/etc/passwd` and `/etc/group`, as runc does before it execs.
///
/// # Errors
/// A name that the container's files do not have.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32)> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(rootfs.join(file)).ok()?;
        text.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.first() == Some(&name)).and_then(|f| {
            let id = f.get(2)?.parse().ok()?;
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
            Some((id, gid))
        })
    };
    let bad =
        || Error::bad(format!("the user {user:?}"), "not a number and not in the image's /etc/passwd or /etc/group");
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (uid, lookup("etc/passwd", u).map_or(uid, |(_, g)| g)),
        Err(_) => lookup("etc/passwd", u).ok_or_else(bad)?,
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup("etc/group", g).ok_or_else(bad)?.0,
        },
    };
    Ok((uid, gid))
}

/// The OCI spec of a container: the runtime's default with the record's command,
/// environment, user, host name, `-v` bind mounts and `--memory`/`--cpus`.
///
/// # Errors
/// A user the image does not know, or a spec `oci-spec` refuses.
pub fn spec(record: &Record, rootfs: &Path) -> Result<Spec> {
    let mut spec = serde_json::to_value(crate::spec::default_spec(&record.args())?)
        .map_err(|e| Error::bad("the default spec", e))?;
    let (uid, gid) = resolve_user(rootfs, &record.user)?;
    spec["process"]["env"] = serde_json::json!(record.env);
    spec["process"]["cwd"] = serde_json::json!(record.working_dir);
    spec["process"]["terminal"] = serde_json::json!(record.tty);
    spec["process"]["user"] = serde_json::json!({ "uid": uid, "gid": gid });
    // The overlay is the container's own writable copy.
    spec["root"] = serde_json::json!({ "path": "rootfs", "readonly": false });
    spec["hostname"] = serde_json::json!(record.hostname);
    for v in &record.volumes {
        let mut options = vec!["rbind", "rprivate"];
        if v.read_only {
            options.push("ro");
        }
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            mounts.push(serde_json::json!({
                "destination": v.container, "type": "bind", "source": v.host, "options": options
            }));
        }
    }
    let mut resources = serde_json::Map::new();
    if let Some(limit) = record.memory {
        resources.insert("memory".into(), serde_json::json!({ "limit": limit }));
    }
    if let Some(nano) = record.nano_cpus {
        let period = kthw_cgroups::limits::DEFAULT_PERIOD_US;
        resources.insert("cpu".into(), serde_json::json!({ "quota": nano * period / 1_000_000_000, "period": period }));
    }
    if !resources.is_empty() {
        spec["linux"]["resources"] = serde_json::Value::Object(resources);
    }
    spec["annotations"] = serde_json::json!({ "kthw.name": record.name, "kthw.image": record.image });
    serde_json::from_value(spec).map_err(|e| Error::bad("the container's spec", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    // Arguments replace the image's Cmd and keep its Entrypoint; --entrypoint drops both.
    #[test]
    fn command_follows_docker() {
        let (ep, cmd) = (v(&["/entry"]), v(&["default"]));
        assert_eq!(command(&ep, &cmd, None, &[]), (ep.clone(), cmd.clone()));
        assert_eq!(command(&ep, &cmd, None, &v(&["x"])), (ep.clone(), v(&["x"])));
        assert_eq!(command(&ep, &cmd, Some("sh"), &v(&["-c", "true"])), (v(&["sh"]), v(&["-c", "true"])));
        assert_eq!(command(&ep, &cmd, Some(""), &[]), (vec![], vec![]));
    }

    // -e adds to the image's environment; a name given again keeps its place, takes the new value.
    #[test]
    fn env_merges() {
        let merged = merge_env(&v(&["PATH=/bin", "A=1"]), &v(&["A=2", "B=3"]));
        assert_eq!(merged, v(&["PATH=/bin", "A=2", "B=3"]));
        assert!(check_env("NOEQUALS").unwrap_err().to_string().contains("NAME=VALUE"));
        assert!(check_env("=x").is_err());
        assert!(check_env("EMPTY=").is_ok());
    }

    // Bad flags are refused before anything is created, each with what to write instead.
    #[test]
    fn bad_flags_are_clear() {
        let opts = |f: &dyn Fn(&mut RunOptions)| {
            let mut o = RunOptions { image: "busybox".into(), ..Default::default() };
            f(&mut o);
            check(&o).unwrap_err().to_string()
        };
        assert!(opts(&|o| o.env = v(&["FOO"])).contains("NAME=VALUE"));
        assert!(opts(&|o| o.memory = Some("lots".into())).contains("--memory"));
        assert!(opts(&|o| o.cpus = Some("-1".into())).contains("--cpus"));
        assert!(opts(&|o| o.volumes = v(&["relative:/x"])).contains("absolute"));
        assert!(opts(&|o| o.network = Some("host".into())).contains("bridge"));
        assert!(opts(&|o| o.name = Some("a b".into())).contains("--name"));
    }

    // Users resolve in the container's own /etc/passwd, numbers as they are.
    #[test]
    fn users_resolve_in_the_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nuser:x:1000:1001::/home:/bin/sh\n")
            .unwrap();
        std::fs::write(tmp.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_user(tmp.path(), "").unwrap(), (0, 0));
        assert_eq!(resolve_user(tmp.path(), "user").unwrap(), (1000, 1001));
        assert_eq!(resolve_user(tmp.path(), "user:staff").unwrap(), (1000, 50));
        assert_eq!(resolve_user(tmp.path(), "42:43").unwrap(), (42, 43));
        assert!(resolve_user(tmp.path(), "nobody").is_err());
    }
}
