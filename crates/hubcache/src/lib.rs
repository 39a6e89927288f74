//! hubcache: Hugging Face Hub downloads into the standard cache, offline resolution, and
//! verified transfers — byte-compatible with Python's huggingface_hub.
//!
//! Start with [`Settings::from_env`] and [`HubBuilder::from_settings`] (async), or
//! [`blocking::Hub`] for synchronous callers.
//!
//! # Where things go
//!
//! Layers point one way: `repo`, `settings`, `fs`, `lock`, `digest`, `units`, `pool` at the
//! bottom; `cache` and `hub` beside each other, never naming one another; `download` and
//! `models` above both; `deploy` and `blocking` on top. The mirror and the CLI are other crates.
//!
//! - **Digests** (which digest a blob name names, hashing files and streams): [`digest`].
//! - **The Hub's content rules** (which files are LFS, pointer files): [`repo::lfs`].
//! - **Every change to a cache's repo folders** (blobs, snapshot links, refs, `.no_exist`,
//!   `trees/`): through a [`cache::CacheWriter`], which holds the clean-up lock shared and places
//!   and links each blob under its etag lock. `cache rm`/`prune` take [`cache::CleanupLock`].
//! - **Walking a cached snapshot**: [`cache::walk`]; revisions to commits: [`cache::lookup`].
//! - **New transfer backends** (parallel ranges, Xet): under [`hub::transfer`], beside
//!   `stream.rs` (one GET) and `sink.rs` (temp file and in-order hash).
//! - **Bounds against hostile servers** (redirects, body caps, deadlines, retry budgets):
//!   [`hub::client`] and [`hub::retry`].

#![warn(missing_docs)]

pub mod blocking;
pub mod cache;
#[cfg(feature = "deploy")]
pub mod deploy;
pub mod digest;
pub mod download;
pub mod error;
pub mod fs;
pub mod hub;
pub mod lock;
pub mod models;
pub mod pool;
pub mod progress;
pub mod repo;
pub mod settings;
pub mod units;

pub use cache::CacheLookup;
pub use download::{FileRequest, Hub, HubBuilder, SnapshotRequest};
pub use error::{Error, OfflineReason, Result};
pub use progress::{FileProgress, NoProgress, Reporter};
pub use repo::{CommitHash, NameError, Repo, RepoId, RepoPath, RepoType, Revision};
pub use settings::{Settings, Token};
