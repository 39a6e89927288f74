//! Download pipelines: one file (`hf_hub_download`) and a whole snapshot (`snapshot_download`).

pub(crate) mod fanout;
pub(crate) mod file;
mod local_dir;
pub mod patterns;
mod reuse;
mod snapshot;
pub mod trees;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::commit::LinkMode;
use crate::cache::lookup::{self, CacheLookup};
use crate::cache::CacheLayout;
use crate::error::{Error, OfflineReason, Result};
use crate::hub::transfer::RangedConfig;
use crate::hub::{ClientConfig, HubClient, RetryPolicy};
use crate::progress::{NoProgress, Reporter};
use crate::repo::{Repo, RepoPath, Revision};
use crate::settings::{Settings, Token};

/// Runs blocking file work (hashing or copying a whole file) on tokio's blocking pool, so the
/// async workers keep serving other transfers.
pub(crate) async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

pub use crate::lock::DEFAULT_LOCK_TIMEOUT;
/// Default number of files in flight at once in a snapshot or `sync` (small files are
/// latency-bound; larger ones are also held to a memory budget, and every connection to the
/// client's connection budget).
pub const DEFAULT_MAX_WORKERS: usize = 64;

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct FileRequest {
    /// Repo and type.
    pub repo: Repo,
    /// Revision (default `main`).
    pub revision: Revision,
    /// Path in the repo (subfolder already joined).
    pub path: RepoPath,
    /// Download again even if cached.
    pub force: bool,
    /// Never touch the network for this call.
    pub local_only: bool,
    /// Place the file in this folder instead of the cache layout.
    pub local_dir: Option<PathBuf>,
}

impl FileRequest {
    /// A request for `path` at `revision` with default options.
    pub fn new(repo: Repo, revision: Revision, path: RepoPath) -> Self {
        FileRequest {
            repo,
            revision,
            path,
            force: false,
            local_only: false,
            local_dir: None,
        }
    }
}

/// A whole repo (or a filtered part) to fetch.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    /// Repo and type.
    pub repo: Repo,
    /// Revision (default `main`).
    pub revision: Revision,
    /// Allow patterns (fnmatch); empty = everything.
    pub include: Vec<String>,
    /// Ignore patterns (fnmatch).
    pub exclude: Vec<String>,
    /// Files in flight at once.
    pub max_workers: usize,
    /// Download again even if cached.
    pub force: bool,
    /// Never touch the network for this call.
    pub local_only: bool,
    /// Place the files in this folder instead of the cache layout.
    pub local_dir: Option<PathBuf>,
}

impl SnapshotRequest {
    /// A request for the whole repo at `revision` with default options.
    pub fn new(repo: Repo, revision: Revision) -> Self {
        SnapshotRequest {
            repo,
            revision,
            include: Vec::new(),
            exclude: Vec::new(),
            max_workers: DEFAULT_MAX_WORKERS,
            force: false,
            local_only: false,
            local_dir: None,
        }
    }
}

/// The async entry point: a Hub client plus a cache.
#[derive(Clone)]
pub struct Hub {
    client: HubClient,
    cache: CacheLayout,
    offline: bool,
    disable_symlinks: bool,
    disable_shared_blobs: bool,
    lock_timeout: Duration,
    reporter: Arc<dyn Reporter>,
}

/// Builds a [`Hub`] from explicit values.
#[derive(Clone)]
pub struct HubBuilder {
    config: ClientConfig,
    cache_dir: PathBuf,
    offline: bool,
    disable_symlinks: bool,
    disable_shared_blobs: bool,
    lock_timeout: Duration,
    disable_flock: bool,
    reporter: Arc<dyn Reporter>,
}

impl HubBuilder {
    /// Defaults for an endpoint and a cache folder.
    pub fn new(endpoint: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        HubBuilder {
            config: ClientConfig::new(endpoint),
            cache_dir: cache_dir.into(),
            offline: false,
            disable_symlinks: false,
            disable_shared_blobs: false,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            disable_flock: false,
            reporter: Arc::new(NoProgress),
        }
    }

    /// Everything from resolved settings (cache, endpoint, token, offline, timeouts, proxies).
    pub fn from_settings(settings: &Settings) -> Self {
        let mut b = HubBuilder::new(settings.endpoint.clone(), settings.cache_dir.clone());
        b.config.token = settings.token.clone();
        b.config.etag_timeout = settings.etag_timeout;
        b.config.read_timeout = settings.download_timeout;
        b.config.proxies = settings.proxies.clone();
        b.offline = settings.offline;
        b.disable_symlinks = settings.disable_symlinks;
        b.disable_shared_blobs = settings.disable_shared_blobs;
        b.lock_timeout = settings.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT);
        b.disable_flock = settings.disable_flock;
        if let Some(n) = settings.max_connections {
            b.config.ranged.max_connections = n;
        }
        if let Some(n) = settings.connection_budget {
            b.config.connection_budget = n;
        }
        b
    }

    /// Most content connections open at once, all transfers of this [`Hub`] together (the
    /// parts of large files and the files of snapshots share them).
    pub fn connection_budget(mut self, n: usize) -> Self {
        self.config.connection_budget = n.max(1);
        self
    }

    /// Most connections per large file (1: every file is one stream).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.ranged.max_connections = n.max(1);
        self
    }

    /// The shape of ranged transfers (connections, the least size fetched in parts, part size).
    pub fn ranged(mut self, ranged: RangedConfig) -> Self {
        self.config.ranged = ranged;
        self
    }

    /// Overrides the endpoint (trailing `/` stripped).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// Overrides the cache folder.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    /// Sets (or clears) the token.
    pub fn token(mut self, token: Option<Token>) -> Self {
        self.config.token = token;
        self
    }

    /// Offline mode: every call is served from the cache only.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Never link blobs from huggingface_hub's shared blob store (`HF_HUB_DISABLE_SHARED_BLOBS`,
    /// `HF_HUB_DISABLE_XET`).
    pub fn disable_shared_blobs(mut self, disable: bool) -> Self {
        self.disable_shared_blobs = disable;
        self
    }

    /// Never create symlinks (copy/move into snapshots instead).
    pub fn disable_symlinks(mut self, disable: bool) -> Self {
        self.disable_symlinks = disable;
        self
    }

    /// Metadata (HEAD) timeout.
    pub fn etag_timeout(mut self, t: Duration) -> Self {
        self.config.etag_timeout = t;
        self
    }

    /// Per-read transfer timeout.
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.config.read_timeout = t;
        self
    }

    /// Retry policy for transient failures.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Pause between resume attempts of a broken transfer.
    pub fn resume_delay(mut self, d: Duration) -> Self {
        self.config.resume_delay = d;
        self
    }

    /// How long to wait for another process's download lock.
    pub fn lock_timeout(mut self, t: Duration) -> Self {
        self.lock_timeout = t;
        self
    }

    /// Grant locks without flock (process-wide; for file systems where flock hangs or lies).
    pub fn disable_flock(mut self, disable: bool) -> Self {
        self.disable_flock = disable;
        self
    }

    /// Where progress and notices go.
    pub fn reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = reporter;
        self
    }

    /// Extra user-agent part, e.g. `myapp/1.0`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.config.user_agent = Some(ua.into());
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Hub> {
        if self.disable_flock {
            crate::lock::disable_flock(true);
        }
        let client = HubClient::new(self.config).map_err(|source| Error::Unreachable {
            repo: String::new(),
            revision: String::new(),
            what: "client setup".into(),
            source,
        })?;
        Ok(Hub {
            client,
            cache: CacheLayout::new(absolute(&self.cache_dir)),
            offline: self.offline,
            disable_symlinks: self.disable_symlinks,
            disable_shared_blobs: self.disable_shared_blobs,
            lock_timeout: self.lock_timeout,
            reporter: self.reporter,
        })
    }
}

/// Makes a path absolute without requiring it to exist (symlinks in existing parts resolved).
fn absolute(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Hub {
    /// The cache this hub reads and fills.
    pub fn cache(&self) -> &CacheLayout {
        &self.cache
    }

    /// The HTTP client.
    pub fn client(&self) -> &HubClient {
        &self.client
    }

    /// Whether offline mode is set for this hub (every call is served from the cache only).
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// `try_to_load_from_cache`: no network.
    pub fn lookup(&self, repo: &Repo, revision: &Revision, path: &RepoPath) -> CacheLookup {
        lookup::try_to_load_from_cache(&self.cache, repo, revision, path)
    }

    /// Like [`Hub::lookup`], but when the commit's full listing is cached (`trees/<commit>.json`)
    /// a file it does not list is known to be absent: no request is needed to learn that.
    pub fn lookup_with_listing(&self, repo: &Repo, revision: &Revision, path: &RepoPath) -> CacheLookup {
        match self.lookup(repo, revision, path) {
            CacheLookup::Miss => {
                let layout = self.cache.repo(repo);
                let listed = lookup::resolve_commit(&layout, revision)
                    .and_then(|c| crate::cache::tree::read(&layout.tree_file(&c)))
                    .map(|listing| listing.contains_key(path));
                if listed == Some(false) {
                    CacheLookup::KnownMissing
                } else {
                    CacheLookup::Miss
                }
            }
            other => other,
        }
    }

    fn offline_reason(&self, local_only: bool) -> Option<OfflineReason> {
        if self.offline {
            Some(OfflineReason::Env)
        } else if local_only {
            Some(OfflineReason::LocalOnly)
        } else {
            None
        }
    }

    fn link_mode(&self) -> LinkMode {
        LinkMode::detect(self.cache.root(), self.disable_symlinks)
    }
}
