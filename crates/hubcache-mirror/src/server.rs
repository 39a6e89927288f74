//! The server: shared state, the accept loop (connection cap), routing and graceful shutdown.
//!
//! Accept loop: a connection slot (one of `max_connections`) is taken *before* `accept`, so
//! at the cap new clients wait in the listen backlog rather than being accepted and reset.
//! Each connection runs in its own task ([`crate::conn`]) with the idle and header bounds.
//! On shutdown the listener closes, idle connections close, and requests under way finish for
//! up to the drain bound; whatever is left is then cut.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::auth::ClientAuth;
use crate::config::{ConnectionLimits, MirrorConfig, MirrorError};
use crate::route::{self, Route, RouteError};
use crate::store::{BlobReader, BlobRef, BlobStream, CachedFile, FsStore};
use crate::upstream::Upstream;
use crate::{api, conn, respond, serve_file};

/// Pause after a failed `accept` (out of file descriptors, …) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Where a mirror's answers come from.
pub(crate) enum Store {
    /// A cache folder.
    Fs(Arc<FsStore>),
    /// An S3 prefix.
    #[cfg(feature = "s3")]
    S3(Arc<crate::store::s3::S3Store>),
}

/// A file to answer with.
pub(crate) enum Served {
    /// In the store.
    Stored(CachedFile),
    /// Known (listing entry) but not stored: enough for a HEAD.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    Meta(hubcache::cache::tree::TreeFile),
    /// Being filled from the upstream, streamed as it arrives (the whole file).
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    Live(hubcache::cache::tree::TreeFile, BlobStream),
}

/// A running mirror's shared state.
pub struct Mirror {
    store: Store,
    /// Where the upstream client keeps its own files when the store is not a cache folder.
    scratch: Option<std::path::PathBuf>,
    #[cfg(feature = "s3")]
    pub(crate) s3_pulls: Option<crate::pull_s3::S3Pulls>,
    pub(crate) upstream: Option<Upstream>,
    auth: ClientAuth,
    log_requests: bool,
    drain: Duration,
    limits: ConnectionLimits,
}

impl Mirror {
    /// Checks the cache folder and builds the upstream client.
    pub fn new(config: MirrorConfig) -> Result<Arc<Mirror>, MirrorError> {
        #[cfg(feature = "s3")]
        if let Some(s3) = &config.s3 {
            return Err(MirrorError::Store(crate::store::s3::StoreError::Config {
                url: s3.url(),
                detail: "an S3 store is opened with `Mirror::open` (it is probed first)".into(),
            }));
        }
        let cache_err = |source| MirrorError::Cache {
            path: config.cache_dir.clone(),
            source,
        };
        if config.upstream.is_some() {
            std::fs::create_dir_all(&config.cache_dir).map_err(cache_err)?;
        }
        let root = config.cache_dir.canonicalize().map_err(cache_err)?;
        let upstream = match config.upstream {
            Some(b) => Some(Upstream::new(b.cache_dir(&root).build()?, config.ref_ttl)),
            None => None,
        };
        Ok(Arc::new(Mirror {
            store: Store::Fs(Arc::new(FsStore::new(root))),
            scratch: None,
            #[cfg(feature = "s3")]
            s3_pulls: None,
            upstream,
            auth: ClientAuth::new(config.client_tokens),
            log_requests: config.log_requests,
            drain: config.drain,
            limits: config.limits,
        }))
    }

    /// Opens the store named by the configuration (a cache folder, or with `s3` set an S3
    /// prefix, whose layout is checked first) and builds the upstream client.
    pub async fn open(config: MirrorConfig) -> Result<Arc<Mirror>, MirrorError> {
        #[cfg(feature = "s3")]
        if let Some(s3) = &config.s3 {
            let store = crate::store::s3::S3Store::open(s3).await?;
            let scratch = std::env::temp_dir().join(format!(
                "hubcache-serve-{}-{}",
                std::process::id(),
                hubcache::fs::random_suffix()
            ));
            let upstream = match config.upstream {
                Some(b) => Some(Upstream::new(b.cache_dir(&scratch).build()?, config.ref_ttl)),
                None => None,
            };
            return Ok(Arc::new(Mirror {
                store: Store::S3(Arc::new(store)),
                scratch: Some(scratch),
                s3_pulls: upstream.as_ref().map(|_| crate::pull_s3::S3Pulls::new(s3.lease_ttl)),
                upstream,
                auth: ClientAuth::new(config.client_tokens),
                log_requests: config.log_requests,
                drain: config.drain,
                limits: config.limits,
            }));
        }
        Mirror::new(config)
    }

    /// What is served: the cache folder, or the store URL.
    pub fn describe_store(&self) -> String {
        match &self.store {
            Store::Fs(fs) => fs.cache().root().display().to_string(),
            #[cfg(feature = "s3")]
            Store::S3(s3) => s3.url().to_string(),
        }
    }

    /// The cache folder served (`None` over an object store).
    pub fn cache_dir(&self) -> Option<&Path> {
        match &self.store {
            Store::Fs(fs) => Some(fs.cache().root()),
            #[cfg(feature = "s3")]
            Store::S3(_) => None,
        }
    }

    /// The store.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    pub(crate) fn store_kind(&self) -> &Store {
        &self.store
    }

    /// Streams `len` bytes of a blob from `start`, from whichever store holds it.
    pub(crate) async fn read_range(&self, blob: &BlobRef, start: u64, len: u64) -> std::io::Result<BlobStream> {
        match (&self.store, blob) {
            #[cfg(feature = "s3")]
            (Store::S3(s3), BlobRef::Object { key, .. }) => s3.read_range(key, start, len).await,
            (Store::Fs(fs), _) => fs.read_range(blob, start, len).await,
            #[cfg(feature = "s3")]
            (Store::S3(_), BlobRef::File(_)) => Err(std::io::Error::other("a cache file named by the S3 store")),
        }
    }

    /// The connection bounds in force.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Runs a store call on the blocking pool: store calls stat, read and may hash whole
    /// files, which must not stall a tokio worker.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FsStore) -> T + Send + 'static,
    ) -> Result<T, Response<Body>> {
        let store = match &self.store {
            Store::Fs(store) => store.clone(),
            #[cfg(feature = "s3")]
            Store::S3(_) => {
                return Err(respond::hub_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "internal error",
                    None,
                ))
            }
        };
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| respond::hub_error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error", None))
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish for
    /// up to the drain bound.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), MirrorError> {
        let slots = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut accept_failed = false;
        loop {
            while conns.try_join_next().is_some() {}
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(s) => s,
                    Err(_) => break, // Never closed.
                },
            };
            let tcp = tokio::select! {
                () = &mut shutdown => break,
                r = listener.accept() => match r {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        if !accept_failed {
                            eprintln!("accept failed: {e} (retrying)");
                            accept_failed = true;
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            accept_failed = false;
            // Without TCP_NODELAY, small answers (headers, then a short body) wait on delayed
            // ACKs: ~40 ms per request, which dominates snapshots of many small files.
            let _ = tcp.set_nodelay(true);
            conns.spawn(conn::serve(self.clone(), tcp, stop_rx.clone(), slot));
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drained = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(self.drain, drained).await.is_err() {
            eprintln!(
                "drain bound of {}s reached; closing remaining connections",
                self.drain.as_secs()
            );
            conns.shutdown().await;
        }
        if let Some(dir) = &self.scratch {
            let dir = dir.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
        Ok(())
    }
}

/// Answers one request (logging it when asked).
pub(crate) async fn handle(mirror: &Mirror, req: Request) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = dispatch(mirror, req).await;
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
    if let Err(resp) = mirror.auth.check(req.headers()) {
        return resp;
    }
    let result = match route {
        Route::Resolve { repo, revision, path } => {
            serve_file::resolve_file(mirror, &method, req.headers(), &repo, &revision, &path).await
        }
        Route::RepoInfo { repo, revision } => api::repo_info(mirror, &repo, &revision, req.uri().query()).await,
        Route::Tree { repo, revision, path } => {
            api::tree(mirror, &repo, &revision, path.as_ref(), req.uri(), req.headers()).await
        }
        Route::PathsInfo { repo, revision } => api::paths_info(mirror, &repo, &revision, req).await,
    };
    result.unwrap_or_else(|resp| resp)
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
