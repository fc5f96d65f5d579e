//! Operations: metrics, health, read-only mode, TLS, graceful shutdown on SIGTERM, --help.

mod common;

use common::{TestRegistry, assert_error};
use futures::StreamExt;
use rbuild_image::Digest;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn metrics_and_health() {
    let reg = TestRegistry::start().await;
    reg.push_image("m", "v1", &[b"abc"]).await;
    let _ = reg.client.get(reg.url("/v2/m/manifests/nope")).send().await.unwrap();
    assert_eq!(reg.client.get(reg.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(reg.client.get(reg.url("/readyz")).send().await.unwrap().status(), 200);
    let m = reg.client.get(reg.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("rbuild_registry_http_requests_total{method=\"PUT\",status=\"201\"} 1"), "{m}");
    assert!(m.contains("rbuild_registry_http_requests_total{method=\"GET\",status=\"404\"} 1"), "{m}");
    assert!(m.contains("rbuild_registry_uploads_in_flight 0"), "{m}");
    let bytes_in: u64 =
        m.lines().find_map(|l| l.strip_prefix("rbuild_registry_bytes_received_total ")).unwrap().parse().unwrap();
    assert!(bytes_in >= 3, "{m}");
    assert!(m.contains("rbuild_registry_bytes_sent_total"));
}

#[tokio::test]
async fn read_only_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = {
        let reg = TestRegistry::start_with(|c| c.root = dir.path().to_path_buf()).await;
        reg.push_image("ro", "v1", &[b"x"]).await;
        reg.server.shutdown().await;
        Digest::sha256_of(b"x")
    };
    let reg = TestRegistry::start_with(|c| {
        c.root = dir.path().to_path_buf();
        c.read_only = true;
    })
    .await;
    let r = reg.client.post(reg.url("/v2/ro/blobs/uploads/")).send().await.unwrap();
    let st = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(st, 405);
    assert!(text.contains("UNSUPPORTED") && text.contains("read-only"), "{text}");
    let r = reg.client.delete(reg.url("/v2/ro/manifests/v1")).send().await.unwrap();
    assert_error(r, 405, "UNSUPPORTED").await;
    let r = reg.client.get(reg.url(&format!("/v2/ro/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reg.client.get(reg.url("/v2/ro/manifests/v1")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn tls_from_cert_and_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed_cert(dir.path());
    let reg = TestRegistry::start_with(|c| {
        c.tls = Some(rbuild_registry_server::config::TlsConfig { cert: cert.clone(), key: key.clone() });
    })
    .await;
    assert!(reg.server.url().starts_with("https://"));
    let c = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let r = c.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A real client over TLS.
    let src = dir.path().join("src");
    let md = common::write_oci_layout(&src, "v1", "tls");
    let host = reg.server.host();
    let out = tokio::task::spawn_blocking(move || {
        common::skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(format!("docker://{host}/tls/app:v1"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = c.head(reg.url("/v2/tls/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.headers()["docker-content-digest"], md.to_string());
    // Plain HTTP to the TLS port does not get a registry answer.
    let plain = reqwest::Client::new().get(format!("http://{}/v2/", reg.server.host())).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild-registry"))
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().unwrap().unwrap();
        if let Some(rest) = l.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{addr}");
    let c = reqwest::Client::new();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256_of(&data);
    let chunks: Vec<Vec<u8>> = data.chunks(100_000).map(|c| c.to_vec()).collect();
    let body = futures::stream::iter(chunks).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, std::io::Error>(c)
    });
    let req = c.post(format!("{base}/v2/slow/blobs/uploads/?digest={d}")).body(reqwest::Body::wrap_stream(body));
    let upload = tokio::spawn(req.send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let r = upload.await.unwrap().expect("the upload in flight was cut");
    assert_eq!(r.status(), 201);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let p = dir.path().join(format!("blobs/sha256/{}/{}/data", &d.hex()[..2], d.hex()));
    assert_eq!(std::fs::read(p).unwrap(), data);
}

#[test]
fn help_documents_every_subcommand_and_flag() {
    let bin = env!("CARGO_BIN_EXE_rbuild-registry");
    let top = String::from_utf8(Command::new(bin).arg("--help").output().unwrap().stdout).unwrap();
    for w in ["serve", "gc", "hash-password", "RBUILD_REGISTRY_ADDR", "RBUILD_REGISTRY_ROOT", "/metrics"] {
        assert!(top.contains(w), "--help lacks {w}:\n{top}");
    }
    let serve = String::from_utf8(Command::new(bin).args(["serve", "--help"]).output().unwrap().stdout).unwrap();
    for w in ["--config", "--addr", "--root", "--read-only", "127.0.0.1:5000", "./registry-data"] {
        assert!(serve.contains(w), "serve --help lacks {w}:\n{serve}");
    }
    let gc = String::from_utf8(Command::new(bin).args(["gc", "--help"]).output().unwrap().stdout).unwrap();
    for w in ["--dry-run", "--delete-untagged", "--grace", "--config", "--root"] {
        assert!(gc.contains(w), "gc --help lacks {w}:\n{gc}");
    }
    let out = Command::new(bin)
        .args(["hash-password", "joe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(b"pw\n")?;
            ch.wait_with_output()
        })
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let (u, h) = line.trim().split_once(':').unwrap();
    assert_eq!(u, "joe");
    assert!(bcrypt::verify("pw", h).unwrap());
}
