//! `GET /v2/<name>/referrers/<digest>?artifactType=&n=&last=`: an OCI index of the manifests
//! whose subject is `<digest>` (empty for an unknown digest, never 404), sorted by digest and
//! paginated like tags: at most `n` descriptors a page (and never more than
//! [`MAX_REFERRERS_PAGE`] or about [`MAX_PAGE_BYTES`]), the next page after `last`, announced
//! with `Link: <…>; rel="next"` as the distribution spec asks of a list too long for one index.

use super::blobs::parse_digest;
use super::{AppState, query_get};
use crate::error::AppError;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rbuild_image::Descriptor;
use rbuild_image::distribution::{ErrorCode, HEADER_FILTERS_APPLIED};
use rbuild_image::media_type as mt;

/// The most descriptors one page holds, whatever `n` asks.
pub const MAX_REFERRERS_PAGE: usize = 1000;
/// A page ends before its descriptors pass this many bytes (clients cap an index at 4 MiB),
/// but always holds at least one.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// The page of `all` (sorted) after `last`, at most `limit` long; and whether more follow.
fn page(all: Vec<Descriptor>, last: Option<&str>, limit: usize) -> (Vec<Descriptor>, bool) {
    let rest: Vec<Descriptor> =
        all.into_iter().filter(|m| last.is_none_or(|l| m.digest.to_string().as_str() > l)).collect();
    let mut out = Vec::new();
    let mut bytes = 0;
    for m in &rest {
        if out.len() == limit {
            break;
        }
        let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(0);
        if !out.is_empty() && bytes + size > MAX_PAGE_BYTES {
            break;
        }
        bytes += size;
        out.push(m.clone());
    }
    let more = out.len() < rest.len() && !out.is_empty();
    (out, more)
}

/// The handler.
pub async fn list(st: &AppState, name: &str, digest: &str, q: &[(String, String)]) -> Result<Response, AppError> {
    let d = parse_digest(digest)?;
    let filter = query_get(q, "artifactType").filter(|t| !t.is_empty());
    let n = match query_get(q, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            AppError::new(ErrorCode::PaginationNumberInvalid, format!("n={v:?} is not a non-negative number"))
        })?),
        None => None,
    };
    let limit = n.unwrap_or(MAX_REFERRERS_PAGE).min(MAX_REFERRERS_PAGE);
    let mut all = st.registry.referrers(name, &d, filter).await?;
    all.sort_by_key(|m| m.digest.to_string());
    let (manifests, more) = page(all, query_get(q, "last").filter(|l| !l.is_empty()), limit);
    let link = match (more, manifests.last()) {
        (true, Some(last)) => {
            let mut url = format!(
                "</v2/{name}/referrers/{d}?n={limit}&last={}",
                utf8_percent_encode(&last.digest.to_string(), NON_ALPHANUMERIC)
            );
            if let Some(t) = filter {
                url.push_str(&format!("&artifactType={}", utf8_percent_encode(t, NON_ALPHANUMERIC)));
            }
            url.push_str(">; rel=\"next\"");
            HeaderValue::from_str(&url).ok()
        }
        _ => None,
    };
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
    if let Some(l) = link {
        resp.headers_mut().insert(header::LINK, l);
    }
    Ok(resp)
}
