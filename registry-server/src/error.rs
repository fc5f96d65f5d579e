//! The crate's error type, and the HTTP error the API answers with.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rbuild_image::distribution::{ErrorBody, ErrorCode, ErrorInfo};
use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in storage, configuration or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing stored at that path.
    #[error("storage path {0:?} not found")]
    NotFound(String),
    /// A storage path that breaks the driver's rules (escapes the root, empty component…).
    #[error("invalid storage path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// An I/O error in the storage backend, with the path it happened on.
    #[error("storage {path:?}: {source}")]
    Storage {
        /// The storage path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The object store did not answer (connection refused, timed out, or a 5xx after the
    /// retries): the registry answers 503 `UNAVAILABLE` until it is back.
    #[error("object store {endpoint} unavailable: {op} s3://{bucket}/{key}: {reason}")]
    Unavailable {
        /// The store's endpoint URL.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// What was tried (`GET`, `PUT`, `LIST`…).
        op: &'static str,
        /// The object key (or key prefix).
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// A configuration file or value that cannot be used.
    #[error("config {where_}: {reason}")]
    Config {
        /// The file, key or variable.
        where_: String,
        /// Why it was refused.
        reason: String,
    },
    /// A file a setting names (htpasswd, token secret, data directory) that cannot be used.
    /// The I/O error is part of the message, not a source, so it is printed once.
    #[error("{setting} = {path:?}: {}", io_reason(io))]
    File {
        /// The setting that names the file (`auth.htpasswd`, `root`…).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        io: std::io::Error,
    },
    /// The config file given with `--config` cannot be read.
    #[error("config file {path:?}: {}", io_reason(io))]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        io: std::io::Error,
    },
    /// Binding or serving a listening socket failed.
    #[error("listening on {addr}: {}", io_reason(io))]
    Listen {
        /// The address.
        addr: String,
        /// The underlying error.
        io: std::io::Error,
    },
    /// TLS setup failed.
    #[error("{0}")]
    Tls(String),
    /// Content that is not what it claims (digest mismatch, corrupt manifest).
    #[error(transparent)]
    Image(#[from] rbuild_image::Error),
    /// The SIGINT/SIGTERM handlers could not be installed.
    #[error("installing the SIGINT/SIGTERM handlers: {0}")]
    Signals(std::io::Error),
}

/// An I/O error as a short phrase (`no such file`, `address already in use`), without the
/// `(os error N)` suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let fixed = match e.kind() {
        K::NotFound => "no such file",
        K::PermissionDenied => "permission denied",
        K::AddrInUse => "address already in use",
        K::AddrNotAvailable => "address not available on this machine",
        K::IsADirectory => "is a directory, not a file",
        K::NotADirectory => "a path component is not a directory",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_string();
    }
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => text,
    }
}

impl Error {
    /// True when the error means "nothing there".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// True when the storage backend is unreachable or failing (a 503, worth retrying later).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// Wrap an I/O error on a storage path; `NotFound` becomes [`Error::NotFound`].
    pub fn storage(path: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(path.to_string())
            } else {
                Error::Storage { path: path.to_string(), source }
            }
        }
    }
}

/// An error answered over HTTP: an OCI error body with the spec's code and status.
#[derive(Debug)]
pub struct AppError {
    /// The spec's code; `None` is served as `UNKNOWN` (500).
    pub code: Option<ErrorCode>,
    /// The status (normally the code's own).
    pub status: StatusCode,
    /// The human-readable detail.
    pub detail: serde_json::Value,
    /// Extra headers (`WWW-Authenticate`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl AppError {
    /// An error with the code's own status and a detail message.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> AppError {
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        AppError { code: Some(code), status, detail: serde_json::Value::String(detail.into()), headers: Vec::new() }
    }

    /// The same error served with another status.
    pub fn with_status(mut self, status: StatusCode) -> AppError {
        self.status = status;
        self
    }

    /// Add a header to the response.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> AppError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// A server-side failure: logged, served as 500 `UNKNOWN`.
    pub fn internal(err: impl std::fmt::Display) -> AppError {
        tracing::error!(error = %err, "internal error");
        AppError {
            code: None,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: serde_json::Value::String(err.to_string()),
            headers: Vec::new(),
        }
    }
}

/// Seconds a client is told to wait (`Retry-After`) when the object store is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

impl From<Error> for AppError {
    fn from(e: Error) -> AppError {
        match e {
            Error::InvalidPath { .. } => AppError::new(ErrorCode::NameInvalid, e.to_string()),
            Error::Unavailable { endpoint, bucket, op, key, reason } => {
                // One line with everything an operator needs; the client gets no endpoint.
                tracing::error!(%endpoint, %bucket, %op, %key, %reason, "object store unavailable: answering 503");
                AppError::new(
                    ErrorCode::Unavailable,
                    format!("the registry's storage is unavailable ({op} {key}): retry later"),
                )
                .with_header(http::header::RETRY_AFTER, &RETRY_AFTER_SECS.to_string())
            }
            other => AppError::internal(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = match self.code {
            Some(code) => ErrorBody::single(code, self.detail),
            None => ErrorBody {
                errors: vec![ErrorInfo {
                    code: "UNKNOWN".into(),
                    message: "unknown error".into(),
                    detail: self.detail,
                }],
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (self.status, [(http::header::CONTENT_TYPE, "application/json")], bytes).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}
