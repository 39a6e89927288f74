//! `hubcache cache ls`: the scan as a table (or JSON), filtered, sorted and limited.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::cache::scan::{self, CacheInfo};
use hubcache::Settings;

use super::filter::{self, Filter, Row, Sort};
use super::{cache_dir, now, out, table};
use crate::units::format_size;
use crate::CmdResult;

/// Arguments of `hubcache cache ls`.
#[derive(Args)]
pub struct LsArgs {
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print the full scan as JSON (the field names of huggingface_hub's scan_cache_dir).
    #[arg(long)]
    json: bool,
    /// One row per revision instead of per repo.
    #[arg(long)]
    revisions: bool,
    /// accessed|modified|name|size, optionally `:asc`/`:desc` (default desc; name asc).
    #[arg(long, value_parser = Sort::parse)]
    sort: Option<Sort>,
    /// Keep rows matching, e.g. `size>1GB`, `accessed>7d`, `type=dataset`, `refs=main` (repeatable).
    #[arg(long, short = 'f', value_parser = Filter::parse)]
    filter: Vec<Filter>,
    /// Show at most N rows (after filtering and sorting).
    #[arg(long)]
    limit: Option<usize>,
    /// Print each inconsistency instead of their count.
    #[arg(long)]
    show_warnings: bool,
}

/// Runs `cache ls`.
pub fn run(settings: &Settings, args: LsArgs) -> CmdResult {
    let info = scan::scan(&cache_dir(settings, &args.cache_dir))?;
    let now = now();
    let rows = filter::select_rows(&info, args.revisions, &args.filter, args.sort, args.limit, now);
    if args.json {
        print_json(&info, &rows, args.revisions);
    } else {
        out(&table::render_table(&rows, args.revisions, now));
        if !rows.is_empty() {
            let whole = args.filter.is_empty() && args.limit.is_none();
            out(&format!("\n{}", table::footer(&info, &rows, args.revisions, whole)));
        }
    }
    print_scan_notes(&info, args.show_warnings);
    Ok(ExitCode::SUCCESS)
}

/// The scan as JSON; with filters, sort or limit only the selected repos (and revisions).
fn print_json(info: &CacheInfo, rows: &[Row<'_>], revisions: bool) {
    let mut doc = info.clone();
    let mut repos: Vec<scan::RepoInfo> = Vec::new();
    for (repo, rev) in rows {
        let slot = match repos.iter().position(|r| r.repo_path == repo.repo_path) {
            Some(i) => i,
            None => {
                let mut r = (*repo).clone();
                if revisions {
                    r.revisions.clear();
                }
                repos.push(r);
                repos.len() - 1
            }
        };
        if let Some(rev) = rev {
            repos[slot].revisions.push((*rev).clone());
        }
    }
    doc.repos = repos;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = serde_json::to_writer(&mut stdout, &doc);
    let _ = writeln!(stdout);
}

fn print_scan_notes(info: &CacheInfo, show_warnings: bool) {
    if !info.warnings.is_empty() {
        if show_warnings {
            for w in &info.warnings {
                eprintln!("warning: {}. Repo ignored.", w.to_string().trim_end_matches('.'));
            }
        } else {
            eprintln!(
                "warning: Found {} cache inconsistencies. Re-run with `--show-warnings` to display them.",
                info.warnings.len()
            );
        }
    }
    if !info.incomplete_files.is_empty() {
        eprintln!(
            "hint: Found {} incomplete download(s) totalling {}. Remove them with 'hubcache cache prune'.",
            info.incomplete_files.len(),
            format_size(info.incomplete_size_on_disk())
        );
    }
    let unreferenced = info.unreferenced_shared_blobs();
    if !unreferenced.is_empty() {
        eprintln!(
            "hint: Found {} unreferenced shared blob(s) totalling {}. Remove them with 'hubcache cache prune'.",
            unreferenced.len(),
            format_size(unreferenced.iter().map(|(_, s)| s).sum())
        );
    }
}
