//! Credentials from Docker's `config.json`, read and written the way docker does: `auths`
//! (base64 `auth`, `identitytoken`), `credsStore` and `credHelpers` through the
//! `docker-credential-*` helpers. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.

use crate::error::{Error, Result};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key docker uses for Docker Hub in `auths` and with helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What a registry is told about who is asking.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// User name and password (or personal access token).
    Basic {
        /// The user.
        username: String,
        /// The password or token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), traded at the token realm.
    IdentityToken {
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken { .. } => write!(f, "IdentityToken(***)"),
        }
    }
}

/// The key for a registry (as written in references) in config.json and with helpers.
pub fn server_key(registry: &str) -> String {
    if canonical_host(registry) == "docker.io" { DOCKER_HUB_KEY.to_string() } else { registry.to_string() }
}

/// `https://index.docker.io/v1/`, `registry-1.docker.io`, `http://host:5000/v2/` -> the
/// registry name as written in references.
fn canonical_host(key: &str) -> String {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// Docker's client config file, kept as a JSON object so fields rbuild does not know survive.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("config.json");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".docker/config.json")
    }

    /// Read the default file (empty when missing).
    pub fn load_default() -> Result<DockerConfig> {
        Self::load(&Self::default_path())
    }

    /// Read `path` (empty when missing).
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let doc = match std::fs::read(path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(Error::Config { path: path.into(), reason: "not a JSON object".into() }),
                Err(e) => return Err(Error::Config { path: path.into(), reason: e.to_string() }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(Error::io(path)(e)),
        };
        Ok(DockerConfig { path: path.into(), doc })
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The helper for a registry: `credHelpers[registry]`, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        let host = canonical_host(registry);
        if let Some(Value::Object(h)) = self.doc.get("credHelpers") {
            for (k, v) in h {
                if canonical_host(k) == host {
                    if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                        return Some(s.to_string());
                    }
                }
            }
        }
        self.doc.get("credsStore").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
    }

    /// The credential for a registry (as written in references: `docker.io`, `host:5000`).
    pub fn get(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(&helper, &server_key(registry));
        }
        let host = canonical_host(registry);
        let Some(Value::Object(auths)) = self.doc.get("auths") else { return Ok(None) };
        // An exact key first, then any key that names the same host.
        let entry = auths
            .get(&server_key(registry))
            .or_else(|| auths.iter().find(|(k, _)| canonical_host(k) == host).map(|(_, v)| v));
        let Some(Value::Object(e)) = entry else { return Ok(None) };
        if let Some(t) = e.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken { token: t.to_string() }));
        }
        if let Some(a) = e.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let bad = |reason: &str| Error::Config {
                path: self.path.clone(),
                reason: format!("auths[{registry:?}].auth {reason}"),
            };
            let raw = base64::engine::general_purpose::STANDARD.decode(a.trim()).map_err(|_| bad("is not base64"))?;
            let text = String::from_utf8(raw).map_err(|_| bad("is not UTF-8"))?;
            let (u, p) = text.split_once(':').ok_or_else(|| bad("is not base64 of user:password"))?;
            return Ok(Some(Credential::Basic { username: u.to_string(), password: p.to_string() }));
        }
        if let (Some(u), Some(p)) =
            (e.get("username").and_then(Value::as_str), e.get("password").and_then(Value::as_str))
        {
            return Ok(Some(Credential::Basic { username: u.into(), password: p.into() }));
        }
        Ok(None)
    }

    /// Save a credential: through the helper when one is configured (leaving an empty
    /// `auths` entry, as docker does), else base64 in `auths`. Writes the file atomically.
    pub fn store(&mut self, registry: &str, cred: &Credential) -> Result<()> {
        let key = server_key(registry);
        let helper = self.helper_for(registry);
        let auths = self.doc.entry("auths").or_insert_with(|| json!({}));
        if !auths.is_object() {
            *auths = json!({});
        }
        let auths = auths.as_object_mut().expect("object");
        // Drop other spellings of the same registry so one entry remains.
        let host = canonical_host(registry);
        auths.retain(|k, _| canonical_host(k) != host);
        if let Some(helper) = helper {
            let (user, secret) = match cred {
                Credential::Basic { username, password } => (username.as_str(), password.as_str()),
                Credential::IdentityToken { token } => ("<token>", token.as_str()),
            };
            helper_run(
                &helper,
                "store",
                &key,
                &json!({"ServerURL": key, "Username": user, "Secret": secret}).to_string(),
            )?;
            auths.insert(key, json!({}));
        } else {
            let entry = match cred {
                Credential::Basic { username, password } => {
                    json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))})
                }
                Credential::IdentityToken { token } => json!({"identitytoken": token}),
            };
            auths.insert(key, entry);
        }
        self.save()
    }

    /// Forget a registry's credential (helper `erase` too). True when there was one.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let key = server_key(registry);
        let host = canonical_host(registry);
        let mut found = false;
        if let Some(helper) = self.helper_for(registry) {
            match helper_run(&helper, "erase", &key, &key) {
                Ok(_) => found = true,
                Err(Error::CredentialHelper { reason, .. }) if is_not_found(&reason) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(Value::Object(auths)) = self.doc.get_mut("auths") {
            let before = auths.len();
            auths.retain(|k, _| canonical_host(k) != host);
            found |= auths.len() != before;
        }
        if found {
            self.save()?;
        }
        Ok(found)
    }

    /// Write the file atomically (temp file in the same directory, fsync, rename), mode 0600.
    fn save(&self) -> Result<()> {
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut text = serde_json::to_vec_pretty(&Value::Object(self.doc.clone())).expect("JSON");
        text.push(b'\n');
        let tmp = dir.join(format!(".config.json.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&self.path)(e)
        })
    }
}

fn is_not_found(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("credentials not found") || r.contains("not found in native keychain")
}

/// `docker-credential-<helper> <action>` with `input` on stdin; its stdout.
fn helper_run(helper: &str, action: &str, server: &str, input: &str) -> Result<String> {
    let err = |reason: String| Error::CredentialHelper {
        helper: helper.into(),
        action: action.into(),
        server: server.into(),
        reason,
    };
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run {prog}: {e} (is it installed and on PATH?)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(|e| err(format!("writing to it: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let msg = format!("{}{}", String::from_utf8_lossy(&out.stderr).trim(), stdout.trim());
        return Err(err(if msg.is_empty() { format!("exited with {}", out.status) } else { msg }));
    }
    Ok(stdout)
}

/// `get`: the credential, or `None` when the helper has none for this server.
fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>> {
    let out = match helper_run(helper, "get", server, server) {
        Ok(o) => o,
        Err(Error::CredentialHelper { reason, .. }) if is_not_found(&reason) => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_str(&out).map_err(|e| Error::CredentialHelper {
        helper: helper.into(),
        action: "get".into(),
        server: server.into(),
        reason: format!("output is not JSON: {e}"),
    })?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or_default();
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    if user == "<token>" {
        return Ok(Some(Credential::IdentityToken { token: secret.into() }));
    }
    Ok(Some(Credential::Basic { username: user.into(), password: secret.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p:w");
        std::fs::write(
            &p,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"http://reg.lan:5000/v2/":{{"identitytoken":"tok"}}}},"psFormat":"x"}}"#
            ),
        )
        .unwrap();
        let c = DockerConfig::load(&p).unwrap();
        assert_eq!(
            c.get("docker.io").unwrap(),
            Some(Credential::Basic { username: "u".into(), password: "p:w".into() })
        );
        assert_eq!(c.get("reg.lan:5000").unwrap(), Some(Credential::IdentityToken { token: "tok".into() }));
        assert_eq!(c.get("other.io").unwrap(), None);
    }

    #[test]
    fn stores_and_erases_keeping_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/config.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, r#"{"psFormat":"table","auths":{"docker.io":{"auth":"eDp5"}}}"#).unwrap();
        let mut c = DockerConfig::load(&p).unwrap();
        c.store("docker.io", &Credential::Basic { username: "a".into(), password: "b".into() }).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["auths"][DOCKER_HUB_KEY]["auth"], base64::engine::general_purpose::STANDARD.encode("a:b"));
        assert!(v["auths"].get("docker.io").is_none());
        let mut c = DockerConfig::load(&p).unwrap();
        assert!(c.erase("docker.io").unwrap());
        assert!(!c.erase("docker.io").unwrap());
        assert_eq!(DockerConfig::load(&p).unwrap().get("docker.io").unwrap(), None);
    }
}
