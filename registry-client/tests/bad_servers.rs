//! Registries that misbehave: wrong blob bytes, huge manifests, redirects to other hosts.

mod common;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rbuild_image::{Descriptor, Digest, ImageManifest, Platform, RawManifest, Reference, Store, media_type};
use rbuild_registry_client::progress::NoProgress;
use rbuild_registry_client::{Client, Credential, Error, Progress};
use std::sync::{Arc, Mutex};

fn serve(rt: &tokio::runtime::Runtime, app: axum::Router) -> String {
    let l = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    rt.spawn(async move { axum::serve(l, app).await.unwrap() });
    host
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn noprog() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

/// A manifest whose one layer is `layer` (declared with `claimed` as its digest).
fn manifest_for(config: &[u8], layer_digest: Digest, layer_size: u64) -> RawManifest {
    RawManifest::from_image(&ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media_type::OCI_CONFIG, Digest::sha256_of(config), config.len() as u64),
        layers: vec![Descriptor::new(media_type::OCI_LAYER_GZIP, layer_digest, layer_size)],
        subject: None,
        annotations: Default::default(),
    })
    .unwrap()
}

/// A registry serving `manifest` at tag `t`, and blobs from `blobs`.
fn fake_registry(
    manifest: Vec<u8>,
    blobs: Vec<(Digest, Vec<u8>)>,
    redirect_blobs_to: Option<String>,
    require_basic: bool,
) -> axum::Router {
    let manifest = Arc::new(manifest);
    let blobs = Arc::new(blobs);
    axum::Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri| {
        let manifest = manifest.clone();
        let blobs = blobs.clone();
        let redirect = redirect_blobs_to.clone();
        async move {
            let authed = headers.get(header::AUTHORIZATION).is_some();
            if require_basic && !authed {
                return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"fake\"")], "")
                    .into_response();
            }
            let path = uri.path();
            if path == "/v2/" {
                return StatusCode::OK.into_response();
            }
            if path.contains("/manifests/") {
                return ([(header::CONTENT_TYPE, media_type::OCI_MANIFEST)], manifest.as_ref().clone()).into_response();
            }
            if let Some(d) = path.split("/blobs/").nth(1) {
                if let Some(to) = &redirect {
                    return (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, format!("http://{to}/storage/{d}?sig=abc"))],
                        "",
                    )
                        .into_response();
                }
                if let Some((_, b)) = blobs.iter().find(|(x, _)| x.to_string() == d) {
                    return b.clone().into_response();
                }
            }
            StatusCode::NOT_FOUND.into_response()
        }
    })
}

#[test]
fn blob_bytes_that_do_not_match_their_digest_are_refused_and_not_stored() {
    let rt = rt();
    let config =
        b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}".to_vec();
    let good = vec![7u8; 5000];
    let evil = vec![8u8; 5000];
    let ld = Digest::sha256_of(&good);
    let m = manifest_for(&config, ld.clone(), 5000);
    let host = serve(
        &rt,
        fake_registry(
            m.bytes().to_vec(),
            vec![(Digest::sha256_of(&config), config.clone()), (ld.clone(), evil)],
            None,
            false,
        ),
    );
    let client = Client::new(common::fast_options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = rt
        .block_on(client.pull(
            &store,
            &Reference::parse(&format!("{host}/x/y:1")).unwrap(),
            &Platform::host(),
            &noprog(),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&ld.to_string()), "{err}");
    assert!(!store.has_blob(&ld));
    assert!(store.list_tags().unwrap().is_empty());
    // Sibling downloads cancelled by the failure drop their temp files as their writer
    // threads wind down.
    let tmp = dir.path().join("tmp");
    let mut left = Vec::new();
    for _ in 0..100 {
        left = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(left.is_empty(), "no temp files left: {left:?}");
}

#[test]
fn manifests_over_4_mib_are_refused() {
    let rt = rt();
    let mut huge =
        b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"annotations\":{\"x\":\""
            .to_vec();
    huge.extend(std::iter::repeat_n(b'a', 5 * 1024 * 1024));
    huge.extend_from_slice(b"\"}}");
    let host = serve(&rt, fake_registry(huge, vec![], None, false));
    let client = Client::new(common::fast_options()).unwrap();
    let r = Reference::parse(&format!("{host}/x/y:1")).unwrap();
    let err = rt.block_on(client.repository(&r, false).get_manifest("1")).unwrap_err();
    assert!(matches!(err, Error::ManifestTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("4 MiB"), "{err}");
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_host() {
    let rt = rt();
    let config = b"{}".to_vec();
    let layer = vec![3u8; 4000];
    let ld = Digest::sha256_of(&layer);
    let m = manifest_for(&config, ld.clone(), layer.len() as u64);
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen2 = seen.clone();
    let blobs = vec![(Digest::sha256_of(&config), config.clone()), (ld.clone(), layer.clone())];
    let storage = axum::Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri| {
        let seen = seen2.clone();
        let blobs = blobs.clone();
        async move {
            seen.lock().unwrap().push(headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_string()));
            let d = uri.path().trim_start_matches("/storage/").to_string();
            let (_, b) = blobs.iter().find(|(x, _)| x.to_string() == d).unwrap();
            Response::new(axum::body::Body::from(b.clone()))
        }
    });
    let storage_host = serve(&rt, storage);
    let host = serve(&rt, fake_registry(m.bytes().to_vec(), vec![], Some(storage_host), true));
    let client = Client::new(common::fast_options()).unwrap();
    client.set_credential(&host, Some(Credential::Basic { username: "u".into(), password: "p".into() }));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    rt.block_on(client.pull(
        &store,
        &Reference::parse(&format!("{host}/x/y:1")).unwrap(),
        &Platform::host(),
        &noprog(),
    ))
    .unwrap();
    assert_eq!(store.read_blob(&ld).unwrap(), layer);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(Option::is_none), "no Authorization at the storage host: {seen:?}");
}
