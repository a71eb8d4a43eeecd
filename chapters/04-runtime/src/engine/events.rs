//! `kthw events`: what happened to containers, as `docker events` shows it.
//!
//! Every change of a container's life appends one JSON line to `events.json` in the
//! state folder: `create` (the record and rootfs exist), `start`, `die` (with the exit
//! code), `stop` and `kill` (asked for by a user), `destroy` (removed) and `commit`.
//! Lines are appended with `O_APPEND` by whichever process saw the change (the CLI or
//! a supervisor), so the file is the one place that orders them.
//!
//! What Docker does differently: dockerd keeps the last 256 events in memory and streams
//! them to clients (`GET /events`); nothing survives a restart of dockerd. containerd
//! has its own event service that the shims publish to.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One line of `events.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    /// `container` (the only kind we have; Docker also has image, network, volume...).
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
    pub id: String,
    /// name, image, and for `die` the exitCode.
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// `2024-05-01T10:00:00.000000001Z container die 3f2a… (exitCode=0, image=busybox:latest, name=web)`,
    /// as `docker events` prints it.
    pub fn render(&self) -> String {
        let attrs: Vec<String> = self.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {} {} {} ({})", self.time, self.kind, self.action, self.id, attrs.join(", "))
    }
}

/// The event log of one kthw installation.
#[derive(Debug, Clone)]
pub struct Events {
    path: PathBuf,
}

impl Events {
    pub fn new(state: &Path) -> Events {
        Events { path: state.join("events.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event. Failing to log an event is reported, not fatal: the container
    /// matters more than its history.
    pub fn emit(&self, action: &str, id: &str, attributes: &[(&str, &str)]) {
        let event = Event {
            time: super::record::now(),
            kind: "container".into(),
            action: action.into(),
            id: id.into(),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let line = serde_json::to_string(&event).unwrap_or_default() + "\n";
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!("cannot append to {}: {e}", self.path.display());
        }
    }

    /// Every event so far.
    ///
    /// # Errors
    /// An unreadable file or line.
    pub fn read(&self) -> Result<Vec<Event>> {
        let Ok(file) = File::open(&self.path) else { return Ok(Vec::new()) };
        BufReader::new(file)
            .lines()
            .map(|l| {
                let l = l.map_err(Error::io("read", &self.path))?;
                serde_json::from_str(&l).map_err(|e| Error::bad("a line of events.json", e))
            })
            .collect()
    }

    /// Prints the events (after `since`, an RFC 3339 time, if given); with `follow`,
    /// keeps printing new ones until `out` fails (the reader went away) or forever.
    ///
    /// # Errors
    /// An unreadable file, or a failing write.
    pub fn print(&self, since: Option<&str>, follow: bool, json: bool, out: &mut dyn Write) -> Result<()> {
        let since = since
            .map(|s| {
                super::record::parse_time(s).ok_or_else(|| {
                    Error::bad(format!("--since {s:?}"), "expected an RFC 3339 time, e.g. 2024-05-01T10:00:00Z")
                })
            })
            .transpose()?;
        if !self.path.exists() {
            File::create(&self.path).map_err(Error::io("create", &self.path))?;
        }
        let mut file = File::open(&self.path).map_err(Error::io("open", &self.path))?;
        file.rewind().map_err(Error::io("seek", &self.path))?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(Error::io("read", &self.path))?;
            if n > 0 && line.ends_with('\n') {
                let event: Event = serde_json::from_str(&line).map_err(|e| Error::bad("a line of events.json", e))?;
                let after = since.is_none_or(|s| super::record::parse_time(&event.time).is_some_and(|t| t >= s));
                if after {
                    let text = if json { line.trim_end().to_string() } else { event.render() };
                    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(Error::io("write", "output"))?;
                }
                continue;
            }
            if n > 0 {
                reader.seek_relative(-i64::try_from(n).unwrap_or(0)).map_err(Error::io("seek", &self.path))?;
            }
            if !follow {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Events are appended as JSON lines and printed as `docker events` prints them.
    #[test]
    fn events_append_and_render() {
        let tmp = tempfile::tempdir().unwrap();
        let events = Events::new(tmp.path());
        events.emit("start", "abc", &[("name", "web"), ("image", "busybox:latest")]);
        events.emit("die", "abc", &[("name", "web"), ("exitCode", "0")]);
        let all = events.read().unwrap();
        assert_eq!(all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["start", "die"]);
        let line = all[1].render();
        assert!(line.ends_with(" container die abc (exitCode=0, name=web)"), "{line}");
        let mut out = Vec::new();
        events.print(None, false, false, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
        let mut out = Vec::new();
        events.print(Some("2999-01-01T00:00:00Z"), false, false, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(events.print(Some("yesterday"), false, false, &mut Vec::new()).is_err());
    }
}
