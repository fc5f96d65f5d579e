//! Test peers: Debian's docker-registry (no auth, htpasswd, token auth with a token server
//! of our own), a fault-injecting proxy, and small OCI images made with rbuild-image.
#![allow(dead_code)]

use base64::Engine as _;
use rbuild_image::config::RootFs;
use rbuild_image::layer::LayerBlobWriter;
use rbuild_image::{Compression, Descriptor, ImageConfig, ImageManifest, RawManifest, Reference, Store, media_type};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn need(bin: &str) {
    assert!(
        Path::new(bin).exists()
            || Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {bin}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        "this test needs {bin} (apt-get install docker-registry skopeo apache2-utils openssl)"
    );
}

/// How the registry authenticates.
pub enum Auth {
    None,
    Basic { user: String, pass: String },
    Token(TokenServer),
}

/// A docker-registry process on 127.0.0.1, killed on drop.
pub struct Registry {
    pub host: String,
    child: Child,
    pub dir: tempfile::TempDir,
    pub token: Option<TokenServer>,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        need(REGISTRY_BIN);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        );
        let mut token = None;
        match auth {
            Auth::None => {}
            Auth::Basic { user, pass } => {
                need("htpasswd");
                let out = Command::new("htpasswd").args(["-Bbn", &user, &pass]).output().unwrap();
                assert!(out.status.success());
                let f = dir.path().join("htpasswd");
                std::fs::write(&f, &out.stdout).unwrap();
                cfg.push_str(&format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", f.display()));
            }
            Auth::Token(t) => {
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                    t.realm,
                    t.cert.display()
                ));
                token = Some(t);
            }
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen on {host}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { host, child, dir, token }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token server for docker-registry's token auth: RS256 JWTs whose `kid` is the libtrust
/// key ID of the certificate in the registry's rootcertbundle.
#[derive(Clone)]
pub struct TokenServer {
    pub realm: String,
    pub cert: PathBuf,
    pub user: String,
    pub pass: String,
    /// Every request: (method, query or form, had basic auth).
    pub log: Arc<Mutex<Vec<(String, String, bool)>>>,
    pub expires_in: u64,
    _dir: Arc<tempfile::TempDir>,
    _rt: Arc<tokio::runtime::Runtime>,
}

fn libtrust_kid(der: &[u8]) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(der);
    let b32 = base32(&h[..30]);
    b32.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":")
}

fn base32(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buf = 0u64;
    let mut bits = 0;
    for &b in data {
        buf = (buf << 8) | b as u64;
        bits += 8;
        while bits >= 5 {
            out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub const REFRESH_TOKEN: &str = "refresh-4f1c";

impl TokenServer {
    pub fn start(user: &str, pass: &str, expires_in: u64) -> TokenServer {
        need("openssl");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let st = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=token-issuer"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl req failed");
        let der = Command::new("sh")
            .arg("-c")
            .arg(format!("openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform DER", cert.display()))
            .output()
            .unwrap();
        assert!(der.status.success());
        let kid = libtrust_kid(&der.stdout);
        let enc = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let state =
            Arc::new(TokenState { kid, enc, user: user.into(), pass: pass.into(), log: log.clone(), expires_in });
        let app = axum::Router::new().route("/token", axum::routing::get(token_get).post(token_post)).with_state(state);
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        TokenServer {
            realm: format!("http://127.0.0.1:{port}/token"),
            cert,
            user: user.into(),
            pass: pass.into(),
            log,
            expires_in,
            _dir: Arc::new(dir),
            _rt: Arc::new(rt),
        }
    }
}

struct TokenState {
    kid: String,
    enc: jsonwebtoken::EncodingKey,
    user: String,
    pass: String,
    log: Arc<Mutex<Vec<(String, String, bool)>>>,
    expires_in: u64,
}

fn parse_pairs(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

fn issue(st: &TokenState, subject: &str, scopes: &[String], offline: bool) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut access = Vec::new();
    for sc in scopes {
        for one in sc.split(' ') {
            let parts: Vec<&str> = one.splitn(3, ':').collect();
            if parts.len() == 3 && !subject.is_empty() {
                access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
            }
        }
    }
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": subject, "aud": "test-registry",
        "exp": now + st.expires_in, "nbf": now - 5, "iat": now - 5,
        "jti": format!("{}", rand::random::<u64>()), "access": access,
    });
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(st.kid.clone());
    let token = jsonwebtoken::encode(&h, &claims, &st.enc).unwrap();
    let mut body = serde_json::json!({"token": token, "access_token": token, "expires_in": st.expires_in});
    if offline {
        body["refresh_token"] = REFRESH_TOKEN.into();
    }
    axum::Json(body).into_response()
}

async fn token_get(
    axum::extract::State(st): axum::extract::State<Arc<TokenState>>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let q = uri.query().unwrap_or("").to_string();
    let pairs = parse_pairs(&q);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    st.log.lock().unwrap().push(("GET".into(), q, auth.is_some()));
    let scopes: Vec<String> = pairs.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    let offline = pairs.iter().any(|(k, v)| k == "offline_token" && v == "true");
    let subject = match auth {
        None => String::new(),
        Some(a) => {
            let creds = a
                .strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            if creds != format!("{}:{}", st.user, st.pass) {
                return (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"details": "bad user or password"})),
                )
                    .into_response();
            }
            st.user.clone()
        }
    };
    issue(&st, &subject, &scopes, offline)
}

async fn token_post(
    axum::extract::State(st): axum::extract::State<Arc<TokenState>>,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    st.log.lock().unwrap().push(("POST".into(), body.clone(), false));
    let pairs = parse_pairs(&body);
    let get = |k: &str| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone()).unwrap_or_default();
    if get("grant_type") != "refresh_token" || get("refresh_token") != REFRESH_TOKEN {
        return (axum::http::StatusCode::UNAUTHORIZED, "bad refresh token").into_response();
    }
    let scopes: Vec<String> = pairs.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    issue(&st, &st.user, &scopes, false)
}

/// Fill `store` with an image of `layers` layers of `size` pseudo-random bytes each
/// (`seed` varies the content), tagged `reference`; returns its manifest.
pub fn make_image(store: &Store, reference: &str, layers: usize, size: usize, seed: u64) -> RawManifest {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let mut data = vec![0u8; size];
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64 + 1);
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let mut tarb = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tarb.append_data(&mut h, format!("layer{i}.bin"), &data[..]).unwrap();
        let tarbytes = tarb.into_inner().unwrap();
        let w = store.ingest().unwrap();
        let mut lw = LayerBlobWriter::new(w, Compression::Gzip, Some(1)).unwrap();
        lw.write_all(&tarbytes).unwrap();
        let (w, info) = lw.finish().unwrap();
        w.commit(Some(&info.digest), Some(info.size)).unwrap();
        descs.push(info.descriptor());
        diff_ids.push(info.diff_id);
    }
    let config = ImageConfig {
        architecture: rbuild_image::Platform::host().architecture,
        os: "linux".into(),
        rootfs: RootFs { kind: "layers".into(), diff_ids },
        ..Default::default()
    };
    let cbytes = config.to_canonical_bytes();
    let cd = store.put_blob_bytes(&cbytes).unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media_type::OCI_CONFIG, cd, cbytes.len() as u64),
        layers: descs,
        subject: None,
        annotations: Default::default(),
    };
    let raw = RawManifest::from_image(&m).unwrap();
    store.put_manifest(&raw).unwrap();
    store.tag(&Reference::parse(reference).unwrap().with_default_tag(), &raw.descriptor()).unwrap();
    raw
}

/// Write an OCI layout with one image (for skopeo to push): returns the manifest digest.
pub fn make_oci_dir(dir: &Path, layer_size: usize) -> rbuild_image::Digest {
    let store = Store::open(dir).unwrap();
    let raw = make_image(&store, "localhost/skopeo-src:v1", 2, layer_size, 99);
    // skopeo's oci: transport looks images up by the bare tag in ref.name.
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": raw.media_type(), "digest": raw.digest().to_string(), "size": raw.bytes().len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    raw.digest().clone()
}

/// Options for tests: fast backoff.
pub fn fast_options() -> rbuild_registry_client::ClientOptions {
    rbuild_registry_client::ClientOptions {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_secs(2),
        ..Default::default()
    }
}

pub fn skopeo(args: &[&str]) -> std::process::Output {
    need("skopeo");
    Command::new("skopeo").args(args).output().expect("run skopeo")
}

/// What the fault proxy did, for assertions.
#[derive(Default, Debug)]
pub struct FaultLog {
    pub dropped_downloads: usize,
    pub dropped_uploads: usize,
    pub status_503: usize,
    pub status_429: usize,
    pub requests: usize,
    /// Blob GETs that asked for `Range: bytes=N-` with N > 0 (resumed downloads).
    pub resumed_downloads: usize,
}

/// An HTTP proxy in front of a registry that drops blob downloads half-way (the first
/// time each blob is fetched), breaks the first upload of each blob after a few bytes,
/// and answers 503 or 429 (with Retry-After) to some other requests.
pub struct FaultProxy {
    pub host: String,
    pub log: Arc<Mutex<FaultLog>>,
    _rt: tokio::runtime::Runtime,
}

struct ProxyState {
    upstream: String,
    me: String,
    http: reqwest::Client,
    log: Arc<Mutex<FaultLog>>,
    seen: Mutex<std::collections::HashSet<String>>,
    counter: std::sync::atomic::AtomicUsize,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let log = Arc::new(Mutex::new(FaultLog::default()));
        let state = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            me: host.clone(),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            log: log.clone(),
            seen: Mutex::new(Default::default()),
            counter: Default::default(),
        });
        let app = axum::Router::new().fallback(proxy).with_state(state);
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        FaultProxy { host, log, _rt: rt }
    }
}

async fn proxy(
    axum::extract::State(st): axum::extract::State<Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures::StreamExt;
    let n = st.counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    st.log.lock().unwrap().requests += 1;
    let method = req.method().clone();
    let uri = req.uri().clone();
    let path = uri.path().to_string();
    let pq = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let is_blob_get = method == axum::http::Method::GET && path.contains("/blobs/sha256:");
    let is_upload_put = method == axum::http::Method::PUT && pq.contains("digest=");
    if is_blob_get
        && req
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("bytes=") && !v.starts_with("bytes=0-"))
    {
        st.log.lock().unwrap().resumed_downloads += 1;
    }
    // Status faults on other requests, never twice in a row for long.
    if !is_blob_get && !is_upload_put && path != "/v2/" {
        if n % 5 == 1 {
            st.log.lock().unwrap().status_503 += 1;
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
        }
        if n % 7 == 3 {
            st.log.lock().unwrap().status_429 += 1;
            return (axum::http::StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "1")], "slow down").into_response();
        }
    }
    if is_upload_put {
        let key = format!("put {}", pq.split("digest=").nth(1).unwrap_or(""));
        if st.seen.lock().unwrap().insert(key) {
            // Read a little of the body, then fail the request.
            let mut body = req.into_body().into_data_stream();
            let _ = body.next().await;
            st.log.lock().unwrap().dropped_uploads += 1;
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "upload broke").into_response();
        }
    }
    let (parts, body) = req.into_parts();
    let url = format!("http://{}{}", st.upstream, pq);
    let mut r = st.http.request(parts.method.clone(), &url);
    for (k, v) in parts.headers.iter() {
        if k != "host" && k != "connection" && k != "transfer-encoding" {
            r = r.header(k, v);
        }
    }
    let stream = body.into_data_stream();
    r = r.body(reqwest::Body::wrap_stream(stream));
    let resp = match r.send().await {
        Ok(x) => x,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut headers = axum::http::HeaderMap::new();
    for (k, v) in resp.headers() {
        if k == "connection" || k == "transfer-encoding" {
            continue;
        }
        if k == "location" {
            let s = v.to_str().unwrap_or("").replace(&st.upstream, &st.me);
            headers.insert(k.clone(), s.parse().unwrap());
        } else {
            headers.insert(k.clone(), v.clone());
        }
    }
    let drop_it = is_blob_get
        && status == reqwest::StatusCode::OK
        && resp.content_length().unwrap_or(0) > 1000
        && st.seen.lock().unwrap().insert(format!("get {path}"));
    let limit = resp.content_length().unwrap_or(0) / 2;
    let log = st.log.clone();
    let mut sent = 0u64;
    let mut dropped = false;
    let body = resp.bytes_stream().map(move |c| -> Result<bytes::Bytes, std::io::Error> {
        let c = c.map_err(std::io::Error::other)?;
        if drop_it {
            if dropped {
                return Err(std::io::Error::other("dropped"));
            }
            if sent + c.len() as u64 > limit {
                dropped = true;
                log.lock().unwrap().dropped_downloads += 1;
                let keep = (limit - sent) as usize;
                sent = limit;
                return Ok(c.slice(..keep));
            }
        }
        sent += c.len() as u64;
        Ok(c)
    });
    // After the partial chunk, the next poll errors and hyper aborts the connection.
    let mut out = axum::response::Response::new(axum::body::Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

pub fn noprog() -> Arc<dyn rbuild_registry_client::Progress> {
    Arc::new(rbuild_registry_client::progress::NoProgress)
}

pub fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Push an image from one store, pull it into another: same digests, same bytes.
pub fn roundtrip(
    client: &rbuild_registry_client::Client,
    host: &str,
    repo: &str,
) -> (Store, rbuild_image::RawManifest) {
    let rt = rt();
    let a = tempfile::tempdir().unwrap();
    let sa = Store::open(a.path()).unwrap();
    let raw = make_image(&sa, "local/app:v1", 3, 300_000, 7);
    let dest = r(&format!("{host}/{repo}:v1"));
    let pushed = rt.block_on(client.push(&sa, &raw, &dest, &noprog())).unwrap();
    assert_eq!(&pushed.digest, raw.digest());
    assert_eq!(pushed.uploaded, 4);
    // Again: every blob is there already.
    let again = rt.block_on(client.push(&sa, &raw, &dest, &noprog())).unwrap();
    assert_eq!((again.existing, again.uploaded), (4, 0));
    let b = tempfile::tempdir().unwrap();
    let sb = Store::open(b.path()).unwrap();
    let pulled = rt.block_on(client.pull(&sb, &dest, &rbuild_image::Platform::host(), &noprog())).unwrap();
    assert_eq!(&pulled.digest, raw.digest());
    assert_eq!(pulled.manifest.bytes(), raw.bytes());
    assert_eq!(pulled.downloaded, 4);
    for d in raw.references() {
        assert_eq!(sb.read_blob(&d.digest).unwrap(), sa.read_blob(&d.digest).unwrap());
    }
    let img = sb.resolve(&dest.to_string()).unwrap();
    assert_eq!(img.manifest.digest(), raw.digest());
    // Pull again: nothing downloaded.
    let again = rt.block_on(client.pull(&sb, &dest, &rbuild_image::Platform::host(), &noprog())).unwrap();
    assert_eq!(again.downloaded, 0);
    std::mem::forget(b);
    (sb, raw)
}
