//! Configuration: a TOML file, then `RBUILD_REGISTRY_*` environment variables, then flags.
//!
//! ```toml
//! addr = "127.0.0.1:5000"
//! root = "./registry-data"
//! read_only = false
//! log_level = "info"
//! shutdown_timeout = "30s"
//! header_timeout = "30s"       # a request's headers (and an idle connection's next request)
//! body_timeout = "60s"         # a request body that sends nothing for this long is cut
//! max_connections = 4096       # connections served at once (0: no limit)
//! max_connections_per_client = 256   # from one IP address (0: no limit)
//!
//! [metrics]
//! # addr = "127.0.0.1:9090"    # serve /metrics here, without auth; absent: /metrics on addr,
//! #                            # behind auth like /v2/ (any authenticated user)
//!
//! [storage]
//! driver = "filesystem"        # or "memory", or "s3"
//! delete_enabled = true
//! fsync = true                 # false: faster, but a power loss may lose acknowledged blobs
//! cache_refresh = "1s"         # replicas re-check the bucket's generation this often (0: no cache);
//!                              # default 1s on s3, no cache on filesystem/memory
//! [storage.s3]                 # driver = "s3": every replica pointing here shares everything
//! bucket = "registry"
//! prefix = "prod"              # keys live under prod/ (default: the bucket's root)
//! endpoint = "http://127.0.0.1:8333"   # absent: AWS
//! region = "us-east-1"
//! access_key_id = "…"          # absent: AWS_ACCESS_KEY_ID (and the other usual AWS_* variables)
//! secret_access_key = "…"      # absent: AWS_SECRET_ACCESS_KEY
//! path_style = true            # http://endpoint/bucket/key rather than http://bucket.endpoint/key
//! redirect = false             # blob GETs: 307 to a presigned URL (clients must reach the endpoint)
//! redirect_expiry = "5m"
//! connect_timeout = "5s"       # a store that does not answer: requests fail with 503 after
//! request_timeout = "60s"      #   these limits and retries, instead of hanging
//! max_retries = 3
//! retry_timeout = "15s"
//!
//! [tls]
//! cert = "/etc/rbuild-registry/cert.pem"
//! key = "/etc/rbuild-registry/key.pem"
//!
//! [auth]
//! mode = "token"               # "none", "basic" or "token"
//! htpasswd = "/etc/rbuild-registry/htpasswd"
//! realm = "rbuild-registry"
//! anonymous_pull = false
//! [auth.token]
//! service = "rbuild-registry"
//! issuer = "rbuild-registry"
//! expiry = "5m"
//! # realm = "https://registry.example.com/token"   # default: this server's /token
//! # secret_file = "/etc/rbuild-registry/token.key" # default: random per process
//! [[auth.access]]
//! repository = "team/*"
//! users = ["alice"]
//! actions = ["pull", "push", "delete"]
//!
//! [gc]
//! interval = "24h"             # online GC; absent = never
//! grace = "1h"
//! delete_untagged = false
//! ```

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default listen address (local only; use `0.0.0.0:5000` to expose the registry).
pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
/// The default data directory, relative to the working directory.
pub const DEFAULT_ROOT: &str = "./registry-data";
/// The default `header_timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `body_timeout` (nginx's `client_body_timeout`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The shortest `auth.token.expiry`: the token spec says a token should never be issued with
/// less than 60 seconds to live, and clients treat shorter ones as 60 s anyway.
pub const MIN_TOKEN_EXPIRY: Duration = Duration::from_secs(60);

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `HOST:PORT` to listen on (port 0 picks a free one).
    pub addr: String,
    /// The data directory of the filesystem driver.
    pub root: PathBuf,
    /// Refuse every write with 405 `UNSUPPORTED`.
    pub read_only: bool,
    /// Log filter (`info`, `debug`, `rbuild_registry_server=debug`…); `RUST_LOG` wins.
    pub log_level: String,
    /// How long a graceful shutdown waits for requests in flight.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_timeout: Duration,
    /// Limit for receiving a request's headers, counted from when the connection is ready for
    /// the next request (so it also closes idle keep-alive connections), and for a TLS handshake.
    #[serde(deserialize_with = "de_duration")]
    pub header_timeout: Duration,
    /// Limit for a request body to send nothing; the request fails and its connection closes
    /// (an upload keeps the bytes received, and the client continues at that offset).
    #[serde(deserialize_with = "de_duration")]
    pub body_timeout: Duration,
    /// Connections served at once, from all clients; 0: no limit.
    pub max_connections: usize,
    /// Connections served at once from one client IP address; 0: no limit. Behind a load
    /// balancer every connection comes from its address: raise this or set 0 there.
    pub max_connections_per_client: usize,
    /// Where `/metrics` is served.
    pub metrics: MetricsConfig,
    /// Storage.
    pub storage: StorageConfig,
    /// TLS; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Authentication and access rules.
    pub auth: AuthConfig,
    /// Garbage collection.
    pub gc: GcConfig,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A separate `HOST:PORT` serving `/metrics` without auth (and nothing else); absent:
    /// `/metrics` is served on `addr`, behind the same auth as `/v2/`.
    pub addr: Option<String>,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `filesystem` (default) or `memory`.
    pub driver: String,
    /// Allow DELETE of manifests, tags and blobs.
    pub delete_enabled: bool,
    /// fsync blobs and links before they become visible (filesystem driver).
    pub fsync: bool,
    /// How often a replica re-reads the bucket's generation object, which bounds how stale
    /// its cache of tags, links and blob sizes can be; zero turns the cache off; absent: 1 s
    /// on s3, off on the other drivers (see `crate::cache`).
    #[serde(deserialize_with = "de_opt_duration")]
    pub cache_refresh: Option<Duration>,
    /// The S3 bucket (`driver = "s3"`).
    pub s3: S3Config,
}

/// `[storage.s3]`: where the S3 driver keeps everything. Credentials and region left out here
/// come from the usual `AWS_*` environment variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (created when missing).
    pub bucket: String,
    /// A key prefix inside the bucket; empty: the bucket's root.
    pub prefix: String,
    /// An S3-compatible endpoint URL (`http://127.0.0.1:8333`); absent: AWS.
    pub endpoint: Option<String>,
    /// The region; absent: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Access key id; absent: `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret access key; absent: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible stores want.
    pub path_style: bool,
    /// Answer blob GETs with a 307 to a presigned URL of the object, so the bytes flow from the
    /// store to the client directly (the client must reach the endpoint).
    pub redirect: bool,
    /// How long a presigned redirect URL stays valid.
    #[serde(deserialize_with = "de_duration")]
    pub redirect_expiry: Duration,
    /// Limit for opening a connection to the store.
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Limit for one request to the store, body included (blob reads are split into ranged
    /// GETs and writes into parts, so no request carries more than [`crate::storage::s3::PART_SIZE`]
    /// or a read range).
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Retries of a request that failed to connect, timed out or got a 5xx.
    pub max_retries: usize,
    /// Give up retrying a request this long after it first started.
    #[serde(deserialize_with = "de_duration")]
    pub retry_timeout: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            path_style: false,
            redirect: false,
            redirect_expiry: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Everyone may do everything.
    #[default]
    None,
    /// HTTP basic auth against an htpasswd file (bcrypt).
    Basic,
    /// Bearer tokens from the built-in `/token` endpoint.
    Token,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `none`, `basic` or `token`.
    pub mode: AuthMode,
    /// htpasswd file with bcrypt entries (`htpasswd -Bbn user pass`).
    pub htpasswd: Option<PathBuf>,
    /// The realm of basic challenges.
    pub realm: String,
    /// Let requests without credentials pull.
    pub anonymous_pull: bool,
    /// Token settings.
    pub token: TokenConfig,
    /// Access rules; none means every authenticated user may pull, push and delete everywhere.
    pub access: Vec<AccessRule>,
}

/// `[auth.token]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// The token endpoint URL put in challenges; default: this server's `/token`.
    pub realm: Option<String>,
    /// The service name (the tokens' audience).
    pub service: String,
    /// The tokens' issuer.
    pub issuer: String,
    /// Token lifetime.
    #[serde(deserialize_with = "de_duration")]
    pub expiry: Duration,
    /// File holding the HS256 signing secret (share it between replicas); default: random.
    pub secret_file: Option<PathBuf>,
}

/// One `[[auth.access]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Repository pattern: `*` matches any characters, slashes included (`team/*`).
    pub repository: String,
    /// User names; `*` is any authenticated user, `anonymous` is no credentials.
    pub users: Vec<String>,
    /// `pull`, `push`, `delete` (or `*`).
    pub actions: Vec<String>,
}

/// `[gc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Run online GC this often; absent: never.
    #[serde(deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
    /// Blobs, manifests and uploads younger than this are never deleted.
    #[serde(deserialize_with = "de_duration")]
    pub grace: Duration,
    /// Also delete manifests no tag, index or referrer reaches.
    pub delete_untagged: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: DEFAULT_ADDR.into(),
            root: PathBuf::from(DEFAULT_ROOT),
            read_only: false,
            log_level: "info".into(),
            shutdown_timeout: Duration::from_secs(30),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: 4096,
            max_connections_per_client: 256,
            metrics: MetricsConfig::default(),
            storage: StorageConfig::default(),
            tls: None,
            auth: AuthConfig::default(),
            gc: GcConfig::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            driver: "filesystem".into(),
            delete_enabled: true,
            fsync: true,
            cache_refresh: None,
            s3: S3Config::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            htpasswd: None,
            realm: "rbuild-registry".into(),
            anonymous_pull: false,
            token: TokenConfig::default(),
            access: Vec::new(),
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            realm: None,
            service: "rbuild-registry".into(),
            issuer: "rbuild-registry".into(),
            expiry: Duration::from_secs(300),
            secret_file: None,
        }
    }
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig { interval: None, grace: Duration::from_secs(3600), delete_untagged: false }
    }
}

/// Parse `90`, `500ms`, `30s`, `5m`, `1h`, `7d`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration (like 30s, 5m, 1h, 7d)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => return Err(format!("unknown duration unit {other:?} in {s:?} (ms, s, m, h, d)")),
    };
    Ok(Duration::from_secs(secs))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Secs(u64),
    Text(String),
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    match DurationRepr::deserialize(d)? {
        DurationRepr::Secs(n) => Ok(Duration::from_secs(n)),
        DurationRepr::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

fn env_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(Error::Config { where_: name.into(), reason: format!("{v:?} is not a boolean") }),
    }
}

impl Config {
    /// Defaults with storage at `root` and a free port on 127.0.0.1: what tests start.
    pub fn for_tests(root: impl Into<PathBuf>) -> Config {
        Config { addr: "127.0.0.1:0".into(), root: root.into(), ..Config::default() }
    }

    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|io| Error::ConfigFile { path: path.into(), io })?;
        toml::from_str(&text).map_err(|e| Error::Config { where_: path.display().to_string(), reason: e.to_string() })
    }

    /// Apply `RBUILD_REGISTRY_*` variables from `vars` (normally `std::env::vars()`).
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<()> {
        for (k, v) in vars {
            let Some(key) = k.strip_prefix("RBUILD_REGISTRY_") else { continue };
            let dur = |v: &str| parse_duration(v).map_err(|reason| Error::Config { where_: k.clone(), reason });
            let num = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| Error::Config { where_: k.clone(), reason: format!("{v:?} is not a number") })
            };
            match key {
                "ADDR" => self.addr = v,
                "ROOT" => self.root = PathBuf::from(v),
                "READ_ONLY" => self.read_only = env_bool(&k, &v)?,
                "LOG_LEVEL" => self.log_level = v,
                "STORAGE_DRIVER" => self.storage.driver = v,
                "DELETE_ENABLED" => self.storage.delete_enabled = env_bool(&k, &v)?,
                "FSYNC" => self.storage.fsync = env_bool(&k, &v)?,
                "CACHE_REFRESH" => self.storage.cache_refresh = Some(dur(&v)?),
                "S3_BUCKET" => self.storage.s3.bucket = v,
                "S3_PREFIX" => self.storage.s3.prefix = v,
                "S3_ENDPOINT" => self.storage.s3.endpoint = Some(v),
                "S3_REGION" => self.storage.s3.region = Some(v),
                "S3_PATH_STYLE" => self.storage.s3.path_style = env_bool(&k, &v)?,
                "S3_REDIRECT" => self.storage.s3.redirect = env_bool(&k, &v)?,
                "S3_REDIRECT_EXPIRY" => self.storage.s3.redirect_expiry = dur(&v)?,
                "S3_CONNECT_TIMEOUT" => self.storage.s3.connect_timeout = dur(&v)?,
                "S3_REQUEST_TIMEOUT" => self.storage.s3.request_timeout = dur(&v)?,
                "S3_RETRY_TIMEOUT" => self.storage.s3.retry_timeout = dur(&v)?,
                "S3_MAX_RETRIES" => {
                    self.storage.s3.max_retries = v
                        .parse()
                        .map_err(|_| Error::Config { where_: k.clone(), reason: format!("{v:?} is not a number") })?
                }
                "TLS_CERT" | "TLS_KEY" => {
                    let tls = self.tls.get_or_insert(TlsConfig { cert: PathBuf::new(), key: PathBuf::new() });
                    if key == "TLS_CERT" {
                        tls.cert = PathBuf::from(v);
                    } else {
                        tls.key = PathBuf::from(v);
                    }
                }
                "AUTH" => {
                    self.auth.mode = match v.as_str() {
                        "none" => AuthMode::None,
                        "basic" => AuthMode::Basic,
                        "token" => AuthMode::Token,
                        _ => {
                            return Err(Error::Config {
                                where_: k,
                                reason: format!("{v:?}: expected none, basic or token"),
                            });
                        }
                    }
                }
                "HTPASSWD" => self.auth.htpasswd = Some(PathBuf::from(v)),
                "ANONYMOUS_PULL" => self.auth.anonymous_pull = env_bool(&k, &v)?,
                "TOKEN_REALM" => self.auth.token.realm = Some(v),
                "TOKEN_SECRET_FILE" => self.auth.token.secret_file = Some(PathBuf::from(v)),
                "GC_INTERVAL" => self.gc.interval = Some(dur(&v)?),
                "GC_GRACE" => self.gc.grace = dur(&v)?,
                "SHUTDOWN_TIMEOUT" => self.shutdown_timeout = dur(&v)?,
                "HEADER_TIMEOUT" => self.header_timeout = dur(&v)?,
                "BODY_TIMEOUT" => self.body_timeout = dur(&v)?,
                "MAX_CONNECTIONS" => self.max_connections = num(&v)?,
                "MAX_CONNECTIONS_PER_CLIENT" => self.max_connections_per_client = num(&v)?,
                "METRICS_ADDR" => self.metrics.addr = Some(v).filter(|a| !a.is_empty()),
                _ => return Err(Error::Config { where_: k.clone(), reason: "unknown variable".into() }),
            }
        }
        Ok(())
    }

    /// Check the parts that cannot be checked while parsing.
    pub fn validate(&self) -> Result<()> {
        let bad = |w: &str, r: String| Err(Error::Config { where_: w.into(), reason: r });
        if !matches!(self.storage.driver.as_str(), "filesystem" | "memory" | "s3") {
            return bad("storage.driver", format!("{:?}: expected filesystem, memory or s3", self.storage.driver));
        }
        if self.storage.driver == "s3" && self.storage.s3.bucket.is_empty() {
            return bad("storage.s3.bucket", "the s3 driver needs a bucket".into());
        }
        let s3 = &self.storage.s3;
        if s3.redirect_expiry.is_zero() || s3.redirect_expiry > Duration::from_secs(7 * 86400) {
            return bad("storage.s3.redirect_expiry", "must be between 1s and 7d (S3's presigned URL limit)".into());
        }
        if s3.connect_timeout.is_zero() || s3.request_timeout.is_zero() {
            return bad("storage.s3", "connect_timeout and request_timeout must be above zero".into());
        }
        if self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            let which = if self.header_timeout.is_zero() { "header_timeout" } else { "body_timeout" };
            return bad(which, "must be above zero (a connection could otherwise stay open forever)".into());
        }
        if self.auth.token.expiry < MIN_TOKEN_EXPIRY {
            return bad(
                "auth.token.expiry",
                format!(
                    "{:?} is below the minimum of {}s (the token spec's shortest lifetime; clients treat shorter tokens as 60s)",
                    self.auth.token.expiry,
                    MIN_TOKEN_EXPIRY.as_secs()
                ),
            );
        }
        if self.metrics.addr.as_deref().is_some_and(|a| a == self.addr && !a.ends_with(":0")) {
            return bad("metrics.addr", format!("{:?} is addr too; give /metrics an address of its own", self.addr));
        }
        if self.auth.mode != AuthMode::None && self.auth.htpasswd.is_none() {
            return bad("auth.htpasswd", "basic and token auth need an htpasswd file".into());
        }
        if let Some(t) = &self.tls {
            if t.cert.as_os_str().is_empty() || t.key.as_os_str().is_empty() {
                return bad("tls", "both cert and key are needed".into());
            }
        }
        for r in &self.auth.access {
            for a in &r.actions {
                if !matches!(a.as_str(), "pull" | "push" | "delete" | "*") {
                    return bad("auth.access.actions", format!("{a:?}: expected pull, push, delete or *"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_env_and_durations() {
        let c: Config = toml::from_str(
            "addr = \"0.0.0.0:6000\"\n[gc]\ninterval = \"2h\"\ngrace = 90\n[auth]\nmode = \"basic\"\nhtpasswd = \"/x\"\n\
             [[auth.access]]\nrepository = \"team/*\"\nusers = [\"alice\"]\nactions = [\"pull\"]\n",
        )
        .unwrap();
        assert_eq!(c.addr, "0.0.0.0:6000");
        assert_eq!(c.gc.interval, Some(Duration::from_secs(7200)));
        assert_eq!(c.gc.grace, Duration::from_secs(90));
        c.validate().unwrap();
        let mut c = c;
        c.apply_env([("RBUILD_REGISTRY_ADDR".into(), "127.0.0.1:7".into()), ("PATH".into(), "/bin".into())]).unwrap();
        assert_eq!(c.addr, "127.0.0.1:7");
        assert!(c.apply_env([("RBUILD_REGISTRY_NOPE".into(), "1".into())]).is_err());
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn limits_metrics_and_token_expiry() {
        let c: Config = toml::from_str(
            "header_timeout = \"5s\"\nbody_timeout = 90\nmax_connections = 10\nmax_connections_per_client = 0\n\
             [metrics]\naddr = \"127.0.0.1:9090\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!((c.header_timeout, c.body_timeout), (Duration::from_secs(5), Duration::from_secs(90)));
        assert_eq!((c.max_connections, c.max_connections_per_client), (10, 0));
        assert_eq!(c.metrics.addr.as_deref(), Some("127.0.0.1:9090"));
        let d = Config::default();
        assert_eq!((d.header_timeout, d.body_timeout), (DEFAULT_HEADER_TIMEOUT, DEFAULT_BODY_TIMEOUT));
        assert!(d.metrics.addr.is_none(), "metrics stay behind auth unless an address is given");
        let mut e = Config::default();
        e.apply_env([
            ("RBUILD_REGISTRY_HEADER_TIMEOUT".into(), "2s".into()),
            ("RBUILD_REGISTRY_MAX_CONNECTIONS_PER_CLIENT".into(), "8".into()),
            ("RBUILD_REGISTRY_METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ])
        .unwrap();
        assert_eq!((e.header_timeout, e.max_connections_per_client), (Duration::from_secs(2), 8));
        assert!(e.apply_env([("RBUILD_REGISTRY_MAX_CONNECTIONS".into(), "lots".into())]).is_err());
        let zero: Config = toml::from_str("body_timeout = 0\n").unwrap();
        assert!(zero.validate().unwrap_err().to_string().contains("body_timeout"));
        let same: Config = toml::from_str("addr = \"0.0.0.0:5000\"\n[metrics]\naddr = \"0.0.0.0:5000\"\n").unwrap();
        assert!(same.validate().unwrap_err().to_string().contains("metrics.addr"));
        let short: Config = toml::from_str("[auth.token]\nexpiry = \"59s\"\n").unwrap();
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("auth.token.expiry") && err.contains("minimum of 60s"), "{err}");
        let ok: Config = toml::from_str("[auth.token]\nexpiry = \"60s\"\n").unwrap();
        ok.validate().unwrap();
    }

    #[test]
    fn s3_section() {
        let mut c: Config = toml::from_str(
            "[storage]\ndriver = \"s3\"\n[storage.s3]\nbucket = \"reg\"\nprefix = \"prod\"\n\
             endpoint = \"http://127.0.0.1:8333\"\nregion = \"eu-west-1\"\naccess_key_id = \"k\"\n\
             secret_access_key = \"s\"\npath_style = true\nredirect = true\nredirect_expiry = \"2m\"\n\
             request_timeout = \"10s\"\nmax_retries = 1\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert!(c.storage.s3.redirect);
        assert_eq!(c.storage.s3.redirect_expiry, Duration::from_secs(120));
        assert_eq!(c.storage.s3.request_timeout, Duration::from_secs(10));
        assert_eq!(c.storage.s3.max_retries, 1);
        assert_eq!(c.storage.s3.connect_timeout, Duration::from_secs(5));
        c.apply_env([
            ("RBUILD_REGISTRY_S3_REDIRECT".into(), "false".into()),
            ("RBUILD_REGISTRY_S3_CONNECT_TIMEOUT".into(), "2s".into()),
        ])
        .unwrap();
        assert!(!c.storage.s3.redirect);
        assert_eq!(c.storage.s3.connect_timeout, Duration::from_secs(2));
        assert!(c.apply_env([("RBUILD_REGISTRY_S3_MAX_RETRIES".into(), "many".into())]).is_err());
        assert_eq!(c.storage.s3.bucket, "reg");
        assert_eq!(c.storage.s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert!(c.storage.s3.path_style);
        c.apply_env([("RBUILD_REGISTRY_S3_BUCKET".into(), "other".into())]).unwrap();
        assert_eq!(c.storage.s3.bucket, "other");
        assert!(toml::from_str::<Config>("[storage.s3]\nbukket = \"x\"\n").is_err());
        let no_bucket: Config = toml::from_str("[storage]\ndriver = \"s3\"\n").unwrap();
        assert!(no_bucket.validate().is_err());
        let bad_driver: Config = toml::from_str("[storage]\ndriver = \"ftp\"\n").unwrap();
        assert!(bad_driver.validate().is_err());
    }
}
