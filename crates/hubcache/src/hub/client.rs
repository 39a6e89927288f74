//! The HTTP client: one connection pool, Hub headers, redirect rules, retries, error mapping.
//!
//! Redirects are never followed blindly: a hop is taken only to the same origin or a Hub origin,
//! and the `Authorization` header is only ever sent to such origins, so a CDN never sees the
//! token. The token lives in a sensitive header value and never in a URL or message.
//!
//! **A hostile server gets a clear error, fast, with bounded memory.** Every redirect target is
//! checked before it is followed or handed on as a download location: only `http`/`https`, never
//! a link-local or cloud metadata address ([`url::check_redirect`]); a chain that revisits a
//! URL is a [`HubError::RedirectLoop`], one longer than [`MAX_REDIRECTS`] hops is
//! [`HubError::TooManyRedirects`]. An answer the HTTP parser rejects (more than 100 headers, a
//! head over ~400 KiB, an unparsable `Content-Length`) is [`HubError::Malformed`]. These are
//! permanent: one attempt, no retry. API bodies are read chunk by chunk up to [`MAX_API_BODY`],
//! a tree listing holds at most [`MAX_TREE_ENTRIES`] entries, a `Link: rel="next"` to a page
//! already fetched is [`HubError::EndlessPagination`], and each listing page must complete
//! within [`ClientConfig::api_deadline`].

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, LOCATION, RANGE, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{map_status, ErrorResponse, HubError, RedirectRefusal};
use super::retry::{parse_ratelimit, parse_retry_after, RetryPolicy};
use super::transfer::RangedConfig;
use super::url;
use crate::repo::{Repo, RepoPath};
use crate::settings::{Proxies, Token};

/// Most redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 20;
/// Largest API answer read (one tree listing page, repo info): far above any real repo's
/// (a Hub listing page of 1,000 entries is a few hundred KiB).
pub const MAX_API_BODY: u64 = 64 << 20;
/// Most entries of one tree listing, all pages together: 5 × the Hub's recommended maximum
/// of 100,000 files per repo, and small enough that a hostile page just under
/// [`MAX_API_BODY`] parses within ~200 MiB.
pub const MAX_TREE_ENTRIES: usize = 500_000;
/// Most pages of one tree listing.
pub const MAX_TREE_PAGES: usize = 100_000;
/// An API page must complete within this many metadata timeouts (`HF_HUB_ETAG_TIMEOUT`) …
const API_DEADLINE_FACTOR: u32 = 6;
/// … but never more than this.
const MAX_API_DEADLINE: Duration = Duration::from_secs(300);

/// How to reach the Hub.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Endpoint without trailing slash.
    pub endpoint: String,
    /// Token sent to the endpoint's origin (never elsewhere).
    pub token: Option<Token>,
    /// Timeout of metadata calls.
    pub etag_timeout: Duration,
    /// Per-read timeout of transfers (a stalled server fails after this).
    pub read_timeout: Duration,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
    /// Pause between resume attempts of a broken transfer.
    pub resume_delay: Duration,
    /// Proxies.
    pub proxies: Proxies,
    /// Extra user-agent parts (`name/version`).
    pub user_agent: Option<String>,
    /// How large files are fetched in parts over several connections.
    pub ranged: RangedConfig,
    /// Most content connections open at once through this client, all transfers together (the
    /// parts of large files and the small files of snapshots share it).
    pub connection_budget: usize,
}

/// Default [`ClientConfig::connection_budget`]: as many streams as huggingface_hub's Xet path
/// grows to.
pub const DEFAULT_CONNECTION_BUDGET: usize = 64;

impl ClientConfig {
    /// Defaults matching huggingface_hub for an endpoint.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ClientConfig {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token: None,
            etag_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            resume_delay: Duration::from_secs(1),
            proxies: Proxies::default(),
            user_agent: None,
            ranged: RangedConfig::default(),
            connection_budget: DEFAULT_CONNECTION_BUDGET,
        }
    }

    /// Total deadline of one listing page: 6 × the metadata timeout, at most 5 minutes
    /// (60 s with the default `HF_HUB_ETAG_TIMEOUT` of 10 s).
    pub fn api_deadline(&self) -> Duration {
        self.etag_timeout
            .saturating_mul(API_DEADLINE_FACTOR)
            .min(MAX_API_DEADLINE)
    }

    /// The retry policy of a transfer's resumes: as many fruitless attempts as [`Self::retry`]
    /// allows, starting at [`Self::resume_delay`] and doubling up to the policy's longest delay.
    pub fn transfer_retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.retry.max_retries,
            base: self.resume_delay,
            max_delay: self.retry.max_delay.max(self.resume_delay),
        }
    }
}

/// What a HEAD on a resolve URL says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMetadata {
    /// Commit the revision resolved to (`X-Repo-Commit`).
    pub commit: String,
    /// Normalised etag: git blob sha1 or LFS sha256.
    pub etag: String,
    /// Content size, when announced.
    pub size: Option<u64>,
    /// Where to GET the content.
    pub location: String,
    /// The Xet hash (`X-Xet-Hash`), when the answer also names a Xet refresh route (as
    /// huggingface_hub requires before it uses one).
    pub xet_hash: Option<String>,
}

/// One entry of a recursive tree listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TreeEntry {
    /// `file` or `directory`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Path in the repo.
    pub path: String,
    /// Size (of the pointer for LFS files).
    #[serde(default)]
    pub size: u64,
    /// Git object id.
    #[serde(default)]
    pub oid: String,
    /// LFS details.
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
    /// Xet hash.
    #[serde(default, rename = "xetHash")]
    pub xet_hash: Option<String>,
}

/// LFS details of a tree entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LfsInfo {
    /// SHA-256 of the content.
    pub oid: String,
    /// Content size.
    pub size: u64,
    /// Size of the pointer file.
    #[serde(default, rename = "pointerSize")]
    pub pointer_size: Option<u64>,
}

#[derive(Deserialize)]
struct RevisionInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

/// What the repo info route says about a revision: its commit and the files it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// The commit the revision points at.
    pub sha: String,
    /// Every file of that commit (`siblings[].rfilename`), in the server's order.
    pub files: Vec<String>,
}

/// A Hub client bound to one endpoint.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    config: ClientConfig,
    /// Permits for content connections ([`ClientConfig::connection_budget`]), shared by clones.
    connections: Arc<Semaphore>,
}

/// `_normalize_etag`: strip leading `W` and `/` characters, then surrounding quotes.
pub fn normalize_etag(raw: &str) -> String {
    raw.trim_start_matches(['W', '/']).trim_matches('"').to_string()
}

/// Maps a reqwest failure: timeouts, connection failures and broken transfers are transient;
/// an answer the HTTP parser rejects, or a URL the client refuses, is permanent.
pub(crate) fn transport_error(url_str: &str, e: &reqwest::Error) -> HubError {
    let url = url::redact(url_str);
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    // reqwest may name the URL (with its query) in its own text: keep only the redacted form.
    if let Some(u) = e.url() {
        detail = detail.replace(u.as_str(), &url);
    }
    if e.is_timeout() {
        HubError::Timeout { url, detail }
    } else if e.is_connect() {
        HubError::Connect { url, detail }
    } else if e.is_builder() {
        HubError::InvalidUrl { url, detail }
    } else if is_parse_error(e) {
        HubError::Malformed { url, detail }
    } else {
        HubError::Transfer { url, detail }
    }
}

/// Whether hyper rejected the answer itself (bad status line or headers, too many or too
/// large headers, an invalid `Content-Length`): the same request gets the same answer.
fn is_parse_error(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_parse();
        }
        source = s.source();
    }
    false
}

/// The next hop of an answer: `Ok(None)` when it is not a redirect (or names no target), the
/// checked absolute target otherwise.
fn redirect_target(current: &str, resp: &Response) -> Result<Option<String>, HubError> {
    if !is_redirect(resp.status()) {
        return Ok(None);
    }
    let Some(raw) = resp.headers().get(LOCATION) else {
        return Ok(None);
    };
    let refuse = |target: String, reason| HubError::BadRedirect {
        url: url::redact(current),
        target,
        reason,
    };
    let escaped = || String::from_utf8_lossy(raw.as_bytes()).escape_debug().to_string();
    let Some(target) = raw.to_str().ok().and_then(|l| url::join(current, l)) else {
        return Err(refuse(escaped(), RedirectRefusal::Unparsable));
    };
    url::check_redirect(&target).map_err(|reason| refuse(url::redact_or_escape(&target), reason))?;
    Ok(Some(target))
}

/// Redirect bookkeeping of one request: loop detection and the hop limit.
struct Hops {
    start: String,
    visited: HashSet<String>,
}

impl Hops {
    fn new(start: &str) -> Hops {
        Hops {
            start: start.to_string(),
            visited: HashSet::from([start.to_string()]),
        }
    }

    /// Records a hop to `target`; errs on a URL already visited or one hop too many.
    fn take(&mut self, target: &str) -> Result<(), HubError> {
        if !self.visited.insert(target.to_string()) {
            return Err(HubError::RedirectLoop {
                url: url::redact(&self.start),
                target: url::redact(target),
            });
        }
        if self.visited.len() > MAX_REDIRECTS + 1 {
            return Err(HubError::TooManyRedirects {
                url: url::redact(&self.start),
                limit: MAX_REDIRECTS,
            });
        }
        Ok(())
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl HubClient {
    /// Builds the client (connection pool, timeouts, proxies).
    pub fn new(config: ClientConfig) -> Result<Self, HubError> {
        let build_err = |detail: String| HubError::Connect {
            url: config.endpoint.clone(),
            detail,
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.etag_timeout)
            .read_timeout(config.read_timeout)
            .tcp_nodelay(true);
        let no_proxy = config
            .proxies
            .no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string);
        let mut add = |p: reqwest::Result<reqwest::Proxy>| -> Result<(), HubError> {
            let proxy = p.map_err(|e| build_err(format!("invalid proxy setting: {e}")))?;
            builder = std::mem::take(&mut builder).proxy(proxy.no_proxy(no_proxy.clone()));
            Ok(())
        };
        if let Some(p) = &config.proxies.http {
            add(reqwest::Proxy::http(p))?;
        }
        if let Some(p) = &config.proxies.https {
            add(reqwest::Proxy::https(p))?;
        }
        if let Some(p) = &config.proxies.all {
            add(reqwest::Proxy::all(p))?;
        }
        let http = builder.build().map_err(|e| build_err(e.to_string()))?;
        let connections = Arc::new(Semaphore::new(
            config.connection_budget.clamp(1, Semaphore::MAX_PERMITS),
        ));
        Ok(HubClient {
            http,
            config,
            connections,
        })
    }

    /// A content connection from the budget, waiting for one to free (`None` only if the
    /// budget were closed, which it never is).
    pub(crate) async fn connection(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.connections).acquire_owned().await.ok()
    }

    /// A content connection from the budget if one is free now.
    pub(crate) fn try_connection(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.connections).try_acquire_owned().ok()
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn headers_for(&self, target: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let ua = match &self.config.user_agent {
            Some(extra) => format!("hubcache/{}; {extra}", env!("CARGO_PKG_VERSION")),
            None => format!("hubcache/{}", env!("CARGO_PKG_VERSION")),
        };
        if let Ok(v) = HeaderValue::from_str(&ua) {
            h.insert(USER_AGENT, v);
        }
        h.insert("x-hf-download-counter", HeaderValue::from_static("1"));
        if let Some(token) = &self.config.token {
            if url::may_send_token(&self.config.endpoint, target) {
                if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
                    v.set_sensitive(true);
                    h.insert(AUTHORIZATION, v);
                }
            }
        }
        h
    }

    async fn send_once(
        &self,
        method: Method,
        target: &str,
        extra: HeaderMap,
        timeout: Option<Duration>,
    ) -> Result<Response, HubError> {
        let mut req = self
            .http
            .request(method, target)
            .headers(self.headers_for(target))
            .headers(extra);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        req.send().await.map_err(|e| transport_error(target, &e))
    }

    /// Sends, following same-origin or Hub-origin redirects only; returns the final response
    /// and its URL. Cross-origin redirects are returned as they are (status 3xx).
    async fn send_following(
        &self,
        method: Method,
        start: &str,
        extra: &HeaderMap,
        timeout: Option<Duration>,
    ) -> Result<(Response, String), HubError> {
        let mut current = start.to_string();
        let mut hops = Hops::new(start);
        loop {
            let resp = self.send_once(method.clone(), &current, extra.clone(), timeout).await?;
            // Checked even when not followed: the caller may use it as the download location.
            let Some(target) = redirect_target(&current, &resp)? else {
                return Ok((resp, current));
            };
            let same = url::origin(&target) == url::origin(&current);
            if !(same || url::may_send_token("https://huggingface.co", &target)) {
                return Ok((resp, current));
            }
            hops.take(&target)?;
            current = target;
        }
    }

    /// Follows every checked redirect (for content GETs), sending the token only where allowed.
    async fn get_following_all(&self, start: &str, extra: &HeaderMap) -> Result<Response, HubError> {
        let mut current = start.to_string();
        let mut hops = Hops::new(start);
        loop {
            let resp = self.send_once(Method::GET, &current, extra.clone(), None).await?;
            let Some(target) = redirect_target(&current, &resp)? else {
                return self.check(resp, &current).await;
            };
            hops.take(&target)?;
            current = target;
        }
    }

    /// Maps an error status to a [`HubError`], reading a small JSON body for its message.
    async fn check(&self, resp: Response, target: &str) -> Result<Response, HubError> {
        if resp.status().as_u16() < 400 {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let status = resp.status().as_u16();
        let body_message = if resp.content_length().is_some_and(|n| n <= 64 * 1024) {
            resp.bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        } else {
            None
        };
        let retry_after = parse_ratelimit(header(&headers, "ratelimit"))
            .or_else(|| parse_retry_after(header(&headers, "retry-after")));
        Err(map_status(
            target,
            ErrorResponse {
                status,
                error_code: header(&headers, "x-error-code"),
                error_message: header(&headers, "x-error-message"),
                repo_commit: header(&headers, "x-repo-commit"),
                retry_after,
                body_message,
            },
        )
        .unwrap_or_else(|| HubError::Status {
            status,
            url: url::redact(target),
            message: None,
        }))
    }

    /// Runs `attempt` with the retry policy on transient errors, honouring server hints.
    pub async fn with_retries<T, F, Fut>(&self, policy: RetryPolicy, mut attempt: F) -> Result<T, HubError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, HubError>>,
    {
        let mut retry = 0;
        loop {
            match attempt().await {
                Err(e) => match policy.next_delay(retry, e.is_retryable(), e.retry_after()) {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        retry += 1;
                    }
                    None => return Err(e),
                },
                ok => return ok,
            }
        }
    }

    /// HEAD on the resolve URL: commit, etag, size and download location of one file.
    /// `retry` selects the second, patient attempt (retries and a 60 s timeout).
    pub async fn file_metadata(
        &self,
        repo: &Repo,
        revision: &str,
        path: &RepoPath,
        retry: bool,
    ) -> Result<FileMetadata, HubError> {
        let resolve = url::resolve_url(&self.config.endpoint, repo, revision, path);
        let (policy, timeout) = if retry {
            (self.config.retry, Duration::from_secs(60).max(self.config.etag_timeout))
        } else {
            (RetryPolicy::none(), self.config.etag_timeout)
        };
        self.with_retries(policy, || self.head_once(&resolve, timeout)).await
    }

    async fn head_once(&self, resolve: &str, timeout: Duration) -> Result<FileMetadata, HubError> {
        let mut extra = HeaderMap::new();
        extra.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let (resp, final_url) = self
            .send_following(Method::HEAD, resolve, &extra, Some(timeout))
            .await?;
        let resp = self.check(resp, &final_url).await?;
        let h = resp.headers();
        let not_hub = |detail: &str| HubError::NotAHub {
            url: url::redact(&final_url),
            detail: detail.to_string(),
        };
        let commit = header(h, "x-repo-commit")
            .ok_or_else(|| not_hub("no X-Repo-Commit header"))?
            .to_string();
        let etag = header(h, "x-linked-etag")
            .or_else(|| header(h, "etag"))
            .map(normalize_etag)
            .ok_or_else(|| not_hub("no ETag header"))?;
        let redirect = is_redirect(resp.status());
        let size = header(h, "x-linked-size")
            .or_else(|| if redirect { None } else { header(h, "content-length") })
            .and_then(|s| s.trim().parse::<u64>().ok());
        let location = match header(h, LOCATION.as_str()) {
            Some(l) if redirect => url::join(&final_url, l).unwrap_or_else(|| final_url.clone()),
            _ => final_url.clone(),
        };
        let refresh_route = header(h, "x-xet-refresh-route").is_some()
            || h.get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("rel=\"xet-auth\""));
        let xet_hash = header(h, "x-xet-hash")
            .filter(|_| refresh_route)
            .map(|v| v.trim().to_string());
        Ok(FileMetadata {
            commit,
            etag,
            size,
            location,
            xet_hash,
        })
    }

    /// The commit a revision points at (`GET /api/{type}s/{id}/revision/{rev}` → `sha`).
    pub async fn revision_commit(&self, repo: &Repo, revision: &str) -> Result<String, HubError> {
        self.revision_commit_with(repo, revision, self.config.retry).await
    }

    /// The commit a revision points at and its files (`GET /api/{type}s/{id}/revision/{rev}`).
    pub async fn repo_info(&self, repo: &Repo, revision: &str) -> Result<RepoInfo, HubError> {
        let target = url::revision_info_url(&self.config.endpoint, repo, revision);
        let deadline = self.config.api_deadline();
        self.with_retries(self.config.retry, || async {
            // The answer lists every file: bounded like a listing page, not like a HEAD.
            let body = tokio::time::timeout(deadline, async {
                let resp = self.get_json_within(&target, None).await?;
                read_capped(resp, &target, MAX_API_BODY).await
            })
            .await
            .unwrap_or_else(|_| {
                Err(HubError::Deadline {
                    url: url::redact(&target),
                    deadline,
                })
            })?;
            let info: RevisionInfo = parse_json(&body, &target)?;
            let sha = info.sha.ok_or_else(|| HubError::NotAHub {
                url: url::redact(&target),
                detail: "repo info without `sha`".to_string(),
            })?;
            Ok(RepoInfo {
                sha,
                files: info.siblings.into_iter().map(|s| s.rfilename).collect(),
            })
        })
        .await
    }

    /// [`HubClient::revision_commit`] with an explicit retry policy (model loading asks once and
    /// falls back to `refs/` on a transient failure, as transformers' `resolve_revision` does).
    pub(crate) async fn revision_commit_with(
        &self,
        repo: &Repo,
        revision: &str,
        policy: RetryPolicy,
    ) -> Result<String, HubError> {
        let target = url::revision_info_url(&self.config.endpoint, repo, revision);
        self.with_retries(policy, || async {
            // A small answer: bounded by the metadata timeout, so a black-holed endpoint costs
            // seconds, not minutes, before a caller falls back to its cache.
            let resp = self.get_json_within(&target, Some(self.config.etag_timeout)).await?;
            let body = read_capped(resp, &target, MAX_API_BODY).await?;
            let info: RevisionInfo = parse_json(&body, &target)?;
            info.sha.ok_or_else(|| HubError::NotAHub {
                url: url::redact(&target),
                detail: "repo info without `sha`".to_string(),
            })
        })
        .await
    }

    /// Every file and folder of a commit (recursive tree listing, all pages). Each page is
    /// capped at [`MAX_API_BODY`] bytes and must complete within [`ClientConfig::api_deadline`];
    /// the listing at [`MAX_TREE_ENTRIES`] entries and [`MAX_TREE_PAGES`] pages, none fetched
    /// twice.
    pub async fn list_tree(&self, repo: &Repo, revision: &str) -> Result<Vec<TreeEntry>, HubError> {
        let first = url::tree_url(&self.config.endpoint, repo, revision);
        let mut visited = HashSet::from([url::normalize(&first)]);
        let mut next = Some(first);
        let mut out = Vec::new();
        let deadline = self.config.api_deadline();
        while let Some(target) = next.take() {
            let (body, link) = self
                .with_retries(self.config.retry, || async {
                    let page = async {
                        let resp = self.get_json_within(&target, None).await?;
                        let link = header(resp.headers(), "link").and_then(next_link);
                        Ok((read_capped(resp, &target, MAX_API_BODY).await?, link))
                    };
                    tokio::time::timeout(deadline, page).await.unwrap_or_else(|_| {
                        Err(HubError::Deadline {
                            url: url::redact(&target),
                            deadline,
                        })
                    })
                })
                .await?;
            let entries = parse_entries(&body, &target, MAX_TREE_ENTRIES - out.len())?;
            drop(body);
            out.extend(entries);
            // Only follow pages on the same origin (the token goes with them).
            let Some(link) = link.filter(|l| url::origin(l) == url::origin(&self.config.endpoint)) else {
                break;
            };
            if !visited.insert(url::normalize(&link)) || visited.len() > MAX_TREE_PAGES {
                return Err(HubError::EndlessPagination {
                    url: url::redact(&target),
                    repeated: visited.len() <= MAX_TREE_PAGES,
                });
            }
            next = Some(link);
        }
        Ok(out)
    }

    async fn get_json_within(&self, target: &str, timeout: Option<Duration>) -> Result<Response, HubError> {
        let (resp, final_url) = self
            .send_following(Method::GET, target, &HeaderMap::new(), timeout)
            .await?;
        self.check(resp, &final_url).await
    }

    /// Starts a content GET at byte `offset`, following checked redirects (token only to
    /// allowed origins). One attempt: the transfer's resume budget decides on retries.
    pub async fn get_content(&self, location: &str, offset: u64) -> Result<Response, HubError> {
        let mut extra = HeaderMap::new();
        if offset > 0 {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-")) {
                extra.insert(RANGE, v);
            }
        }
        self.get_following_all(location, &extra).await
    }

    /// Starts a content GET of bytes `[start, end)` (`Range: bytes=<start>-<end - 1>`),
    /// following checked redirects. One attempt.
    pub async fn get_range(&self, location: &str, start: u64, end: u64) -> Result<Response, HubError> {
        let mut extra = HeaderMap::new();
        let last = end.saturating_sub(1).max(start);
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{last}")) {
            extra.insert(RANGE, v);
        }
        self.get_following_all(location, &extra).await
    }

    /// HEAD on a resolve URL once more (a signed download location expired): a fresh location
    /// for the file with `etag`, `None` when the file changed on the Hub meanwhile.
    pub async fn refresh_location(&self, resolve: &str, etag: &str) -> Result<Option<String>, HubError> {
        let meta = self.head_once(resolve, self.config.etag_timeout).await?;
        Ok((meta.etag == etag).then_some(meta.location))
    }
}

/// Reads a body chunk by chunk, refusing it as soon as it grows past `limit` bytes.
async fn read_capped(mut resp: Response, target: &str, limit: u64) -> Result<Vec<u8>, HubError> {
    let too_large = || HubError::BodyTooLarge {
        url: url::redact(target),
        limit,
    };
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.and_then(|n| usize::try_from(n).ok()).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(target, &e))? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn malformed_json(target: &str, e: &serde_json::Error) -> HubError {
    HubError::NotAHub {
        url: url::redact(target),
        detail: format!("malformed JSON: {e}"),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], target: &str) -> Result<T, HubError> {
    serde_json::from_slice(body).map_err(|e| malformed_json(target, &e))
}

/// Parses one listing page, failing as soon as it holds more than `limit` entries (so a
/// hostile page never becomes millions of entries in memory).
fn parse_entries(body: &[u8], target: &str, limit: usize) -> Result<Vec<TreeEntry>, HubError> {
    use serde::de::DeserializeSeed;
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = CappedEntries { limit, over: &over }
        .deserialize(&mut de)
        .and_then(|entries| de.end().map(|()| entries));
    parsed.map_err(|e| match over.get() {
        true => HubError::TooManyEntries {
            url: url::redact(target),
            limit: MAX_TREE_ENTRIES,
        },
        false => malformed_json(target, &e),
    })
}

/// A JSON array of [`TreeEntry`] with at most `limit` elements.
struct CappedEntries<'a> {
    limit: usize,
    over: &'a Cell<bool>,
}

impl<'de> serde::de::DeserializeSeed<'de> for CappedEntries<'_> {
    type Value = Vec<TreeEntry>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CappedEntries<'_> {
    type Value = Vec<TreeEntry>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of tree entries")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = seq.next_element::<TreeEntry>()? {
            if out.len() >= self.limit {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many entries"));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_normalisation() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
    }

    #[test]
    fn listing_pages_are_capped_by_entries() {
        let body = br#"[{"type":"file","path":"a"},{"type":"file","path":"b"},{"type":"directory","path":"c"}]"#;
        assert_eq!(parse_entries(body, "http://h/t", 3).unwrap().len(), 3);
        assert!(matches!(
            parse_entries(body, "http://h/t", 2),
            Err(HubError::TooManyEntries {
                limit: MAX_TREE_ENTRIES,
                ..
            })
        ));
        assert!(matches!(
            parse_entries(b"[{\"type\":1}]", "http://h/t", 3),
            Err(HubError::NotAHub { .. })
        ));
        assert!(matches!(
            parse_entries(b"[] trailing", "http://h/t", 3),
            Err(HubError::NotAHub { .. })
        ));
    }

    #[test]
    fn redirect_hops_detect_loops_and_the_limit() {
        let mut hops = Hops::new("http://h/0");
        assert!(hops.take("http://h/1").is_ok());
        assert!(matches!(hops.take("http://h/0"), Err(HubError::RedirectLoop { .. })));
        let mut hops = Hops::new("http://h/0");
        for i in 1..=MAX_REDIRECTS {
            assert!(hops.take(&format!("http://h/{i}")).is_ok(), "{i}");
        }
        assert!(matches!(
            hops.take("http://h/last"),
            Err(HubError::TooManyRedirects {
                limit: MAX_REDIRECTS,
                ..
            })
        ));
    }

    #[test]
    fn transfer_retry_and_api_deadline() {
        let mut c = ClientConfig::new("http://h");
        assert_eq!(c.api_deadline(), Duration::from_secs(60));
        c.etag_timeout = Duration::from_secs(1);
        assert_eq!(c.api_deadline(), Duration::from_secs(6));
        c.etag_timeout = Duration::from_secs(3600);
        assert_eq!(c.api_deadline(), MAX_API_DEADLINE);
        c.resume_delay = Duration::from_millis(10);
        let p = c.transfer_retry();
        assert_eq!(
            (p.max_retries, p.base),
            (c.retry.max_retries, Duration::from_millis(10))
        );
    }

    #[test]
    fn link_header() {
        assert_eq!(
            next_link("<https://h/api/models/a/tree/main?cursor=x>; rel=\"next\"").as_deref(),
            Some("https://h/api/models/a/tree/main?cursor=x")
        );
        assert_eq!(next_link("<https://h/p>; rel=\"prev\"").as_deref(), None);
        assert_eq!(next_link("<a>; rel=\"prev\", <b>; rel=\"next\"").as_deref(), Some("b"));
    }
}
