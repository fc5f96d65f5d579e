//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod seaweed;

use rbuild_image::{Descriptor, Digest, ImageManifest, RawManifest, media_type as mt};
use rbuild_registry_server::{Config, Server};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub struct TestRegistry {
    pub server: Server,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl TestRegistry {
    pub async fn start() -> TestRegistry {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::for_tests(dir.path().join("data"));
        f(&mut cfg);
        let server = Server::start(cfg).await.unwrap();
        TestRegistry { server, dir, client: reqwest::Client::builder().build().unwrap() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Push a blob with a single POST; returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        let r = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        d
    }

    /// Push an image manifest with a config and these layers (pushed too); returns the manifest.
    pub async fn push_image(&self, repo: &str, tag: &str, layers: &[&[u8]]) -> RawManifest {
        let raw = self.image_manifest(repo, layers, None).await;
        self.put_manifest(repo, tag, &raw).await;
        raw
    }

    pub async fn image_manifest(&self, repo: &str, layers: &[&[u8]], subject: Option<Descriptor>) -> RawManifest {
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{}}}", layers.len());
        let cd = self.push_blob(repo, config.as_bytes()).await;
        let mut descs = Vec::new();
        for l in layers {
            let d = self.push_blob(repo, l).await;
            descs.push(Descriptor::new(mt::OCI_LAYER_GZIP, d, l.len() as u64));
        }
        RawManifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(mt::OCI_CONFIG, cd, config.len() as u64),
            layers: descs,
            subject,
            annotations: BTreeMap::new(),
        })
        .unwrap()
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, raw: &RawManifest) -> reqwest::Response {
        let r = self
            .client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", raw.media_type())
            .body(raw.bytes().to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "PUT manifest {repo}:{reference}");
        r
    }
}

/// Assert an OCI error body with `code`.
pub async fn assert_error(r: reqwest::Response, status: u16, code: &str) {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(st, status, "body: {text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["errors"][0]["code"], code, "body: {text}");
}

/// A gzip layer of a few files.
pub fn gzip_layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn write_blob(dir: &Path, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    let p = dir.join("blobs/sha256").join(d.hex());
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    d
}

/// Write a small OCI image layout at `dir` with one image tagged `tag`; returns the manifest digest.
pub fn write_oci_layout(dir: &Path, tag: &str, seed: &str) -> Digest {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layer = gzip_layer(&[
        ("hello.txt", format!("hello {seed}\n").as_bytes()),
        ("etc/motd", b"welcome\n"),
        ("bin/x", &[7u8; 5000]),
    ]);
    let ld = write_blob(dir, &layer);
    let diff_id = {
        let mut d = flate2::read::GzDecoder::new(&layer[..]);
        let mut t = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut t).unwrap();
        Digest::sha256_of(&t)
    };
    let config = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{\"Env\":[\"SEED={seed}\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{diff_id}\"]}}}}"
    );
    let cd = write_blob(dir, config.as_bytes());
    let m = RawManifest::from_image(&ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(mt::OCI_CONFIG, cd, config.len() as u64),
        layers: vec![Descriptor::new(mt::OCI_LAYER_GZIP, ld, layer.len() as u64)],
        subject: None,
        annotations: BTreeMap::new(),
    })
    .unwrap();
    let md = write_blob(dir, m.bytes());
    let mut desc = m.descriptor();
    desc.annotations.insert("org.opencontainers.image.ref.name".into(), tag.into());
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": [desc]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    md
}

/// The manifest digest tagged `tag` in an OCI layout.
pub fn layout_manifest(dir: &Path, tag: &str) -> Digest {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag {
            return Digest::parse(m["digest"].as_str().unwrap()).unwrap();
        }
    }
    panic!("tag {tag} not in {}", dir.display());
}

pub fn skopeo() -> std::process::Command {
    let path = which("skopeo").expect("skopeo is not installed: apt-get install skopeo (the acceptance tests need it)");
    let mut c = std::process::Command::new(path);
    c.arg("--insecure-policy");
    c
}

pub fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// A self-signed certificate for 127.0.0.1 made with openssl: (cert.pem, key.pem) in `dir`.
pub fn self_signed_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = std::process::Command::new(which("openssl").expect("openssl is needed to make a test certificate"))
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl req -x509 failed");
    (cert, key)
}

/// An htpasswd file with one bcrypt user.
pub fn htpasswd(dir: &Path, user: &str, pass: &str) -> std::path::PathBuf {
    let p = dir.join("htpasswd");
    let h = bcrypt::hash(pass, 4).unwrap();
    std::fs::write(&p, format!("{user}:{h}\n")).unwrap();
    p
}

/// Send a request byte for byte (no URL normalization, unlike reqwest); status and body.
pub async fn raw_request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
