//! `rbuild run` end to end: a busybox image imported into a store, run through the rbuild
//! binary. Needs root (CI runs as root) and busybox-static.

use std::path::Path;
use std::process::{Command, Output};

fn require_root() {
    // SAFETY: geteuid has no failure mode.
    assert_eq!(unsafe { libc_geteuid() }, 0, "this test needs root (CI runs as root)");
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn rbuild(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild")).arg("--root").arg(root).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A busybox rootfs tar imported as `bb:1` with CMD `echo from-cmd`.
fn store_with_busybox(dir: &Path) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    assert!(Path::new("/bin/busybox").exists(), "/bin/busybox is missing: apt-get install busybox-static");
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for name in String::from_utf8(list.stdout).unwrap().lines().filter(|n| *n != "busybox") {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(name)).unwrap();
    }
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    let tarball = dir.join("rootfs.tar");
    let st = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg(".").status().unwrap();
    assert!(st.success());
    let root = dir.join("store");
    let o = rbuild(
        &root,
        &["import", "-c", r#"CMD ["echo", "from-cmd"]"#, "-c", "ENV GREETING=hello", tarball.to_str().unwrap(), "bb:1"],
    );
    assert!(o.status.success(), "import failed: {:?}", text(&o));
    root
}

#[test]
fn run_prints_what_cmd_says_and_returns_its_code() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let root = store_with_busybox(d.path());

    let o = rbuild(&root, &["run", "--rm", "bb:1"]);
    let (out, err) = text(&o);
    assert!(
        !err.contains("init did not run"),
        "src/main.rs must call rbuild_runtime::sandbox::init_hook() first: {err}"
    );
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out, "from-cmd\n");

    let o = rbuild(&root, &["run", "--rm", "bb:1", "sh", "-c", "echo $GREETING $EXTRA; exit 7", "-e", "ignored"]);
    // Arguments after the image belong to the command, flags included.
    assert_eq!(o.status.code(), Some(7), "{:?}", text(&o));
    assert_eq!(text(&o).0, "hello\n");

    let o = rbuild(
        &root,
        &[
            "run",
            "--rm",
            "-e",
            "EXTRA=x",
            "-w",
            "/made/here",
            "-u",
            "app",
            "bb:1",
            "sh",
            "-c",
            "echo $GREETING $EXTRA; pwd; id -u",
        ],
    );
    assert_eq!(text(&o).0, "hello x\n/made/here\n1000\n", "{:?}", text(&o));

    let o = rbuild(&root, &["run", "--rm", "--entrypoint", "/bin/echo", "bb:1", "a", "b"]);
    assert_eq!(text(&o).0, "a b\n");

    let o = rbuild(&root, &["run", "--rm", "bb:1", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(text(&o).1.contains("executable file not found"), "{:?}", text(&o));
}

#[test]
fn names_volumes_and_kept_containers() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let root = store_with_busybox(d.path());
    let host = d.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from host").unwrap();
    let vol = format!("{}:/h", host.display());
    let o = rbuild(
        &root,
        &[
            "run",
            "--name",
            "first",
            "--volume",
            &vol,
            "--volume",
            "data:/data",
            "bb:1",
            "sh",
            "-c",
            "cat /h/in; echo out > /h/out; echo kept > /data/f; echo layer > /root-file",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert_eq!(text(&o).0, "from host");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "out\n");
    // The name is taken while the container exists.
    let o = rbuild(&root, &["run", "--name", "first", "bb:1", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).1.contains("already in use"), "{:?}", text(&o));
    // Kept: its record and its writable layer.
    let containers: Vec<_> =
        std::fs::read_dir(root.join("containers")).unwrap().flatten().filter(|e| e.file_name() != "names").collect();
    assert_eq!(containers.len(), 1);
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(containers[0].path().join("state.json")).unwrap()).unwrap();
    assert_eq!(rec["status"], "exited");
    assert_eq!(rec["exit_code"], 0);
    // The named volume outlives it and is shared with the next container.
    let o = rbuild(
        &root,
        &[
            "run",
            "--rm",
            "--volume",
            "data:/data:ro",
            "bb:1",
            "sh",
            "-c",
            "cat /data/f; touch /data/x 2>/dev/null || echo ro; cat /root-file 2>/dev/null || echo fresh",
        ],
    );
    assert_eq!(text(&o).0, "kept\nro\nfresh\n", "{:?}", text(&o));
    // --rm leaves nothing but the kept one.
    let n = std::fs::read_dir(root.join("containers")).unwrap().flatten().filter(|e| e.file_name() != "names").count();
    assert_eq!(n, 1);
    assert!(
        std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("sandbox-"))
    );
}

#[test]
fn tty_is_the_containers_own_terminal() {
    require_root();
    assert!(
        Path::new("/usr/bin/script").exists(),
        "script (util-linux) is missing: it provides the terminal for this test"
    );
    let d = tempfile::tempdir().unwrap();
    let root = store_with_busybox(d.path());
    let cmd = format!(
        "{} --root {} run --rm -it bb:1 sh -c 'tty; stty size; echo $TERM; exit 5'",
        env!("CARGO_BIN_EXE_rbuild"),
        root.display()
    );
    // script's stdin stays open and silent: at EOF script types its terminal's EOF character,
    // which with -i reaches the container's terminal (echoed as ^@ once it is raw).
    let mut child = Command::new("script")
        .args(["-eqc", &format!("stty rows 33 cols 91; {cmd}"), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    let out = out.replace('\r', "");
    assert_eq!(status.code(), Some(5), "{out}");
    assert!(out.ends_with("/dev/pts/0\n33 91\nxterm\n"), "{out:?}");
}
