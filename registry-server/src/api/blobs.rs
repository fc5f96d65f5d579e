//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`, with `Range`; with `[storage.s3] redirect`,
//! a GET is a 307 to a presigned URL of the object (HEAD is still answered here).

use super::{AppState, empty};
use crate::error::AppError;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use rbuild_image::Digest;
use rbuild_image::distribution::{ErrorCode, HEADER_CONTENT_DIGEST};

/// Parse a blob digest from the URL.
pub fn parse_digest(s: &str) -> Result<Digest, AppError> {
    Digest::parse(s).map_err(|e| AppError::new(ErrorCode::DigestInvalid, e.to_string()))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`: the inclusive range, or `Err` when
/// it cannot be satisfied; `Ok(None)` for a header we ignore (several ranges).
fn parse_range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let spec = v.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (a, "") => (a.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (a, b) => (a.parse().map_err(|_| ())?, b.parse::<u64>().map_err(|_| ())?.min(size.saturating_sub(1))),
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// `GET|HEAD /v2/<name>/blobs/<digest>`.
pub async fn get(
    st: &AppState,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, AppError> {
    let d = parse_digest(digest)?;
    let size = st
        .registry
        .blob_size(name, &d)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::BlobUnknown, format!("{d} is not in {name}")))?;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => match parse_range(v, size) {
            Ok(r) => r,
            Err(()) => {
                return Err(AppError::new(ErrorCode::RangeInvalid, format!("range {v:?} of a {size}-byte blob"))
                    .with_header(header::CONTENT_RANGE, &format!("bytes */{size}")));
            }
        },
        None => None,
    };
    if let (Some(s3), false) = (&st.redirect, head) {
        // The bytes come from the store itself; a Range header follows the redirect to it.
        let url = s3.presigned_get(&crate::paths::blob_data(&d)).await?;
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        let h = resp.headers_mut();
        h.insert(header::LOCATION, HeaderValue::from_str(&url).map_err(AppError::internal)?);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&d.to_string()) {
            h.insert(HEADER_CONTENT_DIGEST, v);
        }
        return Ok(resp);
    }
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        let stream = st.registry.blob_read(&d, start).await?;
        let limited = stream.scan(len, |rem, item| {
            let out = match item {
                Ok(mut b) if *rem > 0 => {
                    if b.len() as u64 > *rem {
                        b.truncate(*rem as usize);
                    }
                    *rem -= b.len() as u64;
                    Some(Ok(b))
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        });
        Body::from_stream(limited)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=31536000"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{d}\"")) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&d.to_string()) {
        h.insert(HEADER_CONTENT_DIGEST, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", start, start + len - 1)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlink it from the repository (GC frees the bytes).
pub async fn delete(st: &AppState, name: &str, digest: &str) -> Result<Response, AppError> {
    let d = parse_digest(digest)?;
    if !st.registry.blob_delete(name, &d).await? {
        return Err(AppError::new(ErrorCode::BlobUnknown, format!("{d} is not in {name}")));
    }
    Ok(empty(StatusCode::ACCEPTED, &[(HEADER_CONTENT_DIGEST, d.to_string())]))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=9-3", 100).is_err());
        assert!(parse_range("items=0-1", 100).is_err());
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
    }
}
