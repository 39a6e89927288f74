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
use crate::store::FsStore;
use crate::upstream::Upstream;
use crate::{api, conn, respond, serve_file};

/// Pause after a failed `accept` (out of file descriptors, …) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A running mirror's shared state.
pub struct Mirror {
    store: Arc<FsStore>,
    pub(crate) upstream: Option<Upstream>,
    auth: ClientAuth,
    log_requests: bool,
    drain: Duration,
    limits: ConnectionLimits,
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
            Some(b) => Some(Upstream::new(b.cache_dir(&root).build()?, config.ref_ttl)),
            None => None,
        };
        Ok(Arc::new(Mirror {
            store: Arc::new(FsStore::new(root)),
            upstream,
            auth: ClientAuth::new(config.client_tokens),
            log_requests: config.log_requests,
            drain: config.drain,
            limits: config.limits,
        }))
    }

    /// The cache folder served.
    pub fn cache_dir(&self) -> &Path {
        self.store.cache().root()
    }

    /// The connection bounds in force.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// The store, for reading blobs (async; metadata goes through [`Mirror::with_store`]).
    pub(crate) fn store(&self) -> &FsStore {
        &self.store
    }

    /// Runs a store call on the blocking pool: store calls stat, read and may hash whole
    /// files, which must not stall a tokio worker.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FsStore) -> T + Send + 'static,
    ) -> Result<T, Response<Body>> {
        let store = self.store.clone();
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
