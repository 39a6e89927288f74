//! The HTTP client: one connection pool, Hub headers, redirect rules, retries, error mapping.
//!
//! Redirects are never followed blindly: a hop is taken only to the same origin or a Hub origin,
//! and the `Authorization` header is only ever sent to such origins, so a CDN never sees the
//! token. The token lives in a sensitive header value and never in a URL or message.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, LOCATION, RANGE, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;

use super::error::{map_status, ErrorResponse, HubError};
use super::retry::{parse_ratelimit, parse_retry_after, RetryPolicy};
use super::url;
use crate::repo::{Repo, RepoPath};
use crate::settings::{Proxies, Token};

/// Most redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 20;

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
}

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
}

/// A Hub client bound to one endpoint.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    config: ClientConfig,
}

/// `_normalize_etag`: strip leading `W` and `/` characters, then surrounding quotes.
pub fn normalize_etag(raw: &str) -> String {
    raw.trim_start_matches(['W', '/']).trim_matches('"').to_string()
}

fn transport_error(url_str: &str, e: &reqwest::Error) -> HubError {
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
    } else {
        HubError::Transfer { url, detail }
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
        Ok(HubClient { http, config })
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
        for _ in 0..MAX_REDIRECTS {
            let resp = self.send_once(method.clone(), &current, extra.clone(), timeout).await?;
            if !is_redirect(resp.status()) {
                return Ok((resp, current));
            }
            let Some(target) = header(resp.headers(), LOCATION.as_str()).and_then(|l| url::join(&current, l)) else {
                return Ok((resp, current));
            };
            let same = url::origin(&target) == url::origin(&current);
            if !(same || url::may_send_token("https://huggingface.co", &target)) {
                return Ok((resp, current));
            }
            current = target;
        }
        Err(HubError::Transfer {
            url: url::redact(start),
            detail: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Follows every redirect (for content GETs), sending the token only where allowed.
    async fn get_following_all(&self, start: &str, extra: &HeaderMap) -> Result<Response, HubError> {
        let mut current = start.to_string();
        for _ in 0..MAX_REDIRECTS {
            let resp = self.send_once(Method::GET, &current, extra.clone(), None).await?;
            if !is_redirect(resp.status()) {
                return self.check(resp, &current).await;
            }
            match header(resp.headers(), LOCATION.as_str()).and_then(|l| url::join(&current, l)) {
                Some(target) => current = target,
                None => return self.check(resp, &current).await,
            }
        }
        Err(HubError::Transfer {
            url: url::redact(start),
            detail: format!("more than {MAX_REDIRECTS} redirects"),
        })
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
                Err(e) if e.is_transient() && retry < policy.max_retries => {
                    tokio::time::sleep(policy.delay(retry, e.retry_after())).await;
                    retry += 1;
                }
                other => return other,
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
        Ok(FileMetadata {
            commit,
            etag,
            size,
            location,
        })
    }

    /// The commit a revision points at (`GET /api/{type}s/{id}/revision/{rev}` → `sha`).
    pub async fn revision_commit(&self, repo: &Repo, revision: &str) -> Result<String, HubError> {
        self.revision_commit_with(repo, revision, self.config.retry).await
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
            let info: RevisionInfo = parse_json(resp, &target).await?;
            info.sha.ok_or_else(|| HubError::NotAHub {
                url: url::redact(&target),
                detail: "repo info without `sha`".to_string(),
            })
        })
        .await
    }

    /// Every file and folder of a commit (recursive tree listing, all pages).
    pub async fn list_tree(&self, repo: &Repo, revision: &str) -> Result<Vec<TreeEntry>, HubError> {
        let mut next = Some(url::tree_url(&self.config.endpoint, repo, revision));
        let mut out = Vec::new();
        let mut pages = 0usize;
        while let Some(target) = next.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(HubError::NotAHub {
                    url: url::redact(&target),
                    detail: "endless tree pagination".to_string(),
                });
            }
            let (entries, link) = self
                .with_retries(self.config.retry, || async {
                    let resp = self.get_json(&target).await?;
                    let link = header(resp.headers(), "link").and_then(next_link);
                    let entries: Vec<TreeEntry> = parse_json(resp, &target).await?;
                    Ok((entries, link))
                })
                .await?;
            out.extend(entries);
            // Only follow pages on the same origin (the token goes with them).
            next = link.filter(|l| url::origin(l) == url::origin(&self.config.endpoint));
        }
        Ok(out)
    }

    async fn get_json(&self, target: &str) -> Result<Response, HubError> {
        self.get_json_within(target, None).await
    }

    async fn get_json_within(&self, target: &str, timeout: Option<Duration>) -> Result<Response, HubError> {
        let (resp, final_url) = self
            .send_following(Method::GET, target, &HeaderMap::new(), timeout)
            .await?;
        self.check(resp, &final_url).await
    }

    /// Starts a content GET at byte `offset`, following redirects (token only to allowed origins).
    pub async fn get_content(&self, location: &str, offset: u64) -> Result<Response, HubError> {
        let mut extra = HeaderMap::new();
        if offset > 0 {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-")) {
                extra.insert(RANGE, v);
            }
        }
        self.with_retries(self.config.retry, || self.get_following_all(location, &extra))
            .await
    }
}

async fn parse_json<T: serde::de::DeserializeOwned>(resp: Response, target: &str) -> Result<T, HubError> {
    let bytes = resp.bytes().await.map_err(|e| transport_error(target, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| HubError::NotAHub {
        url: url::redact(target),
        detail: format!("malformed JSON: {e}"),
    })
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
    fn link_header() {
        assert_eq!(
            next_link("<https://h/api/models/a/tree/main?cursor=x>; rel=\"next\"").as_deref(),
            Some("https://h/api/models/a/tree/main?cursor=x")
        );
        assert_eq!(next_link("<https://h/p>; rel=\"prev\"").as_deref(), None);
        assert_eq!(next_link("<a>; rel=\"prev\", <b>; rel=\"next\"").as_deref(), Some("b"));
    }
}
