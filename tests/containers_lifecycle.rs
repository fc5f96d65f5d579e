//! Containers end to end through the rbuild binary: create, run -d (a monitor per
//! container and its json-file log), start, stop, restart, kill, rm, wait, container
//! prune, restart policies, a killed monitor, and the races (two starts, two creates of one
//! name). Needs root (CI runs as root) and busybox-static.

mod common;
#[path = "common/test_user.rs"]
mod test_user;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Run rbuild and insist it worked; its stdout.
fn ok(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    assert_eq!(o.status.code(), Some(0), "rbuild {args:?}: {:?}", text(&o));
    text(&o).0
}

/// Run rbuild and insist it failed; its stderr.
fn fails(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    assert_ne!(o.status.code(), Some(0), "rbuild {args:?} should fail: {:?}", text(&o));
    text(&o).1
}

/// A store with busybox, whose containers' processes are killed when the test ends
/// (whatever happened).
struct Store {
    e: Env,
}

impl Store {
    fn new() -> Store {
        // SAFETY: geteuid has no failure mode.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root (CI runs as root)");
        Store { e: Env::new() }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.e.root().join("containers").join(id)
    }

    fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir(id).join("state.json")).unwrap()).unwrap()
    }

    fn id_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.e.root().join("containers/names").join(name)).unwrap()
    }

    /// Every container record (IDs).
    fn records(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.e.root().join("containers")) else { return Vec::new() };
        rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.len() == 64).collect()
    }

    /// Poll the state of `id` until `f` holds (20 s at most).
    fn until(&self, id: &str, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = self.state(id);
            if f(&st) {
                return st;
            }
            assert!(Instant::now() < deadline, "{what}: state still {st}");
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    /// The log's (stream, text) entries.
    fn log(&self, id: &str) -> Vec<(String, String)> {
        let p = self.dir(id).join(format!("{id}-json.log"));
        let t = std::fs::read_to_string(p).unwrap_or_default();
        t.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert!(v["time"].as_str().unwrap().ends_with('Z'), "{l}");
                (v["stream"].as_str().unwrap().to_string(), v["log"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn until_log(&self, id: &str, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log(id).iter().any(|(_, l)| l == line) {
            assert!(Instant::now() < deadline, "{line:?} never logged: {:?}", self.log(id));
            std::thread::sleep(Duration::from_millis(15));
        }
    }
}

fn pid_alive(pid: i64) -> bool {
    // SAFETY: signal 0 only checks.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

impl Drop for Store {
    fn drop(&mut self) {
        kill_all(&self.e.root());
    }
}

/// Kill every process the containers of the store at `root` have (test cleanup).
fn kill_all(root: &Path) {
    {
        let Ok(rd) = std::fs::read_dir(root.join("containers")) else { return };
        for id in rd.flatten().map(|e| e.path()) {
            let Ok(b) = std::fs::read(id.join("state.json")) else { continue };
            let Ok(st) = serde_json::from_slice::<serde_json::Value>(&b) else { continue };
            for k in ["monitor_pid", "pid", "init_pid"] {
                let pid = st[k].as_i64().unwrap_or(0);
                if pid_alive(pid) {
                    // SAFETY: killing what this test started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        }
    }
}

fn gone(p: &Path) -> bool {
    !p.exists()
}

/// A loop that logs, keeps a mark in its writable layer, and exits 3 on SIGTERM.
const SERVER: &str = "if [ -f /mark ]; then echo again; else echo first > /mark; echo first; fi; \
    echo to-stderr >&2; trap 'echo term; exit 3' TERM; while :; do sleep 0.02; done";

#[test]
fn run_detached_stop_start_kill_wait_rm() {
    let s = Store::new();
    let e = &s.e;
    let out = ok(e, &["run", "-d", "--name", "web", "busybox", "sh", "-c", SERVER]);
    let id = out.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {out:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(s.id_of("web"), id);
    let st = s.until(&id, "pid recorded", |st| st["pid"].as_i64() > Some(0));
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap();
    // state.pid is pid 1 of the container's pid namespace, seen from the host.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap().to_string();
    assert!(nspid.ends_with("\t1"), "{nspid}");
    assert!(pid_alive(st["monitor_pid"].as_i64().unwrap()));
    s.until_log(&id, "first\n");
    s.until_log(&id, "to-stderr\n");
    let log = s.log(&id);
    assert!(log.contains(&("stdout".into(), "first\n".into())), "{log:?}");
    assert!(log.contains(&("stderr".into(), "to-stderr\n".into())), "{log:?}");

    // Running: a second start and a plain rm are refused, saying why.
    let err = fails(e, &["start", "web"]);
    assert!(err.contains("running"), "{err}");
    let err = fails(e, &["rm", "web"]);
    assert!(err.contains("running") && err.contains("force"), "{err}");

    // stop: SIGTERM, the trap's exit code, recorded by the time stop returns.
    assert_eq!(ok(e, &["stop", "web"]), "web\n");
    let st = s.state(&id);
    assert_eq!((st["status"].as_str(), st["exit_code"].as_i64()), (Some("exited"), Some(3)), "{st}");
    assert!(st["finished_at"].as_str().is_some());
    assert!(!pid_alive(pid));
    s.until_log(&id, "term\n");
    // Stopping a stopped container is fine.
    assert_eq!(ok(e, &["stop", &id[..12]]), format!("{}\n", &id[..12]));

    // start brings it back with its writable layer.
    assert_eq!(ok(e, &["start", "web"]), "web\n");
    s.until_log(&id, "again\n");
    assert_eq!(s.state(&id)["status"], "running");

    // restart: stop then start.
    assert_eq!(ok(e, &["restart", "-t", "5", "web"]), "web\n");
    assert_eq!(s.state(&id)["status"], "running");

    // kill (SIGKILL by default) and wait's exit code.
    assert_eq!(ok(e, &["kill", "web"]), "web\n");
    assert_eq!(ok(e, &["wait", "web"]), "137\n");
    let err = fails(e, &["kill", "web"]);
    assert!(err.contains("not running"), "{err}");

    // rm: record, name and writable layer gone.
    assert_eq!(ok(e, &["rm", "web"]), "web\n");
    assert!(gone(&s.dir(&id)));
    assert!(gone(&e.root().join("containers/names/web")));
    let layers = files_under(&e.root().join("snapshots"));
    assert!(layers.iter().all(|p| !p.to_string_lossy().contains(&format!("container-{id}"))), "{layers:?}");
    let err = fails(e, &["rm", "web"]);
    assert!(err.contains("No such container: web"), "{err}");
    // The name is free again.
    ok(e, &["create", "--name", "web", "busybox", "true"]);
}

#[test]
fn stop_kills_what_ignores_the_stop_signal_and_rm_force_kills() {
    let s = Store::new();
    let e = &s.e;
    let id = ok(e, &["run", "-d", "busybox", "sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.02; done"])
        .trim()
        .to_string();
    s.until_log(&id, "up\n");
    assert_eq!(ok(e, &["stop", "-t", "1", &id]).trim(), id);
    assert_eq!(s.state(&id)["exit_code"], 137, "SIGKILL after the timeout");

    // --stop-signal is what stop sends.
    let id2 = ok(
        e,
        &[
            "run",
            "-d",
            "--stop-signal",
            "USR1",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 5' USR1; echo up; while :; do sleep 0.02; done",
        ],
    )
    .trim()
    .to_string();
    s.until_log(&id2, "up\n");
    ok(e, &["stop", &id2]);
    assert_eq!(s.state(&id2)["exit_code"], 5);

    // rm -f of a running container kills it first.
    let id3 = ok(e, &["run", "-d", "busybox", "sleep", "1000"]).trim().to_string();
    let pid = s.until(&id3, "pid", |st| st["pid"].as_i64() > Some(0))["pid"].as_i64().unwrap();
    ok(e, &["rm", "-f", &id3]);
    assert!(gone(&s.dir(&id3)));
    assert!(!pid_alive(pid));
    // rm -f of a missing container is not an error (docker's).
    ok(e, &["rm", "-f", "nonexistent"]);
}

#[test]
fn restart_on_failure_three_times_then_stays_exited() {
    let s = Store::new();
    let e = &s.e;
    let id = ok(e, &["run", "-d", "--restart", "on-failure:3", "busybox", "sh", "-c", "echo run; exit 2"])
        .trim()
        .to_string();
    let st = s.until(&id, "three restarts, then exited", |st| {
        st["status"] == "exited" && st["monitor_pid"] == 0 && st["restart_count"] == 3
    });
    assert_eq!(st["exit_code"], 2);
    let runs = s.log(&id).iter().filter(|(_, l)| l == "run\n").count();
    assert_eq!(runs, 4, "the first run and three restarts");

    // always: restarts until stopped; stop ends it for good.
    let id =
        ok(e, &["run", "-d", "--restart", "always", "busybox", "sh", "-c", "echo tick; exit 0"]).trim().to_string();
    s.until(&id, "restarted", |st| st["restart_count"].as_u64() >= Some(2));
    ok(e, &["stop", &id]);
    let st = s.state(&id);
    assert_eq!(st["status"], "exited", "{st}");
    let n = st["restart_count"].as_u64().unwrap();
    assert_eq!(s.state(&id)["restart_count"].as_u64().unwrap(), n);

    let err = fails(e, &["run", "-d", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(err.contains("--restart") && err.contains("--rm"), "{err}");
    let err = fails(e, &["run", "-d", "--restart", "sometimes", "busybox", "true"]);
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn a_killed_monitor_takes_its_container_down_and_rm_works() {
    let s = Store::new();
    let e = &s.e;
    let id = ok(e, &["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]).trim().to_string();
    let st = s.until(&id, "pid", |st| st["pid"].as_i64() > Some(0));
    let (pid, monitor) = (st["pid"].as_i64().unwrap(), st["monitor_pid"].as_i64().unwrap());
    // SAFETY: killing the monitor this test started.
    unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "the container outlived its monitor");
        std::thread::sleep(Duration::from_millis(15));
    }
    // The next command that looks finds it out.
    assert_eq!(ok(e, &["wait", "orphan"]), "137\n");
    let st = s.state(&id);
    assert_eq!(st["status"], "exited");
    assert!(st["error"].as_str().unwrap().contains("monitor"), "{st}");
    ok(e, &["rm", "orphan"]);
    assert!(gone(&s.dir(&id)));
    // Nothing left: no cgroup, and the monitor's scratch goes with the next sandbox.
    let cg = std::process::Command::new("find")
        .args(["/sys/fs/cgroup", "-maxdepth", "12", "-type", "d", "-name", &format!("rbuild-{id}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cg.stdout), "", "cgroups left");
    ok(e, &["run", "--rm", "busybox", "true"]);
    let tmp: Vec<_> = std::fs::read_dir(e.root().join("tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(tmp.iter().all(|n| !n.to_string_lossy().starts_with("sandbox-")), "{tmp:?}");
    // It can be started again.
    let id = ok(e, &["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]).trim().to_string();
    s.until(&id, "pid", |st| st["pid"].as_i64() > Some(0));
    ok(e, &["rm", "-f", "orphan"]);
}

#[test]
fn two_starts_one_wins_and_two_creates_of_one_name_one_wins() {
    let s = Store::new();
    let e = &s.e;
    let id = ok(e, &["create", "--name", "once", "busybox", "sleep", "1000"]).trim().to_string();
    assert_eq!(s.state(&id)["status"], "created");
    let root = e.root();
    let spawn = |args: &[&str]| {
        std::process::Command::new(RBUILD)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let starts: Vec<_> = (0..2).map(|_| spawn(&["start", "once"])).collect();
    let outs: Vec<Output> = starts.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let wins = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "{:?}", outs.iter().map(text).collect::<Vec<_>>());
    let loser = outs.iter().find(|o| !o.status.success()).unwrap();
    assert!(text(loser).1.contains("running"), "{:?}", text(loser));
    ok(e, &["rm", "-f", "once"]);

    let creates: Vec<_> = (0..3).map(|_| spawn(&["create", "--name", "same", "busybox", "true"])).collect();
    let outs: Vec<Output> = creates.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let wins = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "{:?}", outs.iter().map(text).collect::<Vec<_>>());
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(text(o).1.contains("already in use"), "{:?}", text(o));
    }
    assert_eq!(s.records().len(), 1, "the losers left nothing");
}

#[test]
fn a_create_that_fails_leaves_nothing() {
    let s = Store::new();
    let e = &s.e;
    let nothing = |s: &Store| {
        assert!(s.records().is_empty(), "{:?}", s.records());
        let names = e.root().join("containers/names");
        assert!(!names.exists() || std::fs::read_dir(&names).unwrap().next().is_none());
    };
    let err = fails(e, &["create", "--name", "x1", "--pull", "never", "nosuchimage", "true"]);
    assert!(err.contains("nosuchimage"), "{err}");
    nothing(&s);
    // Fails after the checks that come first: the container it names does not exist.
    let err = fails(e, &["create", "--name", "x1", "--volumes-from", "ghost", "busybox", "true"]);
    assert!(err.contains("ghost"), "{err}");
    nothing(&s);
    let err = fails(e, &["create", "--name", "b@d", "busybox", "true"]);
    assert!(err.contains("invalid container name"), "{err}");
    let err = fails(e, &["create", "--stop-signal", "SIGNOPE", "busybox", "true"]);
    assert!(err.contains("SIGNOPE"), "{err}");
    nothing(&s);
    let err = fails(e, &["start", "ghost"]);
    assert!(err.contains("No such container: ghost"), "{err}");
}

#[test]
fn start_attached_run_rm_detached_and_container_prune() {
    let s = Store::new();
    let e = &s.e;
    // create + start -a: the container's output and exit code.
    let id = ok(e, &["create", "--name", "att", "busybox", "sh", "-c", "echo attached; exit 4"]).trim().to_string();
    let o = e.rb(&["start", "-a", "att"]);
    assert_eq!((o.status.code(), text(&o).0.as_str()), (Some(4), "attached\n"), "{:?}", text(&o));
    assert_eq!(s.state(&id)["exit_code"], 4);

    // run -d --rm: the monitor removes it when it ends.
    let gone_id = ok(e, &["run", "-d", "--rm", "busybox", "true"]).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.dir(&gone_id).exists() {
        assert!(Instant::now() < deadline, "run -d --rm left its record");
        std::thread::sleep(Duration::from_millis(15));
    }

    // container ls/rm/... are the top-level commands; prune removes the stopped ones only.
    let running = ok(e, &["container", "run", "-d", "busybox", "sleep", "1000"]).trim().to_string();
    s.until(&running, "pid", |st| st["pid"].as_i64() > Some(0));
    let stopped = ok(e, &["container", "create", "busybox", "true"]).trim().to_string();
    let out = ok(e, &["container", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(&id) && out.contains(&stopped) && !out.contains(&running), "{out}");
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert_eq!(s.records(), vec![running.clone()]);
    assert_eq!(ok(e, &["container", "rm", "-f", &running[..8]]), format!("{}\n", &running[..8]));
    assert!(s.records().is_empty());
    let err = fails(e, &["container", "frobnicate"]);
    assert!(err.contains("frobnicate"), "{err}");

    // rbuild prune removes stopped containers too (their layers with them).
    let id = ok(e, &["create", "busybox", "true"]).trim().to_string();
    let out = ok(e, &["prune"]);
    assert!(out.contains(&format!("Deleted container: {id}")), "{out}");
    assert!(s.records().is_empty());
    let layers = files_under(&e.root().join("snapshots"));
    assert!(layers.iter().all(|p| !p.to_string_lossy().contains("container-")), "{layers:?}");
}

#[test]
fn run_pulls_a_missing_image_unless_told_not_to() {
    let s = Store::new();
    let e = &s.e;
    let err = fails(e, &["run", "--rm", "--pull", "never", "127.0.0.1:9/nothing", "true"]);
    assert!(err.contains("No such image") && err.contains("--pull never"), "{err}");
    // Missing: said, then pulled (from a registry that is not there: the pull's error).
    let err = fails(e, &["run", "--rm", "127.0.0.1:9/nothing", "true"]);
    assert!(err.contains("Unable to find image '127.0.0.1:9/nothing:latest' locally"), "{err}");
    assert!(err.contains("pulling 127.0.0.1:9/nothing"), "{err}");
    assert!(s.records().is_empty());

    // From a registry: pulled on first use, then found; --pull always pulls anyway.
    let reg = Registry::start(None);
    let name = format!("{}/team/bb:1", reg.host());
    ok(e, &["tag", "busybox", &name]);
    ok(e, &["push", &name]);
    let fresh = Env::bare();
    let o = fresh.rb(&["run", "--rm", &name, "echo", "pulled"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert_eq!(text(&o).0, "pulled\n");
    assert!(text(&o).1.contains(&format!("Unable to find image '{name}' locally")), "{:?}", text(&o));
    let o = fresh.rb(&["run", "--rm", &name, "true"]);
    assert!(!text(&o).1.contains("Unable to find"), "{:?}", text(&o));
    let o = fresh.rb(&["run", "--rm", "--pull", "always", &name, "true"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).1.contains("Image is up to date"), "{:?}", text(&o));
}

#[test]
fn run_dit_keeps_an_interactive_shell_with_a_terminal() {
    let s = Store::new();
    let e = &s.e;
    // -t detached: a terminal whose output is the log's stdout.
    let id = ok(e, &["run", "-dt", "busybox", "sh", "-c", "tty"]).trim().to_string();
    s.until(&id, "exited", |st| st["status"] == "exited");
    assert_eq!(s.log(&id), vec![("stdout".to_string(), "/dev/pts/0\r\n".to_string())]);
    // -i too: stdin stays open, so the shell waits for input instead of ending.
    let id = ok(e, &["run", "-dit", "--name", "shell", "busybox", "sh"]).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.log(&id).iter().any(|(_, l)| l.contains("built-in shell")) {
        assert!(Instant::now() < deadline, "no shell banner: {:?}", s.log(&id));
        std::thread::sleep(Duration::from_millis(15));
    }
    assert_eq!(s.state(&id)["status"], "running");
    assert_eq!(ok(e, &["kill", "shell"]), "shell\n");
    assert_eq!(s.state(&id)["exit_code"], 137);
}

/// Kills the containers of a rootless store when the test ends.
struct KillAll(PathBuf);

impl Drop for KillAll {
    fn drop(&mut self) {
        kill_all(&self.0);
    }
}

#[test]
fn rootless_run_detached_stop_start_rm() {
    // SAFETY: geteuid has no failure mode.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root to set up its unprivileged user");
    let (user, gid) = test_user::ensure();
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = Env { dir: d };
    let tar = e.busybox_tar();
    let root = e.root();
    std::fs::create_dir_all(&root).unwrap();
    for p in [&root, &tar] {
        std::os::unix::fs::chown(p, Some(test_user::UID), Some(gid)).unwrap();
    }
    let _guard = KillAll(root.clone());
    let home = e.dir.path().to_path_buf();
    let rb = |args: &[&str]| -> Output {
        std::process::Command::new("runuser")
            .args(["-u", &user, "--", RBUILD, "--root"])
            .arg(&root)
            .args(args)
            .env("HOME", &home)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| -> String {
        let o = rb(args);
        assert_eq!(o.status.code(), Some(0), "rootless rbuild {args:?}: {:?}", text(&o));
        text(&o).0
    };
    ok(&["import", "--change", "CMD [\"sh\"]", tar.to_str().unwrap(), "bb"]);
    let id = ok(&["run", "-d", "--name", "rl", "bb", "sh", "-c", SERVER]).trim().to_string();
    let s = Store { e };
    s.until_log(&id, "first\n");
    assert_eq!(ok(&["stop", "-t", "5", "rl"]), "rl\n");
    assert_eq!(s.state(&id)["exit_code"], 3);
    // Started again on the same writable layer (its overlay was mounted volatile before).
    assert_eq!(ok(&["start", "rl"]), "rl\n");
    s.until_log(&id, "again\n");
    assert_eq!(ok(&["rm", "-f", "rl"]), "rl\n");
    assert!(gone(&s.dir(&id)));
}

#[test]
fn a_paused_container_stops_and_goes_with_rm_force() {
    let s = Store::new();
    let e = &s.e;
    let id = ok(e, &["run", "-d", "busybox", "sh", "-c", SERVER]).trim().to_string();
    s.until_log(&id, "first\n");
    ok(e, &["pause", &id]);
    assert_eq!(s.state(&id)["status"], "paused");
    // The stop signal reaches it once thawed: the trap's exit code, not SIGKILL's.
    ok(e, &["stop", "-t", "10", &id]);
    let st = s.state(&id);
    assert_eq!((st["status"].as_str(), st["exit_code"].as_i64()), (Some("exited"), Some(3)), "{st}");
    ok(e, &["start", &id]);
    s.until_log(&id, "again\n");
    ok(e, &["pause", &id]);
    let pid = s.state(&id)["pid"].as_i64().unwrap();
    ok(e, &["rm", "-f", &id]);
    assert!(gone(&s.dir(&id)));
    assert!(!pid_alive(pid));
}

/// GET / from 127.0.0.1:`port`: the response, or None while nothing answers.
fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The acceptance, with busybox's own web server: `run -d` of `httpd -f` serves,
/// `ps` lists it up, `exec` sees its files, processes and hostname, `stop` ends it and `ps -a`
/// shows how, `rm` takes it away.
#[test]
fn a_detached_busybox_httpd_serves_until_stopped() {
    let s = Store::new();
    let e = &s.e;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cmd = format!("mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www");
    let id = ok(e, &["run", "-d", "--name", "web", "busybox", "sh", "-c", &cmd]).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        match http_get(port) {
            Some(r) if r.contains("hello-web") => break r,
            r => assert!(Instant::now() < deadline, "httpd never served: {r:?}; log {:?}", s.log(&id)),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(page.starts_with("HTTP/1.") && page.contains(" 200 "), "{page}");
    let ps = ok(e, &["ps"]);
    assert!(ps.lines().any(|l| l.starts_with(&id[..12]) && l.contains("Up ") && l.ends_with("web")), "{ps}");
    assert_eq!(ok(e, &["exec", "web", "cat", "/www/index.html"]), "hello-web\n");
    assert_eq!(ok(e, &["exec", "web", "hostname"]).trim(), &id[..12]);
    let pids = ok(e, &["exec", "web", "pidof", "httpd"]);
    assert!(!pids.trim().is_empty(), "httpd is in the pid namespace exec joins");
    ok(e, &["stop", "-t", "5", "web"]);
    let st = s.until(&id, "exited", |st| st["status"] == "exited");
    assert_eq!(st["exit_code"], 143, "{st}");
    assert!(http_get(port).is_none(), "nothing serves after stop");
    let all = ok(e, &["ps", "-a", "--filter", "name=web"]);
    assert!(all.contains("Exited (143)"), "{all}");
    ok(e, &["rm", "web"]);
    assert!(s.records().is_empty());
}
