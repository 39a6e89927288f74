//! The bundle's `manifest.json`: its format, and the validation of every name in it before
//! anything touches the disk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cache::tree::TreeFile;
use crate::digest::DigestKind;
use crate::repo::{CommitHash, Repo, RepoId, RepoPath, RepoType, Revision};

/// Bundle format name and version in `manifest.json`.
pub(super) const FORMAT: &str = "hubcache-bundle";
pub(super) const VERSION: u32 = 1;

/// One blob in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: String,
}

/// One repo in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoEntry {
    /// Repo id.
    pub repo_id: String,
    /// `model`, `dataset` or `space`.
    pub repo_type: String,
    /// Ref name → commit.
    pub refs: BTreeMap<String, String>,
    /// Commit → (path → etag).
    pub snapshots: BTreeMap<String, BTreeMap<String, String>>,
    /// Commit → listing, when the cache had one.
    #[serde(default)]
    pub trees: BTreeMap<String, BTreeMap<String, TreeFile>>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Always `hubcache-bundle`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Etag → blob info.
    pub blobs: BTreeMap<String, BlobInfo>,
    /// Repos.
    pub repos: Vec<RepoEntry>,
}

/// A validated manifest: every name checked before anything touches the disk.
pub(super) struct Plan {
    pub(super) repos: Vec<(Repo, RepoEntry)>,
}

/// Checks the format, every name and every cross-reference of a manifest.
pub(super) fn validate(m: &BundleManifest) -> Result<Plan, String> {
    if m.format != FORMAT || m.version != VERSION {
        return Err(format!("not a {FORMAT} v{VERSION} bundle"));
    }
    for (etag, info) in &m.blobs {
        if DigestKind::for_etag(etag).is_none() {
            return Err(format!("invalid blob name `{}`", etag.escape_debug()));
        }
        if DigestKind::for_etag(&info.sha256) != Some(DigestKind::Sha256) {
            return Err(format!("invalid sha256 for blob {etag}"));
        }
    }
    let mut repos = Vec::new();
    for r in &m.repos {
        let repo_type: RepoType = r.repo_type.parse().map_err(|e: crate::NameError| e.to_string())?;
        let repo = Repo::new(RepoId::new(&r.repo_id).map_err(|e| e.to_string())?, repo_type);
        for (name, commit) in &r.refs {
            Revision::new(name).map_err(|e| e.to_string())?;
            CommitHash::new(commit).map_err(|e| e.to_string())?;
            if !r.snapshots.contains_key(commit) {
                return Err(format!("ref {name} of {repo} points at a commit the bundle lacks"));
            }
        }
        for (commit, files) in &r.snapshots {
            CommitHash::new(commit).map_err(|e| e.to_string())?;
            for (path, etag) in files {
                RepoPath::new(path).map_err(|e| e.to_string())?;
                if !m.blobs.contains_key(etag) {
                    return Err(format!("{repo}: {path} names a blob the bundle lacks"));
                }
            }
        }
        for (commit, listing) in &r.trees {
            CommitHash::new(commit).map_err(|e| e.to_string())?;
            for p in listing.keys() {
                RepoPath::new(p).map_err(|e| e.to_string())?;
            }
        }
        repos.push((repo, r.clone()));
    }
    Ok(Plan { repos })
}
