//! Inter-process file locks on `.locks/<repo folder>/<etag>.lock`, compatible with Python.
//!
//! huggingface_hub (through `filelock`) takes BSD `flock` on the same path, so a Python process
//! and hubcache exclude each other. We try the lock first; only on contention do we report that
//! we wait (once, then every 10 s), and we wait up to a bound instead of giving up after seconds.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// An exclusive flock held until dropped. The lock file stays on disk, as in Python.
#[derive(Debug)]
pub struct LockedFile {
    file: File,
    path: PathBuf,
}

impl LockedFile {
    /// Takes the exclusive lock on `path`, creating it (mode 0o664) and its folder if needed;
    /// calls `on_wait` when another process holds it, and gives up after `timeout`.
    pub async fn acquire(
        path: &Path,
        timeout: Duration,
        on_wait: impl Fn(&Path, Duration),
    ) -> Result<LockedFile, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o664)
            .open(path)
            .map_err(io_err)?;
        let start = Instant::now();
        let mut last_report: Option<Instant> = None;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(LockedFile {
                        file,
                        path: path.to_path_buf(),
                    })
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(LockError::Timeout {
                    path: path.to_path_buf(),
                    waited,
                });
            }
            let due = match last_report {
                None => waited >= REPORT_AFTER,
                Some(t) => t.elapsed() >= REPORT_EVERY,
            };
            if due {
                on_wait(path, waited);
                last_report = Some(Instant::now());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockedFile {
    fn drop(&mut self) {
        let _ = self.file.unlock();
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
}
