//! Reproducible deployments: a manifest (`hubcache.toml`), a lock (`hubcache.lock`) pinning
//! every repo to a commit and its exact files, `sync` to make a cache match the lock, and
//! self-verifying bundles to carry a cache across an air gap.
//!
//! Invariants: nothing from a lock or a bundle becomes a path before it passes the same
//! validation as user input; a bundle's blobs become visible only after every one of them has
//! been verified against its hash; refs are written last, atomically.

pub mod bundle;
pub mod lockfile;
pub mod manifest;
pub mod resolve;
pub mod sync;

use std::path::PathBuf;

pub use lockfile::{LockedFile, LockedRepo, Lockfile};
pub use manifest::{Manifest, ManifestRepo};

/// What went wrong in a deployment step.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The manifest is malformed or names something invalid.
    #[error("invalid manifest {path}: {detail}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The lock is malformed or names something invalid.
    #[error("invalid lock file {path}: {detail}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The lock does not match the manifest.
    #[error("the lock file is out of date: {}", .problems.join("; "))]
    Stale {
        /// Each mismatch.
        problems: Vec<String>,
    },
    /// Resolving or downloading failed.
    #[error(transparent)]
    Hub(#[from] crate::Error),
    /// Files the lock names are missing from the cache or do not match their hash.
    #[error("the cache does not match the lock: {} missing, {} corrupt ({})", .missing.len(), .corrupt.len(), summarize(.missing, .corrupt))]
    Mismatch {
        /// `repo: path` of missing files.
        missing: Vec<String>,
        /// `repo: path` of files whose content does not hash to their blob id.
        corrupt: Vec<String>,
    },
    /// A bundle is malformed, tampered with or truncated.
    #[error("refusing bundle {path}: {detail}; nothing was imported")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An export was asked for without naming anything to export.
    #[error("cannot export: name at least one REPO[@REV], or --lock FILE")]
    NothingToExport,
    /// An export names a revision the cache does not hold.
    #[error("cannot export: {repo} @{revision} is not in the cache")]
    RevisionNotCached {
        /// The repo.
        repo: String,
        /// The revision asked for.
        revision: String,
    },
    /// An export names a snapshot the cache does not hold.
    #[error("cannot export: {repo} has no cached snapshot {commit}")]
    SnapshotNotCached {
        /// The repo.
        repo: String,
        /// The commit.
        commit: String,
    },
    /// An export names a file the cache does not hold.
    #[error("cannot export: {path} of {repo} is not in the cache")]
    FileNotCached {
        /// The repo.
        repo: String,
        /// The file in the repo.
        path: String,
    },
    /// A snapshot entry cannot travel in a bundle (not a repo path, or no valid blob name).
    #[error("cannot export {}: {reason}", .path.display())]
    BadSnapshotEntry {
        /// The entry on disk.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A cached file does not hash to its blob name: the cache is corrupt.
    #[error("cannot export: {} does not match its blob name {etag}", .path.display())]
    CorruptBlob {
        /// The file read.
        path: PathBuf,
        /// The blob name it should hash to.
        etag: String,
    },
    /// A cache lock could not be taken.
    #[error(transparent)]
    CacheLock(#[from] crate::lock::LockError),
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn summarize(missing: &[String], corrupt: &[String]) -> String {
    let all: Vec<&str> = missing.iter().chain(corrupt).map(String::as_str).take(3).collect();
    let more = (missing.len() + corrupt.len()).saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", all.join(", "))
    } else {
        all.join(", ")
    }
}

impl DeployError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> DeployError {
        DeployError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// What the user can do about it.
    pub fn hints(&self) -> Vec<String> {
        match self {
            DeployError::Manifest { .. } => {
                vec!["each [[repo]] needs `id`; optional: type, revision, include, exclude".into()]
            }
            DeployError::Lock { .. } => vec!["regenerate it with `hubcache lock`".into()],
            DeployError::Stale { .. } => vec!["run `hubcache lock` to update the lock, then commit it".into()],
            DeployError::Hub(e) => e.hints(),
            DeployError::Mismatch { .. } => vec!["run `hubcache sync` online to fetch and repair them".into()],
            DeployError::Bundle { .. } => {
                vec!["the bundle is damaged or incomplete: copy it again and compare its size with the original".into()]
            }
            DeployError::NothingToExport => vec!["e.g. `hubcache export org/name@main -o models.tar`".into()],
            DeployError::SnapshotNotCached { .. }
            | DeployError::RevisionNotCached { .. }
            | DeployError::FileNotCached { .. } => {
                vec!["download what is missing first (`hubcache sync` or `hubcache download`)".into()]
            }
            DeployError::BadSnapshotEntry { .. } => {
                vec!["`hubcache cache verify` reports the entries that are not what a download makes".into()]
            }
            DeployError::CorruptBlob { .. } => {
                vec!["run `hubcache cache verify` to list corrupt files, then download them again with --force".into()]
            }
            DeployError::CacheLock(e) => e.hints(),
            DeployError::Io { .. } => vec![],
        }
    }
}
