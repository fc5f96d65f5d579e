//! What the registry commands say and how often they try: login and push messages say what
//! happened (wrong credentials, or none sent); `rbuild build` honours RBUILD_MAX_TRIES as
//! pull does, and failures that cannot get better (a name that does not resolve) are not
//! tried again.

mod common;

use common::{Env, Registry};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn login_and_push_say_whether_credentials_were_wrong_or_missing() {
    let reg = Registry::start(Some(("alice", "s3cret")));
    let e = Env::new();
    let name = format!("{}/team/app:1", reg.host());
    assert!(e.rb(&["tag", "busybox", &name]).status.success());

    // No credentials saved: the push says none were sent, and what to do.
    let o = e.rb(&["push", &name]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("none are saved") && err.contains(&format!("rbuild login {}", reg.host())), "{err}");
    assert!(!err.contains("refused the credentials") && !err.contains("rejected"), "{err}");

    // A wrong password at login: says so, and does not tell them to run login again.
    let o = e.rb(&["login", "-u", "alice", "-p", "wrong", &reg.host()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("rejected the username or password"), "{err}");
    assert!(!err.contains("rbuild login"), "{err}");

    // Saved credentials that went stale: rejected, log in again to replace them.
    assert!(e.rb(&["login", "-u", "alice", "-p", "s3cret", &reg.host()]).status.success());
    let cfg = e.path("docker/config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let auth = v["auths"][reg.host()]["auth"].as_str().unwrap().to_string();
    // base64("alice:nope") in place of the saved pair.
    std::fs::write(&cfg, text.replace(&auth, "YWxpY2U6bm9wZQ==")).unwrap();
    let o = e.rb(&["push", &name]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("rejected the saved credentials") && err.contains("rbuild login"), "{err}");
}

/// A registry that answers every request with 503, counting them.
fn always_unavailable() -> (u16, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            h.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, hits)
}

fn build_from(e: &Env, base: &str, extra_env: &[(&str, &str)]) -> (bool, String) {
    let ctx = e.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\nRUN true\n")).unwrap();
    let mut c = std::process::Command::new(common::RBUILD);
    c.arg("--root").arg(e.root()).args(["build", "--progress", "plain", "-t", "x"]).arg(&ctx);
    c.env("DOCKER_CONFIG", e.path("docker")).env("RBUILD_MAX_TRIES", "2");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (o.status.success(), stderr(&o))
}

#[test]
fn build_honours_rbuild_max_tries() {
    let (port, hits) = always_unavailable();
    let e = Env::bare();
    let (ok, err) = build_from(&e, &format!("127.0.0.1:{port}/base/img:1"), &[]);
    assert!(!ok, "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "two tries, as RBUILD_MAX_TRIES=2 says: {err}");
    assert!(err.contains("503"), "{err}");
}

#[test]
fn a_name_that_does_not_resolve_is_not_tried_again() {
    let e = Env::bare();
    let (ok, err) = build_from(&e, "no-such-host.invalid/base/img:1", &[("RBUILD_MAX_TRIES", "5")]);
    assert!(!ok);
    assert!(err.contains("cannot resolve no-such-host.invalid"), "{err}");
    assert!(!err.contains("try 2/"), "a DNS failure is not retried: {err}");
    // The context is said once.
    assert_eq!(err.matches("resolving base image").count(), 1, "{err}");
}
