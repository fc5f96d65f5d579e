//! `GET /v2/<name>/referrers/<digest>?artifactType=`: an OCI index of the manifests whose
//! subject is `<digest>` (empty for an unknown digest, never 404).

use super::blobs::parse_digest;
use super::{AppState, query_get};
use crate::error::AppError;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rbuild_image::distribution::HEADER_FILTERS_APPLIED;
use rbuild_image::media_type as mt;

/// The handler.
pub async fn list(st: &AppState, name: &str, digest: &str, q: &[(String, String)]) -> Result<Response, AppError> {
    let d = parse_digest(digest)?;
    let filter = query_get(q, "artifactType").filter(|t| !t.is_empty());
    let manifests = st.registry.referrers(name, &d, filter).await?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": manifests,
    });
    let mut resp = ([(header::CONTENT_TYPE, mt::OCI_INDEX)], serde_json::to_vec(&body).map_err(AppError::internal)?)
        .into_response();
    if filter.is_some() {
        resp.headers_mut().insert(HEADER_FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
    }
    Ok(resp)
}
