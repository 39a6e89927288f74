//! How the mirror runs ([`MirrorConfig`], [`ConnectionLimits`]) and why it could not start
//! ([`MirrorError`]).

use std::path::PathBuf;
use std::time::Duration;

use hubcache::HubBuilder;

/// How the mirror runs.
pub struct MirrorConfig {
    /// The cache folder served (and filled, with an upstream).
    pub cache_dir: PathBuf,
    /// The upstream, as a configured hubcache client builder (endpoint, token, timeouts).
    pub upstream: Option<HubBuilder>,
    /// Client tokens; when set, requests need `Authorization: Bearer <one of them>`.
    pub client_tokens: Option<Vec<String>>,
    /// How long in-flight transfers may go on after a shutdown signal.
    pub drain: Duration,
    /// Print one line per request on stderr.
    pub log_requests: bool,
    /// How long a branch → commit answer from the upstream is reused ([`crate::REF_TTL`]).
    pub ref_ttl: Duration,
    /// Timeouts and the connection cap that keep idle or slow clients from exhausting the server.
    pub limits: ConnectionLimits,
    /// Serve (and fill) this S3 prefix instead of `cache_dir` ([`crate::Mirror::open`]).
    #[cfg(feature = "s3")]
    pub s3: Option<crate::store::s3::S3Config>,
}

impl MirrorConfig {
    /// A configuration serving `cache_dir` offline, with default limits and ref TTL, a 30 s drain and no log.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        MirrorConfig {
            cache_dir: cache_dir.into(),
            upstream: None,
            client_tokens: None,
            drain: Duration::from_secs(30),
            log_requests: false,
            ref_ttl: crate::REF_TTL,
            limits: ConnectionLimits::default(),
            #[cfg(feature = "s3")]
            s3: None,
        }
    }
}

/// Per-connection timeouts and the connection cap.
///
/// A connection is in one of three states, each with its own bound:
/// - **waiting** for a request (right after accept, or between keep-alive requests): closed
///   after `idle_timeout` without a byte;
/// - **reading a request head** (the first byte has arrived): closed unless the whole head
///   (and any request body) arrives within `header_timeout` of that first byte, so a client
///   dripping one header byte at a time cannot hold a slot;
/// - **answering**: no bound while the mirror works (a pull-through of a large file may take
///   minutes), but while the response is being sent, a client that reads nothing for
///   `idle_timeout` is dropped.
///
/// At most `max_connections` connections are open at once. At the cap the server stops
/// accepting: further clients wait in the kernel's listen backlog until a slot frees (the
/// timeouts above guarantee one does), instead of being accepted and reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request to the end of its head (and body).
    pub header_timeout: Duration,
    /// Silence allowed on a connection waiting for a request, or on a stalled reader.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

/// Default [`ConnectionLimits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of the default connection cap.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: default_max_connections(),
        }
    }
}

/// The default connection cap: 1024, lowered to half the process's open-file limit (a served
/// connection can hold a socket and an open blob; upstream transfers need more).
pub fn default_max_connections() -> usize {
    let nofile = open_file_limit().unwrap_or(u64::MAX);
    let half = usize::try_from(nofile / 2).unwrap_or(usize::MAX);
    DEFAULT_MAX_CONNECTIONS.min(half).max(16)
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Why the mirror could not start.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The cache folder is missing or unreadable.
    #[error("cannot serve {path}: {source}")]
    Cache {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The upstream client could not be built.
    #[error("invalid upstream: {0}")]
    Upstream(#[from] hubcache::Error),
    /// The S3 store cannot be used.
    #[cfg(feature = "s3")]
    #[error(transparent)]
    Store(#[from] crate::store::s3::StoreError),
}

impl MirrorError {
    /// What the operator can do about it.
    pub fn hints(&self) -> Vec<String> {
        match self {
            MirrorError::Cache { .. } => vec![
                "fill it first (`hubcache download …` or `hubcache cache add-folder …`), or pass --cache-dir".into(),
            ],
            MirrorError::Listen { .. } => vec!["choose another --addr (port 0 picks a free one)".into()],
            MirrorError::Upstream(e) => e.hints(),
            #[cfg(feature = "s3")]
            MirrorError::Store(e) => e.hints(),
        }
    }
}
