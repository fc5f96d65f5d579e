//! Authentication and authorization: none, htpasswd basic auth, or bearer tokens from the
//! built-in token endpoint (HS256 JWTs this registry signs and checks itself). Access rules
//! map (user, repository) to pull/push/delete.

use crate::config::{AccessRule, AuthConfig, AuthMode};
use crate::error::{AppError, Error, Result};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use rbuild_image::distribution::ErrorCode;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// What a request wants to do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Read.
    Pull,
    /// Write.
    Push,
    /// Delete.
    Delete,
}

impl Action {
    /// The scope word.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn parse_all(s: &str) -> Vec<Action> {
        match s {
            "pull" => vec![Action::Pull],
            "push" => vec![Action::Push],
            "delete" => vec![Action::Delete],
            "*" => vec![Action::Pull, Action::Push, Action::Delete],
            _ => vec![],
        }
    }
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Just a known client (`/v2/`).
    Login,
    /// The catalog.
    Catalog,
    /// Actions on a repository.
    Repo(String, Vec<Action>),
}

/// Who made the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// A user from the htpasswd file.
    User(String),
}

/// One resource grant in a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceActions {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<ResourceActions>,
}

/// The token endpoint's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The JWT.
    pub token: String,
    /// The same, for OAuth2 clients.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// RFC 3339 issue time.
    pub issued_at: String,
}

/// The authenticator built from `[auth]`.
pub struct Auth {
    cfg: AuthConfig,
    users: HashMap<String, String>,
    /// sha256(user NUL password) of credentials bcrypt already accepted: bcrypt is slow on purpose.
    verified: Mutex<HashMap<[u8; 32], String>>,
    secret: Vec<u8>,
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, rest)) => {
            let Some(tail) = s.strip_prefix(pre) else { return false };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

/// Parse htpasswd text: `user:$2y$…` lines; other hash kinds are refused.
pub fn parse_htpasswd(text: &str, path: &str) -> Result<HashMap<String, String>> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (u, h) = line.split_once(':').ok_or_else(|| Error::Config {
            where_: format!("{path}:{}", i + 1),
            reason: "expected user:bcrypt-hash".into(),
        })?;
        if !(h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$")) {
            return Err(Error::Config {
                where_: format!("{path}:{}", i + 1),
                reason: format!("user {u:?}: only bcrypt hashes are supported (htpasswd -B)"),
            });
        }
        users.insert(u.to_string(), h.to_string());
    }
    Ok(users)
}

impl Auth {
    /// Build from the config, reading the htpasswd and secret files.
    pub fn new(cfg: &AuthConfig) -> Result<Auth> {
        let users = match &cfg.htpasswd {
            Some(p) if cfg.mode != AuthMode::None => {
                let text = std::fs::read_to_string(p).map_err(|io| Error::File {
                    setting: "auth.htpasswd",
                    path: p.clone(),
                    io,
                })?;
                parse_htpasswd(&text, &p.display().to_string())?
            }
            _ => HashMap::new(),
        };
        let secret = match &cfg.token.secret_file {
            Some(p) => {
                let s = std::fs::read(p).map_err(|io| Error::File {
                    setting: "auth.token.secret_file",
                    path: p.clone(),
                    io,
                })?;
                if s.len() < 16 {
                    return Err(Error::Config {
                        where_: format!("auth.token.secret_file = {p:?}"),
                        reason: format!("the secret is {} bytes; at least 16 are needed", s.len()),
                    });
                }
                s
            }
            None => (0..32).map(|_| rand::random::<u8>()).collect(),
        };
        Ok(Auth { cfg: cfg.clone(), users, verified: Mutex::new(HashMap::new()), secret })
    }

    /// One line for the start-up log: the mode, and what it relies on.
    pub fn describe(&self) -> String {
        let c = &self.cfg;
        let mode = match c.mode {
            AuthMode::None => return "none: every client may pull, push and delete everywhere".into(),
            AuthMode::Basic => "basic".to_string(),
            AuthMode::Token => format!(
                "token (issuer {:?}, service {:?}, expiry {}s, realm {})",
                c.token.issuer,
                c.token.service,
                c.token.expiry.as_secs(),
                c.token.realm.as_deref().unwrap_or("<this server>/token")
            ),
        };
        let htpasswd = c.htpasswd.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let rules = if c.access.is_empty() {
            "no access rules: every user may pull, push and delete everywhere".to_string()
        } else {
            format!("{} access rules", c.access.len())
        };
        format!(
            "{mode}; htpasswd {htpasswd}: {} users; {rules}; anonymous pull {}",
            self.users.len(),
            if c.anonymous_pull { "on" } else { "off" }
        )
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.cfg.mode
    }

    fn check_password(&self, user: &str, pass: &str) -> bool {
        let key: [u8; 32] =
            sha2::Sha256::new().chain_update(user).chain_update([0]).chain_update(pass).finalize().into();
        if self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&key).is_some_and(|u| u == user) {
            return true;
        }
        let ok = self.users.get(user).is_some_and(|h| bcrypt::verify(pass, h).unwrap_or(false));
        if ok {
            self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(key, user.to_string());
        }
        ok
    }

    /// Credentials of a `Basic` Authorization header: `Ok(None)` when absent, `Err` when wrong.
    fn basic_identity(&self, headers: &HeaderMap) -> std::result::Result<Identity, ()> {
        let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Ok(Identity::Anonymous);
        };
        let Some(b64) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) else { return Err(()) };
        let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| ())?;
        let text = String::from_utf8(raw).map_err(|_| ())?;
        let (u, p) = text.split_once(':').ok_or(())?;
        if self.check_password(u, p) { Ok(Identity::User(u.to_string())) } else { Err(()) }
    }

    /// The actions `who` may do on `repo` by the access rules.
    pub fn allowed(&self, who: &Identity, repo: &str) -> BTreeSet<Action> {
        let mut out = BTreeSet::new();
        if *who == Identity::Anonymous && self.cfg.anonymous_pull {
            out.insert(Action::Pull);
        }
        if self.cfg.access.is_empty() {
            if let Identity::User(_) = who {
                out.extend([Action::Pull, Action::Push, Action::Delete]);
            }
            return out;
        }
        for AccessRule { repository, users, actions } in &self.cfg.access {
            if !glob(repository, repo) {
                continue;
            }
            let applies = users.iter().any(|u| match who {
                Identity::Anonymous => u == "anonymous",
                Identity::User(name) => u == "*" || u == name,
            });
            if applies {
                out.extend(actions.iter().flat_map(|a| Action::parse_all(a)));
            }
        }
        out
    }

    /// May `who` pull from `repo`? (Everyone may, without auth.)
    pub fn may_pull(&self, who: &Identity, repo: &str) -> bool {
        self.cfg.mode == AuthMode::None || self.allowed(who, repo).contains(&Action::Pull)
    }

    /// May `who` pull from every repository, whatever its name? Then a blob's presence
    /// anywhere is no secret from them.
    pub fn pulls_everywhere(&self, who: &Identity) -> bool {
        if self.cfg.mode == AuthMode::None || (*who == Identity::Anonymous && self.cfg.anonymous_pull) {
            return true;
        }
        if self.cfg.access.is_empty() {
            return matches!(who, Identity::User(_));
        }
        self.cfg.access.iter().any(|r| {
            r.repository == "*"
                && r.actions.iter().any(|a| a == "pull" || a == "*")
                && r.users.iter().any(|u| match who {
                    Identity::Anonymous => u == "anonymous",
                    Identity::User(name) => u == "*" || u == name,
                })
        })
    }

    /// Check a request for `/metrics`: any authenticated user (basic credentials, or in token
    /// mode a user's bearer token); without auth, anyone.
    pub fn authorize_user(&self, headers: &HeaderMap) -> std::result::Result<Identity, AppError> {
        let challenge = || {
            AppError::new(ErrorCode::Unauthorized, "authentication required")
                .with_header(header::WWW_AUTHENTICATE, &format!("Basic realm=\"{}\"", self.cfg.realm))
        };
        if self.cfg.mode == AuthMode::None {
            return Ok(Identity::Anonymous);
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let who = match bearer {
            Some(t) if self.cfg.mode == AuthMode::Token => {
                let claims = self.verify_token(t.trim()).map_err(|_| challenge())?;
                if claims.sub.is_empty() { Identity::Anonymous } else { Identity::User(claims.sub) }
            }
            _ => self.basic_identity(headers).map_err(|_| challenge())?,
        };
        match who {
            Identity::User(_) => Ok(who),
            Identity::Anonymous => Err(challenge()),
        }
    }

    fn may_catalog(&self, who: &Identity) -> bool {
        match who {
            Identity::User(_) => true,
            Identity::Anonymous => self.cfg.anonymous_pull,
        }
    }

    fn realm(&self, headers: &HeaderMap, tls: bool) -> String {
        if let Some(r) = &self.cfg.token.realm {
            return r.clone();
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
        format!("{}://{host}/token", if tls { "https" } else { "http" })
    }

    fn challenge(&self, headers: &HeaderMap, tls: bool, need: &Need, error: Option<&str>) -> AppError {
        let mut err = AppError::new(ErrorCode::Unauthorized, "authentication required");
        let value = match self.cfg.mode {
            AuthMode::Basic | AuthMode::None => format!("Basic realm=\"{}\"", self.cfg.realm),
            AuthMode::Token => {
                let mut v =
                    format!("Bearer realm=\"{}\",service=\"{}\"", self.realm(headers, tls), self.cfg.token.service);
                match need {
                    Need::Repo(name, actions) => {
                        let mut acts: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
                        if acts == ["push"] {
                            acts = vec!["pull", "push"];
                        }
                        v.push_str(&format!(",scope=\"repository:{name}:{}\"", acts.join(",")));
                    }
                    Need::Catalog => v.push_str(",scope=\"registry:catalog:*\""),
                    Need::Login => {}
                }
                if let Some(e) = error {
                    v.push_str(&format!(",error=\"{e}\""));
                }
                v
            }
        };
        err = err.with_header(header::WWW_AUTHENTICATE, &value);
        err
    }

    /// Check a request that needs `need`; on refusal, the 401 (with the challenge) or 403.
    pub fn authorize(&self, headers: &HeaderMap, tls: bool, need: &Need) -> std::result::Result<Identity, AppError> {
        match self.cfg.mode {
            AuthMode::None => Ok(Identity::Anonymous),
            AuthMode::Basic => {
                let who = self.basic_identity(headers).map_err(|_| self.challenge(headers, tls, need, None))?;
                let ok = match need {
                    Need::Login => who != Identity::Anonymous,
                    Need::Catalog => self.may_catalog(&who),
                    Need::Repo(name, actions) => {
                        let allowed = self.allowed(&who, name);
                        actions.iter().all(|a| allowed.contains(a))
                    }
                };
                match (ok, &who) {
                    (true, _) => Ok(who),
                    (false, Identity::Anonymous) => Err(self.challenge(headers, tls, need, None)),
                    (false, Identity::User(u)) => {
                        Err(AppError::new(ErrorCode::Denied, format!("user {u:?} may not do this")))
                    }
                }
            }
            AuthMode::Token => {
                let token = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
                let Some(token) = token else { return Err(self.challenge(headers, tls, need, None)) };
                let claims = self
                    .verify_token(token.trim())
                    .map_err(|_| self.challenge(headers, tls, need, Some("invalid_token")))?;
                let granted = |kind: &str, name: &str, action: &str| {
                    claims
                        .access
                        .iter()
                        .any(|r| r.kind == kind && r.name == name && r.actions.iter().any(|a| a == action || a == "*"))
                };
                let ok = match need {
                    Need::Login => true,
                    Need::Catalog => granted("registry", "catalog", "*"),
                    Need::Repo(name, actions) => actions.iter().all(|a| granted("repository", name, a.as_str())),
                };
                if ok {
                    Ok(if claims.sub.is_empty() { Identity::Anonymous } else { Identity::User(claims.sub) })
                } else {
                    Err(self.challenge(headers, tls, need, Some("insufficient_scope")))
                }
            }
        }
    }

    fn verify_token(&self, token: &str) -> std::result::Result<Claims, jsonwebtoken::errors::Error> {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_audience(&[&self.cfg.token.service]);
        v.set_issuer(&[&self.cfg.token.issuer]);
        v.leeway = 5;
        Ok(jsonwebtoken::decode::<Claims>(token, &jsonwebtoken::DecodingKey::from_secret(&self.secret), &v)?.claims)
    }

    /// Issue a token for the scopes asked (`repository:name:pull,push`, `registry:catalog:*`),
    /// granting each only as far as the rules allow.
    pub fn issue_token(&self, headers: &HeaderMap, scopes: &[String]) -> std::result::Result<TokenResponse, AppError> {
        if self.cfg.mode != AuthMode::Token {
            return Err(
                AppError::new(ErrorCode::Unsupported, "token auth is not enabled").with_status(StatusCode::NOT_FOUND)
            );
        }
        let who = self.basic_identity(headers).map_err(|_| {
            AppError::new(ErrorCode::Unauthorized, "wrong user name or password")
                .with_header(header::WWW_AUTHENTICATE, &format!("Basic realm=\"{}\"", self.cfg.realm))
        })?;
        let mut access = Vec::new();
        for scope in scopes.iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()) {
            // repository:team/app:pull,push — the name may hold colons only in a registry host part.
            let mut parts = scope.splitn(2, ':');
            let kind = parts.next().unwrap_or("");
            let rest = parts.next().unwrap_or("");
            let Some((name, actions)) = rest.rsplit_once(':') else { continue };
            match kind {
                "repository" => {
                    if rbuild_image::reference::validate_repository(name).is_err() {
                        continue;
                    }
                    let allowed = self.allowed(&who, name);
                    let mut granted: Vec<String> = actions
                        .split(',')
                        .flat_map(Action::parse_all)
                        .filter(|a| allowed.contains(a))
                        .map(|a| a.as_str().to_string())
                        .collect();
                    granted.sort();
                    granted.dedup();
                    access.push(ResourceActions { kind: kind.into(), name: name.into(), actions: granted });
                }
                "registry" if name == "catalog" && self.may_catalog(&who) => {
                    access.push(ResourceActions { kind: kind.into(), name: name.into(), actions: vec!["*".into()] });
                }
                _ => {}
            }
        }
        let now = chrono::Utc::now();
        let iat = now.timestamp().max(0) as u64;
        // Config::validate refuses less; the floor only guards an Auth built without it.
        let expires_in = self.cfg.token.expiry.as_secs().max(crate::config::MIN_TOKEN_EXPIRY.as_secs());
        let claims = Claims {
            iss: self.cfg.token.issuer.clone(),
            sub: match &who {
                Identity::User(u) => u.clone(),
                Identity::Anonymous => String::new(),
            },
            aud: self.cfg.token.service.clone(),
            exp: iat + expires_in,
            nbf: iat.saturating_sub(5),
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.secret),
        )
        .map_err(AppError::internal)?;
        Ok(TokenResponse { access_token: token.clone(), token, expires_in, issued_at: now.to_rfc3339() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "a/b"));
        assert!(glob("team/*", "team/app/api"));
        assert!(!glob("team/*", "other/app"));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("exact", "exactly"));
    }
}
