//! The HTTP API: [`app`] builds the router; one handler file per resource.
//!
//! Repository names contain slashes, so everything under `/v2/` is one catch-all route,
//! parsed by hand from the right ([`Route::parse`]) on the raw (still percent-encoded) path.

use crate::auth::{Action, Auth, Need};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::storage::{ByteStream, FsDriver, MemoryDriver, S3Driver, StorageDriver};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt;
use rbuild_image::distribution::{ErrorCode, HEADER_API_VERSION};
use std::sync::Arc;

pub mod base;
pub mod blobs;
pub mod catalog;
pub mod manifests;
pub mod referrers;
pub mod tags;
pub mod uploads;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The repositories.
    pub registry: Arc<Registry>,
    /// Authentication and access rules.
    pub auth: Arc<Auth>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Refuse writes.
    pub read_only: bool,
    /// Allow deletes.
    pub delete_enabled: bool,
    /// Served over TLS (for the token realm's scheme).
    pub tls: bool,
    /// With `[storage.s3] redirect`: the S3 driver that signs blob GET redirects.
    pub redirect: Option<Arc<S3Driver>>,
    /// How long a request body may send nothing (`body_timeout`).
    pub body_timeout: std::time::Duration,
    /// `/metrics` has a listener of its own (`metrics.addr`), so the main one does not serve it.
    pub metrics_elsewhere: bool,
}

/// The client's address, put in each request's extensions by the server (absent when the
/// router is driven without a socket).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

impl AppState {
    /// State for `config`, on the storage driver it names.
    pub fn new(config: &Config) -> Result<AppState> {
        let mut redirect = None;
        let driver: Arc<dyn StorageDriver> = match config.storage.driver.as_str() {
            "memory" => Arc::new(MemoryDriver::new()),
            "s3" => {
                let d = Arc::new(S3Driver::new(&config.storage.s3)?);
                if config.storage.s3.redirect {
                    redirect = Some(d.clone());
                }
                d
            }
            _ => Arc::new(FsDriver::new(&config.root)?.with_fsync(config.storage.fsync)),
        };
        let mut state = AppState::with_driver(config, driver)?;
        state.redirect = redirect;
        Ok(state)
    }

    /// State for `config` on a given driver.
    pub fn with_driver(config: &Config, driver: Arc<dyn StorageDriver>) -> Result<AppState> {
        config.validate()?;
        Ok(AppState {
            registry: Arc::new(Registry::with_config(driver, config)),
            auth: Arc::new(Auth::new(&config.auth)?),
            metrics: Arc::new(Metrics::default()),
            read_only: config.read_only,
            delete_enabled: config.storage.delete_enabled,
            tls: config.tls.is_some(),
            redirect: None,
            body_timeout: config.body_timeout,
            metrics_elsewhere: config.metrics.addr.is_some(),
        })
    }
}

/// The router: `/v2/…`, `/token`, `/metrics` (behind auth; absent with `metrics.addr`),
/// `/healthz`, `/readyz`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .route("/token", get(token))
        .route("/metrics", get(metrics_behind_auth))
        .route("/healthz", get(base::healthz))
        .route("/readyz", get(|State(s): State<AppState>| async move { base::readyz(&s).await }))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The router of the `metrics.addr` listener: `/metrics` only, without auth.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(|State(s): State<AppState>| async move { base::metrics(&s).await }))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn metrics_behind_auth(State(st): State<AppState>, req: Request) -> Response {
    if st.metrics_elsewhere {
        return AppError::new(ErrorCode::Unsupported, "/metrics is served on metrics.addr")
            .with_status(StatusCode::NOT_FOUND)
            .into_response();
    }
    match st.auth.authorize_user(req.headers()) {
        Ok(_) => base::metrics(&st).await,
        Err(e) => e.into_response(),
    }
}

/// Counts the request, bounds its body's idle time, and logs one line for it at info
/// (client, method, path, status, bytes, milliseconds), as distribution does.
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0.to_string()).unwrap_or_else(|| "-".into());
    let target = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, crate::limits::TimedBody::wrap(body, st.body_timeout));
    let method = req.method().clone();
    let _guard = (matches!(method, Method::POST | Method::PATCH | Method::PUT)
        && req.uri().path().contains("/blobs/uploads"))
    .then(|| st.metrics.upload_started());
    let h1 = req.version() <= axum::http::Version::HTTP_11;
    let has_body = req.headers().contains_key(axum::http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let mut resp = next.run(req).await;
    if h1 && has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        // Refused before its body was read (a 503 while storage is down, a 416, an auth
        // failure): the connection cannot carry another request, so say so rather than let
        // the client reuse it and meet a closed socket.
        resp.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    st.metrics.request(method.as_str(), resp.status().as_u16());
    // A streamed blob has no exact size hint, but its Content-Length says what it sends.
    let bytes = if method == Method::HEAD {
        Some(0)
    } else {
        axum::body::HttpBody::size_hint(resp.body())
            .exact()
            .or_else(|| resp.headers().get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok())
    };
    if let Some(n) = bytes {
        st.metrics.sent(n);
    }
    resp.headers_mut().insert(HEADER_API_VERSION, HeaderValue::from_static("registry/2.0"));
    tracing::info!(
        target: "rbuild_registry::access",
        "{client} {method} {target} {} {} {:.1}ms",
        resp.status().as_u16(),
        bytes.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        started.elapsed().as_secs_f64() * 1000.0
    );
    resp
}

async fn token(State(st): State<AppState>, req: Request) -> Response {
    let q = query_pairs(req.uri().query());
    let scopes: Vec<String> = q.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    match st.auth.issue_token(req.headers(), &scopes) {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A parsed `/v2/…` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(String),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(String, String),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(String, String),
    /// `/v2/<name>/blobs/uploads/`.
    UploadStart(String),
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload(String, String),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(String, String),
}

fn decode_segment(s: &str) -> std::result::Result<String, AppError> {
    let d = percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| AppError::new(ErrorCode::NameInvalid, format!("path segment {s:?} is not UTF-8")))?;
    if d.contains('/') || d == "." || d == ".." || d.contains('\\') || d.contains('\0') {
        return Err(AppError::new(ErrorCode::NameInvalid, format!("path segment {s:?} decodes to {d:?}")));
    }
    Ok(d.into_owned())
}

impl Route {
    /// Parse the raw path (`/v2/team/app/manifests/latest`), checking the repository name.
    pub fn parse(path: &str) -> std::result::Result<Route, AppError> {
        let not_found = || {
            AppError::new(ErrorCode::Unsupported, format!("no such endpoint: {path}"))
                .with_status(StatusCode::NOT_FOUND)
        };
        let rest = match path.strip_prefix("/v2") {
            Some("") | Some("/") => return Ok(Route::Base),
            Some(r) => r.strip_prefix('/').ok_or_else(not_found)?,
            None => return Err(not_found()),
        };
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        let raw: Vec<&str> = rest.split('/').collect();
        let segs = raw.iter().map(|s| decode_segment(s)).collect::<std::result::Result<Vec<_>, _>>()?;
        let n = segs.len();
        let s = |i: usize| segs[i].as_str();
        let (name_end, route): (usize, fn(String, String) -> Route) =
            if n >= 3 && s(n - 2) == "tags" && s(n - 1) == "list" {
                (n - 2, |name, _| Route::Tags(name))
            } else if n >= 4 && s(n - 3) == "blobs" && s(n - 2) == "uploads" && s(n - 1).is_empty() {
                (n - 3, |name, _| Route::UploadStart(name))
            } else if n >= 3 && s(n - 2) == "blobs" && s(n - 1) == "uploads" {
                (n - 2, |name, _| Route::UploadStart(name))
            } else if n >= 4 && s(n - 3) == "blobs" && s(n - 2) == "uploads" {
                (n - 3, Route::Upload)
            } else if n >= 3 && s(n - 2) == "manifests" && !s(n - 1).is_empty() {
                (n - 2, Route::Manifest)
            } else if n >= 3 && s(n - 2) == "blobs" && !s(n - 1).is_empty() {
                (n - 2, Route::Blob)
            } else if n >= 3 && s(n - 2) == "referrers" && !s(n - 1).is_empty() {
                (n - 2, Route::Referrers)
            } else {
                return Err(not_found());
            };
        let name = segs[..name_end].join("/");
        rbuild_image::reference::validate_repository(&name)
            .map_err(|e| AppError::new(ErrorCode::NameInvalid, format!("repository {name:?}: {e}")))?;
        Ok(route(name, segs[n - 1].clone()))
    }

    fn need(&self, method: &Method) -> Need {
        let repo = |name: &str, a: Action| Need::Repo(name.to_string(), vec![a]);
        let write = |name: &str| {
            if *method == Method::DELETE { repo(name, Action::Delete) } else { repo(name, Action::Push) }
        };
        match self {
            Route::Base => Need::Login,
            Route::Catalog => Need::Catalog,
            Route::Tags(n) | Route::Referrers(n, _) => repo(n, Action::Pull),
            Route::Manifest(n, _) | Route::Blob(n, _) => {
                if matches!(*method, Method::GET | Method::HEAD) {
                    repo(n, Action::Pull)
                } else {
                    write(n)
                }
            }
            Route::UploadStart(n) | Route::Upload(n, _) => repo(n, Action::Push),
        }
    }
}

/// Query pairs, percent- and `+`-decoded, in order (keys may repeat).
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// The first value of `key`.
pub fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A request body as a storage stream; a body timeout stays an `io::ErrorKind::TimedOut`.
pub fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map(|r| {
        r.map_err(|e| match e.into_inner().downcast::<std::io::Error>() {
            Ok(io) => *io,
            Err(other) => std::io::Error::other(other),
        })
    }))
}

/// An empty response with a status and headers.
pub fn empty(status: StatusCode, headers: &[(&str, String)]) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(*k), HeaderValue::from_str(v)) {
            h.append(k, v);
        }
    }
    h.insert(axum::http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

fn method_not_allowed(method: &Method) -> AppError {
    AppError::new(ErrorCode::Unsupported, format!("method {method} is not allowed here"))
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

async fn dispatch(State(st): State<AppState>, req: Request) -> Response {
    match handle(&st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(st: &AppState, req: Request) -> std::result::Result<Response, AppError> {
    let (parts, body) = req.into_parts();
    let route = Route::parse(parts.uri.path())?;
    let method = parts.method.clone();
    let headers = &parts.headers;
    let q = query_pairs(parts.uri.query());
    let who = st.auth.authorize(headers, st.tls, &route.need(&method))?;
    let writes = matches!(method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if writes && st.read_only {
        return Err(AppError::new(
            ErrorCode::Unsupported,
            "the registry is in read-only mode: pushes and deletes are refused",
        )
        .with_status(StatusCode::METHOD_NOT_ALLOWED));
    }
    if method == Method::DELETE && !st.delete_enabled {
        return Err(AppError::new(ErrorCode::Unsupported, "deletes are disabled (storage.delete_enabled = false)")
            .with_status(StatusCode::METHOD_NOT_ALLOWED));
    }
    let head = method == Method::HEAD;
    match (&route, &method) {
        (Route::Base, &Method::GET | &Method::HEAD) => Ok(base::version().await),
        (Route::Catalog, &Method::GET) => catalog::list(st, &who, &q).await,
        (Route::Tags(n), &Method::GET) => tags::list(st, n, &q).await,
        (Route::Referrers(n, d), &Method::GET) => referrers::list(st, n, d, &q).await,
        (Route::Manifest(n, r), &Method::GET | &Method::HEAD) => manifests::get(st, n, r, head).await,
        (Route::Manifest(n, r), &Method::PUT) => manifests::put(st, n, r, headers, &q, body).await,
        (Route::Manifest(n, r), &Method::DELETE) => manifests::delete(st, n, r).await,
        (Route::Blob(n, d), &Method::GET | &Method::HEAD) => blobs::get(st, n, d, headers, head).await,
        (Route::Blob(n, d), &Method::DELETE) => blobs::delete(st, n, d).await,
        (Route::UploadStart(n), &Method::POST) => uploads::start(st, &who, n, headers, &q, body).await,
        (Route::Upload(n, id), &Method::GET) => uploads::status(st, n, id).await,
        (Route::Upload(n, id), &Method::PATCH) => uploads::patch(st, n, id, headers, body).await,
        (Route::Upload(n, id), &Method::PUT) => uploads::put(st, n, id, headers, &q, body).await,
        (Route::Upload(n, id), &Method::DELETE) => uploads::cancel(st, n, id).await,
        _ => Err(method_not_allowed(&method)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_the_right() {
        assert_eq!(Route::parse("/v2/").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2/a/b/c/tags/list").unwrap(), Route::Tags("a/b/c".into()));
        assert_eq!(Route::parse("/v2/a/blobs/uploads/").unwrap(), Route::UploadStart("a".into()));
        assert_eq!(Route::parse("/v2/a/blobs/uploads/x").unwrap(), Route::Upload("a".into(), "x".into()));
        assert_eq!(Route::parse("/v2/a/manifests/blobs").unwrap(), Route::Manifest("a".into(), "blobs".into()));
        assert_eq!(Route::parse("/v2/tags/manifests/list").unwrap(), Route::Manifest("tags".into(), "list".into()));
        assert_eq!(
            Route::parse("/v2/x/referrers/sha256:ab").unwrap(),
            Route::Referrers("x".into(), "sha256:ab".into())
        );
        for bad in [
            "/v2/../manifests/x",
            "/v2/a/%2e%2e/manifests/x",
            "/v2/a%2Fb/manifests/x",
            "/v2/A/manifests/x",
            "/v2//a/tags/list",
        ] {
            let e = Route::parse(bad).unwrap_err();
            assert_eq!(e.code, Some(ErrorCode::NameInvalid), "{bad}");
        }
        assert_eq!(Route::parse("/v2/a/whatever").unwrap_err().status, StatusCode::NOT_FOUND);
    }
}
