//! hf-hub 0.4's API, used the way candle's examples (sync) and TEI/TGI (tokio) use it, against
//! the in-process fake Hub. One binary; the environment-dependent cases are in `tests/env.rs`.

// Shared fixtures: a fake Hub with one model, a dataset and a space, and a temp cache.
mod common;
// `Repo`, `RepoType`, `Cache`, `CacheRepo` (no network).
mod cache;
// `api::sync`: builder, `get`, `download`, `download_with_progress`, `info`, `url`, errors.
mod sync;
// `api::tokio`: the same, async, plus `high`, `with_max_files`, `with_chunk_size`.
mod tokio_api;
