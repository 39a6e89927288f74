//! What to verify: the repo folders and revisions a [`VerifySelection`] names.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cache::error::CacheError;
use crate::cache::layout::{parse_folder_name, CachedRepoType, RepoLayout};
use crate::cache::lookup;
use crate::repo::Revision;

/// Which part of the cache to verify.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifySelection {
    /// One repo (type and id); `None` verifies every repo.
    pub repo: Option<(CachedRepoType, String)>,
    /// One revision of that repo (a ref or a commit); `None` verifies all of them.
    pub revision: Option<String>,
}

/// One selected revision.
pub(super) struct RevisionToCheck {
    pub(super) repo_type: CachedRepoType,
    pub(super) repo_id: String,
    pub(super) commit: String,
    pub(super) snapshot: PathBuf,
}

/// Resolves the selection to repo folders and revisions.
pub(super) fn select(cache: &Path, sel: &VerifySelection) -> Result<Vec<(PathBuf, Vec<RevisionToCheck>)>, CacheError> {
    let folders: Vec<PathBuf> = match &sel.repo {
        Some((t, id)) => {
            let folder = cache.join(t.folder_name(id));
            if !RepoLayout::from_folder(&folder).snapshots_dir().is_dir() {
                return Err(CacheError::RepoNotCached {
                    repo: format!("{t}/{id}"),
                    cache: cache.to_path_buf(),
                });
            }
            vec![folder]
        }
        None => {
            let mut v: Vec<PathBuf> = fs::read_dir(cache)
                .map_err(|e| CacheError::io("read", cache, e))?
                .flatten()
                .filter(|e| {
                    parse_folder_name(&e.file_name().to_string_lossy()).is_some()
                        && RepoLayout::from_folder(&e.path()).snapshots_dir().is_dir()
                })
                .map(|e| e.path())
                .collect();
            v.sort();
            v
        }
    };
    let mut out = Vec::new();
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((repo_type, repo_id)) = parse_folder_name(&name) else {
            continue;
        };
        let snapshots = RepoLayout::from_folder(&folder).snapshots_dir();
        let commits: Vec<String> = match &sel.revision {
            Some(rev) => vec![
                resolve_revision(&folder, rev).ok_or_else(|| CacheError::RevisionNotCached {
                    repo: format!("{repo_type}/{repo_id}"),
                    revision: rev.clone(),
                })?,
            ],
            None => {
                let mut v: Vec<String> = fs::read_dir(&snapshots)
                    .map_err(|e| CacheError::io("read", &snapshots, e))?
                    .flatten()
                    .filter(|e| fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            }
        };
        let revisions = commits
            .into_iter()
            .map(|commit| RevisionToCheck {
                repo_type,
                repo_id: repo_id.clone(),
                snapshot: snapshots.join(&commit),
                commit,
            })
            .collect();
        out.push((folder, revisions));
    }
    Ok(out)
}

/// A ref (content trimmed, as `hf cache verify` reads it) or a commit with a snapshot folder.
fn resolve_revision(folder: &Path, rev: &str) -> Option<String> {
    let layout = RepoLayout::from_folder(folder);
    let commit = lookup::resolve_commit(&layout, &Revision::new(rev).ok()?)?;
    layout.snapshot_dir(&commit).is_dir().then(|| commit.to_string())
}
