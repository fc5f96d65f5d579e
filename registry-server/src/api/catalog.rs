//! `GET /v2/_catalog?n=&last=`.

use super::AppState;
use super::tags::{next_link, paginate};
use crate::auth::Identity;
use crate::error::AppError;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rbuild_image::distribution::Catalog;

/// The handler: the repositories `who` may pull, paginated after filtering (so `n` and the
/// `Link` header count only what the client sees).
pub async fn list(st: &AppState, who: &Identity, q: &[(String, String)]) -> Result<Response, AppError> {
    let all: Vec<String> = st.registry.catalog().await?.into_iter().filter(|r| st.auth.may_pull(who, r)).collect();
    let (page, n, more) = paginate(all, q)?;
    let link = if more { next_link("/v2/_catalog", n, &page) } else { None };
    let mut resp = axum::Json(Catalog { repositories: page }).into_response();
    if let Some(l) = link {
        resp.headers_mut().insert(header::LINK, l);
    }
    Ok(resp)
}
