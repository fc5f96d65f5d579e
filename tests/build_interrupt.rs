//! Interrupting `rbuild build` during a long RUN: SIGINT and SIGTERM stop it with exit
//! code 130 / 143 and leave no mount, no process, no scratch directory and no writable
//! snapshot; after a kill -9 of rbuild itself, the sandbox dies with it and the next build
//! removes what the killed one left. Needs root (CI runs as root) and busybox-static.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
    fn kill(pid: i32, sig: i32) -> i32;
}

fn require_root() {
    // SAFETY: geteuid has no failure mode.
    assert_eq!(unsafe { libc_geteuid() }, 0, "this test needs root (CI runs as root)");
    assert!(Path::new("/bin/busybox").exists(), "/bin/busybox is missing: apt-get install busybox-static");
}

fn store_with_busybox(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox" && !a.is_empty()) {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tarball = dir.join("rootfs.tar");
    let st = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg(".").status().unwrap();
    assert!(st.success());
    let root = dir.join("store");
    let o = Command::new(RBUILD).arg("--root").arg(&root).args(["import"]).arg(&tarball).arg("bb").output().unwrap();
    assert!(o.status.success(), "import: {}", String::from_utf8_lossy(&o.stderr));
    root
}

/// A context whose RUN prints a marker, then sleeps `secs` (a value only this test uses,
/// to find the process).
fn context(dir: &Path, name: &str, secs: u32) -> PathBuf {
    let ctx = dir.join(name);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM bb\nRUN echo started-{name} && sleep {secs}\n")).unwrap();
    ctx
}

/// Start a build and wait until its RUN printed the marker.
fn start(root: &Path, ctx: &Path, marker: &str) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(RBUILD)
        .arg("--root")
        .arg(root)
        .args(["build", "--progress", "plain", "-t", "long"])
        .arg(ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_string();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut line = String::new();
        let mut told = false;
        while err.read_line(&mut line).unwrap_or(0) > 0 {
            if !told && line.contains(&marker) && !line.contains("RUN") {
                let _ = tx.send(());
                told = true;
            }
            all.push_str(&line);
            line.clear();
        }
        all
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the RUN did not start: {}", reader.join().unwrap());
    }
    (child, reader)
}

fn sleepers(secs: u32) -> Vec<String> {
    let o = Command::new("pgrep").args(["-a", "-f", &format!("^sleep {secs}$")]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mounts_under(p: &Path) -> Vec<String> {
    let p = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .map(String::from)
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Writable snapshots (RUN steps, extractions) still on disk.
fn active_snapshots(root: &Path) -> Vec<String> {
    names_in(&root.join("snapshots/overlay"))
        .into_iter()
        .chain(names_in(&root.join("snapshots/copy")))
        .filter(|n| !n.starts_with("sha256_"))
        .collect()
}

#[test]
fn signals_stop_a_build_cleanly() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let root = store_with_busybox(d.path());
    for (sig, code, secs) in [(2, 130, 6301), (15, 143, 6302)] {
        let name = format!("sig{sig}");
        let ctx = context(d.path(), &name, secs);
        let (mut child, reader) = start(&root, &ctx, &format!("started-{name}"));
        assert_eq!(sleepers(secs).len(), 1, "the RUN is running");
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { kill(child.id() as i32, sig) }, 0);
        let st = child.wait().unwrap();
        let err = reader.join().unwrap();
        assert_eq!(st.code(), Some(code), "exit status {st:?} after signal {sig}:\n{err}");
        wait_until("the RUN's processes to die", || sleepers(secs).is_empty());
        assert_eq!(mounts_under(d.path()), Vec::<String>::new(), "a mount outlived the build");
        assert_eq!(names_in(&root.join("tmp")), Vec::<String>::new(), "left in the store's tmp/");
        assert_eq!(active_snapshots(&root), Vec::<String>::new(), "writable snapshots left");
        let o = Command::new(RBUILD).arg("--root").arg(&root).args(["inspect", "long"]).output().unwrap();
        assert!(!o.status.success(), "an interrupted build tagged nothing");
    }
}

#[test]
fn the_next_build_cleans_what_a_killed_one_left() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let root = store_with_busybox(d.path());
    let secs = 6303;
    let ctx = context(d.path(), "killed", secs);
    let (mut child, reader) = start(&root, &ctx, "started-killed");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = reader.join();
    // The sandbox dies with its parent (PR_SET_PDEATHSIG), its mounts with its namespace.
    wait_until("the RUN's processes to die", || sleepers(secs).is_empty());
    assert_eq!(mounts_under(d.path()), Vec::<String>::new(), "a mount outlived a kill -9");
    assert!(names_in(&root.join("tmp")).iter().any(|n| n.starts_with("sandbox-")), "a killed build cannot clean up");
    assert!(!active_snapshots(&root).is_empty());

    let quick = d.path().join("quick");
    std::fs::create_dir_all(&quick).unwrap();
    std::fs::write(quick.join("Dockerfile"), "FROM bb\nRUN echo quick > /q\n").unwrap();
    let o = Command::new(RBUILD)
        .arg("--root")
        .arg(&root)
        .args(["build", "--progress", "plain", "-t", "quick"])
        .arg(&quick)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        names_in(&root.join("tmp")),
        Vec::<String>::new(),
        "the next build removes the killed one's build and sandbox scratch directories"
    );
    assert_eq!(active_snapshots(&root), Vec::<String>::new(), "and its writable snapshots");
    assert_eq!(mounts_under(d.path()), Vec::<String>::new());
}

/// A registry that serves a one-layer image whose layer never finishes downloading, and
/// says when that download started.
fn stalling_registry() -> (u16, std::sync::mpsc::Receiver<()>) {
    use sha2::Digest as _;
    use std::io::{Read, Write};
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}"#.to_vec();
    let config_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&config)));
    let layer_digest = format!("sha256:{}", "2".repeat(64));
    let layer_size = 100_000_000u64;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&manifest)));
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let (config, manifest, manifest_digest, config_digest, layer_digest, tx) = (
                config.clone(),
                manifest.clone(),
                manifest_digest.clone(),
                config_digest.clone(),
                layer_digest.clone(),
                tx.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut b = [0u8; 4096];
                loop {
                    // One request per connection is enough for a client that reconnects.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let mut parts = head.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let reply = |s: &mut std::net::TcpStream, ctype: &str, extra: &str, body: &[u8]| {
                        let h = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}\r\n",
                            body.len()
                        );
                        let _ = s.write_all(h.as_bytes());
                        if method != "HEAD" {
                            let _ = s.write_all(body);
                        }
                    };
                    if path == "/v2/" {
                        reply(&mut s, "application/json", "", b"{}");
                    } else if path.contains("/manifests/") {
                        let extra = format!("Docker-Content-Digest: {manifest_digest}\r\n");
                        reply(&mut s, "application/vnd.oci.image.manifest.v1+json", &extra, &manifest);
                    } else if path.ends_with(&config_digest) {
                        reply(&mut s, "application/octet-stream", "", &config);
                    } else if path.ends_with(&layer_digest) {
                        let h = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {layer_size}\r\n\r\n"
                        );
                        let _ = s.write_all(h.as_bytes());
                        let _ = s.write_all(&[0u8; 1024]);
                        let _ = tx.send(());
                        std::thread::sleep(Duration::from_secs(120));
                        return;
                    } else {
                        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn a_signal_stops_a_base_layer_download() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    let (port, started) = stalling_registry();
    let ctx = d.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM 127.0.0.1:{port}/slow\nRUN true\n")).unwrap();
    let mut child = Command::new(RBUILD)
        .arg("--root")
        .arg(&root)
        .args(["build", "--progress", "plain", "-t", "slow"])
        .arg(&ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    if started.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the layer download did not start: {}", reader.join().unwrap());
    }
    let t = Instant::now();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { kill(child.id() as i32, libc::SIGINT) }, 0);
    let st = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(st.code(), Some(130), "{err}");
    // The download is abandoned, not waited for (the server holds it for 120 s).
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?} to stop:\n{err}", t.elapsed());
    assert_eq!(names_in(&root.join("tmp")), Vec::<String>::new(), "left in the store's tmp/");
    let layer = root.join("blobs/sha256").join("2".repeat(64));
    assert!(!layer.exists(), "no partial layer in the store");
    let o = Command::new(RBUILD).arg("--root").arg(&root).args(["inspect", "slow"]).output().unwrap();
    assert!(!o.status.success(), "an interrupted build tagged nothing");
}
