//! hubcache-mirror: a Hub-compatible HTTP server over a standard Hugging Face cache folder.
//!
//! Point `HF_ENDPOINT` of any client (huggingface_hub, transformers, hubcache, hf-hub) at it.
//! It serves what the cache holds (a branch resolves through `refs/`), and with an upstream it
//! fetches misses through the hubcache client into the same cache first — with the same locks
//! as the CLI and Python, so all of them can share the folder.
//!
//! Request flow: parse and validate the path ([`route`]) → check the client token → resolve the
//! revision to a commit (cache `refs/`, else upstream) → answer from the cache ([`store`]),
//! fetching the file from upstream on a miss → stream the bytes with `Range` support.

pub mod range;
pub mod respond;
pub mod route;
mod server;
pub mod store;

pub use server::{bind, Mirror, MirrorConfig, MirrorError};
