//! The sandbox: seccomp, devices, capabilities on the host network (issue #12.4, .5, .6),
//! and images whose /etc/resolv.conf is a dangling symlink (#12.11).
//!
//! The system calls are tried by a tiny C program (testdata/security/sandbox/probe.c)
//! built static with the machine's `cc` (the Rust toolchain's linker: it is there wherever
//! these tests build), bound into the busybox image.

use crate::common::Env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn require_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    true
}

/// `probe` built static into the env's dir.
fn probe(e: &Env) -> PathBuf {
    let out = e.path("probe");
    if !out.exists() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/security/sandbox/probe.c");
        let o = Command::new("cc").args(["-static", "-O", "-o"]).arg(&out).arg(&src).output().unwrap();
        assert!(o.status.success(), "cc -static probe.c: {}", String::from_utf8_lossy(&o.stderr));
    }
    out
}

/// `rbuild run --rm [flags] busybox ARGS`: (exit code, stdout, stderr).
fn run(e: &Env, flags: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(flags);
    a.push("busybox");
    a.extend_from_slice(args);
    let o = e.rb(&a);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sh(e: &Env, flags: &[&str], script: &str) -> (i32, String, String) {
    run(e, flags, &["sh", "-c", script])
}

/// A build context with `Dockerfile` (and the probe when `with_probe`).
fn context(e: &Env, name: &str, dockerfile: &str, with_probe: bool) -> PathBuf {
    let dir = e.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    if with_probe {
        std::fs::copy(probe(e), dir.join("probe")).unwrap();
    }
    dir
}

/// The CapEff mask in /proc/self/status text.
fn cap_eff(status: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with("CapEff:")).unwrap_or_else(|| panic!("no CapEff in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

const NET_RAW: u64 = 1 << 13;
const NET_ADMIN: u64 = 1 << 12;

#[test]
fn seccomp_is_on_in_run_and_in_run_steps() {
    if !require_root() {
        return;
    }
    let e = Env::new();
    let (code, out, err) = sh(&e, &[], "grep Seccomp: /proc/self/status");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Seccomp:\t2"), "rbuild run: {out}");

    let dir = context(
        &e,
        "ctx",
        "FROM busybox\nRUN grep Seccomp: /proc/self/status && grep -q 'Seccomp:.2' /proc/self/status\n",
        false,
    );
    let (ok, log) = e.try_build(&["--no-cache", dir.to_str().unwrap()]);
    assert!(ok, "a RUN step without seccomp:\n{log}");
}

#[test]
fn calls_dockers_profile_blocks_fail_with_eperm() {
    if !require_root() {
        return;
    }
    let e = Env::new();
    let p = probe(&e);
    let bind = format!("{}:/probe:ro", p.display());
    let calls =
        ["keyctl", "add_key", "unshare-user", "unshare-net", "personality", "io_uring_setup", "bpf", "perf_event_open"];
    let mut args = vec!["/probe"];
    args.extend(calls);
    args.push("fork");
    let (code, out, err) = run(&e, &["-v", &bind], &args);
    assert_eq!(code, 0, "{err}");
    for c in calls {
        assert!(out.contains(&format!("{c} errno 1\n")), "{c} must get EPERM:\n{out}");
    }
    assert!(out.contains("fork ok"), "plain clone (fork) still works:\n{out}");
    // busybox's own unshare, as a shell user would try it.
    let (code, _, err) = sh(&e, &[], "unshare -U -r true");
    assert_ne!(code, 0, "unshare -U worked: {err}");
    assert!(err.contains("Operation not permitted"), "{err}");

    // And in a RUN step.
    let dir = context(
        &e,
        "ctx",
        "FROM busybox\nCOPY probe /probe\nRUN /probe keyctl unshare-user personality > /out && cat /out \
         && test \"$(grep -c 'errno 1$' /out)\" = 3\n",
        true,
    );
    let (ok, log) = e.try_build(&["--no-cache", dir.to_str().unwrap()]);
    assert!(ok, "a RUN step could keyctl/unshare/personality:\n{log}");
}

#[test]
fn security_opt_loosens_or_replaces_the_profile() {
    if !require_root() {
        return;
    }
    let e = Env::new();
    let (code, out, err) = sh(&e, &["--security-opt", "seccomp=unconfined"], "grep Seccomp: /proc/self/status");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Seccomp:\t0"), "{out}");

    // A profile file in Docker's format: allow all but mkdir/mkdirat, which get EACCES.
    let profile = e.path("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64"],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (code, out, err) =
        sh(&e, &["--security-opt", &opt], "mkdir /x; echo mkdir=$?; grep Seccomp: /proc/self/status");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mkdir=1") && err.contains("Permission denied"), "{out}{err}");
    assert!(out.contains("Seccomp:\t2"), "{out}");

    let bad = e.path("bad.json");
    std::fs::write(&bad, r#"{"defaultAction":"SCMP_ACT_SOMETIMES"}"#).unwrap();
    let (code, _, err) = sh(&e, &["--security-opt", &format!("seccomp={}", bad.display())], "true");
    assert_ne!(code, 0);
    assert!(err.contains("bad.json") && err.contains("SCMP_ACT_SOMETIMES"), "{err}");

    let (code, out, err) = sh(&e, &["--security-opt", "no-new-privileges"], "grep NoNewPrivs: /proc/self/status");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn run_security_insecure_needs_the_entitlement() {
    if !require_root() {
        return;
    }
    let e = Env::new();
    let dir = context(
        &e,
        "ctx",
        "FROM busybox\nRUN --security=insecure grep -q 'Seccomp:.0' /proc/self/status && \
         grep CapEff /proc/self/status > /caps\n",
        false,
    );
    let (ok, log) = e.try_build(&["--no-cache", dir.to_str().unwrap()]);
    assert!(!ok, "built without --allow");
    assert!(log.contains("Dockerfile:2") && log.contains("--allow security.insecure"), "{log}");

    let (ok, log) =
        e.try_build(&["--no-cache", "--allow", "security.insecure", "-t", "insecure", dir.to_str().unwrap()]);
    assert!(ok, "{log}");
    let o = e.rb(&["run", "--rm", "--security-opt", "seccomp=unconfined", "insecure", "cat", "/caps"]);
    let caps = cap_eff(&String::from_utf8_lossy(&o.stdout));
    assert!(caps & (1 << 21) != 0 && caps & NET_ADMIN != 0, "not every capability: {caps:x}");
}

#[test]
fn host_devices_cannot_be_made_and_opened() {
    if !require_root() {
        return;
    }
    let e = Env::new();
    // kmsg (1:11) and loop-control (10:237): made with mknod (allowed, as in docker), never opened.
    let (code, out, err) = sh(
        &e,
        &[],
        "mknod /kmsg c 1 11 && mknod /lc c 10 237 && mknod /kvm c 10 232 || exit 9
         for d in /kmsg /lc /kvm; do if (exec 3<>$d) 2>/dev/null; then echo \"$d opened\"; fi; done
         echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c
         cat /proc/self/cgroup",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("opened"), "a host device opened:\n{out}");
    assert_eq!(out.matches("4\n").count(), 2, "/dev/zero and /dev/urandom must work:\n{out}");
    // The cgroup was made beneath ours, and is gone after the run.
    if let Some(line) = out.lines().find(|l| l.contains(":devices:")) {
        let rel = line.rsplit(':').next().unwrap();
        assert!(rel.contains("/rbuild-"), "{line}");
        let dir = Path::new("/sys/fs/cgroup/devices").join(rel.trim_start_matches('/'));
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    // The same in a RUN step.
    let dir = context(
        &e,
        "ctx",
        "FROM busybox\nRUN mknod /kmsg c 1 11 && if (exec 3<>/kmsg) 2>/dev/null; then exit 7; fi; rm /kmsg\n",
        false,
    );
    let (ok, log) = e.try_build(&["--no-cache", dir.to_str().unwrap()]);
    assert!(ok, "a RUN step opened /dev/kmsg:\n{log}");

    // --device gives one device, and only that one.
    let (code, out, err) = sh(
        &e,
        &["--device", "/dev/loop-control:/dev/lc:r"],
        "(exec 3</dev/lc) && echo lc-read; (exec 3>/dev/lc) 2>/dev/null && echo lc-write; \
         mknod /kvm c 10 232 && ((exec 3<>/kvm) 2>/dev/null && echo kvm-opened); true",
    );
    if Path::new("/dev/loop-control").exists() {
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("lc-read") && !out.contains("lc-write") && !out.contains("kvm"), "{out}{err}");
    }
    let (code, _, err) = sh(&e, &["--device", "/etc/passwd"], "true");
    assert_ne!(code, 0);
    assert!(err.contains("/etc/passwd") && err.contains("not a device"), "{err}");
}

#[test]
fn no_raw_sockets_on_the_host_network_unless_asked() {
    if !require_root() {
        return;
    }
    let e = Env::new();
    let (code, out, err) = sh(&e, &[], "grep CapEff /proc/self/status");
    assert_eq!(code, 0, "{err}");
    let caps = cap_eff(&out);
    assert_eq!(caps & (NET_RAW | NET_ADMIN), 0, "CAP_NET_RAW/NET_ADMIN on the host network: {caps:x}");
    let bind = format!("{}:/probe:ro", probe(&e).display());
    let (_, out, _) = run(&e, &["-v", &bind], &["/probe", "raw-socket"]);
    assert!(out.contains("raw-socket errno 1"), "{out}");

    // Asked for: --cap-add. Its own network: Docker's set, NET_RAW included.
    let (_, out, _) = sh(&e, &["--cap-add", "NET_RAW"], "grep CapEff /proc/self/status");
    assert_ne!(cap_eff(&out) & NET_RAW, 0, "{out}");
    let (_, out, _) = sh(&e, &["--network", "none"], "grep CapEff /proc/self/status");
    assert_ne!(cap_eff(&out) & NET_RAW, 0, "{out}");
    let (_, out, _) = sh(&e, &["--cap-drop", "ALL", "--cap-add", "CHOWN"], "grep CapEff /proc/self/status");
    assert_eq!(cap_eff(&out), 1, "{out}");
    let (code, _, err) = sh(&e, &["--cap-add", "CAP_FLY"], "true");
    assert_ne!(code, 0);
    assert!(err.contains("CAP_FLY"), "{err}");

    // RUN steps run on the host network too.
    let dir = context(&e, "ctx", "FROM busybox\nRUN grep CapEff /proc/self/status | grep -q 'a80405fb$'\n", false);
    let (ok, log) = e.try_build(&["--no-cache", dir.to_str().unwrap()]);
    assert!(ok, "a RUN step has another capability set than docker's without NET_RAW:\n{log}");
}

#[test]
fn dangling_resolv_conf_and_bind_targets_work() {
    if !require_root() {
        return;
    }
    let e = Env::bare();
    // busybox with /etc/resolv.conf, /etc/hosts and /link dangling, as rootfs tarballs have them.
    let rootfs = e.path("rootfs");
    e.busybox_tar();
    std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", rootfs.join("etc/resolv.conf")).unwrap();
    std::os::unix::fs::symlink("/run/nowhere/hosts", rootfs.join("etc/hosts")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", rootfs.join("link")).unwrap();
    let tar = e.path("dangling.tar");
    let st = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .args(["bin", "etc", "link"])
        .status()
        .unwrap();
    assert!(st.success());
    let o = e.rb(&["import", tar.to_str().unwrap(), "busybox"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let (code, out, err) = sh(&e, &[], "cat /etc/resolv.conf >/dev/null && grep -q localhost /etc/hosts && echo ok");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok\n");

    let file = e.path("f.txt");
    std::fs::write(&file, "from the host\n").unwrap();
    let v = format!("{}:/link", file.display());
    let (code, out, err) = run(&e, &["-v", &v], &["cat", "/link"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "from the host\n");

    // A RUN step; what the sandbox made for the links stays out of the layer.
    let dir = context(&e, "ctx", "FROM busybox\nRUN cat /etc/resolv.conf > /dev/null && echo built > /built\n", false);
    let out_dir = e.path("out");
    let (ok, log) =
        e.try_build(&["--no-cache", "-o", &format!("type=local,dest={}", out_dir.display()), dir.to_str().unwrap()]);
    assert!(ok, "{log}");
    assert!(out_dir.join("built").exists());
    assert!(!out_dir.join("run").exists(), "the sandbox's files ended up in the layer");
    assert!(std::fs::symlink_metadata(out_dir.join("etc/resolv.conf")).unwrap().file_type().is_symlink());
}
