//! Security holes, one test each: cross-repository mounts that read what the user may not,
//! a catalog that lists everything, /metrics without auth, connections that never finish,
//! token lifetimes below the spec's minimum.

mod common;

use common::{TestRegistry, assert_error};
use rbuild_image::Digest;
use rbuild_registry_server::config::{AccessRule, AuthMode, Config};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Basic auth with alice owning `alice/*`, bob owning `bob/*`, and `pub/*` readable by all users.
async fn two_tenants(f: impl FnOnce(&mut Config)) -> TestRegistry {
    let pw = tempfile::tempdir().unwrap();
    let p = pw.path().join("htpasswd");
    std::fs::write(&p, format!("alice:{}\nbob:{}\n", bcrypt::hash("apw", 4).unwrap(), bcrypt::hash("bpw", 4).unwrap()))
        .unwrap();
    let rule = |repo: &str, user: &str, actions: &[&str]| AccessRule {
        repository: repo.into(),
        users: vec![user.into()],
        actions: actions.iter().map(|a| a.to_string()).collect(),
    };
    let reg = TestRegistry::start_with(|c| {
        c.auth.mode = AuthMode::Basic;
        c.auth.htpasswd = Some(p.clone());
        c.auth.access = vec![
            rule("alice/*", "alice", &["*"]),
            rule("bob/*", "bob", &["*"]),
            rule("pub/*", "*", &["pull"]),
            rule("pub/*", "bob", &["push"]),
        ];
        f(c);
    })
    .await;
    std::mem::forget(pw); // read at start; keep the file for the test's life
    reg
}

fn pw(user: &str) -> &'static str {
    if user == "alice" { "apw" } else { "bpw" }
}

async fn push_as(reg: &TestRegistry, user: &str, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    let r = reg
        .client
        .post(reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
        .basic_auth(user, Some(pw(user)))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{user} pushing to {repo}");
    d
}

async fn post_as(reg: &TestRegistry, user: &str, path: &str) -> reqwest::Response {
    reg.client.post(reg.url(path)).basic_auth(user, Some(pw(user))).send().await.unwrap()
}

async fn get_as(reg: &TestRegistry, user: &str, path: &str) -> reqwest::Response {
    reg.client.get(reg.url(path)).basic_auth(user, Some(pw(user))).send().await.unwrap()
}

/// #12.7: `?mount=` without `from` (or with an empty or unreadable `from`) must not link a
/// blob alice may not read, and must answer as an ordinary upload start whether the blob
/// exists or not.
#[tokio::test]
async fn mount_reads_only_from_pullable_repositories() {
    let reg = two_tenants(|_| {}).await;
    let secret = push_as(&reg, "bob", "bob/secret", b"bob's secret layer").await;
    let nowhere = Digest::sha256_of(b"exists nowhere");
    for query in [
        format!("mount={secret}"),
        format!("mount={secret}&from="),
        format!("mount={secret}&from=bob/secret"),
        format!("mount={nowhere}"),
        format!("mount={nowhere}&from=bob/secret"),
    ] {
        let r = post_as(&reg, "alice", &format!("/v2/alice/x/blobs/uploads/?{query}")).await;
        assert_eq!(r.status(), 202, "{query}: an ordinary upload start, revealing nothing");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with("/v2/alice/x/blobs/uploads/"), "{query}: {loc}");
    }
    assert_error(get_as(&reg, "alice", &format!("/v2/alice/x/blobs/{secret}")).await, 404, "BLOB_UNKNOWN").await;
    assert!(!reg.root().join(format!("repositories/alice/x/_layers/sha256/{}", secret.hex())).exists());

    // What alice may read still mounts: from a named repository, and from pub/* where all may pull.
    let own = push_as(&reg, "alice", "alice/a", b"alice's layer").await;
    let r = post_as(&reg, "alice", &format!("/v2/alice/x/blobs/uploads/?mount={own}&from=alice/a")).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        get_as(&reg, "alice", &format!("/v2/alice/x/blobs/{own}")).await.bytes().await.unwrap(),
        "alice's layer"
    );
    let public = push_as(&reg, "bob", "pub/base", b"public layer").await;
    let r = post_as(&reg, "alice", &format!("/v2/alice/x/blobs/uploads/?mount={public}&from=pub/base")).await;
    assert_eq!(r.status(), 201);
    // Without a source even bob's own blob is not mounted: he may not pull everywhere either.
    let r = post_as(&reg, "bob", &format!("/v2/bob/other/blobs/uploads/?mount={secret}")).await;
    assert_eq!(r.status(), 202);
    let r = post_as(&reg, "bob", &format!("/v2/bob/other/blobs/uploads/?mount={secret}&from=bob/secret")).await;
    assert_eq!(r.status(), 201);
}

/// #12.8: the catalog lists only what the user may pull, and pagination counts only those.
#[tokio::test]
async fn catalog_lists_only_pullable_repositories() {
    let reg = two_tenants(|_| {}).await;
    for repo in ["alice/a", "alice/b", "alice/c"] {
        push_as(&reg, "alice", repo, repo.as_bytes()).await;
    }
    push_as(&reg, "bob", "bob/secret", b"s").await;
    push_as(&reg, "bob", "pub/x", b"p").await;
    let list = |r: serde_json::Value| -> Vec<String> {
        r["repositories"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let all: serde_json::Value = get_as(&reg, "alice", "/v2/_catalog").await.json().await.unwrap();
    assert_eq!(list(all), ["alice/a", "alice/b", "alice/c", "pub/x"]);
    let bob: serde_json::Value = get_as(&reg, "bob", "/v2/_catalog").await.json().await.unwrap();
    assert_eq!(list(bob), ["bob/secret", "pub/x"]);

    let r = get_as(&reg, "alice", "/v2/_catalog?n=2").await;
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(link, "</v2/_catalog?n=2&last=alice%2Fb>; rel=\"next\"");
    assert_eq!(list(r.json().await.unwrap()), ["alice/a", "alice/b"]);
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let r = get_as(&reg, "alice", next).await;
    assert!(r.headers().get("link").is_none(), "the last page has no Link");
    assert_eq!(list(r.json().await.unwrap()), ["alice/c", "pub/x"], "bob/secret is neither listed nor counted");
    let r = get_as(&reg, "alice", "/v2/_catalog?n=1&last=alice%2Fc").await;
    assert!(r.headers().get("link").is_none(), "no page follows pub/x for alice");
    assert_eq!(list(r.json().await.unwrap()), ["pub/x"]);
}

/// #12.8: `/metrics` needs a user when auth is on, or is served only on `metrics.addr`.
#[tokio::test]
async fn metrics_need_auth_or_their_own_address() {
    let reg = two_tenants(|_| {}).await;
    let r = reg.client.get(reg.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "));
    assert_error(r, 401, "UNAUTHORIZED").await;
    let r = reg.client.get(reg.url("/metrics")).basic_auth("alice", Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let m = get_as(&reg, "alice", "/metrics").await.text().await.unwrap();
    assert!(m.contains("rbuild_registry_http_requests_total"), "{m}");

    let reg = two_tenants(|c| c.metrics.addr = Some("127.0.0.1:0".into())).await;
    assert_error(get_as(&reg, "alice", "/metrics").await, 404, "UNSUPPORTED").await;
    let maddr = reg.server.metrics_addr().expect("a metrics listener");
    assert_ne!(maddr, reg.server.local_addr());
    let r = reqwest::get(format!("http://{maddr}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("rbuild_registry_http_requests_total"));
    let r = reqwest::get(format!("http://{maddr}/v2/_catalog")).await.unwrap();
    assert_eq!(r.status(), 404, "the metrics address serves nothing else");
}

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{src}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Read until the server closes (bounded, so a regression fails instead of hanging).
async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "the server kept the connection open; got {:?}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

async fn v2_from(src: &str, to: SocketAddr) -> String {
    let mut s = connect_from(src, to).await;
    s.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    read_until_closed(&mut s).await
}

/// #12.9: half-sent headers are cut at `header_timeout`, connections over the per-client cap
/// are closed at once, and other clients are served all along.
#[tokio::test]
async fn half_open_connections_are_closed_and_others_served() {
    let reg = TestRegistry::start_with(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.max_connections_per_client = 4;
    })
    .await;
    let addr = reg.server.local_addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.2", addr).await;
        s.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nX-Half: ").as_bytes()).await.unwrap();
        held.push(s);
    }
    // Over the cap: closed without an answer (accepted in order, after the four above).
    let mut extra = connect_from("127.0.0.2", addr).await;
    assert_eq!(read_until_closed(&mut extra).await, "");
    // Another client is served while those are held.
    let r = reg.client.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(v2_from("127.0.0.3", addr).await.starts_with("HTTP/1.1 200"));
    // The half-open ones are closed by the server, never answered with a 200.
    for mut s in held {
        let got = read_until_closed(&mut s).await;
        assert!(!got.contains(" 200 "), "{got}");
    }
    // Their places are free again.
    assert!(v2_from("127.0.0.2", addr).await.starts_with("HTTP/1.1 200"));
    // A fresh connection: the pooled one idled past the 1 s header timeout, which also ends
    // idle keep-alive connections, and may be closed just as it is reused.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let m = fresh.get(reg.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("rbuild_registry_connections_refused_total 1\n"), "{m}");
}

/// #12.9: a PATCH that promises 1000 bytes and sends one is cut at `body_timeout` (408, the
/// connection closed); the upload keeps the byte and continues with a PATCH at its offset.
#[tokio::test]
async fn stalled_body_is_cut_and_the_upload_resumes() {
    let reg = TestRegistry::start_with(|c| c.body_timeout = Duration::from_secs(1)).await;
    let addr = reg.server.local_addr();
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256_of(&data);
    let r = reg.client.post(reg.url("/v2/slow/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&data[..1]).await.unwrap();
    let answer = read_until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");

    let r = reg.client.get(reg.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-0", "the byte that arrived is kept");
    let r = reg
        .client
        .patch(reg.url(&loc))
        .header("Content-Range", "1-999")
        .header("Content-Type", "application/octet-stream")
        .body(data[1..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], "0-999");
    let r = reg.client.put(reg.url(&format!("{loc}?digest={d}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let got = reg.client.get(reg.url(&format!("/v2/slow/blobs/{d}"))).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], &data[..]);
}

struct Child {
    child: std::process::Child,
    addr: String,
    lines: std::sync::mpsc::Receiver<String>,
}

/// Start the real binary with `env`; waits for its listening line.
fn spawn_registry(env: &[(&str, &str)], root: &std::path::Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbuild-registry"));
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--root"]).arg(root).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let addr = loop {
        let l = rx.recv_timeout(Duration::from_secs(60)).expect("rbuild-registry did not start");
        if let Some(rest) = l.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    Child { child, addr, lines: rx }
}

impl Child {
    /// SIGTERM, wait for the exit, and every line it printed after starting.
    fn stop(mut self) -> Vec<String> {
        let st = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(st.success());
        let status = self.child.wait().unwrap();
        // The reader thread ends at the child's EOF: every line is in by now.
        let lines: Vec<String> = self.lines.iter().collect();
        assert!(status.success(), "rbuild-registry ended with {status} after SIGTERM; it printed:\n{lines:#?}");
        lines
    }
}

impl Drop for Child {
    /// A failed test does not leave its registry running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGTERM as soon as the listening line is out is a clean shutdown (exit 0): the handlers are
/// in place before the registry says it listens (a TERM in between used to kill it with the
/// default action: CI saw it once under load).
#[test]
fn sigterm_right_after_listening_is_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..50 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild-registry"))
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut l = String::new();
            assert!(err.read_line(&mut l).unwrap() > 0, "rbuild-registry ended before listening:\n{seen}");
            seen.push_str(&l);
            if l.contains("listening") {
                break;
            }
        }
        // At once, from this thread: no process to spawn first.
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        let status = child.wait().unwrap();
        assert!(status.success(), "ended with {status} after SIGTERM:\n{seen}{rest}");
    }
}

/// #12.9: refusals over the cap are logged once, not once per connection.
#[tokio::test]
async fn connection_limit_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let reg = spawn_registry(&[("RBUILD_REGISTRY_MAX_CONNECTIONS_PER_CLIENT", "2")], dir.path());
    let addr: SocketAddr = reg.addr.parse().unwrap();
    let held = [connect_from("127.0.0.2", addr).await, connect_from("127.0.0.2", addr).await];
    for _ in 0..5 {
        let mut s = connect_from("127.0.0.2", addr).await;
        assert_eq!(read_until_closed(&mut s).await, "", "over the cap: closed");
    }
    assert!(v2_from("127.0.0.1", addr).await.starts_with("HTTP/1.1 200"));
    drop(held);
    let lines = reg.stop();
    let limit: Vec<&String> = lines.iter().filter(|l| l.contains("connection limit reached")).collect();
    assert_eq!(limit.len(), 1, "{lines:#?}");
    assert!(limit[0].contains("127.0.0.2") && limit[0].contains("max_connections_per_client = 2"), "{}", limit[0]);
}

/// #12.10: a token expiry below the spec's 60 s minimum is refused at start, naming the
/// setting and the minimum (it used to be raised to 60 s silently).
#[test]
fn short_token_expiry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hp = common::htpasswd(dir.path(), "u", "p");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nmode = \"token\"\nhtpasswd = {:?}\n[auth.token]\nexpiry = \"2s\"\n", hp.display().to_string()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild-registry"))
        .args(["serve", "--addr", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--root")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("auth.token.expiry") && err.contains("2s") && err.contains("minimum of 60s"), "{err}");
    assert!(!dir.path().join("data").exists(), "refused before anything was written");
}

/// #12.9 over TLS: a connection that never finishes its handshake, and an HTTP/2 one that never
/// sends its preface, are closed at `header_timeout`; an HTTP/2 client is served meanwhile.
#[tokio::test]
async fn stalled_tls_and_http2_connections_are_closed() {
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed_cert(dir.path());
    let reg = TestRegistry::start_with(|c| {
        c.tls = Some(rbuild_registry_server::config::TlsConfig { cert: cert.clone(), key: key.clone() });
        c.header_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = reg.server.local_addr();
    // No handshake at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A finished handshake offering h2, then nothing.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut h2 = connector.connect(name, TcpStream::connect(addr).await.unwrap()).await.unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let c = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let r = c.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));

    read_until_closed(&mut silent).await;
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(60), h2.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "the HTTP/2 connection without a preface was kept open");
}

/// Accepts the test's self-signed certificate (what is tested is the server's timeouts).
#[derive(Debug)]
struct AnyCert(std::sync::Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        _: &[tokio_rustls::rustls::pki_types::CertificateDer<'_>],
        _: &tokio_rustls::rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: tokio_rustls::rustls::pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<tokio_rustls::rustls::client::danger::HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<tokio_rustls::rustls::client::danger::HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// #12.7 and #12.8 with bearer tokens: the token for alice's push carries no pull on
/// bob's repository (the rules refuse it), so a mount from there is an ordinary upload start,
/// and her catalog token lists only what the rules let her pull.
#[tokio::test]
async fn token_mode_mounts_and_catalog_follow_the_rules() {
    let reg = two_tenants(|c| c.auth.mode = AuthMode::Token).await;
    let token = |user: &'static str, scopes: &[&str]| {
        let q: Vec<String> = scopes.iter().map(|s| format!("scope={s}")).collect();
        let req = reg.client.get(reg.url(&format!("/token?service=rbuild-registry&{}", q.join("&"))));
        async move {
            let v: serde_json::Value = req.basic_auth(user, Some(pw(user))).send().await.unwrap().json().await.unwrap();
            v["token"].as_str().unwrap().to_string()
        }
    };
    let bob = token("bob", &["repository:bob/secret:pull,push"]).await;
    let secret = Digest::sha256_of(b"bob's token-pushed layer");
    let r = reg
        .client
        .post(reg.url(&format!("/v2/bob/secret/blobs/uploads/?digest={secret}")))
        .bearer_auth(&bob)
        .body(&b"bob's token-pushed layer"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let alice = token("alice", &["repository:alice/x:pull,push", "repository:bob/secret:pull"]).await;
    for query in [format!("mount={secret}&from=bob/secret"), format!("mount={secret}")] {
        let r = reg
            .client
            .post(reg.url(&format!("/v2/alice/x/blobs/uploads/?{query}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{query}");
    }
    let r = reg.client.get(reg.url(&format!("/v2/alice/x/blobs/{secret}"))).bearer_auth(&alice).send().await.unwrap();
    assert_error(r, 404, "BLOB_UNKNOWN").await;

    let cat = token("alice", &["registry:catalog:*"]).await;
    let v: serde_json::Value =
        reg.client.get(reg.url("/v2/_catalog")).bearer_auth(&cat).send().await.unwrap().json().await.unwrap();
    let repos = v["repositories"].as_array().unwrap();
    assert!(!repos.iter().any(|r| r == "bob/secret"), "{v}");
    assert!(repos.iter().all(|r| r.as_str().unwrap().starts_with("alice/")), "{v}");
}
