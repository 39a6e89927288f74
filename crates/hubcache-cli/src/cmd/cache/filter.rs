//! The `hf cache ls` filter and sort language: `-f size>1GB`, `accessed>7d`, `type=dataset`,
//! `refs=main`, `--sort size:asc`, applied to the scan's rows (pure).

use hubcache::cache::scan::{CacheInfo, RepoInfo, RevisionInfo};

use crate::units::{parse_duration, parse_size};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
