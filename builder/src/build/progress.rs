//! Build output people read, BuildKit's plain style: numbered steps (`#5 [2/4] RUN make`),
//! their output prefixed with the step number and the seconds since it started,
//! `#5 CACHED`, `#5 DONE 0.3s`, `#5 ERROR: …`. `tty` is the same as `plain` for now (no live
//! redrawing view); `quiet` prints nothing but errors (the CLI prints the image ID).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// `plain` (no live view yet).
    #[default]
    Auto,
    /// Numbered lines.
    Plain,
    /// The same as plain for now.
    Tty,
    /// Nothing but errors.
    Quiet,
}

impl ProgressMode {
    /// Parse `auto|plain|tty|quiet|rawjson`.
    pub fn parse(s: &str) -> Option<ProgressMode> {
        Some(match s {
            "auto" => ProgressMode::Auto,
            "plain" => ProgressMode::Plain,
            "tty" => ProgressMode::Tty,
            "quiet" => ProgressMode::Quiet,
            _ => return None,
        })
    }
}

struct Inner {
    out: Box<dyn Write + Send>,
    next: u32,
    started: HashMap<u32, Instant>,
    partial: HashMap<u32, Vec<u8>>,
}

/// The progress printer shared by every stage thread.
pub struct Progress {
    quiet: bool,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("quiet", &self.quiet).finish()
    }
}

impl Progress {
    /// Print to stderr in `mode`.
    pub fn stderr(mode: ProgressMode) -> Progress {
        Progress::to_writer(mode, Box::new(std::io::stderr()))
    }

    /// Print to `out` in `mode`.
    pub fn to_writer(mode: ProgressMode, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            quiet: mode == ProgressMode::Quiet,
            inner: Mutex::new(Inner { out, next: 1, started: HashMap::new(), partial: HashMap::new() }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A new numbered vertex: prints `#N label`, returns N.
    pub fn start(&self, label: &str) -> u32 {
        self.with(|i| {
            let n = i.next;
            i.next += 1;
            i.started.insert(n, Instant::now());
            if !self.quiet {
                let _ = writeln!(i.out, "#{n} {label}");
            }
            n
        })
    }

    /// A line of detail under vertex `n`.
    pub fn note(&self, n: u32, text: &str) {
        if self.quiet {
            return;
        }
        self.with(|i| {
            let t = i.started.get(&n).map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
            let _ = writeln!(i.out, "#{n} {t:.3} {text}");
        });
    }

    /// Output bytes of vertex `n` (RUN's stdout/stderr), printed line by line.
    pub fn output(&self, n: u32, bytes: &[u8]) {
        if self.quiet {
            return;
        }
        self.with(|i| {
            let t = i.started.get(&n).map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
            let buf = i.partial.entry(n).or_default();
            buf.extend_from_slice(bytes);
            let mut lines = Vec::new();
            while let Some(p) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=p).collect();
                lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_string());
            }
            for l in lines {
                let _ = writeln!(i.out, "#{n} {t:.3} {l}");
            }
        });
    }

    fn flush_partial(i: &mut Inner, n: u32, quiet: bool) {
        if let Some(rest) = i.partial.remove(&n) {
            if !rest.is_empty() && !quiet {
                let t = i.started.get(&n).map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
                let _ = writeln!(i.out, "#{n} {t:.3} {}", String::from_utf8_lossy(&rest));
            }
        }
    }

    /// `#N CACHED`.
    pub fn cached(&self, n: u32) {
        self.with(|i| {
            if !self.quiet {
                let _ = writeln!(i.out, "#{n} CACHED\n");
            }
        });
    }

    /// `#N DONE 1.2s`.
    pub fn done(&self, n: u32) {
        self.with(|i| {
            Self::flush_partial(i, n, self.quiet);
            let t = i.started.get(&n).map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
            if !self.quiet {
                let _ = writeln!(i.out, "#{n} DONE {t:.1}s\n");
            }
        });
    }

    /// `#N ERROR: message`.
    pub fn error(&self, n: u32, message: &str) {
        self.with(|i| {
            Self::flush_partial(i, n, self.quiet);
            if !self.quiet {
                let _ = writeln!(i.out, "#{n} ERROR: {message}\n");
            }
        });
    }

    /// A free line (not under a vertex).
    pub fn message(&self, text: &str) {
        if self.quiet {
            return;
        }
        self.with(|i| {
            let _ = writeln!(i.out, "{text}");
        });
    }
}
