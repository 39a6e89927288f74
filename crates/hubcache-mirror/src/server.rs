//! The server: state, request handling, pull-through, graceful shutdown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::{Future, IntoFuture};
use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use axum::Router;
use hubcache::cache::commit;
use hubcache::cache::tree::TreeFile;
use hubcache::hub::HubError;
use hubcache::repo::lfs::lfs_pointer_size;
use hubcache::{CommitHash, FileRequest, Hub, HubBuilder, Repo, RepoPath, Revision};
use tokio::net::TcpListener;

use crate::range::{self, RangeAnswer};
use crate::respond;
use crate::route::{self, Route, RouteError};
use crate::store::{CachedFile, FileState, Store};

/// How long a branch → commit answer from the upstream is reused.
const REF_TTL: Duration = Duration::from_secs(30);
/// Tree listing page size.
const PAGE_SIZE: usize = 1000;
/// Read buffer when streaming a file.
const STREAM_CHUNK: usize = 1024 * 1024;

/// How the mirror runs.
pub struct MirrorConfig {
    /// The cache folder served (and filled, with an upstream).
    pub cache_dir: PathBuf,
    /// The upstream, as a configured hubcache client builder (endpoint, token, timeouts).
    pub upstream: Option<HubBuilder>,
    /// Client tokens; when set, requests need `Authorization: Bearer <one of them>`.
    pub client_tokens: Option<Vec<String>>,
    /// How long in-flight transfers may go on after a shutdown signal.
    pub drain: Duration,
    /// Print one line per request on stderr.
    pub log_requests: bool,
}

/// Why the mirror could not start.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The cache folder is missing or unreadable.
    #[error("cannot serve {path}: {source}")]
    Cache {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The upstream client could not be built.
    #[error("invalid upstream: {0}")]
    Upstream(#[from] hubcache::Error),
}

impl MirrorError {
    /// What the operator can do about it.
    pub fn hints(&self) -> Vec<String> {
        match self {
            MirrorError::Cache { .. } => vec![
                "fill it first (`hubcache download …` or `hubcache cache add-folder …`), or pass --cache-dir".into(),
            ],
            MirrorError::Listen { .. } => vec!["choose another --addr (port 0 picks a free one)".into()],
            MirrorError::Upstream(e) => e.hints(),
        }
    }
}

/// A running mirror's shared state.
pub struct Mirror {
    store: Store,
    upstream: Option<Hub>,
    tokens: Option<Vec<String>>,
    refs: Mutex<HashMap<(Repo, String), (CommitHash, Instant)>>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    log_requests: bool,
    drain: Duration,
}

impl Mirror {
    /// Checks the cache folder and builds the upstream client.
    pub fn new(config: MirrorConfig) -> Result<Arc<Mirror>, MirrorError> {
        let cache_err = |source| MirrorError::Cache {
            path: config.cache_dir.clone(),
            source,
        };
        if config.upstream.is_some() {
            std::fs::create_dir_all(&config.cache_dir).map_err(cache_err)?;
        }
        let root = config.cache_dir.canonicalize().map_err(cache_err)?;
        let upstream = match config.upstream {
            Some(b) => Some(b.cache_dir(&root).build()?),
            None => None,
        };
        Ok(Arc::new(Mirror {
            store: Store::new(root),
            upstream,
            tokens: config.client_tokens,
            refs: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            log_requests: config.log_requests,
            drain: config.drain,
        }))
    }

    /// The cache folder served.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.store.cache().root()
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish for
    /// up to the drain bound.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), MirrorError> {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let drain = self.drain;
        let app = Router::new().fallback(handle).with_state(self);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // Without TCP_NODELAY, small answers (headers, then a short body) wait on delayed ACKs:
        // ~40 ms per request, which dominates snapshots of many small files.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(());
        });
        let deadline = async move {
            if stop_rx.await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = server.into_future() => r.map_err(|source| MirrorError::Listen { addr, source }),
            () = deadline => {
                eprintln!("drain bound of {}s reached; closing remaining connections", drain.as_secs());
                Ok(())
            }
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let Some(tokens) = &self.tokens else { return Ok(()) };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(t) if tokens.iter().any(|k| constant_time_eq(k.as_bytes(), t.as_bytes())) => Ok(()),
            Some(_) => Err(respond::hub_error(
                StatusCode::UNAUTHORIZED,
                None,
                "Invalid credentials in Authorization header",
                None,
            )),
            None => Err(respond::hub_error(
                StatusCode::UNAUTHORIZED,
                Some("RepoNotFound"),
                "Repository not found: this mirror requires a token (set HF_TOKEN)",
                None,
            )),
        }
    }

    /// Revision → commit: a commit as is; a ref from the upstream (cached briefly), else `refs/`.
    async fn resolve(&self, repo: &Repo, revision: &Revision) -> Result<CommitHash, Response<Body>> {
        if let Revision::Commit(c) = revision {
            if self.store.has_repo(repo) || self.upstream.is_some() {
                return Ok(c.clone());
            }
            return Err(respond::repo_not_found());
        }
        let key = (repo.clone(), revision.as_str().to_string());
        if let Some(up) = &self.upstream {
            if let Some((c, at)) = self.refs.lock().ok().and_then(|m| m.get(&key).cloned()) {
                if at.elapsed() < REF_TTL {
                    return Ok(c);
                }
            }
            match up.client().revision_commit(repo, revision.as_str()).await {
                Ok(sha) => {
                    let commit = CommitHash::new(&sha).map_err(|_| {
                        respond::hub_error(StatusCode::BAD_GATEWAY, None, "upstream sent an invalid commit", None)
                    })?;
                    let _ = commit::write_ref(&self.store.cache().repo(repo), revision.as_str(), &commit);
                    if let Ok(mut m) = self.refs.lock() {
                        m.insert(key, (commit.clone(), Instant::now()));
                    }
                    return Ok(commit);
                }
                Err(e) if !e.is_transient() => return Err(upstream_error(&e)),
                Err(_) => {} // Upstream unreachable: serve what the cache has.
            }
        }
        match self.store.resolve(repo, revision) {
            Some(c) => Ok(c),
            None if self.store.has_repo(repo) => Err(respond::revision_not_found(revision.as_str())),
            None => Err(respond::repo_not_found()),
        }
    }

    /// The file, fetched from upstream on a miss (one transfer per file however many ask).
    async fn file(&self, repo: &Repo, commit: &CommitHash, path: &RepoPath) -> Result<CachedFile, Response<Body>> {
        match self.store.file(repo, commit, path) {
            FileState::Cached(f) => return Ok(f),
            FileState::Missing => return Err(respond::entry_not_found(commit.as_str())),
            FileState::Unknown => {}
        }
        let Some(up) = &self.upstream else {
            return Err(respond::entry_not_found(commit.as_str()));
        };
        let key = format!("{}/{}/{}/{}", repo.repo_type, repo.id, commit, path);
        let flight = self
            .flights
            .lock()
            .map(|mut m| m.entry(key.clone()).or_default().clone())
            .map_err(|_| respond::hub_error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error", None))?;
        let _turn = flight.lock().await;
        if let FileState::Cached(f) = self.store.file(repo, commit, path) {
            return Ok(f);
        }
        let req = FileRequest::new(repo.clone(), Revision::Commit(commit.clone()), path.clone());
        let result = up.download_file(&req).await;
        if let Ok(mut m) = self.flights.lock() {
            m.remove(&key);
        }
        match result {
            Ok(_) => match self.store.file(repo, commit, path) {
                FileState::Cached(f) => Ok(f),
                _ => Err(respond::hub_error(
                    StatusCode::BAD_GATEWAY,
                    None,
                    "upstream file vanished",
                    None,
                )),
            },
            Err(e) => Err(match e.hub_error() {
                Some(h) => upstream_error(h),
                None => respond::hub_error(
                    StatusCode::BAD_GATEWAY,
                    None,
                    &format!("upstream download failed: {e}"),
                    None,
                ),
            }),
        }
    }

    /// Every file of a commit: the cached ones, plus (with an upstream) the full listing.
    async fn listing(&self, repo: &Repo, commit: &CommitHash) -> Result<BTreeMap<RepoPath, TreeFile>, Response<Body>> {
        if let Some(up) = &self.upstream {
            match up.commit_listing(repo, commit).await {
                Ok(l) => return Ok(l),
                Err(e) => {
                    if let Some(h) = e.hub_error().filter(|h| !h.is_transient()) {
                        return Err(upstream_error(h));
                    }
                }
            }
        }
        let cached = self.store.cached_files(repo, commit);
        if cached.is_empty() && !self.store.cache().repo(repo).snapshot_dir(commit).is_dir() {
            return Err(respond::revision_not_found(commit.as_str()));
        }
        Ok(cached.into_iter().map(|(p, f)| (p, f.meta)).collect())
    }
}

fn upstream_error(e: &HubError) -> Response<Body> {
    match e {
        HubError::RepoNotFound { .. } => respond::repo_not_found(),
        HubError::RevisionNotFound { .. } => respond::revision_not_found("(upstream)"),
        HubError::EntryNotFound { commit, .. } => respond::entry_not_found(commit.as_deref().unwrap_or("")),
        HubError::Gated { message, .. } => respond::hub_error(
            StatusCode::FORBIDDEN,
            Some("GatedRepo"),
            message
                .as_deref()
                .unwrap_or("Access to this repository is restricted upstream"),
            None,
        ),
        other => respond::hub_error(StatusCode::BAD_GATEWAY, None, &format!("upstream: {other}"), None),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(State(mirror): State<Arc<Mirror>>, req: Request) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = dispatch(&mirror, req).await;
    if mirror.log_requests {
        eprintln!(
            "{method} {path} {} {}ms",
            resp.status().as_u16(),
            started.elapsed().as_millis()
        );
    }
    resp
}

async fn dispatch(mirror: &Mirror, req: Request) -> Response<Body> {
    let method = req.method().clone();
    let route = match route::parse(method.as_str(), req.uri().path()) {
        Ok(r) => r,
        Err(RouteError::Invalid(detail)) => return respond::bad_request(&detail),
        Err(RouteError::NotFound) => {
            return respond::hub_error(StatusCode::NOT_FOUND, None, "Not found", None);
        }
    };
    if let Err(resp) = mirror.authorized(req.headers()) {
        return resp;
    }
    let result = match route {
        Route::Resolve { repo, revision, path } => {
            resolve_file(mirror, &method, req.headers(), &repo, &revision, &path).await
        }
        Route::RepoInfo { repo, revision } => repo_info(mirror, &repo, &revision, req.uri().query()).await,
        Route::Tree { repo, revision, path } => {
            tree(mirror, &repo, &revision, path.as_ref(), req.uri(), req.headers()).await
        }
        Route::PathsInfo { repo, revision } => paths_info(mirror, &repo, &revision, req).await,
    };
    result.unwrap_or_else(|resp| resp)
}

async fn resolve_file(
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
    let (status, start, len) = if *method == Method::HEAD {
        (StatusCode::OK, 0, size)
    } else {
        (status, start, len)
    };
    let builder = builder.status(status).header(header::CONTENT_LENGTH, len);
    if *method == Method::HEAD {
        return builder.body(Body::empty()).map_err(internal);
    }
    let f = std::fs::File::open(&file.disk).map_err(|e| io_error(&e))?;
    builder
        .body(Body::from_stream(file_stream(f, start, len)))
        .map_err(internal)
}

/// Streams `len` bytes from `start`, read on a blocking thread in large chunks (no zeroing,
/// no per-chunk task hop), with a small bounded queue so memory stays flat.
fn file_stream(
    mut file: std::fs::File,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    use std::io::{Read, Seek};
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(STREAM_CHUNK as u64);
            let mut buf = Vec::with_capacity(want as usize);
            match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "cached file shrank while being served",
                    )));
                    return;
                }
                Ok(n) => {
                    remaining -= n as u64;
                    if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                        return; // The client went away.
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
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

fn lfs_json(f: &TreeFile) -> Option<serde_json::Value> {
    f.lfs_sha256.as_ref().map(|sha| {
        serde_json::json!({
            "oid": sha,
            "size": f.content_size(),
            "pointerSize": lfs_pointer_size(sha, f.content_size()),
        })
    })
}

async fn repo_info(
    mirror: &Mirror,
    repo: &Repo,
    revision: &Revision,
    query: Option<&str>,
) -> Result<Response<Body>, Response<Body>> {
    let commit = mirror.resolve(repo, revision).await?;
    let listing = mirror.listing(repo, &commit).await?;
    let blobs = query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "blobs" && v == "true"));
    let siblings: Vec<serde_json::Value> = listing
        .iter()
        .map(|(p, f)| {
            let mut s = serde_json::json!({ "rfilename": p.as_str() });
            if blobs {
                s["size"] = f.content_size().into();
                s["blobId"] = f.blob_id.clone().into();
                if let Some(l) = lfs_json(f) {
                    s["lfs"] =
                        serde_json::json!({ "size": l["size"], "sha256": l["oid"], "pointerSize": l["pointerSize"] });
                }
            }
            s
        })
        .collect();
    let mut info = serde_json::json!({
        "_id": commit.as_str(),
        "id": repo.id.as_str(),
        "author": repo.id.as_str().split_once('/').map(|(a, _)| a),
        "sha": commit.as_str(),
        "private": false,
        "gated": false,
        "disabled": false,
        "tags": [],
        "siblings": siblings,
    });
    if repo.repo_type == hubcache::RepoType::Model {
        info["modelId"] = repo.id.as_str().into();
    }
    Ok(respond::json(&info))
}

/// Files and the folders that contain them, sorted by path.
fn entries(listing: &BTreeMap<RepoPath, TreeFile>) -> Vec<(String, Option<&TreeFile>)> {
    let mut dirs = BTreeSet::new();
    for p in listing.keys() {
        let s = p.as_str();
        for (i, _) in s.match_indices('/') {
            dirs.insert(s[..i].to_string());
        }
    }
    let mut out: Vec<(String, Option<&TreeFile>)> = dirs.into_iter().map(|d| (d, None)).collect();
    out.extend(listing.iter().map(|(p, f)| (p.as_str().to_string(), Some(f))));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn entry_json(path: &str, file: Option<&TreeFile>) -> serde_json::Value {
    match file {
        Some(f) => {
            let mut e = serde_json::json!({ "type": "file", "oid": f.blob_id, "size": f.content_size(), "path": path });
            if let Some(l) = lfs_json(f) {
                e["lfs"] = l;
            }
            e
        }
        None => {
            let oid = hubcache::digest::git_blob_sha1(format!("tree {path}").as_bytes());
            serde_json::json!({ "type": "directory", "oid": oid, "size": 0, "path": path })
        }
    }
}

async fn tree(
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

async fn paths_info(
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
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
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

/// Binds `addr`; returns the listener and the address actually bound (port 0 picks one).
pub async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), MirrorError> {
    let listen_err = |source| MirrorError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(listen_err)?;
    let local = listener.local_addr().map_err(listen_err)?;
    Ok((listener, local))
}
