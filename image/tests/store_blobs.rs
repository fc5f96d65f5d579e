//! The store's blobs, tags, resolution and gc, through the public API.

use rbuild_image::manifest::{ImageManifest, RawManifest};
use rbuild_image::store::{GcOptions, Store};
use rbuild_image::{Descriptor, Digest, Error, ImageConfig, Reference, media_type as mt};
use std::io::Write;
use std::path::Path;

fn files_under(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// A one-layer image stored (not tagged); returns its manifest.
fn put_image(store: &Store, layer: &[u8], created: &str) -> RawManifest {
    let layer_d = store.put_blob_bytes(layer).unwrap();
    let mut c = ImageConfig::for_host();
    c.created = Some(created.into());
    c.rootfs.diff_ids = vec![layer_d.clone()];
    let cb = c.to_canonical_bytes();
    let cd = store.put_blob_bytes(&cb).unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(mt::OCI_CONFIG, cd, cb.len() as u64),
        layers: vec![Descriptor::new(mt::OCI_LAYER_TAR, layer_d, layer.len() as u64)],
        subject: None,
        annotations: Default::default(),
    };
    let raw = RawManifest::from_image(&m).unwrap();
    store.put_manifest(&raw).unwrap();
    raw
}

#[test]
fn layout_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("oci-layout")).unwrap(), r#"{"imageLayoutVersion":"1.0.0"}"#);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["schemaVersion"], 2);
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 0);
    // Opening again changes nothing.
    Store::open(dir.path()).unwrap();
    let d = store.put_blob_bytes(b"abc").unwrap();
    assert_eq!(std::fs::read(dir.path().join("blobs/sha256").join(d.hex())).unwrap(), b"abc");
}

#[test]
fn ingest_verifies_before_it_stores() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let good = Digest::sha256_of(b"good");

    // Wrong content for the digest asked: refused, nothing stored, no temp left.
    let mut w = store.ingest().unwrap();
    w.write_all(b"evil").unwrap();
    let err = w.commit(Some(&good), None).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&good));
    assert!(!store.has_blob(&Digest::sha256_of(b"evil")));
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(files_under(&dir.path().join("tmp")).is_empty());

    // Wrong size: refused.
    let mut w = store.ingest().unwrap();
    w.write_all(b"good").unwrap();
    assert!(w.commit(Some(&good), Some(5)).is_err());
    assert!(!store.has_blob(&good));

    // put_blob_verified with a lying digest: refused.
    assert!(store.put_blob_verified(&b"evil"[..], &good, None).is_err());
    assert!(!store.has_blob(&good));

    // Dropped uncommitted: the temp file goes.
    let mut w = store.ingest().unwrap();
    w.write_all(b"half").unwrap();
    drop(w);
    assert!(files_under(&dir.path().join("tmp")).is_empty());

    // And the right bytes go in.
    store.put_blob_verified(&b"good"[..], &good, Some(4)).unwrap();
    assert_eq!(store.read_blob(&good).unwrap(), b"good");
    assert_eq!(store.blob_size(&good).unwrap(), Some(4));
    assert!(matches!(store.open_blob(&Digest::sha256_of(b"nope")), Err(Error::NotFound(_))));

    // A blob corrupted on disk is caught when read.
    std::fs::write(store.blob_path(&good), b"bad!").unwrap();
    assert!(matches!(store.read_blob(&good), Err(Error::DigestMismatch { .. })));
}

#[test]
fn tags_and_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = put_image(&store, b"layer a", "2024-01-01T00:00:00Z");
    let b = put_image(&store, b"layer b", "2024-01-02T00:00:00Z");
    let app = Reference::parse("app").unwrap();
    store.tag(&app, &a.descriptor()).unwrap();
    store.tag(&Reference::parse("localhost:5000/x/y:v1").unwrap(), &b.descriptor()).unwrap();

    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docker.io/library/app:latest", "localhost:5000/x/y:v1"]);
    assert_eq!(idx["manifests"][0]["annotations"]["io.containerd.image.name"], "docker.io/library/app:latest");

    let by_name = store.resolve("app").unwrap();
    assert_eq!(by_name.manifest.digest(), a.digest());
    assert_eq!(by_name.reference.as_ref().unwrap().to_string(), "docker.io/library/app:latest");
    for s in ["app:latest", "docker.io/library/app:latest", "docker.io/library/app"] {
        assert_eq!(store.resolve(s).unwrap().manifest.digest(), a.digest(), "{s}");
    }
    let cfg_b = b.as_image().unwrap().config.digest.clone();
    assert_eq!(store.resolve("localhost:5000/x/y:v1").unwrap().config_digest, cfg_b);
    assert_eq!(store.resolve(&b.digest().to_string()).unwrap().config_digest, cfg_b);
    assert_eq!(store.resolve(&format!("app@{}", a.digest())).unwrap().manifest.digest(), a.digest());
    assert_eq!(store.resolve(&cfg_b.to_string()).unwrap().manifest.digest(), b.digest());
    assert_eq!(store.resolve(&cfg_b.hex()[..12]).unwrap().manifest.digest(), b.digest());
    assert_eq!(store.resolve(&format!("sha256:{}", &cfg_b.hex()[..6])).unwrap().manifest.digest(), b.digest());
    assert!(matches!(store.resolve("nothere"), Err(Error::NotFound(_))));
    let bad = store.resolve("Bad:Name:x").unwrap_err();
    assert!(matches!(bad, Error::InvalidReference { .. }), "{bad}");

    // An ID prefix two images share is ambiguous, and the error names both.
    let mut imgs = vec![a.clone(), b.clone()];
    let mut n = 0;
    let (x, y) = loop {
        // Find two configs whose IDs share a first hex digit... and use one digit: too short.
        // Prefixes need 4 characters; make images until two share 4.
        let m = put_image(&store, format!("extra {n}").as_bytes(), "2024-01-03T00:00:00Z");
        n += 1;
        let id = m.as_image().unwrap().config.digest.hex()[..4].to_string();
        if let Some(o) = imgs.iter().find(|o| o.as_image().unwrap().config.digest.hex()[..4] == id) {
            break (o.clone(), m);
        }
        imgs.push(m);
    };
    store.tag(&Reference::parse("x1").unwrap(), &x.descriptor()).unwrap();
    store.tag(&Reference::parse("y1").unwrap(), &y.descriptor()).unwrap();
    let prefix = &x.as_image().unwrap().config.digest.hex()[..4];
    let err = store.resolve(prefix).unwrap_err().to_string();
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains(&x.as_image().unwrap().config.digest.hex()[..12]), "{err}");

    // Retag replaces; untag removes.
    store.tag(&app, &b.descriptor()).unwrap();
    assert_eq!(store.resolve("app").unwrap().manifest.digest(), b.digest());
    assert!(store.untag(&app).unwrap());
    assert!(!store.untag(&app).unwrap());
    assert!(store.lookup_tag(&app).unwrap().is_none());

    // A tag must point at a manifest that is here.
    let ghost = Descriptor::new(mt::OCI_MANIFEST, Digest::sha256_of(b"ghost"), 5);
    assert!(matches!(store.tag(&app, &ghost), Err(Error::NotFound(_))));
    let with_digest = Reference::parse(&format!("app@{}", a.digest())).unwrap();
    assert!(store.tag(&with_digest, &a.descriptor()).is_err());
}

#[test]
fn concurrent_tagging_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m = put_image(&store, b"shared", "2024-01-01T00:00:00Z");
    let root = dir.path().to_path_buf();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let root = root.clone();
            let d = m.descriptor();
            std::thread::spawn(move || {
                let s = Store::open(&root).unwrap();
                for j in 0..5 {
                    s.tag(&Reference::parse(&format!("t{i}:v{j}")).unwrap(), &d).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.list_tags().unwrap().len(), 80);
}

#[test]
fn gc_sweeps_only_what_nothing_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = put_image(&store, b"kept layer", "2024-01-01T00:00:00Z");
    let gone = put_image(&store, b"gone layer", "2024-01-01T00:00:01Z");
    let pinned = store.put_blob_bytes(b"cache layer").unwrap();
    let stray = store.put_blob_bytes(b"stray").unwrap();
    store.tag(&Reference::parse("kept").unwrap(), &kept.descriptor()).unwrap();
    store.set_gc_root("build-cache", &[Descriptor::new(mt::OCI_LAYER_TAR, pinned.clone(), 11)]).unwrap();

    // A referrer (signature) of the kept image lives with it.
    let sig_cfg = store.put_blob_bytes(b"{}").unwrap();
    let referrer = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: Some("application/example.sig".into()),
        config: Descriptor::new(mt::OCI_EMPTY, sig_cfg.clone(), 2),
        layers: vec![],
        subject: Some(kept.descriptor()),
        annotations: Default::default(),
    };
    let referrer = RawManifest::from_image(&referrer).unwrap();
    store.put_manifest(&referrer).unwrap();

    let dry = store.gc(true).unwrap();
    assert!(dry.dry_run);
    assert!(store.has_blob(&stray), "a dry run removes nothing");

    let report = store.gc(false).unwrap();
    let removed: Vec<&Digest> = report.removed.iter().map(|(d, _)| d).collect();
    let gone_img = gone.as_image().unwrap();
    for d in [gone.digest(), &gone_img.config.digest, &gone_img.layers[0].digest, &stray] {
        assert!(removed.contains(&d), "{d} should go");
        assert!(!store.has_blob(d));
    }
    assert_eq!(report.removed.len(), 4);
    assert_eq!(report.freed_bytes, report.removed.iter().map(|(_, s)| s).sum::<u64>());
    assert_eq!(dry.removed, report.removed);
    for d in [kept.digest(), &kept.as_image().unwrap().config.digest, &pinned, referrer.digest(), &sig_cfg] {
        assert!(store.has_blob(d), "{d} should stay");
    }
    assert!(store.resolve("kept").is_ok());

    // Dropping the roots lets the pinned blob go.
    let all = store.gc_with(GcOptions { ignore_roots: true, ..Default::default() }).unwrap();
    assert_eq!(all.roots_removed, 1);
    assert!(!store.has_blob(&pinned));
    assert!(store.has_blob(kept.digest()));
}
