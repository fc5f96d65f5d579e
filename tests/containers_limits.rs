//! Resource limits through the rbuild binary on the busybox base: `run --memory 16m` of a
//! memory hog is OOM-killed (exit 137), a fork bomb under `--pids-limit 64` stays
//! contained, `--ulimit` reaches the command, bad limits are clear errors. Needs root (CI
//! runs as root): cgroups are made beneath the test's own.

mod common;

use common::Env;
use std::path::PathBuf;

fn require_root() {
    // SAFETY: geteuid has no failure mode.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root (CI runs as root)");
}

fn text(o: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// rbuild's cgroups (`rbuild-*`) beneath ours in the memory and pids hierarchies, to see
/// that none is left.
fn our_cgroups() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in rbuild_cgroup_parents() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            out.extend(
                rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("rbuild-")).map(|e| e.path()),
            );
        }
    }
    out.sort();
    out
}

fn rbuild_cgroup_parents() -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut v = Vec::new();
    for l in own.lines() {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
        for c in ["memory", "pids"] {
            if ctrls.split(',').any(|x| x == c) {
                v.push(PathBuf::from(format!("/sys/fs/cgroup/{c}{path}")));
            }
        }
    }
    v
}

const HOG: &str = "awk 'BEGIN { s = \"x\"; while (length(s) < 256 * 1024 * 1024) s = s s; print length(s) }'";

#[test]
fn memory_hog_is_oom_killed_with_137() {
    require_root();
    let e = Env::new();
    let before = our_cgroups();
    let out = e.rb(&["run", "--rm", "--memory", "16m", "busybox", "sh", "-c", HOG]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(137), "stdout {stdout} stderr {stderr}");
    assert!(stdout.is_empty(), "the hog never got to print: {stdout}");
    // The same command with room enough finishes.
    let out =
        e.rb(&["run", "--rm", "-m", "512m", "busybox", "sh", "-c", &HOG.replace("256 * 1024 * 1024", "1024 * 1024")]);
    assert_eq!((out.status.code(), text(&out).0.as_str()), (Some(0), "1048576\n"), "{}", text(&out).1);
    let left: Vec<_> = our_cgroups().into_iter().filter(|c| !before.contains(c)).collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
fn fork_bomb_is_contained_by_pids_limit() {
    require_root();
    let e = Env::new();
    // The bomb in a subshell (which may die of a failed fork; the shell must not), then,
    // with builtins only, a while spent, and the shell is still there to say so.
    let script = "f() { f | f & }; (f) 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo survived";
    let out = e.rb(&["run", "--rm", "--pids-limit", "64", "busybox", "sh", "-c", script]);
    let (stdout, stderr) = text(&out);
    assert_eq!((out.status.code(), stdout.as_str()), (Some(0), "survived\n"), "{stderr}");
    // As many sleeps as the limit lets start: not the 100 asked for.
    let script = "(for i in $(seq 1 100); do sleep 100 & done) 2>/dev/null; set -- /proc/[0-9]*; echo $#";
    let out = e.rb(&["run", "--rm", "--pids-limit", "64", "busybox", "sh", "-c", script]);
    let (stdout, stderr) = text(&out);
    let n: usize = stdout.trim().parse().unwrap_or_else(|_| panic!("stdout {stdout:?} stderr {stderr}"));
    assert!((32..=64).contains(&n), "{n} processes under --pids-limit 64 (100 tried)");
    // The host is unharmed: it can still start a process, and the run is over.
    assert!(std::process::Command::new("true").status().unwrap().success());
}

#[test]
fn ulimit_reaches_the_command() {
    require_root();
    let e = Env::new();
    let out = e.rb(&["run", "--rm", "--ulimit", "nofile=256:512", "busybox", "sh", "-c", "ulimit -Sn; ulimit -Hn"]);
    let (stdout, stderr) = text(&out);
    assert_eq!((out.status.code(), stdout.as_str()), (Some(0), "256\n512\n"), "{stderr}");
}

#[test]
fn bad_limits_are_clear_errors() {
    require_root();
    let e = Env::new();
    for (args, want) in [
        (&["--memory", "16x"][..], "invalid size"),
        (&["--memory", "1m"][..], "Minimum memory limit allowed is 6MB"),
        (&["--memory-swap", "64m"][..], "You should always set the Memory limit when using Memoryswap limit"),
        (&["--ulimit", "nofile=10:5"][..], "soft limit must be less than or equal to hard limit"),
        (&["--ulimit", "bogus=1"][..], "unknown ulimit"),
        (&["--cpus", "100000"][..], "range of CPUs"),
        (&["--pids-limit", "many"][..], "--pids-limit"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "true"]);
        let out = e.rb(&a);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
