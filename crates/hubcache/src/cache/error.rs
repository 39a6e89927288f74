//! The error type of cache management (`scan`, `delete`, `verify`): which path, which repo or
//! revision, and what the user can do about it ([`CacheError::hints`]).
//!
//! Problems *inside* a cache (a broken link, a stray file, a corrupt blob) are not errors:
//! they are reported as typed warnings or verification findings and never stop a scan.

use std::io;
use std::path::PathBuf;

use crate::lock::LockError;

/// Why a cache management operation could not run.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache folder does not exist.
    #[error("cache directory not found: {path}")]
    NotFound {
        /// The folder looked for.
        path: PathBuf,
    },
    /// The cache path exists but is not a folder.
    #[error("the cache path is not a directory: {path}")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A file or folder of the cache could not be read, written or removed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file name cannot be a path in a repo.
    #[error("{} cannot be a file of a repo: {source}", .path.display())]
    Name {
        /// The file.
        path: PathBuf,
        /// Why the name is refused.
        source: crate::repo::NameError,
    },
    /// A lock of the cache could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The repo has no folder in the cache.
    #[error("{repo} is not in the cache ({cache})")]
    RepoNotCached {
        /// `type/id` of the repo.
        repo: String,
        /// The cache folder searched.
        cache: PathBuf,
    },
    /// The repo is cached but not at that revision.
    #[error("revision `{revision}` of {repo} is not in the cache")]
    RevisionNotCached {
        /// `type/id` of the repo.
        repo: String,
        /// The revision asked for.
        revision: String,
    },
    /// A command-line target could not be understood.
    #[error("invalid target `{target}`: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// None of the targets names anything in the cache.
    #[error("nothing in the cache matches {}", .targets.join(", "))]
    NothingMatched {
        /// The targets as given.
        targets: Vec<String>,
    },
    /// The Hub's file listing could not be fetched.
    #[error("cannot list the files of {repo} at {revision} on the Hub")]
    Remote {
        /// `type/id` of the repo.
        repo: String,
        /// The commit listed.
        revision: String,
        /// The Hub's answer (the cache layer does not know the Hub client's error type).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The repo cannot be compared with the Hub (its folder name is not a valid repo id or type).
    #[error("{repo} cannot be compared with the Hub: {reason}")]
    RemoteUnsupported {
        /// `type/id` of the repo.
        repo: String,
        /// Why.
        reason: String,
    },
}

impl CacheError {
    /// An I/O error with its action and path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> CacheError {
        CacheError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// What the user can do about it, one line each.
    pub fn hints(&self) -> Vec<String> {
        match self {
            CacheError::NotFound { .. } | CacheError::NotADirectory { .. } => vec![
                "pass the cache folder with --cache-dir, or set HF_HUB_CACHE / HF_HOME".into(),
                "`hubcache env` shows the folder in use".into(),
            ],
            CacheError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                vec!["check the cache folder's permissions (you may need to run as its owner)".into()]
            }
            CacheError::Io { .. } => Vec::new(),
            CacheError::Name { .. } => vec!["rename the file, or move it out of the folder".into()],
            CacheError::Lock(e) => e.hints(),
            CacheError::RepoNotCached { .. } | CacheError::NothingMatched { .. } => vec![
                "`hubcache cache ls` lists the cached repos; `--revisions` shows their commits".into(),
                "pass --repo-type dataset (or space) for non-model repos".into(),
                "a repo with inconsistencies is left out: `hubcache cache ls --show-warnings` names it".into(),
            ],
            CacheError::RevisionNotCached { .. } => {
                vec!["`hubcache cache ls --revisions` lists the cached commits and their refs".into()]
            }
            CacheError::InvalidTarget { .. } => {
                vec!["a target is ORG/NAME, ORG/NAME@REVISION (a ref or a commit) or a 40-character commit hash".into()]
            }
            CacheError::Remote { .. } => vec![
                "check your connection, HF_ENDPOINT and token (`hubcache env`)".into(),
                "drop --remote to verify against the blob names only, offline".into(),
            ],
            CacheError::RemoteUnsupported { .. } => {
                vec!["drop --remote to verify against the blob names only, offline".into()]
            }
        }
    }
}
