//! `POST /api/{type}s/{repo}/paths-info/{revision}`: the entries for the paths asked for
//! (form `paths=…` or JSON `{"paths": […]}`); unknown paths are left out, as the Hub does.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Response, StatusCode};
use hubcache::{Repo, Revision};

use super::{entries, entry_json};
use crate::respond;
use crate::server::Mirror;

/// Answers a paths-info request.
pub(crate) async fn paths_info(
    mirror: &Mirror,
    repo: &Repo,
    revision: &Revision,
    req: Request,
) -> Result<Response<Body>, Response<Body>> {
    let commit = mirror.resolve(repo, revision).await?;
    let listing = mirror.listing(repo, &commit).await?;
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // The body is bounded like the head: a client dripping it must not hold the connection.
    let body = tokio::time::timeout(
        mirror.limits().header_timeout,
        axum::body::to_bytes(req.into_body(), 1 << 20),
    )
    .await
    .map_err(|_| respond::hub_error(StatusCode::REQUEST_TIMEOUT, None, "request body too slow", None))?
    .map_err(|_| respond::bad_request("request body too large or unreadable"))?;
    let wanted: Vec<String> = if is_json {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("paths").and_then(|p| p.as_array()).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    } else {
        form_urlencoded::parse(&body)
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v.into_owned())
            .collect()
    };
    let all = entries(&listing);
    let found: Vec<serde_json::Value> = wanted
        .iter()
        .filter_map(|w| {
            let w = w.trim_matches('/');
            all.iter().find(|(p, _)| p == w).map(|(p, f)| entry_json(p, *f))
        })
        .collect();
    Ok(respond::json(&serde_json::Value::Array(found)))
}
