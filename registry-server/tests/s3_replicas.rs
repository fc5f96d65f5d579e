//! Several rbuild-registry replicas on one SeaweedFS bucket (started per test): garbage
//! collection while pushes go through another replica, the GC lease, cache invalidation
//! across replicas, and racing tag pushes.

mod common;

use bytes::Bytes;
use common::seaweed::Seaweed;
use rbuild_image::{Descriptor, Digest, ImageManifest, RawManifest, media_type as mt};
use rbuild_registry_server::gc::{self, GcOptions, LeaseOptions};
use rbuild_registry_server::storage::{FsDriver, MemoryDriver, S3Driver, StorageDriver};
use rbuild_registry_server::{Config, Server};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Generous: only a machine that is badly stuck gets there.
const DEADLINE: Duration = Duration::from_secs(60);

fn replica_config(sw: &Seaweed, bucket: &str, refresh: Duration) -> Config {
    let mut cfg = Config::for_tests(sw.dir.path().join("unused-root"));
    cfg.storage.driver = "s3".into();
    cfg.storage.s3 = sw.config(bucket, "");
    cfg.storage.cache_refresh = Some(refresh);
    cfg
}

async fn replicas(sw: &Seaweed, bucket: &str, n: usize, refresh: Duration) -> Vec<Server> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Server::start(replica_config(sw, bucket, refresh)).await.unwrap());
    }
    out
}

async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    loop {
        let r = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        let (st, body) = (r.status().as_u16(), r.text().await.unwrap_or_default());
        if st == 201 {
            return d;
        }
        // A collection with no grace may take an upload session between its POST and its data;
        // the client starts the upload over. Anything else is a failure.
        assert!(st == 404 && body.contains("BLOB_UPLOAD_UNKNOWN"), "pushing blob {d} to {base}: {st} {body}");
        RESTARTED_UPLOADS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Uploads started over because a collection took their session.
static RESTARTED_UPLOADS: AtomicUsize = AtomicUsize::new(0);

/// Push the layers and config of a fresh image (unique bytes from `seed`); returns its manifest.
async fn push_parts(c: &reqwest::Client, base: &str, repo: &str, seed: &str, layers: usize) -> RawManifest {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
    let cd = push_blob(c, base, repo, config.as_bytes()).await;
    let mut descs = Vec::new();
    for i in 0..layers {
        let body = format!("layer {i} of {seed} ").repeat(50 + i * 7);
        let d = push_blob(c, base, repo, body.as_bytes()).await;
        descs.push(Descriptor::new(mt::OCI_LAYER_GZIP, d, body.len() as u64));
    }
    RawManifest::from_image(&ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(mt::OCI_CONFIG, cd, config.len() as u64),
        layers: descs,
        subject: None,
        annotations: BTreeMap::new(),
    })
    .unwrap()
}

/// PUT a manifest; the status and the error body.
async fn put_manifest(c: &reqwest::Client, base: &str, repo: &str, reference: &str, m: &RawManifest) -> (u16, String) {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", m.media_type())
        .body(m.bytes().to_vec())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// GET `repo:reference` from `base` and every blob it references, checking every digest.
/// Returns the manifest's digest, or the status when the manifest is not there.
async fn pull(c: &reqwest::Client, base: &str, repo: &str, reference: &str) -> Result<Digest, u16> {
    let r = c
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Accept", mt::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let header = Digest::parse(r.headers()["docker-content-digest"].to_str().unwrap()).unwrap();
    let body = r.bytes().await.unwrap();
    let digest = Digest::sha256_of(&body);
    assert_eq!(digest, header, "{base}/{repo}:{reference}: body and Docker-Content-Digest disagree");
    let raw = RawManifest::parse(body.to_vec(), Some(&ct)).unwrap();
    for d in raw.references() {
        let r = c.get(format!("{base}/v2/{repo}/blobs/{}", d.digest)).send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "{repo}:{reference} ({digest}) references {} which {base} does not serve",
            d.digest
        );
        assert_eq!(Digest::sha256_of(&r.bytes().await.unwrap()), d.digest, "blob {} corrupt", d.digest);
    }
    Ok(digest)
}

fn opts(grace: Duration) -> GcOptions {
    GcOptions { dry_run: false, delete_untagged: true, grace }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_on_one_replica_while_pushes_go_through_others() {
    let sw = Seaweed::start().await;
    let rs = replicas(&sw, "gcpush", 3, Duration::from_millis(300)).await;
    let (a, b, c) = (&rs[0], &rs[1], &rs[2]);
    let client = reqwest::Client::new();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let retried = Arc::new(AtomicUsize::new(0));

    // Pushers on B and C: each round a fresh image under a tag of its own (kept), and a fresh
    // image under a tag that moves every round (the previous one becomes garbage).
    let pusher = |base: String, who: &'static str| {
        let (client, retried) = (client.clone(), retried.clone());
        tokio::spawn(async move {
            let mut kept = Vec::new();
            for i in 0..12 {
                for (tag, seed) in [
                    (format!("{who}-{i}"), format!("{who}-keep-{i}")),
                    (format!("{who}-moving"), format!("{who}-tmp-{i}")),
                ] {
                    let digest = loop {
                        let m = push_parts(&client, &base, "app", &seed, 3).await;
                        let (st, body) = put_manifest(&client, &base, "app", &tag, &m).await;
                        if st == 201 {
                            break m.digest().clone();
                        }
                        // The only refusal allowed: a blob the collector took before the manifest
                        // came (the tiny grace). Then the push starts over, blobs included.
                        assert_eq!(st, 400, "{tag}: {body}");
                        assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{tag}: {body}");
                        retried.fetch_add(1, Ordering::Relaxed);
                    };
                    if tag.ends_with(&format!("-{i}")) {
                        kept.push((tag, digest));
                    }
                }
            }
            kept
        })
    };
    let p1 = pusher(b.url(), "b");
    let p2 = pusher(c.url(), "c");

    // GC on A in a loop, with a grace far below the test's length; every other run with no
    // grace at all (then a push may be refused, never left dangling).
    let registry = a.state().registry.clone();
    let gc_done = done.clone();
    let collector = tokio::spawn(async move {
        let (mut runs, mut blobs, mut manifests, mut in_use) = (0, 0, 0, 0);
        while !gc_done.load(Ordering::Relaxed) {
            let grace = if runs % 2 == 1 { Duration::ZERO } else { Duration::from_secs(2) };
            match gc::collect(&registry, &opts(grace)).await {
                Ok(r) => {
                    runs += 1;
                    blobs += r.blobs_deleted.len();
                    manifests += r.manifests_deleted.len();
                    in_use += r.kept_in_use;
                }
                Err(e) => panic!("gc failed: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (runs, blobs, manifests, in_use)
    });
    let mut kept = p1.await.unwrap();
    kept.extend(p2.await.unwrap());
    // Let the last garbage age past the grace, and collect once more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    done.store(true, Ordering::Relaxed);
    let (runs, blobs, manifests, in_use) = collector.await.unwrap();
    let last = gc::collect(&a.state().registry, &opts(Duration::from_secs(2))).await.unwrap();
    eprintln!(
        "{runs} collections during the pushes deleted {blobs} blobs and {manifests} manifests and kept {in_use} candidates \
         a push claimed or linked meanwhile; the last one deleted {} and {}; {} pushes retried, {} uploads restarted",
        last.blobs_deleted.len(),
        last.manifests_deleted.len(),
        retried.load(Ordering::Relaxed),
        RESTARTED_UPLOADS.load(Ordering::Relaxed)
    );
    assert!(runs >= 2, "the collector ran {runs} times");
    assert!(blobs + last.blobs_deleted.len() > 0, "nothing was ever collected: the test proves nothing");

    // Every image whose push succeeded pulls back whole, from every replica.
    assert_eq!(kept.len(), 24);
    for (tag, digest) in &kept {
        for s in [a, b, c] {
            assert_eq!(pull(&client, &s.url(), "app", tag).await, Ok(digest.clone()), "{tag} from {}", s.url());
        }
    }
    // The moving tags point at their last image, whole.
    for who in ["b", "c"] {
        pull(&client, &a.url(), "app", &format!("{who}-moving")).await.unwrap();
    }
    // And no manifest left in the bucket points at a blob that is gone.
    let store = S3Driver::new(&sw.config("gcpush", "")).unwrap();
    let revisions = store.list("repositories/app/_manifests/revisions/sha256").await.unwrap();
    assert!(revisions.len() >= kept.len());
    for hex in revisions {
        let d = format!("sha256:{hex}");
        assert_eq!(pull(&client, &b.url(), "app", &d).await.map(|x| x.to_string()), Ok(d.clone()), "revision {d}");
    }
    for s in rs {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_collection_at_a_time_across_replicas() {
    let sw = Seaweed::start().await;
    let rs = replicas(&sw, "lease", 2, Duration::from_millis(300)).await;
    let (a, b) = (&rs[0], &rs[1]);
    let client = reqwest::Client::new();
    let (ra, rb) = (a.state().registry.clone(), b.state().registry.clone());

    // A lease held on A's side: B's collection refuses, naming the holder.
    let lease = gc::acquire_lease(ra.driver(), &LeaseOptions::default()).await.unwrap();
    let e = gc::collect(&rb, &opts(Duration::ZERO)).await.unwrap_err();
    assert!(gc::is_busy(&e), "{e}");
    assert!(e.to_string().contains("already running") && e.to_string().contains("pid"), "{e}");
    lease.release().await.unwrap();
    gc::collect(&rb, &opts(Duration::ZERO)).await.unwrap();

    // Two at once, with garbage to sweep: one runs, the other refuses (or, if the first was
    // already done, runs after it); never both failing, never anything but "busy".
    for i in 0..3 {
        let m = push_parts(&client, &a.url(), "junk", &format!("junk-{i}"), 2).await;
        assert_eq!(put_manifest(&client, &a.url(), "junk", "t", &m).await.0, 201);
    }
    push_blob(&client, &b.url(), "junk", b"an orphan").await;
    let zero = opts(Duration::ZERO);
    let (x, y) = tokio::join!(gc::collect(&ra, &zero), gc::collect(&rb, &zero));
    assert!(x.is_ok() || y.is_ok(), "{x:?} {y:?}");
    for r in [&x, &y] {
        if let Err(e) = r {
            assert!(gc::is_busy(e), "{e}");
        }
    }
    let deleted: usize = [&x, &y].iter().filter_map(|r| r.as_ref().ok()).map(|r| r.blobs_deleted.len()).sum();
    assert!(deleted >= 5, "two old images (2 layers + config + manifest each) and an orphan: {x:?} {y:?}");
    assert!(pull(&client, &b.url(), "junk", "t").await.is_ok());

    // A collector that dies holding the lease: the lease expires, then another takes it.
    let short = LeaseOptions { ttl: Duration::from_secs(1), skew: Duration::from_millis(200) };
    let crashed = gc::acquire_lease(ra.driver(), &short).await.unwrap();
    drop(crashed); // no release: as if the process was killed
    let e = gc::acquire_lease(rb.driver(), &short).await.err().expect("the lease is still held");
    assert!(gc::is_busy(&e));
    let start = Instant::now();
    let taken = loop {
        match gc::acquire_lease(rb.driver(), &short).await {
            Ok(l) => break l,
            Err(e) if gc::is_busy(&e) && start.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("the expired lease was never taken over: {e}"),
        }
    };
    assert!(taken.valid());
    taken.release().await.unwrap();
    for s in rs {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_new_is_won_exactly_once_on_every_driver() {
    let sw = Seaweed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let drivers: Vec<Arc<dyn StorageDriver>> = vec![
        Arc::new(S3Driver::new(&sw.config("createnew", "")).unwrap()),
        Arc::new(FsDriver::new(dir.path()).unwrap()),
        Arc::new(MemoryDriver::new()),
    ];
    for d in drivers {
        let tries = (0..8).map(|i| {
            let d = d.clone();
            async move { d.create_new("x/lease", Bytes::from(format!("writer {i}"))).await.unwrap() }
        });
        let won: Vec<bool> = futures::future::join_all(tries).await;
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{}: {won:?}", d.name());
        let winner = won.iter().position(|w| *w).unwrap();
        assert_eq!(d.get_content("x/lease").await.unwrap(), Bytes::from(format!("writer {winner}")), "{}", d.name());
        assert_eq!(d.list("x").await.unwrap(), vec!["lease"], "{}: no temp file left", d.name());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_moved_on_one_replica_is_seen_on_another_after_the_refresh() {
    let sw = Seaweed::start().await;
    let rs = replicas(&sw, "tags", 2, Duration::from_secs(1)).await;
    let (a, b) = (&rs[0], &rs[1]);
    let client = reqwest::Client::new();
    let m1 = push_parts(&client, &a.url(), "web", "one", 1).await;
    let m2 = push_parts(&client, &a.url(), "web", "two", 1).await;
    assert_eq!(put_manifest(&client, &a.url(), "web", "latest", &m1).await.0, 201);
    // B reads it (and caches it).
    assert_eq!(pull(&client, &b.url(), "web", "latest").await, Ok(m1.digest().clone()));
    assert_eq!(put_manifest(&client, &a.url(), "web", "latest", &m2).await.0, 201);
    // The replica that moved the tag answers the new manifest at once.
    assert_eq!(pull(&client, &a.url(), "web", "latest").await, Ok(m2.digest().clone()));
    // B: the old manifest or the new one, always whole, until it switches for good.
    let start = Instant::now();
    let (mut old, mut polls) = (0, 0);
    loop {
        polls += 1;
        let got = pull(&client, &b.url(), "web", "latest").await.unwrap();
        if &got == m2.digest() {
            break;
        }
        assert_eq!(&got, m1.digest());
        old += 1;
        assert!(start.elapsed() < DEADLINE, "B still serves the old tag after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("B served the previous manifest {old} times of {polls} polls, then the new one");
    for _ in 0..5 {
        assert_eq!(pull(&client, &b.url(), "web", "latest").await, Ok(m2.digest().clone()));
    }
    for s in rs {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_on_one_replica_reaches_the_others() {
    let sw = Seaweed::start().await;
    let rs = replicas(&sw, "deletes", 2, Duration::from_secs(1)).await;
    let (a, b) = (&rs[0], &rs[1]);
    let client = reqwest::Client::new();
    let blob = push_blob(&client, &a.url(), "lib", b"a blob to delete").await;
    let m = push_parts(&client, &a.url(), "lib", "doomed", 1).await;
    assert_eq!(put_manifest(&client, &a.url(), "lib", "v1", &m).await.0, 201);
    let head = |s: &Server, what: String| {
        let (client, url) = (client.clone(), format!("{}/v2/lib/{what}", s.url()));
        async move { client.head(url).send().await.unwrap().status().as_u16() }
    };
    // B caches both as present.
    for _ in 0..2 {
        assert_eq!(head(b, format!("blobs/{blob}")).await, 200);
        assert_eq!(head(b, format!("manifests/{}", m.digest())).await, 200);
    }
    // Deleted through A: A answers 404 at once; B once it re-read the generation.
    let r = client.delete(format!("{}/v2/lib/blobs/{blob}", a.url())).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = client.delete(format!("{}/v2/lib/manifests/{}", a.url(), m.digest())).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(head(a, format!("blobs/{blob}")).await, 404);
    assert_eq!(head(a, format!("manifests/{}", m.digest())).await, 404);
    assert_eq!(head(a, "manifests/v1".into()).await, 404);
    let start = Instant::now();
    while head(b, format!("blobs/{blob}")).await != 404 || head(b, format!("manifests/{}", m.digest())).await != 404 {
        assert!(start.elapsed() < DEADLINE, "B still serves what A deleted after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(head(b, "manifests/v1".into()).await, 404);
    assert_eq!(client.get(format!("{}/v2/lib/blobs/{blob}", b.url())).send().await.unwrap().status(), 404);
    for s in rs {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_pushes_of_one_tag_end_in_one_whole_image() {
    let sw = Seaweed::start().await;
    let rs = replicas(&sw, "race", 3, Duration::from_millis(500)).await;
    let (a, b, c) = (&rs[0], &rs[1], &rs[2]);
    let client = reqwest::Client::new();
    let (ua, ub) = (a.url(), b.url());
    let mut previous: Option<Digest> = None;
    for round in 0..8 {
        // Each side pushes its own blobs through its own replica, then the two manifests race.
        let (sda, sdb) = (format!("a{round}"), format!("b{round}"));
        let (ma, mb) =
            tokio::join!(push_parts(&client, &ua, "race", &sda, 2), push_parts(&client, &ub, "race", &sdb, 2));
        let (sa, sb) = tokio::join!(
            put_manifest(&client, &ua, "race", "tag", &ma),
            put_manifest(&client, &ub, "race", "tag", &mb)
        );
        assert_eq!((sa.0, sb.0), (201, 201), "{sa:?} {sb:?}");
        // Every replica settles on the same one of the two, and it is whole.
        let start = Instant::now();
        let settled = loop {
            let mut got = Vec::new();
            for s in [a, b, c] {
                let d = pull(&client, &s.url(), "race", "tag").await.unwrap();
                // Within the refresh interval a replica may still answer the previous round's.
                assert!(
                    &d == ma.digest() || &d == mb.digest() || Some(&d) == previous.as_ref(),
                    "round {round}: {d} is neither pushed manifest"
                );
                got.push(d);
            }
            if got.iter().all(|d| d == &got[0]) && (&got[0] == ma.digest() || &got[0] == mb.digest()) {
                break got[0].clone();
            }
            assert!(start.elapsed() < DEADLINE, "round {round}: replicas disagree after {DEADLINE:?}: {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // And it is what the bucket says.
        let d = S3Driver::new(&sw.config("race", "")).unwrap();
        let link = d.get_content("repositories/race/_manifests/tags/tag/current/link").await.unwrap();
        assert_eq!(std::str::from_utf8(&link).unwrap().trim(), settled.to_string());
        previous = Some(settled);
    }
    for s in rs {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_waits_for_a_collector_deciding_about_its_blob() {
    use rbuild_registry_server::registry::condemned_path;
    let sw = Seaweed::start().await;
    let rs = replicas(&sw, "condemned", 1, Duration::from_secs(1)).await;
    let a = &rs[0];
    let client = reqwest::Client::new();
    let m = push_parts(&client, &a.url(), "w", "waits", 1).await;
    let layer = m.references()[1].digest.clone();
    let d = S3Driver::new(&sw.config("condemned", "")).unwrap();
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();

    // A fresh marker: the manifest PUT waits until the "collector" lifts it, then succeeds.
    d.put_content(&condemned_path(&layer), Bytes::from(now_ms().to_string())).await.unwrap();
    let put = tokio::spawn({
        let (client, url, m) = (client.clone(), a.url(), m.clone());
        async move { put_manifest(&client, &url, "w", "v1", &m).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!put.is_finished(), "the PUT did not wait for the condemned marker");
    d.delete(&condemned_path(&layer)).await.unwrap();
    assert_eq!(put.await.unwrap().0, 201);
    assert!(pull(&client, &a.url(), "w", "v1").await.is_ok());

    // The "collector" deleted the blob instead: the PUT is refused, never stored dangling.
    let m2 = push_parts(&client, &a.url(), "w", "refused", 1).await;
    let layer2 = m2.references()[1].digest.clone();
    d.put_content(&condemned_path(&layer2), Bytes::from(now_ms().to_string())).await.unwrap();
    let put = tokio::spawn({
        let (client, url, m2) = (client.clone(), a.url(), m2.clone());
        async move { put_manifest(&client, &url, "w", "v2", &m2).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.delete(&rbuild_registry_server::paths::blob_data(&layer2)).await.unwrap();
    d.delete(&rbuild_registry_server::paths::blob_dir(&layer2)).await.unwrap();
    let (st, body) = put.await.unwrap();
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{body}");
    assert_eq!(pull(&client, &a.url(), "w", "v2").await, Err(404));

    // A leftover marker (its collector gave up long ago) is ignored.
    let m3 = push_parts(&client, &a.url(), "w", "stale", 1).await;
    let layer3 = m3.references()[1].digest.clone();
    d.put_content(&condemned_path(&layer3), Bytes::from_static(b"1000")).await.unwrap();
    assert_eq!(put_manifest(&client, &a.url(), "w", "v3", &m3).await.0, 201);
    for s in rs {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_in_flight_on_another_replica_survives_collection() {
    let sw = Seaweed::start().await;
    let rs = replicas(&sw, "sessions", 2, Duration::from_millis(300)).await;
    let (a, b) = (&rs[0], &rs[1]);
    let client = reqwest::Client::new();
    let grace = GcOptions { dry_run: false, delete_untagged: false, grace: Duration::from_secs(2) };
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);

    // Started on B longer than the grace period ago, but its last chunk just arrived.
    let r = client.post(format!("{}/v2/up/blobs/uploads/", b.url())).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let path = r.headers()["location"].to_str().unwrap().to_string();
    let path = path.strip_prefix(&b.url()).unwrap_or(&path).to_string();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = client
        .patch(format!("{}{path}", b.url()))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", "0-99999")
        .body(data[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let rep = gc::collect(&a.state().registry, &grace).await.unwrap();
    assert!(rep.uploads_deleted.is_empty(), "{rep:?}");

    // It goes on, on A, and finishes.
    let r = client
        .patch(format!("{}{path}", a.url()))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", "100000-199999")
        .body(data[100_000..200_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = client
        .put(format!("{}{path}{sep}digest={digest}", a.url()))
        .header("Content-Type", "application/octet-stream")
        .body(data[200_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let got = client.get(format!("{}/v2/up/blobs/{digest}", b.url())).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(Digest::sha256_of(&got), digest);

    // One left idle for longer than the grace period is collected.
    let r = client.post(format!("{}/v2/up/blobs/uploads/", b.url())).send().await.unwrap();
    let idle = r.headers()["location"].to_str().unwrap().to_string();
    let idle = idle.strip_prefix(&b.url()).unwrap_or(&idle).to_string();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rep = gc::collect(&a.state().registry, &grace).await.unwrap();
    assert_eq!(rep.uploads_deleted.len(), 1, "{rep:?}");
    assert_eq!(client.get(format!("{}{idle}", b.url())).send().await.unwrap().status(), 404);
    for s in rs {
        s.shutdown().await;
    }
}
