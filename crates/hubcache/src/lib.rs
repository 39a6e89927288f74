//! hubcache: Hugging Face Hub downloads into the standard cache, offline resolution, and
//! verified transfers — byte-compatible with Python's huggingface_hub.
//!
//! Start with [`Settings::from_env`] and [`HubBuilder::from_settings`] (async), or
//! [`blocking::Hub`] for synchronous callers.

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
