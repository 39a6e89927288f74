//! The snapshot pipeline (`snapshot_download`):
//!
//! 1. the commit: the revision itself when it is a commit, else one `revision` API call;
//! 2. offline (or the Hub unreachable) → `refs/` → snapshot folder, checked for completeness
//!    against `trees/<commit>.json`;
//! 3. the file list: `trees/<commit>.json`, else the recursive tree API (then cached);
//! 4. include/exclude filter; ref written;
//! 5. every selected file not yet in the snapshot is fetched in parallel, straight from the
//!    listing's etag and size (no per-file HEAD), each verified against its hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fanout::{fan_out, memory_weight};
use super::file::{cached_commit, KnownFile};
use super::patterns::{Filter, Selection};
use super::{Hub, SnapshotRequest};
use crate::cache::{lookup, tree};
use crate::error::{Error, OfflineReason, Result};
use crate::hub::{url, HubError, TreeEntry};
use crate::repo::{is_valid_etag, CommitHash, Repo, RepoPath, Revision};

enum ListingError {
    Hub(HubError),
    Other(Error),
}

impl Hub {
    /// Downloads a snapshot (or its filtered part) and returns the snapshot folder
    /// (or the local dir).
    pub async fn snapshot(&self, req: &SnapshotRequest) -> Result<PathBuf> {
        Ok(self.snapshot_run(req, true).await?.0)
    }

    /// [`Hub::snapshot`], also telling which files the include/exclude filters selected: from
    /// the commit's listing (the one the snapshot fetched, or `trees/<commit>.json` offline),
    /// else, offline without a listing, from the files the folder holds. An empty selection
    /// is not an error here (as in Python); front ends may make it one. Unlike
    /// [`Hub::snapshot`], an empty selection writes nothing (no ref, no empty snapshot folder).
    pub async fn snapshot_selection(&self, req: &SnapshotRequest) -> Result<(PathBuf, Selection)> {
        let (path, selection) = self.snapshot_run(req, false).await?;
        let selection = match selection {
            Some(s) => s,
            None => Filter::new(&req.include, &req.exclude).select(&folder_files(&path)),
        };
        Ok((path, selection))
    }

    /// The snapshot pipeline; the selection is `None` when no listing was at hand (offline).
    /// With `write_empty` false, an empty selection returns before anything is written.
    async fn snapshot_run(&self, req: &SnapshotRequest, write_empty: bool) -> Result<(PathBuf, Option<Selection>)> {
        let filter = Filter::new(&req.include, &req.exclude);
        let offline = self.offline_reason(req.local_only);
        let mut commit = req.revision.commit().cloned();
        let mut api_error: Option<HubError> = None;
        if commit.is_none() && offline.is_none() {
            // With a cached commit to fall back on, ask once (as for a file's HEAD); without
            // one, be patient.
            let policy = if cached_commit(self, &req.repo, &req.revision).is_some() {
                crate::hub::RetryPolicy::none()
            } else {
                self.client.config().retry
            };
            match self
                .client
                .revision_commit_with(&req.repo, req.revision.as_str(), policy)
                .await
            {
                Ok(sha) => commit = Some(parse_commit(&sha)?),
                Err(e @ HubError::RevisionNotFound { .. }) => return Err(self.snapshot_hub_error(req, e)),
                Err(e) => api_error = Some(e),
            }
        }
        let listing = match (&commit, offline) {
            (Some(c), None) => match self.file_listing(req, c).await {
                Ok(l) => Some(l),
                Err(Error::Hub { source, .. }) if !matches!(source, HubError::RevisionNotFound { .. }) => {
                    api_error = Some(source);
                    None
                }
                Err(e) => return Err(e),
            },
            _ => None,
        };
        let (Some(commit), Some(listing)) = (commit.clone(), listing) else {
            return self.offline_snapshot(req, &filter, commit, offline, api_error);
        };
        let selection = filter.select(listing.keys());
        let selected: Vec<(RepoPath, tree::TreeFile)> =
            listing.into_iter().filter(|(p, _)| filter.keeps(p.as_str())).collect();
        let target = match &req.local_dir {
            Some(dir) => dir.clone(),
            None => self.cache.repo(&req.repo).snapshot_dir(&commit),
        };
        if !write_empty && selection.selected.is_empty() {
            return Ok((target, Some(selection)));
        }
        let layout = self.cache.repo(&req.repo);
        let moved_ref = match &req.revision {
            Revision::Ref(name)
                if req.local_dir.is_none() && lookup::read_ref(&layout, name).as_ref() != Some(&commit) =>
            {
                Some(name.as_str())
            }
            _ => None,
        };
        // Sizes of the files the cache still lacks (none counted for a local dir).
        let missing: Vec<u64> = match req.local_dir {
            Some(_) => Vec::new(),
            None => selected
                .iter()
                .filter(|(p, _)| req.force || !crate::fs::is_file(&layout.snapshot_file(&commit, p)))
                .map(|(_, f)| f.content_size())
                .collect(),
        };
        let writes = !missing.is_empty();
        // A snapshot pinned to a commit has no ref while it fills: hold a writer (the clean-up
        // lock shared) for the whole snapshot so `cache prune` cannot take it for a detached
        // revision mid-way. A ref alone is best effort (a read-only cache still serves).
        let writer = match (writes, moved_ref) {
            (true, _) => Some(self.writer().await?),
            (false, Some(_)) => self.writer().await.ok(),
            (false, None) => None,
        };
        if let (Some(w), Some(name)) = (&writer, moved_ref) {
            self.best_effort("write", &layout.ref_file(name), w.write_ref(&layout, name, &commit));
        }
        if writes {
            self.check_snapshot_space(req, &commit, &selected)?;
            self.reporter.batch_started(missing.len(), missing.iter().sum());
        }
        let ranged = self.client.config().ranged;
        let weight = |(_, file): &(RepoPath, tree::TreeFile)| memory_weight(Some(file.content_size()), &ranged);
        let results: Vec<Result<PathBuf>> = fan_out(selected, req.max_workers, weight, |(path, file)| {
            let commit = commit.clone();
            async move {
                let known = KnownFile {
                    location: url::resolve_url(self.client.endpoint(), &req.repo, commit.as_str(), &path),
                    etag: file.etag().to_string(),
                    size: Some(file.content_size()),
                    xet_hash: file.xet_hash.clone(),
                    commit,
                };
                match &req.local_dir {
                    Some(dir) => {
                        let meta = local_metadata(dir, &path);
                        if !req.force
                            && meta.as_ref().is_some_and(|m| m.etag == known.etag)
                            && dir.join(path.as_str()).is_file()
                        {
                            return Ok(dir.join(path.as_str()));
                        }
                        self.fetch_known_local(&req.repo, &path, dir, &known, req.force, meta)
                            .await
                    }
                    None => self.fetch_known(&req.repo, None, &path, &known, req.force).await,
                }
            }
        })
        .await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            return Err(err);
        }
        if req.local_dir.is_none() && !target.is_dir() {
            // Nothing selected: the commit's folder still marks the snapshot as present.
            let writer = match writer {
                Some(w) => w,
                None => self.writer().await?,
            };
            writer
                .create_snapshot_dir(&layout, &commit)
                .map_err(|e| Error::io("create", &target, e))?;
        }
        Ok((target, Some(selection)))
    }

    /// The commit's files: from `trees/<commit>.json`, else the tree API (then cached).
    async fn file_listing(
        &self,
        req: &SnapshotRequest,
        commit: &CommitHash,
    ) -> Result<BTreeMap<RepoPath, tree::TreeFile>> {
        self.listing_at(&req.repo, commit, req.local_dir.as_deref())
            .await
            .map_err(|e| match e {
                ListingError::Hub(source) => self.snapshot_hub_error(req, source),
                ListingError::Other(e) => e,
            })
    }

    /// Every file of a commit: `trees/<commit>.json`, else the tree API (then cached there).
    pub async fn commit_listing(&self, repo: &Repo, commit: &CommitHash) -> Result<BTreeMap<RepoPath, tree::TreeFile>> {
        self.listing_at(repo, commit, None).await.map_err(|e| match e {
            ListingError::Hub(source) => Error::Hub {
                repo: repo.to_string(),
                revision: commit.to_string(),
                what: "file listing".into(),
                source,
            },
            ListingError::Other(e) => e,
        })
    }

    /// The listing from `trees/<commit>.json` (of the cache, or of `local_dir`'s metadata
    /// folder), else from the tree API, then stored there best-effort.
    async fn listing_at(
        &self,
        repo: &Repo,
        commit: &CommitHash,
        local_dir: Option<&Path>,
    ) -> Result<BTreeMap<RepoPath, tree::TreeFile>, ListingError> {
        let layout = self.cache.repo(repo);
        let tree_path = match local_dir {
            Some(dir) => dir.join(".cache/huggingface/trees").join(format!("{commit}.json")),
            None => layout.tree_file(commit),
        };
        if let Some(listing) = tree::read(&tree_path) {
            return Ok(listing);
        }
        let entries = self
            .client
            .list_tree(repo, commit.as_str())
            .await
            .map_err(ListingError::Hub)?;
        let listing = listing_from_entries(entries).map_err(ListingError::Other)?;
        let written = match local_dir {
            Some(_) => tree::write(&tree_path, &listing),
            None => match self.writer().await {
                Ok(w) => w.write_tree(&layout, commit, &listing),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
        };
        self.best_effort("write", &tree_path, written);
        Ok(listing)
    }

    /// Fails early when the files still to fetch do not fit on the cache's file system together
    /// (each file is also checked on its own just before its transfer).
    fn check_snapshot_space(
        &self,
        req: &SnapshotRequest,
        commit: &CommitHash,
        selected: &[(RepoPath, tree::TreeFile)],
    ) -> Result<()> {
        let layout = self.cache.repo(&req.repo);
        let blobs = layout.blobs_dir();
        let mut etags = std::collections::BTreeSet::new();
        let missing: Vec<&tree::TreeFile> = selected
            .iter()
            .filter(|(p, _)| req.force || !crate::fs::is_file(&layout.snapshot_file(commit, p)))
            .map(|(_, f)| f)
            .filter(|f| etags.insert(f.etag()) && (req.force || !blobs.join(f.etag()).is_file()))
            .collect();
        let needed: u64 = missing.iter().map(|f| f.content_size()).sum();
        // The nearest folder that exists tells which file system the cache lands on.
        let mut probe = blobs.clone();
        while !probe.is_dir() {
            match probe.parent() {
                Some(parent) => probe = parent.to_path_buf(),
                None => return Ok(()),
            }
        }
        match crate::fs::available_space(&probe) {
            Some(available) if needed > available => Err(Error::InsufficientSpace {
                repo: req.repo.to_string(),
                what: format!("the snapshot ({} files to fetch)", missing.len()),
                dir: probe,
                needed,
                available,
            }),
            _ => Ok(()),
        }
    }

    fn snapshot_hub_error(&self, req: &SnapshotRequest, source: HubError) -> Error {
        Error::Hub {
            repo: req.repo.to_string(),
            revision: req.revision.to_string(),
            what: "snapshot".into(),
            source,
        }
    }

    /// The offline branch: the cached snapshot if there is one (and it is complete).
    fn offline_snapshot(
        &self,
        req: &SnapshotRequest,
        filter: &Filter,
        commit: Option<CommitHash>,
        offline: Option<OfflineReason>,
        api_error: Option<HubError>,
    ) -> Result<(PathBuf, Option<Selection>)> {
        if let Some(dir) = &req.local_dir {
            if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
                return Ok((dir.clone(), None));
            }
        } else {
            let commit = commit.or_else(|| cached_commit(self, &req.repo, &req.revision));
            if let Some(commit) = commit {
                let layout = self.cache.repo(&req.repo);
                let dir = layout.snapshot_dir(&commit);
                if dir.is_dir() {
                    let listing = tree::read(&layout.tree_file(&commit));
                    if let Some(listing) = &listing {
                        let missing: Vec<String> = listing
                            .keys()
                            .filter(|p| filter.keeps(p.as_str()))
                            .filter(|p| !crate::fs::is_file(&layout.snapshot_file(&commit, p)))
                            .map(|p| p.to_string())
                            .collect();
                        if !missing.is_empty() {
                            return Err(Error::IncompleteSnapshot {
                                repo: req.repo.to_string(),
                                snapshot: dir,
                                missing,
                            });
                        }
                    }
                    if let Some(e) = &api_error {
                        self.reporter
                            .warning(&format!("using the cached snapshot of {}: {e}", req.repo));
                    }
                    return Ok((dir, listing.map(|l| filter.select(l.keys()))));
                }
            }
        }
        let revision = req.revision.to_string();
        let repo = req.repo.to_string();
        Err(match (offline, api_error) {
            (Some(reason), _) => Error::Offline {
                repo,
                revision,
                what: "snapshot".into(),
                cache: req.local_dir.clone().unwrap_or_else(|| self.cache.root().to_path_buf()),
                reason,
            },
            (None, Some(source)) if source.is_transient() => Error::Unreachable {
                repo,
                revision,
                what: "snapshot".into(),
                source,
            },
            (None, Some(source)) => Error::Hub {
                repo,
                revision,
                what: "snapshot".into(),
                source,
            },
            (None, None) => Error::BadResponse {
                what: "revision",
                detail: "no commit could be determined".into(),
            },
        })
    }
}

fn local_metadata(dir: &std::path::Path, path: &RepoPath) -> Option<super::local_dir::LocalMetadata> {
    let paths = super::local_dir::local_paths(dir, path);
    std::fs::read_to_string(&paths.metadata)
        .ok()
        .and_then(|t| super::local_dir::parse_metadata(&t))
}

/// The repo files a snapshot folder (or local dir) holds, sorted; the local dir's
/// `.cache/huggingface` metadata, broken links and names that are no valid repo path are left
/// out.
fn folder_files(root: &Path) -> Vec<RepoPath> {
    let mut entries = Vec::new();
    // An unreadable folder lists what could be read: this only feeds a hint.
    let _ = crate::cache::walk::walk_snapshot(root, &mut entries);
    let mut files: Vec<RepoPath> = entries
        .iter()
        .filter(|e| e.file_path.is_file())
        .filter_map(|e| e.file_path.strip_prefix(root).ok())
        .filter(|rel| !rel.starts_with(".cache/huggingface"))
        .filter_map(|rel| RepoPath::new(&rel.to_string_lossy()).ok())
        .collect();
    files.sort();
    files
}

fn parse_commit(sha: &str) -> Result<CommitHash> {
    CommitHash::new(sha).map_err(|_| Error::BadResponse {
        what: "commit hash (sha)",
        detail: sha.escape_debug().to_string(),
    })
}

/// Turns tree API entries into a validated listing; a hostile path or etag is an error.
fn listing_from_entries(entries: Vec<TreeEntry>) -> Result<BTreeMap<RepoPath, tree::TreeFile>> {
    let mut out = BTreeMap::new();
    for e in entries.into_iter().filter(|e| e.kind == "file") {
        let path = RepoPath::new(&e.path).map_err(|err| Error::BadResponse {
            what: "file path in the tree listing",
            detail: err.to_string(),
        })?;
        let file = tree::TreeFile {
            size: e.lfs.as_ref().map(|l| l.size).unwrap_or(e.size),
            blob_id: e.oid.clone(),
            lfs_sha256: e.lfs.as_ref().map(|l| l.oid.clone()),
            lfs_size: e.lfs.as_ref().map(|l| l.size),
            xet_hash: e.xet_hash.clone(),
        };
        if !is_valid_etag(file.etag()) {
            return Err(Error::BadResponse {
                what: "blob id in the tree listing",
                detail: format!("{} for {}", file.etag().escape_debug(), path),
            });
        }
        out.insert(path, file);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_files_lists_repo_files_without_local_dir_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join(".cache/huggingface/download")).unwrap();
        for f in [
            "config.json",
            "sub/a.bin",
            "sub/deeper/b.txt",
            ".cache/huggingface/download/x.metadata",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let names: Vec<String> = folder_files(root).iter().map(ToString::to_string).collect();
        assert_eq!(names, ["config.json", "sub/a.bin", "sub/deeper/b.txt"]);
    }
}
