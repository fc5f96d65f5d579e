//! Progress events per blob, and the two ways the CLI shows them: progress bars on a
//! terminal (indicatif), and one plain line per event otherwise, in docker's words.

use rbuild_image::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Queued.
    Waiting,
    /// Already there (locally on pull, in the registry on push): nothing to move.
    AlreadyExists,
    /// Bytes received so far.
    Downloading {
        /// Bytes so far.
        done: u64,
    },
    /// The blob is in and verified.
    PullComplete,
    /// Bytes sent so far.
    Pushing {
        /// Bytes so far.
        done: u64,
    },
    /// Mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// The registry has it.
    Pushed,
    /// A try failed; another one follows.
    Retrying {
        /// What went wrong.
        reason: String,
    },
}

/// One event about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The blob.
    pub digest: Digest,
    /// Its size from the descriptor.
    pub size: u64,
    /// What happened.
    pub kind: EventKind,
}

/// Receives progress events; called from many tasks at once.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, e: Event);
    /// A line of text about the whole operation (`Digest: …`, `Status: …`).
    fn message(&self, _line: &str) {}
}

/// Ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _e: Event) {}
}

/// Sends every event down a channel (for callers that draw their own).
pub struct ChannelProgress(pub tokio::sync::mpsc::UnboundedSender<Event>);

impl Progress for ChannelProgress {
    fn event(&self, e: Event) {
        let _ = self.0.send(e);
    }
}

/// `12.3MB`, the way docker shows sizes (decimal units).
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n}B") } else { format!("{v:.1}{}", units[u]) }
}

/// Plain lines, one per event, for logs and pipes: `3f4e5a6b7c8d: Downloading 12.3MB/40.1MB`.
/// Byte counts are reported at each tenth of a blob, not per chunk.
pub struct LineProgress {
    out: Mutex<Box<dyn std::io::Write + Send>>,
    last_tenth: Mutex<HashMap<Digest, u64>>,
    quiet: bool,
}

impl LineProgress {
    /// Write to stdout; `quiet` writes nothing.
    pub fn stdout(quiet: bool) -> LineProgress {
        LineProgress { out: Mutex::new(Box::new(std::io::stdout())), last_tenth: Mutex::new(HashMap::new()), quiet }
    }

    /// Write to any writer.
    pub fn to_writer(w: Box<dyn std::io::Write + Send>) -> LineProgress {
        LineProgress { out: Mutex::new(w), last_tenth: Mutex::new(HashMap::new()), quiet: false }
    }

    fn line(&self, s: &str) {
        let mut o = self.out.lock().expect("lock");
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }
}

/// The text docker shows for an event, or None when the event is not worth a line.
fn status_text(e: &Event) -> String {
    match &e.kind {
        EventKind::Waiting => "Pulling fs layer".into(),
        EventKind::AlreadyExists => "Already exists".into(),
        EventKind::Downloading { done } => format!("Downloading {}/{}", human(*done), human(e.size)),
        EventKind::PullComplete => "Pull complete".into(),
        EventKind::Pushing { done } => format!("Pushing {}/{}", human(*done), human(e.size)),
        EventKind::Mounted { from } => format!("Mounted from {from}"),
        EventKind::Pushed => "Pushed".into(),
        EventKind::Retrying { reason } => format!("Retrying ({reason})"),
    }
}

impl Progress for LineProgress {
    fn event(&self, e: Event) {
        if self.quiet {
            return;
        }
        if let EventKind::Downloading { done } | EventKind::Pushing { done } = e.kind {
            let tenth = (done * 10).checked_div(e.size).unwrap_or(10);
            let mut last = self.last_tenth.lock().expect("lock");
            let prev = last.get(&e.digest).copied();
            if prev.is_some_and(|p| p >= tenth) {
                return;
            }
            last.insert(e.digest.clone(), tenth);
        }
        self.line(&format!("{}: {}", e.digest.short(), status_text(&e)));
    }

    fn message(&self, line: &str) {
        if !self.quiet {
            self.line(line);
        }
    }
}

/// Progress bars on a terminal, one per blob.
pub struct BarProgress {
    multi: indicatif::MultiProgress,
    bars: Mutex<HashMap<Digest, indicatif::ProgressBar>>,
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl BarProgress {
    /// Bars on stderr.
    pub fn new() -> BarProgress {
        BarProgress { multi: indicatif::MultiProgress::new(), bars: Mutex::new(HashMap::new()) }
    }

    fn bar(&self, e: &Event) -> indicatif::ProgressBar {
        let mut bars = self.bars.lock().expect("lock");
        bars.entry(e.digest.clone())
            .or_insert_with(|| {
                let b = self.multi.add(indicatif::ProgressBar::new(e.size));
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix}: {msg:16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                b.set_prefix(e.digest.short().to_string());
                b
            })
            .clone()
    }
}

impl Progress for BarProgress {
    fn event(&self, e: Event) {
        let b = self.bar(&e);
        match &e.kind {
            EventKind::Downloading { done } | EventKind::Pushing { done } => {
                b.set_position(*done);
                b.set_message(if matches!(e.kind, EventKind::Downloading { .. }) { "Downloading" } else { "Pushing" });
            }
            EventKind::AlreadyExists | EventKind::PullComplete | EventKind::Pushed | EventKind::Mounted { .. } => {
                b.set_position(e.size);
                b.finish_with_message(status_text(&e));
            }
            _ => b.set_message(status_text(&e)),
        }
    }

    fn message(&self, line: &str) {
        let _ = self.multi.println(line);
    }
}

/// Bars on a terminal, lines otherwise, nothing when quiet.
pub fn for_console(quiet: bool) -> Arc<dyn Progress> {
    use std::io::IsTerminal;
    if !quiet && std::io::stderr().is_terminal() {
        Arc::new(BarProgress::new())
    } else {
        Arc::new(LineProgress::stdout(quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_like_docker() {
        let buf = Buf::default();
        let p = LineProgress::to_writer(Box::new(buf.clone()));
        let d = Digest::sha256_of(b"x");
        let ev = |kind| Event { digest: d.clone(), size: 40_100_000, kind };
        p.event(ev(EventKind::Waiting));
        for done in (0..=40_100_000).step_by(100_000) {
            p.event(ev(EventKind::Downloading { done }));
        }
        p.event(ev(EventKind::PullComplete));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{}: Pulling fs layer", d.short()));
        assert!(
            lines.iter().any(|l| l.ends_with("Downloading 12.3MB/40.1MB") || l.contains("Downloading 12.")),
            "{text}"
        );
        assert_eq!(lines.last().unwrap(), &format!("{}: Pull complete", d.short()));
        assert!(lines.len() <= 14, "{text}");
        assert_eq!(human(12_300_000), "12.3MB");
    }
}
