//! Joining a running sandbox (`exec`), copying in and out of it running and stopped (`cp`,
//! with symlinks that point out of the container), `diff`, `export` and `commit` of its
//! writable layer. Each test starts its own sandbox from a thread and kills it at the end.
//! Needs root.

mod common;

use common::*;
use rbuild_runtime::container::exec::{ContainerSide, ExecOptions, exec, pid1_of};
use rbuild_runtime::container::fs::{self, CopyInOptions, DiffKind};
use rbuild_runtime::sandbox::{Executor, JoinTarget, RunOutcome, RunSpec, Sandbox};
use rbuild_runtime::snapshot::{self, Snapshotter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A sandbox running `sh -c 'SCRIPT; echo ready; exec sleep SECS'` on its own writable
/// snapshot, killed (outer init first) when dropped.
struct Running {
    sn: Box<dyn Snapshotter>,
    sb: Sandbox,
    key: String,
    init: i32,
    pid1: i32,
    thread: Option<std::thread::JoinHandle<RunOutcome>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: killing the sandbox init this test started; pid 1 dies with it.
        unsafe { libc::kill(self.init, libc::SIGKILL) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

/// The host pid of the process whose argv is exactly `argv`, waiting up to 20 s.
fn find_process(argv: &[&str]) -> i32 {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            if std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no process {argv:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(hostname: &str, secs: u32, script: &str) -> Running {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let sn = snapshot::open(&root, rbuild_runtime::sandbox::store_trees(&root)).unwrap();
    sn.prepare("x", None).unwrap();
    busybox_tree(&sn.extract_dir("x").unwrap().0);
    std::fs::write(sn.extract_dir("x").unwrap().0.join("etc/motd"), "welcome\n").unwrap();
    sn.commit("base", "x").unwrap();
    let key = format!("container-{hostname}");
    let spec = RunSpec {
        rootfs: sn.prepare(&key, Some("base")).unwrap(),
        args: vec!["/bin/sh".into(), "-c".into(), format!("{script}; echo ready; exec sleep {secs}")],
        hostname: Some(hostname.into()),
        ..Default::default()
    };
    let sb = Sandbox::new(&root).unwrap();
    let sb2 = sb.clone();
    let thread = std::thread::spawn(move || sb2.run(&spec, Captured::default().io()).unwrap());
    let secs_s = secs.to_string();
    let cmd = find_process(&["sleep", &secs_s]);
    let pid1 = ppid(cmd).unwrap();
    let init = ppid(pid1).unwrap();
    assert_eq!(pid1_of(init).unwrap(), pid1, "pid 1 is the outer init's only child");
    Running { sn, sb, key, init, pid1, thread: Some(thread), _dir: dir }
}

impl Running {
    fn sh(&self, script: &str) -> (RunOutcome, String, String) {
        self.exec(ExecOptions { cmd: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() })
    }

    fn exec(&self, opts: ExecOptions) -> (RunOutcome, String, String) {
        let side = ContainerSide { env: vec!["FROM_CONTAINER=1".into()], ..Default::default() };
        let cap = Captured::default();
        let out = exec(&self.sb, self.pid1, &side, &opts, cap.io()).unwrap();
        (out, cap.stdout(), cap.stderr())
    }

    fn upper(&self, rel: &str) -> PathBuf {
        match self.sn.diff_source(&self.key).unwrap() {
            snapshot::DiffSource::Upper { upper } => upper.join(rel),
            snapshot::DiffSource::Walk { upper, .. } => upper.join(rel),
        }
    }

    /// Kill it and wait until its pid 1 is gone too.
    fn stop(&mut self) {
        // SAFETY: as in drop.
        unsafe { libc::kill(self.init, libc::SIGKILL) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while rbuild_runtime::sandbox::process_running(self.pid1) {
            assert!(Instant::now() < deadline, "pid 1 outlived its init");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn exec_joins_the_filesystem_pid_namespace_hostname_and_cgroups() {
    let c = start("exec-box", 100_001, "echo hi > /made");
    let (out, stdout, stderr) = c.sh("cat /made; hostname; pidof sleep; echo $FROM_CONTAINER");
    assert_eq!(out.code, 0, "{stderr}");
    assert_eq!(stdout, "hi\nexec-box\n2\n1\n", "the container's file, hostname, and pid 2 in its pid namespace");

    let (out, stdout, _) = c.sh("cat /proc/self/cgroup");
    assert_eq!(out.code, 0);
    let theirs = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid1)).unwrap();
    let mut a: Vec<&str> = stdout.lines().collect();
    let mut b: Vec<&str> = theirs.lines().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the exec'd process is in the container's cgroups");

    let (out, _, _) = c.sh("exit 7");
    assert_eq!(out.code, 7, "the command's exit code");
    let opts = ExecOptions {
        cmd: vec!["sh".into(), "-c".into(), "id -u; pwd; echo $E".into()],
        env: vec!["E=given".into()],
        user: Some("1000".into()),
        workdir: Some("/tmp".into()),
        ..Default::default()
    };
    let (out, stdout, stderr) = c.exec(opts);
    assert_eq!((out.code, stdout.as_str()), (0, "1000\n/tmp\ngiven\n"), "{stderr}");
    let (out, _, _) = c.exec(ExecOptions { cmd: vec!["no-such-command".into()], ..Default::default() });
    assert_eq!(out.code, 127);
    assert!(out.exec_error.unwrap_or_default().contains("not found"));

    // Detached: returns at once, the command runs on in the container.
    let (out, _, _) = c.exec(ExecOptions {
        cmd: vec!["sh".into(), "-c".into(), "echo later > /tmp/detached".into()],
        detach: true,
        ..Default::default()
    });
    assert_eq!(out.code, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(c.upper("tmp/detached")).unwrap_or_default() != "later\n" {
        assert!(Instant::now() < deadline, "the detached command never wrote its file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (out, _, _) = c.exec(ExecOptions { cmd: vec!["no-such".into()], detach: true, ..Default::default() });
    assert_eq!(out.code, 127, "a detached command that cannot start says so");
}

#[test]
fn exec_into_a_stopped_container_is_a_clear_error() {
    let mut c = start("exec-gone", 100_002, "true");
    c.stop();
    let side = ContainerSide::default();
    let opts = ExecOptions { cmd: vec!["true".into()], ..Default::default() };
    let e = exec(&c.sb, c.pid1, &side, &opts, Captured::default().io()).unwrap_err().to_string();
    assert!(e.contains("not running"), "{e}");
}

#[test]
fn cp_in_and_out_of_a_running_container_stays_inside_it() {
    let c = start(
        "cp-box",
        100_003,
        "mkdir -p /data/sub && echo one > /data/sub/f && ln -s / /tmp/escape && ln -s /etc /tmp/etclink \
         && ln -s /etc/passwd /tmp/pw",
    );
    let t = JoinTarget::Process(c.pid1);
    let host = tempfile::tempdir().unwrap();
    let h = host.path();

    // Out: a file to a new name, a directory into an existing one, contents with /.
    fs::copy_out(&c.sb, &t, "/data/sub/f", &h.join("f")).unwrap();
    assert_eq!(std::fs::read_to_string(h.join("f")).unwrap(), "one\n");
    std::fs::create_dir(h.join("d")).unwrap();
    fs::copy_out(&c.sb, &t, "/data", &h.join("d")).unwrap();
    assert_eq!(std::fs::read_to_string(h.join("d/data/sub/f")).unwrap(), "one\n");
    fs::copy_out(&c.sb, &t, "/data/.", &h.join("contents")).unwrap();
    assert_eq!(std::fs::read_to_string(h.join("contents/sub/f")).unwrap(), "one\n");
    let e = fs::copy_out(&c.sb, &t, "/data", &h.join("f")).unwrap_err().to_string();
    assert!(e.contains("onto a file"), "{e}");
    let e = fs::copy_out(&c.sb, &t, "/nope", &h.join("x")).unwrap_err().to_string();
    assert!(e.contains("/nope"), "{e}");

    // Symlinks resolve in the container: /tmp/escape/etc/passwd is its own passwd.
    fs::copy_out(&c.sb, &t, "/tmp/escape/etc/passwd", &h.join("passwd")).unwrap();
    assert!(std::fs::read_to_string(h.join("passwd")).unwrap().contains("app:x:1000"), "the container's passwd");
    // A symlink as the source is copied as a symlink, not followed to the host's file.
    fs::copy_out(&c.sb, &t, "/tmp/pw", &h.join("pw")).unwrap();
    assert_eq!(std::fs::read_link(h.join("pw")).unwrap(), Path::new("/etc/passwd"));

    // The whole root of a running container: /proc, /sys and /dev as mount points only.
    let mut tar = Vec::new();
    fs::tar_out(&c.sb, &t, "/", &mut tar).unwrap();
    let names = tar_names(&tar);
    assert!(names.iter().any(|n| n == "data/sub/f") && names.iter().any(|n| n == "proc"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("proc/") || n.starts_with("dev/")), "{names:?}");

    // In: a file, a directory, and through a symlink that points at /etc.
    std::fs::write(h.join("in.txt"), "in\n").unwrap();
    fs::copy_in(&c.sb, &t, &h.join("in.txt"), "/tmp/", CopyInOptions::default()).unwrap();
    std::fs::create_dir_all(h.join("tree/x")).unwrap();
    std::fs::write(h.join("tree/x/y"), "y\n").unwrap();
    fs::copy_in(&c.sb, &t, &h.join("tree"), "/srv", CopyInOptions::default()).unwrap();
    let marker = format!("rbuild-cp-escape-{}", std::process::id());
    fs::copy_in(&c.sb, &t, &h.join("in.txt"), &format!("/tmp/etclink/{marker}"), CopyInOptions::default()).unwrap();
    assert!(!Path::new("/etc").join(&marker).exists(), "a symlink to /etc in the container is not the host's /etc");
    let (out, stdout, stderr) = c.sh(&format!("cat /tmp/in.txt /srv/x/y /etc/{marker}; stat -c %u /tmp/in.txt"));
    assert_eq!((out.code, stdout.as_str()), (0, "in\ny\nin\n0\n"), "{stderr}");
    let e = fs::copy_in(&c.sb, &t, &h.join("tree"), "/etc/motd", CopyInOptions::default()).unwrap_err().to_string();
    assert!(e.contains("cannot overwrite non-directory"), "{e}");
    let e =
        fs::copy_in(&c.sb, &t, &h.join("in.txt"), "/no/such/dir/x", CopyInOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no such directory"), "{e}");
}

#[test]
fn a_stopped_containers_files_diff_and_export() {
    let mut c = start("fs-box", 100_004, "echo hi > /made; rm /etc/motd; mkdir /newdir; echo x > /newdir/f");
    let expect = [
        (DiffKind::Changed, "/etc".to_string()),
        (DiffKind::Deleted, "/etc/motd".to_string()),
        (DiffKind::Added, "/made".to_string()),
        (DiffKind::Added, "/newdir".to_string()),
        (DiffKind::Added, "/newdir/f".to_string()),
    ];
    let running: Vec<_> =
        fs::diff(c.sn.as_ref(), &c.key, &[]).unwrap().into_iter().filter(|(_, p)| p != "/tmp").collect();
    assert_eq!(running, expect, "the writable layer, without the sandbox's own files");
    let mut tar = Vec::new();
    fs::export(&c.sb, &c.sn.mounts(&c.key).unwrap(), &mut tar).unwrap();
    let names = tar_names(&tar);
    assert!(names.contains(&"made".to_string()) && names.contains(&"bin/busybox".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n == "etc/motd"), "deleted files are not exported");

    c.stop();
    let t = fs::target(Some(c.pid1), || c.sn.mounts(&c.key)).unwrap();
    assert!(matches!(t, JoinTarget::Rootfs(_)), "a stopped container is read from its snapshot");
    let host = tempfile::tempdir().unwrap();
    fs::copy_out(&c.sb, &t, "/made", &host.path().join("made")).unwrap();
    assert_eq!(std::fs::read_to_string(host.path().join("made")).unwrap(), "hi\n");
    std::fs::write(host.path().join("new"), "new\n").unwrap();
    fs::copy_in(&c.sb, &t, &host.path().join("new"), "/newdir/", CopyInOptions::default()).unwrap();
    assert_eq!(std::fs::read_to_string(c.upper("newdir/new")).unwrap(), "new\n", "written to the writable layer");
    let mut tar = Vec::new();
    fs::export(&c.sb, &c.sn.mounts(&c.key).unwrap(), &mut tar).unwrap();
    assert!(tar_names(&tar).contains(&"newdir/new".to_string()));
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn commit_makes_an_image_with_the_changes() {
    use rbuild_image::store::import::{ImportOptions, import};
    require_root();
    let d = tempfile::tempdir().unwrap();
    let rootfs = d.path().join("rootfs");
    busybox_tree(&rootfs);
    std::fs::write(rootfs.join("etc/motd"), "welcome\n").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &rootfs).unwrap();
    let store = rbuild_image::Store::open(&d.path().join("store")).unwrap();
    let imported = import(&store, std::io::Cursor::new(b.into_inner().unwrap()), &ImportOptions::default()).unwrap();
    let desc = rbuild_image::Descriptor::new(
        imported.manifest.media_type().to_string(),
        imported.manifest.digest().clone(),
        imported.manifest.bytes().len() as u64,
    );
    store.tag(&rbuild_image::Reference::parse("base:1").unwrap(), &desc).unwrap();
    let root = store.root().to_path_buf();
    let sn = snapshot::open(&root, rbuild_runtime::sandbox::store_trees(&root)).unwrap();
    let sb = Sandbox::new(&root).unwrap();
    let image = store.resolve(&imported.config_digest.to_string()).unwrap();
    let top =
        snapshot::unpack_image(sn.as_ref(), &store, image.layers(), &image.config.rootfs.diff_ids, Some(&sb)).unwrap();
    let spec = RunSpec {
        rootfs: sn.prepare("container-c1", top.as_deref()).unwrap(),
        args: vec!["sh".into(), "-c".into(), "echo changed > /made; rm /etc/motd; mkdir -p /v".into()],
        ..Default::default()
    };
    assert_eq!(sb.run(&spec, Captured::default().io()).unwrap().code, 0);

    let opts = rbuild_runtime::container::commit::CommitOptions {
        message: Some("a message".into()),
        author: Some("someone".into()),
        changes: vec!["ENV COMMITTED=yes".into(), r#"CMD ["sh", "-c", "cat /made"]"#.into()],
        created_by: "sh -c echo changed".into(),
        exclude: vec!["/v".into()],
        reference: Some(rbuild_image::Reference::parse("committed:1").unwrap()),
        ..Default::default()
    };
    let done = rbuild_runtime::container::commit::commit(
        &store,
        sn.as_ref(),
        "container-c1",
        &imported.config_digest.to_string(),
        None,
        &opts,
    )
    .unwrap();
    let img = store.resolve("committed:1").unwrap();
    assert_eq!(img.config_digest, done.image_id);
    assert_eq!(img.layers().len(), 2);
    assert_eq!(img.config.author.as_deref(), Some("someone"));
    let cfg = img.config.config.clone().unwrap();
    assert!(cfg.env.iter().any(|e| e == "COMMITTED=yes"), "{:?}", cfg.env);
    let last = img.config.history.last().unwrap();
    assert_eq!(last.comment.as_deref(), Some("a message"));
    let layer = store.read_blob(&img.layers()[1].digest).unwrap();
    let (_, mut plain) = rbuild_image::layer::decompress(std::io::Cursor::new(layer)).unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut plain, &mut bytes).unwrap();
    let names = tar_names(&bytes);
    assert!(names.contains(&"made".into()) && names.contains(&"etc/.wh.motd".into()), "{names:?}");
    assert!(!names.iter().any(|n| n == "v" || n == "proc" || n == "etc/hosts"), "no mount points: {names:?}");

    // Run the committed image: the changed file is there, the deleted one is not.
    let top =
        snapshot::unpack_image(sn.as_ref(), &store, img.layers(), &img.config.rootfs.diff_ids, Some(&sb)).unwrap();
    let spec = RunSpec {
        rootfs: sn.prepare("container-c2", top.as_deref()).unwrap(),
        args: vec!["sh".into(), "-c".into(), r#"test "$(cat /made)" = changed && test ! -e /etc/motd"#.into()],
        ..Default::default()
    };
    assert_eq!(sb.run(&spec, Captured::default().io()).unwrap().code, 0);
}
