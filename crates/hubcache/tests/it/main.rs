//! The library's integration tests against the fake Hub on 127.0.0.1: its request log proves
//! what was (not) asked. One test binary; each module below says what belongs in it.

#![allow(clippy::unwrap_used)]

/// The fast hub builder every test module uses.
mod common;

/// Single files and snapshots: the cache layout, offline, fallbacks, retries, faults.
mod download;
/// Hostile or broken servers: each class classified, bounded and refused with a typed error.
mod hostile;
/// `models`: from_pretrained-style resolution of configs, weights and tokenizers.
mod models;
/// Ranged parts over several connections: per-part faults, fallbacks, resume from parts.
mod ranged;
/// Resume across calls from kept temp files, and wrong bytes never resumed from.
mod resume;
/// Reuse before transfer: another repo's blob, or a shared-store payload, instead of a download.
mod reuse;
