//! The one owner of repo-folder changes, and the clean-up lock it cooperates with.
//!
//! Every writer (downloads, `cache add-folder`, bundle import, `sync`, the mirror's
//! pull-through) changes a repo folder through a [`CacheWriter`], which follows one protocol:
//!
//! 1. the writer holds `.locks/hubcache-gc.lock` **shared** for its whole life, so a clean-up
//!    (`cache rm`/`prune`, which takes it exclusive through [`CleanupLock`]) waits for it and
//!    never deletes a blob it is about to link, nor a folder it is filling;
//! 2. a blob is placed and linked under its etag lock (`.locks/<repo>/<etag>.lock`, the lock
//!    Python takes too), taken through [`CacheWriter::lock_blob`]: the [`BlobLock`] is the only
//!    way to persist a blob or link a snapshot entry, and it borrows the writer, so it cannot
//!    outlive the shared clean-up hold;
//! 3. refs, `.no_exist` markers and `trees/<commit>.json` are written through the writer too.
//!
//! Lock order: the clean-up lock, then an etag lock, then a shared-store lock (see
//! [`crate::lock`]). The file operations themselves are in [`super::commit`]; nothing outside
//! this module calls them.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::commit;
pub use super::commit::{AdoptedParts, LinkMode};
use super::layout::{CacheLayout, RepoLayout};
use super::shared_store::{self, FileIdentity};
use super::tree::{self, TreeFile};
use crate::lock::{LockError, LockedFile};
use crate::repo::{CommitHash, RepoPath};

/// Called while a lock is contended: the lock file and how long we have waited so far.
pub type WaitReporter = Arc<dyn Fn(&Path, Duration) + Send + Sync>;

/// How a [`CacheWriter`] materialises entries and waits for locks.
#[derive(Clone)]
pub struct WriteOptions {
    /// Symlinks or copies for snapshot entries.
    pub link_mode: LinkMode,
    /// Longest wait for another process's lock.
    pub lock_timeout: Duration,
    /// Told about lock waits (once after a second, then every ten).
    pub on_wait: WaitReporter,
}

impl WriteOptions {
    /// Options with no wait reporting.
    pub fn new(link_mode: LinkMode, lock_timeout: Duration) -> WriteOptions {
        WriteOptions {
            link_mode,
            lock_timeout,
            on_wait: Arc::new(|_: &Path, _: Duration| {}),
        }
    }

    /// The options the settings ask for: symlinks unless disabled or unsupported in the cache,
    /// `HUBCACHE_LOCK_TIMEOUT` or the default bound.
    pub fn from_settings(cache: &CacheLayout, settings: &crate::Settings) -> WriteOptions {
        WriteOptions::new(
            LinkMode::detect(cache.root(), settings.disable_symlinks),
            settings.lock_timeout.unwrap_or(crate::lock::DEFAULT_LOCK_TIMEOUT),
        )
    }

    /// Reports lock waits through `on_wait`.
    pub fn on_wait(mut self, on_wait: impl Fn(&Path, Duration) + Send + Sync + 'static) -> WriteOptions {
        self.on_wait = Arc::new(on_wait);
        self
    }
}

impl fmt::Debug for WriteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteOptions")
            .field("link_mode", &self.link_mode)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

/// A shared hold on the cache's clean-up lock, through which repo folders are changed.
#[derive(Debug)]
pub struct CacheWriter {
    cache: CacheLayout,
    options: WriteOptions,
    _gc: LockedFile,
}

impl CacheWriter {
    /// Takes the clean-up lock shared (waiting while a clean-up runs).
    pub async fn open(cache: &CacheLayout, options: WriteOptions) -> Result<CacheWriter, LockError> {
        let on_wait = options.on_wait.clone();
        let gc = LockedFile::acquire_shared(&cache.gc_lock(), options.lock_timeout, |p, w| on_wait(p, w)).await?;
        Ok(CacheWriter {
            cache: cache.clone(),
            options,
            _gc: gc,
        })
    }

    /// [`CacheWriter::open`] for synchronous callers (blocks the thread while it waits).
    pub fn open_blocking(cache: &CacheLayout, options: WriteOptions) -> Result<CacheWriter, LockError> {
        let on_wait = options.on_wait.clone();
        let gc = LockedFile::acquire_shared_blocking(&cache.gc_lock(), options.lock_timeout, |p, w| on_wait(p, w))?;
        Ok(CacheWriter {
            cache: cache.clone(),
            options,
            _gc: gc,
        })
    }

    /// The cache written to.
    pub fn cache(&self) -> &CacheLayout {
        &self.cache
    }

    /// How entries are materialised.
    pub fn link_mode(&self) -> LinkMode {
        self.options.link_mode
    }

    /// Creates the repo's `blobs/` folder and tags the cache root (`CACHEDIR.TAG`, best effort).
    pub fn prepare_repo(&self, repo: &RepoLayout) -> io::Result<()> {
        std::fs::create_dir_all(repo.blobs_dir())?;
        // A missing tag only means backup tools do not skip the cache.
        let _ = commit::ensure_cachedir_tag(&self.cache);
        Ok(())
    }

    /// Takes the etag lock of one blob (waiting while another process, Python too, holds it).
    pub async fn lock_blob<'w>(&'w self, repo: &RepoLayout, etag: &str) -> Result<BlobLock<'w>, LockError> {
        let on_wait = self.options.on_wait.clone();
        let lock = LockedFile::acquire(&repo.lock_file(etag), self.options.lock_timeout, |p, w| on_wait(p, w)).await?;
        Ok(self.blob_lock(repo, etag, lock))
    }

    /// [`CacheWriter::lock_blob`] for synchronous callers.
    pub fn lock_blob_blocking<'w>(&'w self, repo: &RepoLayout, etag: &str) -> Result<BlobLock<'w>, LockError> {
        let on_wait = self.options.on_wait.clone();
        let lock =
            LockedFile::acquire_blocking(&repo.lock_file(etag), self.options.lock_timeout, |p, w| on_wait(p, w))?;
        Ok(self.blob_lock(repo, etag, lock))
    }

    fn blob_lock<'w>(&'w self, repo: &RepoLayout, etag: &str, lock: LockedFile) -> BlobLock<'w> {
        BlobLock {
            writer: self,
            repo: repo.clone(),
            etag: etag.to_string(),
            lock,
        }
    }

    /// Points `refs/<name>` at `commit` (atomically, only if it differs; never for a commit).
    pub fn write_ref(&self, repo: &RepoLayout, name: &str, commit: &CommitHash) -> io::Result<()> {
        commit::write_ref(repo, name, commit)
    }

    /// Records that `path` does not exist at `commit` (`.no_exist/<commit>/<path>`).
    pub fn write_no_exist(&self, repo: &RepoLayout, commit: &CommitHash, path: &RepoPath) -> io::Result<()> {
        commit::write_no_exist(repo, commit, path)
    }

    /// Writes `trees/<commit>.json` as Python writes it.
    pub fn write_tree(
        &self,
        repo: &RepoLayout,
        commit: &CommitHash,
        listing: &BTreeMap<RepoPath, TreeFile>,
    ) -> io::Result<()> {
        tree::write(&repo.tree_file(commit), listing)
    }

    /// Creates `snapshots/<commit>/` (a commit with no file, or before its files arrive).
    pub fn create_snapshot_dir(&self, repo: &RepoLayout, commit: &CommitHash) -> io::Result<PathBuf> {
        let dir = repo.snapshot_dir(commit);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// The etag lock of one blob, held while the blob is placed and snapshot entries link to it.
#[derive(Debug)]
pub struct BlobLock<'w> {
    writer: &'w CacheWriter,
    repo: RepoLayout,
    etag: String,
    lock: LockedFile,
}

impl BlobLock<'_> {
    /// Whether the flock is really held (false where flock is off or unsupported): only then do
    /// leftover temp files belong to a dead writer.
    pub fn is_held(&self) -> bool {
        self.lock.is_held()
    }

    /// `blobs/<etag>`.
    pub fn blob_path(&self) -> PathBuf {
        self.repo.blob(&self.etag)
    }

    /// Whether the blob is already in place.
    pub fn blob_exists(&self) -> bool {
        crate::fs::is_file(&self.blob_path())
    }

    /// A fresh temp name for this blob (`<etag>.<8 hex>.incomplete`, as Python names it).
    pub fn temp_path(&self) -> PathBuf {
        self.repo.temp_blob(&self.etag, &crate::fs::random_suffix())
    }

    /// Takes over a dead writer's leftover temp files (see [`commit::adopt_leftover`]); does
    /// nothing unless the lock is really held.
    pub fn adopt_leftover(&self, max_len: Option<u64>, temp: &Path) -> io::Result<u64> {
        if !self.is_held() {
            return Ok(0);
        }
        commit::adopt_leftover(&self.repo, &self.etag, max_len, temp)
    }

    /// Fresh names for a ranged download of this blob: the data file
    /// (`<etag>.<8 hex>.parts.incomplete`) and its record (`<etag>.<8 hex>.ranges.incomplete`).
    pub fn parts_paths(&self) -> (PathBuf, PathBuf) {
        let suffix = crate::fs::random_suffix();
        (
            self.repo.parts_blob(&self.etag, &suffix),
            self.repo.parts_record(&self.etag, &suffix),
        )
    }

    /// Takes over a dead writer's leftovers for a ranged download (see
    /// [`commit::adopt_parts`]); does nothing unless the lock is really held.
    pub fn adopt_parts(&self, size: u64, data: &Path, record: &Path) -> io::Result<commit::AdoptedParts> {
        if !self.is_held() {
            return Ok(commit::AdoptedParts::None);
        }
        commit::adopt_parts(&self.repo, &self.etag, size, data, record)
    }

    /// Moves a verified temp file (in `blobs/`) onto the blob.
    pub fn persist(&self, temp: &Path) -> io::Result<()> {
        commit::persist_blob(temp, &self.blob_path())
    }

    /// Places the blob as a copy of `src` (through a temp name and an atomic rename); `src` is
    /// left as it is. Returns whether the blob is new.
    pub fn place_copy(&self, src: &Path) -> io::Result<bool> {
        self.place_with(src, |src, temp| std::fs::copy(src, temp).map(|_| ()))
    }

    /// Places the blob as a hard link to `src` (a verified file of ours that nobody changes,
    /// e.g. a staged import), else as a copy. Returns whether the blob is new.
    pub fn place_hard_link(&self, src: &Path) -> io::Result<bool> {
        self.place_with(src, |src, temp| {
            std::fs::hard_link(src, temp).or_else(|_| std::fs::copy(src, temp).map(|_| ()))
        })
    }

    fn place_with(&self, src: &Path, make: impl FnOnce(&Path, &Path) -> io::Result<()>) -> io::Result<bool> {
        if self.blob_exists() {
            return Ok(false);
        }
        let temp = self.temp_path();
        let placed = make(src, &temp).and_then(|_| self.persist(&temp));
        if placed.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        placed.map(|_| true)
    }

    /// How the writer materialises entries (copy mode also means: no hard links between repos).
    pub fn link_mode(&self) -> LinkMode {
        self.writer.link_mode()
    }

    /// A fresh name to stage an existing file's bytes for this blob,
    /// `.<etag>.<8 hex>.reuse`: hidden like Python's own transient names in `blobs/`, and no
    /// `.incomplete`, so no resume (ours or Python's) ever takes a hard link to another repo's
    /// blob for a partial download of its own and writes into it.
    pub fn stage_path(&self) -> PathBuf {
        self.repo
            .blobs_dir()
            .join(format!(".{}.{}.reuse", self.etag, crate::fs::random_suffix()))
    }

    /// Removes the stage files a dead writer left for this blob; does nothing unless the lock
    /// is really held (only then are they nobody's).
    pub fn clear_stale_stages(&self) {
        if !self.is_held() {
            return;
        }
        let prefix = format!(".{}.", self.etag);
        let Ok(entries) = std::fs::read_dir(self.repo.blobs_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let stale = name.to_str().is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(".reuse"))
                    .is_some_and(|hex| hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Places a file staged by [`StagedBlob::stage`] (and checked by the caller) as the blob.
    /// Returns whether the blob is new; the staged file is removed either way.
    pub fn place_staged(&self, mut staged: StagedBlob) -> io::Result<bool> {
        if self.blob_exists() {
            return Ok(false);
        }
        self.persist(&staged.temp)?;
        staged.placed = true;
        Ok(true)
    }

    /// The work of linking this blob to a shared-store payload the caller has checked
    /// ([`shared_store::link_blob_to_payload`]), as a job for the blocking pool: it takes the
    /// payload's lock, which may wait. Run it while this etag lock is held.
    pub fn shared_link(&self, payload: PathBuf, checked: FileIdentity) -> SharedLink {
        SharedLink {
            blob: self.blob_path(),
            payload,
            cache_dir: self.writer.cache.root().to_path_buf(),
            checked,
            timeout: self.writer.options.lock_timeout,
            on_wait: self.writer.options.on_wait.clone(),
        }
    }

    /// `snapshots/<commit>/<path>`, where [`BlobLock::link`] puts an entry.
    pub fn entry_path(&self, commit: &CommitHash, path: &RepoPath) -> PathBuf {
        self.repo.snapshot_file(commit, path)
    }

    /// Creates `snapshots/<commit>/<path>` for this blob; `new_blob` says it was just placed (in
    /// copy mode it is then moved, not copied). Returns the entry's path.
    pub fn link(&self, commit: &CommitHash, path: &RepoPath, new_blob: bool) -> io::Result<PathBuf> {
        commit::link_snapshot(&self.repo, commit, path, &self.etag, self.writer.link_mode(), new_blob)
    }
}

/// How a [`StagedBlob`] got its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staging {
    /// A hard link to the source (same inode).
    HardLink,
    /// A copy of the source's bytes.
    Copy,
}

/// A temp file in a repo's `blobs/` holding an existing file's bytes (hard link or copy), not
/// yet a blob: the caller checks its hash, then [`BlobLock::place_staged`] places it. Removed
/// when dropped unless placed, so a staged file that fails its check never stays behind.
#[derive(Debug)]
pub struct StagedBlob {
    temp: PathBuf,
    how: Staging,
    placed: bool,
}

impl StagedBlob {
    /// Stages `src` at `temp` (a fresh [`BlobLock::stage_path`]): a hard link when
    /// `hard_link` and the file system allows it, else a copy. Blocking: run it off the async
    /// workers.
    pub fn stage(src: &Path, temp: PathBuf, hard_link: bool) -> io::Result<StagedBlob> {
        if hard_link && std::fs::hard_link(src, &temp).is_ok() {
            return Ok(StagedBlob {
                temp,
                how: Staging::HardLink,
                placed: false,
            });
        }
        // Owned before the copy starts, so a copy cut short is removed.
        let staged = StagedBlob {
            temp,
            how: Staging::Copy,
            placed: false,
        };
        std::fs::copy(src, &staged.temp)?;
        // A copy keeps the source's mode; a read-only payload's copy is still a blob of ours.
        let _ = make_owner_writable(&staged.temp);
        Ok(staged)
    }

    /// The staged file.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Hard link or copy.
    pub fn how(&self) -> Staging {
        self.how
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn make_owner_writable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o200))
}

/// Linking one blob to a checked shared-store payload, made by [`BlobLock::shared_link`].
pub struct SharedLink {
    blob: PathBuf,
    payload: PathBuf,
    cache_dir: PathBuf,
    checked: FileIdentity,
    timeout: Duration,
    on_wait: WaitReporter,
}

impl SharedLink {
    /// Links the blob (blocking: the payload's lock may be contended). `Ok(false)`: the store,
    /// the payload or the paths did not allow it; nothing was changed.
    pub fn run(self) -> Result<bool, super::CacheError> {
        let on_wait = self.on_wait.clone();
        shared_store::link_blob_to_payload(
            &self.blob,
            &self.payload,
            &self.cache_dir,
            &self.checked,
            self.timeout,
            &|p, w| on_wait(p, w),
        )
    }
}

impl fmt::Debug for SharedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLink")
            .field("blob", &self.blob)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

/// The exclusive hold of `.locks/hubcache-gc.lock` that a clean-up (`cache rm`/`prune`)
/// requires: no [`CacheWriter`] is open while it is held.
#[derive(Debug)]
pub struct CleanupLock {
    _lock: LockedFile,
}

impl CleanupLock {
    /// Takes the clean-up lock of the cache, waiting (reported through `on_wait`) while
    /// writers hold it.
    pub fn acquire(cache_dir: &Path, on_wait: &dyn Fn(&Path, Duration)) -> Result<CleanupLock, LockError> {
        let path = CacheLayout::new(cache_dir).gc_lock();
        let lock = LockedFile::acquire_blocking(&path, Duration::MAX, on_wait)?;
        Ok(CleanupLock { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{Repo, RepoId, RepoType};

    fn setup() -> (tempfile::TempDir, CacheLayout, RepoLayout) {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheLayout::new(dir.path());
        let repo = cache.repo(&Repo::new(RepoId::new("o/m").unwrap(), RepoType::Model));
        (dir, cache, repo)
    }

    #[test]
    fn places_links_and_writes_through_one_writer() {
        let (dir, cache, repo) = setup();
        let w =
            CacheWriter::open_blocking(&cache, WriteOptions::new(LinkMode::Symlink, Duration::from_secs(5))).unwrap();
        w.prepare_repo(&repo).unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"content").unwrap();
        let commit = CommitHash::new(&"c".repeat(40)).unwrap();
        let path = RepoPath::new("a/f.bin").unwrap();
        let blob = w.lock_blob_blocking(&repo, "e1").unwrap();
        assert!(!blob.blob_exists());
        assert!(blob.place_copy(&src).unwrap(), "new blob");
        assert!(!blob.place_hard_link(&src).unwrap(), "already there");
        let entry = blob.link(&commit, &path, true).unwrap();
        assert_eq!(std::fs::read(&entry).unwrap(), b"content");
        assert!(src.is_file(), "the source is left in place");
        drop(blob);
        w.write_ref(&repo, "main", &commit).unwrap();
        assert_eq!(std::fs::read_to_string(repo.ref_file("main")).unwrap(), commit.as_str());
        assert!(cache.cachedir_tag().is_file());
        let leftovers: Vec<_> = std::fs::read_dir(repo.blobs_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, ["e1"], "no temp file left behind");
    }

    #[test]
    fn staged_blobs_are_placed_or_removed_and_stale_stages_cleared() {
        let (dir, cache, repo) = setup();
        let w =
            CacheWriter::open_blocking(&cache, WriteOptions::new(LinkMode::Symlink, Duration::from_secs(5))).unwrap();
        w.prepare_repo(&repo).unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"content").unwrap();
        let blob = w.lock_blob_blocking(&repo, "e1").unwrap();
        let stale = repo.blobs_dir().join(".e1.0a1b2c3d.reuse");
        std::fs::write(&stale, b"dead").unwrap();
        blob.clear_stale_stages();
        assert_eq!(
            stale.exists(),
            !blob.is_held(),
            "a stale stage goes when the lock is held"
        );

        // Dropped unplaced: removed.
        let staged = StagedBlob::stage(&src, blob.stage_path(), true).unwrap();
        let path = staged.path().to_path_buf();
        assert!(path.is_file());
        drop(staged);
        assert!(!path.exists());
        // Placed: a hard link to the source.
        let staged = StagedBlob::stage(&src, blob.stage_path(), true).unwrap();
        assert_eq!(staged.how(), Staging::HardLink);
        assert!(blob.place_staged(staged).unwrap());
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&blob.blob_path()), ino(&src));
        // Copy when asked (no hard link), and never over a blob already there.
        let staged = StagedBlob::stage(&src, blob.stage_path(), false).unwrap();
        assert_eq!(staged.how(), Staging::Copy);
        let path = staged.path().to_path_buf();
        assert!(!blob.place_staged(staged).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_cleanup_waits_for_an_open_writer() {
        let (_dir, cache, _) = setup();
        let w =
            CacheWriter::open_blocking(&cache, WriteOptions::new(LinkMode::Symlink, Duration::from_secs(5))).unwrap();
        let gc = cache.gc_lock();
        assert!(
            LockedFile::try_acquire(&gc).unwrap().is_none_or(|l| !l.is_held()),
            "exclusive hold refused while a writer is open"
        );
        drop(w);
        let cleanup = CleanupLock::acquire(cache.root(), &|_, _| {}).unwrap();
        let timeout = WriteOptions::new(LinkMode::Symlink, Duration::from_millis(200));
        let err = CacheWriter::open_blocking(&cache, timeout).unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        drop(cleanup);
    }
}
