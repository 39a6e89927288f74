//! `HEAD`/`GET …/resolve/{revision}/{path}`: the Hub's file answer (commit, etag, LFS headers)
//! with one-range `Range` support, the bytes read through a [`BlobReader`].

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Response, StatusCode};
use hubcache::{Repo, RepoPath, Revision};

use crate::range::{self, RangeAnswer};
use crate::respond;
use crate::server::Mirror;
use crate::store::BlobReader;

/// Answers a resolve request.
pub(crate) async fn resolve_file(
    mirror: &Mirror,
    method: &Method,
    headers: &HeaderMap,
    repo: &Repo,
    revision: &Revision,
    path: &RepoPath,
) -> Result<Response<Body>, Response<Body>> {
    let commit = mirror.resolve(repo, revision).await?;
    let file = mirror.file(repo, &commit, path).await?;
    let meta = &file.meta;
    let size = meta.content_size();
    let range = range::answer(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    let mut builder = Response::builder()
        .header("x-repo-commit", commit.as_str())
        .header(header::ETAG, format!("\"{}\"", meta.etag()))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if let Some(sha) = &meta.lfs_sha256 {
        builder = builder
            .header("x-linked-etag", format!("\"{sha}\""))
            .header("x-linked-size", size);
    }
    let (status, start, len) = match range {
        RangeAnswer::Full => (StatusCode::OK, 0, size),
        RangeAnswer::Partial { start, end } => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable if *method == Method::GET => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .map_err(internal);
        }
        RangeAnswer::Unsatisfiable => (StatusCode::OK, 0, size),
    };
    if *method == Method::HEAD {
        return builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size)
            .body(Body::empty())
            .map_err(internal);
    }
    let stream = mirror
        .store()
        .read_range(&file.blob, start, len)
        .await
        .map_err(|e| io_error(&e))?;
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(stream))
        .map_err(internal)
}

fn internal(_: axum::http::Error) -> Response<Body> {
    respond::hub_error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error", None)
}

fn io_error(e: &std::io::Error) -> Response<Body> {
    respond::hub_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        &format!("cannot read the cached file: {e}"),
        None,
    )
}
