//! Interrupted downloads: a `pull` killed mid-layer leaves its ingest in the store's
//! `tmp/`; `rbuild prune` removes it (no live process holds it), and a second `pull`
//! resumes it with a `Range` request instead of starting over.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::RBUILD;

const LAYER: usize = 8 << 20;
/// What the first download gets before the server stalls.
const FIRST: usize = 3 << 20;

/// What the test registry saw: for each layer GET, the Range asked and the bytes sent.
#[derive(Default)]
struct Seen {
    layer_gets: Vec<(Option<String>, usize)>,
}

/// A registry serving a one-layer image. While `stall` is set, a layer GET gets the first
/// `FIRST` bytes and then nothing (until the test ends); otherwise it is served whole, or
/// from the `Range` asked.
fn registry(stall: Arc<std::sync::atomic::AtomicBool>, seen: Arc<Mutex<Seen>>) -> (u16, Vec<u8>) {
    use sha2::Digest as _;
    let layer: Vec<u8> = (0..LAYER as u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let layer_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer)));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    )
    .into_bytes();
    let config_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&config)));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": LAYER}],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&manifest)));
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let layer2 = layer.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let (config, manifest, manifest_digest, config_digest, layer_digest, layer) = (
                config.clone(),
                manifest.clone(),
                manifest_digest.clone(),
                config_digest.clone(),
                layer_digest.clone(),
                layer2.clone(),
            );
            let (stall, seen) = (stall.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut b = [0u8; 4096];
                loop {
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
                    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or(""));
                    let range = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("range:").map(|v| v.trim().to_string()));
                    let reply = |s: &mut std::net::TcpStream, status: &str, ctype: &str, extra: &str, body: &[u8]| {
                        let h = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}\r\n",
                            body.len()
                        );
                        let _ = s.write_all(h.as_bytes());
                        if method != "HEAD" {
                            let _ = s.write_all(body);
                        }
                    };
                    if path == "/v2/" {
                        reply(&mut s, "200 OK", "application/json", "", b"{}");
                    } else if path.contains("/manifests/") {
                        let extra = format!("Docker-Content-Digest: {manifest_digest}\r\n");
                        reply(&mut s, "200 OK", "application/vnd.oci.image.manifest.v1+json", &extra, &manifest);
                    } else if path.ends_with(&config_digest) {
                        reply(&mut s, "200 OK", "application/octet-stream", "", &config);
                    } else if path.ends_with(&layer_digest) && method == "GET" {
                        let from = range
                            .as_deref()
                            .and_then(|r| r.strip_prefix("bytes="))
                            .and_then(|r| r.split('-').next())
                            .and_then(|n| n.parse::<usize>().ok())
                            .unwrap_or(0);
                        if stall.load(std::sync::atomic::Ordering::SeqCst) {
                            let h = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {LAYER}\r\n\r\n"
                            );
                            let _ = s.write_all(h.as_bytes());
                            let _ = s.write_all(&layer[..FIRST]);
                            seen.lock().unwrap().layer_gets.push((range.clone(), FIRST));
                            // Hold the connection without a byte more; the client is killed.
                            let _ = s.read(&mut b);
                            return;
                        }
                        let body = &layer[from..];
                        let (status, extra) = if from > 0 {
                            ("206 Partial Content", format!("Content-Range: bytes {from}-{}/{LAYER}\r\n", LAYER - 1))
                        } else {
                            ("200 OK", String::new())
                        };
                        reply(&mut s, status, "application/octet-stream", &extra, body);
                        seen.lock().unwrap().layer_gets.push((range.clone(), body.len()));
                    } else if path.ends_with(&layer_digest) {
                        let h = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {LAYER}\r\n\r\n"
                        );
                        let _ = s.write_all(h.as_bytes());
                    } else {
                        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            });
        }
    });
    (port, layer)
}

/// The ingest files in the store's tmp/, with their sizes.
fn ingests(root: &Path) -> Vec<(String, u64)> {
    let Ok(rd) = std::fs::read_dir(root.join("tmp")) else { return Vec::new() };
    let mut v: Vec<_> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ingest-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map(|m| m.len()).unwrap_or(0)))
        .collect();
    v.sort();
    v
}

fn rb(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(RBUILD).arg("--root").arg(root).args(args).stdin(Stdio::null()).output().unwrap()
}

/// Start a pull, wait until a good part of the layer is in the store's tmp/, kill it.
fn killed_pull(root: &Path, image: &str) -> u64 {
    let mut child = Command::new(RBUILD)
        .arg("--root")
        .arg(root)
        .args(["pull", "-q", image])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let have = loop {
        if let Some((_, n)) =
            ingests(root).into_iter().find(|(n, s)| n.ends_with(".partial") && *s >= (FIRST / 2) as u64)
        {
            break n;
        }
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the layer download did not get going: {:?}", ingests(root));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    have
}

#[test]
fn prune_removes_the_ingest_of_a_killed_pull() {
    let stall = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (port, _) = registry(stall, seen);
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    killed_pull(&root, &format!("127.0.0.1:{port}/slow:1"));
    assert!(!ingests(&root).is_empty(), "the killed pull left its ingest");
    let o = rb(&root, &["prune"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ingests(&root), Vec::<(String, u64)>::new(), "prune left ingests behind");
    assert!(String::from_utf8_lossy(&o.stdout).contains("interrupted"), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_second_pull_resumes_the_killed_one() {
    use sha2::Digest as _;
    let stall = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (port, layer) = registry(stall.clone(), seen.clone());
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    let image = format!("127.0.0.1:{port}/slow:1");
    let have = killed_pull(&root, &image);
    stall.store(false, std::sync::atomic::Ordering::SeqCst);
    let o = rb(&root, &["pull", "-q", &image]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let gets = std::mem::take(&mut seen.lock().unwrap().layer_gets);
    assert_eq!(gets.len(), 2, "{gets:?}");
    let (range, sent) = &gets[1];
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the second pull asked for no range: {gets:?}"));
    assert!(from >= have && from > 0, "resumed at {from}, {have} bytes were kept");
    assert_eq!(*sent as u64, LAYER as u64 - from, "only the rest was served");
    let blob = root.join("blobs/sha256").join(hex::encode(sha2::Sha256::digest(&layer)));
    assert_eq!(std::fs::read(&blob).unwrap(), layer, "the resumed blob is the layer");
    assert_eq!(ingests(&root), Vec::<(String, u64)>::new());
}
