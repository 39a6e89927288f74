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
    /// The cache cannot give what an export needs.
    #[error("cannot export: {0}")]
    Export(String),
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
            DeployError::Export(_) => {
                vec!["download what is missing first (`hubcache sync` or `hubcache download`)".into()]
            }
            DeployError::Io { .. } => vec![],
        }
    }
}
