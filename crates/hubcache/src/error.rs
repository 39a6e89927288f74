//! The library's error type: what failed, for which repo, revision and file, and what to do.

use std::io;
use std::path::PathBuf;

use crate::hub::transfer::TransferError;
use crate::hub::HubError;
use crate::lock::LockError;
use crate::repo::NameError;
use crate::units::format_size;

/// Why a file could not be served from the cache alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// `HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE` is set.
    Env,
    /// The call asked for local files only (`--offline`, `local_files_only`).
    LocalOnly,
}

/// What went wrong, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A repo id, revision or path was rejected (from the user or from a server).
    #[error(transparent)]
    Name(#[from] NameError),
    /// Offline, and the cache does not have it.
    #[error("{what} of {repo} at revision `{revision}` is not in the cache ({cache}) and the network is off ({})", match .reason { OfflineReason::Env => "offline mode is set in the environment", OfflineReason::LocalOnly => "local files only was requested" })]
    Offline {
        /// Repo (with type).
        repo: String,
        /// Requested revision.
        revision: String,
        /// `file <path>` or `snapshot`.
        what: String,
        /// The cache folder searched.
        cache: PathBuf,
        /// Which switch made us offline.
        reason: OfflineReason,
    },
    /// The Hub could not be reached (or failed) and the cache does not have it.
    #[error("{what} of {repo} at revision `{revision}` is not in the cache and the Hub could not be reached")]
    Unreachable {
        /// Repo (with type).
        repo: String,
        /// Requested revision.
        revision: String,
        /// `file <path>` or `snapshot`.
        what: String,
        /// The network failure.
        #[source]
        source: HubError,
    },
    /// The Hub answered with an error (not found, gated, unauthorised, …).
    #[error("cannot get {what} of {repo} at revision `{revision}`")]
    Hub {
        /// Repo (with type).
        repo: String,
        /// Requested revision.
        revision: String,
        /// `file <path>` or `snapshot`.
        what: String,
        /// The Hub's answer.
        #[source]
        source: HubError,
    },
    /// A transfer failed or delivered wrong bytes; nothing was placed in the cache.
    #[error("download of {what} of {repo} failed; nothing was written to the cache")]
    Transfer {
        /// Repo (with type).
        repo: String,
        /// `file <path>`.
        what: String,
        /// The cause.
        #[source]
        source: TransferError,
    },
    /// The file is larger than the free space where it would be written; nothing was fetched.
    #[error("not enough disk space for {what} of {repo}: it needs {needed} bytes ({}), {available} bytes ({}) are free in {}", format_size(*.needed), format_size(*.available), .dir.display())]
    InsufficientSpace {
        /// Repo (with type).
        repo: String,
        /// `file <path>`.
        what: String,
        /// The folder the file would be written to.
        dir: PathBuf,
        /// Bytes still to write.
        needed: u64,
        /// Bytes free for this user on that file system.
        available: u64,
    },
    /// The disk filled up in the middle of a transfer; the partial file was removed.
    #[error("the disk is full: download of {what} of {repo} into {} stopped{}; the partial file was removed and nothing was written to the cache", .dir.display(), space_detail(*.needed, *.available))]
    DiskFull {
        /// Repo (with type).
        repo: String,
        /// `file <path>`.
        what: String,
        /// The folder being written to.
        dir: PathBuf,
        /// Size of the whole file, when announced.
        needed: Option<u64>,
        /// Bytes free after the partial file was removed, when known.
        available: Option<u64>,
        /// The write error (ENOSPC or EDQUOT).
        #[source]
        source: io::Error,
    },
    /// An offline snapshot is known (from its tree listing) to miss files.
    #[error("the cached snapshot {snapshot} of {repo} is incomplete: missing {}", summarize(.missing))]
    IncompleteSnapshot {
        /// Repo (with type).
        repo: String,
        /// Snapshot folder.
        snapshot: PathBuf,
        /// Missing files (all of them).
        missing: Vec<String>,
    },
    /// A lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A cache file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The server's answer makes no sense (bad commit, bad etag, bad path).
    #[error("the server sent an invalid {what}: {detail}")]
    BadResponse {
        /// What was invalid.
        what: &'static str,
        /// Details.
        detail: String,
    },
}

fn space_detail(needed: Option<u64>, available: Option<u64>) -> String {
    match (needed, available) {
        (Some(n), Some(a)) => format!(
            " (the file needs {n} bytes ({}), {a} bytes ({}) are free)",
            format_size(n),
            format_size(a)
        ),
        (Some(n), None) => format!(" (the file needs {n} bytes ({}))", format_size(n)),
        (None, Some(a)) => format!(" ({a} bytes ({}) are free)", format_size(a)),
        (None, None) => String::new(),
    }
}

fn summarize(missing: &[String]) -> String {
    let shown: Vec<&str> = missing.iter().take(3).map(String::as_str).collect();
    let more = missing.len().saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl Error {
    /// An I/O error with its action and path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The Hub error underneath, if any.
    pub fn hub_error(&self) -> Option<&HubError> {
        match self {
            Error::Hub { source, .. } | Error::Unreachable { source, .. } => Some(source),
            Error::Transfer { source, .. } => source.hub_error(),
            _ => None,
        }
    }

    /// The repo, revision or file does not exist (as far as the server or the cache knows).
    pub fn is_not_found(&self) -> bool {
        self.hub_error().is_some_and(HubError::is_not_found)
    }

    /// The failure came from being offline (by setting or by request).
    pub fn is_offline(&self) -> bool {
        matches!(self, Error::Offline { .. })
    }

    /// Trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
            || self.hub_error().is_some_and(HubError::is_transient)
            || matches!(self, Error::Lock(LockError::Timeout { .. }))
    }

    /// What the user can do about it, one line each.
    pub fn hints(&self) -> Vec<String> {
        let mut hints = Vec::new();
        match self {
            Error::Offline { reason, .. } => {
                hints.push("download it once while online, e.g. `hubcache download <repo> <file>`".into());
                match reason {
                    OfflineReason::Env => {
                        hints.push("or unset HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE (or set HF_HUB_OFFLINE=0)".into())
                    }
                    OfflineReason::LocalOnly => hints.push("or drop --offline to allow network access".into()),
                }
                hints.push("check HF_HUB_CACHE / --cache-dir points at the cache you filled".into());
            }
            Error::Unreachable { .. } => {
                hints.push("check your connection and HF_ENDPOINT (`hubcache env` shows it)".into());
                hints.push("to use only the cache, set HF_HUB_OFFLINE=1 after downloading once".into());
            }
            Error::IncompleteSnapshot { .. } => {
                hints.push("go online and run the same download again to fetch the missing files".into());
            }
            Error::InsufficientSpace {
                dir, needed, available, ..
            } => {
                hints.push(format!(
                    "free at least {} on the file system of {} (e.g. `hubcache cache prune`, `hubcache cache rm`)",
                    format_size(needed.saturating_sub(*available)),
                    dir.display()
                ));
                hints.push("or put the cache on a larger disk: --cache-dir DIR or HF_HUB_CACHE=DIR".into());
            }
            Error::DiskFull { dir, .. } => {
                hints.push(format!(
                    "free space on the file system of {} (e.g. `hubcache cache prune`, `hubcache cache rm`), then run the same command again",
                    dir.display()
                ));
                hints.push("or put the cache on a larger disk: --cache-dir DIR or HF_HUB_CACHE=DIR".into());
            }
            Error::Transfer {
                source: TransferError::CutOff { kept: true, .. },
                ..
            } => {
                hints.push(
                    "run the same command again: a cut-off download resumes from the bytes already on disk".into(),
                );
            }
            Error::Transfer {
                source: TransferError::CutOff {
                    range_ignored: true, ..
                },
                ..
            } => {
                hints.push(
                    "the server keeps cutting the transfer off and ignores Range requests, so it cannot resume; \
                     try again later, and report it to the server's operator if it persists"
                        .into(),
                );
            }
            Error::Transfer { source, .. } if source.hub_error().is_some_and(HubError::is_transient) => {
                hints.push("check your connection, then run the same command again".into());
            }
            Error::Transfer {
                source: TransferError::Hash { .. } | TransferError::Size { .. },
                ..
            } => {
                hints.push("the server sent corrupt or truncated data; retry, and report it if it persists".into());
            }
            Error::Lock(e) => hints.extend(e.hints()),
            Error::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                hints.push("check the cache folder's permissions, or choose another with --cache-dir".into());
            }
            _ => {}
        }
        if let Some(h) = self.hub_error() {
            match h {
                HubError::RepoNotFound { .. } => {
                    hints.push("check the repo id and --repo-type (model, dataset, space)".into());
                    hints.push("for a private repo, log in: set HF_TOKEN or pass --token".into());
                }
                HubError::Gated { .. } => {
                    hints.push(
                        "accept the licence on the repo's page, then pass a token with access (HF_TOKEN or --token)"
                            .into(),
                    );
                }
                HubError::RevisionNotFound { .. } => {
                    hints.push("check the revision: a branch, a tag, refs/pr/N or a full 40-character commit".into());
                }
                HubError::EntryNotFound { .. } => {
                    hints.push("check the file path (case matters) and the revision".into());
                }
                HubError::Unauthorized { .. } => {
                    hints.push("your token was rejected: create a new one and set HF_TOKEN".into());
                }
                HubError::RateLimited { .. } => hints.push("wait a moment and try again".into()),
                HubError::NotAHub { .. } => hints.push("HF_ENDPOINT must point at a Hub-compatible server".into()),
                HubError::TooManyRedirects { .. }
                | HubError::RedirectLoop { .. }
                | HubError::BadRedirect { .. }
                | HubError::Malformed { .. }
                | HubError::BadLength { .. }
                | HubError::BodyTooLarge { .. }
                | HubError::TooManyEntries { .. }
                | HubError::EndlessPagination { .. } => hints.push(
                    "the server (HF_ENDPOINT or a server it redirects to) answers in a way no Hub does; \
                     retrying will not help: check HF_ENDPOINT and any proxy, or report it to the server's operator"
                        .into(),
                ),
                HubError::Deadline { .. } | HubError::TooSlow { .. } => hints.push(
                    "the server sends its answer too slowly; try again later, or raise HF_HUB_ETAG_TIMEOUT \
                     (listings) or HF_HUB_DOWNLOAD_TIMEOUT (transfers)"
                        .into(),
                ),
                HubError::InvalidUrl { .. } => hints.push("check HF_ENDPOINT: it must be an http(s) URL".into()),
                _ => {}
            }
        }
        hints
    }
}

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
