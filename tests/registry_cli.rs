//! End-to-end tests of `rbuild pull|push|copy|login|logout` against Debian's docker-registry.

use rbuild_image::config::RootFs;
use rbuild_image::layer::LayerBlobWriter;
use rbuild_image::{Compression, Descriptor, ImageConfig, ImageManifest, RawManifest, Reference, Store, media_type};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

struct Registry {
    host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        assert!(Path::new(REGISTRY_BIN).exists(), "this test needs {REGISTRY_BIN} (apt-get install docker-registry)");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((u, p)) = htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("this test needs htpasswd (apache2-utils)");
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { host, child, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An isolated environment: store root, docker config dir, registries.toml.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }

    fn root(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    fn cmd(&self, root: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild"));
        c.arg("--root").arg(self.root(root)).args(args);
        c.env("DOCKER_CONFIG", self.docker_config());
        c.env("RBUILD_REGISTRIES_CONF", self.dir.path().join("registries.toml"));
        c.env("RBUILD_MAX_TRIES", "2");
        c.env_remove("RUST_LOG");
        c
    }

    fn run(&self, root: &str, args: &[&str]) -> Output {
        self.cmd(root, args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, root: &str, args: &[&str]) -> String {
        let out = self.run(root, args);
        assert!(
            out.status.success(),
            "rbuild {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A two-layer image tagged `reference` in the store at `root`.
fn make_image(root: &Path, reference: &str, seed: u8) -> RawManifest {
    let store = Store::open(root).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..2u8 {
        let data: Vec<u8> = (0..150_000u32).map(|x| (x.wrapping_mul(2654435761) >> 13) as u8 ^ seed ^ i).collect();
        let mut tarb = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tarb.append_data(&mut h, format!("f{i}"), &data[..]).unwrap();
        let mut lw = LayerBlobWriter::new(store.ingest().unwrap(), Compression::Gzip, Some(1)).unwrap();
        lw.write_all(&tarb.into_inner().unwrap()).unwrap();
        let (w, info) = lw.finish().unwrap();
        w.commit(Some(&info.digest), Some(info.size)).unwrap();
        layers.push(info.descriptor());
        diff_ids.push(info.diff_id);
    }
    let config = ImageConfig {
        architecture: rbuild_image::Platform::host().architecture,
        os: "linux".into(),
        rootfs: RootFs { kind: "layers".into(), diff_ids },
        ..Default::default()
    };
    let cb = config.to_canonical_bytes();
    let cd = store.put_blob_bytes(&cb).unwrap();
    let raw = RawManifest::from_image(&ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media_type::OCI_CONFIG, cd, cb.len() as u64),
        layers,
        subject: None,
        annotations: Default::default(),
    })
    .unwrap();
    store.put_manifest(&raw).unwrap();
    store.tag(&Reference::parse(reference).unwrap().with_default_tag(), &raw.descriptor()).unwrap();
    raw
}

#[test]
fn push_then_pull_gives_the_same_image() {
    let reg = Registry::start(None);
    let env = Env::new();
    let name = format!("{}/team/app:v1", reg.host);
    let raw = make_image(&env.root("a"), &name, 1);
    let out = env.ok("a", &["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    assert!(out.contains(&format!("v1: digest: {}", raw.digest())), "{out}");
    // Everything is there already: nothing sent, the same digest.
    let out = env.ok("a", &["push", "-q", &name]);
    assert_eq!(out.trim(), raw.digest().to_string());
    let out = env.ok("b", &["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {}", raw.digest())), "{out}");
    assert_eq!(out.lines().last().unwrap(), name);
    let store = Store::open(&env.root("b")).unwrap();
    assert_eq!(store.resolve(&name).unwrap().manifest.bytes(), raw.bytes());
    let out = env.ok("b", &["pull", &name]);
    assert!(out.contains("Already exists") && out.contains("Image is up to date"), "{out}");
    // -q: the name only.
    let out = env.ok("c", &["pull", "-q", &name]);
    assert_eq!(out.trim(), name);
    // Push under another name: blobs mounted from where the store knows they are.
    let other = format!("{}/other/app:v2", reg.host);
    let out = env.ok("b", &["push", &name, &other]);
    assert!(out.contains("Mounted from team/app"), "{out}");
}

#[test]
fn push_all_tags_and_copy() {
    let reg = Registry::start(None);
    let env = Env::new();
    let repo = format!("{}/multi/app", reg.host);
    let a = make_image(&env.root("a"), &format!("{repo}:one"), 1);
    let b = make_image(&env.root("a"), &format!("{repo}:two"), 2);
    env.ok("a", &["push", "--all-tags", &repo]);
    let out =
        env.ok("a", &["copy", "-q", &format!("docker://{repo}:two"), &format!("docker://{}/copied/app", reg.host)]);
    assert_eq!(out.trim(), b.digest().to_string());
    let out = env.ok("x", &["pull", "-q", &format!("{}/copied/app:two", reg.host)]);
    assert_eq!(out.trim(), format!("{}/copied/app:two", reg.host));
    let out = env.ok("y", &["pull", &format!("{repo}:one")]);
    assert!(out.contains(&a.digest().to_string()));
}

#[test]
fn login_logout_and_config_json() {
    let reg = Registry::start(Some(("alice", "pw1")));
    let env = Env::new();
    let name = format!("{}/secure/app:v1", reg.host);
    make_image(&env.root("a"), &name, 3);
    let out = env.run("a", &["push", &name]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("rbuild login {}", reg.host)), "{err}");
    // A wrong password: refused, nothing written.
    let out = env.run("a", &["login", "-u", "alice", "-p", "bad", &reg.host]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!env.docker_config().join("config.json").exists());
    let mut child = env
        .cmd("a", &["login", "-u", "alice", "--password-stdin", &reg.host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.docker_config().join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["auths"][&reg.host]["auth"], "YWxpY2U6cHcx", "base64 of alice:pw1");
    env.ok("a", &["push", &name]);
    env.ok("b", &["pull", &name]);
    let out = env.ok("a", &["logout", &reg.host]);
    assert!(out.contains("Removing login credentials"), "{out}");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.docker_config().join("config.json")).unwrap()).unwrap();
    assert!(cfg["auths"].get(&reg.host).is_none());
    assert_eq!(env.run("c", &["pull", &name]).status.code(), Some(1));
}

#[test]
fn credential_helpers_store_get_and_erase() {
    let reg = Registry::start(Some(("carol", "pw2")));
    let env = Env::new();
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let vault = env.dir.path().join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    // A helper that keeps one file per server: docker's helper protocol.
    let helper = bin.join("docker-credential-testvault");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nV={}\ncase \"$1\" in\n store) cat > $V/last; echo stored >> $V/log ;;\n get) read s; if [ -f $V/last ]; then cat $V/last; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n erase) read s; rm -f $V/last; echo erased >> $V/log ;;\nesac\n",
            vault.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(env.docker_config()).unwrap();
    std::fs::write(env.docker_config().join("config.json"), r#"{"credsStore":"testvault"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let name = format!("{}/helper/app:v1", reg.host);
    make_image(&env.root("a"), &name, 4);
    let out = env.cmd("a", &["login", "-u", "carol", "-p", "pw2", &reg.host]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(vault.join("last")).unwrap()).unwrap();
    assert_eq!(stored["Username"], "carol");
    assert_eq!(stored["Secret"], "pw2");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.docker_config().join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["auths"][&reg.host], serde_json::json!({}), "no secret in config.json");
    let out = env.cmd("a", &["push", &name]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.cmd("a", &["logout", &reg.host]).env("PATH", &path).output().unwrap();
    assert!(out.status.success());
    assert!(!vault.join("last").exists());
}

#[test]
fn mirrors_from_registries_toml() {
    let reg = Registry::start(None);
    let env = Env::new();
    let name = format!("{}/lib/app:v1", reg.host);
    let raw = make_image(&env.root("a"), &name, 5);
    env.ok("a", &["push", &name]);
    std::fs::write(
        env.dir.path().join("registries.toml"),
        format!("[[registry]]\nprefix = \"registry.example.invalid\"\nmirrors = [\"{}\"]\n", reg.host),
    )
    .unwrap();
    let out = env.ok("b", &["pull", "registry.example.invalid/lib/app:v1"]);
    assert!(out.contains(&raw.digest().to_string()), "{out}");
}

#[test]
fn a_registry_that_is_down_fails_clearly() {
    let env = Env::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = env.run("a", &["pull", &format!("127.0.0.1:{port}/x:1")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("connection refused"), "{err}");
}
