//! The API over a socket (and one test without, through `oneshot`): pushes, pulls,
//! bad input, concurrency.

mod common;

use common::{TestRegistry, assert_error};
use rbuild_image::{Digest, RawManifest, media_type as mt};
use rbuild_registry_server::{AppState, Config, app};
use tower::ServiceExt as _;

#[tokio::test]
async fn oneshot_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(&Config::for_tests(dir.path())).unwrap();
    let router = app(state);
    let resp = router
        .clone()
        .oneshot(axum::http::Request::get("/v2/").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-distribution-api-version"], "registry/2.0");
    let resp = router
        .oneshot(axum::http::Request::get("/v2/a/manifests/latest").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn push_pull_roundtrip_with_layout_on_disk() {
    let reg = TestRegistry::start().await;
    let raw = reg.push_image("ns/app", "v1", &[b"layer-one", b"layer-two"]).await;
    let r = reg.client.get(reg.url("/v2/ns/app/manifests/v1")).header("Accept", mt::OCI_MANIFEST).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], mt::OCI_MANIFEST);
    assert_eq!(r.headers()["docker-content-digest"], raw.digest().to_string());
    assert_eq!(&r.bytes().await.unwrap()[..], raw.bytes());
    // The layout distribution uses.
    let root = reg.root();
    let ld = Digest::sha256_of(b"layer-one");
    assert_eq!(
        std::fs::read(root.join(format!("blobs/sha256/{}/{}/data", &ld.hex()[..2], ld.hex()))).unwrap(),
        b"layer-one"
    );
    assert!(root.join(format!("repositories/ns/app/_layers/sha256/{}/link", ld.hex())).is_file());
    assert_eq!(
        std::fs::read_to_string(root.join("repositories/ns/app/_manifests/tags/v1/current/link")).unwrap(),
        raw.digest().to_string()
    );
    // Blob GET, HEAD and Range.
    let r = reg.client.get(reg.url(&format!("/v2/ns/app/blobs/{ld}"))).send().await.unwrap();
    assert_eq!(r.headers()["docker-content-digest"], ld.to_string());
    assert_eq!(&r.bytes().await.unwrap()[..], b"layer-one");
    let r = reg.client.head(reg.url(&format!("/v2/ns/app/blobs/{ld}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "9");
    let r =
        reg.client.get(reg.url(&format!("/v2/ns/app/blobs/{ld}"))).header("Range", "bytes=2-4").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-4/9");
    assert_eq!(&r.bytes().await.unwrap()[..], b"yer");
    let r =
        reg.client.get(reg.url(&format!("/v2/ns/app/blobs/{ld}"))).header("Range", "bytes=50-").send().await.unwrap();
    assert_eq!(r.status(), 416);
    // Another repository cannot read it without a mount.
    let r = reg.client.get(reg.url(&format!("/v2/other/blobs/{ld}"))).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn bad_input_gets_the_right_errors() {
    let reg = TestRegistry::start().await;
    let c = &reg.client;
    // Bad JSON.
    let r = c
        .put(reg.url("/v2/a/manifests/t"))
        .header("Content-Type", mt::OCI_MANIFEST)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "MANIFEST_INVALID").await;
    // References a missing blob.
    let raw = reg.image_manifest("a", &[b"l1"], None).await;
    let mut v: serde_json::Value = serde_json::from_slice(raw.bytes()).unwrap();
    v["layers"][0]["digest"] = serde_json::Value::String(Digest::sha256_of(b"missing").to_string());
    let r = c
        .put(reg.url("/v2/a/manifests/t"))
        .header("Content-Type", mt::OCI_MANIFEST)
        .body(serde_json::to_vec(&v).unwrap())
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    // Wrong media type.
    let r = c
        .put(reg.url("/v2/a/manifests/t"))
        .header("Content-Type", mt::DOCKER_MANIFEST_LIST)
        .body(raw.bytes().to_vec())
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "MANIFEST_INVALID").await;
    // Digest mismatch, manifest and blob.
    let r = c
        .put(reg.url(&format!("/v2/a/manifests/{}", Digest::sha256_of(b"x"))))
        .header("Content-Type", mt::OCI_MANIFEST)
        .body(raw.bytes().to_vec())
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
    let r = c
        .post(reg.url(&format!("/v2/a/blobs/uploads/?digest={}", Digest::sha256_of(b"x"))))
        .body("not x")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
    assert!(!reg.root().join(format!("blobs/sha256/{}", &Digest::sha256_of(b"not x").hex()[..2])).exists());
    // Nothing of the refused manifests was stored.
    let r = c.get(reg.url("/v2/a/manifests/t")).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    // Names.
    for path in [
        "/v2/UPPER/tags/list",
        "/v2/a/../b/tags/list",
        "/v2/a/%2e%2e/b/tags/list",
        "/v2/a%2Fb/tags/list",
        "/v2/-a/tags/list",
        "/v2/../../etc/manifests/passwd",
        "/v2/a/blobs/uploads/..%2F..%2Fx",
    ] {
        let (status, body) = common::raw_request(reg.server.local_addr(), "GET", path).await;
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
        assert!(body.contains("NAME_INVALID") || body.contains("BLOB_UPLOAD_UNKNOWN"), "{path}: {body}");
    }
    // Over 4 MiB.
    let big = vec![b' '; 4 * 1024 * 1024 + 10];
    let r =
        c.put(reg.url("/v2/a/manifests/big")).header("Content-Type", mt::OCI_MANIFEST).body(big).send().await.unwrap();
    assert_error(r, 413, "MANIFEST_INVALID").await;
    // Bad Content-Range, and out of order.
    let r = c.post(reg.url("/v2/a/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = c.patch(reg.url(&loc)).header("Content-Range", "garbage").body("abc").send().await.unwrap();
    assert_error(r, 416, "RANGE_INVALID").await;
    let r = c.patch(reg.url(&loc)).header("Content-Range", "5-7").body("abc").send().await.unwrap();
    assert_error(r, 416, "RANGE_INVALID").await;
    let r = c.get(reg.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-0");
    // Unknown upload ids.
    for id in ["6c1f4c3e-0000-4000-8000-000000000000", "not-a-uuid"] {
        let r = c.patch(reg.url(&format!("/v2/a/blobs/uploads/{id}"))).body("x").send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
    // Missing digest on PUT.
    let r = c.put(reg.url(&loc)).send().await.unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
    // Bad tag and bad pagination.
    let r = c.get(reg.url("/v2/a/tags/list?n=-1")).send().await.unwrap();
    assert_error(r, 400, "PAGINATION_NUMBER_INVALID").await;
    // Unknown repository.
    let r = c.get(reg.url("/v2/nope/tags/list")).send().await.unwrap();
    assert_error(r, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn sixteen_clients_push_the_same_blob() {
    let reg = TestRegistry::start().await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = Digest::sha256_of(&data);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = reg.client.clone();
        let base = reg.server.url();
        let data = data.clone();
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let repo = format!("r{}", i % 4);
            let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            let (a, b) = data.split_at(1_000_000);
            let r = c
                .patch(format!("{base}{loc}"))
                .header("Content-Range", format!("0-{}", a.len() - 1))
                .body(a.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let r = c.put(format!("{base}{loc}?digest={d}")).body(b.to_vec()).send().await.unwrap();
            assert_eq!(r.status(), 201);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let dir = reg.root().join(format!("blobs/sha256/{}", &d.hex()[..2]));
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(std::fs::read(dir.join(d.hex()).join("data")).unwrap(), data);
    for i in 0..4 {
        let r = reg.client.get(reg.url(&format!("/v2/r{i}/blobs/{d}"))).send().await.unwrap();
        assert_eq!(Digest::sha256_of(&r.bytes().await.unwrap()), d);
    }
    // No upload left behind.
    for i in 0..4 {
        let up = reg.root().join(format!("repositories/r{i}/_uploads"));
        assert_eq!(std::fs::read_dir(up).map(|r| r.count()).unwrap_or(0), 0);
    }
}

#[tokio::test]
async fn upload_survives_a_restart_and_rehashes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::for_tests(dir.path());
    let c = reqwest::Client::new();
    let s1 = rbuild_registry_server::Server::start(cfg.clone()).await.unwrap();
    let r = c.post(format!("{}/v2/a/blobs/uploads/", s1.url())).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = c.patch(format!("{}{loc}", s1.url())).body("first half,").send().await.unwrap();
    assert_eq!(r.status(), 202);
    s1.shutdown().await;
    let s2 = rbuild_registry_server::Server::start(cfg).await.unwrap();
    let r = c.get(format!("{}{loc}", s2.url())).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-10");
    let d = Digest::sha256_of(b"first half,second half");
    let r = c.put(format!("{}{loc}?digest={d}", s2.url())).body("second half").send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = c.get(format!("{}/v2/a/blobs/{d}", s2.url())).send().await.unwrap();
    assert_eq!(&r.bytes().await.unwrap()[..], b"first half,second half");
    s2.shutdown().await;
}

#[tokio::test]
async fn docker_types_index_and_negotiation() {
    let reg = TestRegistry::start().await;
    let img = reg.push_image("multi", "amd", &[b"x"]).await;
    // A Docker manifest list over it, pushed by digest then tagged with ?tag=.
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": mt::OCI_MANIFEST, "digest": img.digest(), "size": img.bytes().len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}]
    });
    let bytes = serde_json::to_vec_pretty(&list).unwrap();
    let d = Digest::sha256_of(&bytes);
    let r = reg
        .client
        .put(reg.url(&format!("/v2/multi/manifests/{d}?tag=latest&tag=stable")))
        .header("Content-Type", mt::DOCKER_MANIFEST_LIST)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for tag in ["latest", "stable"] {
        // Accept excludes the list type: served anyway with its own type, as distribution does.
        let r = reg
            .client
            .get(reg.url(&format!("/v2/multi/manifests/{tag}")))
            .header("Accept", mt::OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], mt::DOCKER_MANIFEST_LIST);
        assert_eq!(&r.bytes().await.unwrap()[..], &bytes[..]);
    }
    let r = reg.client.get(reg.url("/v2/multi/tags/list")).send().await.unwrap();
    let tags: serde_json::Value = r.json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["amd", "latest", "stable"]));
    // An index pointing at a manifest that is not there.
    let bad = serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX,
        "manifests": [{"mediaType": mt::OCI_MANIFEST, "digest": Digest::sha256_of(b"nope"), "size": 4}]});
    let r = reg
        .client
        .put(reg.url("/v2/multi/manifests/bad"))
        .header("Content-Type", mt::OCI_INDEX)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    let _ = RawManifest::parse(bytes, None).unwrap();
}
