//! Reading a container's log (`rbuild logs`): docker's json-file format, one JSON object a
//! line, `{"log":"text\n","stream":"stdout"|"stderr","time":"2026-12-02T13:45:25.123456789Z"}`,
//! as the monitor writes it to `<root>/containers/<id>/<id>-json.log`.
//!
//! [`read`] prints what is there (the last `--tail N` lines, then `--since`/`--until`),
//! [`follow`] keeps printing what is appended until the container stops. Only whole lines
//! are read: a line the monitor is still writing waits for its newline. A line that is not
//! a log entry is skipped with a warning, never a reason to stop.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// stdout or stderr.
    pub stream: Stream,
    /// When the monitor read it.
    pub time: DateTime<Utc>,
    /// The text, with its newline when it had one.
    pub log: String,
}

#[derive(serde::Deserialize)]
struct Raw {
    log: String,
    #[serde(default)]
    stream: String,
    time: String,
}

/// What `rbuild logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--tail N`: only the last N lines (None: all).
    pub tail: Option<usize>,
    /// `--since`: lines logged at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// `--until`: lines logged before this time.
    pub until: Option<DateTime<Utc>>,
    /// `-t`: each line after its RFC 3339 timestamp.
    pub timestamps: bool,
}

impl Options {
    fn wants(&self, e: &Entry) -> bool {
        self.since.is_none_or(|s| e.time >= s) && self.until.is_none_or(|u| e.time < u)
    }
}

/// Parse one line of the log; None for a line that is not an entry.
pub fn parse_line(line: &[u8]) -> Option<Entry> {
    let raw: Raw = serde_json::from_slice(line).ok()?;
    let time = DateTime::parse_from_rfc3339(&raw.time).ok()?.with_timezone(&Utc);
    let stream = if raw.stream == "stderr" { Stream::Stderr } else { Stream::Stdout };
    Some(Entry { stream, time, log: raw.log })
}

/// A time as docker's `-t` prints it: RFC 3339 with nanoseconds always nine digits.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Print one entry to `out` (stdout lines) or `err` (stderr lines).
pub fn print_entry(e: &Entry, timestamps: bool, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
    let w: &mut dyn Write = match e.stream {
        Stream::Stdout => out,
        Stream::Stderr => err,
    };
    if timestamps {
        write!(w, "{} ", timestamp(&e.time))?;
    }
    w.write_all(e.log.as_bytes())
}

/// `--tail`: a count, or `all` (docker also takes a negative number as all).
pub fn parse_tail(value: &str) -> Result<Option<usize>> {
    let v = value.trim();
    if v == "all" || v.is_empty() {
        return Ok(None);
    }
    match v.parse::<i64>() {
        Ok(n) if n < 0 => Ok(None),
        Ok(n) => Ok(Some(n as usize)),
        Err(_) => Err(Error::BadValue {
            flag: "--tail".into(),
            value: value.into(),
            reason: "expected a number of lines or \"all\"".into(),
        }),
    }
}

/// A Go duration (`300ms`, `10m`, `1h30m`, `1.5h`); None when it is not one.
pub fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit_ns = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit_ns;
    }
    Some(chrono::Duration::nanoseconds(total as i64))
}

/// `--since`/`--until` as docker reads them: a Go duration before `now` (`10m`, `1h30m`),
/// unix seconds (`1700000000`, `1700000000.5`), or a date: RFC 3339 (with nanoseconds or
/// not), `2006-01-02T15:04:05`, `2006-01-02T15:04`, `2006-01-02T15`, `2006-01-02`, each
/// with an optional `Z`/`+07:00` zone (none: the local zone).
pub fn parse_time(flag: &str, value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let bad = |reason: &str| Error::BadValue { flag: flag.into(), value: value.into(), reason: reason.into() };
    let v = value.trim();
    if v != "0" {
        if let Some(d) = parse_duration(v) {
            return Ok(now - d);
        }
    }
    if !v.contains('-') {
        let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
        let ok = !secs.is_empty()
            && secs.chars().all(|c| c.is_ascii_digit())
            && frac.len() <= 9
            && frac.chars().all(|c| c.is_ascii_digit());
        if !ok {
            return Err(bad(
                "expected a duration (10m, 1h30m), unix seconds[.nanoseconds] or a date (2006-01-02T15:04:05Z)",
            ));
        }
        let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().unwrap_or(0) };
        let secs: i64 = secs.parse().map_err(|_| bad("the number of seconds is too large"))?;
        return DateTime::from_timestamp(secs, nanos).ok_or_else(|| bad("out of range"));
    }
    // A date: split off a zone (`Z`, `+hh:mm`, `-hh:mm` after the time).
    let (date_time, zone) = split_zone(v);
    let (date, time) = date_time.split_once('T').unwrap_or((date_time, ""));
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad("the date is not YYYY-MM-DD"))?;
    let t = match time.matches(':').count() {
        _ if time.is_empty() => Ok(chrono::NaiveTime::MIN),
        0 => chrono::NaiveTime::parse_from_str(&format!("{time}:00"), "%H:%M"),
        1 => chrono::NaiveTime::parse_from_str(time, "%H:%M"),
        _ => chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.f"),
    }
    .map_err(|_| bad("the time of day is not HH[:MM[:SS[.nnnnnnnnn]]]"))?;
    let naive = d.and_time(t);
    match zone {
        Some(z) => {
            let offset = if z == "Z" || z == "z" {
                chrono::FixedOffset::east_opt(0)
            } else {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let (h, m) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
                let (h, m): (i32, i32) =
                    (h.parse().map_err(|_| bad("bad zone"))?, m.parse().map_err(|_| bad("bad zone"))?);
                chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            }
            .ok_or_else(|| bad("bad zone"))?;
            use chrono::TimeZone;
            Ok(offset.from_local_datetime(&naive).single().ok_or_else(|| bad("bad zone"))?.with_timezone(&Utc))
        }
        None => {
            use chrono::TimeZone;
            let local = chrono::Local.from_local_datetime(&naive).earliest().ok_or_else(|| bad("not a local time"))?;
            Ok(local.with_timezone(&Utc))
        }
    }
}

/// `2026-01-02T10:00:00+02:00` -> (`2026-01-02T10:00:00`, Some(`+02:00`)).
fn split_zone(v: &str) -> (&str, Option<&str>) {
    if let Some(s) = v.strip_suffix(['Z', 'z']) {
        return (s, Some("Z"));
    }
    if let Some(t) = v.find('T') {
        if let Some(p) = v[t..].rfind(['+', '-']) {
            return (&v[..t + p], Some(&v[t + p..]));
        }
    } else if v.matches('-').count() == 3 {
        // 2006-01-02-07:00
        let p = v.rfind('-').unwrap_or(v.len());
        return (&v[..p], Some(&v[p..]));
    } else if let Some(p) = v.find('+') {
        return (&v[..p], Some(&v[p..]));
    }
    (v, None)
}

/// Where the last `n` lines of the file begin.
fn tail_offset(f: &mut std::fs::File, len: u64, n: usize) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(len);
    }
    const CHUNK: u64 = 64 * 1024;
    let mut pos = len;
    let mut newlines = 0usize;
    let mut buf = vec![0u8; CHUNK as usize];
    // The file ends in a newline: that one closes the last line, it does not start one.
    let mut skip_last = true;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let want = (pos - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..want])?;
        for i in (0..want).rev() {
            if buf[i] == b'\n' {
                if skip_last && start + i as u64 == len - 1 {
                    skip_last = false;
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        skip_last = false;
        pos = start;
    }
    Ok(0)
}

/// Reads whole lines from an offset on.
struct Reader {
    file: Option<std::fs::File>,
    offset: u64,
    pending: Vec<u8>,
}

impl Reader {
    fn open(path: &Path, tail: Option<usize>) -> Result<Reader> {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Reader { file: None, offset: 0, pending: Vec::new() });
            }
            Err(e) => return Err(Error::io(path)(e)),
        };
        let len = file.metadata().map_err(Error::io(path))?.len();
        let offset = match tail {
            Some(n) => tail_offset(&mut file, len, n).map_err(Error::io(path))?,
            None => 0,
        };
        file.seek(SeekFrom::Start(offset)).map_err(Error::io(path))?;
        Ok(Reader { file: Some(file), offset, pending: Vec::new() })
    }

    /// The complete lines appended since the last call.
    fn lines(&mut self, path: &Path, each: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if self.file.is_none() {
            match std::fs::File::open(path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io(path)(e)),
            }
        }
        let f = self.file.as_mut().expect("opened above");
        // A log cut short under us (truncated by hand) is read again from its start.
        if f.metadata().map_err(Error::io(path))?.len() < self.offset {
            f.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
            self.offset = 0;
            self.pending.clear();
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(Error::io(path))?;
            if n == 0 {
                return Ok(());
            }
            self.offset += n as u64;
            self.pending.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
                each(&self.pending[start..start + nl])?;
                start += nl + 1;
            }
            self.pending.drain(..start);
        }
    }
}

fn emit(line: &[u8], opts: &Options, path: &Path, out: &mut dyn FnMut(&Entry) -> std::io::Result<()>) -> Result<()> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match parse_line(line) {
        Some(e) if opts.wants(&e) => out(&e).map_err(Error::Stream),
        Some(_) => Ok(()),
        None => {
            tracing::warn!("{}: skipping a line that is not a json-file log entry", path.display());
            Ok(())
        }
    }
}

/// Hand every wanted entry now in the log at `path` to `out`. A missing log is an empty one.
pub fn read(path: &Path, opts: &Options, out: &mut dyn FnMut(&Entry) -> std::io::Result<()>) -> Result<()> {
    let mut r = Reader::open(path, opts.tail)?;
    r.lines(path, &mut |l| emit(l, opts, path, out))
}

/// [`read`], then keep handing over what is appended while `running()` says the container
/// still runs (checked every `poll`), and what it wrote before it stopped; also stops once
/// `--until` has passed.
pub fn follow(
    path: &Path,
    opts: &Options,
    running: &mut dyn FnMut() -> bool,
    poll: std::time::Duration,
    out: &mut dyn FnMut(&Entry) -> std::io::Result<()>,
) -> Result<()> {
    let mut r = Reader::open(path, opts.tail)?;
    loop {
        // Ask first, read after: what a container wrote before it stopped is in the file
        // by the time the state says it stopped.
        let alive = running();
        r.lines(path, &mut |l| emit(l, opts, path, out))?;
        if !alive || opts.until.is_some_and(|u| Utc::now() >= u) {
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn line(stream: &str, text: &str, secs: i64) -> String {
        let t = Utc.timestamp_opt(1_700_000_000 + secs, 123_000).unwrap();
        serde_json::json!({"log": text, "stream": stream, "time": timestamp(&t)}).to_string() + "\n"
    }

    fn collect(path: &Path, opts: &Options) -> Vec<String> {
        let mut v = Vec::new();
        read(path, opts, &mut |e| {
            v.push(format!("{}:{}", if e.stream == Stream::Stdout { "o" } else { "e" }, e.log.trim_end()));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn reads_tails_and_filters_by_time() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut s = String::new();
        for i in 0..10 {
            s.push_str(&line(if i % 3 == 0 { "stderr" } else { "stdout" }, &format!("line {i}\n"), i));
        }
        s.push_str("not json\n");
        std::fs::write(&p, &s).unwrap();
        let all = collect(&p, &Options::default());
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], "e:line 0");
        assert_eq!(all[1], "o:line 1");
        // The junk line counts as a line for --tail, as in docker.
        assert_eq!(collect(&p, &Options { tail: Some(3), ..Default::default() }), ["o:line 8", "e:line 9"]);
        assert_eq!(collect(&p, &Options { tail: Some(0), ..Default::default() }), Vec::<String>::new());
        assert_eq!(collect(&p, &Options { tail: Some(100), ..Default::default() }).len(), 10);
        let at = |s: i64| Some(Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap());
        let got = collect(&p, &Options { since: at(7), ..Default::default() });
        assert_eq!(got, ["o:line 7", "o:line 8", "e:line 9"]);
        let got = collect(&p, &Options { since: at(2), until: at(4), ..Default::default() });
        assert_eq!(got, ["o:line 2", "e:line 3"]);
        // A missing log is an empty one.
        assert!(collect(&d.path().join("none"), &Options::default()).is_empty());
    }

    #[test]
    fn tail_across_chunks_and_without_a_final_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big-json.log");
        let mut s = String::new();
        for i in 0..5000 {
            s.push_str(&line("stdout", &format!("{i} {}\n", "x".repeat(50)), i));
        }
        std::fs::write(&p, &s).unwrap();
        let got = collect(&p, &Options { tail: Some(2500), ..Default::default() });
        assert_eq!(got.len(), 2500);
        assert!(got[0].starts_with("o:2500 "), "{}", got[0]);
        // An unfinished last line is not read (the monitor is still writing it).
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"log":"half"#).unwrap();
        let got = collect(&p, &Options { tail: Some(1), ..Default::default() });
        assert_eq!(got.len(), 0, "{got:?}");
        let got = collect(&p, &Options { tail: Some(2), ..Default::default() });
        assert!(got[0].starts_with("o:4999 "), "{got:?}");
    }

    #[test]
    fn follow_reads_appended_lines_until_the_container_stops() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f-json.log");
        std::fs::write(&p, line("stdout", "first\n", 0)).unwrap();
        let mut polls = 0;
        let mut got = Vec::new();
        let path = p.clone();
        follow(
            &p,
            &Options::default(),
            &mut || {
                polls += 1;
                // Each poll the "container" writes a line; on the third it stops, having
                // written its last line just before.
                let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                f.write_all(line("stderr", &format!("poll {polls}\n"), polls).as_bytes()).unwrap();
                polls < 3
            },
            std::time::Duration::from_millis(1),
            &mut |e| {
                got.push(e.log.trim_end().to_string());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, ["first", "poll 1", "poll 2", "poll 3"]);
    }

    #[test]
    fn follow_starts_over_when_the_log_is_cut_short() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t-json.log");
        std::fs::write(&p, line("stdout", "old one\n", 0) + &line("stdout", "old two\n", 1)).unwrap();
        let (path, mut polls, mut got) = (p.clone(), 0, Vec::new());
        follow(
            &p,
            &Options::default(),
            &mut || {
                polls += 1;
                if polls == 2 {
                    std::fs::write(&path, line("stdout", "new\n", 2)).unwrap();
                }
                polls < 3
            },
            std::time::Duration::from_millis(1),
            &mut |e| {
                got.push(e.log.trim_end().to_string());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, ["old one", "old two", "new"]);
    }

    #[test]
    fn prints_with_and_without_timestamps() {
        let e = parse_line(line("stderr", "oops\n", 5).trim_end().as_bytes()).unwrap();
        let (mut o, mut er) = (Vec::new(), Vec::new());
        print_entry(&e, true, &mut o, &mut er).unwrap();
        assert!(o.is_empty());
        assert_eq!(String::from_utf8(er).unwrap(), "2023-11-14T22:13:25.000123000Z oops\n");
        let (mut o, mut er) = (Vec::new(), Vec::new());
        print_entry(&Entry { stream: Stream::Stdout, ..e }, false, &mut o, &mut er).unwrap();
        assert_eq!(String::from_utf8(o).unwrap(), "oops\n");
    }

    #[test]
    fn since_and_until_as_docker_reads_them() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let p = |s: &str| parse_time("--since", s, now).unwrap();
        assert_eq!(p("10m"), now - chrono::Duration::minutes(10));
        assert_eq!(p("1h30m"), now - chrono::Duration::minutes(90));
        assert_eq!(p("1.5h"), now - chrono::Duration::minutes(90));
        assert_eq!(p("250ms"), now - chrono::Duration::milliseconds(250));
        assert_eq!(p("1700000000"), Utc.timestamp_opt(1_700_000_000, 0).unwrap());
        assert_eq!(p("1700000000.5"), Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap());
        assert_eq!(p("0"), Utc.timestamp_opt(0, 0).unwrap());
        assert_eq!(p("2026-12-01T10:00:00Z"), Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap());
        assert_eq!(
            p("2026-12-01T10:00:00.25Z"),
            Utc.timestamp_millis_opt(p("2026-12-01T10:00:00Z").timestamp_millis() + 250).unwrap()
        );
        assert_eq!(p("2026-12-01T12:00:00+02:00"), Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap());
        assert_eq!(p("2026-12-01T08:30-01:30"), Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap());
        assert_eq!(p("2026-12-01Z"), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        // No zone: the local one.
        let local = chrono::Local.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap().with_timezone(&Utc);
        assert_eq!(p("2026-12-01T10:00:00"), local);
        assert_eq!(p("2026-12-01T10"), local);
        for bad in ["yesterday", "10x", "2026-13-01", "2026-12-01T25:00", "-5", "1.2.3", ""] {
            let e = parse_time("--since", bad, now).unwrap_err().to_string();
            assert!(e.contains("--since") && e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("-1").unwrap(), None);
        assert_eq!(parse_tail("5").unwrap(), Some(5));
        assert!(parse_tail("five").unwrap_err().to_string().contains("--tail"));
    }
}
