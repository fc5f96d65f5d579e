//! The transport: one HTTP client for every registry, each host pinged once (to learn its
//! scheme and auth challenge), credentials and bearer tokens per host and scope, bounded
//! retries with exponential backoff and jitter, and redirects followed by hand so
//! credentials never leave the registry's host.

use crate::auth::{self, Challenge, Token, TokenResponse};
use crate::credentials::{Credential, DockerConfig};
use crate::error::{Error, Result, Sent, is_retryable_status};
use crate::registries::{RegistriesConfig, is_loopback};
use base64::Engine as _;
use rbuild_image::distribution::ErrorBody;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the client behaves: retries, timeouts, parallelism, upload chunking, TLS.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Tries per request (and per blob transfer) before giving up; at least 1.
    pub max_tries: u32,
    /// The first backoff delay; it doubles each try, with jitter.
    pub backoff_base: Duration,
    /// The longest backoff delay, and the most a `Retry-After` is honoured for.
    pub backoff_max: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Upload in PATCH chunks of at most this many bytes (None: one streamed PUT).
    pub chunk_size: Option<u64>,
    /// Verify TLS certificates (false also allows falling back to plain HTTP).
    pub tls_verify: bool,
    /// Insecure registries and mirrors.
    pub registries: RegistriesConfig,
    /// Where credentials come from; None: anonymous unless given with `set_credential`.
    pub docker_config: Option<DockerConfig>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_tries: 5,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            concurrency: 6,
            chunk_size: None,
            tls_verify: true,
            registries: RegistriesConfig::default(),
            docker_config: None,
        }
    }
}

impl ClientOptions {
    /// Defaults plus the user's registries.toml, docker config.json and
    /// `RBUILD_MAX_TRIES` (tries per request), so that every command that talks to a
    /// registry (pull, push, build…) behaves alike.
    pub fn from_environment() -> Result<ClientOptions> {
        let mut opts = ClientOptions {
            registries: RegistriesConfig::load_default()?,
            docker_config: Some(DockerConfig::load_default()?),
            ..ClientOptions::default()
        };
        if let Ok(v) = std::env::var("RBUILD_MAX_TRIES") {
            opts.max_tries = v.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Error::Invalid(format!("RBUILD_MAX_TRIES={v:?}: expected a whole number of tries, 1 or more"))
            })?;
        }
        Ok(opts)
    }
}

/// A registry client. Cheap to clone; clones share connections, credentials and tokens.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: ClientOptions,
    http: reqwest::Client,
    http_noverify: reqwest::Client,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    creds: Mutex<HashMap<String, Option<Credential>>>,
}

/// What the client knows about one registry host.
pub(crate) struct Host {
    /// As written in references (`docker.io`), for credentials and messages.
    pub registry: String,
    /// Where the API is (`registry-1.docker.io`, `mirror:5000`).
    pub host: String,
    insecure: bool,
    base: tokio::sync::OnceCell<String>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, Token>>,
}

impl Host {
    pub(crate) fn base(&self) -> &str {
        self.base.get().map(String::as_str).unwrap_or("")
    }
}

/// A request body that can be made again for another try.
pub(crate) type BodyFn = Arc<dyn Fn() -> Result<reqwest::Body> + Send + Sync>;

/// One request, described so it can be sent again.
pub(crate) struct Req {
    pub method: Method,
    /// A path under the host's base (`/v2/…`) or an absolute URL (upload locations).
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<BodyFn>,
    /// Token scopes this request needs.
    pub scopes: Vec<String>,
    /// Send once only: the caller retries the whole operation.
    pub once: bool,
}

impl Req {
    pub fn new(method: Method, url: impl Into<String>, scopes: Vec<String>) -> Req {
        Req { method, url: url.into(), headers: HeaderMap::new(), body: None, scopes, once: false }
    }

    pub fn header(mut self, k: header::HeaderName, v: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(v) {
            self.headers.insert(k, v);
        }
        self
    }

    pub fn body(mut self, b: BodyFn) -> Req {
        self.body = Some(b);
        self
    }
}

fn build_http(opts: &ClientOptions, verify: bool) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .danger_accept_invalid_certs(!verify)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))
}

impl Client {
    /// A client with these options.
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let http = build_http(&opts, true)?;
        let http_noverify = build_http(&opts, false)?;
        let mut opts = opts;
        opts.max_tries = opts.max_tries.max(1);
        opts.concurrency = opts.concurrency.max(1);
        Ok(Client {
            inner: Arc::new(Inner {
                opts,
                http,
                http_noverify,
                hosts: Mutex::new(HashMap::new()),
                creds: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Use this credential for `registry` (as written in references), whatever config.json says.
    pub fn set_credential(&self, registry: &str, cred: Option<Credential>) {
        self.inner.creds.lock().expect("lock").insert(registry.to_string(), cred);
    }

    pub(crate) fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.inner.creds.lock().expect("lock").get(registry) {
            return Ok(c.clone());
        }
        let c = match &self.inner.opts.docker_config {
            Some(dc) => dc.get(registry)?,
            None => None,
        };
        self.inner.creds.lock().expect("lock").insert(registry.to_string(), c.clone());
        Ok(c)
    }

    /// The state of `api_host`, which serves `registry`.
    pub(crate) fn host(&self, registry: &str, api_host: &str) -> Arc<Host> {
        let mut hosts = self.inner.hosts.lock().expect("lock");
        hosts
            .entry(api_host.to_string())
            .or_insert_with(|| {
                let o = &self.inner.opts;
                Arc::new(Host {
                    registry: registry.to_string(),
                    host: api_host.to_string(),
                    insecure: !o.tls_verify || o.registries.is_insecure(registry) || o.registries.is_insecure(api_host),
                    base: tokio::sync::OnceCell::new(),
                    challenge: Mutex::new(None),
                    tokens: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    fn http_for(&self, h: &Host) -> &reqwest::Client {
        if h.insecure { &self.inner.http_noverify } else { &self.inner.http }
    }

    /// Ping `/v2/` once per host: choose the scheme, learn the auth challenge.
    pub(crate) async fn ensure_ready(&self, h: &Host) -> Result<()> {
        h.base
            .get_or_try_init(|| async {
                let schemes: &[&str] = if is_loopback(&h.host) {
                    &["http"]
                } else if h.insecure {
                    &["https", "http"]
                } else {
                    &["https"]
                };
                let mut last = None;
                for (i, scheme) in schemes.iter().enumerate() {
                    let base = format!("{scheme}://{}", h.host);
                    let url = format!("{base}/v2/");
                    let is_last = i + 1 == schemes.len();
                    let res = self
                        .retrying(&format!("GET {url}"), is_last, || async {
                            let resp =
                                self.http_for(h).get(&url).send().await.map_err(|e| Error::from_reqwest(&h.host, e))?;
                            let st = resp.status().as_u16();
                            if is_retryable_status(st) {
                                return Err(Error::Http {
                                    registry: h.registry.clone(),
                                    method: "GET".into(),
                                    path: "/v2/".into(),
                                    status: st,
                                    code: String::new(),
                                    message: String::new(),
                                });
                            }
                            Ok(resp)
                        })
                        .await;
                    match res {
                        Ok(resp) => {
                            let st = resp.status();
                            if st == StatusCode::UNAUTHORIZED {
                                let c = resp
                                    .headers()
                                    .get(header::WWW_AUTHENTICATE)
                                    .and_then(|v| v.to_str().ok())
                                    .and_then(auth::parse_challenge);
                                *h.challenge.lock().expect("lock") = c;
                            } else if !st.is_success() {
                                return Err(Error::Protocol {
                                    registry: h.registry.clone(),
                                    detail: format!("GET {url} answered {st}: not a registry (no /v2/ API)"),
                                });
                            }
                            tracing::debug!(host = %h.host, %base, "registry ready");
                            return Ok(base);
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.expect("one scheme at least"))
            })
            .await
            .map(|_| ())
    }

    /// Run `op` until it succeeds, fails for good, or tries run out.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, retry: bool, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let max = if retry { self.inner.opts.max_tries } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < max => {
                    let d = self.backoff(attempt, None);
                    tracing::warn!("{what}: {e}; try {}/{max} in {:.1}s", attempt + 1, d.as_secs_f64());
                    tokio::time::sleep(d).await;
                }
                Err(e) if attempt > 1 && e.is_transient() => {
                    return Err(Error::RetriesExhausted { what: what.to_string(), tries: attempt, last: Box::new(e) });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Exponential backoff with jitter, or what `Retry-After` asked for (bounded).
    pub(crate) fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let o = &self.inner.opts;
        if let Some(ra) = retry_after {
            return ra.min(o.backoff_max.max(Duration::from_secs(1)));
        }
        let exp = o.backoff_base.saturating_mul(1u32 << (attempt - 1).min(16)).min(o.backoff_max);
        let jitter: f64 = rand::random::<f64>() * 0.5 + 0.5;
        exp.mul_f64(jitter)
    }

    /// The Authorization header for `scopes` on `h`, fetching a token when needed.
    async fn authorization(&self, h: &Host, scopes: &[String]) -> Result<Option<String>> {
        let challenge = h.challenge.lock().expect("lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match self.credential(&h.registry)? {
                Some(Credential::Basic { username, password }) => Some(basic(&username, &password)),
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scopes.join(" ");
                if let Some(t) = h.tokens.lock().expect("lock").get(&key).filter(|t| t.is_fresh()) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let t = self.fetch_token(h, &realm, service.as_deref(), scopes).await?;
                let v = format!("Bearer {}", t.value);
                h.tokens.lock().expect("lock").insert(key, t);
                Ok(Some(v))
            }
        }
    }

    /// The bearer token flow: an OAuth2 refresh token is POSTed; otherwise GET the realm
    /// with basic credentials (or none, for anonymous pulls).
    async fn fetch_token(&self, h: &Host, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<Token> {
        let cred = self.credential(&h.registry)?;
        let realm_host = url::Url::parse(realm)
            .ok()
            .and_then(|u| u.host_str().map(|s| format!("{s}:{}", u.port_or_known_default().unwrap_or(0))))
            .unwrap_or_else(|| realm.to_string());
        self.retrying(&format!("token from {realm}"), true, || async {
            let req = match &cred {
                Some(Credential::IdentityToken { token }) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_string()),
                        ("refresh_token", token.clone()),
                        ("client_id", "rbuild".to_string()),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s.to_string()));
                    }
                    if !scopes.is_empty() {
                        form.push(("scope", scopes.join(" ")));
                    }
                    self.http_for(h).post(realm).form(&form)
                }
                other => {
                    let mut q: Vec<(&str, &str)> = Vec::new();
                    if let Some(s) = service {
                        q.push(("service", s));
                    }
                    for s in scopes {
                        q.push(("scope", s));
                    }
                    let mut r = self.http_for(h).get(realm).query(&q);
                    if let Some(Credential::Basic { username, password }) = other {
                        r = r.header(header::AUTHORIZATION, basic(username, password));
                    }
                    r
                }
            };
            let resp = req.send().await.map_err(|e| Error::from_reqwest(&realm_host, e))?;
            let st = resp.status();
            if st.is_success() {
                let tr: TokenResponse = resp.json().await.map_err(|e| Error::Protocol {
                    registry: h.registry.clone(),
                    detail: format!("token response from {realm} is not JSON: {e}"),
                })?;
                return Token::from_response(&tr).ok_or_else(|| Error::Protocol {
                    registry: h.registry.clone(),
                    detail: format!("token response from {realm} has no token"),
                });
            }
            let body = resp.text().await.unwrap_or_default();
            if st == StatusCode::UNAUTHORIZED || st == StatusCode::FORBIDDEN {
                return Err(Error::Unauthorized {
                    registry: h.registry.clone(),
                    what: format!("a token for {}", if scopes.is_empty() { "login".into() } else { scopes.join(" ") }),
                    detail: detail_of(&body),
                    sent: if cred.is_some() { Sent::Saved } else { Sent::Nothing },
                });
            }
            Err(Error::Http {
                registry: h.registry.clone(),
                method: "GET".into(),
                path: realm.to_string(),
                status: st.as_u16(),
                code: String::new(),
                message: detail_of(&body),
            })
        })
        .await
    }

    /// Trade the credential for a token (or check it against basic auth) without a scope:
    /// what `rbuild login` does to verify credentials. Returns a refresh token when the
    /// token server handed one out.
    pub async fn verify_login(&self, registry: &str, api_host: &str) -> Result<Option<String>> {
        let h = self.host(registry, api_host);
        self.ensure_ready(&h).await?;
        let challenge = h.challenge.lock().expect("lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => {
                let resp = self.send(&h, Req::new(Method::GET, "/v2/", vec![])).await?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(Error::Unauthorized {
                        registry: registry.into(),
                        what: "login".into(),
                        detail: detail_of(&body),
                        sent: Sent::Login,
                    });
                }
                Ok(None)
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let cred = self.credential(registry)?;
                let Some(Credential::Basic { username, password }) = cred else {
                    self.fetch_token(&h, &realm, service.as_deref(), &[]).await?;
                    return Ok(None);
                };
                let mut q: Vec<(&str, &str)> =
                    vec![("offline_token", "true"), ("client_id", "rbuild"), ("account", &username)];
                if let Some(s) = service.as_deref() {
                    q.push(("service", s));
                }
                let resp = self
                    .http_for(&h)
                    .get(&realm)
                    .query(&q)
                    .header(header::AUTHORIZATION, basic(&username, &password))
                    .send()
                    .await
                    .map_err(|e| Error::from_reqwest(&h.host, e))?;
                let st = resp.status();
                let body = resp.text().await.unwrap_or_default();
                if !st.is_success() {
                    return Err(Error::Unauthorized {
                        registry: registry.into(),
                        what: "login".into(),
                        detail: detail_of(&body),
                        sent: Sent::Login,
                    });
                }
                let tr: Option<TokenResponse> = serde_json::from_str(&body).ok();
                Ok(tr.and_then(|t| t.refresh_token).filter(|t| !t.is_empty()))
            }
        }
    }

    /// Send `req` to `h`: auth, retries on network trouble, 408, 429 and 5xx (honouring
    /// `Retry-After`), one re-authentication on 401, redirects on GET/HEAD followed by
    /// hand (credentials only to the same host). Error statuses other than those come
    /// back as responses for the caller to name.
    pub(crate) async fn send(&self, h: &Host, req: Req) -> Result<Response> {
        self.ensure_ready(h).await?;
        let max = if req.once { 1 } else { self.inner.opts.max_tries };
        let mut attempt = 0;
        let mut reauthed = false;
        loop {
            attempt += 1;
            let auth = self.authorization(h, &req.scopes).await?;
            let result = self.send_once(h, &req, auth.as_deref()).await;
            let what = || format!("{} {}", req.method, req.url);
            match result {
                Err(e) if e.is_transient() && attempt < max => {
                    let d = self.backoff(attempt, None);
                    tracing::warn!("{}: {e}; try {}/{max} in {:.1}s", what(), attempt + 1, d.as_secs_f64());
                    tokio::time::sleep(d).await;
                }
                Err(e) if e.is_transient() && attempt > 1 => {
                    return Err(Error::RetriesExhausted { what: what(), tries: attempt, last: Box::new(e) });
                }
                Err(e) => return Err(e),
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthed => {
                    reauthed = true;
                    attempt -= 1;
                    let c = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(auth::parse_challenge);
                    if c.is_none() {
                        return Ok(resp);
                    }
                    tracing::debug!(host = %h.host, "401: authenticating again");
                    *h.challenge.lock().expect("lock") = c;
                    h.tokens.lock().expect("lock").remove(&req.scopes.join(" "));
                }
                Ok(resp) if is_retryable_status(resp.status().as_u16()) && attempt < max => {
                    let ra = retry_after(resp.headers());
                    let d = self.backoff(attempt, ra);
                    tracing::warn!(
                        "{}: HTTP {}; try {}/{max} in {:.1}s",
                        what(),
                        resp.status(),
                        attempt + 1,
                        d.as_secs_f64()
                    );
                    drop(resp);
                    tokio::time::sleep(d).await;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    async fn send_once(&self, h: &Host, req: &Req, auth: Option<&str>) -> Result<Response> {
        let mut url = if req.url.starts_with("http://") || req.url.starts_with("https://") {
            req.url.clone()
        } else {
            format!("{}{}", h.base(), req.url)
        };
        let origin = origin_of(h.base());
        let follow = req.method == Method::GET || req.method == Method::HEAD;
        for _ in 0..6 {
            let mut r = self.http_for(h).request(req.method.clone(), &url).headers(req.headers.clone());
            // Credentials only go to the registry's own origin (a redirect to S3 or a CDN
            // carries its own signature in the URL).
            if let Some(a) = auth.filter(|_| origin_of(&url) == origin) {
                r = r.header(header::AUTHORIZATION, a);
            }
            if let Some(b) = &req.body {
                r = r.body(b()?);
            }
            let host = host_of(&url).unwrap_or_else(|| h.host.clone());
            let resp = r.send().await.map_err(|e| Error::from_reqwest(&host, e))?;
            if follow && resp.status().is_redirection() {
                if let Some(loc) = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()) {
                    let next = url::Url::parse(&url).and_then(|u| u.join(loc)).map_err(|e| Error::Protocol {
                        registry: h.registry.clone(),
                        detail: format!("bad redirect {loc:?}: {e}"),
                    })?;
                    tracing::debug!(from = %url, to = %next, "following redirect");
                    url = next.to_string();
                    continue;
                }
            }
            return Ok(resp);
        }
        Err(Error::Protocol { registry: h.registry.clone(), detail: format!("too many redirects from {}", req.url) })
    }

    /// Read an error response into an [`Error`] that names what was asked.
    pub(crate) async fn error_for(&self, h: &Host, method: &str, path: &str, resp: Response) -> Error {
        let status = resp.status().as_u16();
        let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
        let eb: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let first = eb.as_ref().and_then(|b| b.errors.first());
        let code = first.map(|e| e.code.clone()).unwrap_or_default();
        let message = first.map(|e| e.message.clone()).unwrap_or_else(|| {
            let t = String::from_utf8_lossy(&body);
            t.trim().chars().take(200).collect()
        });
        let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
        match status {
            401 => {
                let saved = self.credential(&h.registry).ok().flatten().is_some();
                Error::Unauthorized {
                    registry: h.registry.clone(),
                    what: format!("{method} {path}"),
                    detail,
                    sent: if saved { Sent::Saved } else { Sent::Nothing },
                }
            }
            _ => Error::Http {
                registry: h.registry.clone(),
                method: method.into(),
                path: path.into(),
                status,
                code: if code.is_empty() { String::new() } else { format!(" {code}") },
                message: detail,
            },
        }
    }
}

/// `scheme://host:port` of a URL.
fn origin_of(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    Some(format!("{}://{}:{}", u.scheme(), u.host_str()?, u.port_or_known_default()?))
}

fn host_of(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    Some(match u.port() {
        Some(p) => format!("{}:{p}", u.host_str()?),
        None => u.host_str()?.to_string(),
    })
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

fn detail_of(body: &str) -> String {
    let msg = serde_json::from_str::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.errors.first().map(|e| e.message.clone()))
        .or_else(|| {
            serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("details").or(v.get("error")).and_then(|d| d.as_str()).map(str::to_string))
        })
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    if msg.is_empty() { String::new() } else { format!(": {msg}") }
}

/// `Retry-After`: seconds, or an HTTP date.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Read at most `limit` bytes of a body; more is an error.
pub(crate) async fn read_limited(mut resp: Response, limit: usize) -> std::result::Result<Vec<u8>, usize> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if out.len() + chunk.len() > limit {
            return Err(out.len() + chunk.len());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let future = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(header::RETRY_AFTER, HeaderValue::from_str(&httpdate::fmt_http_date(future)).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let c = Client::new(ClientOptions::default()).unwrap();
        for a in 1..10 {
            let d = c.backoff(a, None);
            assert!(d <= Duration::from_secs(20));
        }
        assert!(c.backoff(1, None) <= Duration::from_millis(250));
        assert_eq!(c.backoff(1, Some(Duration::from_secs(600))), Duration::from_secs(20));
    }

    #[test]
    fn tls_failures_name_the_host() {
        // A plain-HTTP server spoken to over https: the handshake fails.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = rt.block_on(async { reqwest::get(format!("https://{host}/v2/")).await.unwrap_err() });
        let e = Error::from_reqwest(&host, e);
        assert!(matches!(e, Error::Tls { .. }), "{e}");
        assert!(e.to_string().contains(&format!("TLS handshake with {host} failed")), "{e}");
    }

    #[test]
    fn origins() {
        assert_eq!(origin_of("https://a.io/v2/x"), origin_of("https://a.io:443/y"));
        assert_ne!(origin_of("https://a.io/v2/x"), origin_of("https://s3.a.io/y"));
        assert_ne!(origin_of("http://a.io/v2/x"), origin_of("https://a.io/y"));
    }
}
