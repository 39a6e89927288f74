//! The file pipeline (`hf_hub_download` in cache mode), top to bottom:
//!
//! 1. commit-pinned and present → the path, no network;
//! 2. offline → ref → commit → snapshot entry, or a clear offline error;
//! 3. HEAD → commit, etag, size, location (404 with a commit → `.no_exist` marker);
//!    a transient failure falls back to what is cached, then retries patiently once;
//! 4. snapshot entry present → the path (ref refreshed best-effort);
//! 5. lock `.locks/<repo>/<etag>.lock`, check the blob again, take over the blob's leftover
//!    temp files, check the free space, stream to a temp file while hashing, verify size and
//!    hash, rename into `blobs/`;
//! 6. link the snapshot entry, return its path.
//!
//! Steps 5–6 run under a shared hold of `.locks/hubcache-gc.lock`, which `cache rm`/`prune`
//! take exclusive: a clean-up waits for running writes instead of deleting their files.
//!
//! **Resume across runs.** Python and hubcache both hold the etag lock while writing a blob's
//! temp file, so once we hold it (for real: not where flock is off or unsupported) any
//! `<etag>.<8 hex>.incomplete` or legacy `<etag>.incomplete` in `blobs/` belongs to a dead
//! writer. The largest one not longer than the announced size is renamed to our own temp name
//! and the transfer continues from its end (`Range`), its bytes hashed from disk; the others are
//! removed. The final size + sha256 / git-sha1 check makes this safe: a resumed file that fails
//! it is discarded and fetched once more from zero. A transfer cut off for a transient reason
//! (connection, timeout, after the in-run retries) or cancelled keeps its temp file for the next
//! run; one that fails verification, hits a full disk or any other error is removed.
//!
//! **Full disks.** Before a transfer the bytes still to write are compared with the free space
//! of the target file system (statvfs); too little fails early, before any content request.
//! ENOSPC/EDQUOT mid-stream removes the temp file and reports [`Error::DiskFull`].

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use super::{FileRequest, Hub};
use crate::cache::commit::{self, LinkMode};
use crate::cache::lookup::{self, CacheLookup};
use crate::cache::RepoLayout;
use crate::error::{Error, Result};
use crate::hub::transfer::{self, TransferError, TransferRequest};
use crate::hub::{FileMetadata, HubError};
use crate::lock::LockedFile;
use crate::repo::{is_valid_etag, CommitHash, Repo, RepoPath, Revision};

/// What is known about a file before its transfer: enough to skip the HEAD.
#[derive(Debug, Clone)]
pub(crate) struct KnownFile {
    pub commit: CommitHash,
    pub etag: String,
    pub size: Option<u64>,
    pub location: String,
}

/// Removes a temp file unless it was persisted (also on error, panic or cancellation), or
/// `keep` is set and it holds bytes a later run can resume from.
struct TempGuard {
    path: Option<PathBuf>,
    keep: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if !(self.keep && fs::metadata(&p).is_ok_and(|m| m.len() > 0)) {
                let _ = fs::remove_file(p);
            }
        }
    }
}

pub(crate) fn describe_file(path: &RepoPath) -> String {
    format!("file `{path}`")
}

impl Hub {
    /// Downloads one file into the cache (or `local_dir`) and returns its path.
    pub async fn download_file(&self, req: &FileRequest) -> Result<PathBuf> {
        if let Some(dir) = &req.local_dir {
            return self.download_to_local_dir(req, dir).await;
        }
        let layout = self.cache.repo(&req.repo);
        // 1. Commit-pinned and present: no network, no lock, no write.
        if let (Revision::Commit(c), false) = (&req.revision, req.force) {
            let pointer = layout.snapshot_file(c, &req.path);
            if crate::fs::is_file(&pointer) {
                return Ok(pointer);
            }
        }
        // 2. Offline: the cache or a clear error.
        if let Some(reason) = self.offline_reason(req.local_only) {
            return match self.lookup(&req.repo, &req.revision, &req.path) {
                CacheLookup::Hit(p) if !req.force => Ok(p),
                _ => Err(Error::Offline {
                    repo: req.repo.to_string(),
                    revision: req.revision.to_string(),
                    what: describe_file(&req.path),
                    cache: self.cache.root().to_path_buf(),
                    reason,
                }),
            };
        }
        // 3. Metadata.
        let meta = self.metadata_or_fallback(req).await?;
        let meta = match meta {
            Ok(m) => m,
            Err(cached) => return Ok(cached),
        };
        let known = validate_metadata(meta)?;
        self.fetch_known(&req.repo, Some(&req.revision), &req.path, &known, req.force)
            .await
    }

    /// HEAD with Python's fallbacks. `Ok(Err(path))` means "serve this cached copy".
    async fn metadata_or_fallback(&self, req: &FileRequest) -> Result<Result<FileMetadata, PathBuf>> {
        let rev = req.revision.as_str();
        let first = self.client.file_metadata(&req.repo, rev, &req.path, false).await;
        let err = match first {
            Ok(m) => return Ok(Ok(m)),
            Err(e) => e,
        };
        let hub_err = |source: HubError| Error::Hub {
            repo: req.repo.to_string(),
            revision: rev.to_string(),
            what: describe_file(&req.path),
            source,
        };
        match &err {
            HubError::EntryNotFound { commit: Some(c), .. } => {
                if let Ok(commit) = CommitHash::new(c) {
                    self.record_missing(&req.repo, &req.revision, &commit, &req.path);
                }
                return Err(hub_err(err));
            }
            HubError::EntryNotFound { .. } | HubError::RevisionNotFound { .. } => return Err(hub_err(err)),
            _ => {}
        }
        if !req.force {
            if let CacheLookup::Hit(p) = self.lookup(&req.repo, &req.revision, &req.path) {
                self.reporter
                    .warning(&format!("using the cached copy of {} of {}: {err}", req.path, req.repo));
                return Ok(Err(p));
            }
        }
        let err = if err.is_transient() {
            match self.client.file_metadata(&req.repo, rev, &req.path, true).await {
                Ok(m) => return Ok(Ok(m)),
                Err(e) => e,
            }
        } else {
            err
        };
        Err(if err.is_transient() {
            Error::Unreachable {
                repo: req.repo.to_string(),
                revision: rev.to_string(),
                what: describe_file(&req.path),
                source: err,
            }
        } else {
            hub_err(err)
        })
    }

    /// `.no_exist/<commit>/<path>` and the ref, best-effort (a read-only cache is fine).
    fn record_missing(&self, repo: &Repo, revision: &Revision, commit: &CommitHash, path: &RepoPath) {
        let layout = self.cache.repo(repo);
        let _ = commit::write_no_exist(&layout, commit, path);
        if let Revision::Ref(name) = revision {
            let _ = commit::write_ref(&layout, name, commit);
        }
    }

    /// Steps 4–6 for a file whose commit, etag and size are known.
    pub(crate) async fn fetch_known(
        &self,
        repo: &Repo,
        revision: Option<&Revision>,
        path: &RepoPath,
        known: &KnownFile,
        force: bool,
    ) -> Result<PathBuf> {
        let layout = self.cache.repo(repo);
        let pointer = layout.snapshot_file(&known.commit, path);
        let update_ref = || {
            if let Some(Revision::Ref(name)) = revision {
                if let Err(e) = commit::write_ref(&layout, name, &known.commit) {
                    self.reporter
                        .warning(&format!("cannot update ref {name} of {repo}: {e}"));
                }
            }
        };
        if !force && crate::fs::is_file(&pointer) {
            update_ref();
            return Ok(pointer);
        }
        // Held until the entry is linked, so `cache rm`/`prune` never removes a folder, temp
        // file or fresh blob under us (they take this lock exclusive and wait).
        let _gc = self.gc_guard().await?;
        let blobs = layout.blobs_dir();
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;
        crate::fs::create_parent(&pointer).map_err(|e| Error::io("create the folder of", &pointer, e))?;
        let _ = commit::ensure_cachedir_tag(&self.cache);
        update_ref();
        let mode = self.link_mode();
        let lock_path = layout.lock_file(&known.etag);
        let reporter = self.reporter.clone();
        let lock = LockedFile::acquire(&lock_path, self.lock_timeout, |p, waited| {
            reporter.waiting_for_lock(p, waited)
        })
        .await?;
        let blob = layout.blob(&known.etag);
        if !force && crate::fs::is_file(&blob) {
            return link(&layout, known, path, mode, false);
        }
        if !force && crate::fs::is_file(&pointer) {
            return Ok(pointer);
        }
        self.fetch_blob(repo, path, known, &layout, lock.is_held(), force)
            .await?;
        link(&layout, known, path, mode, true)
    }

    /// Step 5 under the etag lock: resume from a dead writer's temp file when `owns_temps`
    /// (the lock is really held), transfer, verify, rename into `blobs/`. A resumed file that
    /// fails its check is discarded and fetched once more from zero.
    async fn fetch_blob(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        layout: &RepoLayout,
        owns_temps: bool,
        force: bool,
    ) -> Result<()> {
        let blob = layout.blob(&known.etag);
        let temp = layout.temp_blob(&known.etag, &crate::fs::random_suffix());
        let mut start = 0;
        if owns_temps {
            // A forced download takes nothing over; a leftover longer than the file is wrong.
            let max_len = (!force).then(|| known.size.unwrap_or(u64::MAX));
            match commit::adopt_leftover(layout, &known.etag, max_len, &temp) {
                Ok(n) => start = n,
                Err(e) => self.reporter.warning(&format!(
                    "cannot reuse the partial downloads of {path} in {}: {e}",
                    layout.blobs_dir().display()
                )),
            }
        }
        match self
            .transfer_attempt(repo, path, known, &temp, &blob, start, owns_temps)
            .await
        {
            Err(Error::Transfer { source, .. }) if start > 0 && is_bad_content(&source) => {
                self.reporter.warning(&format!(
                    "the partial download of {path} left by an earlier run did not check out ({source}); \
                     fetching it again from the start"
                ));
                let temp = layout.temp_blob(&known.etag, &crate::fs::random_suffix());
                self.transfer_attempt(repo, path, known, &temp, &blob, 0, owns_temps)
                    .await
            }
            result => result,
        }
    }

    /// A shared hold on the cache's clean-up lock (`.locks/hubcache-gc.lock`) for as long as
    /// this process writes into repo folders.
    pub(crate) async fn gc_guard(&self) -> Result<LockedFile> {
        let reporter = self.reporter.clone();
        let lock = LockedFile::acquire_shared(&self.cache.gc_lock(), self.lock_timeout, |p, waited| {
            reporter.waiting_for_lock(p, waited)
        })
        .await?;
        Ok(lock)
    }

    /// Streams the content to the new file `temp`, verifies it, and renames it onto `dest`;
    /// `temp` is removed on any failure.
    pub(crate) async fn transfer_to(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        temp: &Path,
        dest: &Path,
    ) -> Result<()> {
        self.transfer_attempt(repo, path, known, temp, dest, 0, false).await
    }

    /// One transfer into `temp`, which already holds `start` bytes (0: it is created). With
    /// `keep_partial`, a transfer cut off for a transient reason (or cancelled) leaves `temp`
    /// in place for a later run to resume.
    #[allow(clippy::too_many_arguments)]
    async fn transfer_attempt(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        temp: &Path,
        dest: &Path,
        start: u64,
        keep_partial: bool,
    ) -> Result<()> {
        let dir = temp.parent().unwrap_or(Path::new("."));
        if let (Some(size), Some(available)) = (known.size, crate::fs::available_space(dir)) {
            let needed = size.saturating_sub(start);
            if needed > available {
                return Err(Error::InsufficientSpace {
                    repo: repo.to_string(),
                    what: describe_file(path),
                    dir: dir.to_path_buf(),
                    needed,
                    available,
                });
            }
        }
        let opened = if start == 0 {
            OpenOptions::new().read(true).write(true).create_new(true).open(temp)
        } else {
            OpenOptions::new().read(true).write(true).open(temp)
        };
        let mut file = opened.map_err(|e| match crate::fs::is_disk_full(&e) {
            true => disk_full(repo, path, known, dir, e),
            false => Error::io("create", temp, e),
        })?;
        let mut guard = TempGuard {
            path: Some(temp.to_path_buf()),
            keep: keep_partial,
        };
        let mut progress = self.reporter.file_started(path.as_str(), known.size);
        let request = TransferRequest {
            location: &known.location,
            etag: &known.etag,
            expected_size: known.size,
            resume_from: start,
        };
        let result = transfer::download(&self.client, &request, &mut file, temp, progress.as_mut()).await;
        progress.finish();
        drop(file);
        if let Err(source) = result {
            // Only bytes cut off on their way are worth a resume; wrong ones, or a full disk, are not.
            guard.keep = keep_partial && source.is_resumable();
            let source = source.with_kept(guard.keep);
            drop(guard);
            return Err(match source {
                TransferError::Io { source, .. } if crate::fs::is_disk_full(&source) => {
                    disk_full(repo, path, known, dir, source)
                }
                source => Error::Transfer {
                    repo: repo.to_string(),
                    what: describe_file(path),
                    source,
                },
            });
        }
        commit::persist_blob(temp, dest).map_err(|e| Error::io("move into place", dest, e))?;
        guard.path = None;
        Ok(())
    }
}

/// A failure that says the bytes were wrong (or unreadable), not that the transfer was cut.
fn is_bad_content(e: &TransferError) -> bool {
    matches!(
        e,
        TransferError::Hash { .. } | TransferError::Size { .. } | TransferError::Io { .. }
    )
}

/// [`Error::DiskFull`] for a write into `dir` (the temp file is already gone).
fn disk_full(repo: &Repo, path: &RepoPath, known: &KnownFile, dir: &Path, source: std::io::Error) -> Error {
    Error::DiskFull {
        repo: repo.to_string(),
        what: describe_file(path),
        dir: dir.to_path_buf(),
        needed: known.size,
        available: crate::fs::available_space(dir),
        source,
    }
}

fn link(layout: &RepoLayout, known: &KnownFile, path: &RepoPath, mode: LinkMode, new_blob: bool) -> Result<PathBuf> {
    commit::link_snapshot(layout, &known.commit, path, &known.etag, mode, new_blob)
        .map_err(|e| Error::io("link", layout.snapshot_file(&known.commit, path), e))
}

/// Checks what the server said before any of it becomes a path.
fn validate_metadata(meta: FileMetadata) -> Result<KnownFile> {
    let commit = CommitHash::new(&meta.commit).map_err(|_| Error::BadResponse {
        what: "commit hash (X-Repo-Commit)",
        detail: meta.commit.escape_debug().to_string(),
    })?;
    if !is_valid_etag(&meta.etag) {
        return Err(Error::BadResponse {
            what: "etag",
            detail: meta.etag.escape_debug().to_string(),
        });
    }
    Ok(KnownFile {
        commit,
        etag: meta.etag,
        size: meta.size,
        location: meta.location,
    })
}

/// Resolves a revision to a cached commit (for fallbacks): the commit itself or its ref.
pub(crate) fn cached_commit(hub: &Hub, repo: &Repo, revision: &Revision) -> Option<CommitHash> {
    lookup::resolve_commit(&hub.cache.repo(repo), revision)
}
