//! kill -9 of the real binary during 16 concurrent uploads, then a restart on the same
//! root: no partial or corrupt blob is visible, every completed push is intact.

mod common;

use futures::StreamExt;
use rbuild_image::Digest;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `rbuild-registry serve` on a free port; its process and base URL.
fn spawn_registry(root: &Path, extra: &[&str]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild-registry"))
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(root)
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning rbuild-registry");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("rbuild-registry exited before listening").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), format!("http://{addr}"))
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_16_uploads_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let (proc1, base) = spawn_registry(&root, &[]);
    let c = reqwest::Client::new();

    // Completed pushes before the crash.
    let mut done = Vec::new();
    for i in 0..4u64 {
        let data = pattern(1000 + i, 300_000);
        let d = Digest::sha256_of(&data);
        let r = c.post(format!("{base}/v2/done/app{i}/blobs/uploads/?digest={d}")).body(data).send().await.unwrap();
        assert_eq!(r.status(), 201);
        done.push((format!("done/app{i}"), d));
    }

    // 16 uploads in flight: half PATCH streams, half PUT-with-body; each sends 8 MiB slowly.
    const SIZE: usize = 8 * 1024 * 1024;
    let mut inflight = Vec::new();
    for i in 0..16u64 {
        let data = pattern(i, SIZE);
        let d = Digest::sha256_of(&data);
        let repo = format!("crash/r{i}");
        let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let body = futures::stream::iter(data.chunks(64 * 1024).map(|c| c.to_vec()).collect::<Vec<_>>()).then(
            |chunk| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, std::io::Error>(chunk)
            },
        );
        let req = if i % 2 == 0 {
            c.patch(format!("{base}{loc}"))
        } else {
            c.put(format!("{base}{loc}?digest={d}")).header("Content-Length", SIZE.to_string())
        };
        let req = req.body(reqwest::Body::wrap_stream(body));
        inflight.push((repo, d, loc, tokio::spawn(async move { req.send().await })));
    }
    // Wait until every upload has bytes on disk, then kill -9.
    for _ in 0..200 {
        let started = (0..16)
            .filter(|i| {
                let up = root.join(format!("repositories/crash/r{i}/_uploads"));
                std::fs::read_dir(up)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| std::fs::metadata(e.path().join("data")).map(|m| m.len() > 0).unwrap_or(false))
            })
            .count();
        if started == 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut proc1 = proc1;
    nix_kill9(proc1.0.id());
    let _ = proc1.0.wait();
    for (_, _, _, t) in inflight.iter_mut() {
        let r = t.await.unwrap();
        assert!(r.is_err() || !r.unwrap().status().is_success(), "an interrupted upload reported success");
    }

    // Restart on the same root.
    let (_proc2, base) = spawn_registry(&root, &[]);
    for (repo, d) in &done {
        let r = c.get(format!("{base}/v2/{repo}/blobs/{d}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(&Digest::sha256_of(&r.bytes().await.unwrap()), d, "completed push damaged");
    }
    for (repo, d, loc, _) in &inflight {
        let r = c.head(format!("{base}/v2/{repo}/blobs/{d}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "a partial blob is visible in {repo}");
        // The session survived the crash and reports what it had.
        let r = c.get(format!("{base}{loc}")).send().await.unwrap();
        assert_eq!(r.status(), 204);
    }
    // Every blob on disk hashes to its name; no stray temp files are visible as blobs.
    let mut count = 0;
    for e in walk(&root.join("blobs")) {
        if e.file_name().unwrap() == "data" {
            let hex = e.parent().unwrap().file_name().unwrap().to_str().unwrap().to_string();
            assert_eq!(Digest::sha256_of(&std::fs::read(&e).unwrap()).hex(), hex, "corrupt blob {}", e.display());
            count += 1;
        }
    }
    assert_eq!(count, done.len());
}

fn nix_kill9(pid: u32) {
    let st = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(st.success());
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
