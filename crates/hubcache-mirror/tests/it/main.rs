//! Integration tests of the mirror: an in-process `Mirror::serve` on 127.0.0.1:0, a cache folder
//! written by hand or filled through a `FakeHub` upstream, and the hubcache library or raw TCP
//! as the client. One binary; shared helpers live in `common`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Test mirror on a background runtime, hand-written cache folders, a raw HTTP/1.1 client.
mod common;

/// Connection abuse: idle and dripping clients, the header/idle bounds, the connection cap.
#[cfg(target_os = "linux")]
mod abuse;
/// Hub JSON shapes: repo info, tree pagination, paths-info.
mod api;
/// `Authorization` with `--token-file` tokens.
mod auth;
/// File answers: HEAD/GET headers, `Range`, and `FsStore` describing symlinked and copied files.
mod files;
/// Pull-through: single flight to the upstream, the ref TTL, upstream errors.
mod pull_through;
/// Graceful shutdown: the listener closes, requests under way finish within the drain bound.
mod shutdown;
