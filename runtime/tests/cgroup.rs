//! Cgroups of sandboxes on a busybox root filesystem: a memory limit OOM-kills (137, and
//! the outcome says so), a fork bomb stays under its pids limit, ulimits reach the
//! command, limits land in the cgroup files, freeze/thaw stop and resume a counter, and
//! nothing is left behind. Needs root (CI runs as root); every cgroup is made beneath the
//! test's own.

mod common;

use common::*;
use rbuild_runtime::cgroup::{self, Cgroup, Limits, Ulimit};
use rbuild_runtime::sandbox::{Executor, RunSpec, Sandbox};
use rbuild_runtime::snapshot::{self, Snapshotter};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Env {
    _dir: tempfile::TempDir,
    sn: Box<dyn Snapshotter>,
    sb: Sandbox,
}

fn setup() -> Env {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir_all(&root).unwrap();
    let sn = snapshot::open(&root, rbuild_runtime::sandbox::store_trees(&root)).unwrap();
    sn.prepare("base-x", None).unwrap();
    busybox_tree(&sn.extract_dir("base-x").unwrap().0);
    sn.commit("base", "base-x").unwrap();
    let sb = Sandbox::new(&root).unwrap();
    Env { _dir: dir, sn, sb }
}

fn spec_on(e: &Env, key: &str, limits: Limits) -> RunSpec {
    RunSpec { rootfs: e.sn.prepare(key, Some("base")).unwrap(), limits, ..Default::default() }
}

/// Skip (pass) when this host has no cgroup hierarchy with `ctrl` for us.
fn has(ctrl: &str) -> bool {
    let ok = match cgroup::layout() {
        cgroup::Layout::V1(dirs) => dirs.iter().any(|(c, _)| c == ctrl),
        cgroup::Layout::V2(d) => {
            std::fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default().contains(ctrl)
        }
        cgroup::Layout::None => false,
    };
    if !ok {
        eprintln!("no {ctrl} cgroup controller here: skipped");
    }
    ok
}

/// A unique container-like name for this test's cgroup.
fn name(tag: &str) -> String {
    format!("test{}{tag}", std::process::id())
}

fn no_cgroup_left(name: &str) {
    let left: Vec<PathBuf> = cgroup::paths_for(name).into_iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
fn memory_limit_oom_kills_the_hog_with_137() {
    let e = setup();
    if !has("memory") {
        return;
    }
    let n = name("oom");
    let mut spec = spec_on(&e, "a", Limits { memory: Some(16 << 20), ..Default::default() });
    spec.cgroup = Some(n.clone());
    // A string doubling to 256 MiB at most (if the limit failed, the host survives it).
    let (out, _, stderr) =
        sh(&e.sb, &spec, "awk 'BEGIN { s = \"x\"; while (length(s) < 256 * 1024 * 1024) s = s s; print length(s) }'");
    assert_eq!(out.code, 137, "{out:?} {stderr}");
    assert!(out.oom_killed, "the outcome must say the OOM killer struck: {out:?}");
    no_cgroup_left(&n);
    // Without a limit the same kind of command runs to its end and nothing is OOM-killed.
    let spec = spec_on(&e, "b", Limits::default());
    let (out, stdout, _) =
        sh(&e.sb, &spec, "awk 'BEGIN { s = \"x\"; while (length(s) < 1024 * 1024) s = s s; print length(s) }'");
    assert_eq!((out.code, out.oom_killed, stdout.as_str()), (0, false, "1048576\n"));
}

#[test]
fn ulimits_reach_the_command() {
    let e = setup();
    let limits = Limits {
        ulimits: vec![Ulimit::parse("nofile=512:1024").unwrap(), Ulimit::parse("core=-1").unwrap()],
        ..Default::default()
    };
    let spec = spec_on(&e, "a", limits);
    let (out, stdout, stderr) = sh(&e.sb, &spec, "grep -E 'Max (open files|core file size)' /proc/self/limits");
    assert_eq!(out.code, 0, "{stderr}");
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(lines.iter().any(|l| l[..5] == ["Max", "core", "file", "size", "unlimited"]), "{stdout}");
    assert!(lines.iter().any(|l| l[..5] == ["Max", "open", "files", "512", "1024"]), "{stdout}");
    // A soft limit above the hard one is refused before anything runs.
    assert!(Ulimit::parse("nofile=10:5").is_err());
}

/// Runs `script` in a thread; the handle gives back the outcome and output.
struct Running {
    cap: Captured,
    thread: Option<std::thread::JoinHandle<rbuild_runtime::sandbox::RunOutcome>>,
    name: String,
}

impl Running {
    fn start(e: &Env, key: &str, name: &str, limits: Limits, script: &str) -> Running {
        let mut spec = spec_on(e, key, limits);
        spec.cgroup = Some(name.to_string());
        spec.args = vec!["/bin/sh".into(), "-c".into(), script.into()];
        let cap = Captured::default();
        let io = cap.io();
        let sb = e.sb.clone();
        let thread = std::thread::spawn(move || sb.run(&spec, io).unwrap());
        Running { cap, thread: Some(thread), name: name.to_string() }
    }

    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f(&self.cap.stdout()) {
            assert!(Instant::now() < deadline, "waited 20 s for {what}: {:?}", self.cap.stdout());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Kill whatever is left in the cgroup (frozen first: a fork bomb too); the run
        // then returns.
        if let Some(cg) = Cgroup::find(&self.name) {
            cg.destroy();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_fork_bomb_stays_under_the_pids_limit() {
    let e = setup();
    if !has("pids") {
        return;
    }
    let n = name("pids");
    // The bomb in a subshell (which may die of a failed fork; the shell must not), then
    // the shell waits on a fifo, forking nothing.
    let script = "mkfifo /tmp/p; f() { f | f & }; (f) 2>/dev/null; echo started; read x < /tmp/p";
    let r = Running::start(&e, "a", &n, Limits { pids_limit: Some(64), ..Default::default() }, script);
    r.wait_for("the bomb", |s| s.contains("started"));
    let cg = Cgroup::find(&n).unwrap();
    // Contained: the kernel refuses its forks (v1 pids.events / v2 pids.events `max`)
    // and it never holds more than 64.
    let refused = || {
        cg.paths()
            .iter()
            .find_map(|p| std::fs::read_to_string(p.join("pids.events")).ok())
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("max ").and_then(|n| n.trim().parse::<u64>().ok())))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while refused().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the bomb never hit the limit: {:?}", cg.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..20 {
        let st = cg.stats();
        assert!(st.pids <= 64 && st.pids_limit == Some(64), "{st:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(cg);
    drop(r);
    no_cgroup_left(&n);
}

#[test]
fn limits_land_in_the_cgroup_and_it_goes_with_the_run() {
    let e = setup();
    if !has("memory") || !has("pids") || !has("cpu") {
        return;
    }
    let n = name("files");
    let limits = Limits {
        memory: Some(64 << 20),
        memory_reservation: Some(32 << 20),
        nano_cpus: Some(500_000_000),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".into()),
        pids_limit: Some(100),
        ..Default::default()
    };
    let r = Running::start(&e, "a", &n, limits, "cat /proc/self/cgroup; echo ready; sleep 1000");
    r.wait_for("ready", |s| s.contains("ready"));
    assert!(r.cap.stdout().contains(&format!("rbuild-{n}")), "the command is in its cgroup: {}", r.cap.stdout());
    let cg = Cgroup::find(&n).expect("the cgroup exists while it runs");
    let st = cg.stats();
    assert_eq!(st.memory_limit, Some(64 << 20), "{st:?}");
    assert_eq!(st.pids_limit, Some(100), "{st:?}");
    assert!(st.pids >= 3, "outer init, pid 1 and the shell: {st:?}");
    assert!(st.memory_usage > 0, "{st:?}");
    for p in cg.paths() {
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok().map(|s| s.trim().to_string());
        if let Some(q) = read("cpu.cfs_quota_us") {
            assert_eq!(q, "50000");
            assert_eq!(read("cpu.shares").unwrap(), "512");
        }
        if let Some(c) = read("cpuset.cpus") {
            assert_eq!(c, "0");
        }
        if let Some(s) = read("memory.soft_limit_in_bytes") {
            assert_eq!(s, (32u64 << 20).to_string());
        }
        assert!(p.file_name().unwrap().to_string_lossy().starts_with("rbuild-"));
    }
    // update: a new pids limit while it runs.
    cg.update(&Limits { pids_limit: Some(50), ..Default::default() }).unwrap();
    assert_eq!(cg.stats().pids_limit, Some(50));
    // A value the kernel refuses is an error naming the flag.
    let err = cg.update(&Limits { cpuset_cpus: Some("4096".into()), ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("--cpuset-cpus"), "{err}");
    drop(cg);
    drop(r);
    no_cgroup_left(&n);
}

#[test]
fn freeze_stops_a_counter_and_thaw_resumes_it() {
    let e = setup();
    if !has("freezer") && !matches!(cgroup::layout(), cgroup::Layout::V2(_)) {
        return;
    }
    let n = name("freeze");
    let r = Running::start(&e, "a", &n, Limits::default(), "i=0; while :; do i=$((i+1)); echo $i; done");
    r.wait_for("the counter", |s| s.lines().count() > 10);
    let cg = Cgroup::find(&n).unwrap();
    cg.freeze().unwrap();
    assert_eq!(cg.frozen(), Some(true));
    // Frozen: the output stops growing (what was in flight is read first).
    let mut last = r.cap.stdout().len();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = r.cap.stdout().len();
        if now == last {
            break;
        }
        last = now;
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(r.cap.stdout().len(), last, "a frozen counter must not count");
    cg.thaw().unwrap();
    assert_eq!(cg.frozen(), Some(false));
    r.wait_for("the counter to go on", |s| s.len() > last);
    drop(cg);
    drop(r);
    no_cgroup_left(&n);
}

#[test]
fn limits_without_a_controller_are_one_warning_and_bad_limits_are_refused() {
    let e = setup();
    // A layout with only a devices hierarchy: the memory limit cannot be applied.
    let layout = match cgroup::layout() {
        cgroup::Layout::V1(mut dirs) => {
            dirs.retain(|(c, _)| c == "devices");
            cgroup::Layout::V1(dirs)
        }
        _ => cgroup::Layout::None,
    };
    let limits = Limits { memory: Some(64 << 20), ..Default::default() };
    let p = Cgroup::create_in(&layout, &name("warn"), &limits, None).unwrap();
    let w = p.warning.expect("a warning");
    assert!(w.contains("--memory") && w.contains("memory"), "{w}");
    drop(p.cgroup);
    no_cgroup_left(&name("warn"));
    // docker's checks, before anything runs.
    let spec = spec_on(&e, "a", Limits { memory: Some(1 << 20), ..Default::default() });
    let err = e.sb.run(&RunSpec { args: vec!["true".into()], ..spec }, Captured::default().io()).unwrap_err();
    assert!(err.to_string().contains("Minimum memory limit"), "{err}");
}

#[test]
fn a_cgroup_left_by_a_killed_owner_is_emptied_before_reuse() {
    require_root();
    if !has("pids") {
        return;
    }
    let n = name("stale");
    let first = Cgroup::create(&n, &Limits { pids_limit: Some(10), ..Default::default() }, None).unwrap();
    let cg = first.cgroup.unwrap();
    // A process of the "old run", frozen when there is a freezer, and the owner gone
    // without removing anything.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(std::process::Command::new("sleep").arg("1000").spawn().unwrap());
    let pid = child.0.id();
    for f in cg.procs_files().unwrap() {
        std::io::Write::write_all(&mut &f, pid.to_string().as_bytes()).unwrap();
    }
    let _ = cg.freeze();
    let dirs = cg.keep();
    let again = Cgroup::create(&n, &Limits::default(), None).unwrap().cgroup.unwrap();
    assert_eq!(again.paths(), dirs);
    assert!(again.procs().is_empty(), "the old process is gone");
    assert_ne!(again.frozen(), Some(true));
    let st = child.0.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    drop(again);
    no_cgroup_left(&n);
}
