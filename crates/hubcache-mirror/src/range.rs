//! `Range` request headers (pure): one byte range, as clients use them for resumes.

/// What to send for a request of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole file (no range, or a form we do not serve partially).
    Full,
    /// `206` with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// `416`.
    Unsatisfiable,
}

/// Interprets a `Range` header against a file size.
pub fn answer(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAnswer::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeAnswer::Full;
            };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                    _ => return RangeAnswer::Full,
                }
            };
            if start >= size {
                return RangeAnswer::Unsatisfiable;
            }
            (start, end)
        }
        (true, false) => {
            let Ok(suffix) = b.parse::<u64>() else {
                return RangeAnswer::Full;
            };
            if suffix == 0 || size == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            (size.saturating_sub(suffix), size - 1)
        }
        (true, true) => return RangeAnswer::Full,
    };
    RangeAnswer::Partial {
        start: parsed.0,
        end: parsed.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(answer(None, 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=2-"), 10), RangeAnswer::Partial { start: 2, end: 9 });
        assert_eq!(answer(Some("bytes=2-4"), 10), RangeAnswer::Partial { start: 2, end: 4 });
        assert_eq!(
            answer(Some("bytes=2-400"), 10),
            RangeAnswer::Partial { start: 2, end: 9 }
        );
        assert_eq!(answer(Some("bytes=-3"), 10), RangeAnswer::Partial { start: 7, end: 9 });
        assert_eq!(answer(Some("bytes=-30"), 10), RangeAnswer::Partial { start: 0, end: 9 });
        assert_eq!(answer(Some("bytes=10-"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), 10), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=5-2"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=0-1,3-4"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("items=0-1"), 10), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=x-"), 10), RangeAnswer::Full);
    }
}
