//! The one error type of rbuild-registry-client. Messages name the registry, the
//! repository and the thing asked for, and say what to do where there is something to do.

use rbuild_image::Digest;
use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which credentials a refused request carried: the message says what happened and what to
/// do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// None: nothing is saved for the registry.
    Nothing,
    /// Saved ones (docker's config.json).
    Saved,
    /// The ones `rbuild login` is checking.
    Login,
}

impl Sent {
    fn explain(&self, registry: &str, what: &str, detail: &str) -> String {
        match self {
            Sent::Nothing => format!(
                "{registry} wants credentials for {what} and none are saved for it{detail}; run `rbuild login {registry}`"
            ),
            Sent::Saved => format!(
                "{registry} rejected the saved credentials for {what}{detail}; run `rbuild login {registry}` to replace them"
            ),
            Sent::Login => format!("{registry} rejected the username or password{detail}"),
        }
    }
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: no credentials were sent, or the ones sent were wrong.
    #[error("unauthorized: {}", sent.explain(registry, what, detail))]
    Unauthorized {
        /// The registry as written in references.
        registry: String,
        /// What was asked for.
        what: String,
        /// The registry's message, with a leading ": ", or empty.
        detail: String,
        /// Which credentials went with the request.
        sent: Sent,
    },
    /// 403: authenticated, but not allowed.
    #[error("denied: {registry} does not let these credentials {action} {repository}{detail}")]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// pull or push.
        action: String,
        /// The registry's message, with a leading ": ", or empty.
        detail: String,
    },
    /// NAME_UNKNOWN.
    #[error("name unknown: no repository {repository} at {registry}")]
    NameUnknown {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
    },
    /// MANIFEST_UNKNOWN, or a 404 on a manifest.
    #[error("manifest unknown: no {kind} {reference} in {repository} at {registry}")]
    ManifestUnknown {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// "tag" or "digest".
        kind: &'static str,
        /// The tag or digest.
        reference: String,
    },
    /// BLOB_UNKNOWN, or a 404 on a blob.
    #[error("blob unknown: {digest} is not in {repository} at {registry}")]
    BlobUnknown {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The blob.
        digest: Digest,
    },
    /// Any other refusal, with what the registry said.
    #[error("{registry}: {method} {path}: HTTP {status}{code}{message}")]
    Http {
        /// The registry.
        registry: String,
        /// GET, PUT…
        method: String,
        /// The request path.
        path: String,
        /// The status.
        status: u16,
        /// The distribution error code with a leading space, or empty.
        code: String,
        /// The message with a leading ": ", or empty.
        message: String,
    },
    /// The host name does not resolve: trying again will not help.
    #[error("cannot resolve {host}: {detail} (is the name right, and is this machine online?)")]
    Dns {
        /// host:port.
        host: String,
        /// What the resolver said.
        detail: String,
    },
    /// Nobody listens on the port.
    #[error("cannot connect to {host}: connection refused (is the registry running, and on that port?)")]
    ConnectionRefused {
        /// host:port.
        host: String,
    },
    /// The TLS handshake failed (bad certificate, plain-HTTP server…).
    #[error(
        "TLS handshake with {host} failed: {detail} (for a registry without a valid certificate, use --tls-verify=false or mark it insecure in registries.toml)"
    )]
    Tls {
        /// host:port.
        host: String,
        /// What rustls said.
        detail: String,
    },
    /// Another network failure (DNS, reset, timeout).
    #[error("network error talking to {host}: {detail}")]
    Network {
        /// host:port.
        host: String,
        /// What happened.
        detail: String,
    },
    /// Retries ran out.
    #[error("{what}: gave up after {tries} tries: {last}")]
    RetriesExhausted {
        /// What was being done.
        what: String,
        /// How many tries.
        tries: u32,
        /// The last failure.
        last: Box<Error>,
    },
    /// Bytes that do not hash to their digest.
    #[error("digest mismatch: {what} from {registry} should be {expected} but is {actual}; nothing was stored")]
    DigestMismatch {
        /// The registry.
        registry: String,
        /// Blob or manifest, and where.
        what: String,
        /// What it claimed.
        expected: Digest,
        /// What it hashed to.
        actual: Digest,
    },
    /// A size that is not the one the descriptor gave.
    #[error("size mismatch: {what} from {registry} should be {expected} bytes but is {actual}")]
    SizeMismatch {
        /// The registry.
        registry: String,
        /// Blob or manifest, and where.
        what: String,
        /// Expected size.
        expected: u64,
        /// Received size.
        actual: u64,
    },
    /// A manifest heavier than 4 MiB.
    #[error("manifest {reference} from {registry} is over the 4 MiB limit ({size} bytes or more); refused")]
    ManifestTooLarge {
        /// The registry.
        registry: String,
        /// What was fetched.
        reference: String,
        /// How big it is (or at least).
        size: u64,
    },
    /// An index without the platform asked for.
    #[error("no image for platform {platform} in {reference} (it has: {available})")]
    PlatformNotFound {
        /// The reference.
        reference: String,
        /// What was asked for.
        platform: String,
        /// What the index offers.
        available: String,
    },
    /// The registry said something that breaks the protocol.
    #[error("{registry}: {detail}")]
    Protocol {
        /// The registry.
        registry: String,
        /// What was wrong.
        detail: String,
    },
    /// A config file (registries.toml, docker's config.json) that cannot be used.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper} {action} for {server}: {reason}")]
    CredentialHelper {
        /// The helper's suffix (`pass`, `secretservice`…).
        helper: String,
        /// get, store, erase.
        action: String,
        /// The server URL.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// An error of rbuild-image (store, digest, manifest parsing).
    #[error(transparent)]
    Image(#[from] rbuild_image::Error),
    /// A local I/O error, with its path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
    /// Something that cannot be asked of a registry (bad flags, bad input).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Is this worth another try (network trouble, 408, 429, 5xx)?
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network { .. } | Error::ConnectionRefused { .. } => true,
            Error::Http { status, .. } => is_retryable_status(*status),
            Error::Image(rbuild_image::Error::Stream(_)) => true,
            _ => false,
        }
    }

    /// Turn a reqwest error into one that names the host and says what happened.
    pub(crate) fn from_reqwest(host: &str, e: reqwest::Error) -> Error {
        let mut chain = String::new();
        let mut refused = false;
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    refused = true;
                }
            }
            let text = s.to_string();
            if !chain.contains(&text) {
                if !chain.is_empty() {
                    chain.push_str(": ");
                }
                chain.push_str(&text);
            }
            src = s.source();
        }
        let host = host.to_string();
        if refused {
            return Error::ConnectionRefused { host };
        }
        let lower = chain.to_ascii_lowercase();
        if lower.contains("dns error") || lower.contains("failed to lookup address") {
            return Error::Dns { host, detail: chain };
        }
        if e.is_connect()
            && (lower.contains("certificate") || lower.contains("tls") || lower.contains("invalidcontenttype"))
        {
            return Error::Tls { host, detail: chain };
        }
        if e.is_timeout() {
            return Error::Network { host, detail: format!("timed out ({chain})") };
        }
        Error::Network { host, detail: chain }
    }
}

/// 408, 429 and 5xx (except 501, which will not get better).
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (status >= 500 && status != 501)
}
