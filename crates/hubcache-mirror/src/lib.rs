//! hubcache-mirror: a Hub-compatible HTTP server over a standard Hugging Face cache folder.
//!
//! Point `HF_ENDPOINT` of any client (huggingface_hub, transformers, hubcache, hf-hub) at it.
//! It serves what the cache holds (a branch resolves through `refs/`), and with an upstream it
//! fetches misses through the hubcache client into the same cache first — with the same locks
//! as the CLI and Python, so all of them can share the folder.
//!
//! Request flow: accept (connection cap) and read the request under the idle and header
//! bounds (`conn`) → parse and validate the path ([`route`]) → check the client token
//! (`auth`) → resolve the revision to a commit (cache `refs/`, else upstream: `upstream`) →
//! answer from the cache ([`store`]), fetching the file from upstream on a miss → stream the
//! bytes with `Range` support (`serve_file`) or answer the Hub's JSON shapes (`api`).

#![warn(missing_docs)]

mod api;
mod auth;
mod config;
mod conn;
#[cfg(feature = "s3")]
mod pull_s3;
pub mod range;
pub mod respond;
pub mod route;
mod serve_file;
mod server;
pub mod store;
mod upstream;

pub use config::{
    default_max_connections, ConnectionLimits, MirrorConfig, MirrorError, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
};
pub use server::{bind, Mirror};
pub use upstream::REF_TTL;
