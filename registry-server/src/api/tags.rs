//! `GET /v2/<name>/tags/list?n=&last=`.

use super::{AppState, query_get};
use crate::error::AppError;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rbuild_image::distribution::{ErrorCode, TagList};

/// The most entries one page holds, whatever `n` asks.
pub const MAX_PAGE: usize = 10_000;

/// Apply `n` and `last` to a sorted list; the page, and whether more follow.
pub fn paginate(all: Vec<String>, q: &[(String, String)]) -> Result<(Vec<String>, Option<usize>, bool), AppError> {
    let n = match query_get(q, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            AppError::new(ErrorCode::PaginationNumberInvalid, format!("n={v:?} is not a non-negative number"))
        })?),
        None => None,
    };
    let last = query_get(q, "last").filter(|l| !l.is_empty());
    let rest: Vec<String> = match last {
        Some(l) => all.into_iter().filter(|t| t.as_str() > l).collect(),
        None => all,
    };
    let limit = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let more = rest.len() > limit;
    Ok((rest.into_iter().take(limit).collect(), n, more))
}

/// The `Link` header of the next page.
pub fn next_link(path: &str, n: Option<usize>, page: &[String]) -> Option<HeaderValue> {
    let last = page.last()?;
    let last = percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC);
    let n = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")).ok()
}

/// The handler.
pub async fn list(st: &AppState, name: &str, q: &[(String, String)]) -> Result<Response, AppError> {
    let all = st
        .registry
        .tags(name)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::NameUnknown, format!("repository {name} is not known")))?;
    let (page, n, more) = paginate(all, q)?;
    let link = if more { next_link(&format!("/v2/{name}/tags/list"), n, &page) } else { None };
    let mut resp = axum::Json(TagList { name: name.to_string(), tags: page }).into_response();
    if let Some(l) = link {
        resp.headers_mut().insert(header::LINK, l);
    }
    Ok(resp)
}
