//! The client against real peers: Debian's docker-registry (no auth, htpasswd, token auth),
//! skopeo reading what rbuild pushes and writing what rbuild pulls, a fault-injecting proxy,
//! and small fake servers for the bad cases.

mod common;

use common::*;
use rbuild_image::{Platform, Store};
use rbuild_registry_client::{Client, ClientOptions, Credential, Error, PushOutcome};

#[test]
fn no_auth_push_pull_and_skopeo_reads_it() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(fast_options()).unwrap();
    let (_s, raw) = roundtrip(&client, &reg.host, "team/app");
    let out = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{}/team/app:v1", reg.host)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, raw.bytes(), "skopeo reads back the exact manifest bytes");
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{}/team/app:v1", reg.host)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], raw.digest().to_string());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 3);
}

#[test]
fn rbuild_pulls_what_skopeo_pushed() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let digest = make_oci_dir(dir.path(), 200_000);
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", dir.path().display()),
        &format!("docker://{}/from/skopeo:v1", reg.host),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = Client::new(fast_options()).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let pulled = rt()
        .block_on(client.pull(&store, &r(&format!("{}/from/skopeo:v1", reg.host)), &Platform::host(), &noprog()))
        .unwrap();
    assert_eq!(pulled.digest, digest);
    for d in pulled.manifest.references() {
        assert!(store.has_blob(&d.digest));
    }
}

#[test]
fn basic_auth() {
    let reg = Registry::start(Auth::Basic { user: "alice".into(), pass: "s3cret".into() });
    // Without credentials: a message that says what to do.
    let anon = Client::new(fast_options()).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let raw = make_image(&store, "x:1", 1, 1000, 1);
    let err = rt().block_on(anon.push(&store, &raw, &r(&format!("{}/a/b:1", reg.host)), &noprog())).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&format!("run `rbuild login {}`", reg.host)), "{err}");
    // Wrong password.
    let bad = Client::new(fast_options()).unwrap();
    bad.set_credential(&reg.host, Some(Credential::Basic { username: "alice".into(), password: "nope".into() }));
    assert!(matches!(rt().block_on(bad.verify_login(&reg.host, &reg.host)), Err(Error::Unauthorized { .. })));
    // With them, through a docker config.json.
    let cfgdir = tempfile::tempdir().unwrap();
    let mut dc = rbuild_registry_client::DockerConfig::load(&cfgdir.path().join("config.json")).unwrap();
    dc.store(&reg.host, &Credential::Basic { username: "alice".into(), password: "s3cret".into() }).unwrap();
    let opts = ClientOptions {
        docker_config: Some(rbuild_registry_client::DockerConfig::load(&cfgdir.path().join("config.json")).unwrap()),
        ..fast_options()
    };
    let client = Client::new(opts).unwrap();
    rt().block_on(client.verify_login(&reg.host, &reg.host)).unwrap();
    roundtrip(&client, &reg.host, "a/b");
}

#[test]
fn token_auth_with_cross_repo_mount_and_refresh_token() {
    let ts = TokenServer::start("bob", "pw", 300);
    let reg = Registry::start(Auth::Token(ts.clone()));
    let client = Client::new(fast_options()).unwrap();
    client.set_credential(&reg.host, Some(Credential::Basic { username: "bob".into(), password: "pw".into() }));
    let (store, raw) = roundtrip(&client, &reg.host, "base/img");
    // Another repository of the same registry: every blob is mounted, none sent.
    let pushed =
        rt().block_on(client.push(&store, &raw, &r(&format!("{}/other/app:v2", reg.host)), &noprog())).unwrap();
    assert_eq!((pushed.mounted, pushed.uploaded), (4, 0), "{pushed:?}");
    let log = ts.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|(_, q, _)| q.contains("repository%3Abase%2Fimg%3Apull") && q.contains("other%2Fapp%3Apull%2Cpush")),
        "mount asks pull on the source and push on the target: {log:?}"
    );
    // Anonymous: the token server grants nothing, the registry says 401.
    let anon = Client::new(fast_options()).unwrap();
    let s2 = tempfile::tempdir().unwrap();
    let err = rt()
        .block_on(anon.pull(
            &Store::open(s2.path()).unwrap(),
            &r(&format!("{}/base/img:v1", reg.host)),
            &Platform::host(),
            &noprog(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("rbuild login"), "{err}");
    // Login hands out a refresh token; a client holding only that can pull (OAuth2 POST).
    let refresh = rt().block_on(client.verify_login(&reg.host, &reg.host)).unwrap();
    assert_eq!(refresh.as_deref(), Some(REFRESH_TOKEN));
    let oauth = Client::new(fast_options()).unwrap();
    oauth.set_credential(&reg.host, Some(Credential::IdentityToken { token: REFRESH_TOKEN.into() }));
    let s3 = tempfile::tempdir().unwrap();
    let pulled = rt()
        .block_on(oauth.pull(
            &Store::open(s3.path()).unwrap(),
            &r(&format!("{}/other/app:v2", reg.host)),
            &Platform::host(),
            &noprog(),
        ))
        .unwrap();
    assert_eq!(&pulled.digest, raw.digest());
    assert!(ts.log.lock().unwrap().iter().any(|(m, body, _)| m == "POST" && body.contains("grant_type=refresh_token")));
}

#[test]
fn short_lived_tokens_are_renewed_during_a_push() {
    // Tokens live 1 s: a client that keeps working past that must fetch new ones for the
    // same scope instead of sending an expired token.
    let ts = TokenServer::start("bob", "pw", 1);
    let reg = Registry::start(Auth::Token(ts.clone()));
    let client = Client::new(ClientOptions { concurrency: 1, ..fast_options() }).unwrap();
    client.set_credential(&reg.host, Some(Credential::Basic { username: "bob".into(), password: "pw".into() }));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let one = make_image(&store, "x:1", 2, 500_000, 3);
    let two = make_image(&store, "x:2", 2, 500_000, 4);
    let rt = rt();
    let dest = r(&format!("{}/slow/app:1", reg.host));
    rt.block_on(client.push(&store, &one, &dest, &noprog())).unwrap();
    let push_scope = |log: &[(String, String, bool)]| {
        log.iter().filter(|(_, q, _)| q.contains("repository%3Aslow%2Fapp%3Apull%2Cpush")).count()
    };
    let before = push_scope(&ts.log.lock().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    rt.block_on(client.push(&store, &two, &dest, &noprog())).unwrap();
    let after = push_scope(&ts.log.lock().unwrap());
    assert!(after > before, "a new token after the first expired ({before} -> {after})");
    let s2 = tempfile::tempdir().unwrap();
    let pulled =
        rt.block_on(client.pull(&Store::open(s2.path()).unwrap(), &dest, &Platform::host(), &noprog())).unwrap();
    assert_eq!(&pulled.digest, two.digest());
}

#[test]
fn chunked_uploads() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(ClientOptions { chunk_size: Some(64 * 1024), ..fast_options() }).unwrap();
    roundtrip(&client, &reg.host, "chunked/app");
}

#[test]
fn survives_a_faulty_network() {
    let reg = Registry::start(Auth::None);
    let proxy = FaultProxy::start(&reg.host);
    let client = Client::new(fast_options()).unwrap();
    roundtrip(&client, &proxy.host, "flaky/app");
    let log = proxy.log.lock().unwrap();
    // Every layer (the config is too small to drop half of).
    assert!(log.dropped_downloads >= 3, "{log:?}");
    assert!(log.resumed_downloads >= log.dropped_downloads, "dropped downloads resume with Range: {log:?}");
    assert!(log.dropped_uploads >= 4, "{log:?}");
    assert!(log.status_503 > 0 && log.status_429 > 0, "{log:?}");
}

#[test]
fn copy_between_registries_and_within_one() {
    let a = Registry::start(Auth::None);
    let b = Registry::start(Auth::None);
    let client = Client::new(fast_options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let raw = make_image(&store, "x:1", 2, 100_000, 11);
    let rt = rt();
    rt.block_on(client.push(&store, &raw, &r(&format!("{}/src/app:1", a.host)), &noprog())).unwrap();
    let c = rt
        .block_on(client.copy(
            &r(&format!("{}/src/app:1", a.host)),
            &r(&format!("{}/dst/app", b.host)),
            false,
            &Platform::host(),
            &noprog(),
        ))
        .unwrap();
    assert_eq!((&c.digest, c.uploaded), (raw.digest(), 3));
    assert_eq!(c.reference.tag(), Some("1"), "the source's tag when the destination has none");
    let got = rt.block_on(client.repository(&r(&format!("{}/dst/app:1", b.host)), false).get_manifest("1")).unwrap();
    assert_eq!(got.bytes(), raw.bytes());
    let m = rt
        .block_on(client.copy(
            &r(&format!("{}/src/app:1", a.host)),
            &r(&format!("{}/mirror/app:2", a.host)),
            false,
            &Platform::host(),
            &noprog(),
        ))
        .unwrap();
    assert_eq!((m.mounted, m.uploaded), (3, 0));
}

#[test]
fn index_resolves_to_the_platform_asked_for_and_copy_all_keeps_it() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(fast_options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let amd = make_image(&store, "x:amd", 1, 10_000, 21);
    let arm = make_image(&store, "x:arm", 1, 10_000, 22);
    let rt = rt();
    let repo = client.repository(&r(&format!("{}/multi/app", reg.host)), true);
    for m in [&amd, &arm] {
        rt.block_on(client.push(&store, m, &r(&format!("{}/multi/app@{}", reg.host, m.digest())), &noprog())).unwrap();
    }
    let plat = |a: &str, v: Option<&str>| rbuild_image::Platform {
        architecture: a.into(),
        os: "linux".into(),
        os_version: None,
        os_features: vec![],
        variant: v.map(Into::into),
    };
    let mut d1 = amd.descriptor();
    d1.platform = Some(plat("amd64", None));
    let mut d2 = arm.descriptor();
    d2.platform = Some(plat("arm64", Some("v8")));
    let idx = rbuild_image::RawManifest::from_index(&rbuild_image::ImageIndex {
        schema_version: 2,
        media_type: Some(rbuild_image::media_type::OCI_INDEX.into()),
        artifact_type: None,
        manifests: vec![d1, d2],
        subject: None,
        annotations: Default::default(),
    })
    .unwrap();
    rt.block_on(repo.put_manifest("latest", &idx)).unwrap();
    let s2 = tempfile::tempdir().unwrap();
    let st2 = Store::open(s2.path()).unwrap();
    let pulled = rt
        .block_on(client.pull(
            &st2,
            &r(&format!("{}/multi/app", reg.host)),
            &Platform::parse("linux/arm64").unwrap(),
            &noprog(),
        ))
        .unwrap();
    assert_eq!(&pulled.digest, idx.digest());
    assert_eq!(pulled.manifest.digest(), arm.digest());
    let err = rt
        .block_on(client.pull(
            &st2,
            &r(&format!("{}/multi/app", reg.host)),
            &Platform::parse("linux/s390x").unwrap(),
            &noprog(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("linux/amd64, linux/arm64/v8"), "{err}");
    let c = rt
        .block_on(client.copy(
            &r(&format!("{}/multi/app", reg.host)),
            &r(&format!("{}/copy/all:x", reg.host)),
            true,
            &Platform::host(),
            &noprog(),
        ))
        .unwrap();
    assert_eq!(&c.digest, idx.digest());
    let back = rt.block_on(client.repository(&r(&format!("{}/copy/all", reg.host)), false).get_manifest("x")).unwrap();
    assert_eq!(back.bytes(), idx.bytes());
}

#[test]
fn a_registry_that_is_down_is_a_clear_error() {
    let port = free_port();
    let client = Client::new(fast_options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = rt()
        .block_on(client.pull(
            &Store::open(dir.path()).unwrap(),
            &r(&format!("127.0.0.1:{port}/a:1")),
            &Platform::host(),
            &noprog(),
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")) && text.contains("connection refused"), "{text}");
    assert!(text.contains("gave up after 5 tries"), "{text}");
}

#[test]
fn unknown_tag_and_repository_are_named() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(fast_options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = rt()
        .block_on(client.pull(
            &Store::open(dir.path()).unwrap(),
            &r(&format!("{}/none/here:v9", reg.host)),
            &Platform::host(),
            &noprog(),
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("v9") && text.contains("none/here") && text.contains(&reg.host), "{text}");
}

#[test]
fn blob_exists_and_outcomes() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(fast_options()).unwrap();
    let repo = client.repository(&r(&format!("{}/blobs/x", reg.host)), true);
    let data = bytes::Bytes::from_static(b"hello blob");
    let d = rbuild_image::Descriptor::new(
        "application/octet-stream",
        rbuild_image::Digest::sha256_of(&data),
        data.len() as u64,
    );
    let rt = rt();
    assert_eq!(rt.block_on(repo.blob_exists(&d.digest)).unwrap(), None);
    let src = rbuild_registry_client::BytesSource(data.clone());
    assert_eq!(rt.block_on(repo.push_blob(&d, &src, None, &noprog())).unwrap(), PushOutcome::Uploaded);
    assert_eq!(rt.block_on(repo.push_blob(&d, &src, None, &noprog())).unwrap(), PushOutcome::Exists);
    let got = rt.block_on(repo.fetch_blob(&d, Vec::new(), true, &noprog())).unwrap();
    assert_eq!(got, data);
    // A wrong digest for those bytes: refused by the registry, nothing stored.
    let wrong = rbuild_image::Descriptor::new("x", rbuild_image::Digest::sha256_of(b"other"), data.len() as u64);
    assert!(rt.block_on(repo.push_blob(&wrong, &src, None, &noprog())).is_err());
    assert_eq!(rt.block_on(repo.blob_exists(&wrong.digest)).unwrap(), None);
}

#[test]
fn push_streams_or_mounts_blobs_the_store_never_downloaded() {
    // A store that holds only the manifest and config of a base image (as the builder
    // leaves a lazily pulled base), with blob-sources.json saying where the layers are.
    let a = Registry::start(Auth::None);
    let b = Registry::start(Auth::None);
    let client = Client::new(fast_options()).unwrap();
    let full = tempfile::tempdir().unwrap();
    let sfull = Store::open(full.path()).unwrap();
    let raw = make_image(&sfull, "x:1", 2, 100_000, 31);
    let rt = rt();
    rt.block_on(client.push(&sfull, &raw, &r(&format!("{}/base/img:1", a.host)), &noprog())).unwrap();
    let lazy = tempfile::tempdir().unwrap();
    let slazy = Store::open(lazy.path()).unwrap();
    let m = raw.as_image().unwrap();
    slazy.put_blob_bytes(&sfull.read_blob(&m.config.digest).unwrap()).unwrap();
    slazy.put_manifest(&raw).unwrap();
    let mut sources = rbuild_registry_client::sources::BlobSources::load(lazy.path());
    for l in &m.layers {
        assert!(!slazy.has_blob(&l.digest));
        sources.record(&l.digest, &a.host, "base/img");
    }
    sources.save().unwrap();
    // Same registry: mounted. Another registry: streamed from the origin.
    let same = rt.block_on(client.push(&slazy, &raw, &r(&format!("{}/app/img:1", a.host)), &noprog())).unwrap();
    assert_eq!((same.mounted, same.uploaded), (2, 1), "{same:?}");
    let other = rt.block_on(client.push(&slazy, &raw, &r(&format!("{}/app/img:1", b.host)), &noprog())).unwrap();
    assert_eq!(other.uploaded, 3, "{other:?}");
    let s2 = tempfile::tempdir().unwrap();
    let pulled = rt
        .block_on(client.pull(
            &Store::open(s2.path()).unwrap(),
            &r(&format!("{}/app/img:1", b.host)),
            &Platform::host(),
            &noprog(),
        ))
        .unwrap();
    assert_eq!(&pulled.digest, raw.digest());
}
