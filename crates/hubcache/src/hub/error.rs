//! Errors of the Hub client, mapped from status + `X-Error-Code` as huggingface_hub maps them.

use std::time::Duration;

/// What went wrong talking to the Hub. URLs are redacted (no query, no credentials).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    /// The repo does not exist, is private, or the token cannot see it.
    #[error("repository not found ({url}){}", msg(.message))]
    RepoNotFound {
        /// Redacted URL.
        url: String,
        /// Server message.
        message: Option<String>,
    },
    /// The repo is gated and this token has not been granted access.
    #[error("gated repository: access not granted ({url}){}", msg(.message))]
    Gated {
        /// Redacted URL.
        url: String,
        /// Server message.
        message: Option<String>,
    },
    /// The revision does not exist in the repo.
    #[error("revision not found ({url}){}", msg(.message))]
    RevisionNotFound {
        /// Redacted URL.
        url: String,
        /// Server message.
        message: Option<String>,
    },
    /// The file does not exist at that revision.
    #[error("entry not found ({url})")]
    EntryNotFound {
        /// Redacted URL.
        url: String,
        /// The commit the server resolved the revision to, when it said.
        commit: Option<String>,
    },
    /// The token was rejected.
    #[error("invalid credentials ({url}){}", msg(.message))]
    Unauthorized {
        /// Redacted URL.
        url: String,
        /// Server message.
        message: Option<String>,
    },
    /// The repo was disabled by its owner or the Hub.
    #[error("access to this repository is disabled ({url})")]
    Disabled {
        /// Redacted URL.
        url: String,
    },
    /// Too many requests.
    #[error("rate limited by the server ({url}){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// Redacted URL.
        url: String,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Any other HTTP error status.
    #[error("HTTP {status} from {url}{}", msg(.message))]
    Status {
        /// HTTP status.
        status: u16,
        /// Redacted URL.
        url: String,
        /// Server message.
        message: Option<String>,
    },
    /// Could not connect (refused, DNS, TLS, proxy).
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        /// Redacted URL.
        url: String,
        /// Transport detail.
        detail: String,
    },
    /// No answer within the timeout.
    #[error("timed out talking to {url}: {detail}")]
    Timeout {
        /// Redacted URL.
        url: String,
        /// Transport detail.
        detail: String,
    },
    /// The connection broke mid-answer, or the answer was malformed at the HTTP level.
    #[error("transfer from {url} failed: {detail}")]
    Transfer {
        /// Redacted URL.
        url: String,
        /// Transport detail.
        detail: String,
    },
    /// A redirect chain longer than [`super::client::MAX_REDIRECTS`] hops.
    #[error("more than {limit} redirects from {url}")]
    TooManyRedirects {
        /// Redacted URL of the first request.
        url: String,
        /// Hops followed before giving up.
        limit: usize,
    },
    /// A redirect back to a URL already visited in the same chain.
    #[error("redirect loop: {url} redirects back to {target}")]
    RedirectLoop {
        /// Redacted URL of the first request.
        url: String,
        /// Redacted URL visited twice.
        target: String,
    },
    /// A redirect to a place hubcache never goes (see [`RedirectRefusal`]).
    #[error("refused a redirect from {url} to {target}: {reason}")]
    BadRedirect {
        /// Redacted URL that sent the redirect.
        url: String,
        /// Redacted target (or the raw `Location`, escaped, when it is not a URL).
        target: String,
        /// Why it was refused.
        reason: RedirectRefusal,
    },
    /// The answer is not valid HTTP (unparsable head, too many or too large headers, a bad
    /// `Content-Length` header, broken chunked encoding).
    #[error("malformed answer from {url}: {detail}")]
    Malformed {
        /// Redacted URL.
        url: String,
        /// What the HTTP parser said.
        detail: String,
    },
    /// A content answer whose `Content-Length` or `Content-Range` does not fit the file.
    #[error("{url} announced {announced} for a transfer that expects {expected}")]
    BadLength {
        /// Redacted URL.
        url: String,
        /// What the answer announced (`Content-Length` or `Content-Range`).
        announced: String,
        /// What the transfer expected.
        expected: String,
    },
    /// An API answer larger than the cap on API bodies.
    #[error("the answer from {url} is larger than {limit} bytes")]
    BodyTooLarge {
        /// Redacted URL.
        url: String,
        /// The cap ([`super::client::MAX_API_BODY`]).
        limit: u64,
    },
    /// A tree listing with more entries than the cap on listings.
    #[error("the listing from {url} has more than {limit} entries")]
    TooManyEntries {
        /// Redacted URL.
        url: String,
        /// The cap ([`super::client::MAX_TREE_ENTRIES`]).
        limit: usize,
    },
    /// A paginated listing whose `Link: rel="next"` points at a page already fetched, or
    /// that goes on for more pages than the cap.
    #[error("endless pagination at {url}{}", if *.repeated { ": the next page was already fetched" } else { "" })]
    EndlessPagination {
        /// Redacted URL of the page.
        url: String,
        /// The next link repeats a page (else: too many pages).
        repeated: bool,
    },
    /// An API answer that did not complete within its total deadline (a server dripping it).
    #[error("{url} did not complete its answer within {}s", .deadline.as_secs())]
    Deadline {
        /// Redacted URL.
        url: String,
        /// The total deadline of the call.
        deadline: Duration,
    },
    /// A transfer below the minimum rate: fewer than `min` bytes within one `window`.
    #[error("transfer from {url} too slow: {received} bytes in {}s (at least {min} are expected)", .window.as_secs())]
    TooSlow {
        /// Redacted URL.
        url: String,
        /// Bytes received in the window.
        received: u64,
        /// Least bytes per window ([`super::transfer::MIN_BYTES_PER_WINDOW`]).
        min: u64,
        /// The window (`HF_HUB_DOWNLOAD_TIMEOUT`).
        window: Duration,
    },
    /// A URL the HTTP client refuses to request (bad scheme or syntax).
    #[error("invalid URL {url}: {detail}")]
    InvalidUrl {
        /// Redacted URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The answer lacks what a Hub endpoint always sends.
    #[error("{url} does not look like a Hugging Face Hub endpoint: {detail} (check HF_ENDPOINT)")]
    NotAHub {
        /// Redacted URL.
        url: String,
        /// What was missing or malformed.
        detail: String,
    },
}

/// Why a redirect was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectRefusal {
    /// A scheme other than `http` or `https` (`file://`, `ftp://`, …).
    Scheme,
    /// A link-local address (169.254.0.0/16, fe80::/10) or a cloud metadata address.
    LinkLocal,
    /// The `Location` is not a valid URL.
    Unparsable,
}

impl std::fmt::Display for RedirectRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedirectRefusal::Scheme => "only http and https redirects are followed",
            RedirectRefusal::LinkLocal => "link-local and cloud metadata addresses are never contacted",
            RedirectRefusal::Unparsable => "the Location header is not a valid URL",
        })
    }
}

fn msg(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

impl HubError {
    /// Worth trying again later, or falling back to the cache: connection errors, timeouts,
    /// broken transfers, a slow server, 408/429/5xx. Everything else is permanent: repeating
    /// the same request gets the same answer (redirect loops, refused redirects, malformed or
    /// oversized answers, endless pagination, 4xx).
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Connect { .. } | HubError::Timeout { .. } | HubError::Transfer { .. } => true,
            HubError::TooSlow { .. } | HubError::Deadline { .. } => true,
            HubError::RateLimited { .. } => true,
            HubError::Status { status, .. } => super::retry::is_retryable_status(*status),
            _ => false,
        }
    }

    /// Worth retrying within this call: transient, except an API answer that missed its total
    /// deadline (the same server would drip it again; the caller falls back instead).
    pub fn is_retryable(&self) -> bool {
        self.is_transient() && !matches!(self, HubError::Deadline { .. })
    }

    /// The server said the repo, revision or file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            HubError::RepoNotFound { .. } | HubError::RevisionNotFound { .. } | HubError::EntryNotFound { .. }
        )
    }

    /// Server-requested wait, when given.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HubError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The parts of a response the error mapping looks at.
#[derive(Debug, Default, Clone)]
pub struct ErrorResponse<'a> {
    /// HTTP status.
    pub status: u16,
    /// `X-Error-Code`.
    pub error_code: Option<&'a str>,
    /// `X-Error-Message`.
    pub error_message: Option<&'a str>,
    /// `X-Repo-Commit`.
    pub repo_commit: Option<&'a str>,
    /// Server-requested wait (`RateLimit` / `Retry-After`).
    pub retry_after: Option<Duration>,
    /// `error` from a JSON body, when there was one.
    pub body_message: Option<String>,
}

/// Maps an error response (status ≥ 400) in huggingface_hub's order; `None` for success.
pub fn map_status(url: &str, r: ErrorResponse<'_>) -> Option<HubError> {
    if r.status < 400 {
        return None;
    }
    let url = super::url::redact(url);
    let message = r.error_message.map(str::to_string).or(r.body_message);
    let is_repo_url = url.contains("/resolve/")
        || ["/api/models/", "/api/datasets/", "/api/spaces/"]
            .iter()
            .any(|p| url.contains(p));
    Some(match r.error_code {
        Some("RevisionNotFound") => HubError::RevisionNotFound { url, message },
        Some("EntryNotFound") => HubError::EntryNotFound {
            url,
            commit: r.repo_commit.map(str::to_string),
        },
        Some("GatedRepo") => HubError::Gated { url, message },
        _ if message.as_deref() == Some("Access to this resource is disabled.") => HubError::Disabled { url },
        Some("RepoNotFound") => HubError::RepoNotFound { url, message },
        _ if r.status == 401 && message.as_deref() == Some("Invalid credentials in Authorization header") => {
            HubError::Unauthorized { url, message }
        }
        _ if r.status == 401 && is_repo_url => HubError::RepoNotFound { url, message },
        _ if r.status == 401 => HubError::Unauthorized { url, message },
        _ if r.status == 429 => HubError::RateLimited {
            url,
            retry_after: r.retry_after,
        },
        _ => HubError::Status {
            status: r.status,
            url,
            message,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, code: Option<&str>, message: Option<&str>) -> HubError {
        let url = "https://h/org/m/resolve/main/f?sig=secret";
        map_status(
            url,
            ErrorResponse {
                status,
                error_code: code,
                error_message: message,
                repo_commit: Some("c"),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn mapping_order() {
        assert!(map_status(
            "https://h/x",
            ErrorResponse {
                status: 302,
                ..Default::default()
            }
        )
        .is_none());
        assert!(matches!(
            map(404, Some("RevisionNotFound"), None),
            HubError::RevisionNotFound { .. }
        ));
        assert!(
            matches!(map(404, Some("EntryNotFound"), None), HubError::EntryNotFound { commit: Some(c), .. } if c == "c")
        );
        assert!(matches!(map(403, Some("GatedRepo"), None), HubError::Gated { .. }));
        assert!(matches!(
            map(403, None, Some("Access to this resource is disabled.")),
            HubError::Disabled { .. }
        ));
        assert!(matches!(
            map(401, Some("RepoNotFound"), None),
            HubError::RepoNotFound { .. }
        ));
        assert!(matches!(map(401, None, None), HubError::RepoNotFound { .. }));
        assert!(matches!(
            map(401, None, Some("Invalid credentials in Authorization header")),
            HubError::Unauthorized { .. }
        ));
        assert!(matches!(map(429, None, None), HubError::RateLimited { .. }));
        let e = map(500, None, Some("boom"));
        assert!(e.is_transient());
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(e.to_string().contains("boom"));
        assert!(!map(404, None, None).is_transient());
        let non_repo = map_status(
            "https://h/api/whoami",
            ErrorResponse {
                status: 401,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(non_repo, HubError::Unauthorized { .. }));
    }
}
