//! Build output people read, in BuildKit's styles.
//!
//! - `plain`: numbered steps (`#5 [2/4] RUN make`), their output prefixed with the step
//!   number and the seconds since it started, `#5 CACHED`, `#5 DONE 0.3s`, `#5 ERROR: …`.
//! - `tty`: a live view redrawn in place about ten times a second: a header
//!   (`[+] Building 3.2s (5/8)`), one line per step (`=> [2/4] RUN make   1.2s`,
//!   `=> CACHED [3/4] COPY . .`), the last lines a running RUN printed (dimmed) under it;
//!   at the end the whole list stays on screen as the summary. Lines are cut to the
//!   terminal's width; the view never grows taller than the terminal.
//! - `auto`: `tty` when stderr is a terminal (and `TERM` is not `dumb`), else `plain`. An
//!   explicit `tty` on something that is not a terminal prints `plain` too.
//! - `quiet`: nothing but errors (the CLI prints the image ID).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// `tty` on a terminal, else `plain`.
    #[default]
    Auto,
    /// Numbered lines.
    Plain,
    /// The live view (`plain` when stderr is not a terminal).
    Tty,
    /// Nothing but errors.
    Quiet,
}

impl ProgressMode {
    /// Parse `auto|plain|tty|quiet`.
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

/// How many lines of a running step's output the live view shows.
const LOG_LINES: usize = 6;
/// Redraw period of the live view.
const TICK: Duration = Duration::from_millis(100);

/// One step (BuildKit's vertex) as the live view knows it.
#[derive(Debug, Clone)]
struct Vertex {
    name: String,
    started: Instant,
    ended: Option<Instant>,
    cached: bool,
    error: Option<String>,
    notes: Vec<String>,
    logs: VecDeque<String>,
    partial: Vec<u8>,
}

/// The state behind the live view: what started, finished, failed, and the last lines
/// each running step printed. Pure: it renders frames for a given clock and width.
#[derive(Debug, Clone)]
pub struct TtyModel {
    start: Instant,
    order: Vec<u32>,
    vertices: HashMap<u32, Vertex>,
}

impl TtyModel {
    /// An empty model whose clock starts at `start`.
    pub fn new(start: Instant) -> TtyModel {
        TtyModel { start, order: Vec::new(), vertices: HashMap::new() }
    }

    /// Step `n` named `name` started at `at`.
    pub fn start(&mut self, n: u32, name: &str, at: Instant) {
        self.order.push(n);
        self.vertices.insert(
            n,
            Vertex {
                name: clean_text(name),
                started: at,
                ended: None,
                cached: false,
                error: None,
                notes: Vec::new(),
                logs: VecDeque::new(),
                partial: Vec::new(),
            },
        );
    }

    /// A status line under step `n`.
    pub fn note(&mut self, n: u32, text: &str) {
        if let Some(v) = self.vertices.get_mut(&n) {
            v.notes.push(clean_text(text));
        }
    }

    /// Output bytes of step `n`; complete lines go to its log, the last LOG_LINES kept.
    pub fn output(&mut self, n: u32, bytes: &[u8]) {
        let Some(v) = self.vertices.get_mut(&n) else { return };
        v.partial.extend_from_slice(bytes);
        while let Some(p) = v.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = v.partial.drain(..=p).collect();
            let text = last_segment(&line[..line.len() - 1]);
            v.logs.push_back(text);
            while v.logs.len() > LOG_LINES {
                v.logs.pop_front();
            }
        }
    }

    /// Step `n` came from the cache.
    pub fn cached(&mut self, n: u32, at: Instant) {
        if let Some(v) = self.vertices.get_mut(&n) {
            v.cached = true;
            v.ended = Some(at);
        }
    }

    /// Step `n` finished.
    pub fn done(&mut self, n: u32, at: Instant) {
        if let Some(v) = self.vertices.get_mut(&n) {
            v.ended.get_or_insert(at);
        }
    }

    /// Step `n` failed with `message`.
    pub fn error(&mut self, n: u32, message: &str, at: Instant) {
        if let Some(v) = self.vertices.get_mut(&n) {
            v.error = Some(message.to_string());
            v.ended.get_or_insert(at);
        }
    }

    /// The frame at `now`, every line at most `width - 1` columns (the last column is left
    /// alone so no terminal wraps), at most `height - 1` lines when the height is known
    /// and the frame is live. `last`: the summary left on screen at the end (every step,
    /// no running output). `color`: ANSI colors (blue done, red failed, dim output).
    pub fn render(&self, now: Instant, width: usize, height: Option<usize>, last: bool, color: bool) -> Vec<String> {
        let width = width.max(20) - 1;
        let total = self.order.len();
        let done = self.vertices.values().filter(|v| v.ended.is_some()).count();
        let failed = self.vertices.values().any(|v| v.error.is_some());
        let end = if last { self.vertices.values().filter_map(|v| v.ended).max().unwrap_or(now) } else { now };
        let elapsed = end.saturating_duration_since(self.start).as_secs_f64();
        let mut header = format!("[+] Building {elapsed:.1}s ({done}/{total})");
        if last && !failed && done == total {
            header.push_str(" FINISHED");
        }
        let paint = |code: &str, s: String| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s };
        // One block of lines per step, oldest first; a finished block may be dropped when
        // the terminal is too short.
        // One block per step, oldest first: (finished, its lines, its output lines). When the
        // terminal is too short, finished blocks leave first, then the oldest output lines
        // of the busiest running step, then (last resort) lines from the top.
        let mut blocks: Vec<(bool, Vec<String>, VecDeque<String>)> = Vec::new();
        for n in &self.order {
            let v = &self.vertices[n];
            let t = v.ended.unwrap_or(now).saturating_duration_since(v.started).as_secs_f64();
            let status = match (&v.error, v.cached) {
                (Some(m), _) if m == "build cancelled" => "CANCELED ",
                (Some(_), _) => "ERROR ",
                (None, true) => "CACHED ",
                _ => "",
            };
            let line = fit(&format!(" => {status}{}", v.name), &format!("{t:.1}s"), width);
            let mut lines = vec![match (&v.error, v.ended) {
                (Some(_), _) => paint("31", line),
                (None, Some(_)) => paint("34", line),
                _ => line,
            }];
            for note in &v.notes {
                lines.push(paint("34", truncate(&format!(" => => {note}"), width)));
            }
            let mut logs = VecDeque::new();
            if v.ended.is_none() {
                let mut all: Vec<String> = v.logs.iter().cloned().collect();
                let partial = last_segment(&v.partial);
                if !partial.is_empty() {
                    all.push(partial);
                }
                let skip = all.len().saturating_sub(LOG_LINES);
                for l in &all[skip..] {
                    logs.push_back(paint("2", truncate(&format!(" => => # {l}"), width)));
                }
            }
            blocks.push((v.ended.is_some(), lines, logs));
        }
        if let (Some(h), false) = (height, last) {
            let max = h.saturating_sub(1).max(2);
            let mut count = 1 + blocks.iter().map(|b| b.1.len() + b.2.len()).sum::<usize>();
            let mut i = 0;
            while count > max && i < blocks.len() {
                if blocks[i].0 {
                    count -= blocks[i].1.len() + blocks[i].2.len();
                    blocks.remove(i);
                } else {
                    i += 1;
                }
            }
            while count > max {
                let Some(b) = blocks.iter_mut().filter(|b| !b.2.is_empty()).max_by_key(|b| b.2.len()) else { break };
                b.2.pop_front();
                count -= 1;
            }
            let mut out = vec![header];
            let rest: Vec<String> = blocks.into_iter().flat_map(|b| b.1.into_iter().chain(b.2)).collect();
            let skip = rest.len().saturating_sub(max - 1);
            out.extend(rest.into_iter().skip(skip));
            return out;
        }
        let mut out = vec![header];
        out.extend(blocks.into_iter().flat_map(|b| b.1.into_iter().chain(b.2)));
        out
    }
}

/// `left` and `right` on one line of `width` columns, `right` flush right; `left` cut first.
fn fit(left: &str, right: &str, width: usize) -> String {
    let r = columns(right);
    if r + 2 > width {
        return truncate(left, width);
    }
    let room = width - r - 1;
    let l = truncate(left, room);
    let pad = width.saturating_sub(r + columns(&l));
    format!("{l}{}{right}", " ".repeat(pad))
}

/// `s` cut to `width` characters.
fn truncate(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_columns(c);
        if used + w > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

/// Terminal columns of `s`.
fn columns(s: &str) -> usize {
    s.chars().map(char_columns).sum()
}

/// Terminal columns of `c`: 0 for combining marks and zero-width characters, 2 for East
/// Asian wide characters and emoji (the common ranges), else 1. A line wider than counted
/// would wrap and break the redraw.
fn char_columns(c: char) -> usize {
    let u = c as u32;
    match u {
        0x0300..=0x036f | 0x200b..=0x200f | 0xfe00..=0xfe0f | 0x20d0..=0x20ff => 0,
        0x1100..=0x115f
        | 0x2e80..=0x303e
        | 0x3041..=0x33ff
        | 0x3400..=0x4dbf
        | 0x4e00..=0x9fff
        | 0xa000..=0xa4cf
        | 0xac00..=0xd7a3
        | 0xf900..=0xfaff
        | 0xfe30..=0xfe4f
        | 0xff00..=0xff60
        | 0xffe0..=0xffe6
        | 0x1f300..=0x1f64f
        | 0x1f900..=0x1f9ff
        | 0x20000..=0x3fffd => 2,
        _ => 1,
    }
}

/// What a terminal would show of a line rewritten with `\r`: the text after the last
/// carriage return that has any, control sequences removed.
fn last_segment(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let seg = text.rsplit('\r').find(|s| !s.trim().is_empty()).unwrap_or("");
    clean_text(seg)
}

/// Text without ANSI escape sequences and control characters (tabs become spaces): the
/// output of a RUN must not move the live view's cursor.
fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ params final-byte; other escapes: ESC + one char.
                if it.peek() == Some(&'[') {
                    it.next();
                    for d in it.by_ref() {
                        if ('\x40'..='\x7e').contains(&d) {
                            break;
                        }
                    }
                } else {
                    it.next();
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The terminal's width and height (stderr's, else $COLUMNS/$LINES, else 80 and unknown).
fn term_size() -> (usize, Option<usize>) {
    // SAFETY: TIOCGWINSZ fills a winsize; fd 2 may not be a terminal (then it fails).
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0;
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok()).filter(|v| *v > 0);
    let w = if ok && ws.ws_col > 0 { ws.ws_col as usize } else { env("COLUMNS").unwrap_or(80) };
    let h = if ok && ws.ws_row > 0 { Some(ws.ws_row as usize) } else { env("LINES") };
    (w, h)
}

/// Whether stderr is a terminal that can redraw.
fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the fd.
    let tty = unsafe { libc::isatty(2) == 1 };
    tty && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Tty,
    Quiet,
}

struct Live {
    model: TtyModel,
    /// Lines of the frame on screen (to move up over).
    drawn: usize,
    finished: bool,
    color: bool,
}

struct Inner {
    out: Box<dyn Write + Send>,
    next: u32,
    started: HashMap<u32, Instant>,
    partial: HashMap<u32, Vec<u8>>,
    live: Option<Live>,
}

impl Inner {
    /// Redraw the live view in place.
    fn draw(&mut self, last: bool) {
        let Some(live) = &mut self.live else { return };
        if live.finished {
            return;
        }
        let (w, h) = term_size();
        let lines = live.model.render(Instant::now(), w, h, last, live.color);
        let mut buf = String::new();
        if live.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", live.drawn));
        }
        buf.push('\r');
        for l in &lines {
            buf.push_str("\x1b[2K");
            buf.push_str(l);
            buf.push('\n');
        }
        buf.push_str("\x1b[J");
        live.drawn = lines.len();
        if last {
            live.finished = true;
        }
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }

    /// Take the live view off the screen (to print a line above it).
    fn clear(&mut self) {
        let Some(live) = &mut self.live else { return };
        if live.drawn > 0 && !live.finished {
            let _ = write!(self.out, "\x1b[{}A\r\x1b[J", live.drawn);
            live.drawn = 0;
        }
    }
}

struct Shared {
    style: Style,
    inner: Mutex<Inner>,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

/// The progress printer shared by every stage thread.
pub struct Progress {
    shared: Arc<Shared>,
    ticker: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("style", &self.shared.style).finish()
    }
}

impl Progress {
    /// Print to stderr in `mode` (`auto` and `tty` draw the live view only on a terminal).
    pub fn stderr(mode: ProgressMode) -> Progress {
        let mode = match mode {
            ProgressMode::Auto | ProgressMode::Tty if stderr_is_tty() => ProgressMode::Tty,
            ProgressMode::Auto | ProgressMode::Tty => ProgressMode::Plain,
            m => m,
        };
        Progress::to_writer(mode, Box::new(std::io::stderr()))
    }

    /// Print to `out` in `mode` (`auto` is `plain` here; `tty` draws the live view).
    pub fn to_writer(mode: ProgressMode, out: Box<dyn Write + Send>) -> Progress {
        let style = match mode {
            ProgressMode::Quiet => Style::Quiet,
            ProgressMode::Tty => Style::Tty,
            _ => Style::Plain,
        };
        let live = (style == Style::Tty).then(|| Live {
            model: TtyModel::new(Instant::now()),
            drawn: 0,
            finished: false,
            color: std::env::var_os("NO_COLOR").is_none(),
        });
        let shared = Arc::new(Shared {
            style,
            inner: Mutex::new(Inner { out, next: 1, started: HashMap::new(), partial: HashMap::new(), live }),
        });
        let ticker = (style == Style::Tty).then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let (s, sh) = (stop.clone(), shared.clone());
            let h = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        if !s.load(Ordering::Relaxed) {
                            sh.with(|i| i.draw(false));
                        }
                    }
                })
                .ok();
            h.map(|h| (stop, h))
        });
        Progress { shared, ticker: Mutex::new(ticker.flatten()) }
    }

    /// Whether this is the live view (the summary already names the image and tags).
    pub fn is_live(&self) -> bool {
        self.shared.style == Style::Tty
    }

    /// Stop redrawing and leave the final summary on screen (the live view; a no-op
    /// otherwise). Call before printing anything else to stderr.
    pub fn finish(&self) {
        let t = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, h)) = t {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        self.shared.with(|i| i.draw(true));
    }

    fn quiet(&self) -> bool {
        self.shared.style == Style::Quiet
    }

    /// A new numbered vertex: prints `#N label`, returns N.
    pub fn start(&self, label: &str) -> u32 {
        let quiet = self.quiet();
        self.shared.with(|i| {
            let n = i.next;
            i.next += 1;
            let now = Instant::now();
            i.started.insert(n, now);
            if let Some(l) = &mut i.live {
                l.model.start(n, label, now);
            } else if !quiet {
                let _ = writeln!(i.out, "#{n} {label}");
            }
            n
        })
    }

    /// A line of detail under vertex `n`.
    pub fn note(&self, n: u32, text: &str) {
        if self.quiet() {
            return;
        }
        self.shared.with(|i| {
            if let Some(l) = &mut i.live {
                l.model.note(n, text);
                return;
            }
            let t = i.started.get(&n).map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
            let _ = writeln!(i.out, "#{n} {t:.3} {text}");
        });
    }

    /// Output bytes of vertex `n` (RUN's stdout/stderr), printed line by line.
    pub fn output(&self, n: u32, bytes: &[u8]) {
        if self.quiet() {
            return;
        }
        self.shared.with(|i| {
            if let Some(l) = &mut i.live {
                l.model.output(n, bytes);
                return;
            }
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
        let quiet = self.quiet();
        self.shared.with(|i| {
            if let Some(l) = &mut i.live {
                l.model.cached(n, Instant::now());
            } else if !quiet {
                let _ = writeln!(i.out, "#{n} CACHED\n");
            }
        });
    }

    /// `#N DONE 1.2s`.
    pub fn done(&self, n: u32) {
        let quiet = self.quiet();
        self.shared.with(|i| {
            if let Some(l) = &mut i.live {
                l.model.done(n, Instant::now());
                return;
            }
            Self::flush_partial(i, n, quiet);
            let t = i.started.get(&n).map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
            if !quiet {
                let _ = writeln!(i.out, "#{n} DONE {t:.1}s\n");
            }
        });
    }

    /// `#N ERROR: message`.
    pub fn error(&self, n: u32, message: &str) {
        let quiet = self.quiet();
        self.shared.with(|i| {
            if let Some(l) = &mut i.live {
                l.model.error(n, message, Instant::now());
                return;
            }
            Self::flush_partial(i, n, quiet);
            if !quiet {
                let _ = writeln!(i.out, "#{n} ERROR: {message}\n");
            }
        });
    }

    /// A free line (not under a vertex); the live view prints it above itself.
    pub fn message(&self, text: &str) {
        if self.quiet() {
            return;
        }
        self.shared.with(|i| {
            i.clear();
            let _ = writeln!(i.out, "{text}");
        });
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn live_frame_lists_steps_times_and_running_output() {
        let t0 = Instant::now();
        let mut m = TtyModel::new(t0);
        m.start(1, "[internal] load build definition from Dockerfile", at(t0, 0));
        m.note(1, "transferring dockerfile: 120B");
        m.done(1, at(t0, 100));
        m.start(2, "[1/3] FROM docker.io/library/busybox:latest", at(t0, 100));
        m.done(2, at(t0, 200));
        m.start(3, "[2/3] COPY . .", at(t0, 200));
        m.cached(3, at(t0, 200));
        m.start(4, "[3/3] RUN make all-the-things-with-a-very-long-command-line", at(t0, 300));
        m.output(4, b"line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\n\x1b[31mred\x1b[0m\tx\n50%\r75%\r");
        let f = m.render(at(t0, 1500), 60, None, false, false);
        let want = [
            "[+] Building 1.5s (3/4)",
            " => [internal] load build definition from Dockerfile   0.1s",
            " => => transferring dockerfile: 120B",
            " => [1/3] FROM docker.io/library/busybox:latest        0.1s",
            " => CACHED [2/3] COPY . .                              0.0s",
            " => [3/3] RUN make all-the-things-with-a-very-long-com 1.2s",
            " => => # line 4",
            " => => # line 5",
            " => => # line 6",
            " => => # line 7",
            " => => # red    x",
            " => => # 75%",
        ];
        assert_eq!(f, want, "{}", f.join("\n"));
        assert!(f.iter().all(|l| l.chars().count() <= 59));

        // A short terminal: finished steps leave the view first.
        let f = m.render(at(t0, 1500), 60, Some(6), false, false);
        assert_eq!(
            f,
            [
                "[+] Building 1.5s (3/4)",
                " => [3/3] RUN make all-the-things-with-a-very-long-com 1.2s",
                " => => # line 7",
                " => => # red    x",
                " => => # 75%"
            ]
        );

        // A narrow terminal: every line cut, the time kept.
        let f = m.render(at(t0, 1500), 24, None, false, false);
        assert!(f.iter().all(|l| l.chars().count() <= 23), "{f:?}");
        assert_eq!(f[4], " => CACHED [2/3] C 0.0s");
        // Wide characters take two columns.
        assert_eq!(truncate("ab日本語", 5), "ab日");
        assert_eq!(columns(&fit(" => 日本語日本語日本語日本語", "1.0s", 20)), 20);

        // The summary: every step, no output, FINISHED.
        m.done(4, at(t0, 2000));
        m.start(5, "exporting to image", at(t0, 2000));
        m.note(5, "naming to docker.io/library/app:latest");
        m.done(5, at(t0, 2100));
        let f = m.render(at(t0, 2500), 60, Some(3), true, false);
        assert_eq!(f[0], "[+] Building 2.1s (5/5) FINISHED");
        assert_eq!(f.len(), 8, "{f:?}");
        assert!(f.iter().all(|l| !l.contains("# ")), "{f:?}");
        assert_eq!(f[7], " => => naming to docker.io/library/app:latest");
    }

    #[test]
    fn failures_and_parallel_steps() {
        let t0 = Instant::now();
        let mut m = TtyModel::new(t0);
        m.start(1, "[a 2/2] RUN sleep 1", at(t0, 0));
        m.start(2, "[b 2/2] RUN false", at(t0, 0));
        m.output(1, b"a-out\n");
        m.output(2, b"b-out\n");
        let f = m.render(at(t0, 500), 40, None, false, false);
        assert_eq!(
            f[1..],
            [
                " => [a 2/2] RUN sleep 1            0.5s",
                " => => # a-out",
                " => [b 2/2] RUN false              0.5s",
                " => => # b-out"
            ]
        );
        // Too short for both steps' output: both steps stay, their output shrinks.
        let f = m.render(at(t0, 500), 40, Some(5), false, false);
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f.iter().any(|l| l.contains("[a 2/2]")) && f.iter().any(|l| l.contains("[b 2/2]")), "{f:?}");
        m.error(2, "exit code: 1", at(t0, 600));
        m.error(1, "build cancelled", at(t0, 700));
        let f = m.render(at(t0, 800), 40, None, true, false);
        assert_eq!(
            f,
            [
                "[+] Building 0.7s (2/2)",
                " => CANCELED [a 2/2] RUN sleep 1   0.7s",
                " => ERROR [b 2/2] RUN false        0.6s"
            ]
        );
        let colored = m.render(at(t0, 800), 40, None, true, true);
        assert!(colored[2].starts_with("\x1b[31m"), "{colored:?}");
    }

    #[test]
    fn tty_writer_redraws_in_place_and_plain_is_unchanged() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let p = Progress::to_writer(ProgressMode::Tty, Box::new(buf.clone()));
        let n = p.start("[1/2] RUN echo hi");
        p.output(n, b"hi\n");
        std::thread::sleep(TICK * 3);
        p.done(n);
        p.finish();
        let s = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(s.contains("\x1b[2K"), "{s:?}");
        assert!(s.contains("hi"), "{s:?}");
        assert!(s.contains("\x1b[") && s.contains("A\r"), "moves up over the previous frame: {s:?}");
        assert!(s.ends_with("\x1b[J"), "{s:?}");

        let buf = Buf::default();
        let p = Progress::to_writer(ProgressMode::Plain, Box::new(buf.clone()));
        let n = p.start("[1/2] RUN echo hi");
        p.output(n, b"hi\n");
        p.cached(p.start("[2/2] COPY a b"));
        p.finish();
        let s = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(s.starts_with("#1 [1/2] RUN echo hi\n#1 0.0"), "{s}");
        assert!(s.contains(" hi\n#2 [2/2] COPY a b\n#2 CACHED\n"), "{s}");
    }
}
