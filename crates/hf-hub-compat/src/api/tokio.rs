//! The async API (hf-hub's `api::tokio`, feature `tokio`), over the async [`hubcache::Hub`].

use std::num::ParseIntError;
use std::path::PathBuf;

use hubcache::{FileRequest, HubBuilder};
use indicatif::ProgressBar;

use super::error::api_error_common;
use super::{Config, Event, InvalidSetting, Msg, RepoInfo, RequestError};
use crate::{Cache, Repo, RepoType};

use http::header::{HeaderName, InvalidHeaderValue, ToStrError};
use tokio::sync::{AcquireError, TryAcquireError};
use tokio::task::JoinError;

/// Progress of one download (the async API's trait).
pub trait Progress {
    /// The download of `filename` starts; `size` bytes are expected (0 if unknown).
    fn init(&mut self, size: usize, filename: &str) -> impl std::future::Future<Output = ()> + Send;
    /// `size` more bytes arrived.
    fn update(&mut self, size: usize) -> impl std::future::Future<Output = ()> + Send;
    /// The download is done.
    fn finish(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

impl Progress for ProgressBar {
    async fn init(&mut self, size: usize, filename: &str) {
        <ProgressBar as super::Progress>::init(self, size, filename);
    }
    async fn update(&mut self, size: usize) {
        <ProgressBar as super::Progress>::update(self, size);
    }
    async fn finish(&mut self) {
        <ProgressBar as super::Progress>::finish(self);
    }
}

impl Progress for () {
    async fn init(&mut self, _size: usize, _filename: &str) {}
    async fn update(&mut self, _size: usize) {}
    async fn finish(&mut self) {}
}

/// Every error of the async API. hf-hub's variant names are kept so `match`es compile.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A header the API needs is missing (kept for hf-hub's callers).
    #[error("Header {0} is missing")]
    MissingHeader(HeaderName),
    /// A header has an unexpected value (kept for hf-hub's callers).
    #[error("Header {0} is invalid")]
    InvalidHeader(HeaderName),
    /// A header value could not be built.
    #[error("Invalid header value {0}")]
    InvalidHeaderValue(#[from] InvalidHeaderValue),
    /// A header value is not a string.
    #[error("header value is not a string")]
    ToStr(#[from] ToStrError),
    /// The Hub answered with an error, or could not be reached; see [`RequestError::status`].
    #[error("request error: {0}")]
    RequestError(RequestError),
    /// A number could not be parsed.
    #[error("Cannot parse int")]
    ParseIntError(#[from] ParseIntError),
    /// A file of the cache could not be read or written.
    #[error("I/O error {0}")]
    IoError(#[from] std::io::Error),
    /// Retries ran out (kept for hf-hub's callers; hubcache retries inside each request).
    #[error("Too many retries: {0}")]
    TooManyRetries(Box<ApiError>),
    /// A semaphore could not be acquired.
    #[error("Try acquire: {0}")]
    TryAcquireError(#[from] TryAcquireError),
    /// A semaphore was closed.
    #[error("Acquire: {0}")]
    AcquireError(#[from] AcquireError),
    /// A download task failed.
    #[error("Join: {0}")]
    Join(#[from] JoinError),
    /// Another process held the file's lock past `HUBCACHE_LOCK_TIMEOUT`.
    #[error("Lock acquisition failed: {0}")]
    LockAcquisition(PathBuf),
    /// A hubcache failure hf-hub has no variant for: offline and not cached, a download that
    /// failed verification, a name refused, not enough disk space.
    #[error("{}", super::error::chain(.0.as_ref()))]
    Hubcache(Box<hubcache::Error>),
    /// An endpoint, token or cache folder hf-hub would take and hubcache refuses.
    #[error(transparent)]
    InvalidSetting(#[from] InvalidSetting),
}

impl ApiError {
    fn request(e: RequestError) -> Self {
        ApiError::RequestError(e)
    }
}

api_error_common!(ApiError);

/// Builds an [`Api`]. Every constructor reads the environment as Python does.
#[derive(Debug)]
pub struct ApiBuilder {
    config: Config,
    max_files: usize,
    chunk_size: Option<usize>,
}

impl Default for ApiBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiBuilder {
    /// The builder for the environment's cache, endpoint, token and offline mode.
    pub fn new() -> Self {
        Self::from_cache(Cache::from_env())
    }

    /// Same as [`ApiBuilder::new`]: `HF_ENDPOINT`, `HF_HUB_CACHE`/`HF_HOME`, `HF_TOKEN`,
    /// `HF_HUB_OFFLINE` and the rest, resolved as Python resolves them.
    pub fn from_env() -> Self {
        Self::new()
    }

    /// hf-hub's setting for fast links (one open file per core, 10 MB chunks). Accepted;
    /// hubcache decides how a file is transferred.
    pub fn high(self) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        self.with_max_files(cores).with_chunk_size(Some(10_000_000))
    }

    /// The builder for `cache` (its token, else `HF_TOKEN`); the rest from the environment.
    pub fn from_cache(cache: Cache) -> Self {
        ApiBuilder {
            config: Config::from_cache(cache),
            max_files: 1,
            chunk_size: Some(10_000_000),
        }
    }

    /// Whether to draw a progress bar for each download.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.config.progress = progress;
        self
    }

    /// The Hub (or mirror) to talk to.
    pub fn with_endpoint(mut self, endpoint: String) -> Self {
        self.config.endpoint = endpoint;
        self
    }

    /// The cache folder (the `hub/` folder, e.g. `~/.cache/huggingface/hub`).
    pub fn with_cache_dir(mut self, cache_dir: PathBuf) -> Self {
        self.config.cache = Cache::new(cache_dir);
        self
    }

    /// The token to send (`None`: no token).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.config.token = token;
        self
    }

    /// hf-hub's number of files open at once for one download. Accepted; hubcache decides.
    pub fn with_max_files(mut self, max_files: usize) -> Self {
        self.max_files = max_files;
        self
    }

    /// hf-hub's chunk size of one download. Accepted; hubcache decides.
    pub fn with_chunk_size(mut self, chunk_size: Option<usize>) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// How many times a failed request or transfer is retried (hubcache's default: 5).
    pub fn with_retries(mut self, max_retries: usize) -> Self {
        self.config.max_retries = Some(max_retries);
        self
    }

    /// Adds `key/value` to the user agent.
    pub fn with_user_agent(mut self, key: &str, value: &str) -> Self {
        self.config.user_agent.push((key.to_string(), value.to_string()));
        self
    }

    /// The [`Api`], or why a setting is refused.
    pub fn build(self) -> Result<Api, ApiError> {
        let builder = self.config.hub_builder()?;
        let hub = builder.clone().build()?;
        Ok(Api {
            config: self.config,
            builder,
            hub,
        })
    }
}

/// The client: hand it a repo with [`Api::repo`] (or [`Api::model`], …).
#[derive(Clone)]
pub struct Api {
    config: Config,
    builder: HubBuilder,
    hub: hubcache::Hub,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("config", &self.config).finish()
    }
}

impl Api {
    /// [`ApiBuilder::new`]`.build()`.
    pub fn new() -> Result<Self, ApiError> {
        ApiBuilder::new().build()
    }

    /// A repo at its revision.
    pub fn repo(&self, repo: Repo) -> ApiRepo {
        ApiRepo {
            api: self.clone(),
            repo,
        }
    }

    /// A model at `main`.
    pub fn model(&self, model_id: String) -> ApiRepo {
        self.repo(Repo::new(model_id, RepoType::Model))
    }

    /// A dataset at `main`.
    pub fn dataset(&self, model_id: String) -> ApiRepo {
        self.repo(Repo::new(model_id, RepoType::Dataset))
    }

    /// A space at `main`.
    pub fn space(&self, model_id: String) -> ApiRepo {
        self.repo(Repo::new(model_id, RepoType::Space))
    }
}

/// One repo at one revision: download its files or read its info.
#[derive(Debug)]
pub struct ApiRepo {
    api: Api,
    repo: Repo,
}

impl ApiRepo {
    /// The resolve URL of `filename`.
    pub fn url(&self, filename: &str) -> String {
        super::file_url(&self.api.config.endpoint, &self.repo, filename)
    }

    /// The cached file if there is one (no request), else [`ApiRepo::download`].
    pub async fn get(&self, filename: &str) -> Result<PathBuf, ApiError> {
        let (repo, revision, path) = self.repo.hubcache(filename)?;
        match self.api.hub.lookup(&repo, &revision, &path) {
            hubcache::CacheLookup::Hit(p) => Ok(p),
            _ => self.download(filename).await,
        }
    }

    /// Downloads `filename` into the cache, with a progress bar unless disabled.
    pub async fn download(&self, filename: &str) -> Result<PathBuf, ApiError> {
        if self.api.config.progress {
            self.download_with_progress(filename, ProgressBar::new(0)).await
        } else {
            self.download_with_progress(filename, ()).await
        }
    }

    /// Downloads `filename` into the cache (verified, resumable; a blob already cached is not
    /// fetched again), reporting to `progress`; returns its snapshot path.
    pub async fn download_with_progress<P: Progress + Clone + Send + Sync + 'static>(
        &self,
        filename: &str,
        mut progress: P,
    ) -> Result<PathBuf, ApiError> {
        let (repo, revision, path) = self.repo.hubcache(filename)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
        let done = tx.clone();
        let hub = super::reporting_hub(self.api.builder.clone(), move |e| {
            let _ = tx.send(Msg::Progress(e));
        })?;
        let req = FileRequest::new(repo, revision, path);
        let task = tokio::spawn(async move {
            let result = hub.download_file(&req).await;
            drop(hub);
            let _ = done.send(Msg::Done(result));
        });
        let mut result = None;
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Progress(Event::Init(size, name)) => progress.init(size, &name).await,
                Msg::Progress(Event::Update(n)) => progress.update(n).await,
                Msg::Progress(Event::Finish) => progress.finish().await,
                Msg::Done(r) => {
                    result = Some(r);
                    break;
                }
            }
        }
        task.await?;
        match result {
            Some(r) => r.map_err(ApiError::from),
            None => Err(ApiError::IoError(std::io::Error::other("the download task stopped"))),
        }
    }

    /// The revision's commit and files (`GET /api/models/{id}/revision/{rev}`).
    pub async fn info(&self) -> Result<RepoInfo, ApiError> {
        super::repo_info(&self.api.hub, &self.repo)
            .await
            .map_err(ApiError::from)
    }
}
