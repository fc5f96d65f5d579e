//! The S3 driver against a real S3-compatible store (SeaweedFS, started per test): the shared
//! driver suite, skopeo through a registry on S3, and an upload that moves between replicas.

mod common;

use common::seaweed::Seaweed;
use common::{layout_manifest, skopeo, write_oci_layout};
use futures::StreamExt;
use rbuild_image::Digest;
use rbuild_registry_server::storage::{S3Driver, StorageDriver, testsuite};
use rbuild_registry_server::{Config, Server};
use std::path::Path;

fn s3_config(sw: &Seaweed, bucket: &str, prefix: &str) -> Config {
    let mut cfg = Config::for_tests(sw.dir.path().join("unused-root"));
    cfg.storage.driver = "s3".into();
    cfg.storage.s3 = sw.config(bucket, prefix);
    cfg
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_driver_passes_the_suite() {
    let sw = Seaweed::start().await;
    // A bucket that does not exist yet: the driver creates it.
    let d = S3Driver::new(&sw.config("suite", "")).unwrap();
    testsuite::run(&d).await;
    // The same again under a prefix, in an existing bucket.
    let d = S3Driver::new(&sw.config("suite", "some/prefix")).unwrap();
    testsuite::run(&d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_driver_streams_large_files_through_multipart_uploads() {
    let sw = Seaweed::start().await;
    // A region other than us-east-1: the bucket is created with a location constraint.
    let mut cfg = sw.config("large", "");
    cfg.region = Some("eu-west-1".into());
    let d = S3Driver::new(&cfg).unwrap();
    // Larger than two parts, in odd-sized chunks; appended in two pieces, then renamed.
    let big: Vec<u8> = (0..(2 * rbuild_registry_server::storage::s3::PART_SIZE + 12345) as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let chunks = |b: &[u8]| -> rbuild_registry_server::storage::ByteStream {
        let v: Vec<std::io::Result<bytes::Bytes>> =
            b.chunks(1_000_003).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        Box::pin(futures::stream::iter(v))
    };
    assert_eq!(d.write("w/big", chunks(&big)).await.unwrap(), big.len() as u64);
    assert_eq!(&d.get_content("w/big").await.unwrap()[..], &big[..]);
    let half = big.len() / 2;
    d.append("u/data", chunks(&big[..half])).await.unwrap();
    assert_eq!(d.append("u/data", chunks(&big[half..])).await.unwrap(), big.len() as u64);
    assert_eq!(d.stat("u/data").await.unwrap().unwrap().size, big.len() as u64);
    d.rename("u/data", "b/data").await.unwrap();
    assert_eq!(d.list("b").await.unwrap(), vec!["data"]);
    assert!(d.list("u").await.unwrap().is_empty());
    let got = d.get_content("b/data").await.unwrap();
    assert_eq!(Digest::sha256_of(&got), Digest::sha256_of(&big));
    // Reads from an offset inside a later part.
    let mut s = d.read("w/big", big.len() as u64 - 5).await.unwrap();
    let mut tail = Vec::new();
    while let Some(b) = s.next().await {
        tail.extend_from_slice(&b.unwrap());
    }
    assert_eq!(tail, &big[big.len() - 5..]);

    // A stream failing after more than a part: a write leaves the old content, an append
    // keeps what came before the error.
    let failing = |b: &[u8]| -> rbuild_registry_server::storage::ByteStream {
        let mut v: Vec<std::io::Result<bytes::Bytes>> =
            b.chunks(1_000_003).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        v.push(Err(std::io::Error::other("client went away")));
        Box::pin(futures::stream::iter(v))
    };
    assert!(d.write("b/data", failing(&big[..half])).await.is_err());
    assert_eq!(d.stat("b/data").await.unwrap().unwrap().size, big.len() as u64);
    d.put_content("u/data", bytes::Bytes::from_static(b"head")).await.unwrap();
    assert!(d.append("u/data", failing(&big[..half])).await.is_err());
    let got = d.get_content("u/data").await.unwrap();
    assert_eq!(&got[..4], b"head");
    assert_eq!(&got[4..], &big[..half]);
}

fn ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().expect("running skopeo");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Push a layout with skopeo to `push_host`, pull it back from `pull_host`; compare.
fn skopeo_roundtrip(push_host: &str, pull_host: &str, work: &Path) {
    let src = work.join("src");
    let md = write_oci_layout(&src, "v1", push_host);
    ok(skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(format!("docker://{push_host}/ns/app:v1")));
    let back = work.join("back");
    ok(skopeo()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{pull_host}/ns/app:v1"))
        .arg(format!("oci:{}:v1", back.display())));
    assert_eq!(layout_manifest(&back, "v1"), md, "manifest digest changed on the way");
    for entry in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let e = entry.unwrap();
        let theirs = std::fs::read(back.join("blobs/sha256").join(e.file_name())).unwrap();
        assert_eq!(std::fs::read(e.path()).unwrap(), theirs);
    }
    let out = ok(skopeo().args(["list-tags", "--tls-verify=false"]).arg(format!("docker://{pull_host}/ns/app")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"v1\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_round_trip_through_a_registry_on_s3() {
    let sw = Seaweed::start().await;
    let server = Server::start(s3_config(&sw, "registry", "one")).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let host = server.host();
    let w = work.path().to_path_buf();
    tokio::task::spawn_blocking(move || skopeo_roundtrip(&host, &host, &w)).await.unwrap();
    // The blobs really are in the bucket.
    let d = S3Driver::new(&sw.config("registry", "one")).unwrap();
    assert!(!d.list("blobs/sha256").await.unwrap().is_empty());
    assert!(d.stat("repositories/ns/app/_manifests/tags/v1/current/link").await.unwrap().is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_started_on_one_replica_finishes_on_another() {
    let sw = Seaweed::start().await;
    let a = Server::start(s3_config(&sw, "replicas", "")).await.unwrap();
    let b = Server::start(s3_config(&sw, "replicas", "")).await.unwrap();
    let client = reqwest::Client::new();
    let blob: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let digest = Digest::sha256_of(&blob);
    let (c1, c2, c3) = (&blob[..1_000_000], &blob[1_000_000..2_500_000], &blob[2_500_000..]);

    // POST + PATCH on replica A.
    let r = client.post(format!("{}/v2/ns/app/blobs/uploads/", a.url())).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let path = location.strip_prefix(&a.url()).unwrap_or(&location).to_string();
    assert!(path.starts_with("/v2/ns/app/blobs/uploads/"), "{location}");
    let r = client
        .patch(format!("{}{path}", a.url()))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("0-{}", c1.len() - 1))
        .body(c1.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // PATCH + PUT on replica B: it sees what A received.
    let r = client.get(format!("{}{path}", b.url())).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], format!("0-{}", c1.len() - 1));
    let r = client
        .patch(format!("{}{path}", b.url()))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("{}-{}", c1.len(), c1.len() + c2.len() - 1))
        .body(c2.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = client
        .put(format!("{}{path}{sep}digest={digest}", b.url()))
        .header("Content-Type", "application/octet-stream")
        .body(c3.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);

    // Readable from both, byte for byte.
    for s in [&a, &b] {
        let r = client.get(format!("{}/v2/ns/app/blobs/{digest}", s.url())).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let got = r.bytes().await.unwrap();
        assert_eq!(Digest::sha256_of(&got), digest);
        assert_eq!(got.len(), blob.len());
    }
    // The upload session is gone everywhere.
    let r = client.get(format!("{}{path}", a.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collection_on_s3() {
    use rbuild_registry_server::gc::{GcOptions, collect};
    let sw = Seaweed::start().await;
    let s3 = sw.config("collect", "");
    let reg = common::TestRegistry::start_with(|c| {
        c.storage.driver = "s3".into();
        c.storage.s3 = s3;
    })
    .await;
    let kept = reg.push_image("app", "v1", &[b"kept layer"]).await;
    let orphan = reg.push_blob("app", b"nobody points here").await;
    let r = reg.client.post(reg.url("/v2/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let registry = reg.server.state().registry.clone();

    // Within the grace period nothing goes.
    let opts =
        |grace| GcOptions { dry_run: false, delete_untagged: false, grace: std::time::Duration::from_secs(grace) };
    let report = collect(&registry, &opts(3600)).await.unwrap();
    assert!(report.blobs_deleted.is_empty() && report.uploads_deleted.is_empty(), "{report:?}");

    let report = collect(&registry, &opts(0)).await.unwrap();
    assert_eq!(report.blobs_deleted, vec![orphan.clone()]);
    assert_eq!(report.uploads_deleted.len(), 1, "{report:?}");
    let r = reg.client.get(reg.url(&format!("/v2/app/blobs/{orphan}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    for d in kept.references() {
        let r = reg.client.get(reg.url(&format!("/v2/app/blobs/{}", d.digest))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(Digest::sha256_of(&r.bytes().await.unwrap()), d.digest);
    }
    let r = reg.client.get(reg.url("/v2/app/manifests/v1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
