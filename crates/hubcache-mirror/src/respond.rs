//! Building responses the way the Hub answers: error headers, file headers, JSON.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};

/// A Hub-style error: status, `X-Error-Code`, `X-Error-Message`, optional `X-Repo-Commit`,
/// and a JSON body `{"error": message}`.
pub fn hub_error(status: StatusCode, code: Option<&str>, message: &str, commit: Option<&str>) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(code) = code.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert("x-error-code", code);
    }
    // Header values must be visible ASCII; names in messages are validated, but be safe.
    let ascii: String = message
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&ascii) {
        h.insert("x-error-message", v);
    }
    if let Some(c) = commit.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert("x-repo-commit", c);
    }
    resp
}

/// 401 + `RepoNotFound`, as the Hub hides missing and private repos alike.
pub fn repo_not_found() -> Response<Body> {
    hub_error(
        StatusCode::UNAUTHORIZED,
        Some("RepoNotFound"),
        "Repository not found",
        None,
    )
}

/// 404 + `RevisionNotFound`.
pub fn revision_not_found(revision: &str) -> Response<Body> {
    hub_error(
        StatusCode::NOT_FOUND,
        Some("RevisionNotFound"),
        &format!("Invalid rev id: {revision}"),
        None,
    )
}

/// 404 + `EntryNotFound` with the commit.
pub fn entry_not_found(commit: &str) -> Response<Body> {
    hub_error(
        StatusCode::NOT_FOUND,
        Some("EntryNotFound"),
        "Entry not found",
        Some(commit),
    )
}

/// 400 for names that cannot be valid (traversal, NUL, …).
pub fn bad_request(detail: &str) -> Response<Body> {
    hub_error(StatusCode::BAD_REQUEST, None, detail, None)
}

/// A JSON answer.
pub fn json(value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(value.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}
