//! `GET /api/{type}s/{repo}/tree/{revision}[/{path}]`: one folder or (`recursive=true`) all
//! of it, in pages of [`PAGE_SIZE`] with a `Link: <…cursor=N>; rel="next"` header.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response};
use hubcache::cache::tree::TreeFile;
use hubcache::{Repo, RepoPath, Revision};

use super::{entries, entry_json};
use crate::respond;
use crate::server::Mirror;

/// Tree listing page size.
pub const PAGE_SIZE: usize = 1000;

/// Answers a tree request.
pub(crate) async fn tree(
    mirror: &Mirror,
    repo: &Repo,
    revision: &Revision,
    sub: Option<&RepoPath>,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Response<Body>, Response<Body>> {
    let commit = mirror.resolve(repo, revision).await?;
    let listing = mirror.listing(repo, &commit).await?;
    let params: HashMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let recursive = params
        .get("recursive")
        .is_some_and(|v| v == "true" || v == "True" || v == "1");
    let cursor: usize = params.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let all = entries(&listing);
    let prefix = sub.map(|p| format!("{}/", p.as_str()));
    if let Some(prefix) = &prefix {
        if !all.iter().any(|(p, _)| p.starts_with(prefix.as_str())) {
            return Err(respond::entry_not_found(commit.as_str()));
        }
    }
    let selected: Vec<&(String, Option<&TreeFile>)> = all
        .iter()
        .filter(|(p, _)| {
            let rest = match &prefix {
                Some(pre) => match p.strip_prefix(pre.as_str()) {
                    Some(r) => r,
                    None => return false,
                },
                None => p.as_str(),
            };
            recursive || !rest.contains('/')
        })
        .collect();
    let page: Vec<serde_json::Value> = selected
        .iter()
        .skip(cursor)
        .take(PAGE_SIZE)
        .map(|(p, f)| entry_json(p, *f))
        .collect();
    let mut resp = respond::json(&serde_json::Value::Array(page));
    if cursor + PAGE_SIZE < selected.len() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let mut query: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k != "cursor").collect();
        query.sort();
        query.push(("cursor".into(), (cursor + PAGE_SIZE).to_string()));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let link = format!("<http://{host}{}?{qs}>; rel=\"next\"", uri.path());
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}
