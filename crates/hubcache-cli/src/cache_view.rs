//! Pure presentation for `hubcache cache ls`: sizes and relative times as huggingface_hub
//! prints them, `hf cache ls` filters (`-f size>1GB`, `accessed>7d`, `type=dataset`,
//! `refs=main`) and sort keys (`--sort size:asc`), and the padded table.

use hubcache::cache::scan::{CacheInfo, RepoInfo, RevisionInfo};

/// `_format_size`: decimal units, one decimal (`16.0`, `1.0K`, `1.1G`).
pub fn format_size(num: u64) -> String {
    let mut n = num as f64;
    for unit in ["", "K", "M", "G", "T", "P", "E", "Z"] {
        if n.abs() < 1000.0 {
            return format!("{n:3.1}{unit}");
        }
        n /= 1000.0;
    }
    format!("{n:.1}Y")
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

/// A comparison operator of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
}

impl Op {
    fn compare(self, left: f64, right: f64) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Gt => left > right,
            Op::Lt => left < right,
            Op::Ge => left >= right,
            Op::Le => left <= right,
        }
    }
}

/// One `-f/--filter` expression of `cache ls`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `size<op><bytes>` (revision size with `--revisions`, else repo size).
    Size(Op, i64),
    /// `accessed<op><duration>`: age of the repo's last access.
    Accessed(Op, i64),
    /// `modified<op><duration>`: age of the last modification (revision's with `--revisions`).
    Modified(Op, i64),
    /// `type=<model|dataset|space|kernel>`.
    Type(String),
    /// `refs=<name>`: a ref of the revision (or of any revision of the repo).
    Refs(String),
}

impl Filter {
    /// Parses `key op value` as `hf cache ls` does (same keys, operators and messages).
    pub fn parse(expr: &str) -> Result<Filter, String> {
        let e = expr.trim();
        let key_len = e
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
            .unwrap_or(e.len());
        let (key, rest) = e.split_at(key_len);
        let rest = rest.trim_start();
        let ops = ["==", "!=", ">=", "<=", ">", "<", "="];
        let op_str = ops.iter().find(|o| rest.starts_with(**o)).copied();
        let (Some(op_str), false) = (op_str, key.is_empty()) else {
            return Err(format!("Invalid filter expression: '{expr}'."));
        };
        let value = rest[op_str.len()..].trim();
        if value.is_empty() {
            return Err(format!("Invalid filter expression: '{expr}'."));
        }
        let op = match op_str {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            _ => {
                return Err(format!(
                "Unsupported operator '{op_str}' in filter '{expr}'. Must be one of ['=', '!=', '>', '<', '>=', '<=']."
            ))
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "size" => Ok(Filter::Size(op, parse_size(value)?)),
            "accessed" => Ok(Filter::Accessed(op, parse_duration(value)?)),
            "modified" => Ok(Filter::Modified(op, parse_duration(value)?)),
            "type" if op == Op::Eq => Ok(Filter::Type(value.to_ascii_lowercase())),
            "refs" if op == Op::Eq => Ok(Filter::Refs(value.to_ascii_lowercase())),
            "type" | "refs" => Err(format!("Only '=' is supported for '{key}' filters. Got '{op_str}'.")),
            _ => Err(format!(
                "Unsupported filter key '{key}' in '{expr}'. Must be one of ['accessed', 'modified', 'refs', 'size', 'type']."
            )),
        }
    }

    /// Whether a row passes.
    pub fn matches(&self, repo: &RepoInfo, rev: Option<&RevisionInfo>, now: f64) -> bool {
        match self {
            Filter::Size(op, n) => {
                let size = rev.map_or(repo.size_on_disk, |r| r.size_on_disk);
                op.compare(size as f64, *n as f64)
            }
            Filter::Accessed(op, secs) => op.compare(now - repo.last_accessed, *secs as f64),
            Filter::Modified(op, secs) => {
                let ts = rev.map_or(repo.last_modified, |r| r.last_modified);
                op.compare(now - ts, *secs as f64)
            }
            Filter::Type(t) => repo.repo_type.as_str() == t,
            Filter::Refs(name) => match rev {
                Some(r) => r.refs.iter().any(|x| x.to_ascii_lowercase() == *name),
                None => repo.refs.keys().any(|x| x.to_ascii_lowercase() == *name),
            },
        }
    }
}

/// A `--sort` key with its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    key: SortKey,
    descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Accessed,
    Modified,
    Name,
    Size,
}

impl Sort {
    /// `accessed|modified|name|size` with optional `:asc`/`:desc` (default desc, name asc).
    pub fn parse(expr: &str) -> Result<Sort, String> {
        let e = expr.trim().to_ascii_lowercase();
        let (key, order) = match e.split_once(':') {
            Some((k, o)) => (k, Some(o)),
            None => (e.as_str(), None),
        };
        let key = match key {
            "accessed" => SortKey::Accessed,
            "modified" => SortKey::Modified,
            "name" => SortKey::Name,
            "size" => SortKey::Size,
            _ => {
                return Err(format!(
                    "Unsupported sort key '{key}' in '{expr}'. Must be one of ['accessed', 'modified', 'name', 'size']."
                ))
            }
        };
        let descending = match order {
            None => key != SortKey::Name,
            Some("desc") => true,
            Some("asc") => false,
            Some(_) => {
                return Err(format!(
                    "Invalid sort expression: '{expr}'. Expected format: 'key' or 'key:asc' or 'key:desc'."
                ))
            }
        };
        Ok(Sort { key, descending })
    }

    /// Sorts rows (stable, like Python's `list.sort`).
    pub fn apply(&self, rows: &mut [Row<'_>]) {
        let value = |(repo, rev): &Row<'_>| -> SortValue {
            match self.key {
                SortKey::Name => SortValue::Text(repo.cache_id().to_lowercase()),
                SortKey::Size => SortValue::Num(rev.map_or(repo.size_on_disk, |r| r.size_on_disk) as f64),
                SortKey::Accessed => SortValue::Num(repo.last_accessed),
                SortKey::Modified => SortValue::Num(rev.map_or(repo.last_modified, |r| r.last_modified)),
            }
        };
        rows.sort_by(|a, b| {
            let (va, vb) = (value(a), value(b));
            if self.descending {
                vb.cmp(&va)
            } else {
                va.cmp(&vb)
            }
        });
    }
}

enum SortValue {
    Text(String),
    Num(f64),
}

impl SortValue {
    fn cmp(&self, other: &SortValue) -> std::cmp::Ordering {
        match (self, other) {
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
            (SortValue::Num(a), SortValue::Num(b)) => a.total_cmp(b),
            (SortValue::Text(_), SortValue::Num(_)) => std::cmp::Ordering::Greater,
            (SortValue::Num(_), SortValue::Text(_)) => std::cmp::Ordering::Less,
        }
    }
}

/// One row of `cache ls`: a repo, or one of its revisions with `--revisions`.
pub type Row<'a> = (&'a RepoInfo, Option<&'a RevisionInfo>);

/// Rows in `hf cache ls` order (by `type/id`, then commit), filtered, sorted and limited.
pub fn select_rows<'a>(
    info: &'a CacheInfo,
    revisions: bool,
    filters: &[Filter],
    sort: Option<Sort>,
    limit: Option<usize>,
    now: f64,
) -> Vec<Row<'a>> {
    let mut rows: Vec<Row<'a>> = if revisions {
        info.repos
            .iter()
            .flat_map(|r| r.revisions.iter().map(move |rev| (r, Some(rev))))
            .collect()
    } else {
        info.repos.iter().map(|r| (r, None)).collect()
    };
    rows.sort_by_key(|(repo, rev)| (repo.cache_id(), rev.map(|r| r.commit_hash.clone())));
    rows.retain(|(repo, rev)| filters.iter().all(|f| f.matches(repo, *rev, now)));
    if let Some(s) = sort {
        s.apply(&mut rows);
    }
    if let Some(n) = limit {
        rows.truncate(n);
    }
    rows
}

/// `tabulate`: columns padded to their widest cell, one space apart, a dashed rule under the
/// headers; `right` lists right-aligned columns.
pub fn tabulate(headers: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if right.contains(&c) {
                    format!("{cell:>w$}", w = widths[c])
                } else {
                    format!("{cell:<w$}", w = widths[c])
                }
            })
            .collect();
        parts.join(" ")
    };
    let mut out = vec![
        line(headers.iter().map(|h| h.to_string()).collect()),
        line(widths.iter().map(|w| "-".repeat(*w)).collect()),
    ];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// The human table of `cache ls` (or "No results found.").
pub fn render_table(rows: &[Row<'_>], revisions: bool, now: f64) -> String {
    if rows.is_empty() {
        return "No results found.".into();
    }
    if revisions {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .filter_map(|(repo, rev)| rev.map(|r| (repo, r)))
            .map(|(repo, r)| {
                vec![
                    repo.cache_id(),
                    r.commit_hash.clone(),
                    format_size(r.size_on_disk),
                    format_timesince(r.last_modified, now),
                    r.refs.join(", "),
                ]
            })
            .collect();
        tabulate(&["ID", "REVISION", "SIZE", "LAST_MODIFIED", "REFS"], &cells, &[2])
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(repo, _)| {
                vec![
                    repo.cache_id(),
                    format_size(repo.size_on_disk),
                    format_timesince(repo.last_accessed, now),
                    format_timesince(repo.last_modified, now),
                    repo.refs.keys().cloned().collect::<Vec<_>>().join(", "),
                ]
            })
            .collect();
        tabulate(&["ID", "SIZE", "LAST_ACCESSED", "LAST_MODIFIED", "REFS"], &cells, &[1])
    }
}

/// The footer: repos, revisions and bytes of the rows shown (the physical total when the
/// whole cache is shown).
pub fn footer(info: &CacheInfo, rows: &[Row<'_>], revisions: bool, whole_cache: bool) -> String {
    let mut repos: Vec<&str> = rows.iter().map(|(r, _)| r.repo_path.to_str().unwrap_or("")).collect();
    repos.sort_unstable();
    repos.dedup();
    let (revision_count, total) = if revisions {
        let revs = rows.iter().filter_map(|(_, r)| *r);
        (revs.clone().count(), revs.map(|r| r.size_on_disk).sum())
    } else {
        let count = rows.iter().map(|(r, _)| r.revisions.len()).sum();
        let total = if whole_cache {
            info.size_on_disk
        } else {
            rows.iter().map(|(r, _)| r.size_on_disk).sum()
        };
        (count, total)
    };
    format!(
        "Found {} repo(s) for a total of {revision_count} revision(s) and {} on disk.",
        repos.len(),
        format_size(total)
    )
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

    #[test]
    fn filters_parse_and_reject() {
        assert_eq!(Filter::parse("size>1GB"), Ok(Filter::Size(Op::Gt, 1_000_000_000)));
        assert_eq!(Filter::parse(" accessed >= 7d "), Ok(Filter::Accessed(Op::Ge, 604_800)));
        assert_eq!(Filter::parse("type=Dataset"), Ok(Filter::Type("dataset".into())));
        assert_eq!(Filter::parse("REFS=main"), Ok(Filter::Refs("main".into())));
        assert!(Filter::parse("size==1")
            .unwrap_err()
            .contains("Unsupported operator '=='"));
        assert!(Filter::parse("type!=model").unwrap_err().contains("Only '='"));
        assert!(Filter::parse("color=red")
            .unwrap_err()
            .contains("Unsupported filter key"));
        assert!(Filter::parse("size>").is_err() && Filter::parse(">5").is_err());
    }

    #[test]
    fn sort_keys() {
        assert_eq!(
            Sort::parse("size"),
            Ok(Sort {
                key: SortKey::Size,
                descending: true
            })
        );
        assert!(!Sort::parse("name").unwrap().descending);
        assert!(!Sort::parse("Modified:ASC").unwrap().descending);
        assert!(Sort::parse("size:up").is_err() && Sort::parse("colour").is_err());
    }

    #[test]
    fn table_layout() {
        let t = tabulate(&["ID", "SIZE"], &[vec!["model/a".into(), "1.0K".into()]], &[1]);
        assert_eq!(t, "ID      SIZE\n------- ----\nmodel/a 1.0K");
    }
}
