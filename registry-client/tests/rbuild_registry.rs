//! The client against rbuild's own registry server, started in-process.

mod common;

use common::*;
use rbuild_registry_client::{Client, ClientOptions};
use rbuild_registry_server::{BackgroundServer, Config};

fn start() -> (BackgroundServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = BackgroundServer::start(Config::for_tests(dir.path())).expect("rbuild-registry starts");
    (server, dir)
}

#[test]
fn push_pull_roundtrip() {
    let (server, _dir) = start();
    let client = Client::new(fast_options()).unwrap();
    roundtrip(&client, &server.host(), "rb/app");
}

#[test]
fn chunked_uploads() {
    let (server, _dir) = start();
    let client = Client::new(ClientOptions { chunk_size: Some(64 * 1024), ..fast_options() }).unwrap();
    roundtrip(&client, &server.host(), "rb/chunked");
}

#[test]
fn through_a_faulty_network() {
    let (server, _dir) = start();
    let proxy = FaultProxy::start(&server.host());
    let client = Client::new(fast_options()).unwrap();
    roundtrip(&client, &proxy.host, "rb/flaky");
    assert!(proxy.log.lock().unwrap().dropped_downloads >= 3);
}

#[test]
fn copy_from_docker_registry_to_rbuild_registry() {
    let (server, _dir) = start();
    let reg = Registry::start(Auth::None);
    let client = Client::new(fast_options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rbuild_image::Store::open(dir.path()).unwrap();
    let raw = make_image(&store, "x:1", 2, 50_000, 5);
    let rt = rt();
    rt.block_on(client.push(&store, &raw, &r(&format!("{}/a/b:1", reg.host)), &noprog())).unwrap();
    let c = rt
        .block_on(client.copy(
            &r(&format!("{}/a/b:1", reg.host)),
            &r(&format!("{}/c/d:1", server.host())),
            false,
            &rbuild_image::Platform::host(),
            &noprog(),
        ))
        .unwrap();
    assert_eq!(&c.digest, raw.digest());
    let back = rt.block_on(client.repository(&r(&format!("{}/c/d", server.host())), false).get_manifest("1")).unwrap();
    assert_eq!(back.bytes(), raw.bytes());
}
