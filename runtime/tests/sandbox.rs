//! The sandbox on a busybox root filesystem: isolation, mounts, users, environment, exit
//! codes, output, cleanup. Needs root (CI runs as root).

mod common;

use common::*;
use rbuild_runtime::sandbox::{Executor, Network, RunSpec, Sandbox};
use rbuild_runtime::snapshot::{self, Snapshotter};

struct Env {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
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
    let (fs, _) = sn.extract_dir("base-x").unwrap();
    busybox_tree(&fs);
    sn.commit("base", "base-x").unwrap();
    let sb = Sandbox::new(&root).unwrap();
    Env { _dir: dir, root, sn, sb }
}

fn spec_on(e: &Env, key: &str) -> RunSpec {
    let mounts = e.sn.prepare(key, Some("base")).unwrap();
    RunSpec { rootfs: mounts, ..Default::default() }
}

#[test]
fn runs_a_command_and_returns_its_code_and_output() {
    let e = setup();
    let before = host_mounts();
    let spec = spec_on(&e, "a");
    let (out, stdout, stderr) = sh(&e.sb, &spec, "echo hello; echo oops >&2; exit 3");
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(stdout, "hello\n");
    assert_eq!(stderr, "oops\n");
    let mut tail = out.tail.clone();
    tail.sort();
    assert_eq!(tail, ["hello", "oops"], "the last output lines come back for error messages");
    assert_eq!(host_mounts(), before, "no mount may outlive the run");
    let leftovers: Vec<_> = std::fs::read_dir(e.root.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "scratch dirs left: {leftovers:?}");
}

#[test]
fn cannot_see_host_processes_and_is_pid_1_world() {
    let e = setup();
    let spec = spec_on(&e, "a");
    let (out, stdout, _) =
        sh(&e.sb, &spec, "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; echo $$; hostname");
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    let pids: Vec<u32> = lines[0].split_whitespace().map(|p| p.parse().unwrap()).collect();
    // pid 1 (init), the shell, ls/grep/sort/tr: nothing from the host.
    assert!(pids.iter().all(|p| *p < 20), "host processes visible: {pids:?}");
    assert!(pids.contains(&1));
    assert_eq!(lines[1], "2", "the command is the init's first child");
    assert_eq!(lines[2], "rbuild");
}

#[test]
fn dev_proc_sys_and_injected_files() {
    let e = setup();
    let spec = spec_on(&e, "a");
    let script = "set -e; echo x > /dev/null; head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c; \
        test -c /dev/tty; test -e /dev/ptmx; test -d /dev/shm; touch /dev/shm/x; \
        grep -q localhost /etc/hosts; test -s /etc/resolv.conf; cat /etc/hostname; \
        if touch /sys/x 2>/dev/null; then echo sys-writable; fi; \
        if echo 1 > /proc/sys/kernel/domainname 2>/dev/null; then echo procsys-writable; fi; \
        cat /proc/self/status | grep -i capbnd";
    let (out, stdout, stderr) = sh(&e.sb, &spec, script);
    assert_eq!(out.code, 0, "{out:?} {stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("4"));
    assert_eq!(lines.next(), Some("4"));
    assert_eq!(lines.next(), Some("rbuild"));
    let cap = lines.next().unwrap();
    // Docker's default set (0xa80425fb) without NET_RAW, on the host's network.
    assert!(cap.ends_with("00000000a80405fb"), "{cap}");
    assert_eq!(lines.next(), None, "{stdout}");
}

#[test]
fn user_workdir_env_and_shell() {
    let e = setup();
    let mut spec = spec_on(&e, "a");
    spec.user = Some("app".into());
    spec.cwd = "/work/dir".into();
    spec.env = vec!["FOO=bar".into()];
    let (out, stdout, _) =
        sh(&e.sb, &spec, "id; pwd; echo $FOO $HOME $PATH; ls -ld /work/dir | awk '{print $3}'; touch f && echo wrote");
    assert_eq!(out.code, 0, "{out:?}");
    let l: Vec<&str> = stdout.lines().collect();
    assert_eq!(l[0], "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)");
    assert_eq!(l[1], "/work/dir");
    assert_eq!(l[2], "bar /home/app /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_eq!(l[3], "app");
    assert_eq!(l[4], "wrote");

    spec.user = Some("1234:55".into());
    let (out, stdout, _) = sh(&e.sb, &spec, "id -u; id -g; echo $HOME");
    assert_eq!(out.code, 0);
    assert_eq!(stdout, "1234\n55\n/\n");

    spec.user = Some("ghost".into());
    let err =
        e.sb.run(&RunSpec { args: vec!["true".into()], ..spec.clone() }, Captured::default().io())
            .unwrap_err()
            .to_string();
    assert!(err.contains("unable to find user ghost"), "{err}");

    // SHELL: any argv works as the shell form's prefix.
    let mut s2 = spec_on(&e, "b");
    s2.args = vec!["/bin/busybox".into(), "ash".into(), "-c".into(), "echo $0".into()];
    let cap = Captured::default();
    let out = e.sb.run(&s2, cap.io()).unwrap();
    assert_eq!(out.code, 0);
    assert_eq!(cap.stdout(), "ash\n");
}

#[test]
fn exec_failures_and_signals() {
    let e = setup();
    let mut spec = spec_on(&e, "a");
    spec.args = vec!["no-such-cmd".into()];
    let cap = Captured::default();
    let out = e.sb.run(&spec, cap.io()).unwrap();
    assert_eq!(out.code, 127);
    assert!(out.exec_error.as_deref().unwrap().contains("executable file not found"), "{out:?}");
    let (out, _, _) = sh(&e.sb, &spec, "kill -9 $$");
    assert_eq!(out.code, 137);
    assert_eq!(out.signal, Some(9));
}

#[test]
fn timeout_kills_everything_and_leaves_nothing() {
    let e = setup();
    let before = host_mounts();
    let mut spec = spec_on(&e, "a");
    spec.timeout = Some(std::time::Duration::from_millis(500));
    // A duration no other test sleeps for: test binaries run side by side.
    let (out, _, _) = sh(&e.sb, &spec, "sleep 7219 & sleep 7219");
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.code, 137);
    assert_eq!(host_mounts(), before);
    let ps = std::process::Command::new("pgrep").args(["-f", "^sleep 7219$"]).output().unwrap();
    assert!(ps.stdout.is_empty(), "processes survived: {}", String::from_utf8_lossy(&ps.stdout));
}

#[test]
fn network_none_has_only_loopback() {
    let e = setup();
    let mut spec = spec_on(&e, "a");
    spec.network = Network::None;
    let (out, stdout, _) = sh(&e.sb, &spec, "ls /sys/class/net | tr '\\n' ' '; ip link show lo | grep -c UP");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(stdout, "lo 1\n");
}

#[test]
fn cannot_write_outside_its_rootfs() {
    let e = setup();
    let spec = spec_on(&e, "a");
    let marker = e.root.join("escape-marker");
    let script = format!(
        "echo x > {m} 2>/dev/null; echo y > /../../{m} 2>/dev/null; ln -s / /up; echo z > /up/{m} 2>/dev/null; mount -t tmpfs t /mnt 2>/dev/null; true",
        m = marker.display()
    );
    let (out, _, _) = sh(&e.sb, &spec, &script);
    assert_eq!(out.code, 0);
    assert!(!marker.exists(), "the sandbox wrote on the host");
}
