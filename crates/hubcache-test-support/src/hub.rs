//! The [`FakeHub`] handle: server lifecycle and the repo/fault/log API.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use axum::Router;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::faults::FaultRule;
use crate::log::{LoggedRequest, Origin, RequestLog};
use crate::model::{prepare_files, HubState, RepoKind};
use crate::server::{router, Ctx, Shared};

/// Stops the servers when the last [`FakeHub`] clone is dropped.
struct ServerGuard {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A running fake Hub (plus its CDN origin); cheap to clone, stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeHub {
    shared: Arc<Shared>,
    _guard: Arc<ServerGuard>,
}

impl std::fmt::Debug for FakeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHub")
            .field("url", &self.shared.hub_url)
            .field("cdn_url", &self.shared.cdn_url)
            .finish_non_exhaustive()
    }
}

fn origin_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl FakeHub {
    /// Starts the hub and the CDN origin on ephemeral ports of 127.0.0.1; panics if that fails.
    pub fn start() -> FakeHub {
        FakeHub::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).expect("failed to start the fake hub")
    }

    /// Starts the hub on `addr` (port 0 = ephemeral) and the CDN origin on an ephemeral port of the same IP.
    pub fn start_on(addr: SocketAddr) -> io::Result<FakeHub> {
        let hub_listener = TcpListener::bind(addr)?;
        let cdn_listener = TcpListener::bind(SocketAddr::new(addr.ip(), 0))?;
        hub_listener.set_nonblocking(true)?;
        cdn_listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(HubState::new()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(RequestLog::default()),
            hub_url: origin_url(hub_listener.local_addr()?),
            cdn_url: origin_url(cdn_listener.local_addr()?),
            wan: Mutex::new(crate::wan::Wan::default()),
            cdn_connections: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicU64::new(0),
            peak_in_flight: std::sync::atomic::AtomicU64::new(0),
            link_free: Mutex::new(tokio::time::Instant::now()),
            link_streams: std::sync::atomic::AtomicU64::new(0),
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-hub".to_owned())
            .spawn(move || run_servers(thread_shared, hub_listener, cdn_listener, shutdown_rx, ready_tx))?;
        let guard = ServerGuard {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(FakeHub {
                shared,
                _guard: Arc::new(guard),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("fake hub server thread exited early")),
        }
    }

    /// Base URL of the hub origin, e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.hub_url.clone()
    }

    /// Base URL of the CDN origin that serves LFS objects (no trailing slash).
    pub fn cdn_url(&self) -> String {
        self.shared.cdn_url.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.shared.state.lock().expect("state mutex poisoned")
    }

    /// Commits exactly `files` (full replacement) to `branch` of the repo, creating both if needed; returns the commit id.
    pub fn commit(&self, kind: RepoKind, repo_id: &str, branch: &str, files: Vec<(String, Bytes)>) -> String {
        let rule = self.state().lfs_rule;
        let files = prepare_files(files, rule);
        self.state().commit(kind, repo_id, branch, files)
    }

    /// Commits every file below `dir` (recursively, `/`-separated relative paths, `.git` skipped) to `branch`.
    pub fn commit_folder(&self, kind: RepoKind, repo_id: &str, branch: &str, dir: &Path) -> io::Result<String> {
        let mut files = Vec::new();
        collect_files(dir, "", &mut files)?;
        Ok(self.commit(kind, repo_id, branch, files))
    }

    /// Points tag (or any other ref name, e.g. `refs/pr/1`) `name` at `commit` (a commit id, branch or tag).
    pub fn tag(&self, kind: RepoKind, repo_id: &str, name: &str, commit: &str) {
        let mut state = self.state();
        let repo = state
            .repos
            .get_mut(&(kind, repo_id.to_owned()))
            .unwrap_or_else(|| panic!("tag: unknown repo {repo_id}"));
        let target = repo
            .resolve(commit)
            .unwrap_or_else(|| panic!("tag: unknown revision {commit} in {repo_id}"));
        repo.tags.insert(name.to_owned(), target.id.clone());
    }

    /// Sets the rule deciding which files of later commits are stored in LFS (see [`crate::default_lfs_rule`]).
    pub fn set_lfs_rule(&self, f: fn(path: &str, size: u64) -> bool) {
        self.state().lfs_rule = f;
    }

    /// Makes the repo private: requests need `Authorization: Bearer <token>`, else 401 RepoNotFound.
    pub fn set_private(&self, kind: RepoKind, repo_id: &str, token: &str) {
        self.state().repo_mut(kind, repo_id).private_token = Some(token.to_owned());
    }

    /// Makes the repo gated: resolve and API requests answer 403 GatedRepo.
    pub fn set_gated(&self, kind: RepoKind, repo_id: &str) {
        self.state().repo_mut(kind, repo_id).gated = true;
    }

    /// Moves the repo to `new`; requests to `old` answer 307 with a relative Location using the new id.
    pub fn rename_repo(&self, kind: RepoKind, old: &str, new: &str) {
        let mut state = self.state();
        if let Some(mut repo) = state.repos.remove(&(kind, old.to_owned())) {
            repo.id = new.to_owned();
            state.repos.insert((kind, new.to_owned()), repo);
        }
        state.renames.remove(&(kind, new.to_owned()));
        state.renames.insert((kind, old.to_owned()), new.to_owned());
    }

    /// Sets the number of entries per tree listing page (default 1000; 0 is treated as 1).
    pub fn set_tree_page_size(&self, n: usize) {
        self.state().tree_page_size = n;
    }

    /// Answers resolves of LFS files with Xet headers (`X-Xet-Hash`, `X-Xet-Refresh-Route`).
    pub fn set_xet_headers(&self, on: bool) {
        self.state().xet_headers = on;
    }

    /// Adds a fault rule after the existing ones.
    pub fn inject(&self, rule: FaultRule) {
        self.shared.faults.lock().expect("faults mutex poisoned").push(rule);
    }

    /// Shapes the network from now on: CDN connections accepted later get its rate cap, every
    /// request its latency.
    pub fn set_wan(&self, wan: crate::wan::Wan) {
        *self.shared.wan.lock().expect("wan mutex poisoned") = wan;
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults mutex poisoned").clear();
    }

    /// All logged requests of both origins, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.lock().expect("log mutex poisoned").snapshot()
    }

    /// Empties the request log (and resets [`FakeHub::peak_in_flight`]).
    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("log mutex poisoned").clear();
        self.shared.peak_in_flight.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Most requests answered at once since the log was cleared: from arrival (the latency
    /// included) until the response head is ready, not while a body streams.
    pub fn peak_in_flight(&self) -> u64 {
        self.shared.peak_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn collect_files(dir: &Path, rel: &str, out: &mut Vec<(String, Bytes)>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("non UTF-8 file name in {}", dir.display()),
            )
        })?;
        let path = entry.path();
        let child = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            if name != ".git" {
                collect_files(&path, &child, out)?;
            }
        } else {
            out.push((child, Bytes::from(std::fs::read(&path)?)));
        }
    }
    Ok(())
}

fn run_servers(
    shared: Arc<Shared>,
    hub_listener: TcpListener,
    cdn_listener: TcpListener,
    shutdown: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
) {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("fake-hub-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let listeners = tokio::net::TcpListener::from_std(hub_listener)
            .and_then(|hub| Ok((hub, tokio::net::TcpListener::from_std(cdn_listener)?)));
        let (hub, cdn) = match listeners {
            Ok(pair) => pair,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let hub_router = router(Ctx {
            shared: Arc::clone(&shared),
            origin: Origin::Hub,
        });
        let cdn_shared = Arc::clone(&shared);
        let cdn_router = router(Ctx {
            shared,
            origin: Origin::Cdn,
        });
        tokio::spawn(serve(hub, hub_router, None));
        tokio::spawn(serve(cdn, cdn_router, Some(cdn_shared)));
        let _ = ready.send(Ok(()));
        let _ = shutdown.await;
    });
    // Dropping the runtime cancels every connection task, including stalled bodies.
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Serves one origin; on the CDN (`cdn` set) each accepted connection gets its rate cap.
async fn serve(listener: tokio::net::TcpListener, router: Router, cdn: Option<Arc<Shared>>) {
    let listener = listener.tap_io(move |tcp| {
        let _ = tcp.set_nodelay(true);
        if let Some(shared) = &cdn {
            let n = shared
                .cdn_connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let wan = *shared.wan.lock().expect("wan mutex poisoned");
            if let Some(rate) = wan.rate_of_connection(n) {
                if let Err(e) = crate::wan::set_pacing_rate(tcp, rate) {
                    eprintln!("fake hub: cannot cap a CDN connection at {rate} B/s: {e}");
                }
            }
        }
    });
    let _ = axum::serve(listener, router).await;
}
