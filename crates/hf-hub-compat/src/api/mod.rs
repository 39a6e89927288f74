//! The Hub API: [`sync`] (feature `ureq`) and [`tokio`] (feature `tokio`), as in hf-hub 0.4.

use std::path::PathBuf;
use std::sync::Arc;

use hubcache::hub::RetryPolicy;
use hubcache::progress::{FileProgress, Reporter};
use hubcache::{HubBuilder, Settings};
use indicatif::{ProgressBar, ProgressStyle};

use crate::Cache;

mod error;
#[cfg(feature = "tokio")]
pub mod tokio;

#[cfg(feature = "ureq")]
pub mod sync;

pub use error::{InvalidSetting, RequestError};

/// Progress of one download (the sync API's trait).
pub trait Progress {
    /// The download of `filename` starts; `size` bytes are expected (0 if unknown).
    fn init(&mut self, size: usize, filename: &str);
    /// `size` more bytes arrived.
    fn update(&mut self, size: usize);
    /// The download is done.
    fn finish(&mut self);
}

impl Progress for () {
    fn init(&mut self, _size: usize, _filename: &str) {}
    fn update(&mut self, _size: usize) {}
    fn finish(&mut self) {}
}

impl Progress for ProgressBar {
    fn init(&mut self, size: usize, filename: &str) {
        self.set_length(size as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
        ) {
            self.set_style(style);
        }
        // The last 30 characters of the name (on a character boundary).
        let skip = filename.chars().count().saturating_sub(30);
        let message = if skip > 0 {
            format!("..{}", filename.chars().skip(skip).collect::<String>())
        } else {
            filename.to_string()
        };
        self.set_message(message);
    }

    fn update(&mut self, size: usize) {
        self.inc(size as u64);
    }

    fn finish(&mut self) {
        ProgressBar::finish(self);
    }
}

/// One file of a repo, as listed by [`RepoInfo`].
#[derive(Debug, Clone, PartialEq)]
pub struct Siblings {
    /// The file's path in the repo.
    pub rfilename: String,
}

/// What the Hub says about a repo at a revision.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoInfo {
    /// Every file of the revision.
    pub siblings: Vec<Siblings>,
    /// The commit the revision points at.
    pub sha: String,
}

impl From<hubcache::hub::RepoInfo> for RepoInfo {
    fn from(info: hubcache::hub::RepoInfo) -> Self {
        RepoInfo {
            siblings: info.files.into_iter().map(|rfilename| Siblings { rfilename }).collect(),
            sha: info.sha,
        }
    }
}

/// Everything both builders hold; the environment is read once, at construction.
#[derive(Clone)]
struct Config {
    settings: Settings,
    endpoint: String,
    cache: Cache,
    token: Option<String>,
    max_retries: Option<usize>,
    progress: bool,
    user_agent: Vec<(String, String)>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("cache", &self.cache)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.settings.offline)
            .field("max_retries", &self.max_retries)
            .field("progress", &self.progress)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl Config {
    fn from_cache(cache: Cache) -> Config {
        let settings = Settings::from_env();
        let token = cache.token();
        Config {
            endpoint: settings.endpoint.clone(),
            // Progress bars on, as in hf-hub, unless HF_HUB_DISABLE_PROGRESS_BARS says otherwise.
            progress: settings.disable_progress_bars != Some(true),
            settings,
            cache,
            token,
            max_retries: None,
            user_agent: Vec::new(),
        }
    }

    /// The hubcache builder, or why an endpoint, token or cache folder is refused.
    fn hub_builder(&self) -> Result<HubBuilder, InvalidSetting> {
        let endpoint = self.endpoint.trim_end_matches('/');
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(InvalidSetting {
                name: "endpoint",
                reason: format!("`{endpoint}` is not an http:// or https:// URL"),
            });
        }
        let token = match &self.token {
            Some(raw) => match hubcache::Token::parse(raw) {
                Some(t) => Some(t),
                None => {
                    return Err(InvalidSetting {
                        name: "token",
                        reason: "it is empty or only whitespace (pass None for no token)".into(),
                    })
                }
            },
            None => None,
        };
        if self.cache.path().as_os_str().is_empty() {
            return Err(InvalidSetting {
                name: "cache folder",
                reason: "the path is empty".into(),
            });
        }
        let mut b = HubBuilder::from_settings(&self.settings)
            .endpoint(endpoint)
            .cache_dir(self.cache.path().clone())
            .token(token);
        if let Some(n) = self.max_retries {
            b = b.retry(RetryPolicy {
                max_retries: u32::try_from(n).unwrap_or(u32::MAX),
                ..RetryPolicy::default()
            });
        }
        let mut ua = vec![format!("hf-hub/{}", env!("CARGO_PKG_VERSION"))];
        ua.extend(self.user_agent.iter().map(|(k, v)| format!("{k}/{v}")));
        Ok(b.user_agent(ua.join("; ")))
    }
}

/// A progress event, carried from hubcache's reporter to the caller's [`Progress`].
enum Event {
    Init(usize, String),
    Update(usize),
    Finish,
}

/// Sends every file's progress down a channel (the caller's progress may be neither Send nor Sync).
struct ChannelReporter<S: Fn(Event) + Clone + Send + Sync + 'static> {
    send: S,
}

struct ChannelProgress<S: Fn(Event) + Send> {
    send: S,
    finished: bool,
}

impl<S: Fn(Event) + Clone + Send + Sync + 'static> Reporter for ChannelReporter<S> {
    fn file_started(&self, name: &str, total: Option<u64>) -> Box<dyn FileProgress> {
        let size = total.and_then(|t| usize::try_from(t).ok()).unwrap_or(0);
        (self.send)(Event::Init(size, name.to_string()));
        Box::new(ChannelProgress {
            send: self.send.clone(),
            finished: false,
        })
    }
}

impl<S: Fn(Event) + Send> FileProgress for ChannelProgress<S> {
    fn advance(&mut self, n: u64) {
        (self.send)(Event::Update(usize::try_from(n).unwrap_or(usize::MAX)));
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            (self.send)(Event::Finish);
        }
    }
}

/// A hub whose downloads report to `send`.
fn reporting_hub<S: Fn(Event) + Clone + Send + Sync + 'static>(
    builder: HubBuilder,
    send: S,
) -> Result<hubcache::Hub, hubcache::Error> {
    builder.reporter(Arc::new(ChannelReporter { send })).build()
}

/// What the download worker sends back: progress, then the result.
enum Msg {
    Progress(Event),
    Done(Result<PathBuf, hubcache::Error>),
}

/// The error hubcache gives for a repo info request (offline, or the Hub's answer).
fn info_error(
    hub: &hubcache::Hub,
    repo: &hubcache::Repo,
    revision: &hubcache::Revision,
    source: Option<hubcache::hub::HubError>,
) -> hubcache::Error {
    let (repo, revision, what) = (repo.to_string(), revision.as_str().to_string(), "repo info".to_string());
    match source {
        None => hubcache::Error::Offline {
            repo,
            revision,
            what,
            cache: hub.cache().root().to_path_buf(),
            reason: hubcache::OfflineReason::Env,
        },
        Some(source)
            if matches!(
                source,
                hubcache::hub::HubError::Connect { .. } | hubcache::hub::HubError::Timeout { .. }
            ) =>
        {
            hubcache::Error::Unreachable {
                repo,
                revision,
                what,
                source,
            }
        }
        Some(source) => hubcache::Error::Hub {
            repo,
            revision,
            what,
            source,
        },
    }
}

/// `GET /api/{type}s/{id}/revision/{rev}`, or the offline error.
async fn repo_info(hub: &hubcache::Hub, repo: &crate::Repo) -> Result<RepoInfo, hubcache::Error> {
    let (r, revision) = repo.hubcache_repo()?;
    if hub.is_offline() {
        return Err(info_error(hub, &r, &revision, None));
    }
    match hub.client().repo_info(&r, revision.as_str()).await {
        Ok(info) => Ok(info.into()),
        Err(e) => Err(info_error(hub, &r, &revision, Some(e))),
    }
}

/// The resolve URL of `filename`, as hf-hub spells it.
fn file_url(endpoint: &str, repo: &crate::Repo, filename: &str) -> String {
    format!(
        "{}/{}/resolve/{}/{filename}",
        endpoint.trim_end_matches('/'),
        repo.url(),
        repo.url_revision()
    )
}
