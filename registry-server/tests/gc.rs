//! Garbage collection: mark from tags, indexes and referrers; sweep the rest; grace period;
//! dry run; online and offline.

mod common;

use common::TestRegistry;
use rbuild_image::{Digest, media_type as mt};
use rbuild_registry_server::gc::{GcOptions, collect};
use std::time::Duration;

fn opts(dry_run: bool, delete_untagged: bool, grace: u64) -> GcOptions {
    GcOptions { dry_run, delete_untagged, grace: Duration::from_secs(grace) }
}

async fn pullable(reg: &TestRegistry, repo: &str, reference: &str) -> bool {
    let r = reg.client.get(reg.url(&format!("/v2/{repo}/manifests/{reference}"))).send().await.unwrap();
    if r.status() != 200 {
        return false;
    }
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let raw = rbuild_image::RawManifest::parse(r.bytes().await.unwrap().to_vec(), Some(&ct)).unwrap();
    for d in raw.references() {
        let path = if mt::is_manifest(&d.media_type) || mt::is_index(&d.media_type) { "manifests" } else { "blobs" };
        let r = reg.client.get(reg.url(&format!("/v2/{repo}/{path}/{}", d.digest))).send().await.unwrap();
        if r.status() != 200 || Digest::sha256_of(&r.bytes().await.unwrap()) != d.digest {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn gc_marks_tags_indexes_and_referrers() {
    let reg = TestRegistry::start().await;
    let registry = reg.server.state().registry.clone();
    let a = reg.push_image("app", "a", &[b"layer-a", b"shared"]).await;
    let b = reg.push_image("app", "b", &[b"layer-b", b"shared"]).await;
    let c_img = reg.image_manifest("app", &[b"layer-c"], None).await;
    reg.put_manifest("app", &c_img.digest().to_string(), &c_img).await;
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX,
        "manifests": [{"mediaType": mt::OCI_MANIFEST, "digest": c_img.digest(), "size": c_img.bytes().len()}]});
    let ib = serde_json::to_vec(&index).unwrap();
    let r = reg
        .client
        .put(reg.url("/v2/app/manifests/idx"))
        .header("Content-Type", mt::OCI_INDEX)
        .body(ib)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sig = reg.image_manifest("app", &[b"signature"], Some(a.descriptor())).await;
    reg.put_manifest("app", &sig.digest().to_string(), &sig).await;
    let orphan = reg.push_blob("app", b"orphan").await;
    // Untag b.
    let r = reg.client.delete(reg.url("/v2/app/manifests/b")).send().await.unwrap();
    assert_eq!(r.status(), 202);

    // Inside the grace period nothing goes.
    let rep = collect(&registry, &opts(false, true, 3600)).await.unwrap();
    assert!(rep.blobs_deleted.is_empty() && rep.manifests_deleted.is_empty(), "{rep:?}");

    // Dry run: reports, deletes nothing.
    let rep = collect(&registry, &opts(true, false, 0)).await.unwrap();
    assert_eq!(rep.blobs_deleted, vec![orphan.clone()]);
    assert!(reg.root().join(format!("blobs/sha256/{}/{}", &orphan.hex()[..2], orphan.hex())).exists());

    // Untagged manifests kept: only the orphan goes.
    let rep = collect(&registry, &opts(false, false, 0)).await.unwrap();
    assert_eq!(rep.blobs_deleted, vec![orphan.clone()]);
    assert!(!reg.root().join(format!("blobs/sha256/{}/{}", &orphan.hex()[..2], orphan.hex())).exists());
    let r = reg.client.head(reg.url(&format!("/v2/app/blobs/{orphan}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(pullable(&reg, "app", &b.digest().to_string()).await);

    // Delete untagged: b and its own layer go; a, its referrer, the index and c stay.
    let rep = collect(&registry, &opts(false, true, 0)).await.unwrap();
    assert_eq!(rep.manifests_deleted, vec![format!("app@{}", b.digest())]);
    let expect = [b.digest().clone(), Digest::sha256_of(b"layer-b")];
    let got = rep.blobs_deleted.clone();
    assert!(expect.iter().all(|d| got.contains(d)), "{got:?}");
    assert!(!got.contains(&Digest::sha256_of(b"shared")));
    assert!(pullable(&reg, "app", "a").await);
    assert!(pullable(&reg, "app", "idx").await);
    assert!(pullable(&reg, "app", &c_img.digest().to_string()).await);
    assert!(pullable(&reg, "app", &sig.digest().to_string()).await);
    assert!(!pullable(&reg, "app", &b.digest().to_string()).await);
    let r = reg.client.get(reg.url(&format!("/v2/app/referrers/{}", a.digest()))).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["manifests"][0]["digest"], sig.digest().to_string());
}

#[tokio::test]
async fn online_gc_runs_on_its_interval() {
    let reg = TestRegistry::start_with(|c| {
        c.gc.interval = Some(Duration::from_millis(300));
        // Long enough for the push below (with 0 s a collection between its layer and its
        // manifest refuses the manifest: a slow machine saw that).
        c.gc.grace = Duration::from_secs(600);
    })
    .await;
    reg.push_image("keep", "v1", &[b"kept layer"]).await;
    let orphan = reg.push_blob("keep", b"orphan").await;
    let path = reg.root().join(format!("blobs/sha256/{}/{}", &orphan.hex()[..2], orphan.hex()));
    // The orphan is past the grace period: uploaded and linked an hour ago, as far as GC can tell.
    let link = reg.root().join(format!("repositories/keep/_layers/sha256/{}/link", orphan.hex()));
    for p in [path.join("data"), link] {
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
    }
    for _ in 0..100 {
        if !path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!path.exists(), "online GC never removed the orphan");
    assert!(pullable(&reg, "keep", "v1").await);
    let m = reg.client.get(reg.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("rbuild_registry_gc_runs_total"), "{m}");
}

#[test]
fn offline_gc_command() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let orphan = rt.block_on(async {
        let reg = TestRegistry::start_with(|c| c.root = dir.path().to_path_buf()).await;
        reg.push_image("x", "v1", &[b"l"]).await;
        let o = reg.push_blob("x", b"orphan!").await;
        reg.server.shutdown().await;
        o
    });
    let bin = env!("CARGO_BIN_EXE_rbuild-registry");
    let out = std::process::Command::new(bin)
        .args(["gc", "--dry-run", "--grace", "0s", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("would delete blob {orphan}")), "{text}");
    let out = std::process::Command::new(bin).args(["gc", "--grace", "0s", "--root"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("deleted blob {orphan}")));
    assert!(!dir.path().join(format!("blobs/sha256/{}/{}", &orphan.hex()[..2], orphan.hex())).exists());
}

#[tokio::test]
async fn a_claimed_blob_survives_and_a_stale_claim_does_not() {
    use rbuild_registry_server::registry::{claims_dir, condemned_path};
    let reg = TestRegistry::start().await;
    let registry = reg.server.state().registry.clone();
    let d = registry.driver().clone();
    let orphan = reg.push_blob("app", b"claimed orphan").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let claim = format!("{}/a-push", claims_dir(&orphan));
    let blob_dir = reg.root().join(format!("blobs/sha256/{}/{}", &orphan.hex()[..2], orphan.hex()));

    // A push relies on it (claimed a moment ago): kept, and its condemned marker lifted.
    d.put_content(&claim, bytes::Bytes::from(now.to_string())).await.unwrap();
    let rep = collect(&registry, &opts(false, false, 0)).await.unwrap();
    assert!(rep.blobs_deleted.is_empty(), "{rep:?}");
    assert_eq!(rep.kept_in_use, 1);
    assert!(d.stat(&condemned_path(&orphan)).await.unwrap().is_none());
    assert!(blob_dir.join("data").exists());

    // The push died long ago: its claim is a leftover, and the blob goes.
    d.put_content(&claim, bytes::Bytes::from_static(b"1000")).await.unwrap();
    let rep = collect(&registry, &opts(false, false, 0)).await.unwrap();
    assert_eq!(rep.blobs_deleted, vec![orphan.clone()]);
    assert!(!blob_dir.exists());

    // A directory a dead push left without data is cleaned up too.
    let ghost = Digest::sha256_of(b"never uploaded");
    d.put_content(&format!("{}/dead", claims_dir(&ghost)), bytes::Bytes::from_static(b"1000")).await.unwrap();
    collect(&registry, &opts(false, false, 0)).await.unwrap();
    assert!(!reg.root().join(format!("blobs/sha256/{}/{}", &ghost.hex()[..2], ghost.hex())).exists());
}

#[tokio::test]
async fn one_collection_at_a_time_on_the_filesystem() {
    use rbuild_registry_server::gc::{LeaseOptions, acquire_lease, is_busy};
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start_with(|c| c.root = dir.path().to_path_buf()).await;
    let registry = reg.server.state().registry.clone();
    let lease = acquire_lease(registry.driver(), &LeaseOptions::default()).await.unwrap();
    let e = collect(&registry, &opts(false, false, 0)).await.unwrap_err();
    assert!(is_busy(&e), "{e}");
    // The offline command says who holds it, and fails.
    let bin = env!("CARGO_BIN_EXE_rbuild-registry");
    let out = tokio::process::Command::new(bin)
        .args(["gc", "--grace", "0s", "--root"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running") && err.contains("pid"), "{err}");
    // With --wait it runs once the lease is given up.
    let waiting =
        tokio::process::Command::new(bin).args(["gc", "--wait", "--grace", "0s", "--root"]).arg(dir.path()).output();
    let waiting = tokio::spawn(waiting);
    tokio::time::sleep(Duration::from_millis(500)).await;
    lease.release().await.unwrap();
    let out = waiting.await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("blobs kept"));
    collect(&registry, &opts(false, false, 0)).await.unwrap();
}

#[tokio::test]
async fn a_blob_head_keeps_it_through_the_grace_period() {
    let reg = TestRegistry::start().await;
    let registry = reg.server.state().registry.clone();
    let blob = reg.push_blob("app", b"HEADed, then referenced").await;
    let grace = opts(false, false, 2);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // A client checks the blob is there (and would now skip uploading it)…
    let r = reg.client.head(reg.url(&format!("/v2/app/blobs/{blob}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // …so a collection right after leaves it for the manifest to come.
    let rep = collect(&registry, &grace).await.unwrap();
    assert!(rep.blobs_deleted.is_empty(), "{rep:?}");
    // Nobody used it for a whole grace period: it goes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rep = collect(&registry, &grace).await.unwrap();
    assert_eq!(rep.blobs_deleted, vec![blob]);
}
