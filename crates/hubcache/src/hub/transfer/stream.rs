//! The sequential GET/resume loop of one transfer.
//!
//! Each attempt asks for the bytes the file does not hold yet (`Range: bytes=<held>-`). A
//! server that answers with the whole file (or 416) makes the file start over from zero. After
//! a failed attempt a [`ResumeBudget`] decides: permanent failures stop at once; transient ones
//! are retried, and only attempts that leave the file larger by at least
//! [`MIN_NET_PROGRESS`](crate::hub::retry::MIN_NET_PROGRESS) than ever before reset the count,
//! so a server that sends a few bytes, closes and ignores `Range` costs
//! `max_retries + 1` attempts, not an endless loop.

use std::time::Duration;

use reqwest::Response;
use tokio::time::Instant;

use super::sink::Sink;
use super::{TransferError, TransferRequest};
use crate::hub::client::{transport_error, HubClient};
use crate::hub::error::HubError;
use crate::hub::retry::ResumeBudget;
use crate::hub::url;
use crate::progress::FileProgress;

/// Least bytes a transfer must receive within each read-timeout window
/// (`HF_HUB_DOWNLOAD_TIMEOUT`, 10 s by default: about 6.5 KiB/s), unless the file ends first.
/// `HF_HUB_DOWNLOAD_TIMEOUT` bounds each read, as in Python; this rule also catches a server
/// that drips a byte now and then and would never time out.
pub const MIN_BYTES_PER_WINDOW: u64 = 64 << 10;

/// How one attempt ended, when it did not fail the whole transfer.
enum Attempt {
    /// Every byte arrived.
    Done,
    /// The server cannot serve the rest (416): the file was restarted, ask again from zero.
    Restarted,
    /// The attempt failed; the budget decides on another.
    Failed(HubError),
}

/// Fetches the bytes the sink does not hold yet, resuming until done or the budget gives up.
pub(super) async fn fetch(
    client: &HubClient,
    req: &TransferRequest<'_>,
    limit: u64,
    sink: &mut Sink,
    progress: &mut dyn FileProgress,
) -> Result<(), TransferError> {
    let mut budget = ResumeBudget::new(client.config().transfer_retry(), sink.written());
    let mut range_ignored = false;
    loop {
        let err = match attempt(client, req, limit, sink, progress, &mut range_ignored).await? {
            Attempt::Done => return Ok(()),
            Attempt::Restarted => continue,
            Attempt::Failed(e) => e,
        };
        sink.flush().await?;
        match budget.after_failure(sink.written(), err.is_transient(), err.retry_after()) {
            Some(delay) => tokio::time::sleep(delay).await,
            // Permanent, or nothing ever arrived: the failure itself is the answer.
            None if !err.is_transient() || (sink.written() == 0 && !range_ignored) => return Err(err.into()),
            None => {
                return Err(TransferError::CutOff {
                    attempts: budget.attempts(),
                    received: sink.written(),
                    kept: false,
                    range_ignored,
                    source: err,
                })
            }
        }
    }
}

/// One GET from the sink's current length to the end (or a failure).
async fn attempt(
    client: &HubClient,
    req: &TransferRequest<'_>,
    limit: u64,
    sink: &mut Sink,
    progress: &mut dyn FileProgress,
    range_ignored: &mut bool,
) -> Result<Attempt, TransferError> {
    let offset = sink.written();
    let mut resp = match client.get_content(req.location, offset).await {
        Ok(r) => r,
        Err(HubError::Status { status: 416, .. }) if offset > 0 => {
            // The server cannot serve the rest (a leftover longer than its file?): start over.
            sink.restart().await?;
            progress.restart();
            return Ok(Attempt::Restarted);
        }
        Err(e) => return Ok(Attempt::Failed(e)),
    };
    let start = match body_start(&resp, req.location, offset) {
        Ok(start) => start,
        Err(e) => return Ok(Attempt::Failed(e)),
    };
    if start != offset {
        // The server ignored our Range: start over from byte zero.
        *range_ignored = true;
        sink.restart().await?;
        progress.restart();
    }
    if let Err(e) = check_length(&resp, req, limit, start) {
        return Ok(Attempt::Failed(e));
    }
    let window = client.config().read_timeout;
    let mut rate = Rate::new(window, req.expected_size, start);
    loop {
        let chunk = match rate.deadline() {
            Some(at) => match tokio::time::timeout_at(at, resp.chunk()).await {
                Ok(chunk) => chunk,
                Err(_) => match rate.window_ended(sink.written()) {
                    Ok(()) => continue,
                    Err(received) => {
                        return Ok(Attempt::Failed(HubError::TooSlow {
                            url: url::redact(req.location),
                            received,
                            min: MIN_BYTES_PER_WINDOW,
                            window,
                        }))
                    }
                },
            },
            None => resp.chunk().await,
        };
        match chunk {
            Ok(Some(chunk)) => {
                let n = chunk.len() as u64;
                if sink.written() + n > limit {
                    return Err(TransferError::Size {
                        expected: limit,
                        received: sink.written() + n,
                    });
                }
                sink.push(chunk).await?;
                progress.advance(n);
                rate.received(n);
            }
            Ok(None) => return Ok(Attempt::Done),
            Err(e) => return Ok(Attempt::Failed(transport_error(req.location, &e))),
        }
    }
}

/// Where the body of a content answer starts in the file: `offset` for a 206 that starts
/// there, 0 for a 200; anything else is refused.
fn body_start(resp: &Response, location: &str, offset: u64) -> Result<u64, HubError> {
    let status = resp.status().as_u16();
    match status {
        200 => Ok(0),
        206 => {
            let range = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok());
            match range.and_then(super::parse_content_range) {
                Some((start, _, _)) if start == offset => Ok(offset),
                _ => Err(HubError::BadLength {
                    url: url::redact(location),
                    announced: format!("Content-Range {}", range.unwrap_or("(none)").escape_debug()),
                    expected: format!("bytes {offset}-"),
                }),
            }
        }
        _ => Err(HubError::Status {
            status,
            url: url::redact(location),
            message: Some("unexpected status for a content request".into()),
        }),
    }
}

/// Refuses an answer whose `Content-Length` cannot be the rest of the file.
fn check_length(resp: &Response, req: &TransferRequest<'_>, limit: u64, start: u64) -> Result<(), HubError> {
    let Some(announced) = resp.content_length() else {
        return Ok(());
    };
    let (fits, expected) = match req.expected_size {
        Some(size) => (
            announced == size.saturating_sub(start),
            format!("{} bytes", size.saturating_sub(start)),
        ),
        None => (
            announced <= limit.saturating_sub(start),
            format!("at most {} bytes", limit.saturating_sub(start)),
        ),
    };
    if fits {
        return Ok(());
    }
    Err(HubError::BadLength {
        url: url::redact(req.location),
        announced: format!("Content-Length {announced}"),
        expected,
    })
}

/// The minimum-progress rule: at least [`MIN_BYTES_PER_WINDOW`] (or the rest of the file)
/// within each window.
pub(super) struct Rate {
    window: Duration,
    /// End of the current window; `None` when the window is zero (no rule).
    until: Option<Instant>,
    in_window: u64,
    size: Option<u64>,
    /// File length at the start of the current window.
    at_start: u64,
}

impl Rate {
    pub(super) fn new(window: Duration, size: Option<u64>, start: u64) -> Rate {
        Rate {
            window,
            until: (!window.is_zero()).then(|| Instant::now() + window),
            in_window: 0,
            size,
            at_start: start,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.until
    }

    pub(super) fn received(&mut self, n: u64) {
        self.in_window += n;
    }

    /// The window ended with the file at `held` bytes: `Ok` starts the next one, `Err` holds
    /// the too few bytes received.
    pub(super) fn window_ended(&mut self, held: u64) -> Result<(), u64> {
        let rest = self.size.map_or(u64::MAX, |s| s.saturating_sub(self.at_start));
        if self.in_window < MIN_BYTES_PER_WINDOW.min(rest) {
            return Err(self.in_window);
        }
        self.in_window = 0;
        self.at_start = held;
        self.until = Some(Instant::now() + self.window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_progress_per_window() {
        let mut r = Rate::new(Duration::from_secs(10), Some(10 << 20), 0);
        r.received(MIN_BYTES_PER_WINDOW);
        assert_eq!(r.window_ended(MIN_BYTES_PER_WINDOW), Ok(()));
        r.received(27);
        assert_eq!(r.window_ended(MIN_BYTES_PER_WINDOW + 27), Err(27), "a drip is a stall");
        // Near the end, the rest of the file is enough.
        let mut r = Rate::new(Duration::from_secs(10), Some(1000), 900);
        r.received(50);
        assert_eq!(r.window_ended(950), Err(50));
        let mut r = Rate::new(Duration::from_secs(10), Some(1000), 900);
        r.received(100);
        assert_eq!(r.window_ended(1000), Ok(()));
        assert!(
            Rate::new(Duration::ZERO, None, 0).deadline().is_none(),
            "no window, no rule"
        );
    }
}
