//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (start, monolithic `?digest=`, mount),
//! `PATCH|PUT|GET|DELETE /v2/<name>/blobs/uploads/<id>`.

use super::blobs::parse_digest;
use super::{AppState, body_stream, empty, query_get};
use crate::auth::{Action, Identity, Need};
use crate::error::AppError;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use rbuild_image::distribution::{ErrorCode, HEADER_CHUNK_MIN_LENGTH, HEADER_CONTENT_DIGEST, HEADER_UPLOAD_UUID};
use rbuild_image::{Algorithm, Digest};

fn location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn accepted(name: &str, id: &str, size: u64) -> Response {
    empty(
        StatusCode::ACCEPTED,
        &[
            ("Location", location(name, id)),
            ("Range", range_header(size)),
            (HEADER_UPLOAD_UUID, id.to_string()),
            (HEADER_CHUNK_MIN_LENGTH, "1".to_string()),
        ],
    )
}

fn created(name: &str, d: &Digest) -> Response {
    empty(StatusCode::CREATED, &[("Location", format!("/v2/{name}/blobs/{d}")), (HEADER_CONTENT_DIGEST, d.to_string())])
}

fn check_id(id: &str) -> Result<(), AppError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| AppError::new(ErrorCode::BlobUploadUnknown, format!("upload {id:?} is not an upload id")))
}

/// `Content-Range` of a chunk: `a-b`, `bytes=a-b` or `bytes a-b/total`; the start and end.
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v.strip_prefix("bytes=").or_else(|| v.strip_prefix("bytes ")).unwrap_or(v);
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// The start a chunk's `Content-Range` claims, checked against its `Content-Length`.
fn chunk_start(headers: &HeaderMap, name: &str, id: &str, size_now: u64) -> Result<Option<u64>, AppError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let bad = |why: String| {
        AppError::new(ErrorCode::RangeInvalid, why)
            .with_header(header::LOCATION, &location(name, id))
            .with_header(header::RANGE, &range_header(size_now))
    };
    let text = v.to_str().map_err(|_| bad("Content-Range is not text".into()))?;
    let (a, b) = parse_content_range(text).ok_or_else(|| bad(format!("Content-Range {text:?} is not start-end")))?;
    if let Some(len) = content_length(headers) {
        if len != b - a + 1 {
            return Err(bad(format!("Content-Range {text:?} does not match Content-Length {len}")));
        }
    }
    if a != size_now {
        return Err(bad(format!("chunk starts at {a}, but upload {id} has {size_now} bytes")));
    }
    Ok(Some(a))
}

async fn size_or_unknown(st: &AppState, name: &str, id: &str) -> Result<u64, AppError> {
    check_id(id)?;
    st.registry
        .upload_size(name, id)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} not found in {name}")))
}

/// `POST /v2/<name>/blobs/uploads/`.
pub async fn start(
    st: &AppState,
    who: &Identity,
    name: &str,
    headers: &HeaderMap,
    q: &[(String, String)],
    body: Body,
) -> Result<Response, AppError> {
    if let Some(mount) = query_get(q, "mount") {
        let d = parse_digest(mount)?;
        // Mount only from where the client may read; otherwise this is an ordinary upload
        // start, so the answer tells nothing about where (or whether) the blob exists.
        let source: Option<Option<&str>> = match query_get(q, "from").filter(|f| !f.is_empty()) {
            Some(f) => (rbuild_image::reference::validate_repository(f).is_ok()
                && st.auth.authorize(headers, st.tls, &Need::Repo(f.to_string(), vec![Action::Pull])).is_ok())
            .then_some(Some(f)),
            // No source named: searching every repository is only for those who may read them all.
            None => st.auth.pulls_everywhere(who).then_some(None),
        };
        if let Some(from) = source {
            if st.registry.mount(name, from, &d).await? {
                return Ok(created(name, &d));
            }
        }
    }
    let id = st.registry.upload_start(name).await?;
    if let Some(digest) = query_get(q, "digest") {
        let d = match parse_digest(digest) {
            Ok(d) => d,
            Err(e) => {
                let _ = st.registry.upload_cancel(name, &id).await;
                return Err(e);
            }
        };
        let r = async {
            st.registry.upload_append(name, &id, None, body_stream(body), d.algorithm()).await?;
            st.registry.upload_finish(name, &id, &d).await
        }
        .await;
        if let Err(e) = r {
            let _ = st.registry.upload_cancel(name, &id).await;
            return Err(e);
        }
        return Ok(created(name, &d));
    }
    Ok(accepted(name, &id, 0))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: where the upload stands.
pub async fn status(st: &AppState, name: &str, id: &str) -> Result<Response, AppError> {
    let size = size_or_unknown(st, name, id).await?;
    Ok(empty(
        StatusCode::NO_CONTENT,
        &[("Location", location(name, id)), ("Range", range_header(size)), (HEADER_UPLOAD_UUID, id.to_string())],
    ))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: a chunk (with `Content-Range`) or a stream (without).
pub async fn patch(st: &AppState, name: &str, id: &str, headers: &HeaderMap, body: Body) -> Result<Response, AppError> {
    let size_now = size_or_unknown(st, name, id).await?;
    let start = chunk_start(headers, name, id, size_now)?;
    let size = st.registry.upload_append(name, id, start, body_stream(body), Algorithm::Sha256).await?;
    Ok(accepted(name, id, size))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: the last chunk (optional) and the digest.
pub async fn put(
    st: &AppState,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    q: &[(String, String)],
    body: Body,
) -> Result<Response, AppError> {
    let size_now = size_or_unknown(st, name, id).await?;
    let Some(digest) = query_get(q, "digest") else {
        return Err(AppError::new(ErrorCode::DigestInvalid, "the digest query parameter is missing"));
    };
    let d = parse_digest(digest)?;
    let start = chunk_start(headers, name, id, size_now)?;
    let has_body = content_length(headers) != Some(0)
        && (content_length(headers).is_some() || headers.contains_key(header::TRANSFER_ENCODING));
    if has_body {
        st.registry.upload_append(name, id, start, body_stream(body), d.algorithm()).await?;
    }
    st.registry.upload_finish(name, id, &d).await?;
    Ok(created(name, &d))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel.
pub async fn cancel(st: &AppState, name: &str, id: &str) -> Result<Response, AppError> {
    check_id(id)?;
    if !st.registry.upload_cancel(name, id).await? {
        return Err(AppError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} not found in {name}")));
    }
    Ok(empty(StatusCode::NO_CONTENT, &[]))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes=10-19"), Some((10, 19)));
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((10, 19)));
        assert_eq!(parse_content_range("9-3"), None);
        assert_eq!(parse_content_range("x"), None);
    }
}
