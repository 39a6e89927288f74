//! Small helpers: hex, percent-decoding, query parsing, Range evaluation.

/// Lowercase hex encoding.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether `s` is exactly 40 lowercase hex digits.
pub(crate) fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (malformed escapes are kept literally); `None` if the result is not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        if c == b'+' && plus_as_space {
            out.push(b' ');
        } else {
            out.push(c);
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Splits a raw query string into decoded `(key, value)` pairs.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else {
        return Vec::new();
    };
    q.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (
                percent_decode(k, true).unwrap_or_default(),
                percent_decode(v, true).unwrap_or_default(),
            )
        })
        .collect()
}

/// Value of the first query parameter named `key`.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Interprets a query flag (`true`, `True`, `1`).
pub(crate) fn is_true(v: Option<&str>) -> bool {
    matches!(v, Some(v) if v.eq_ignore_ascii_case("true") || v == "1")
}

/// Result of evaluating a `Range` header against a body of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// No (usable) range: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Evaluates a single-range `bytes=` header; syntactically invalid or multi-range headers are ignored.
pub(crate) fn eval_range(header: Option<&str>, total: u64) -> RangeOutcome {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(k) = b.parse::<u64>() else {
            return RangeOutcome::Full;
        };
        if k == 0 || total == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial(total.saturating_sub(k), total - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeOutcome::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeOutcome::Full,
        }
    };
    if start >= total {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial(start, end.min(total - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        assert_eq!(percent_decode("refs%2Fpr%2F1", false).as_deref(), Some("refs/pr/1"));
        assert_eq!(percent_decode("a%2", false).as_deref(), Some("a%2"));
        assert_eq!(percent_decode("a%zz+b", true).as_deref(), Some("a%zz b"));
        assert_eq!(percent_decode("%ff", false), None);
    }

    #[test]
    fn ranges() {
        use RangeOutcome::*;
        assert_eq!(eval_range(None, 10), Full);
        assert_eq!(eval_range(Some("bytes=2-"), 10), Partial(2, 9));
        assert_eq!(eval_range(Some("bytes=2-4"), 10), Partial(2, 4));
        assert_eq!(eval_range(Some("bytes=2-40"), 10), Partial(2, 9));
        assert_eq!(eval_range(Some("bytes=-3"), 10), Partial(7, 9));
        assert_eq!(eval_range(Some("bytes=-30"), 10), Partial(0, 9));
        assert_eq!(eval_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(eval_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(eval_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(eval_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(eval_range(Some("items=0-1"), 10), Full);
    }
}
