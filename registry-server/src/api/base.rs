//! `GET /v2/`: the API version check, and the operational endpoints.

use super::AppState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `GET /v2/`: 200 `{}` for a client allowed in.
pub async fn version() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: storage answers too.
pub async fn readyz(state: &AppState) -> Response {
    match state.registry.driver().list(crate::paths::REPOSITORIES).await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("storage not ready: {e}\n")).into_response(),
    }
}

/// `GET /metrics`.
pub async fn metrics(state: &AppState) -> Response {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, "text/plain; version=0.0.4".parse().expect("static header"));
    (h, state.metrics.render(state.registry.bytes_in())).into_response()
}
