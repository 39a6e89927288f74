//! Talking to a Hub-compatible endpoint: URLs, metadata (HEAD), listings, verified transfers.

pub mod client;
pub mod error;
pub mod retry;
pub mod transfer;
pub mod url;

pub use client::{ClientConfig, FileMetadata, HubClient, RepoInfo, TreeEntry, DEFAULT_CONNECTION_BUDGET};
pub use error::{HubError, RedirectRefusal};
pub use retry::RetryPolicy;
