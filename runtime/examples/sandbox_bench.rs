//! Sandbox benchmark: the cost of a `RUN true` (sandbox alone, and a whole step: prepare a
//! snapshot, run, diff, remove) and the rate at which a RUN writing 300 MB becomes a gzip
//! layer. Run as root: `cargo run --release -p rbuild-runtime --example sandbox_bench [N]`
//! (or bench/sandbox/run.sh).

use rbuild_image::Compression;
use rbuild_image::layer::WriterOptions;
use rbuild_runtime::diff::{self, Exclude};
use rbuild_runtime::sandbox::{Executor, RunIo, RunSpec, Sandbox};
use rbuild_runtime::snapshot;
use std::time::Instant;

fn busybox_tree(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox").arg("--list").output().unwrap();
    for name in String::from_utf8(list.stdout).unwrap().lines().filter(|n| *n != "busybox") {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(name)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

/// What the seccomp filter and the device cgroup add to a `RUN true`: the same run
/// unconfined, the profile's compilation (once per process), and a device cgroup's
/// creation and removal on their own.
fn confinement_costs(sb: &Sandbox, spec: &RunSpec, n: usize) {
    use rbuild_runtime::sandbox::{Seccomp, Security, caps, cgroup, seccomp};
    let unconfined =
        RunSpec { security: Security { seccomp: Seccomp::Unconfined, ..Default::default() }, ..spec.clone() };
    // Interleaved, so a machine busy with something else slows both alike, and in
    // alternating order: the first run of a pair is slower, which would otherwise be
    // charged to whichever kind always goes first.
    let (mut with, mut without) = (0.0, 0.0);
    for i in 0..n {
        let mut pair = [(spec, &mut with), (&unconfined, &mut without)];
        if i % 2 == 1 {
            pair.reverse();
        }
        for (s, acc) in pair {
            let t = Instant::now();
            assert_eq!(sb.run(s, RunIo::capture(|_, _| {})).unwrap().code, 0);
            *acc += t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        }
    }
    let t = Instant::now();
    let progs = seccomp::compile(&seccomp::Profile::docker_default(), caps::DEFAULT).unwrap();
    let compile = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let mut made = false;
    for _ in 0..n {
        let mut layout = cgroup::layout();
        if let cgroup::Layout::V1(dirs) = &mut layout {
            dirs.retain(|(c, _)| c == "devices");
        }
        let placed = cgroup::Cgroup::create_in(&layout, "bench", &Default::default(), Some(&cgroup::default_rules()));
        made = placed.unwrap().cgroup.is_some_and(|c| c.has_devices());
    }
    let cg = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    println!(
        "RUN true: default seccomp {with:.2} ms, unconfined {without:.2} ms (filter: {:+.2} ms; {} programs, {} instructions, compiled once in {compile:.2} ms); device cgroup create+remove {}",
        with - without,
        progs.len(),
        progs.iter().map(Vec::len).sum::<usize>(),
        if made { format!("{cg:.2} ms") } else { "n/a (no v1 devices controller)".into() }
    );
}

fn main() {
    if let Some(code) = rbuild_runtime::sandbox::init_hook() {
        std::process::exit(code)
    }
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(50);
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let sn = snapshot::open(root, rbuild_runtime::sandbox::store_trees(root)).unwrap();
    sn.prepare("x", None).unwrap();
    busybox_tree(&sn.extract_dir("x").unwrap().0);
    sn.commit("base", "x").unwrap();
    let sb = Sandbox::new(root).unwrap();
    println!("snapshotter: {}, rootless: {}", sn.name(), sb.rootless());

    // /bin/true itself, outside any sandbox, for reference.
    let t = Instant::now();
    for _ in 0..n {
        std::process::Command::new("/bin/busybox").arg("true").status().unwrap();
    }
    let bare = t.elapsed().as_secs_f64() * 1000.0 / n as f64;

    let rootfs = sn.prepare("warm", Some("base")).unwrap();
    let spec = RunSpec { rootfs, args: vec!["/bin/true".into()], ..Default::default() };
    sb.run(&spec, RunIo::capture(|_, _| {})).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let o = sb.run(&spec, RunIo::capture(|_, _| {})).unwrap();
        assert_eq!(o.code, 0);
    }
    let sandbox = t.elapsed().as_secs_f64() * 1000.0 / n as f64;

    let t = Instant::now();
    for i in 0..n {
        let key = format!("step-{i}");
        let rootfs = sn.prepare(&key, Some("base")).unwrap();
        let o = sb
            .run(&RunSpec { rootfs, args: vec!["/bin/true".into()], ..Default::default() }, RunIo::capture(|_, _| {}))
            .unwrap();
        let ch = diff::changes(&sn.diff_source(&key).unwrap(), &Exclude::from_outcome(&o), None).unwrap();
        assert!(ch.is_empty(), "{ch:?}");
        sn.remove(&key).unwrap();
    }
    let step = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    println!(
        "RUN true, mean of {n}: bare process {bare:.2} ms; sandbox {sandbox:.2} ms (+{:.2} ms); whole step with snapshot+diff {step:.2} ms (+{:.2} ms)",
        sandbox - bare,
        step - bare
    );
    confinement_costs(&sb, &spec, n);

    for (what, script) in [
        (
            "300 MB of binaries (150 x busybox)",
            "mkdir /big && i=0; while [ $i -lt 150 ]; do cat /bin/busybox > /big/f$i; i=$((i+1)); done",
        ),
        ("300 MB of random bytes", "head -c 314572800 /dev/urandom > /big.bin"),
    ] {
        let key = format!("big-{}", snapshot::unique());
        let rootfs = sn.prepare(&key, Some("base")).unwrap();
        let o = sb
            .run(
                &RunSpec { rootfs, args: vec!["/bin/sh".into(), "-c".into(), script.into()], ..Default::default() },
                RunIo::capture(|_, _| {}),
            )
            .unwrap();
        assert_eq!(o.code, 0);
        for (c, level) in [
            (Compression::None, None),
            (Compression::Gzip, None),
            (Compression::Gzip, Some(1)),
            (Compression::Zstd, None),
        ] {
            let t = Instant::now();
            let ch = diff::changes(&sn.diff_source(&key).unwrap(), &Exclude::from_outcome(&o), None).unwrap();
            let (_, info) = diff::write_to_level(std::io::sink(), ch, c, level, &WriterOptions::default()).unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "{what}: {c:?} level {level:?}: {:.1} MB tar -> {:.1} MB in {s:.2} s = {:.0} MB/s (of tar)",
                info.uncompressed_size as f64 / 1e6,
                info.size as f64 / 1e6,
                info.uncompressed_size as f64 / 1e6 / s
            );
        }
        sn.remove(&key).unwrap();
    }
}
