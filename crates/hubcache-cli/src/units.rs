//! Sizes, counts and durations as users read and type them: `hf cache`'s decimal sizes and
//! relative times (`format_size`, `format_timesince`), its size and duration parsers
//! (`10GB`, `7d`), and counts in the same style (`22.7M` parameters). Every figure the CLI
//! prints goes through here, so `cache ls`, `prune` and `model` read alike.

pub use hubcache::units::format_size;

/// A count (tensors, parameters) in the style of [`format_size`]: `7`, `1.5K`, `22.7M`,
/// `7.0B` (billions).
pub fn format_count(num: u64) -> String {
    if num < 1000 {
        return num.to_string();
    }
    let mut n = num as f64;
    for unit in ["", "K", "M", "B", "T", "P"] {
        if n < 1000.0 {
            return format!("{n:.1}{unit}");
        }
        n /= 1000.0;
    }
    format!("{n:.1}E")
}

/// `format_timesince` (2.4.0 caps: seconds ≤ 59, minutes ≤ 59, hours ≤ 23, days ≤ 6,
/// weeks ≤ 6, months ≤ 11, then years), relative to `now`.
pub fn format_timesince(ts: f64, now: f64) -> String {
    const CHUNKS: [(&str, f64, Option<f64>); 7] = [
        ("second", 1.0, Some(59.0)),
        ("minute", 60.0, Some(59.0)),
        ("hour", 3600.0, Some(23.0)),
        ("day", 86_400.0, Some(6.0)),
        ("week", 604_800.0, Some(6.0)),
        ("month", 2_592_000.0, Some(11.0)),
        ("year", 31_536_000.0, None),
    ];
    let delta = now - ts;
    if delta < 20.0 {
        return "a few seconds ago".into();
    }
    let (mut label, mut value) = ("year", 0.0);
    for (l, divider, max) in CHUNKS {
        // Python's round(): halves to even.
        (label, value) = (l, (delta / divider).round_ties_even());
        if max.is_some_and(|m| value <= m) {
            break;
        }
    }
    let plural = if value > 1.0 { "s" } else { "" };
    format!("{value} {label}{plural} ago")
}

const BYTE_UNITS: [(&str, i64); 10] = [
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("p", 1_000_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
];

const TIME_UNITS: [(&str, i64); 7] = [
    ("s", 1),
    ("m", 60),
    ("h", 3600),
    ("d", 86_400),
    ("w", 604_800),
    ("mo", 2_592_000),
    ("y", 31_536_000),
];

/// `_parse_with_unit`: a plain integer, or digits followed by a known unit (any case).
fn parse_with_unit(value: &str, units: &[(&str, i64)]) -> Result<i64, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("Value cannot be empty.".into());
    }
    if let Ok(n) = v.replace('_', "").parse::<i64>() {
        if !v.starts_with('_') && !v.ends_with('_') && !v.contains("__") {
            return Ok(n);
        }
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    if digits.is_empty() || unit.is_empty() || !unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "Invalid value '{value}'. Must match pattern '\\d+[a-z]+' or be a plain number."
        ));
    }
    let unit = unit.to_ascii_lowercase();
    let factor = units.iter().find(|(u, _)| *u == unit).map(|(_, f)| *f).ok_or_else(|| {
        let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
        format!("Unknown unit '{unit}'. Must be one of {names:?}.")
    })?;
    let n: i64 = digits.parse().map_err(|e| format!("Invalid value '{value}': {e}"))?;
    n.checked_mul(factor)
        .ok_or_else(|| format!("Value '{value}' is too large."))
}

/// `parse_size`: `10MB`, `1g`, `500` (bytes, decimal units).
pub fn parse_size(value: &str) -> Result<i64, String> {
    parse_with_unit(value, &BYTE_UNITS)
}

/// `parse_duration`: `7d`, `2w`, `3mo`, `90` (seconds).
pub fn parse_duration(value: &str) -> Result<i64, String> {
    parse_with_unit(value, &TIME_UNITS)
}

/// `cache prune --max-size`: a size as the filters take it, never negative.
pub fn parse_max_size(value: &str) -> Result<u64, String> {
    u64::try_from(parse_size(value)?).map_err(|_| format!("Invalid size '{value}': it cannot be negative."))
}

/// `cache prune --older-than`: a duration in seconds, and the text given (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    /// Seconds.
    pub secs: u64,
    /// As typed, trimmed.
    pub raw: String,
}

/// Parses `--older-than` like the `accessed` filter's durations, never negative.
pub fn parse_age(value: &str) -> Result<Age, String> {
    let secs = u64::try_from(parse_duration(value)?)
        .map_err(|_| format!("Invalid duration '{value}': it cannot be negative."))?;
    Ok(Age {
        secs,
        raw: value.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_python() {
        assert_eq!(format_size(0), "0.0");
        assert_eq!(format_size(16), "16.0");
        assert_eq!(format_size(999), "999.0");
        assert_eq!(format_size(1000), "1.0K");
        assert_eq!(format_size(1_234_567), "1.2M");
        assert_eq!(format_size(1 << 30), "1.1G");
        assert_eq!(format_size(999_950), "1000.0K");
        assert_eq!(format_size(u64::MAX), "18.4E");
    }

    #[test]
    fn counts_in_the_style_of_sizes() {
        assert_eq!(format_count(7), "7");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_500), "1.5K");
        assert_eq!(format_count(22_713_216), "22.7M");
        assert_eq!(format_count(7_000_000_000), "7.0B");
        assert_eq!(format_size(90_868_376), "90.9M", "bytes and counts read alike");
        assert_eq!(format_count(u64::MAX), "18.4E");
    }

    #[test]
    fn relative_times_with_2_4_caps() {
        let now = 1_000_000_000.0;
        let ago = |s: f64| format_timesince(now - s, now);
        assert_eq!(ago(5.0), "a few seconds ago");
        assert_eq!(ago(20.0), "20 seconds ago");
        assert_eq!(ago(59.0), "59 seconds ago");
        assert_eq!(ago(60.0), "1 minute ago");
        assert_eq!(ago(90.0), "2 minutes ago", "1.5 rounds half to even: 2");
        assert_eq!(ago(150.0), "2 minutes ago", "2.5 rounds half to even: 2");
        assert_eq!(ago(3600.0), "1 hour ago");
        assert_eq!(ago(23.0 * 3600.0), "23 hours ago");
        assert_eq!(ago(86_400.0), "1 day ago");
        assert_eq!(ago(7.0 * 86_400.0), "1 week ago");
        assert_eq!(ago(45.0 * 86_400.0), "6 weeks ago");
        assert_eq!(ago(60.0 * 86_400.0), "2 months ago");
        assert_eq!(ago(400.0 * 86_400.0), "1 year ago");
        assert_eq!(ago(3.0 * 365.0 * 86_400.0), "3 years ago");
    }

    #[test]
    fn sizes_and_durations_parse_like_python() {
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size(" 10mb "), Ok(10_000_000));
        assert_eq!(parse_size("500"), Ok(500));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert!(parse_size("1GiB").unwrap_err().contains("Unknown unit 'gib'"));
        assert!(parse_size("").is_err() && parse_size("GB").is_err() && parse_size("1.5GB").is_err());
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("3MO"), Ok(7_776_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
    }

    #[test]
    fn prune_limits_parse_and_reject_negatives() {
        assert_eq!(parse_max_size("20GB"), Ok(20_000_000_000));
        assert_eq!(parse_max_size("1t"), Ok(1_000_000_000_000));
        assert_eq!(parse_max_size("0"), Ok(0));
        assert!(parse_max_size("-1").unwrap_err().contains("negative"));
        assert!(parse_max_size("1GiB").is_err());
        assert_eq!(
            parse_age(" 30d "),
            Ok(Age {
                secs: 2_592_000,
                raw: "30d".into()
            })
        );
        assert_eq!(parse_age("3mo").map(|a| a.secs), Ok(7_776_000));
        assert!(parse_age("-5").is_err() && parse_age("5x").is_err());
    }
}
