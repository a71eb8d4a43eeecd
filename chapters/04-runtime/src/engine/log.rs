//! The container's output as a log file, in the format of Docker's `json-file` driver:
//! one JSON object per line of output.
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
//! {"log":"oops\n","stream":"stderr","time":"2024-05-01T10:00:00.123502100Z"}
//! ```
//!
//! The supervisor writes it as the output arrives; `kthw logs` reads it, as often as it
//! likes, long after the container exited; `kthw logs -f` and a foreground `kthw run`
//! follow it as `tail -f` does. Keeping the stream name lets `logs` send each line back
//! to the stream it came from.
//!
//! A line is written when its newline arrives, so a log line is a line of output. Output
//! without a newline (a shell's prompt) is written once 16 KiB have piled up or the
//! stream ends, as Docker does; such a record has no `\n` at the end of its `log`.
//!
//! What Docker does differently: the json-file driver rotates the file (`--log-opt
//! max-size`), and dockerd, not the shim, writes it (the shim relays the output through a
//! FIFO); its `time` trims trailing zeros of the nanoseconds. CRI runtimes write another
//! format, one line of `TIME STREAM P|F TEXT` per record (`P` for a partial line).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Output without a newline is flushed as a partial line once this much piled up.
const MAX_LINE: usize = 16 * 1024;

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of `log.json`. The fields are in Docker's order: log, stream, time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The text, with its newline (lossily made UTF-8, as Docker does).
    pub log: String,
    pub stream: Stream,
    /// When it was read, RFC 3339 with nanoseconds, UTC.
    pub time: String,
}

impl Entry {
    /// The JSON line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// Cuts a stream of bytes into log entries: one per line, or per [`MAX_LINE`] bytes.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: Stream) -> LineSplitter {
        LineSplitter { stream, pending: Vec::new() }
    }

    /// Takes the next bytes read; returns the entries they completed.
    pub fn push(&mut self, bytes: &[u8], time: SystemTime) -> Vec<Entry> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n').map(|i| i + 1).or_else(|| {
            // A long line without a newline goes out in pieces.
            (self.pending.len() >= MAX_LINE).then_some(MAX_LINE)
        }) {
            let rest = self.pending.split_off(end);
            let line = std::mem::replace(&mut self.pending, rest);
            out.push(self.entry(line, time));
        }
        out
    }

    /// The end of the stream: what is left, as a partial line.
    pub fn finish(&mut self, time: SystemTime) -> Option<Entry> {
        (!self.pending.is_empty()).then(|| {
            let bytes = std::mem::take(&mut self.pending);
            self.entry(bytes, time)
        })
    }

    fn entry(&self, bytes: Vec<u8>, time: SystemTime) -> Entry {
        Entry {
            log: String::from_utf8_lossy(&bytes).into_owned(),
            stream: self.stream,
            time: super::record::timestamp(time),
        }
    }
}

// ANCHOR: log_writer
/// Appends entries to `log.json`. Each entry is one `write` to a file opened with
/// `O_APPEND`, so the lines of stdout and stderr, written by two threads, never mix.
#[derive(Debug)]
pub struct Writer {
    file: File,
}

impl Writer {
    /// # Errors
    /// If the file cannot be opened.
    pub fn open(path: &Path) -> Result<Writer> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(Error::io("open", path))?;
        Ok(Writer { file })
    }

    /// # Errors
    /// If the disk is full or gone.
    pub fn write(&self, entry: &Entry) -> io::Result<()> {
        (&self.file).write_all(entry.to_line().as_bytes())
    }
}

/// Copies `source` (a pipe or a pty master) into the log until it ends, and to `echo`
/// as it comes (the terminal of a foreground `kthw run -t`). A pty master reports the
/// end with EIO once the last process holding the pty's other side has exited.
pub fn copy_to_log(mut source: impl Read, stream: Stream, log: &Writer, mut echo: Option<&mut dyn Write>) {
    let mut splitter = LineSplitter::new(stream);
    let mut buf = [0u8; 8192];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO from a pty master: the other side is closed
        };
        if let Some(out) = echo.as_mut() {
            // The terminal may be gone (the user closed it); the log still gets it all.
            let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
        }
        for entry in splitter.push(&buf[..n], SystemTime::now()) {
            if let Err(e) = log.write(&entry) {
                tracing::warn!("cannot write the container log: {e}");
            }
        }
    }
    if let Some(entry) = splitter.finish(SystemTime::now()) {
        let _ = log.write(&entry);
    }
}
// ANCHOR_END: log_writer

/// Parses one line of `log.json`.
///
/// # Errors
/// A line that is not an entry (the file was edited, or cut short by a full disk).
pub fn parse_line(line: &str) -> Result<Entry> {
    serde_json::from_str(line).map_err(|e| Error::bad("a line of log.json", e))
}

/// Reads `log.json` from `file`'s current position, sending each entry's text to the
/// stream it came from. With `follow`, waits for more until `done()` says the writer
/// has finished (then reads what is left once more, and stops).
///
/// # Errors
/// A broken line, or a write to `stdout`/`stderr` that fails.
pub fn print(
    file: File,
    follow: bool,
    done: &mut dyn FnMut() -> bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut finishing = false;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(Error::io("read", "log.json"))?;
        if n > 0 && line.ends_with('\n') {
            let entry = parse_line(&line)?;
            let out: &mut dyn Write = if entry.stream == Stream::Stdout { stdout } else { stderr };
            out.write_all(entry.log.as_bytes()).and_then(|()| out.flush()).map_err(Error::io("write", "output"))?;
            continue;
        }
        if n > 0 {
            // Half a line: the writer is in the middle of it. Read it again later.
            let back = i64::try_from(n).unwrap_or(0);
            reader.seek_relative(-back).map_err(Error::io("seek", "log.json"))?;
        }
        if !follow || finishing {
            return Ok(());
        }
        if done() {
            finishing = true; // one more pass for what came before the end
            continue;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rewinds to the start (for `kthw logs`): a fresh reader of the whole log.
///
/// # Errors
/// If the log cannot be opened.
pub fn open(path: &Path) -> Result<File> {
    let mut file = File::open(path).map_err(Error::io("open", path))?;
    file.rewind().map_err(Error::io("seek", path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(nanos: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(1_714_557_600_000_000_000 + nanos)
    }

    // A log line is Docker's json-file line: log, stream, time with nanoseconds.
    #[test]
    fn entries_are_docker_json_file_lines() {
        let mut s = LineSplitter::new(Stream::Stdout);
        let entries = s.push(b"hello\nwor", at(123_456_789));
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].to_line(),
            "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:00.123456789Z\"}\n"
        );
        let entries = s.push(b"ld\n", at(5));
        assert_eq!(entries[0].log, "world\n");
        assert_eq!(parse_line(&entries[0].to_line()).unwrap(), entries[0]);
    }

    // Output without a newline is kept until the stream ends, or cut at 16 KiB.
    #[test]
    fn partial_lines_are_flushed_at_the_end_or_when_long() {
        let mut s = LineSplitter::new(Stream::Stderr);
        assert!(s.push(b"/ # ", at(0)).is_empty());
        assert_eq!(s.finish(at(0)).unwrap().log, "/ # ");
        assert!(s.finish(at(0)).is_none());
        let long = vec![b'x'; MAX_LINE + 10];
        let entries = s.push(&long, at(0));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].log.len(), MAX_LINE);
    }

    // `logs` sends each line back to the stream it came from, in order.
    #[test]
    fn printing_splits_the_streams() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.json");
        let writer = Writer::open(&path).unwrap();
        copy_to_log(&b"out 1\nout 2\n"[..], Stream::Stdout, &writer, None);
        copy_to_log(&b"err 1\nno newline"[..], Stream::Stderr, &writer, None);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print(open(&path).unwrap(), false, &mut || true, &mut out, &mut err).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "out 1\nout 2\n");
        assert_eq!(String::from_utf8(err).unwrap(), "err 1\nno newline");
    }
}
