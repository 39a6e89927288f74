//! `HEAD`/`GET …/resolve/{revision}/{path}`: the Hub's file answer (commit, etag, LFS headers)
//! with one-range `Range` support, the bytes read through a [`BlobReader`].

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Response, StatusCode};
use hubcache::{Repo, RepoPath, Revision};

use crate::range::{self, RangeAnswer};
use crate::respond;
use crate::server::{Mirror, Served};
use crate::store::BlobStream;

/// What a request needs of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Headers only.
    Head,
    /// The whole body.
    Full,
    /// A byte range.
    Range,
}

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
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let want = match (method, range_header) {
        (&Method::HEAD, _) => Want::Head,
        (_, Some(_)) => Want::Range,
        _ => Want::Full,
    };
    let served = mirror.file_for(repo, &commit, path, want).await?;
    let (meta, blob, mut live): (_, _, Option<BlobStream>) = match served {
        Served::Stored(f) => (f.meta, Some(f.blob), None),
        Served::Meta(m) => (m, None, None),
        Served::Live(m, s) => (m, None, Some(s)),
    };
    let meta = &meta;
    let size = meta.content_size();
    let range = range::answer(range_header, size);
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
    let stream = match (live.take(), &blob) {
        // A live fill streams the whole file (asked for without a range).
        (Some(s), _) if start == 0 && len == size => s,
        (_, Some(b)) => mirror.read_range(b, start, len).await.map_err(|e| read_error(b, &e))?,
        _ => return Err(internal_msg()),
    };
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(stream))
        .map_err(internal)
}

fn internal(_: axum::http::Error) -> Response<Body> {
    respond::hub_error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error", None)
}

fn internal_msg() -> Response<Body> {
    respond::hub_error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error", None)
}

/// A blob that cannot be read: the store is failing (503 for an object store, as the Hub's
/// CDN answers when its backend is), or the cache file is damaged (500).
fn read_error(blob: &crate::store::BlobRef, e: &std::io::Error) -> Response<Body> {
    match blob {
        #[cfg(feature = "s3")]
        crate::store::BlobRef::Object { .. } => respond::hub_error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            &format!("the mirror's store failed: {e}"),
            None,
        ),
        crate::store::BlobRef::File(_) => io_error(e),
    }
}

fn io_error(e: &std::io::Error) -> Response<Body> {
    respond::hub_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        &format!("cannot read the cached file: {e}"),
        None,
    )
}
