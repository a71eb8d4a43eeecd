//! Following a pod's container logs, as `kubectl logs -f --all-containers --prefix` and
//! `docker compose up` do: a foreground `kthw pod run` shows what its containers write,
//! each line prefixed with the container's name.
//!
//! ```text
//!  pods/web/containers/install/log.json ─┐  poll every 20 ms      [install] copying...
//!  pods/web/containers/server/log.json  ─┴▶ new complete lines ─▶ [server] listening on :80
//! ```
//!
//! It reads the json-file logs (chapter 4's format) that the supervisor writes, not the
//! pipes: the log is the one record of a container's output, so what the terminal shows
//! is what `kthw pod logs` shows later. A restarted container appends to the same log, so
//! its new lines keep coming.
//!
//! What kubectl does differently: it asks the API server, which asks the kubelet, which
//! reads the CRI log files (`/var/log/pods/...`); it follows one stream per container and
//! notices new instances through the pod's status.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};

use kthw_lab::Paths;
use kthw_runtime::engine::log::{self, Entry};

use super::store;
use crate::api::Pod;

/// Where each container's log has been read to.
#[derive(Debug)]
pub struct Follower {
    /// Init and app containers, in the spec's order, with the path of each one's log.
    logs: Vec<(String, std::path::PathBuf)>,
    /// The opened logs (a log exists from the container's first start on), and the start
    /// of a line whose end is not written yet.
    open: BTreeMap<String, (BufReader<File>, String)>,
}

impl Follower {
    /// Follows every container of `pod` from the start of its log.
    pub fn new(paths: &Paths, pod: &Pod) -> Follower {
        let logs =
            pod.spec.all_containers().map(|c| (c.name.clone(), store::log_path(paths, pod.name(), &c.name))).collect();
        Follower { logs, open: BTreeMap::new() }
    }

    /// The entries written since the last call, by container, in the order they were
    /// read from the containers (their `time`).
    pub fn poll(&mut self) -> Vec<(String, Entry)> {
        let mut out = Vec::new();
        for (name, path) in &self.logs {
            if !self.open.contains_key(name) {
                let Ok(file) = File::open(path) else { continue }; // not started yet
                self.open.insert(name.clone(), (BufReader::new(file), String::new()));
            }
            let Some((reader, line)) = self.open.get_mut(name) else { continue };
            // `read_line` appends: half a line stays in `line` until its end arrives.
            while reader.read_line(line).is_ok_and(|n| n > 0) && line.ends_with('\n') {
                if let Ok(entry) = log::parse_line(line) {
                    out.push((name.clone(), entry));
                }
                line.clear();
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time)); // RFC 3339 with nanoseconds: sorts as text
        out
    }
}

/// `[container] text`, one line (a partial line gets its newline).
pub fn prefixed(container: &str, entry: &Entry) -> String {
    let newline = if entry.log.ends_with('\n') { "" } else { "\n" };
    format!("[{container}] {}{newline}", entry.log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kthw_runtime::engine::log::{Stream, Writer};

    fn entry(text: &str, time: &str) -> Entry {
        Entry { log: text.into(), stream: Stream::Stdout, time: time.into() }
    }

    // New lines of every container's log come out once, in time order, prefixed; a line
    // whose end is not written yet waits for it; a log created later is picked up.
    #[test]
    fn follows_every_container_log() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::under(tmp.path());
        let pod = Pod::load(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: x}\n  - {name: b, image: x}\n",
            "pod.yaml",
            crate::api::Strictness::Strict,
        )
        .unwrap()
        .object;
        for c in ["a", "b"] {
            std::fs::create_dir_all(store::container_dir(&paths, "p", c)).unwrap();
        }
        let mut follower = Follower::new(&paths, &pod);
        assert!(follower.poll().is_empty());

        let a = Writer::open(&store::log_path(&paths, "p", "a")).unwrap();
        a.write(&entry("a1\n", "2026-05-01T10:00:00.000000002Z")).unwrap();
        let b = Writer::open(&store::log_path(&paths, "p", "b")).unwrap();
        b.write(&entry("b1\n", "2026-05-01T10:00:00.000000001Z")).unwrap();
        let lines: Vec<String> = follower.poll().iter().map(|(c, e)| prefixed(c, e)).collect();
        assert_eq!(lines, ["[b] b1\n", "[a] a1\n"]);
        assert!(follower.poll().is_empty());

        // Half a JSON line, then its end: one entry, once.
        let line = entry("no newline", "2026-05-01T10:00:01.000000000Z").to_line();
        let (head, tail) = line.split_at(10);
        let mut file = std::fs::OpenOptions::new().append(true).open(store::log_path(&paths, "p", "a")).unwrap();
        std::io::Write::write_all(&mut file, head.as_bytes()).unwrap();
        assert!(follower.poll().is_empty());
        std::io::Write::write_all(&mut file, tail.as_bytes()).unwrap();
        let lines: Vec<String> = follower.poll().iter().map(|(c, e)| prefixed(c, e)).collect();
        assert_eq!(lines, ["[a] no newline\n"]);
    }
}
