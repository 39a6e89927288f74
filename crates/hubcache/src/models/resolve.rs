//! `cached_files`, `has_file` and `resolve_revision` (transformers 5.24 `utils/hub.py`).

use std::io;
use std::path::{Path, PathBuf};

use super::error::ModelError;
use super::weights::exact_pattern;
use super::{ModelLoader, ModelSource, Tolerate};
use crate::cache::layout::join_repo_path;
use crate::cache::{lookup, CacheLookup};
use crate::error::Error;
use crate::hub::{HubError, RetryPolicy};
use crate::repo::{is_commit_hash, CommitHash, Repo, RepoPath, Revision};
use crate::{FileRequest, SnapshotRequest};

/// What the error handling of a failed download decided.
enum Recovery {
    /// The answer (possibly all `None` for a tolerated error).
    Done(Vec<Option<PathBuf>>),
    /// Go on to the final cache lookup (missing entries), keeping a swallowed connection error.
    FallThrough(Option<Error>),
}

/// `extract_commit_hash`: the 40-hex `snapshots/<commit>/` segment of a resolved cache path.
pub fn extract_commit_hash(path: &Path) -> Option<CommitHash> {
    let mut parts = path.components().map(|c| c.as_os_str().to_string_lossy());
    while let Some(part) = parts.next() {
        if part == "snapshots" {
            let next = parts.next()?;
            // transformers matches a prefix; a snapshot folder name is the full hash.
            return next
                .get(..40)
                .filter(|h| is_commit_hash(h))
                .and_then(|h| CommitHash::new(h).ok());
        }
    }
    None
}

impl ModelLoader {
    /// transformers' `resolve_revision`: pins a branch or tag to its commit, once.
    ///
    /// Online: one revision API call (no retries) that also writes `refs/<rev>`; offline, or when
    /// the Hub is unreachable: `refs/<rev>`. Any other failure leaves the load unpinned, so the
    /// regular path reports it. Local folders are never pinned.
    pub async fn pin(&mut self) -> Option<CommitHash> {
        let ModelSource::Repo(repo) = &self.source else {
            return None;
        };
        if let Some(c) = self.commit() {
            return Some(c.clone());
        }
        let name = self.options.revision.as_str().to_string();
        let layout = self.hub.cache().repo(repo);
        if !self.is_offline() {
            match self
                .hub
                .client()
                .revision_commit_with(repo, &name, RetryPolicy::none())
                .await
            {
                Ok(sha) => {
                    let commit = CommitHash::new(&sha).ok()?;
                    // Best effort: a read-only cache still loads.
                    if let Ok(writer) = self.hub.writer().await {
                        let written = writer.write_ref(&layout, &name, &commit);
                        self.hub.best_effort("write", &layout.ref_file(&name), written);
                    }
                    self.pinned = Some(commit.clone());
                    return Some(commit);
                }
                Err(e) if e.is_transient() => {}
                Err(_) => return None,
            }
        }
        let commit = lookup::read_ref(&layout, &name)?;
        self.pinned = Some(commit.clone());
        Some(commit)
    }

    /// transformers' `cached_file`: one file, `None` when missing (or tolerated).
    pub async fn cached_file(&self, name: &str, tolerate: Tolerate) -> Result<Option<PathBuf>, ModelError> {
        Ok(self.cached_files(&[name], tolerate).await?.pop().flatten())
    }

    /// transformers' `cached_files`: resolves `names` (relative to the subfolder) in order.
    ///
    /// The result is aligned with `names`; `None` marks a file that is missing (when tolerated),
    /// and a tolerated gated or connection error gives `None` for every file.
    pub async fn cached_files<S: AsRef<str>>(
        &self,
        names: &[S],
        tolerate: Tolerate,
    ) -> Result<Vec<Option<PathBuf>>, ModelError> {
        Ok(self.resolve_files(names, tolerate).await?.0)
    }

    /// One file, plus the connection error that was swallowed when the answer is `None` because
    /// the Hub could not be asked (missing entries tolerated, connection errors not).
    pub(crate) async fn probe_file(
        &self,
        name: &str,
        tolerate: Tolerate,
    ) -> Result<(Option<PathBuf>, Option<Error>), ModelError> {
        let (mut paths, swallowed) = self.resolve_files(&[name], tolerate).await?;
        Ok((paths.pop().flatten(), swallowed))
    }

    async fn resolve_files<S: AsRef<str>>(
        &self,
        names: &[S],
        tolerate: Tolerate,
    ) -> Result<(Vec<Option<PathBuf>>, Option<Error>), ModelError> {
        let full = names
            .iter()
            .map(|n| RepoPath::with_subfolder(&self.options.subfolder, n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if full.is_empty() {
            return Ok((Vec::new(), None));
        }
        match &self.source {
            ModelSource::Dir(dir) => Ok((self.local_files(dir, &full, tolerate)?, None)),
            ModelSource::Repo(repo) => self.repo_files(repo, &full, tolerate).await,
        }
    }

    fn is_config(&self, path: &RepoPath) -> bool {
        RepoPath::with_subfolder(&self.options.subfolder, "config.json").is_ok_and(|c| &c == path)
    }

    fn local_files(
        &self,
        dir: &Path,
        full: &[RepoPath],
        tolerate: Tolerate,
    ) -> Result<Vec<Option<PathBuf>>, ModelError> {
        let mut out = Vec::with_capacity(full.len());
        for name in full {
            let path = join_repo_path(dir, name);
            if crate::fs::is_file(&path) {
                out.push(Some(path));
            } else if !tolerate.missing_entries && !self.is_config(name) {
                return Err(ModelError::MissingFiles {
                    id: dir.display().to_string(),
                    files: vec![name.to_string()],
                    tree_url: None,
                });
            } else {
                out.push(None);
            }
        }
        Ok(out)
    }

    async fn repo_files(
        &self,
        repo: &Repo,
        full: &[RepoPath],
        tolerate: Tolerate,
    ) -> Result<(Vec<Option<PathBuf>>, Option<Error>), ModelError> {
        // Commit-pinned: every file known (present, recorded missing, or absent from the commit's
        // cached listing) → no request at all.
        if let (Some(c), false) = (self.commit(), self.options.force_download) {
            let at = Revision::Commit(c.clone());
            let known: Option<Vec<Option<PathBuf>>> = full
                .iter()
                .map(|p| match self.hub.lookup_with_listing(repo, &at, p) {
                    CacheLookup::Hit(path) => Some(Some(path)),
                    CacheLookup::KnownMissing => Some(None),
                    CacheLookup::Miss => None,
                })
                .collect();
            if let Some(known) = known {
                return Ok((self.finalize(repo, full, known, tolerate)?, None));
            }
        }
        let revision = self.effective_revision();
        let outcome = if let [single] = full {
            let mut req = FileRequest::new(repo.clone(), revision.clone(), single.clone());
            req.force = self.options.force_download;
            req.local_only = self.options.local_only;
            self.hub.download_file(&req).await.map(Some)
        } else {
            let mut req = SnapshotRequest::new(repo.clone(), revision.clone());
            req.include = full.iter().map(|p| exact_pattern(p.as_str())).collect();
            req.force = self.options.force_download;
            req.local_only = self.options.local_only;
            self.hub.snapshot(&req).await.map(|_| None)
        };
        let (resolved, swallowed) = match outcome {
            Ok(Some(path)) => (vec![Some(path)], None),
            Ok(None) => (self.lookup_all(repo, &revision, full), None),
            Err(e) => match self.recover(repo, &revision, full, e, tolerate)? {
                Recovery::Done(v) => return Ok((v, None)),
                Recovery::FallThrough(swallowed) => (self.lookup_all(repo, &revision, full), swallowed),
            },
        };
        Ok((self.finalize(repo, full, resolved, tolerate)?, swallowed))
    }

    fn lookup_all(&self, repo: &Repo, revision: &Revision, full: &[RepoPath]) -> Vec<Option<PathBuf>> {
        full.iter()
            .map(|p| match self.hub.lookup(repo, revision, p) {
                CacheLookup::Hit(path) => Some(path),
                _ => None,
            })
            .collect()
    }

    /// The exception handling of `cached_files`, in transformers' order.
    fn recover(
        &self,
        repo: &Repo,
        revision: &Revision,
        full: &[RepoPath],
        e: Error,
        tolerate: Tolerate,
    ) -> Result<Recovery, ModelError> {
        let id = repo.id.to_string();
        let endpoint = self.hub.client().endpoint().to_string();
        // Unrecoverable: the Hub said the repo or revision does not exist; the cache is unwritable.
        match e.hub_error() {
            Some(HubError::RepoNotFound { .. }) => {
                return Err(ModelError::NotAModel {
                    id,
                    endpoint,
                    source: e,
                })
            }
            Some(HubError::RevisionNotFound { .. }) => {
                return Err(ModelError::BadRevision {
                    id,
                    revision: self.options.revision.to_string(),
                    endpoint,
                    source: e,
                })
            }
            _ => {}
        }
        if let Error::Io { path, source, .. } = &e {
            if source.kind() == io::ErrorKind::PermissionDenied {
                return Err(ModelError::Permission {
                    id,
                    path: path.clone(),
                    source: e,
                });
            }
        }
        // Recovery: every file is in the cache at that revision (a stale but complete copy).
        let cached = self.lookup_all(repo, revision, full);
        if cached.iter().all(Option::is_some) {
            return Ok(Recovery::Done(cached));
        }
        let none = || Ok(Recovery::Done(vec![None; full.len()]));
        if matches!(e.hub_error(), Some(HubError::Gated { .. })) {
            if tolerate.gated {
                return none();
            }
            return Err(ModelError::Gated {
                id,
                endpoint,
                source: e,
            });
        }
        if matches!(
            e,
            Error::Offline { .. } | Error::Unreachable { .. } | Error::IncompleteSnapshot { .. }
        ) {
            if tolerate.connection_errors {
                return none();
            }
            if !tolerate.missing_entries {
                let files = full
                    .iter()
                    .zip(&cached)
                    .filter(|(_, c)| c.is_none())
                    .map(|(p, _)| p.to_string())
                    .collect();
                return Err(ModelError::CannotConnect {
                    endpoint,
                    files,
                    source: e,
                });
            }
            return Ok(Recovery::FallThrough(Some(e)));
        }
        match e.hub_error() {
            Some(HubError::EntryNotFound { .. }) => Ok(Recovery::FallThrough(None)),
            Some(_) if matches!(e, Error::Hub { .. }) => {
                if tolerate.connection_errors {
                    none()
                } else {
                    Err(ModelError::Http { id, source: e })
                }
            }
            _ => Err(ModelError::Download(e)),
        }
    }

    /// Missing files raise (a lone `config.json` excepted) unless tolerated.
    fn finalize(
        &self,
        repo: &Repo,
        full: &[RepoPath],
        resolved: Vec<Option<PathBuf>>,
        tolerate: Tolerate,
    ) -> Result<Vec<Option<PathBuf>>, ModelError> {
        if tolerate.missing_entries {
            return Ok(resolved);
        }
        let missing: Vec<String> = full
            .iter()
            .zip(&resolved)
            .filter(|(_, r)| r.is_none())
            .map(|(p, _)| p.to_string())
            .collect();
        if missing.is_empty() || (full.len() == 1 && self.is_config(&full[0])) {
            return Ok(resolved);
        }
        Err(self.missing_files(repo, missing))
    }

    pub(crate) fn missing_files(&self, repo: &Repo, files: Vec<String>) -> ModelError {
        ModelError::MissingFiles {
            id: repo.id.to_string(),
            files,
            tree_url: Some(format!(
                "{}/{}{}/tree/{}",
                self.hub.client().endpoint(),
                repo.repo_type.url_prefix(),
                repo.id,
                self.options.revision
            )),
        }
    }

    /// transformers' `has_file`: whether the folder or repo has `name` (relative to the subfolder),
    /// without downloading it.
    ///
    /// Online this is one HEAD; offline (or when the Hub cannot be reached) the cache answers. A
    /// gated repo, an unknown repo or an unknown revision are errors.
    pub async fn has_file(&self, name: &str) -> Result<bool, ModelError> {
        let path = RepoPath::with_subfolder(&self.options.subfolder, name)?;
        let repo = match &self.source {
            ModelSource::Dir(dir) => return Ok(crate::fs::is_file(&join_repo_path(dir, &path))),
            ModelSource::Repo(repo) => repo,
        };
        let revision = self.effective_revision();
        let cached = matches!(self.hub.lookup(repo, &revision, &path), CacheLookup::Hit(_));
        if self.is_offline() {
            return Ok(cached);
        }
        let answer = self
            .hub
            .client()
            .file_metadata(repo, revision.as_str(), &path, false)
            .await;
        let wrap = |source: HubError| Error::Hub {
            repo: repo.to_string(),
            revision: self.options.revision.to_string(),
            what: format!("file `{path}`"),
            source,
        };
        let id = repo.id.to_string();
        let endpoint = self.hub.client().endpoint().to_string();
        match answer {
            Ok(_) => Ok(true),
            Err(HubError::EntryNotFound { .. }) => Ok(false),
            Err(e @ HubError::Gated { .. }) => Err(ModelError::Gated {
                id,
                endpoint,
                source: wrap(e),
            }),
            Err(e @ HubError::RepoNotFound { .. }) => Err(ModelError::NotAModel {
                id,
                endpoint,
                source: wrap(e),
            }),
            Err(e @ HubError::RevisionNotFound { .. }) => Err(ModelError::BadRevision {
                id,
                revision: self.options.revision.to_string(),
                endpoint,
                source: wrap(e),
            }),
            // Connection errors and other HTTP errors: what the cache says.
            Err(_) => Ok(cached),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_from_snapshot_path() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let p = PathBuf::from(format!("/cache/models--a--b/snapshots/{c}/sub/config.json"));
        assert_eq!(extract_commit_hash(&p).map(|h| h.to_string()).as_deref(), Some(c));
        assert_eq!(extract_commit_hash(Path::new("/models/a/config.json")), None);
        assert_eq!(extract_commit_hash(Path::new("/x/snapshots/main/config.json")), None);
        assert_eq!(
            extract_commit_hash(Path::new("/x/snapshots/ABCDEF0123456789abcdef0123456789abcdef01/c")),
            None
        );
        assert_eq!(extract_commit_hash(Path::new("/x/snapshots")), None);
    }
}
