//! Interrupting a run (SIGINT, SIGTERM, kill -9 of the parent) leaves no mount and no
//! process behind, and the next sandbox removes the scratch directory a killed one left.
//! Needs root (CI runs as root).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(root: &std::path::Path, forward: bool) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("RBUILD_TEST_PARENT", root).stdout(Stdio::piped()).stderr(Stdio::inherit());
    if forward {
        cmd.env("RBUILD_TEST_FORWARD", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the sandboxed command did not start");
    (child, out)
}

fn sandbox_processes(root: &std::path::Path) -> Vec<String> {
    // Anything still running from this store: the init re-executes this test binary with
    // the spec on a pipe, so look for the sleep and for scratch-dir mounts instead.
    let _ = root;
    let ps = Command::new("pgrep").args(["-x", "sleep", "-a"]).output().unwrap();
    // A duration no other test sleeps for: test binaries run side by side.
    String::from_utf8_lossy(&ps.stdout).lines().filter(|l| l.ends_with("sleep 7223")).map(String::from).collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_clean(root: &std::path::Path, before: &str) {
    wait_until("the sandbox's processes to die", || sandbox_processes(root).is_empty());
    assert_eq!(host_mounts(), before, "a mount outlived the sandbox");
}

fn scratch_dirs(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("sandbox-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn interrupts_leave_nothing_behind() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let before = host_mounts();

    // SIGINT to a build-like parent (no handler): it dies, the sandbox follows.
    let (mut c, _) = start(root, false);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert!(!c.wait().unwrap().success());
    check_clean(root, &before);

    // SIGTERM to an `rbuild run`-like parent: forwarded, the command exits 143, the parent
    // returns normally and removes its scratch directory.
    let (mut c, mut out) = start(root, true);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "exit 143\n");
    assert!(c.wait().unwrap().success());
    check_clean(root, &before);
    // SIGINT too.
    let (mut c, mut out) = start(root, true);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "exit 130\n");
    assert!(c.wait().unwrap().success());
    check_clean(root, &before);
    assert!(scratch_dirs(root).is_empty(), "{:?}", scratch_dirs(root));

    // kill -9 of the parent: the sandbox dies with it; its scratch dir stays until the
    // next sandbox starts.
    let (mut c, _) = start(root, false);
    c.kill().unwrap();
    c.wait().unwrap();
    check_clean(root, &before);
    assert_eq!(scratch_dirs(root).len(), 1, "a kill -9'd parent cannot clean up itself");
    rbuild_runtime::sandbox::Sandbox::new(root).unwrap();
    assert!(scratch_dirs(root).is_empty(), "the next sandbox removes what the killed one left");
    // And `rbuild prune` drops the killed runs' writable snapshots.
    let r = rbuild_runtime::snapshot::prune(
        root,
        rbuild_runtime::sandbox::store_trees(root),
        &["base".to_string()].into_iter().collect(),
    )
    .unwrap();
    assert!(r.removed.iter().all(|k| k.starts_with("run-")) && !r.removed.is_empty(), "{r:?}");
}
