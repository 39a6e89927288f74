//! The `cache ls` table as huggingface_hub prints it: padded columns and the footer (pure).

use hubcache::cache::scan::CacheInfo;

use super::filter::Row;
use crate::units::{format_size, format_timesince};

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
    fn table_layout() {
        let t = tabulate(&["ID", "SIZE"], &[vec!["model/a".into(), "1.0K".into()]], &[1]);
        assert_eq!(t, "ID      SIZE\n------- ----\nmodel/a 1.0K");
    }
}
