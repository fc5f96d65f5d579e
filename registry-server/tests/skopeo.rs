//! Acceptance: skopeo (a real client) copies images in and out, without auth, with basic
//! auth, and with token auth (following the Bearer challenge to /token).

mod common;

use common::{htpasswd, layout_manifest, skopeo, write_oci_layout};
use rbuild_registry_server::config::AuthMode;
use rbuild_registry_server::{BackgroundServer, Config};
use std::path::Path;

fn run(cmd: &mut std::process::Command) -> std::process::Output {
    cmd.output().expect("running skopeo")
}

fn ok(cmd: &mut std::process::Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?} failed:\n{}\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Push a layout by tag, pull it back by tag and by digest, compare digests.
fn roundtrip(host: &str, work: &Path, creds: Option<&str>) {
    let src = work.join("src");
    let md = write_oci_layout(&src, "v1", host);
    let dest = format!("docker://{host}/ns/app:v1");
    let mut push = skopeo();
    push.args(["copy", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        push.args(["--dest-creds", c]);
    }
    push.arg(format!("oci:{}:v1", src.display())).arg(&dest);
    ok(&mut push);

    let back = work.join("back");
    let mut pull = skopeo();
    pull.args(["copy", "--src-tls-verify=false"]);
    if let Some(c) = creds {
        pull.args(["--src-creds", c]);
    }
    pull.arg(&dest).arg(format!("oci:{}:v1", back.display()));
    ok(&mut pull);
    assert_eq!(layout_manifest(&back, "v1"), md, "manifest digest changed on the way");

    let by_digest = work.join("bydigest");
    let mut pull = skopeo();
    pull.args(["copy", "--src-tls-verify=false"]);
    if let Some(c) = creds {
        pull.args(["--src-creds", c]);
    }
    pull.arg(format!("docker://{host}/ns/app@{md}")).arg(format!("oci:{}:x", by_digest.display()));
    ok(&mut pull);
    assert_eq!(layout_manifest(&by_digest, "x"), md);

    // Every blob came back byte for byte.
    for entry in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let e = entry.unwrap();
        let theirs = std::fs::read(back.join("blobs/sha256").join(e.file_name())).unwrap();
        assert_eq!(std::fs::read(e.path()).unwrap(), theirs);
    }

    // skopeo inspect and list-tags read it too.
    let mut tags = skopeo();
    tags.args(["list-tags", "--tls-verify=false"]);
    if let Some(c) = creds {
        tags.args(["--creds", c]);
    }
    tags.arg(format!("docker://{host}/ns/app"));
    let out = run(&mut tags);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"v1\""));
}

#[test]
fn skopeo_copies_in_and_out_without_auth() {
    let work = tempfile::tempdir().unwrap();
    let s = BackgroundServer::start(Config::for_tests(work.path().join("data"))).unwrap();
    roundtrip(&s.host(), work.path(), None);
}

#[test]
fn skopeo_with_basic_auth() {
    let work = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(work.path().join("data"));
    cfg.auth.mode = AuthMode::Basic;
    cfg.auth.htpasswd = Some(htpasswd(work.path(), "alice", "s3cret"));
    let s = BackgroundServer::start(cfg).unwrap();
    // Without credentials: refused.
    let src = work.path().join("anon");
    write_oci_layout(&src, "v1", "anon");
    let out = run(skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(format!("docker://{}/ns/anon:v1", s.host())));
    assert!(!out.status.success());
    // Wrong password: refused.
    let out = run(skopeo()
        .args(["copy", "--dest-tls-verify=false", "--dest-creds", "alice:wrong"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(format!("docker://{}/ns/anon:v1", s.host())));
    assert!(!out.status.success());
    assert!(!work.path().join("data/repositories/ns/anon/_manifests").exists());
    roundtrip(&s.host(), work.path(), Some("alice:s3cret"));
}

#[test]
fn skopeo_with_token_auth() {
    let work = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(work.path().join("data"));
    cfg.auth.mode = AuthMode::Token;
    cfg.auth.htpasswd = Some(htpasswd(work.path(), "bob", "hunter2"));
    let s = BackgroundServer::start(cfg).unwrap();
    let src = work.path().join("anon");
    write_oci_layout(&src, "v1", "anon");
    let out = run(skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(format!("docker://{}/ns/anon:v1", s.host())));
    assert!(!out.status.success(), "anonymous push went through");
    roundtrip(&s.host(), work.path(), Some("bob:hunter2"));
}
