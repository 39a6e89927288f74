//! A blocking facade over the async [`crate::Hub`] for synchronous callers.

use std::path::PathBuf;

use crate::cache::CacheLookup;
use crate::error::{Error, Result};
use crate::repo::{Repo, RepoPath, Revision};
use crate::{FileRequest, HubBuilder, SnapshotRequest};

/// A [`crate::Hub`] with its own runtime; each call blocks until done.
pub struct Hub {
    inner: crate::Hub,
    runtime: tokio::runtime::Runtime,
}

impl Hub {
    /// Builds the async hub and a small multi-threaded runtime for it.
    pub fn new(builder: HubBuilder) -> Result<Hub> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the runtime for", PathBuf::from("hubcache"), e))?;
        Ok(Hub {
            inner: builder.build()?,
            runtime,
        })
    }

    /// The async hub underneath.
    pub fn inner(&self) -> &crate::Hub {
        &self.inner
    }

    /// Runs a future of the async API (e.g. [`crate::models`]) on this hub's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// See [`crate::Hub::download_file`].
    pub fn download_file(&self, req: &FileRequest) -> Result<PathBuf> {
        self.runtime.block_on(self.inner.download_file(req))
    }

    /// See [`crate::Hub::snapshot`].
    pub fn snapshot(&self, req: &SnapshotRequest) -> Result<PathBuf> {
        self.runtime.block_on(self.inner.snapshot(req))
    }

    /// See [`crate::Hub::lookup`].
    pub fn lookup(&self, repo: &Repo, revision: &Revision, path: &RepoPath) -> CacheLookup {
        self.inner.lookup(repo, revision, path)
    }
}
