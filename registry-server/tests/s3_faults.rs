//! Faults on S3 storage, with real processes: the object store going away and coming back
//! (SeaweedFS killed and restarted under a running replica), a store that never answers, a
//! replica killed with SIGKILL in the middle of a push that another replica finishes, and blob
//! GETs redirected to presigned URLs of the store.

mod common;

use common::seaweed::{ACCESS_KEY, SECRET_KEY, Seaweed};
use common::{layout_manifest, skopeo, write_oci_layout};
use rbuild_image::{Descriptor, Digest, ImageManifest, RawManifest, media_type as mt};
use rbuild_registry_server::storage::{S3Driver, StorageDriver};
use rbuild_registry_server::{Config, Server};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `rbuild-registry serve` process on S3, logging to a file; SIGKILLed on drop.
struct Replica {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// A replica on `bucket` of `sw`, with short store limits so that faults show quickly.
    async fn start(sw: &Seaweed, bucket: &str, extra: &[(&str, &str)]) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.path().join("registry.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbuild-registry"));
        cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--root")
            .arg(dir.path().join("unused"))
            .env_remove("RUST_LOG")
            .env("RBUILD_REGISTRY_LOG_LEVEL", "info")
            .env("RBUILD_REGISTRY_STORAGE_DRIVER", "s3")
            .env("RBUILD_REGISTRY_S3_BUCKET", bucket)
            .env("RBUILD_REGISTRY_S3_ENDPOINT", sw.endpoint())
            .env("RBUILD_REGISTRY_S3_REGION", "us-east-1")
            .env("RBUILD_REGISTRY_S3_PATH_STYLE", "true")
            .env("RBUILD_REGISTRY_S3_REQUEST_TIMEOUT", "10s")
            .env("RBUILD_REGISTRY_S3_RETRY_TIMEOUT", "2s")
            .env("RBUILD_REGISTRY_S3_MAX_RETRIES", "2")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting rbuild-registry");
        let mut r = Replica { child, port, log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        let mut last = String::new();
        loop {
            if let Ok(Some(st)) = r.child.try_wait() {
                panic!("rbuild-registry exited ({st}):\n{}", r.log());
            }
            if let Ok(resp) = client.get(format!("{}/readyz", r.url())).send().await {
                if resp.status() == 200 {
                    return r;
                }
                last = resp.text().await.unwrap_or_default();
            }
            assert!(Instant::now() < deadline, "replica on port {port} not ready after 30 s: {last}\n{}", r.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, nothing flushed.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Deterministic bytes that do not compress (a xorshift stream).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn client() -> reqwest::Client {
    // Generous: a store that never answers must still end in a 503 well before this.
    reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

/// POST an upload; its path (`/v2/…/blobs/uploads/ID`).
async fn start_upload(c: &reqwest::Client, base: &str, repo: &str) -> String {
    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/v2/"), "Location should be a path: {loc}");
    loc
}

async fn patch(c: &reqwest::Client, base: &str, path: &str, from: usize, chunk: &[u8]) -> reqwest::Response {
    c.patch(format!("{base}{path}"))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("{from}-{}", from + chunk.len() - 1))
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
}

async fn finish(c: &reqwest::Client, base: &str, path: &str, d: &Digest) -> reqwest::Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    c.put(format!("{base}{path}{sep}digest={d}")).header("Content-Length", "0").send().await.unwrap()
}

/// Push `data` in `chunk`-byte PATCHes, then PUT the digest.
async fn push_chunked(c: &reqwest::Client, base: &str, repo: &str, data: &[u8], chunk: usize) -> Digest {
    let d = Digest::sha256_of(data);
    let path = start_upload(c, base, repo).await;
    for (i, part) in data.chunks(chunk).enumerate() {
        let r = patch(c, base, &path, i * chunk, part).await;
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
    }
    let r = finish(c, base, &path, &d).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    d
}

async fn push_monolithic(c: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    d
}

fn manifest(config: &[u8], layers: &[&[u8]]) -> RawManifest {
    RawManifest::from_image(&ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(mt::OCI_CONFIG, Digest::sha256_of(config), config.len() as u64),
        layers: layers
            .iter()
            .map(|l| Descriptor::new(mt::OCI_LAYER_GZIP, Digest::sha256_of(l), l.len() as u64))
            .collect(),
        subject: None,
        annotations: BTreeMap::new(),
    })
    .unwrap()
}

async fn put_manifest(c: &reqwest::Client, base: &str, repo: &str, tag: &str, m: &RawManifest) -> reqwest::Response {
    c.put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", m.media_type())
        .body(m.bytes().to_vec())
        .send()
        .await
        .unwrap()
}

/// Pull `repo:tag` from `base`: the manifest must be `m`, every blob must hash to its digest.
async fn pull_and_verify(c: &reqwest::Client, base: &str, repo: &str, tag: &str, m: &RawManifest) {
    let r = c.get(format!("{base}/v2/{repo}/manifests/{tag}")).header("Accept", mt::OCI_MANIFEST).send().await.unwrap();
    assert_eq!(r.status(), 200, "manifest {repo}:{tag} from {base}");
    assert_eq!(&r.bytes().await.unwrap()[..], m.bytes(), "manifest bytes from {base}");
    for desc in m.references() {
        let r = c.get(format!("{base}/v2/{repo}/blobs/{}", desc.digest)).send().await.unwrap();
        assert_eq!(r.status(), 200, "blob {} from {base}", desc.digest);
        let got = r.bytes().await.unwrap();
        assert_eq!(got.len() as u64, desc.size, "blob {} size from {base}", desc.digest);
        assert_eq!(Digest::sha256_of(&got), desc.digest, "blob {} from {base}", desc.digest);
    }
}

/// A 503 `UNAVAILABLE` with `Retry-After`.
async fn assert_unavailable(r: reqwest::Response, what: &str) {
    let status = r.status();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(status, 503, "{what}: {text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{what}: {text}");
    assert!(body["errors"][0]["detail"].as_str().unwrap().contains("storage is unavailable"), "{what}: {text}");
    assert!(retry_after.is_some_and(|v| v.parse::<u64>().is_ok()), "{what}: no Retry-After");
}

/// Every blob in the bucket hashes to its name: nothing half-written is visible.
async fn assert_blobs_whole(sw: &Seaweed, bucket: &str) -> usize {
    let d = S3Driver::new(&sw.config(bucket, "")).unwrap();
    let mut n = 0;
    for xx in d.list("blobs/sha256").await.unwrap() {
        for hex in d.list(&format!("blobs/sha256/{xx}")).await.unwrap() {
            let data = d.get_content(&format!("blobs/sha256/{xx}/{hex}/data")).await.unwrap();
            assert_eq!(Digest::sha256_of(&data).hex(), hex, "blob {hex} in bucket {bucket} is not whole");
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn store_outage_answers_503_and_the_replica_recovers_by_itself() {
    let mut sw = Seaweed::start().await;
    let reg = Replica::start(&sw, "outage", &[]).await;
    let (c, base) = (client(), reg.url());

    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let (l1, l2) = (noise(3_000_000, 1), noise(10_000_000, 2));
    push_monolithic(&c, &base, "ns/app", &config).await;
    push_chunked(&c, &base, "ns/app", &l1, 1_000_000).await;
    push_chunked(&c, &base, "ns/app", &l2, 4_000_000).await;
    let m1 = manifest(&config, &[&l1, &l2]);
    assert_eq!(put_manifest(&c, &base, "ns/app", "v1", &m1).await.status(), 201);
    pull_and_verify(&c, &base, "ns/app", "v1", &m1).await;

    // An upload under way when the store goes away.
    let l3 = noise(2_000_000, 3);
    let d3 = Digest::sha256_of(&l3);
    let upload = start_upload(&c, &base, "ns/app").await;
    assert_eq!(patch(&c, &base, &upload, 0, &l3[..1_000_000]).await.status(), 202);

    sw.kill();
    let blob = format!("{base}/v2/ns/app/blobs/{}", Digest::sha256_of(&l1));
    assert_unavailable(c.get(&blob).send().await.unwrap(), "blob GET").await;
    // The replica's cache may answer a tag it read less than its refresh interval (a second)
    // ago; after that, the manifest GET needs the store too.
    let deadline = Instant::now() + Duration::from_secs(20);
    let manifest_get = loop {
        let r = c.get(format!("{base}/v2/ns/app/manifests/v1")).send().await.unwrap();
        if r.status() != 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_unavailable(manifest_get, "manifest GET").await;
    // A HEAD may be answered from memory (a blob's size never changes), or be a 503.
    let st = c.head(&blob).send().await.unwrap().status();
    assert!(st == 200 || st == 503, "blob HEAD: {st}");
    let m2 = manifest(&config, &[&l2]);
    assert_unavailable(put_manifest(&c, &base, "ns/app", "v2", &m2).await, "manifest PUT").await;
    assert_unavailable(patch(&c, &base, &upload, 1_000_000, &l3[1_000_000..]).await, "upload PATCH").await;
    assert_unavailable(finish(&c, &base, &upload, &d3).await, "upload PUT").await;
    assert_unavailable(c.post(format!("{base}/v2/ns/app/blobs/uploads/")).send().await.unwrap(), "upload POST").await;
    let r = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503, "readyz while the store is down");
    assert_eq!(c.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    // One clear line per failed request: the endpoint, bucket, operation and key.
    let log = reg.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("object store unavailable")).collect();
    assert!(lines.len() >= 6, "a line per failed request:\n{log}");
    let blob_key = format!("blobs/sha256/{}", &Digest::sha256_of(&l1).hex()[..2]);
    let line =
        lines.iter().find(|l| l.contains(&blob_key)).unwrap_or_else(|| panic!("no log line for the blob GET:\n{log}"));
    assert!(line.contains(&format!("endpoint={}", sw.endpoint())), "{line}");
    assert!(line.contains("bucket=outage"), "{line}");
    assert!(line.contains("op=GET") || line.contains("op=HEAD") || line.contains("op=LIST"), "{line}");
    assert!(line.contains("reason="), "{line}");

    // The store comes back on the same ports and data: the same replica serves everything.
    sw.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.get(format!("{base}/readyz")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "replica not ready again:\n{}", reg.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pull_and_verify(&c, &base, "ns/app", "v1", &m1).await;
    // The upload finished during the outage left no blob; its session is intact and completes.
    let r = c.head(format!("{base}/v2/ns/app/blobs/{d3}")).send().await.unwrap();
    assert_eq!(r.status(), 404, "a blob whose upload failed must not be visible");
    let r = c.get(format!("{base}{upload}")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-999999");
    assert_eq!(patch(&c, &base, &upload, 1_000_000, &l3[1_000_000..]).await.status(), 202);
    assert_eq!(finish(&c, &base, &upload, &d3).await.status(), 201);
    let m3 = manifest(&config, &[&l1, &l3]);
    assert_eq!(put_manifest(&c, &base, "ns/app", "v3", &m3).await.status(), 201);
    pull_and_verify(&c, &base, "ns/app", "v3", &m3).await;
    assert_eq!(put_manifest(&c, &base, "ns/app", "v2", &m2).await.status(), 201);
    pull_and_verify(&c, &base, "ns/app", "v2", &m2).await;
    assert_eq!(assert_blobs_whole(&sw, "outage").await, 7, "config, 3 layers, 3 manifests");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_never_answers_gives_503_not_a_hang() {
    // Accepts connections, never answers: what a hung store or a black-holed route looks like.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            conns.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path().join("unused"));
    cfg.storage.driver = "s3".into();
    cfg.storage.s3.bucket = "hole".into();
    cfg.storage.s3.endpoint = Some(endpoint.clone());
    cfg.storage.s3.path_style = true;
    cfg.storage.s3.access_key_id = Some(ACCESS_KEY.into());
    cfg.storage.s3.secret_access_key = Some(SECRET_KEY.into());
    cfg.storage.s3.request_timeout = Duration::from_secs(1);
    cfg.storage.s3.retry_timeout = Duration::from_secs(1);
    cfg.storage.s3.max_retries = 1;
    let server = Server::start(cfg).await.unwrap();
    let c = client();
    let r = c.get(format!("{}/v2/ns/app/manifests/v1", server.url())).send().await.unwrap();
    assert_unavailable(r, "manifest GET from a silent store").await;
    let r = c.get(format!("{}/v2/ns/app/blobs/sha256:{}", server.url(), "a".repeat(64))).send().await.unwrap();
    assert_unavailable(r, "blob GET from a silent store").await;
    let r = c.get(format!("{}/readyz", server.url())).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains(&endpoint));
    server.shutdown().await;
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_push_leaves_the_upload_for_another_to_finish() {
    let sw = Seaweed::start().await;
    let mut a = Replica::start(&sw, "killed-mid-push", &[]).await;
    let b = Replica::start(&sw, "killed-mid-push", &[]).await;
    let cr = Replica::start(&sw, "killed-mid-push", &[]).await;
    let c = client();
    let repo = "team/app";

    let config = br#"{"architecture":"amd64","os":"linux","n":3}"#.to_vec();
    let layers = [noise(12_000_000, 11), noise(20_000_000, 12), noise(9_000_000, 13)];
    push_monolithic(&c, &a.url(), repo, &config).await;
    push_chunked(&c, &a.url(), repo, &layers[0], 5_000_000).await;

    // Layer 2 through A: one chunk, then a PATCH that A is killed in the middle of (more than a
    // multipart part received: a multipart upload to the store is under way).
    let chunk = 5_000_000;
    let upload = start_upload(&c, &a.url(), repo).await;
    assert_eq!(patch(&c, &a.url(), &upload, 0, &layers[1][..chunk]).await.status(), 202);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let second = 10_000_000;
    let in_flight = c
        .patch(format!("{}{upload}", a.url()))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("{chunk}-{}", chunk + second - 1))
        .header("Content-Length", second.to_string())
        .body(body)
        .send();
    let sender = async {
        for piece in layers[1][chunk..chunk + 9_000_000].chunks(1_000_000) {
            tx.send(Ok(bytes::Bytes::copy_from_slice(piece))).await.unwrap();
        }
        // Let A take it in (a pause, not a timed assertion), then kill it mid-request.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        a.kill();
        drop(tx);
    };
    let (resp, ()) = tokio::join!(in_flight, sender);
    assert!(resp.is_err() || !resp.unwrap().status().is_success(), "the PATCH to a killed replica cannot succeed");

    // Nothing of the broken PATCH is visible: B reports what A had committed.
    let d2 = Digest::sha256_of(&layers[1]);
    for r in [&b, &cr] {
        let resp = c.head(format!("{}/v2/{repo}/blobs/{d2}", r.url())).send().await.unwrap();
        assert_eq!(resp.status(), 404, "layer 2 must not be visible before its upload finishes");
    }
    let resp = c.get(format!("{}{upload}", b.url())).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["range"], format!("0-{}", chunk - 1));
    // The client resumes on B from there.
    let mut at = chunk;
    for part in layers[1][chunk..].chunks(4_000_000) {
        let resp = patch(&c, &b.url(), &upload, at, part).await;
        assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
        at += part.len();
    }
    let resp = finish(&c, &b.url(), &upload, &d2).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    push_monolithic(&c, &cr.url(), repo, &layers[2]).await;
    let m = manifest(&config, &[&layers[0], &layers[1], &layers[2]]);
    assert_eq!(put_manifest(&c, &b.url(), repo, "v1", &m).await.status(), 201);

    for r in [&b, &cr] {
        pull_and_verify(&c, &r.url(), repo, "v1", &m).await;
    }
    assert_eq!(assert_blobs_whole(&sw, "killed-mid-push").await, 5, "config, 3 layers, the manifest");
    // The session is gone everywhere.
    assert_eq!(c.get(format!("{}{upload}", cr.url())).send().await.unwrap().status(), 404);
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_gets_redirect_to_presigned_urls() {
    let sw = Seaweed::start().await;
    let reg = Replica::start(&sw, "redirect", &[("RBUILD_REGISTRY_S3_REDIRECT", "true")]).await;
    let c = client();
    let base = reg.url();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = noise(9_500_000, 21);
    push_monolithic(&c, &base, "ns/app", &config).await;
    let d = push_chunked(&c, &base, "ns/app", &layer, 3_000_000).await;
    let m = manifest(&config, &[&layer]);
    assert_eq!(put_manifest(&c, &base, "ns/app", "v1", &m).await.status(), 201);

    // Without following: a 307 to the store, signed, short-lived.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = plain.get(format!("{base}/v2/ns/app/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), 307);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&sw.endpoint()), "{loc}");
    assert!(loc.contains("X-Amz-Signature=") && loc.contains("X-Amz-Expires=300"), "{loc}");
    // HEAD is answered by the registry itself.
    let r = plain.head(format!("{base}/v2/ns/app/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], layer.len().to_string());
    // Access checks come first: a blob not in the repository is a 404, not a redirect.
    let r = plain.get(format!("{base}/v2/other/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Following: the whole blob, and ranges.
    pull_and_verify(&c, &base, "ns/app", "v1", &m).await;
    let r = c.get(format!("{base}/v2/ns/app/blobs/{d}")).header("Range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &layer[1000..2000]);
    let r = c.get(format!("{base}/v2/ns/app/blobs/{d}")).header("Range", "bytes=-10").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &layer[layer.len() - 10..]);

    // skopeo pushes and pulls through the redirects.
    let host = format!("127.0.0.1:{}", reg.port);
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let src = w.join("src");
        let md = write_oci_layout(&src, "v1", &host);
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(format!("docker://{host}/sk/app:v1")));
        let back = w.join("back");
        run(skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{host}/sk/app:v1"))
            .arg(format!("oci:{}:v1", back.display())));
        assert_eq!(layout_manifest(&back, "v1"), md);
        for e in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            assert_eq!(
                std::fs::read(e.path()).unwrap(),
                std::fs::read(back.join("blobs/sha256").join(e.file_name())).unwrap()
            );
        }
    })
    .await
    .unwrap();
    // Blob GETs were redirected: this test's (1 + 2 blobs, 2 ranges) and skopeo's (2 blobs).
    let metrics = c.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let redirects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rbuild_registry_http_requests_total{method=\"GET\",status=\"307\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(redirects >= 7, "{metrics}");
}
