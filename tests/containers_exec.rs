//! `rbuild exec`, `cp`, `diff`, `commit` and `export` on containers of the busybox base:
//! exec sees the container's filesystem, pid namespace and hostname; cp in and out, running
//! and stopped, with symlinks pointing out of the container; commit gives an image whose
//! run shows the change. Needs root. Every container a test starts is removed (`rm -f`)
//! when it ends.

mod common;

use common::Env;
use std::time::{Duration, Instant};

/// Removes the named containers (`rm -f`) when dropped.
struct Cleanup<'a>(&'a Env, Vec<&'static str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.rb(&["rm", "-f", n]);
        }
    }
}

fn text(o: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `rbuild ARGS`, which must succeed; its stdout.
fn ok(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "rbuild {args:?}: {err}");
    out
}

/// Poll `exec NAME cat PATH` until it prints `want` (20 s at most).
fn wait_for_file(e: &Env, name: &str, path: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = e.rb(&["exec", name, "cat", path]);
        if o.status.success() && text(&o).0 == want {
            return;
        }
        assert!(Instant::now() < deadline, "{path} in {name} never read {want:?}: {:?}", text(&o));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn require_root() {
    // SAFETY: geteuid has no failure mode.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests need root (CI runs as root)");
}

#[test]
fn exec_sees_the_containers_filesystem_pid_namespace_and_hostname() {
    require_root();
    let e = Env::new();
    let _c = Cleanup(&e, vec!["ex1"]);
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "ex1",
            "--hostname",
            "box",
            "-e",
            "FROM_RUN=1",
            "--memory",
            "64m",
            "busybox:latest",
            "sh",
            "-c",
            "mkdir -p /tmp && echo hi > /made && exec sleep 1000",
        ],
    );
    wait_for_file(&e, "ex1", "/made", "hi\n");
    let out = ok(&e, &["exec", "ex1", "sh", "-c", "hostname; pidof sleep; echo $FROM_RUN"]);
    assert_eq!(out, "box\n2\n1\n", "the container's hostname, its pid namespace (sleep is pid 2), its env");

    let o = e.rb(&["exec", "ex1", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "the command's exit code is exec's");
    let out = ok(&e, &["exec", "-e", "A=b", "-u", "1000", "-w", "/tmp", "ex1", "sh", "-c", "echo $A; id -u; pwd"]);
    assert_eq!(out, "b\n1000\n/tmp\n");
    let o = e.rb(&["exec", "ex1", "no-such-command"]);
    assert_eq!(o.status.code(), Some(126), "docker's code when the command cannot be started");
    assert!(text(&o).1.contains("executable file not found"), "{:?}", text(&o));

    let o = e.rb(&["exec", "-d", "ex1", "sh", "-c", "echo later > /tmp/d"]);
    assert!(o.status.success() && o.stdout.is_empty(), "{:?}", text(&o));
    wait_for_file(&e, "ex1", "/tmp/d", "later\n");

    // It runs in the container's cgroups (pid 1's), limits included.
    let out = ok(&e, &["exec", "ex1", "sh", "-c", "cat /proc/1/cgroup; echo ==; cat /proc/self/cgroup"]);
    let (one, me) = out.split_once("==\n").unwrap();
    assert_eq!(one, me, "the exec'd process is in pid 1's cgroups");

    ok(&e, &["pause", "ex1"]);
    let o = e.rb(&["exec", "ex1", "true"]);
    assert!(text(&o).1.contains("is paused, unpause the container before exec"), "{:?}", text(&o));
    ok(&e, &["unpause", "ex1"]);
    assert_eq!(ok(&e, &["exec", "ex1", "cat", "/made"]), "hi\n");

    ok(&e, &["kill", "ex1"]);
    ok(&e, &["wait", "ex1"]);
    let o = e.rb(&["exec", "ex1", "true"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("container ex1 is not running"), "{:?}", text(&o));
    let o = e.rb(&["exec", "nope", "true"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("No such container: nope"), "{:?}", text(&o));
}

#[test]
fn cp_in_and_out_never_leaves_the_container() {
    require_root();
    let e = Env::new();
    let _c = Cleanup(&e, vec!["cp1"]);
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "cp1",
            "busybox:latest",
            "sh",
            "-c",
            "mkdir -p /tmp /data/sub && echo one > /data/sub/f && ln -s / /tmp/up && ln -s /etc/passwd /tmp/pw \
             && echo ready > /ready && exec sleep 1000",
        ],
    );
    wait_for_file(&e, "cp1", "/ready", "ready\n");
    let h = e.path("host");
    std::fs::create_dir_all(&h).unwrap();
    let hs = |p: &str| h.join(p).to_string_lossy().into_owned();

    ok(&e, &["cp", "cp1:/data/sub/f", &hs("f")]);
    assert_eq!(std::fs::read_to_string(h.join("f")).unwrap(), "one\n");
    ok(&e, &["cp", "cp1:/data", &hs("")]);
    assert_eq!(std::fs::read_to_string(h.join("data/sub/f")).unwrap(), "one\n", "a directory into a directory");
    // Through a symlink to /: the container's /etc/passwd, not the host's.
    ok(&e, &["cp", "cp1:/tmp/up/etc/passwd", &hs("passwd")]);
    assert_eq!(
        std::fs::read_to_string(h.join("passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    );
    // A symlink source stays a symlink.
    ok(&e, &["cp", "cp1:/tmp/pw", &hs("pw")]);
    assert_eq!(std::fs::read_link(h.join("pw")).unwrap(), std::path::Path::new("/etc/passwd"));

    std::fs::write(h.join("in.txt"), "in\n").unwrap();
    ok(&e, &["cp", &hs("in.txt"), "cp1:/tmp/"]);
    let marker = format!("rbuild-exec-test-{}", std::process::id());
    ok(&e, &["cp", &hs("in.txt"), &format!("cp1:/tmp/up/etc/{marker}")]);
    assert!(!std::path::Path::new("/etc").join(&marker).exists(), "the host's /etc is untouched");
    assert_eq!(ok(&e, &["exec", "cp1", "cat", "/tmp/in.txt", &format!("/etc/{marker}")]), "in\nin\n");

    // A tar on stdin whose symlink points at / and an entry through it: all of it lands in
    // the container.
    let mut b = tar::Builder::new(Vec::new());
    let mut hdr = tar::Header::new_gnu();
    hdr.set_entry_type(tar::EntryType::Symlink);
    hdr.set_size(0);
    hdr.set_mode(0o777);
    b.append_link(&mut hdr, "evil", "/").unwrap();
    let mut hdr = tar::Header::new_gnu();
    hdr.set_size(4);
    hdr.set_mode(0o644);
    b.append_data(&mut hdr, format!("evil/tmp/{marker}"), &b"pwn\n"[..]).unwrap();
    let o = e.rb_in(&["cp", "-", "cp1:/tmp"], Some(&b.into_inner().unwrap()));
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(!std::path::Path::new("/tmp").join(&marker).exists(), "the host's /tmp is untouched");
    assert_eq!(
        ok(&e, &["exec", "cp1", "cat", &format!("/tmp/tmp/{marker}")]),
        "pwn\n",
        "the symlink resolves inside the destination directory"
    );

    let o = e.rb(&["cp", "cp1:/nope", &hs("x")]);
    assert!(!o.status.success() && text(&o).1.contains("/nope"), "{:?}", text(&o));
    let o = e.rb(&["cp", &hs("data"), "cp1:/data/sub/f"]);
    assert!(text(&o).1.contains("cannot overwrite non-directory"), "{:?}", text(&o));

    // Stopped: read from and written to its writable layer.
    ok(&e, &["kill", "cp1"]);
    ok(&e, &["wait", "cp1"]);
    ok(&e, &["cp", "cp1:/tmp/in.txt", &hs("stopped.txt")]);
    assert_eq!(std::fs::read_to_string(h.join("stopped.txt")).unwrap(), "in\n");
    ok(&e, &["cp", &hs("f"), "cp1:/data/new"]);
    let tar = e.rb(&["export", "cp1"]);
    assert!(tar.status.success());
    let names: Vec<String> = tar::Archive::new(&tar.stdout[..])
        .entries()
        .unwrap()
        .map(|x| x.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "data/new"), "{names:?}");
}

#[test]
fn commit_gives_an_image_whose_run_shows_the_change() {
    require_root();
    let e = Env::new();
    let _c = Cleanup(&e, vec!["cm1", "cm2"]);
    let o = e.rb(&["run", "--name", "cm1", "busybox:latest", "sh", "-c", "echo changed > /made; rm /etc/group"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(ok(&e, &["diff", "cm1"]), "C /etc\nD /etc/group\nA /made\n");

    let id = ok(&e, &["commit", "-m", "the message", "-a", "me", "-c", "ENV COMMITTED=1", "cm1", "committed:1"]);
    assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
    let o = e.rb(&["run", "--rm", "committed:1", "sh", "-c", "cat /made; echo $COMMITTED; test ! -e /etc/group"]);
    assert_eq!(text(&o).0, "changed\n1\n", "{:?}", text(&o));
    assert!(o.status.success());
    assert_eq!(e.config("committed:1")["Author"], "me");
    let blob = e.root().join("blobs/sha256").join(id.trim().trim_start_matches("sha256:"));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    let last = cfg["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["comment"].as_str(), last["author"].as_str()), (Some("the message"), Some("me")), "{last}");
    assert!(!cfg["config"]["Env"].to_string().contains("HOSTNAME"), "the container's hostname is not committed");

    let out = e.path("cm1.tar");
    ok(&e, &["export", "-o", out.to_str().unwrap(), "cm1"]);
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&out).unwrap())
        .entries()
        .unwrap()
        .map(|x| x.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "made") && !names.iter().any(|n| n == "etc/group"), "{names:?}");
    let o = e.rb(&["commit", "-c", "RUN true", "cm1"]);
    assert!(!o.status.success() && text(&o).1.contains("RUN"), "{:?}", text(&o));

    // A running container is paused while it is read, and runs on after.
    ok(&e, &["run", "-d", "--name", "cm2", "busybox:latest", "sh", "-c", "echo live > /live; exec sleep 1000"]);
    wait_for_file(&e, "cm2", "/live", "live\n");
    ok(&e, &["commit", "cm2", "committed:2"]);
    assert_eq!(ok(&e, &["exec", "cm2", "cat", "/live"]), "live\n", "running again after the commit");
    // Already paused: it stays paused.
    ok(&e, &["pause", "cm2"]);
    ok(&e, &["commit", "cm2", "committed:3"]);
    let o = e.rb(&["exec", "cm2", "true"]);
    assert!(text(&o).1.contains("is paused"), "still paused after the commit: {:?}", text(&o));
    ok(&e, &["unpause", "cm2"]);
    let o = e.rb(&["run", "--rm", "committed:2", "cat", "/live"]);
    assert_eq!(text(&o).0, "live\n", "{:?}", text(&o));
}

#[path = "common/test_user.rs"]
mod test_user;

/// `rbuild --root ROOT ARGS` as the unprivileged test user.
fn rb_as(user: &str, root: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("runuser")
        .args(["-u", user, "--", common::RBUILD, "--root"])
        .arg(root)
        .args(args)
        .env("HOME", root.parent().unwrap())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn exec_cp_diff_and_commit_rootless() {
    require_root();
    let (user, gid) = test_user::ensure();
    let e = Env::bare();
    let tar = e.busybox_tar();
    let dir = e.path("rootless");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&tar, dir.join("rootfs.tar")).unwrap();
    for p in [e.dir.path(), dir.as_path(), dir.join("rootfs.tar").as_path()] {
        std::os::unix::fs::chown(p, Some(test_user::UID), Some(gid)).unwrap();
    }
    let root = dir.join("store");
    let rb = |args: &[&str]| {
        let o = rb_as(&user, &root, args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "rootless rbuild {args:?}: {err}");
        out
    };
    struct Gone<'a>(&'a dyn Fn());
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let rm = || {
        let _ = rb_as(&user, &root, &["rm", "-f", "rl1"]);
    };
    let _gone = Gone(&rm);
    rb(&["import", dir.join("rootfs.tar").to_str().unwrap(), "bb:1"]);
    rb(&["run", "-d", "--name", "rl1", "--hostname", "rl", "bb:1", "sh", "-c", "echo hi > /made; exec sleep 1000"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while text(&rb_as(&user, &root, &["exec", "rl1", "cat", "/made"])).0 != "hi\n" {
        assert!(Instant::now() < deadline, "the rootless container never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rb(&["exec", "rl1", "sh", "-c", "hostname; id -u; pidof sleep"]), "rl\n0\n2\n");
    let host_in = dir.join("in.txt");
    std::fs::write(&host_in, "in\n").unwrap();
    std::os::unix::fs::chown(&host_in, Some(test_user::UID), Some(gid)).unwrap();
    rb(&["cp", host_in.to_str().unwrap(), "rl1:/in.txt"]);
    assert_eq!(rb(&["exec", "rl1", "cat", "/in.txt"]), "in\n");
    rb(&["stop", "-t", "1", "rl1"]);
    let out = dir.join("made.out");
    rb(&["cp", "rl1:/made", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hi\n", "copied out of the stopped container");
    assert_eq!(rb(&["diff", "rl1"]), "A /in.txt\nA /made\n");
    let id = rb(&["commit", "rl1", "rl:committed"]);
    assert!(id.starts_with("sha256:"), "{id}");
}

#[test]
fn exec_with_stdin_and_a_terminal() {
    require_root();
    assert!(std::path::Path::new("/usr/bin/script").exists(), "needs script(1) (apt-get install bsdutils)");
    let e = Env::new();
    let _c = Cleanup(&e, vec!["tt1"]);
    ok(&e, &["run", "-d", "--name", "tt1", "busybox:latest", "sh", "-c", "echo up > /up; exec sleep 1000"]);
    wait_for_file(&e, "tt1", "/up", "up\n");
    let o = e.rb_in(&["exec", "-i", "tt1", "sh"], Some(b"echo from-stdin; exit 4\n"));
    assert_eq!((o.status.code(), text(&o).0.as_str()), (Some(4), "from-stdin\n"), "{:?}", text(&o));
    // -t: a terminal from the container's own devpts (script(1) gives us one to start from).
    let line = format!("{} --root {} exec -it tt1 sh -c 'tty; echo $TERM; exit 3'", common::RBUILD, e.root().display());
    // script's stdin stays open and silent (at EOF it would type into the terminal).
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(3), "{out:?}");
    assert_eq!(out, "/dev/pts/0\r\nxterm\r\n");
}
