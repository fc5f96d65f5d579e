//! bench-layer: layer creation (tar + compress + both digests) and extraction speed, on one
//! core, beside `tar | gzip` and `tar | zstd` on the same tree.
//!
//! ```text
//! cargo run --release -p rbuild-bench --bin bench-layer -- [--tree DIR] [--runs N] [--all-cores]
//!     [--threads N] [--only gzip,zstd,none] [--no-extract] [--no-baselines] [--cpu-time] [--gzip-levels] [--zstd-levels]
//!     [--zstd-breakdown]
//! ```
//! `--cpu-time` times creation by the CPU time used (ours, or the pipeline's) instead of the
//! wall clock: on a one-core run that other processes share, it is the steadier figure.
//! `--zstd-levels` adds levels -5..=3 (ours and `zstd -T1` side by side); `--zstd-breakdown`
//! times the parts of a zstd layer separately (tar reading, each SHA-256, zstd alone with
//! several parameter sets) on the tar held in memory.
//! Without `--tree`, a ~300 MB, ~9k-file corpus is copied once from /usr/share/doc,
//! /usr/share/locale and /usr/lib/python3.11 (topped up from other /usr dirs) into
//! `$TMPDIR/rbuild-bench-layer-corpus` and reused on later runs.

use anyhow::{Context, Result, bail};
use rbuild_image::Compression;
use rbuild_image::layer::{self, ApplyOptions, LayerBlobWriter, WriterOptions};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET_BYTES: u64 = 300 << 20;

struct Args {
    tree: Option<PathBuf>,
    runs: usize,
    all_cores: bool,
    threads: Option<u32>,
    extract_dir: Option<PathBuf>,
    only: Vec<Compression>,
    extract: bool,
    baselines: bool,
    gzip_levels: bool,
    zstd_levels: bool,
    zstd_breakdown: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        tree: None,
        runs: 3,
        all_cores: false,
        threads: None,
        extract_dir: None,
        only: vec![Compression::Gzip, Compression::Zstd, Compression::None],
        extract: true,
        baselines: true,
        gzip_levels: false,
        zstd_levels: false,
        zstd_breakdown: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--tree" => a.tree = Some(it.next().context("--tree needs a directory")?.into()),
            "--runs" => a.runs = it.next().context("--runs needs a number")?.parse()?,
            "--all-cores" => a.all_cores = true,
            "--threads" => a.threads = Some(it.next().context("--threads needs a number")?.parse()?),
            "--only" => {
                let list = it.next().context("--only needs gzip,zstd,none")?;
                a.only = list
                    .split(',')
                    .map(|c| match c {
                        "gzip" => Ok(Compression::Gzip),
                        "zstd" => Ok(Compression::Zstd),
                        "none" => Ok(Compression::None),
                        o => bail!("--only: unknown compression {o:?}"),
                    })
                    .collect::<Result<_>>()?;
            }
            "--no-extract" => a.extract = false,
            "--no-baselines" => a.baselines = false,
            "--cpu-time" => CPU_TIME.store(true, std::sync::atomic::Ordering::Relaxed),
            "--gzip-levels" => a.gzip_levels = true,
            "--zstd-levels" => a.zstd_levels = true,
            "--zstd-breakdown" => a.zstd_breakdown = true,
            "--extract-dir" => a.extract_dir = Some(it.next().context("--extract-dir needs a directory")?.into()),
            "-h" | "--help" => {
                println!(
                    "bench-layer [--tree DIR] [--runs N] [--all-cores] [--threads N] [--extract-dir DIR] \\
                     [--only gzip,zstd,none] [--no-extract] [--no-baselines] [--cpu-time] [--gzip-levels] [--zstd-levels] [--zstd-breakdown]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    if !a.all_cores {
        // One core for us and everything we start (the tar|gzip baseline inherits it).
        let mut set = nix::sched::CpuSet::new();
        let cpu = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .ok()
            .and_then(|s| (0..nix::sched::CpuSet::count()).find(|&i| s.is_set(i).unwrap_or(false)))
            .unwrap_or(0);
        set.set(cpu)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
        println!("pinned to CPU {cpu} (use --all-cores to lift)");
    }
    let tree = match a.tree.clone() {
        Some(t) => t,
        None => corpus()?,
    };
    let (bytes, files) = measure_tree(&tree)?;
    println!("tree: {} ({:.1} MB of file contents, {files} entries)\n", tree.display(), mb(bytes));
    let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let threads = a.threads.unwrap_or(cores);
    println!("compression threads: {threads} on {cores} core(s); figures: best of {} runs (slowest)\n", a.runs);

    println!("{:<34} {:>18} {:>10} {:>9}", "layer creation (tar+compress+digests)", "MB/s", "blob MB", "ratio");
    let mut blobs = Vec::new();
    for c in a.only.clone() {
        let (t, info) = best(a.runs, || create(&tree, c, None, threads))?;
        row(&format!("rbuild {c:?} (default level)"), info.uncompressed_size, t, Some(&info));
        println!("  blob {} (same for any thread count)", info.digest);
        let blob = if a.extract { blob(&tree, c)? } else { Vec::new() };
        let tar_size = info.uncompressed_size;
        blobs.push((c, t, info, blob));
        if c == Compression::Gzip {
            let (t, size) = best(a.runs, || single_stream_gzip(&tree))?;
            println!(
                "{:<34} {:>18} {:>10.1} {:>9.3}",
                "  single-stream gzip -1 (before)",
                rate(tar_size, &t),
                mb(size),
                size as f64 / tar_size as f64
            );
        }
    }
    let Some(tar_bytes) = blobs.first().map(|b| b.2.uncompressed_size) else { return Ok(()) };

    println!("\n{:<34} {:>18} {:>10} {:>12}", "baseline (same tree)", "MB/s", "blob MB", "rbuild is");
    let pigz = format!("pigz -1 -p {threads}");
    let pipes = [
        ("tar | gzip -1", "gzip -1", Compression::Gzip),
        ("tar | gzip -6", "gzip -6", Compression::Gzip),
        ("tar | pigz -1", pigz.as_str(), Compression::Gzip),
        ("tar | zstd -3 -T1", "zstd -3 -q -T1", Compression::Zstd),
        ("tar > /dev/null", "cat", Compression::None),
    ];
    for (label, filter, c) in pipes {
        if !a.baselines {
            break;
        }
        let Some(ours) = blobs.iter().find(|b| b.0 == c).map(|b| b.1) else { continue };
        let tool = filter.split(' ').next().unwrap();
        if Command::new(tool).arg("--version").output().is_err() {
            println!("{label:<34} (not installed)");
            continue;
        }
        let (t, size) = best(a.runs, || baseline(&tree, filter))?;
        println!(
            "{:<34} {:>18} {:>10.1} {:>11.2}x",
            label,
            rate(tar_bytes, &t),
            mb(size),
            t.best.as_secs_f64() / ours.best.as_secs_f64()
        );
    }

    if a.extract {
        extraction(&a, &blobs, tar_bytes)?;
    }

    if a.gzip_levels {
        println!("\n{:<34} {:>18} {:>10} {:>9}", "gzip levels (creation)", "MB/s", "blob MB", "ratio");
        for level in 1..=6 {
            let (t, info) = best(a.runs, || create(&tree, Compression::Gzip, Some(level), threads))?;
            row(&format!("rbuild gzip -{level}"), info.uncompressed_size, t, Some(&info));
        }
    }

    if a.zstd_levels {
        println!("\n{:<34} {:>18} {:>10} {:>9}", "zstd levels (creation)", "MB/s", "blob MB", "ratio");
        for level in [-5, -4, -3, -2, -1, 1, 2, 3] {
            let (t, info) = best(a.runs, || create(&tree, Compression::Zstd, Some(level), threads))?;
            row(&format!("rbuild zstd {level}"), info.uncompressed_size, t, Some(&info));
            let filter =
                if level < 0 { format!("zstd --fast={} -q -T1", -level) } else { format!("zstd -{level} -q -T1") };
            let (t, size) = best(a.runs, || baseline(&tree, &filter))?;
            println!(
                "{:<34} {:>18} {:>10.1} {:>9.3}",
                format!("  tar | {filter}"),
                rate(info.uncompressed_size, &t),
                mb(size),
                size as f64 / info.uncompressed_size as f64
            );
        }
    }

    if a.zstd_breakdown {
        zstd_breakdown(&tree, a.runs)?;
    }
    Ok(())
}

/// One table row: label, rate (best, and the slowest run), blob size and ratio.
fn row(label: &str, bytes: u64, t: Runs, info: Option<&layer::LayerInfo>) {
    match info {
        Some(i) => println!(
            "{:<34} {:>18} {:>10.1} {:>9.3}",
            label,
            rate(bytes, &t),
            mb(i.size),
            i.size as f64 / i.uncompressed_size as f64
        ),
        None => println!("{:<34} {:>18}", label, rate(bytes, &t)),
    }
}

/// `best (slowest)` in MB/s.
fn rate(bytes: u64, t: &Runs) -> String {
    format!("{:.0} ({:.0})", mb(bytes) / t.best.as_secs_f64(), mb(bytes) / t.worst.as_secs_f64())
}

fn extraction(a: &Args, blobs: &[(Compression, Runs, layer::LayerInfo, Vec<u8>)], tar_bytes: u64) -> Result<()> {
    // Extraction into tmpfs by default: this measures the applier, not the disk (on a busy
    // virtual disk, dirty-page writeback throttling dominates after the first few hundred MB).
    let shm = Path::new("/dev/shm");
    let xdir =
        a.extract_dir.clone().unwrap_or_else(|| if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() });
    println!("\n{:<34} {:>18}", format!("extraction into {}", xdir.display()), "MB/s");
    for (c, _, info, blob) in blobs {
        let (t, _) = best(a.runs, || extract(blob, &xdir).map(|t| (t, ())))?;
        row(&format!("rbuild apply {c:?}"), info.uncompressed_size, t, None);
    }
    let plain = blobs.iter().find(|b| b.0 == Compression::None);
    let gz = blobs.iter().find(|b| b.0 == Compression::Gzip);
    if let (Some(plain), Some(gz)) = (plain, gz)
        && Command::new("tar").arg("--version").output().is_ok()
    {
        let (t, _) = best(a.runs, || gnu_extract(&plain.3, "", &xdir).map(|t| (t, ())))?;
        row("GNU tar -x (plain)", tar_bytes, t, None);
        let (t, _) = best(a.runs, || gnu_extract(&gz.3, "-z", &xdir).map(|t| (t, ())))?;
        row("GNU tar -xz (gzip)", tar_bytes, t, None);
    }
    Ok(())
}

/// Where the time of a zstd layer goes: each part alone, on one thread where it can be.
fn zstd_breakdown(tree: &Path, runs: usize) -> Result<()> {
    use std::io::Write;
    println!("\n{:<34} {:>18} {:>10} {:>9}", "zstd layer, part by part", "MB/s", "blob MB", "ratio");
    // Reading the tree and writing the tar, into a counter: no hashing, no compression.
    let (t, n) = best(runs, || {
        let start = Clock::start(libc::RUSAGE_SELF);
        let w = layer::write_dir(tree, Counter(0), &WriterOptions::default())?;
        Ok((start.elapsed(), w.0))
    })?;
    row("tar writer alone (read + format)", n, t, None);
    let (t, info) = best(runs, || create(tree, Compression::None, None, 1))?;
    row("tar + sha256 (uncompressed layer)", info.uncompressed_size, t, None);
    let mut tar = Vec::with_capacity(n as usize);
    layer::write_dir(tree, &mut tar, &WriterOptions::default())?;
    let (t, _) = best(runs, || {
        let start = Clock::start(libc::RUSAGE_SELF);
        let d = rbuild_image::Digest::sha256_of(&tar);
        Ok((start.elapsed(), d))
    })?;
    row("sha256 of the tar in memory", n, t, None);

    type Setup = fn(&mut zstd::stream::raw::Encoder<'static>) -> std::io::Result<()>;
    let configs: Vec<(String, i32, Setup)> = {
        let mut v: Vec<(String, i32, Setup)> = Vec::new();
        for level in [-5, -3, -1, 1, 2, 3] {
            v.push((format!("zstd {level} mt(1) (ours)"), level, |e| mt(e, 1)));
        }
        for level in [-5, -3, -1, 1, 2, 3] {
            v.push((format!("zstd {level} single-threaded"), level, |_| Ok(())));
        }
        v.push(("zstd 1 mt(1) +checksum".into(), 1, |e| {
            mt(e, 1)?;
            e.set_parameter(CParameter::ChecksumFlag(true))
        }));
        v.push(("zstd 1 mt(1) wlog 23".into(), 1, |e| {
            mt(e, 1)?;
            e.set_parameter(CParameter::WindowLog(23))
        }));
        v.push(("zstd 3 mt(1) strategy fast".into(), 3, |e| {
            mt(e, 1)?;
            e.set_parameter(CParameter::Strategy(zstd::zstd_safe::Strategy::ZSTD_fast))
        }));
        for (label, level, setup) in [
            ("zstd 1 mt(1) job 8 MiB", 1, job::<8> as Setup),
            ("zstd 1 mt(1) job 16 MiB", 1, job::<16>),
            ("zstd 1 mt(1) job 32 MiB", 1, job::<32>),
            ("zstd 3 mt(1) job 16 MiB", 3, job::<16>),
            ("zstd 3 mt(1) job 32 MiB", 3, job::<32>),
            ("zstd 3 mt(1) job 32 MiB ovl 0", 3, |e| {
                job::<32>(e)?;
                e.set_parameter(CParameter::OverlapSizeLog(1))
            }),
            ("zstd -1 mt(1) job 32 MiB", -1, job::<32>),
            ("zstd -3 mt(1) job 32 MiB", -3, job::<32>),
        ] {
            v.push((label.into(), level, setup));
        }
        v
    };
    for (label, level, setup) in configs {
        let (t, size) = best(runs, || {
            let start = Clock::start(libc::RUSAGE_SELF);
            let mut raw = zstd::stream::raw::Encoder::new(level)?;
            setup(&mut raw)?;
            let mut enc = zstd::stream::write::Encoder::with_encoder(Counter(0), raw);
            for piece in tar.chunks(64 * 1024) {
                enc.write_all(piece)?;
            }
            let out = enc.finish()?;
            Ok((start.elapsed(), out.0))
        })?;
        println!("{:<34} {:>18} {:>10.1} {:>9.3}", label, rate(n, &t), mb(size), size as f64 / n as f64);
    }
    Ok(())
}

use zstd::zstd_safe::CParameter;

/// One zstd worker and jobs of `MIB` MiB.
fn job<const MIB: u32>(e: &mut zstd::stream::raw::Encoder<'static>) -> std::io::Result<()> {
    mt(e, 1)?;
    e.set_parameter(CParameter::JobSize(MIB << 20))
}

fn mt(e: &mut zstd::stream::raw::Encoder<'static>, workers: u32) -> std::io::Result<()> {
    e.set_parameter(CParameter::NbWorkers(workers))
}

/// The gzip layer path before parallel gzip (flate2's one-stream encoder fed 64 KiB pieces,
/// both digests), for comparison on the same tree and machine.
fn single_stream_gzip(tree: &Path) -> Result<(Duration, u64)> {
    use rbuild_image::digest::{Algorithm, DigestWriter, Hasher};
    use std::io::Write;
    struct Old {
        enc: flate2::write::GzEncoder<DigestWriter<Counter>>,
        pending: Vec<u8>,
        diff: Hasher,
    }
    impl Write for Old {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.diff.update(buf);
            let mut rest = buf;
            while !rest.is_empty() {
                let n = (65536 - self.pending.len()).min(rest.len());
                self.pending.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if self.pending.len() == 65536 {
                    self.enc.write_all(&self.pending)?;
                    self.pending.clear();
                }
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let start = Clock::start(libc::RUSAGE_SELF);
    let out = DigestWriter::new(Counter(0), Algorithm::Sha256);
    let enc = flate2::GzBuilder::new().write(out, flate2::Compression::new(1));
    let w = Old { enc, pending: Vec::with_capacity(65536), diff: Algorithm::Sha256.hasher() };
    let mut w = layer::write_dir(tree, w, &WriterOptions::default())?;
    let rest = std::mem::take(&mut w.pending);
    w.enc.write_all(&rest)?;
    let _ = w.diff.finish();
    let (_, _, size) = w.enc.finish()?.finish();
    Ok((start.elapsed(), size))
}

/// Counts what is written and drops it.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// Times of repeated runs: the fastest (the least disturbed) and the slowest (the spread).
#[derive(Clone, Copy)]
struct Runs {
    best: Duration,
    worst: Duration,
}

/// Run `f` `runs` times; the value of the fastest run.
fn best<T>(runs: usize, mut f: impl FnMut() -> Result<(Duration, T)>) -> Result<(Runs, T)> {
    let mut best: Option<(Duration, T)> = None;
    let mut worst = Duration::ZERO;
    for _ in 0..runs.max(1) {
        let (t, v) = f()?;
        worst = worst.max(t);
        if best.as_ref().is_none_or(|(b, _)| t < *b) {
            best = Some((t, v));
        }
    }
    let (t, v) = best.expect("at least one run");
    Ok((Runs { best: t, worst }, v))
}

static CPU_TIME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A stopwatch: wall clock, or with `--cpu-time` user+system CPU time of `who`.
struct Clock {
    who: libc::c_int,
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start(who: libc::c_int) -> Clock {
        Clock { who, wall: Instant::now(), cpu: cpu_time(who) }
    }

    fn elapsed(&self) -> Duration {
        if CPU_TIME.load(std::sync::atomic::Ordering::Relaxed) {
            cpu_time(self.who).saturating_sub(self.cpu)
        } else {
            self.wall.elapsed()
        }
    }
}

fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Time a layer written into a sink; the blob itself is made once more afterwards, untimed.
fn create(tree: &Path, c: Compression, level: Option<i32>, threads: u32) -> Result<(Duration, layer::LayerInfo)> {
    let start = Clock::start(libc::RUSAGE_SELF);
    let w = LayerBlobWriter::with_threads(std::io::sink(), c, level, threads)?;
    let (_, info) = layer::write_dir(tree, w, &WriterOptions::default())?.finish()?;
    Ok((start.elapsed(), info))
}

fn blob(tree: &Path, c: Compression) -> Result<Vec<u8>> {
    let w = LayerBlobWriter::new(Vec::new(), c, None)?;
    Ok(layer::write_dir(tree, w, &WriterOptions::default())?.finish()?.0)
}

fn baseline(tree: &Path, filter: &str) -> Result<(Duration, u64)> {
    let script = format!("tar -C '{}' -cf - . | {filter} | wc -c", tree.display());
    let start = Clock::start(libc::RUSAGE_CHILDREN);
    let out = Command::new("sh").arg("-c").arg(&script).output()?;
    let t = start.elapsed();
    if !out.status.success() {
        bail!("{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((t, String::from_utf8_lossy(&out.stdout).trim().parse()?))
}

fn extract(blob: &[u8], xdir: &Path) -> Result<Duration> {
    let dir = tempfile::tempdir_in(xdir)?;
    let blob = blob.to_vec();
    let start = Instant::now();
    layer::apply_layer(std::io::Cursor::new(blob), dir.path(), &ApplyOptions::default())?;
    Ok(start.elapsed())
}

fn gnu_extract(blob: &[u8], flag: &str, xdir: &Path) -> Result<Duration> {
    let dir = tempfile::tempdir_in(xdir)?;
    let file = dir.path().join("blob");
    std::fs::write(&file, blob)?;
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir)?;
    let start = Instant::now();
    let mut cmd = Command::new("tar");
    if !flag.is_empty() {
        cmd.arg(flag);
    }
    let st = cmd.arg("-xpf").arg(&file).arg("-C").arg(&out_dir).status()?;
    let t = start.elapsed();
    if !st.success() {
        bail!("tar -x failed");
    }
    Ok(t)
}

fn measure_tree(tree: &Path) -> Result<(u64, u64)> {
    let (mut bytes, mut n) = (0, 0);
    for e in walkdir::WalkDir::new(tree).min_depth(1) {
        let md = std::fs::symlink_metadata(e?.path())?;
        n += 1;
        if md.is_file() {
            bytes += md.len();
        }
    }
    Ok((bytes, n))
}

/// Copy the default corpus once; later runs reuse it.
fn corpus() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("rbuild-bench-layer-corpus");
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(dir.join("tree"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree)?;
    println!("building the corpus in {} (once)…", tree.display());
    let mut total = 0u64;
    let primary = ["/usr/share/doc", "/usr/share/locale", "/usr/lib/python3.11"];
    let top_up =
        ["/usr/lib/python3", "/usr/share/perl", "/usr/share/i18n", "/usr/share/man", "/usr/lib/x86_64-linux-gnu"];
    for src in primary.iter().chain(top_up.iter()) {
        let src = Path::new(src);
        if !src.exists() || (total >= TARGET_BYTES && !primary.contains(&src.to_str().unwrap_or(""))) {
            continue;
        }
        let dst = tree.join(src.strip_prefix("/")?);
        copy_tree(src, &dst, &mut total)?;
    }
    if total < TARGET_BYTES / 2 {
        bail!("only {:.0} MB found to copy; pass --tree DIR", mb(total));
    }
    std::fs::write(&done, b"")?;
    Ok(tree)
}

fn copy_tree(src: &Path, dst: &Path, total: &mut u64) -> Result<()> {
    for e in walkdir::WalkDir::new(src).follow_links(false).sort_by_file_name() {
        let Ok(e) = e else { continue };
        let rel = e.path().strip_prefix(src)?;
        let to = dst.join(rel);
        let md = std::fs::symlink_metadata(e.path())?;
        if md.is_dir() {
            std::fs::create_dir_all(&to)?;
        } else if md.file_type().is_symlink() {
            let _ = symlink(std::fs::read_link(e.path())?, &to);
        } else if md.is_file() {
            if *total >= TARGET_BYTES + (20 << 20) {
                break;
            }
            if std::fs::copy(e.path(), &to).is_ok() {
                *total += md.size();
            }
        }
    }
    Ok(())
}
