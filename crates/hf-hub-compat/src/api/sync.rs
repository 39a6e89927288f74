//! The blocking API (hf-hub's `api::sync`, feature `ureq`), over [`hubcache::blocking::Hub`].

use std::num::ParseIntError;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use hubcache::{FileRequest, HubBuilder};
use indicatif::ProgressBar;

use super::error::api_error_common;
use super::{Config, Event, InvalidSetting, Msg, Progress, RepoInfo, RequestError};
use crate::{Cache, Repo, RepoType};

/// A header name (hf-hub's sync API names headers by string).
type HeaderName = &'static str;

/// Every error of the sync API. hf-hub's variant names are kept so `match`es compile; hubcache
/// reports header and resume problems inside [`ApiError::RequestError`] or [`ApiError::Hubcache`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A header the API needs is missing (kept for hf-hub's callers; hubcache reports it as a request error).
    #[error("Header {0} is missing")]
    MissingHeader(HeaderName),
    /// A header has an unexpected value (kept for hf-hub's callers).
    #[error("Header {0} is invalid")]
    InvalidHeader(HeaderName),
    /// The Hub answered with an error, or could not be reached; see [`RequestError::status`].
    #[error("request error: {0}")]
    RequestError(Box<RequestError>),
    /// A number could not be parsed.
    #[error("Cannot parse int")]
    ParseIntError(#[from] ParseIntError),
    /// A file of the cache could not be read or written.
    #[error("I/O error {0}")]
    IoError(#[from] std::io::Error),
    /// Retries ran out (kept for hf-hub's callers; hubcache retries inside each request).
    #[error("Too many retries: {0}")]
    TooManyRetries(Box<ApiError>),
    /// A partial file could not be resumed (kept for hf-hub's callers).
    #[error("Invalid part file - corrupted file")]
    InvalidResume,
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
        ApiError::RequestError(Box::new(e))
    }
}

api_error_common!(ApiError);

/// Builds an [`Api`]. Every constructor reads the environment as Python does.
#[derive(Debug)]
pub struct ApiBuilder {
    config: Config,
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

    /// The builder for `cache` (its token, else `HF_TOKEN`); the rest from the environment.
    pub fn from_cache(cache: Cache) -> Self {
        ApiBuilder {
            config: Config::from_cache(cache),
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
        let hub = hubcache::blocking::Hub::new(builder.clone())?;
        Ok(Api {
            inner: Arc::new(Inner {
                config: self.config,
                builder,
                hub: Some(hub),
            }),
        })
    }
}

struct Inner {
    config: Config,
    builder: HubBuilder,
    /// Always `Some` until dropped.
    hub: Option<hubcache::blocking::Hub>,
}

impl Inner {
    fn hub(&self) -> &hubcache::blocking::Hub {
        match &self.hub {
            Some(hub) => hub,
            None => unreachable!("the hub is only taken on drop"),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A tokio runtime cannot be dropped inside another one's async context: drop it aside.
        if let Some(hub) = self.hub.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(hub));
            }
        }
    }
}

/// The client: hand it a repo with [`Api::repo`] (or [`Api::model`], …).
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("config", &self.inner.config).finish()
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

    /// Runs hubcache work off the calling thread, so a caller inside a tokio runtime works too;
    /// progress events come back to the calling thread, where `progress` lives.
    fn run<P: Progress>(
        &self,
        progress: &mut P,
        work: impl FnOnce(&hubcache::blocking::Hub, mpsc::Sender<Msg>) -> Result<PathBuf, hubcache::Error> + Send,
    ) -> Result<PathBuf, ApiError> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let hub = self.inner.hub();
        std::thread::scope(|s| {
            let worker = s.spawn(move || {
                let result = work(hub, tx.clone());
                // The receiver only goes away once `Done` arrived.
                let _ = tx.send(Msg::Done(result));
            });
            let mut result = None;
            for msg in rx {
                match msg {
                    Msg::Progress(Event::Init(size, name)) => progress.init(size, &name),
                    Msg::Progress(Event::Update(n)) => progress.update(n),
                    Msg::Progress(Event::Finish) => progress.finish(),
                    Msg::Done(r) => {
                        result = Some(r);
                        break;
                    }
                }
            }
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
            match result {
                Some(r) => r.map_err(ApiError::from),
                // Unreachable in practice: the worker always sends `Done` unless it panicked.
                None => Err(ApiError::IoError(std::io::Error::other("the download worker stopped"))),
            }
        })
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
        super::file_url(&self.api.inner.config.endpoint, &self.repo, filename)
    }

    /// The cached file if there is one (no request), else [`ApiRepo::download`].
    pub fn get(&self, filename: &str) -> Result<PathBuf, ApiError> {
        let (repo, revision, path) = self.repo.hubcache(filename)?;
        match self.api.inner.hub().lookup(&repo, &revision, &path) {
            hubcache::CacheLookup::Hit(p) => Ok(p),
            _ => self.download(filename),
        }
    }

    /// Downloads `filename` into the cache (verified, resumable; a blob already cached is not
    /// fetched again), reporting to `progress`; returns its snapshot path.
    pub fn download_with_progress<P: Progress>(&self, filename: &str, mut progress: P) -> Result<PathBuf, ApiError> {
        let (repo, revision, path) = self.repo.hubcache(filename)?;
        let builder = self.api.inner.builder.clone();
        self.api.run(&mut progress, move |blocking, tx| {
            let hub = super::reporting_hub(builder, move |e| {
                let _ = tx.send(Msg::Progress(e));
            })?;
            let req = FileRequest::new(repo, revision, path);
            blocking.block_on(hub.download_file(&req))
        })
    }

    /// Downloads `filename` into the cache, with a progress bar unless disabled.
    pub fn download(&self, filename: &str) -> Result<PathBuf, ApiError> {
        if self.api.inner.config.progress {
            self.download_with_progress(filename, ProgressBar::new(0))
        } else {
            self.download_with_progress(filename, ())
        }
    }

    /// The revision's commit and files (`GET /api/models/{id}/revision/{rev}`).
    pub fn info(&self) -> Result<RepoInfo, ApiError> {
        let hub = self.api.inner.hub();
        let repo = &self.repo;
        std::thread::scope(|s| {
            let worker = s.spawn(|| hub.block_on(super::repo_info(hub.inner(), repo)));
            match worker.join() {
                Ok(r) => r.map_err(ApiError::from),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}
