//! The json-file log WRITER: docker's format, one JSON object a line,
//! `{"log":"text\n","stream":"stdout","time":"2026-12-02T13:45:25.123456789Z"}`.
//!
//! Output is cut into lines per stream; a line longer than 16 KiB is written in pieces
//! (each without the newline, as docker does), and what is left when the container ends
//! is written without one. Each entry is one `write(2)` on an `O_APPEND` file, so a reader
//! never sees half an entry.

use crate::error::{Error, Result};
use crate::sandbox::Stream;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Longest piece of a line written as one entry.
const MAX_ENTRY: usize = 16 * 1024;

/// Appends a container's output to its json-file log.
pub struct LogWriter {
    file: std::fs::File,
    path: PathBuf,
    pending: [Vec<u8>; 2],
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

impl LogWriter {
    /// Open (create or append to) the log at `path`.
    pub fn open(path: &Path) -> Result<LogWriter> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(Error::io(path))?;
        Ok(LogWriter { file, path: path.to_path_buf(), pending: [Vec::new(), Vec::new()] })
    }

    /// Take a chunk of output; complete lines are written at once.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<()> {
        let k = stream_index(stream);
        self.pending[k].extend_from_slice(bytes);
        loop {
            let buf = &self.pending[k];
            let cut = match buf.iter().position(|b| *b == b'\n') {
                Some(i) if i < MAX_ENTRY => i + 1,
                _ if buf.len() >= MAX_ENTRY => MAX_ENTRY,
                _ => break,
            };
            let line: Vec<u8> = self.pending[k].drain(..cut).collect();
            self.entry(stream, &line)?;
        }
        Ok(())
    }

    /// Write what is left of unfinished lines (the container ended).
    pub fn flush(&mut self) -> Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream_index(stream)]);
            if !rest.is_empty() {
                self.entry(stream, &rest)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, stream: Stream, bytes: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(bytes);
        let time = super::state::now_rfc3339();
        let e = Entry {
            log: &text,
            stream: match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            },
            time: &time,
        };
        let mut line = serde_json::to_vec(&e).expect("entry serializes");
        line.push(b'\n');
        self.file.write_all(&line).map_err(Error::io(&self.path))
    }
}

fn stream_index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_entries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nwor").unwrap();
        w.write(Stream::Stdout, "ld \u{e9}\n".as_bytes()).unwrap();
        w.write(Stream::Stdout, b"end").unwrap();
        w.flush().unwrap();
        w.write(Stream::Stdout, &vec![b'a'; MAX_ENTRY + 10]).unwrap();
        w.flush().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let entries: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let got: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e["stream"].as_str().unwrap().to_string(), e["log"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(got[0], ("stderr".into(), "oops\n".into()));
        assert_eq!(got[1], ("stdout".into(), "hello\n".into()));
        assert_eq!(got[2], ("stdout".into(), "world \u{e9}\n".into()));
        assert_eq!(got[3], ("stdout".into(), "end".into()));
        assert_eq!(got[4].1.len(), MAX_ENTRY);
        assert_eq!(got[5].1.len(), 10);
        assert!(entries[0]["time"].as_str().unwrap().ends_with('Z'));
    }
}
