//! Retry policy (pure): which failures are transient and how long to wait before the next try.

use std::time::Duration;

/// Exponential backoff with a cap, honouring server hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First delay.
    pub base: Duration,
    /// Longest delay between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// huggingface_hub's backoff: 5 retries, 1 s doubling up to 8 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Delay before retry number `retry` (0-based); a server hint wins (plus one second, as
    /// Python does), but is never shorter than zero nor longer than 5 minutes.
    pub fn delay(&self, retry: u32, server_hint: Option<Duration>) -> Duration {
        if let Some(hint) = server_hint {
            return (hint + Duration::from_secs(1)).min(Duration::from_secs(300));
        }
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max_delay)
    }
}

/// Statuses worth retrying: 408, 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parses `Retry-After` holding an integer number of seconds.
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Parses an exhausted `RateLimit` header (`"<type>";r=0;t=<secs>`) into the reset delay.
pub fn parse_ratelimit(value: Option<&str>) -> Option<Duration> {
    let value = value?;
    let mut remaining = None;
    let mut reset = None;
    for part in value.split(';').map(str::trim) {
        if let Some(r) = part.strip_prefix("r=") {
            remaining = r.parse::<u64>().ok();
        } else if let Some(t) = part.strip_prefix("t=") {
            reset = t.parse::<u64>().ok();
        }
    }
    match (remaining, reset) {
        (Some(0), Some(t)) => Some(Duration::from_secs(t)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (0..6).map(|i| p.delay(i, None).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 8, 8]);
        assert_eq!(p.delay(40, None), Duration::from_secs(8));
        assert_eq!(p.delay(0, Some(Duration::from_secs(3))), Duration::from_secs(4));
        assert_eq!(p.delay(0, Some(Duration::from_secs(100_000))), Duration::from_secs(300));
    }

    #[test]
    fn hints() {
        assert_eq!(parse_retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_ratelimit(Some("\"api\";r=0;t=55")), Some(Duration::from_secs(55)));
        assert_eq!(parse_ratelimit(Some("\"api\";r=3;t=55")), None);
        assert_eq!(parse_ratelimit(Some("garbage")), None);
        assert!(is_retryable_status(503) && is_retryable_status(429) && !is_retryable_status(404));
    }
}
