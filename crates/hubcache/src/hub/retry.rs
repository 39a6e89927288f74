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

impl RetryPolicy {
    /// The decision after a failed try when `retries` retries were already made: the delay
    /// before the next one, or `None` to stop (a permanent failure, or the retries are spent).
    pub fn next_delay(&self, retries: u32, retryable: bool, server_hint: Option<Duration>) -> Option<Duration> {
        (retryable && retries < self.max_retries).then(|| self.delay(retries, server_hint))
    }
}

/// Least net progress (bytes beyond the most ever held) that makes a failed transfer attempt
/// count as progress; a failed attempt that made less counts against the retries.
pub const MIN_NET_PROGRESS: u64 = 64 << 10;

/// The resume decision of one transfer (pure). Each failed attempt is judged by the bytes the
/// temp file holds when it ends: beyond the most ever held by at least [`MIN_NET_PROGRESS`],
/// it is progress and the count of fruitless attempts starts over; otherwise (a cut-off
/// without bytes, a restart from zero after the server ignored `Range`, a server that sends
/// a few bytes and closes) it counts against the policy's retries. So a server that never lets
/// the file grow costs at most `max_retries + 1` attempts, however often it answers.
#[derive(Debug, Clone)]
pub struct ResumeBudget {
    policy: RetryPolicy,
    most_held: u64,
    fruitless: u32,
    attempts: u32,
}

impl ResumeBudget {
    /// A budget for a transfer that starts with `start` bytes already on disk.
    pub fn new(policy: RetryPolicy, start: u64) -> ResumeBudget {
        ResumeBudget {
            policy,
            most_held: start,
            fruitless: 0,
            attempts: 0,
        }
    }

    /// Records a failed attempt that left `held` bytes on disk; returns the delay before the
    /// next attempt, or `None` to give up (a permanent failure, or too many fruitless tries).
    pub fn after_failure(&mut self, held: u64, retryable: bool, server_hint: Option<Duration>) -> Option<Duration> {
        self.attempts += 1;
        if held >= self.most_held.saturating_add(MIN_NET_PROGRESS) {
            self.most_held = held;
            self.fruitless = 0;
        } else {
            self.most_held = self.most_held.max(held);
            self.fruitless += 1;
        }
        // The first fruitless try after progress waits the base delay, as a first retry does.
        let retries = self.fruitless.saturating_sub(1);
        if self.fruitless == 0 {
            return retryable.then(|| self.policy.delay(0, server_hint));
        }
        self.policy.next_delay(retries, retryable, server_hint)
    }

    /// Attempts that failed so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
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
    fn next_delay_stops_on_permanent_or_spent() {
        let p = RetryPolicy {
            max_retries: 2,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        };
        assert_eq!(p.next_delay(0, true, None), Some(Duration::from_secs(1)));
        assert_eq!(p.next_delay(1, true, None), Some(Duration::from_secs(2)));
        assert_eq!(p.next_delay(2, true, None), None, "retries spent");
        assert_eq!(p.next_delay(0, false, None), None, "permanent");
        assert_eq!(RetryPolicy::none().next_delay(0, true, None), None);
    }

    #[test]
    fn resume_budget_counts_attempts_without_net_progress() {
        let p = RetryPolicy {
            max_retries: 2,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        };
        // A server that sends 27 bytes, closes and ignores Range: every attempt restarts from
        // zero and ends at 27 bytes, so only the retries of the policy are made.
        let mut b = ResumeBudget::new(p, 0);
        assert_eq!(b.after_failure(27, true, None), Some(Duration::from_secs(1)));
        assert_eq!(b.after_failure(27, true, None), Some(Duration::from_secs(2)));
        assert_eq!(b.after_failure(27, true, None), None);
        assert_eq!(b.attempts(), 3);

        // Real progress resets the count; cut-offs without bytes spend it.
        let mut b = ResumeBudget::new(p, 1000);
        for step in 1..=10u64 {
            let held = 1000 + step * MIN_NET_PROGRESS;
            assert_eq!(
                b.after_failure(held, true, None),
                Some(Duration::from_secs(1)),
                "{step}"
            );
        }
        let held = 1000 + 10 * MIN_NET_PROGRESS;
        assert!(b.after_failure(held, true, None).is_some());
        assert!(
            b.after_failure(held + 1, true, None).is_some(),
            "one byte is no progress"
        );
        assert_eq!(b.after_failure(held + 2, true, None), None);

        // A restart from zero that climbs back to where it was is no progress either.
        let mut b = ResumeBudget::new(p, 5 * MIN_NET_PROGRESS);
        assert!(b.after_failure(0, true, None).is_some());
        assert!(b.after_failure(5 * MIN_NET_PROGRESS, true, None).is_some());
        assert_eq!(b.after_failure(5 * MIN_NET_PROGRESS + 10, true, None), None);

        // Permanent failures stop at once, a server hint sets the delay.
        assert_eq!(ResumeBudget::new(p, 0).after_failure(0, false, None), None);
        assert_eq!(
            ResumeBudget::new(p, 0).after_failure(0, true, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(4))
        );
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
