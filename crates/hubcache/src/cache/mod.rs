//! The huggingface_hub cache: layout, read-only lookups, the writes that change it, and its
//! management (scan, delete and prune, eviction, verify).

pub mod add_folder;
pub(crate) mod commit;
pub mod delete;
pub mod error;
pub mod evict;
pub mod layout;
pub mod lookup;
pub mod scan;
pub mod shared_store;
#[cfg(test)]
pub(crate) mod testutil;
pub mod tree;
pub mod verify;
pub mod walk;
pub mod writer;

pub use error::CacheError;
pub use layout::{CacheLayout, RepoLayout};
pub use lookup::CacheLookup;
pub use writer::{BlobLock, CacheWriter, CleanupLock, WriteOptions};
