//! `rbuild ps`, `logs`, `inspect`, `top` and `rename` end to end, through the rbuild binary.
//!
//! Most tests make their container records with the store API (`Containers::create` and
//! `Container::update`, as `rbuild create` and the monitor do), with a real process of the
//! test's own as the "monitor" (so the liveness check sees it alive) and a json-file log
//! written as the monitor writes it. Every process a test starts is killed by a guard.

mod common;

use common::Env;
use rbuild_runtime::container::mounts::MountType;
use rbuild_runtime::container::{Config, Container, Containers, ResolvedMount, State, Status};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills (and reaps) a child on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Kill {
    Kill(Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap())
}

fn rfc3339(ago_secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(ago_secs)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn text(o: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `rbuild ARGS`, which must succeed; its stdout.
fn ok(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    assert!(o.status.success(), "rbuild {args:?}: {:?}", text(&o));
    text(&o).0
}

/// `rbuild ARGS`, which must fail with exit code `code`; its stderr.
fn fails(e: &Env, args: &[&str], code: i32) -> String {
    let o = e.rb(args);
    assert_eq!(o.status.code(), Some(code), "rbuild {args:?} should fail: {:?}", text(&o));
    text(&o).1
}

/// A record as `rbuild create` makes it: `name`, created `ago` seconds ago, running `argv`.
fn record(e: &Env, name: &str, ago: i64, argv: &[&str], labels: &[(&str, &str)]) -> Container {
    let mut cfg = Config {
        id: rbuild_runtime::container::new_id(),
        name: name.into(),
        created: rfc3339(ago),
        image: "busybox:latest".into(),
        image_id: format!("sha256:{}", "ab".repeat(32)),
        path: argv[0].into(),
        args: argv[1..].iter().map(|s| s.to_string()).collect(),
        cmd: argv.iter().map(|s| s.to_string()).collect(),
        hostname: "h".into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    cfg.snapshot = format!("container-{}", cfg.id);
    Containers::open(&e.root()).create(&mut cfg).unwrap()
}

/// Mark `c` running, owned by `monitor` (a live process), its pid 1 `pid`.
fn set_running(c: &Container, monitor: u32, pid: u32, started_ago: i64) {
    let start = rbuild_runtime::container::process_start_time(monitor as i32).unwrap();
    c.update(|st: &mut State| {
        st.status = Status::Running;
        st.monitor_pid = monitor as i32;
        st.monitor_start = start;
        st.pid = pid as i32;
        st.started_at = Some(rfc3339(started_ago));
        Ok(())
    })
    .unwrap();
}

fn set_exited(c: &Container, code: i32, finished_ago: i64) {
    c.update(|st: &mut State| {
        st.status = Status::Exited;
        st.exit_code = code;
        st.pid = 0;
        st.monitor_pid = 0;
        st.started_at = Some(rfc3339(finished_ago + 5));
        st.finished_at = Some(rfc3339(finished_ago));
        Ok(())
    })
    .unwrap();
}

/// Append log lines as the monitor writes them.
fn log(c: &Container, lines: &[(&str, &str, i64)]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(c.log_path()).unwrap();
    for (stream, text, ago) in lines {
        let l = serde_json::json!({"log": text, "stream": stream, "time": rfc3339(*ago)});
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn ps_lists_filters_and_formats_like_docker() {
    let e = Env::bare();
    let mon = sleeper();
    let web = record(&e, "web", 30, &["httpd", "-f", "-p", "8080"], &[("tier", "front")]);
    set_running(&web, mon.0.id(), mon.0.id(), 20);
    let job = record(&e, "job", 200, &["sh", "-c", "echo a long command line; exit 3"], &[("tier", "batch")]);
    set_exited(&job, 3, 180);
    let fresh = record(&e, "fresh", 5, &["true"], &[]);

    // Running only by default, in docker's columns.
    let out = ok(&e, &["ps"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for col in ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
        assert!(lines[0].contains(col), "{out}");
    }
    assert!(lines[1].starts_with(&web.id[..12]), "{out}");
    assert!(lines[1].contains("\"httpd -f -p 8080\""), "{out}");
    assert!(lines[1].contains("Up 2"), "Up 20 seconds or so: {out}");
    assert!(lines[1].contains("seconds ago"), "{out}");
    assert!(lines[1].ends_with("web"), "{out}");

    // -a: every state, newest first.
    let out = ok(&e, &["ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.State}}"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "fresh|Created|created");
    assert!(lines[1].starts_with("web|Up ") && lines[1].ends_with("|running"), "{out}");
    assert_eq!(lines[2], "job|Exited (3) 3 minutes ago|exited");

    // The COMMAND column is cut to 20 characters unless --no-trunc.
    let out = ok(&e, &["ps", "-a", "--filter", "name=job", "--format", "{{.Command}}"]);
    assert_eq!(out, "\"sh -c 'echo a long …\"\n");
    let out = ok(&e, &["ps", "-a", "--no-trunc", "--filter", "name=job", "--format", "{{.ID}} {{.Command}}"]);
    assert_eq!(out, format!("{} \"sh -c 'echo a long command line; exit 3'\"\n", job.id));

    // -q, -n, -l.
    assert_eq!(ok(&e, &["ps", "-q"]), format!("{}\n", &web.id[..12]));
    assert_eq!(ok(&e, &["ps", "-aq", "--no-trunc"]).lines().count(), 3);
    assert_eq!(ok(&e, &["ps", "-l", "-q"]), format!("{}\n", &fresh.id[..12]));
    assert_eq!(ok(&e, &["ps", "-n", "2", "--format", "{{.Names}}"]), "fresh\nweb\n");

    // Filters: one key's values are alternatives, keys must all match.
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        ok(&e, &a).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&["--filter", "status=exited"]), ["job"]);
    assert_eq!(names(&["-f", "status=exited", "-f", "status=created"]), ["fresh", "job"]);
    assert_eq!(names(&["-a", "--filter", "exited=3"]), ["job"]);
    assert!(names(&["-a", "--filter", "exited=0"]).is_empty());
    assert_eq!(names(&["-a", "--filter", "label=tier"]), ["web", "job"]);
    assert_eq!(names(&["-a", "--filter", "label=tier=batch"]), ["job"]);
    assert_eq!(names(&["-a", "--filter", "name=^we"]), ["web"]);
    assert_eq!(names(&["-a", "--filter", &format!("id={}", &job.id[..8])]), ["job"]);
    assert_eq!(names(&["-a", "--filter", "before=web"]), ["job"]);
    assert_eq!(names(&["-a", "--filter", "since=web"]), ["fresh"]);
    assert_eq!(names(&["-a", "--filter", "ancestor=busybox"]).len(), 3);
    assert!(names(&["-a", "--filter", "ancestor=alpine"]).is_empty());
    assert_eq!(names(&["-a", "--filter", "status=running", "--filter", "label=tier=front"]), ["web"]);

    // Labels, .Label, a table of one's own, json.
    assert_eq!(ok(&e, &["ps", "--format", "{{.Labels}} {{.Label \"tier\"}}"]), "tier=front front\n");
    let out = ok(&e, &["ps", "-a", "--format", "table {{.Names}}\\t{{.State}}"]);
    assert_eq!(out.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["NAMES", "STATE"]);
    assert_eq!(out.lines().count(), 4);
    let out = ok(&e, &["ps", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Names"], "web");
    assert_eq!(v["ID"], &web.id[..12]);
    assert_eq!(v["State"], "running");
    assert_eq!(v["Image"], "busybox:latest");
    let out = ok(&e, &["ps", "--format", "{{json .Names}}"]);
    assert_eq!(out, "\"web\"\n");
}

#[test]
fn ps_finds_out_a_dead_monitor_and_reports_bad_input() {
    let e = Env::bare();
    // A monitor that is gone: the record says running, the truth is it died with it.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let c = record(&e, "orphan", 10, &["sleep", "1000"], &[]);
    c.update(|st: &mut State| {
        st.status = Status::Running;
        st.monitor_pid = dead_pid as i32;
        st.monitor_start = 1;
        st.pid = dead_pid as i32;
        st.started_at = Some(rfc3339(9));
        Ok(())
    })
    .unwrap();
    assert_eq!(ok(&e, &["ps", "-q"]), "", "a container whose monitor died is not running");
    let out = ok(&e, &["ps", "-a", "--format", "{{.Status}}"]);
    assert!(out.starts_with("Exited (137) "), "{out}");
    let out =
        ok(&e, &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}|{{.State.Error}}", "orphan"]);
    assert!(out.starts_with("exited 137 0|"), "{out}");
    assert!(out.contains("monitor"), "the error says why: {out}");

    for (args, want) in [
        (vec!["ps", "--filter", "colour=red"], "invalid filter \"colour\""),
        (vec!["ps", "--filter", "status=asleep"], "invalid status \"asleep\""),
        (vec!["ps", "--filter", "statusexited"], "expected KEY=VALUE"),
        (vec!["ps", "--format", "{{.Nope}}"], "can't evaluate field Nope"),
        (vec!["ps", "--format", "{{.ID"], "unclosed action"),
        (vec!["ps", "--filter", "before=nosuch"], "No such container: nosuch"),
    ] {
        let err = fails(&e, &args, 1);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn ps_lists_a_hundred_containers() {
    let e = Env::bare();
    for i in 0..100 {
        let c = record(&e, &format!("c{i:03}"), 1000 - i, &["true"], &[]);
        if i % 2 == 0 {
            set_exited(&c, i as i32 % 7, 100);
        }
    }
    let out = ok(&e, &["ps", "-a"]);
    assert_eq!(out.lines().count(), 101);
    let names = ok(&e, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.lines().next(), Some("c099"), "newest first");
    assert_eq!(names.lines().last(), Some("c000"));
    assert_eq!(ok(&e, &["ps", "-a", "-q", "--filter", "status=created"]).lines().count(), 50);
    assert_eq!(ok(&e, &["ps", "-aq", "--filter", "exited=0"]).lines().count(), 8);
}

#[test]
fn logs_prints_streams_tails_times_and_follows_until_the_container_stops() {
    let e = Env::bare();
    let c = record(&e, "talker", 100, &["sh"], &[]);
    set_exited(&c, 0, 1);
    log(&c, &[("stdout", "one\n", 90), ("stderr", "oops\n", 80), ("stdout", "two\n", 30), ("stdout", "three\n", 5)]);

    let o = e.rb(&["logs", "talker"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(text(&o), ("one\ntwo\nthree\n".to_string(), "oops\n".to_string()));
    assert_eq!(ok(&e, &["logs", "--tail", "2", "talker"]), "two\nthree\n");
    assert_eq!(ok(&e, &["logs", "-n", "1", &c.id[..10]]), "three\n");
    assert_eq!(ok(&e, &["logs", "--since", "1m", "talker"]), "two\nthree\n");
    assert_eq!(ok(&e, &["logs", "--until", "1m", "talker"]), "one\n");
    assert_eq!(ok(&e, &["logs", "--since", "85s", "--until", "10s", "talker"]), "two\n");
    let since = (chrono::Utc::now() - chrono::Duration::seconds(60)).timestamp().to_string();
    assert_eq!(ok(&e, &["logs", "--since", &since, "talker"]), "two\nthree\n");
    let out = ok(&e, &["logs", "-t", "--tail", "1", "talker"]);
    let (stamp, line) = out.split_once(' ').unwrap();
    assert_eq!(line, "three\n");
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{stamp}");
    assert_eq!(stamp.len(), "2026-12-02T13:45:25.123456789Z".len(), "nine-digit nanoseconds: {stamp}");

    // Bad input.
    assert!(fails(&e, &["logs", "--since", "yesterday", "talker"], 1).contains("--since"));
    assert!(fails(&e, &["logs", "--tail", "some", "talker"], 1).contains("--tail"));
    assert!(fails(&e, &["logs", "nosuch"], 1).contains("No such container: nosuch"));

    // -f on a running container: prints what is there, then what comes, and ends with the
    // container.
    let mon = sleeper();
    let live = record(&e, "live", 10, &["sh"], &[]);
    set_running(&live, mon.0.id(), mon.0.id(), 9);
    log(&live, &[("stdout", "before\n", 5)]);
    let mut child = Kill(
        Command::new(common::RBUILD)
            .arg("--root")
            .arg(e.root())
            .args(["logs", "-f", "live"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("logs -f printed a line");
    assert_eq!(next(), "before");
    log(&live, &[("stdout", "during\n", 0)]);
    assert_eq!(next(), "during");
    // The container writes its last line and stops.
    log(&live, &[("stdout", "last\n", 0)]);
    set_exited(&live, 0, 0);
    assert_eq!(next(), "last");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "logs -f did not end with the container");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}

#[test]
fn inspect_shows_containers_first_then_images() {
    let e = Env::new();
    let c = record(&e, "web", 10, &["httpd", "-f"], &[("a", "1")]);
    c.update(|st: &mut State| {
        st.status = Status::Exited;
        st.exit_code = 137;
        st.oom_killed = true;
        st.started_at = Some(rfc3339(9));
        st.finished_at = Some(rfc3339(1));
        Ok(())
    })
    .unwrap();
    // Limits and mounts as create records them.
    {
        let l = c.lock().unwrap();
        let mut cfg = l.config().unwrap();
        cfg.limits.memory = Some(16 << 20);
        cfg.limits.pids_limit = Some(64);
        cfg.mounts.push(ResolvedMount {
            kind: MountType::Volume,
            name: Some("data".into()),
            source: e.root().join("volumes/data/_data"),
            destination: "/data".into(),
            readonly: false,
            anonymous: false,
            nocopy: false,
            tmpfs_size: None,
        });
        l.write_config(&cfg).unwrap();
    }
    let out = ok(&e, &["inspect", "web"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let v = &v[0];
    assert_eq!(v["Id"], c.id);
    assert_eq!(v["Name"], "/web");
    assert_eq!(v["Path"], "httpd");
    assert_eq!(v["Args"], serde_json::json!(["-f"]));
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["State"]["OOMKilled"], true);
    assert_eq!(v["HostConfig"]["Memory"], 16 << 20);
    assert_eq!(v["HostConfig"]["PidsLimit"], 64);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(v["Config"]["Labels"]["a"], "1");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["httpd", "-f"]));
    assert_eq!(v["Mounts"][0]["Source"], e.root().join("volumes/data/_data").display().to_string());
    assert_eq!(v["LogPath"], c.log_path().display().to_string());

    // Templates: Go's printing, functions, range.
    assert_eq!(
        ok(&e, &["inspect", "-f", "{{.State.Status}} {{.State.OOMKilled}} {{.Config.Cmd}}", "web"]),
        "exited true [httpd -f]\n"
    );
    assert_eq!(
        ok(&e, &["inspect", "--format", "{{json .HostConfig.RestartPolicy}}", &c.id[..12]]),
        "{\"MaximumRetryCount\":0,\"Name\":\"no\"}\n"
    );
    assert_eq!(
        ok(&e, &["inspect", "-f", "{{range .Mounts}}{{.Name}}->{{.Destination}}{{end}}", "web"]),
        "data->/data\n"
    );
    assert_eq!(ok(&e, &["inspect", "-f", "{{.Name}}", "/web"]), "/web\n");

    // A name that is no container is an image; --type picks.
    assert_eq!(ok(&e, &["inspect", "-f", "{{.Os}}", "busybox"]), "linux\n");
    assert_eq!(ok(&e, &["inspect", "--type", "image", "-f", "{{.Os}}", "busybox"]), "linux\n");
    let err = fails(&e, &["inspect", "--type", "container", "busybox"], 1);
    assert!(err.contains("No such container: busybox"), "{err}");
    let err = fails(&e, &["inspect", "--type", "image", "web"], 1);
    assert!(err.contains("not found"), "{err}");
    let err = fails(&e, &["inspect", "nothing-here"], 1);
    assert!(err.contains("No such object: nothing-here"), "{err}");
    // Several: what is found is printed, what is not is named, exit 1.
    let o = e.rb(&["inspect", "-f", "{{.Name}}", "web", "nothing-here"]);
    assert_eq!(o.status.code(), Some(1));
    let (out, err) = text(&o);
    assert_eq!(out, "/web\n");
    assert!(err.contains("nothing-here"), "{err}");
    let err = fails(&e, &["inspect", "-f", "{{.Nope}}", "web"], 1);
    assert!(err.contains("can't evaluate field Nope"), "{err}");
}

#[test]
fn rename_moves_the_name() {
    let e = Env::bare();
    let a = record(&e, "first", 10, &["true"], &[]);
    let _b = record(&e, "taken", 5, &["true"], &[]);
    ok(&e, &["rename", "first", "second"]);
    assert_eq!(ok(&e, &["inspect", "-f", "{{.Name}}", &a.id]), "/second\n");
    assert_eq!(ok(&e, &["ps", "-a", "--filter", &format!("id={}", a.id), "--format", "{{.Names}}"]), "second\n");
    assert!(fails(&e, &["inspect", "--type", "container", "first"], 1).contains("No such container"));
    // The old name is free again.
    let _c = record(&e, "first", 1, &["true"], &[]);
    let err = fails(&e, &["rename", "second", "taken"], 1);
    assert!(err.contains("already in use"), "{err}");
    let err = fails(&e, &["rename", "second", "second"], 1);
    assert!(err.contains("same name"), "{err}");
    let err = fails(&e, &["rename", "second", "bad/name"], 1);
    assert!(err.contains("Invalid container name"), "{err}");
    assert!(fails(&e, &["rename", "nosuch", "x1"], 1).contains("No such container: nosuch"));
    assert_eq!(ok(&e, &["inspect", "-f", "{{.Name}}", &a.id]), "/second\n", "a refused rename changes nothing");
}

/// The pid of `unshare`'s forked child: pid 1 of the new pid namespace.
fn child_of(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(k) = kids.split_whitespace().next() {
            return k.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "unshare did not fork its child");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn top_shows_the_processes_of_the_containers_pid_namespace() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root (a new pid namespace)");
    let e = Env::bare();
    let ns = Kill(
        Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "sh", "-c", "sleep 1000 & exec sleep 999"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid1 = child_of(ns.0.id());
    let c = record(&e, "tops", 10, &["sh"], &[]);
    set_running(&c, ns.0.id(), pid1, 5);
    // Wait until pid 1 has exec'd and its background child exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = ok(&e, &["top", "tops"]);
        if out.contains("sleep 1000") && out.contains("sleep 999") {
            break out;
        }
        assert!(Instant::now() < deadline, "top never showed both sleeps: {out}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert_eq!(lines.len(), 3, "only the container's processes: {out}");
    assert!(lines.iter().any(|l| l.split_whitespace().nth(1) == Some(&pid1.to_string())), "{out}");
    assert!(!out.contains("cargo") && !out.contains("containers_query"), "{out}");
    // ps options pass through; they must keep a PID column.
    let out = ok(&e, &["top", "tops", "-o", "pid,comm"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(fails(&e, &["top", "tops", "-o", "comm"], 1).contains("PID"));
    // Not running: an error.
    set_exited(&c, 0, 0);
    assert!(fails(&e, &["top", "tops"], 1).contains("is not running"));
}

/// Removes a container on drop (`rm -f`), and kills its monitor by pid if it outlived that.
struct Ctr<'a> {
    env: &'a Env,
    name: &'static str,
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        let monitor = Containers::open(&self.env.root())
            .resolve(self.name)
            .and_then(|c| c.state())
            .map(|s| (s.monitor_pid, s.monitor_start))
            .unwrap_or((0, 0));
        let _ = self.env.rb(&["rm", "-f", self.name]);
        if monitor.0 > 0 && rbuild_runtime::container::process_start_time(monitor.0) == Some(monitor.1) {
            // SAFETY: kill(2) on a pid we checked is still the monitor we started.
            unsafe { libc::kill(monitor.0, libc::SIGKILL) };
        }
    }
}

/// Poll `rbuild ARGS` until its stdout satisfies `done` (20 s at most).
fn poll(e: &Env, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = e.rb(args);
        let out = text(&o).0;
        if o.status.success() && done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "rbuild {args:?} never got there; last: {:?}", text(&o));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_detached_container_is_listed_logged_inspected_and_followed_until_it_stops() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root (CI runs as root)");
    let e = Env::new();
    let script = "printf 12345 > /payload; echo hello; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done";
    let o = e.rb(&["run", "-d", "--name", "web", "--label", "app=demo", "busybox", "sh", "-c", script]);
    let _guard = Ctr { env: &e, name: "web" };
    assert!(o.status.success(), "run -d: {:?}", text(&o));
    let id = text(&o).0.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the ID: {id}");

    // Its output reaches the log; ps shows it up.
    poll(&e, &["logs", "web"], |out| out.contains("tick 2"));
    let o = e.rb(&["logs", "web"]);
    let (out, err) = text(&o);
    assert!(out.starts_with("hello\ntick 1\n"), "{out}");
    assert_eq!(err, "oops\n");
    let out = ok(&e, &["ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.Labels}}|{{.Status}}"]);
    let (fields, status) = out.trim().split_once('|').unwrap();
    assert_eq!(fields, format!("{} web busybox running app=demo", &id[..12]));
    assert!(status.starts_with("Up "), "{status}");
    let out = ok(&e, &["container", "ls", "-q", "--no-trunc"]);
    assert_eq!(out.trim(), id, "container ls is ps");

    // inspect: running, with the host pid of its pid 1, which top lists.
    let v: serde_json::Value = serde_json::from_str(&ok(&e, &["inspect", "web"])).unwrap();
    assert_eq!(v[0]["State"]["Running"], true);
    assert_eq!(v[0]["Config"]["Labels"]["app"], "demo");
    let pid = v[0]["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists(), "{pid}");
    let top = ok(&e, &["top", "web"]);
    assert!(top.lines().any(|l| l.split_whitespace().nth(1) == Some(&pid.to_string())), "{top}");
    assert!(top.contains("sh -c printf 12345"), "{top}");

    // logs -f follows and ends when the container stops.
    let mut follow = Kill(
        Command::new(common::RBUILD)
            .arg("--root")
            .arg(e.root())
            .args(["logs", "-f", "--tail", "1", "web"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = follow.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    let first: u64 = rx.recv_timeout(Duration::from_secs(20)).unwrap().strip_prefix("tick ").unwrap().parse().unwrap();
    // New lines keep coming while it runs.
    let later = loop {
        let l = rx.recv_timeout(Duration::from_secs(20)).expect("logs -f follows");
        let n: u64 = l.strip_prefix("tick ").unwrap().parse().unwrap();
        if n >= first + 3 {
            break n;
        }
    };
    assert!(later > first);
    assert!(ok(&e, &["stop", "-t", "5", "web"]).contains("web"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = follow.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "logs -f did not end when the container stopped");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());

    // Stopped: ps shows the exit code only with -a, inspect agrees, top refuses.
    assert_eq!(ok(&e, &["ps", "-q"]), "");
    let out = ok(&e, &["ps", "-a", "--format", "{{.Status}}"]);
    let code = ok(&e, &["inspect", "-f", "{{.State.ExitCode}}", "web"]);
    assert!(out.starts_with(&format!("Exited ({}) ", code.trim())), "{out} vs {code}");
    assert_eq!(ok(&e, &["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", "web"]), "false 0\n");
    assert!(fails(&e, &["top", "web"], 1).contains("is not running"));
    // What it wrote stays readable.
    assert!(ok(&e, &["logs", "--tail", "2", "web"]).lines().all(|l| l.starts_with("tick ")));
    // Sizes: the 5 bytes it wrote to its writable layer, and the image beneath.
    let out = ok(&e, &["ps", "-a", "-s", "--format", "{{.Size}}"]);
    assert!(out.starts_with("5B (virtual ") && !out.starts_with("5B (virtual 5B)"), "{out}");
    assert_eq!(ok(&e, &["inspect", "-s", "-f", "{{.SizeRw}}", "web"]), "5\n");
}

#[path = "common/test_user.rs"]
mod test_user;

#[test]
fn rootless_ps_logs_inspect_top_of_a_detached_container() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root to set up its unprivileged user (CI runs as root)");
    let (user, gid) = test_user::ensure();
    let e = Env::bare();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(e.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = e.busybox_tar();
    std::fs::create_dir_all(e.root()).unwrap();
    std::os::unix::fs::chown(e.root(), Some(test_user::UID), Some(gid)).unwrap();
    let rb = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", &user, "--", common::RBUILD, "--root"])
            .arg(e.root())
            .args(args)
            .env("HOME", e.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let o = rb(args);
        assert!(o.status.success(), "rootless rbuild {args:?}: {:?}", text(&o));
        text(&o).0
    };
    ok(&["import", tar.to_str().unwrap(), "bb"]);
    let id = ok(&["run", "-d", "--name", "web", "bb", "sh", "-c", "echo hi; while :; do sleep 0.05; done"]);
    // Removed (as the user) on the way out; the monitor killed by pid if it outlived that.
    struct Rm<'a>(&'a dyn Fn(&[&str]) -> std::process::Output, std::path::PathBuf);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            let monitor = Containers::open(&self.1).resolve("web").and_then(|c| c.state()).ok();
            let _ = (self.0)(&["rm", "-f", "web"]);
            if let Some(st) = monitor.filter(|s| s.monitor_pid > 0) {
                if rbuild_runtime::container::process_start_time(st.monitor_pid) == Some(st.monitor_start) {
                    // SAFETY: kill(2) on the pid we checked is still that monitor.
                    unsafe { libc::kill(st.monitor_pid, libc::SIGKILL) };
                }
            }
        }
    }
    let _rm = Rm(&rb, e.root());
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok(&["logs", "web"]) != "hi\n" {
        assert!(Instant::now() < deadline, "the log never said hi");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ok(&["ps", "-q", "--no-trunc"]).trim(), id.trim());
    let pid = ok(&["inspect", "-f", "{{.State.Pid}}", "web"]);
    let top = ok(&["top", "web"]);
    assert!(top.lines().any(|l| l.split_whitespace().nth(1) == Some(pid.trim())), "{top}");
    assert!(top.contains("sh -c echo hi"), "{top}");
    ok(&["stop", "-t", "5", "web"]);
    assert!(ok(&["ps", "-a", "--format", "{{.Status}}"]).starts_with("Exited ("));
    ok(&["rm", "web"]);
    assert_eq!(ok(&["ps", "-aq"]), "");
}
