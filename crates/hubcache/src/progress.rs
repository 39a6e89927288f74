//! Progress reporting: the library calls a [`Reporter`]; the CLI draws bars with it.

use std::path::Path;
use std::time::Duration;

/// Receives progress and notices from downloads. Every method has a do-nothing default.
pub trait Reporter: Send + Sync {
    /// A file transfer starts; the returned handle receives its progress.
    fn file_started(&self, _name: &str, _total: Option<u64>) -> Box<dyn FileProgress> {
        Box::new(NoProgress)
    }
    /// Another process holds the lock for a file we need; we wait for it.
    fn waiting_for_lock(&self, _lock: &Path, _waited: Duration) {}
    /// Something the user should know that is not an error (e.g. serving a cached copy).
    fn warning(&self, _message: &str) {}
    /// Detail worth a log line but not a warning (e.g. a best-effort write the cache refused).
    fn debug(&self, _message: &str) {}
    /// A snapshot (or `sync`) starts fetching `files` files of `bytes` bytes together.
    fn batch_started(&self, _files: usize, _bytes: u64) {}
}

/// Progress of one file transfer.
pub trait FileProgress: Send {
    /// `n` more bytes arrived.
    fn advance(&mut self, _n: u64) {}
    /// The transfer starts again from zero.
    fn restart(&mut self) {}
    /// The transfer finished (successfully or not).
    fn finish(&mut self) {}
    /// How the transfer runs, for a verbose log (connections, parts, retries, fallbacks).
    fn detail(&mut self, _message: &str) {}
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Reporter for NoProgress {}
impl FileProgress for NoProgress {}
