//! Inter-process file locks on `.locks/<repo folder>/<etag>.lock`, compatible with Python.
//!
//! huggingface_hub (through `filelock`) takes BSD `flock` on the same path, so a Python process
//! and hubcache exclude each other. We try the lock first; only on contention do we report that
//! we wait (once, then every 10 s), and we wait up to a bound instead of giving up after seconds.
//!
//! Cache clean-up (`cache rm`/`prune`) adds one lock of its own, `.locks/hubcache-gc.lock`:
//! downloads hold it *shared* while they write into a repo folder, a clean-up holds it
//! *exclusive*. Lock order: the gc lock first, then `<etag>.lock`, then a shared-store
//! `<hash>.lock`; a clean-up only ever *tries* `<etag>.lock` or waits for it with nothing
//! else a download could be waiting for.
//!
//! Where flock does not work (some NFS, Lustre or GPFS mounts answer ENOLCK/EOPNOTSUPP), or when
//! it is switched off on purpose, a "lock" is granted without being held. That is safe for
//! downloads: every writer streams into its own uniquely named temp file, verifies the hash, and
//! renames atomically, so two writers may both download but nothing wrong ever lands.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Process-wide switch: grant every lock without flock (for file systems where flock hangs or
/// lies, and for tests of that mode).
static FLOCK_DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns flock off (or back on) for this process.
pub fn disable_flock(disabled: bool) {
    FLOCK_DISABLED.store(disabled, Ordering::Relaxed);
}

/// Default bound on waiting for another process's lock: long enough for a multi-GB download.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How often a waiting process polls the lock.
const POLL: Duration = Duration::from_millis(50);
/// How long to wait quietly before saying so (short waits are routine, e.g. two files of one
/// snapshot sharing a blob).
const REPORT_AFTER: Duration = Duration::from_secs(1);
/// How often a waiting process repeats that it is still waiting.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process held the lock longer than the bound.
    #[error("gave up after {waited:?} waiting for the lock {path} held by another process")]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
}

impl LockError {
    /// What the user can do about it, one line each (shared by every layer that forwards it).
    pub fn hints(&self) -> Vec<String> {
        match self {
            LockError::Timeout { path, .. } => vec![
                format!(
                    "another process holds {}; wait for it to finish and run the command again",
                    path.display()
                ),
                "set HUBCACHE_LOCK_TIMEOUT (seconds) to wait longer; if the holder is gone, its lock is released \
                 with it (flock), so a stuck wait means a live process"
                    .into(),
            ],
            LockError::Io { .. } => vec![
                "check that the cache's .locks folder is writable".into(),
                "on a file system without flock, set HUBCACHE_DISABLE_FLOCK=1".into(),
            ],
        }
    }
}

/// A flock (exclusive or shared) held until dropped. The lock file stays on disk, as in Python.
#[derive(Debug)]
pub struct LockedFile {
    file: File,
    path: PathBuf,
    held: bool,
}

impl LockedFile {
    /// Takes the exclusive lock on `path`, creating it (mode 0o664) and its folder if needed;
    /// calls `on_wait` when another process holds it, and gives up after `timeout`.
    pub async fn acquire(
        path: &Path,
        timeout: Duration,
        on_wait: impl Fn(&Path, Duration),
    ) -> Result<LockedFile, LockError> {
        Self::acquire_async(path, false, timeout, on_wait).await
    }

    /// Takes a shared lock on `path` (many holders at once, none while an exclusive holder
    /// has it); waits like [`LockedFile::acquire`].
    pub async fn acquire_shared(
        path: &Path,
        timeout: Duration,
        on_wait: impl Fn(&Path, Duration),
    ) -> Result<LockedFile, LockError> {
        Self::acquire_async(path, true, timeout, on_wait).await
    }

    /// Takes the exclusive lock on `path` from synchronous code, blocking the thread while
    /// it waits (reported through `on_wait` like [`LockedFile::acquire`]).
    pub fn acquire_blocking(
        path: &Path,
        timeout: Duration,
        on_wait: impl Fn(&Path, Duration),
    ) -> Result<LockedFile, LockError> {
        Self::acquire_sync(path, false, timeout, on_wait)
    }

    /// Takes a shared lock on `path` from synchronous code (see [`LockedFile::acquire_shared`]).
    pub fn acquire_shared_blocking(
        path: &Path,
        timeout: Duration,
        on_wait: impl Fn(&Path, Duration),
    ) -> Result<LockedFile, LockError> {
        Self::acquire_sync(path, true, timeout, on_wait)
    }

    fn acquire_sync(
        path: &Path,
        shared: bool,
        timeout: Duration,
        on_wait: impl Fn(&Path, Duration),
    ) -> Result<LockedFile, LockError> {
        let file = open_lock_file(path)?;
        let mut waiter = Waiter::new(timeout);
        loop {
            if let Some(held) = try_take(&file, shared).map_err(|e| io_error(path, e))? {
                return Ok(LockedFile::new(file, path, held));
            }
            waiter.tick(path, &on_wait)?;
            std::thread::sleep(POLL);
        }
    }

    /// Takes the exclusive lock on `path` if nobody holds it; `None` when another process does.
    pub fn try_acquire(path: &Path) -> Result<Option<LockedFile>, LockError> {
        let file = open_lock_file(path)?;
        match try_take(&file, false) {
            Ok(Some(held)) => Ok(Some(LockedFile::new(file, path, held))),
            Ok(None) => Ok(None),
            Err(e) => Err(io_error(path, e)),
        }
    }

    async fn acquire_async(
        path: &Path,
        shared: bool,
        timeout: Duration,
        on_wait: impl Fn(&Path, Duration),
    ) -> Result<LockedFile, LockError> {
        let file = open_lock_file(path)?;
        let mut waiter = Waiter::new(timeout);
        loop {
            if let Some(held) = try_take(&file, shared).map_err(|e| io_error(path, e))? {
                return Ok(LockedFile::new(file, path, held));
            }
            waiter.tick(path, &on_wait)?;
            tokio::time::sleep(POLL).await;
        }
    }

    fn new(file: File, path: &Path, held: bool) -> LockedFile {
        LockedFile {
            file,
            path: path.to_path_buf(),
            held,
        }
    }

    /// Whether the flock is really held (false where flock is off or unsupported).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockedFile {
    fn drop(&mut self) {
        if self.held {
            let _ = self.file.unlock();
        }
    }
}

fn io_error(path: &Path, source: io::Error) -> LockError {
    LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating with mode 0o664, as Python does) the lock file and its folder.
fn open_lock_file(path: &Path) -> Result<File, LockError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(path, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o664)
        .open(path)
        .map_err(|e| io_error(path, e))
}

/// One non-blocking attempt: `Some(held)` when granted (`held` is false where flock is off or
/// unsupported), `None` when someone else holds it.
fn try_take(file: &File, shared: bool) -> io::Result<Option<bool>> {
    if FLOCK_DISABLED.load(Ordering::Relaxed) {
        return Ok(Some(false));
    }
    let attempt = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match attempt {
        Ok(()) => Ok(Some(true)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) if flock_unsupported(&e) => Ok(Some(false)),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Errors meaning "this file system cannot flock", not "someone holds it".
fn flock_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(code) if code == libc::ENOLCK || code == libc::EOPNOTSUPP || code == libc::ENOSYS)
}

/// Tracks one wait: when to report it and when to give up.
struct Waiter {
    start: Instant,
    timeout: Duration,
    last_report: Option<Instant>,
}

impl Waiter {
    fn new(timeout: Duration) -> Waiter {
        Waiter {
            start: Instant::now(),
            timeout,
            last_report: None,
        }
    }

    /// Called after each failed attempt: errors out past the timeout, reports when due.
    fn tick(&mut self, path: &Path, on_wait: &impl Fn(&Path, Duration)) -> Result<(), LockError> {
        let waited = self.start.elapsed();
        if waited >= self.timeout {
            return Err(LockError::Timeout {
                path: path.to_path_buf(),
                waited,
            });
        }
        let due = match self.last_report {
            None => waited >= REPORT_AFTER,
            Some(t) => t.elapsed() >= REPORT_EVERY,
        };
        if due {
            on_wait(path, waited);
            self.last_report = Some(Instant::now());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn second_holder_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".locks/models--a/e.lock");
        let first = LockedFile::acquire(&path, Duration::from_secs(1), |_, _| {})
            .await
            .unwrap();
        let waits = AtomicUsize::new(0);
        let err = LockedFile::acquire(&path, Duration::from_millis(1500), |_, _| {
            waits.fetch_add(1, Ordering::SeqCst);
        })
        .await
        .unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }));
        assert!(err.to_string().contains("e.lock"));
        assert_eq!(waits.load(Ordering::SeqCst), 1);
        drop(first);
        LockedFile::acquire(&path, Duration::from_millis(200), |_, _| {})
            .await
            .unwrap();
        assert!(path.exists(), "lock file is left in place");
    }

    #[tokio::test]
    async fn shared_holders_coexist_and_exclude_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".locks/hubcache-gc.lock");
        let a = LockedFile::acquire_shared(&path, Duration::from_secs(1), |_, _| {})
            .await
            .unwrap();
        let b = LockedFile::acquire_shared(&path, Duration::from_secs(1), |_, _| {})
            .await
            .unwrap();
        assert!(
            LockedFile::try_acquire(&path).unwrap().is_none(),
            "shared holders block exclusive"
        );
        let err = LockedFile::acquire_blocking(&path, Duration::from_millis(200), |_, _| {}).unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }));
        drop(a);
        assert!(LockedFile::try_acquire(&path).unwrap().is_none());
        drop(b);
        let exclusive = LockedFile::try_acquire(&path)
            .unwrap()
            .expect("free once both are gone");
        let err = LockedFile::acquire_shared(&path, Duration::from_millis(200), |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }), "exclusive blocks shared");
        drop(exclusive);
        LockedFile::acquire_blocking(&path, Duration::from_millis(200), |_, _| {}).unwrap();
    }
}
