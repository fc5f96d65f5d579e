//! `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`.
//!
//! Content negotiation follows distribution: the stored bytes are served with the media
//! type they were pushed with, whatever the `Accept` header says (clients check it).

use super::{AppState, empty};
use crate::error::AppError;
use crate::registry::ManifestRef;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use rbuild_image::distribution::{ErrorCode, HEADER_CONTENT_DIGEST, HEADER_OCI_SUBJECT};
use rbuild_image::manifest::MAX_MANIFEST_SIZE;

/// `GET|HEAD`.
pub async fn get(st: &AppState, name: &str, reference: &str, head: bool) -> Result<Response, AppError> {
    let r = ManifestRef::parse(reference)?;
    let m =
        st.registry.manifest_get(name, &r).await?.ok_or_else(|| {
            AppError::new(ErrorCode::ManifestUnknown, format!("manifest {reference} is not in {name}"))
        })?;
    let len = m.bytes.len() as u64;
    let mut resp = Response::new(if head { Body::empty() } else { Body::from(m.bytes) });
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&m.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&m.digest.to_string()) {
        h.insert(HEADER_CONTENT_DIGEST, v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", m.digest)) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `PUT` (with `?tag=` for more tags).
pub async fn put(
    st: &AppState,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    q: &[(String, String)],
    body: Body,
) -> Result<Response, AppError> {
    let r = ManifestRef::parse(reference)?;
    let too_big = || {
        AppError::new(ErrorCode::ManifestInvalid, format!("manifest is over the {MAX_MANIFEST_SIZE}-byte limit"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared: Option<u64> =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_SIZE as u64) {
        return Err(too_big());
    }
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_SIZE).await.map_err(|_| too_big())?;
    let mut tags = Vec::new();
    for (k, v) in q {
        if k == "tag" {
            rbuild_image::reference::validate_tag(v).map_err(|e| AppError::new(ErrorCode::TagInvalid, e))?;
            tags.push(v.clone());
        }
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let put = st.registry.manifest_put(name, &r, bytes, ct, &tags).await?;
    let mut hs = vec![
        ("Location", format!("/v2/{name}/manifests/{}", put.digest)),
        (HEADER_CONTENT_DIGEST, put.digest.to_string()),
    ];
    if let Some(s) = put.subject {
        hs.push((HEADER_OCI_SUBJECT, s.to_string()));
    }
    for t in &tags {
        hs.push(("OCI-Tag", t.clone()));
    }
    Ok(empty(StatusCode::CREATED, &hs))
}

/// `DELETE`: by digest, the manifest and its tags; by tag, the tag.
pub async fn delete(st: &AppState, name: &str, reference: &str) -> Result<Response, AppError> {
    let r = ManifestRef::parse(reference)?;
    if !st.registry.manifest_delete(name, &r).await? {
        return Err(AppError::new(ErrorCode::ManifestUnknown, format!("manifest {reference} is not in {name}")));
    }
    Ok(empty(StatusCode::ACCEPTED, &[]))
}
