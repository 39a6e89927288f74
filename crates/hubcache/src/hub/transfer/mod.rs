//! Verified transfers: one file streamed into a temp file while it is hashed, resumed with
//! `Range` when the connection breaks.
//!
//! - [`stream`]: the sequential GET/resume loop, judged by a [`ResumeBudget`]
//!   (`hub::retry`): attempts that leave the file no larger count against the retry policy;
//! - [`sink`]: the temp-file writer on a thread of its own (no file I/O on async workers),
//!   which also feeds the in-order hash (`crate::digest`);
//! - [`ranged`]: large files as `Range` parts over several connections ([`download_parts`]),
//!   shaped by the pure [`plan`] (part sizes, connection count, slow-part split), written at
//!   their offsets by `parts_sink` (positional writes, hash of the contiguous prefix, a record
//!   of the ranges held for a later run). A server that does not serve ranges as it should gets
//!   the sequential stream instead, from byte zero.
//!
//! A transfer may start from bytes already on disk (a temp file left by an earlier run): the
//! sink hashes that prefix back from the file before the bytes that arrive, while the request
//! asks for `Range: bytes=<len>-`. Nothing about the prefix is trusted: the final size and
//! digest check covers it, and the caller discards a resumed file that fails it.
//!
//! **Bounds.** Memory stays at a few MiB per transfer whatever the file size (bounded queues to
//! the writer and hasher threads). A transfer must receive at least [`MIN_BYTES_PER_WINDOW`]
//! within each read-timeout window (`HF_HUB_DOWNLOAD_TIMEOUT`, a per-read timeout as in
//! Python), so a server dripping bytes is a stall ([`HubError::TooSlow`]), resumed like a
//! cut-off. An answer whose `Content-Length` or `Content-Range` does not fit the file is
//! refused at once ([`HubError::BadLength`]).
//!
//! [`ResumeBudget`]: super::retry::ResumeBudget

mod parts_sink;
pub mod plan;
mod ranged;
mod sink;
mod stream;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::client::HubClient;
use super::error::HubError;
use crate::digest::DigestKind;
use crate::progress::FileProgress;

pub use plan::{RangeSet, RangedConfig, DEFAULT_MAX_CONNECTIONS};
pub use ranged::MAX_REFRESHES;
pub use stream::MIN_BYTES_PER_WINDOW;

/// Largest body accepted when the size was not announced.
const MAX_UNANNOUNCED: u64 = 50_000_000_000;

/// A `Content-Range: bytes <first>-<last>/<total>` value: `(first, last, total)`, the total
/// `None` when the server sent `*`. Anything else (`bytes */N`, other units) is `None`.
pub(super) fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, total))
}

/// What to fetch and how to check it.
#[derive(Debug, Clone, Copy)]
pub struct TransferRequest<'a> {
    /// Where to GET the content (redirects are followed and checked).
    pub location: &'a str,
    /// The etag: names the digest (sha256 for LFS files, git sha1 for regular ones).
    pub etag: &'a str,
    /// The announced size, when known.
    pub expected_size: Option<u64>,
    /// Bytes the file already holds (0: empty); they are hashed from disk, only the rest is
    /// requested.
    pub resume_from: u64,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The server or the connection failed, on the first attempt or permanently.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The transfer was cut off (or stalled) again and again without progress until the retry
    /// policy gave up.
    #[error("the transfer was cut off {attempts} times without progress ({received} bytes received{})", if *.range_ignored { ", and the server ignores Range requests" } else { "" })]
    CutOff {
        /// Attempts made.
        attempts: u32,
        /// Bytes the temp file held at the end.
        received: u64,
        /// The temp file is kept for a later run to resume from (set by the caller that keeps it).
        kept: bool,
        /// The server answered a `Range` request with the whole file (a resume cannot help).
        range_ignored: bool,
        /// The last failure.
        #[source]
        source: HubError,
    },
    /// Writing the temp file failed.
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        /// The temp file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The body was longer or shorter than announced.
    #[error("size mismatch: expected {expected} bytes, received {received}")]
    Size {
        /// Announced size.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The content does not hash to its etag.
    #[error("content does not match its hash: expected {kind} {expected}, got {actual}")]
    Hash {
        /// Digest kind.
        kind: DigestKind,
        /// The etag.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
}

impl TransferError {
    /// The Hub error underneath, if any.
    pub fn hub_error(&self) -> Option<&HubError> {
        match self {
            TransferError::Hub(h) | TransferError::CutOff { source: h, .. } => Some(h),
            _ => None,
        }
    }

    /// Whether the temp file is worth keeping for a later run: bytes cut off on their way
    /// from a server that honours `Range`.
    pub fn is_resumable(&self) -> bool {
        matches!(self, TransferError::CutOff { received, range_ignored: false, source, .. }
            if *received > 0 && source.is_transient())
    }

    /// Records whether the caller kept the temp file (only then does a hint promise a resume).
    pub fn with_kept(mut self, keep: bool) -> TransferError {
        if let TransferError::CutOff { kept, .. } = &mut self {
            *kept = keep;
        }
        self
    }
}

/// Downloads `req.location` into `file` (opened for reading and writing, holding
/// `req.resume_from` bytes), checks the size and the digest named by the etag, and returns the
/// byte count. Broken transfers resume from where they stopped; a server that ignores `Range`
/// (or cannot satisfy it) makes the transfer restart from zero.
pub async fn download(
    client: &HubClient,
    req: &TransferRequest<'_>,
    file: &mut File,
    path: &Path,
    progress: &mut dyn FileProgress,
) -> Result<u64, TransferError> {
    let kind = DigestKind::for_etag(req.etag);
    let limit = req.expected_size.unwrap_or(MAX_UNANNOUNCED);
    if req.resume_from > limit {
        return Err(TransferError::Size {
            expected: limit,
            received: req.resume_from,
        });
    }
    let io_err = |source: io::Error| TransferError::Io {
        path: path.to_path_buf(),
        source,
    };
    let handle = file.try_clone().map_err(io_err)?;
    let mut sink = sink::Sink::start(handle, path, kind, req.expected_size, req.resume_from).map_err(io_err)?;
    progress.advance(req.resume_from);
    // A leftover that already holds every byte only needs its check.
    let complete = req.resume_from > 0 && req.expected_size == Some(req.resume_from);
    if !complete {
        // One connection of the client's budget for the whole stream, its resumes included.
        let _connection = client.connection().await;
        if let Err(e) = stream::fetch(client, req, limit, &mut sink, progress).await {
            // Every byte received reaches the file, for a later run to resume from.
            let _ = sink.close().await;
            return Err(e);
        }
    }
    let written = sink.written();
    if let Some(expected) = req.expected_size {
        if written != expected {
            let _ = sink.close().await;
            return Err(TransferError::Size {
                expected,
                received: written,
            });
        }
    }
    let digest = sink.finish().await?;
    if let (Some(kind), Some(actual)) = (kind, digest) {
        if !actual.eq_ignore_ascii_case(req.etag) {
            return Err(TransferError::Hash {
                kind,
                expected: req.etag.to_string(),
                actual,
            });
        }
    }
    Ok(written)
}

/// What to fetch in parts and where the parts go.
#[derive(Debug, Clone, Copy)]
pub struct PartsRequest<'a> {
    /// Where to GET the content (redirects are followed and checked; may be a signed URL).
    pub location: &'a str,
    /// The resolve URL, asked again for a fresh location when a part gets a 403.
    pub resolve: Option<&'a str>,
    /// The etag: names the digest.
    pub etag: &'a str,
    /// The file size (announced by the HEAD).
    pub size: u64,
    /// The record of the ranges held, beside the temp file.
    pub record: &'a Path,
}

/// Downloads the bytes `file` (opened for reading and writing) does not hold yet as ranged
/// parts over several connections; `held` are the ranges an earlier run recorded (untrusted:
/// hashed back from the file). Checks the size and digest and returns the byte count. A server
/// that does not serve ranges as it should gets one plain stream from byte zero instead.
pub async fn download_parts(
    client: &HubClient,
    req: &PartsRequest<'_>,
    file: &mut File,
    path: &Path,
    held: RangeSet,
    progress: &mut dyn FileProgress,
) -> Result<u64, TransferError> {
    let kind = DigestKind::for_etag(req.etag);
    let io_err = |source: io::Error| TransferError::Io {
        path: path.to_path_buf(),
        source,
    };
    progress.advance(held.covered());
    let handle = file.try_clone().map_err(io_err)?;
    let sink = parts_sink::PartSink::start(handle, path, req.record, kind, req.size, held.clone()).map_err(io_err)?;
    let ranged_req = ranged::RangedRequest {
        location: req.location,
        resolve: req.resolve,
        etag: req.etag,
        size: req.size,
    };
    let done = match ranged::fetch(client, ranged_req, sink, &held, progress).await? {
        ranged::Ranged::Done(done) => done,
        ranged::Ranged::Fallback(_why) => {
            // Start over as one plain stream: the file and its record are reset first.
            let _ = std::fs::remove_file(req.record);
            file.set_len(0).map_err(io_err)?;
            progress.restart();
            let plain = TransferRequest {
                location: req.location,
                etag: req.etag,
                expected_size: Some(req.size),
                resume_from: 0,
            };
            let result = download(client, &plain, file, path, progress).await;
            // The signed location may have expired while the parts ran: resolve the file once
            // more and stream from there, keeping what arrived (a changed file: the 403 stands).
            let expired = matches!(&result, Err(TransferError::Hub(HubError::Status { status: 403, .. })));
            let (true, Some(resolve)) = (expired, req.resolve) else {
                return result;
            };
            let Some(location) = client.refresh_location(resolve, req.etag).await? else {
                return result;
            };
            progress.restart();
            let again = TransferRequest {
                location: &location,
                resume_from: file.metadata().map_err(io_err)?.len(),
                ..plain
            };
            return download(client, &again, file, path, progress).await;
        }
    };
    if done.read_back > 0 {
        progress.detail(&format!(
            "hash: {} read back from the file (written ahead of the prefix)",
            crate::units::format_size(done.read_back)
        ));
    }
    if done.held != req.size {
        return Err(TransferError::Size {
            expected: req.size,
            received: done.held,
        });
    }
    if let (Some(kind), Some(actual)) = (kind, done.digest) {
        if !actual.eq_ignore_ascii_case(req.etag) {
            return Err(TransferError::Hash {
                kind,
                expected: req.etag.to_string(),
                actual,
            });
        }
    }
    Ok(req.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, Some(1000))));
        assert_eq!(parse_content_range(" bytes 5-5/6 "), Some((5, 5, Some(6))));
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, 199, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range(""), None);
    }
}
