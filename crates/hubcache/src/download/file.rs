//! The file pipeline (`hf_hub_download` in cache mode), top to bottom:
//!
//! 1. commit-pinned and present → the path, no network;
//! 2. offline → ref → commit → snapshot entry, or a clear offline error;
//! 3. HEAD → commit, etag, size, location (404 with a commit → `.no_exist` marker);
//!    a transient failure falls back to what is cached, then retries patiently once;
//! 4. snapshot entry present → the path (ref refreshed best-effort);
//! 5. lock `.locks/<repo>/<etag>.lock`, check the blob again, reuse the same content when
//!    the cache already holds it (the shared blob store, or another repo's blob: see
//!    `reuse.rs`), else take over the blob's leftover temp files, check the free space, stream to a temp file while hashing, verify size and
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
use crate::cache::lookup::{self, CacheLookup};
use crate::cache::writer::AdoptedParts;
use crate::cache::{BlobLock, CacheWriter, RepoLayout, WriteOptions};
use crate::error::{Error, Result};
use crate::hub::transfer::{self, PartsRequest, RangeSet, TransferError, TransferRequest};
use crate::hub::{FileMetadata, HubError};
use crate::repo::{is_valid_etag, CommitHash, Repo, RepoPath, Revision};

/// What is known about a file before its transfer: enough to skip the HEAD.
#[derive(Debug, Clone)]
pub(crate) struct KnownFile {
    pub commit: CommitHash,
    pub etag: String,
    pub size: Option<u64>,
    pub location: String,
    /// The Xet hash from the listing or the HEAD, if any (for the shared blob store).
    pub xet_hash: Option<String>,
}

/// Removes a temp file unless it was persisted (also on error, panic or cancellation), or
/// `keep` is set and it holds bytes a later run can resume from.
struct TempGuard {
    path: Option<PathBuf>,
    /// The record of a parts file, kept or removed with it.
    record: Option<PathBuf>,
    keep: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if !(self.keep && fs::metadata(&p).is_ok_and(|m| m.len() > 0)) {
                let _ = fs::remove_file(p);
                if let Some(r) = self.record.take() {
                    let _ = fs::remove_file(r);
                }
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
                    self.record_missing(&req.repo, &req.revision, &commit, &req.path).await;
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
    async fn record_missing(&self, repo: &Repo, revision: &Revision, commit: &CommitHash, path: &RepoPath) {
        let Ok(writer) = self.writer().await else { return };
        let layout = self.cache.repo(repo);
        let marker = layout.no_exist_marker(commit, path);
        self.best_effort(
            "record as missing",
            &marker,
            writer.write_no_exist(&layout, commit, path),
        );
        if let Revision::Ref(name) = revision {
            self.best_effort("write", &layout.ref_file(name), writer.write_ref(&layout, name, commit));
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
        let ref_name = match revision {
            Some(Revision::Ref(name)) => Some(name.as_str()),
            _ => None,
        };
        if !force && crate::fs::is_file(&pointer) {
            // Present: only a ref that moved needs a write.
            if let Some(name) = ref_name.filter(|n| lookup::read_ref(&layout, n).as_ref() != Some(&known.commit)) {
                match self.writer().await {
                    Ok(writer) => self.update_ref(&writer, &layout, name, &known.commit),
                    Err(e) => self
                        .reporter
                        .warning(&format!("cannot update ref {name} of {repo}: {e}")),
                }
            }
            return Ok(pointer);
        }
        let writer = self.writer().await?;
        writer
            .prepare_repo(&layout)
            .map_err(|e| Error::io("create", layout.blobs_dir(), e))?;
        crate::fs::create_parent(&pointer).map_err(|e| Error::io("create the folder of", &pointer, e))?;
        if let Some(name) = ref_name {
            self.update_ref(&writer, &layout, name, &known.commit);
        }
        let blob = writer.lock_blob(&layout, &known.etag).await?;
        if !force && blob.blob_exists() {
            return link(&blob, known, path, false);
        }
        if !force && crate::fs::is_file(&pointer) {
            return Ok(pointer);
        }
        // Before any transfer: the same content may already be in the cache (reuse.rs).
        if !force {
            if let Some(reused) = self.reuse_blob(repo, path, known, &blob).await {
                return link(&blob, known, path, reused.is_regular_blob());
            }
        }
        self.fetch_blob(repo, path, known, &blob, force).await?;
        link(&blob, known, path, true)
    }

    /// Points a ref at its commit, warning (not failing) when the cache refuses the write.
    fn update_ref(&self, writer: &CacheWriter, layout: &RepoLayout, name: &str, commit: &CommitHash) {
        if let Err(e) = writer.write_ref(layout, name, commit) {
            self.reporter
                .warning(&format!("cannot update ref {name} of {}: {e}", layout.root().display()));
        }
    }

    /// Step 5 under the etag lock: resume from a dead writer's temp file (only when the lock is
    /// really held), transfer, verify, rename into `blobs/`. A resumed file that fails its check
    /// is discarded and fetched once more from zero.
    async fn fetch_blob(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        blob: &BlobLock<'_>,
        force: bool,
    ) -> Result<()> {
        let ranged = self.client.config().ranged;
        if let Some(size) = known.size.filter(|s| ranged.use_ranged(Some(*s), *s)) {
            return self.fetch_blob_in_parts(repo, path, known, blob, force, size).await;
        }
        let temp = blob.temp_path();
        // A forced download takes nothing over; a leftover longer than the file is wrong.
        let max_len = (!force).then(|| known.size.unwrap_or(u64::MAX));
        let start = match blob.adopt_leftover(max_len, &temp) {
            Ok(n) => n,
            Err(e) => {
                self.reporter.warning(&format!(
                    "cannot reuse the partial downloads of {path} in {}: {e}",
                    blob.blob_path().parent().unwrap_or(Path::new(".")).display()
                ));
                0
            }
        };
        let keep = blob.is_held();
        let place = |temp: &Path| blob.persist(temp);
        match self
            .transfer_attempt(repo, path, known, &temp, start, keep, &place)
            .await
        {
            Err(Error::Transfer { source, .. }) if start > 0 && is_bad_content(&source) => {
                self.reporter.warning(&format!(
                    "the partial download of {path} left by an earlier run did not check out ({source}); \
                     fetching it again from the start"
                ));
                let temp = blob.temp_path();
                self.transfer_attempt(repo, path, known, &temp, 0, keep, &place).await
            }
            result => result,
        }
    }

    /// A [`CacheWriter`] for this hub's cache (its link mode, lock bound and reporter): the
    /// clean-up lock held shared until it is dropped. Every change to the cache goes through one.
    pub async fn writer(&self) -> Result<CacheWriter> {
        let reporter = self.reporter.clone();
        let options = WriteOptions::new(self.link_mode(), self.lock_timeout)
            .on_wait(move |p, waited| reporter.waiting_for_lock(p, waited));
        Ok(CacheWriter::open(&self.cache, options).await?)
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
        let place = |temp: &Path| std::fs::rename(temp, dest);
        let ranged = self.client.config().ranged;
        match known.size.filter(|s| ranged.use_ranged(Some(*s), *s)) {
            // Large files in ranged parts here too; nothing is kept for a later run (the
            // record sits beside the temp and goes with it).
            Some(size) => {
                let record = PathBuf::from(format!("{}.ranges", temp.display()));
                self.parts_attempt(repo, path, known, size, (temp, &record), RangeSet::new(), false, &place)
                    .await
            }
            None => self.transfer_attempt(repo, path, known, temp, 0, false, &place).await,
        }
    }

    /// One transfer into `temp`, which already holds `start` bytes (0: it is created), then
    /// `place` moves the verified file where it belongs. With `keep_partial`, a transfer cut off
    /// for a transient reason (or cancelled) leaves `temp` in place for a later run to resume.
    #[allow(clippy::too_many_arguments)]
    async fn transfer_attempt(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        temp: &Path,
        start: u64,
        keep_partial: bool,
        place: &(dyn Fn(&Path) -> std::io::Result<()> + Sync),
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
            record: None,
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
            return Err(transfer_failed(repo, path, known, dir, source, guard, keep_partial));
        }
        place(temp).map_err(|e| Error::io("move into place", temp, e))?;
        guard.path = None;
        Ok(())
    }

    /// Step 5 for a file fetched in ranged parts: take over a dead writer's parts file (or
    /// contiguous leftover), fetch what is missing, verify, place. A file whose bytes do not
    /// check out is fetched once more from nothing, then the error stands.
    async fn fetch_blob_in_parts(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        blob: &BlobLock<'_>,
        force: bool,
        size: u64,
    ) -> Result<()> {
        let (data, record) = blob.parts_paths();
        let held = if force {
            // Removes every leftover of the blob.
            let _ = blob.adopt_leftover(None, &data);
            RangeSet::new()
        } else {
            match blob.adopt_parts(size, &data, &record) {
                Ok(AdoptedParts::Parts(text)) => RangeSet::decode(&text, size).unwrap_or_default(),
                Ok(AdoptedParts::Prefix(n)) => {
                    let mut held = RangeSet::new();
                    held.insert(0, n);
                    held
                }
                Ok(AdoptedParts::None) => RangeSet::new(),
                Err(e) => {
                    self.reporter.warning(&format!(
                        "cannot reuse the partial downloads of {path} in {}: {e}",
                        blob.blob_path().parent().unwrap_or(Path::new(".")).display()
                    ));
                    RangeSet::new()
                }
            }
        };
        let keep = blob.is_held();
        match self
            .parts_attempt(repo, path, known, size, (&data, &record), held, keep, &|d| {
                blob.persist(d)
            })
            .await
        {
            Err(Error::Transfer { source, .. }) if is_bad_content(&source) => {
                self.reporter.warning(&format!(
                    "the download of {path} did not check out ({source}); fetching it again"
                ));
                let (data, record) = blob.parts_paths();
                self.parts_attempt(repo, path, known, size, (&data, &record), RangeSet::new(), keep, &|d| {
                    blob.persist(d)
                })
                .await
            }
            result => result,
        }
    }

    /// One ranged transfer into the parts file `data` (holding `held`, recorded in `record`),
    /// then `place` moves the verified file where it belongs (the blob, or a local-dir file).
    #[allow(clippy::too_many_arguments)]
    async fn parts_attempt(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        size: u64,
        (data, record): (&Path, &Path),
        held: RangeSet,
        keep_partial: bool,
        place: &(dyn Fn(&Path) -> std::io::Result<()> + Sync),
    ) -> Result<()> {
        let dir = data.parent().unwrap_or(Path::new("."));
        if let Some(available) = crate::fs::available_space(dir) {
            let needed = size.saturating_sub(held.covered());
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
        let opened = if crate::fs::is_file(data) {
            OpenOptions::new().read(true).write(true).open(data)
        } else {
            OpenOptions::new().read(true).write(true).create_new(true).open(data)
        };
        let mut file = opened.map_err(|e| match crate::fs::is_disk_full(&e) {
            true => disk_full(repo, path, known, dir, e),
            false => Error::io("create", data, e),
        })?;
        let mut guard = TempGuard {
            path: Some(data.to_path_buf()),
            record: Some(record.to_path_buf()),
            keep: keep_partial,
        };
        let resolve = crate::hub::url::resolve_url(self.client.endpoint(), repo, known.commit.as_str(), path);
        let request = PartsRequest {
            location: &known.location,
            resolve: Some(&resolve),
            etag: &known.etag,
            size,
            record,
        };
        let mut progress = self.reporter.file_started(path.as_str(), Some(size));
        let result = transfer::download_parts(&self.client, &request, &mut file, data, held, progress.as_mut()).await;
        progress.finish();
        drop(file);
        if let Err(source) = result {
            return Err(transfer_failed(repo, path, known, dir, source, guard, keep_partial));
        }
        place(data).map_err(|e| Error::io("move into place", data, e))?;
        guard.path = None;
        let _ = fs::remove_file(record);
        Ok(())
    }
}

/// The error of a failed transfer; the temp file is kept only when it holds bytes cut off on
/// their way (wrong ones, or a full disk, are not worth a resume).
fn transfer_failed(
    repo: &Repo,
    path: &RepoPath,
    known: &KnownFile,
    dir: &Path,
    source: TransferError,
    mut guard: TempGuard,
    keep_partial: bool,
) -> Error {
    guard.keep = keep_partial && source.is_resumable();
    let source = source.with_kept(guard.keep);
    drop(guard);
    match source {
        TransferError::Io { source, .. } if crate::fs::is_disk_full(&source) => {
            disk_full(repo, path, known, dir, source)
        }
        source => Error::Transfer {
            repo: repo.to_string(),
            what: describe_file(path),
            source,
        },
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

fn link(blob: &BlobLock<'_>, known: &KnownFile, path: &RepoPath, new_blob: bool) -> Result<PathBuf> {
    blob.link(&known.commit, path, new_blob)
        .map_err(|e| Error::io("link", blob.entry_path(&known.commit, path), e))
}

impl Hub {
    /// Reports a best-effort write that failed through the reporter's debug channel (a
    /// read-only cache still serves what it has).
    pub(crate) fn best_effort(&self, action: &str, path: &Path, result: std::io::Result<()>) {
        if let Err(e) = result {
            self.reporter
                .debug(&format!("could not {action} {}: {e}", path.display()));
        }
    }
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
        xet_hash: meta.xet_hash,
    })
}

/// Resolves a revision to a cached commit (for fallbacks): the commit itself or its ref.
pub(crate) fn cached_commit(hub: &Hub, repo: &Repo, revision: &Revision) -> Option<CommitHash> {
    lookup::resolve_commit(&hub.cache.repo(repo), revision)
}
