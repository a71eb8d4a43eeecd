//! What to start: which namespaces, the host name, the id maps and the command.
//!
//! A [`Spec`] is the builder; [`Spec::spawn`](crate::Spec::spawn) (in `run.rs`) starts it.
//! The spec is checked before anything is created, so a mistake such as a host name
//! without a UTS namespace is an error, not a renamed host.
//!
//! What the real runtimes do differently: runc reads the same facts from an OCI bundle's
//! `config.json` (`linux.namespaces`, `hostname`, `linux.uidMappings`, `process.args`);
//! Docker builds that file from `docker run` flags. A spec there can also *join* an
//! existing namespace by path (`{"type": "network", "path": "/proc/42/ns/net"}`), which
//! is how a pod's containers share one network (chapter 5).

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::str::FromStr;

use kthw_lab::host::Namespace;

use crate::{Error, Result};

// ANCHOR: id_map
/// One line of `/proc/PID/uid_map` or `gid_map`: ids `inside..inside+count` in the new
/// user namespace are ids `outside..outside+count` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMap {
    /// Root inside is uid 100000 outside, and so on for 65536 ids: the range Docker's
    /// `userns-remap` takes from `/etc/subuid` for its `dockremap` user.
    pub const DEFAULT: IdMap = IdMap { inside: 0, outside: 100_000, count: 65_536 };
}
// ANCHOR_END: id_map

impl fmt::Display for IdMap {
    /// The format the kernel reads: `inside outside count`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

impl FromStr for IdMap {
    type Err = Error;

    /// Parses `INSIDE:OUTSIDE:COUNT`, e.g. `0:100000:65536`.
    fn from_str(s: &str) -> Result<IdMap> {
        let bad =
            || Error::InvalidSpec(format!("{s:?} is not an id map; write INSIDE:OUTSIDE:COUNT, e.g. 0:100000:65536"));
        let mut parts = s.split(':').map(|p| p.trim().parse::<u32>());
        let (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if count == 0 || inside.checked_add(count).is_none() || outside.checked_add(count).is_none() {
            return Err(bad());
        }
        Ok(IdMap { inside, outside, count })
    }
}

/// Where the child's standard input, output and error go; `None` inherits ours.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

// ANCHOR: spec
/// A process to start in new namespaces.
#[derive(Debug)]
pub struct Spec {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The kinds of namespace to create (the rest are shared with us).
    pub namespaces: Vec<Namespace>,
    /// The host name to set in the new UTS namespace.
    pub hostname: Option<String>,
    /// The user namespace's id maps ([`IdMap::DEFAULT`] when empty).
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    /// With a PID namespace: run our init as PID 1 and the command as its child (true,
    /// like `docker run --init`), or make the command itself PID 1 (false).
    pub init: bool,
    /// Write the host PID of the first process here, as `runc run --pid-file` does.
    pub pid_file: Option<PathBuf>,
    pub stdio: Stdio,
}
// ANCHOR_END: spec

impl Spec {
    /// A spec that runs `command` with no new namespaces yet.
    pub fn new<S: Into<String>>(command: impl IntoIterator<Item = S>) -> Spec {
        Spec {
            command: command.into_iter().map(Into::into).collect(),
            namespaces: Vec::new(),
            hostname: None,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            init: true,
            pid_file: None,
            stdio: Stdio::default(),
        }
    }

    /// Adds a new namespace of this kind.
    pub fn namespace(mut self, ns: Namespace) -> Spec {
        if !self.namespaces.contains(&ns) {
            self.namespaces.push(ns);
        }
        self
    }

    /// Sets the host name (needs a UTS namespace).
    pub fn hostname(mut self, name: impl Into<String>) -> Spec {
        self.hostname = Some(name.into());
        self
    }

    /// Makes the command itself PID 1, without our init (to show what goes wrong).
    pub fn without_init(mut self) -> Spec {
        self.init = false;
        self
    }

    pub fn uid_map(mut self, map: IdMap) -> Spec {
        self.uid_map.push(map);
        self
    }

    pub fn gid_map(mut self, map: IdMap) -> Spec {
        self.gid_map.push(map);
        self
    }

    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Spec {
        self.pid_file = Some(path.into());
        self
    }

    pub fn stdout(mut self, fd: OwnedFd) -> Spec {
        self.stdio.stdout = Some(fd);
        self
    }

    pub fn stderr(mut self, fd: OwnedFd) -> Spec {
        self.stdio.stderr = Some(fd);
        self
    }

    /// Whether the spec creates a namespace of this kind.
    pub fn has(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }

    /// Whether our init runs as PID 1 (only with a new PID namespace).
    pub fn runs_init(&self) -> bool {
        self.init && self.has(Namespace::Pid)
    }

    // ANCHOR: validate
    /// Checks that the spec makes sense before anything is created.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] naming the problem and the fix.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: &str| Err(Error::InvalidSpec(msg.to_string()));
        if self.command.is_empty() || self.command[0].is_empty() {
            return invalid("no command given; put it after `--`, e.g. `kthw ns run --uts -- hostname`");
        }
        if let Some(name) = &self.hostname {
            if !self.has(Namespace::Uts) {
                return invalid("a host name needs a new UTS namespace (add --uts), or it would rename the host");
            }
            if name.is_empty() || name.len() > 64 || name.contains('\0') {
                return invalid("a host name has 1 to 64 bytes (HOST_NAME_MAX) and no NUL");
            }
        }
        if (!self.uid_map.is_empty() || !self.gid_map.is_empty()) && !self.has(Namespace::User) {
            return invalid("uid and gid maps need a new user namespace (add --user)");
        }
        if self.has(Namespace::Time) {
            return invalid(
                "time namespaces are not supported: clone(2) cannot create them (only unshare(2) \
                 and clone3(2) can), and Docker and Kubernetes do not use them either",
            );
        }
        Ok(())
    }
    // ANCHOR_END: validate

    /// The uid map to write: the one given, or [`IdMap::DEFAULT`].
    pub fn effective_uid_map(&self) -> Vec<IdMap> {
        if self.uid_map.is_empty() { vec![IdMap::DEFAULT] } else { self.uid_map.clone() }
    }

    /// The gid map to write: the one given, or [`IdMap::DEFAULT`].
    pub fn effective_gid_map(&self) -> Vec<IdMap> {
        if self.gid_map.is_empty() { vec![IdMap::DEFAULT] } else { self.gid_map.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Id maps parse from INSIDE:OUTSIDE:COUNT and print as the kernel wants them.
    #[test]
    fn id_maps_parse_and_print() {
        let map: IdMap = "0:100000:65536".parse().unwrap();
        assert_eq!(map, IdMap::DEFAULT);
        assert_eq!(map.to_string(), "0 100000 65536");
        for bad in ["", "0:1", "0:1:0", "a:b:c", "0:1:2:3", "4294967295:0:2"] {
            assert!(bad.parse::<IdMap>().is_err(), "{bad:?} must be refused");
        }
    }

    // A host name without a UTS namespace is refused: it would rename the host.
    #[test]
    fn hostname_needs_uts() {
        let err = Spec::new(["true"]).hostname("box").validate().unwrap_err();
        assert!(err.to_string().contains("add --uts"), "{err}");
        assert!(Spec::new(["true"]).namespace(Namespace::Uts).hostname("box").validate().is_ok());
        let long = "x".repeat(65);
        assert!(Spec::new(["true"]).namespace(Namespace::Uts).hostname(long).validate().is_err());
    }

    // An empty command, maps without --user, and time namespaces are refused with the fix.
    #[test]
    fn impossible_specs_are_refused() {
        let empty: [&str; 0] = [];
        assert!(Spec::new(empty).validate().unwrap_err().to_string().contains("after `--`"));
        let err = Spec::new(["id"]).uid_map(IdMap::DEFAULT).validate().unwrap_err();
        assert!(err.to_string().contains("add --user"), "{err}");
        let err = Spec::new(["date"]).namespace(Namespace::Time).validate().unwrap_err();
        assert!(err.to_string().contains("time namespaces are not supported"), "{err}");
    }

    // Our init runs only when there is a PID namespace for it to be PID 1 of.
    #[test]
    fn init_only_with_a_pid_namespace() {
        assert!(!Spec::new(["sh"]).runs_init());
        assert!(Spec::new(["sh"]).namespace(Namespace::Pid).runs_init());
        assert!(!Spec::new(["sh"]).namespace(Namespace::Pid).without_init().runs_init());
    }
}
