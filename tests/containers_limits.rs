//! Resource limits through the rbuild binary on the busybox base: `run --memory 16m` of a
//! memory hog is OOM-killed (exit 137), a fork bomb under `--pids-limit 64` stays
//! contained, `--ulimit` reaches the command, bad limits are clear errors. Needs root (CI
//! runs as root): cgroups are made beneath the test's own.

mod common;
#[path = "common/test_user.rs"]
mod test_user;

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

/// `rbuild rm -f` of a container when dropped.
struct Removed<'a>(&'a Env, String);

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        let _ = self.0.rb(&["rm", "-f", &self.1]);
    }
}

fn run_d(e: &Env, args: &[&str]) -> String {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    let out = e.rb(&a);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "run -d {args:?}: {stderr}");
    let id = stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{stdout}");
    id
}

fn state(e: &Env, id: &str) -> serde_json::Value {
    let p = e.root().join("containers").join(id).join("state.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

#[test]
fn detached_oom_is_recorded_as_oom_killed() {
    require_root();
    let e = Env::new();
    let id = run_d(&e, &["--name", "hog", "--memory", "16m", "busybox", "sh", "-c", HOG]);
    let _rm = Removed(&e, id.clone());
    let out = e.rb(&["wait", "hog"]);
    assert_eq!(text(&out).0.trim(), "137", "{}", text(&out).1);
    let st = state(&e, &id);
    assert_eq!((st["exit_code"].as_i64(), st["oom_killed"].as_bool()), (Some(137), Some(true)), "{st}");
    assert_eq!(st["status"], "exited");
}

#[test]
fn stats_no_stream_shows_the_limit_and_update_changes_it() {
    require_root();
    let e = Env::new();
    let id = run_d(&e, &["--name", "lim", "--memory", "64m", "--pids-limit", "50", "busybox", "sleep", "1000"]);
    let _rm = Removed(&e, id.clone());
    let out = e.rb(&["stats", "--no-stream", "lim"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID") && lines[0].contains("MEM USAGE / LIMIT"), "{stdout}");
    assert!(lines[1].starts_with(&id[..12]) && lines[1].contains(" / 64MiB"), "{stdout}");
    let out = e.rb(&["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "lim"]);
    let (stdout, _) = text(&out);
    let f: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!((f[0], f[2], f[3]), ("lim", "/", "64MiB"), "{stdout}");
    // update: into the running cgroup and the configuration.
    let out = e.rb(&["update", "--memory", "128m", "--pids-limit", "-1", "lim"]);
    assert_eq!(text(&out).0, "lim\n", "{}", text(&out).1);
    let out = e.rb(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "lim"]);
    assert!(text(&out).0.trim().ends_with("/ 128MiB"), "{}", text(&out).0);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.root().join("containers").join(&id).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["limits"]["memory"], 128u64 << 20, "{cfg}");
    assert!(cfg["limits"].get("pids_limit").is_none(), "{cfg}");
    let out = e.rb(&["update", "lim"]);
    assert!(!out.status.success() && text(&out).1.contains("You must provide one or more flags"));
    let out = e.rb(&["update", "--memory", "1m", "lim"]);
    assert!(!out.status.success() && text(&out).1.contains("Minimum memory limit"), "{}", text(&out).1);
}

/// The length of a container's json-file log.
fn log_len(e: &Env, id: &str) -> u64 {
    std::fs::metadata(e.root().join("containers").join(id).join(format!("{id}-json.log"))).map(|m| m.len()).unwrap_or(0)
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "waited 20 s for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn pause_freezes_a_counter_and_unpause_resumes_it() {
    require_root();
    let e = Env::new();
    let script = "i=0; while :; do i=$((i+1)); echo $i; usleep 10000; done";
    let id = run_d(&e, &["--name", "counter", "busybox", "sh", "-c", script]);
    let _rm = Removed(&e, id.clone());
    wait_until("the counter", || log_len(&e, &id) > 100);
    let out = e.rb(&["pause", "counter"]);
    assert_eq!(text(&out).0, "counter\n", "{}", text(&out).1);
    assert_eq!(state(&e, &id)["status"], "paused");
    // Frozen: the log stops growing (what was in flight is written first).
    let mut last = log_len(&e, &id);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = log_len(&e, &id);
        if now == last {
            break;
        }
        last = now;
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(log_len(&e, &id), last, "a paused counter must not count");
    let out = e.rb(&["pause", "counter"]);
    assert!(text(&out).1.contains("is already paused"), "{}", text(&out).1);
    let out = e.rb(&["unpause", "counter"]);
    assert_eq!(text(&out).0, "counter\n", "{}", text(&out).1);
    assert_eq!(state(&e, &id)["status"], "running");
    wait_until("the counter to go on", || log_len(&e, &id) > last);
    let out = e.rb(&["unpause", "counter"]);
    assert!(text(&out).1.contains("is not paused"), "{}", text(&out).1);
    // A paused container still stops (thawed once the signal is sent), and pause of a
    // stopped one is refused.
    assert!(e.rb(&["pause", "counter"]).status.success());
    let out = e.rb(&["stop", "-t", "1", "counter"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(state(&e, &id)["status"], "exited");
    let out = e.rb(&["pause", "counter"]);
    assert!(text(&out).1.contains("is not running"), "{}", text(&out).1);
    let out = e.rb(&["rm", "counter"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(cgroup_gone(&id), "the container's cgroup goes with it");
}

fn cgroup_gone(id: &str) -> bool {
    !our_cgroups().iter().any(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == format!("rbuild-{id}")))
}

/// `rbuild --root <root> args…` as the unprivileged test user.
fn rb_as(user: &str, root: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("runuser")
        .args(["-u", user, "--", common::RBUILD, "--root"])
        .arg(root)
        .args(args)
        .env("HOME", root.parent().unwrap())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn rootless_limits_without_delegation_are_one_warning() {
    require_root();
    let (user, gid) = test_user::ensure();
    let e = Env::bare();
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = d.path().join("rootfs.tar");
    std::fs::copy(e.busybox_tar(), &tar).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let root = d.path().join("store");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(test_user::UID), Some(gid)).unwrap();
    let out = rb_as(&user, &root, &["import", tar.to_str().unwrap(), "bb"]);
    assert!(out.status.success(), "{}", text(&out).1);
    // The v1 hierarchies belong to root: the limits cannot be applied, and it says so once.
    let out = rb_as(&user, &root, &["run", "--rm", "--memory", "16m", "--pids-limit", "10", "bb", "echo", "hi"]);
    let (stdout, stderr) = text(&out);
    assert_eq!((out.status.code(), stdout.as_str()), (Some(0), "hi\n"), "{stderr}");
    assert_eq!(stderr.matches("cannot all be applied").count(), 1, "{stderr}");
    assert!(stderr.contains("rootless") && stderr.contains("--memory") && stderr.contains("--pids-limit"), "{stderr}");
    // No limits asked: not a word. Ulimits need no cgroup.
    let out = rb_as(&user, &root, &["run", "--rm", "--ulimit", "nofile=100:200", "bb", "sh", "-c", "ulimit -n"]);
    let (stdout, stderr) = text(&out);
    assert_eq!((out.status.code(), stdout.as_str(), stderr.as_str()), (Some(0), "100\n", ""));
}
