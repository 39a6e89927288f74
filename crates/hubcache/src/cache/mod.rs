//! The huggingface_hub cache: layout, read-only lookups and the writes that change it.

pub mod commit;
pub mod import;
pub mod layout;
pub mod lookup;
pub mod tree;

pub use layout::{CacheLayout, RepoLayout};
pub use lookup::CacheLookup;
