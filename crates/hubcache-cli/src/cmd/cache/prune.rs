//! `hubcache cache prune`: remove what no ref needs, and with `--max-size`/`--older-than` the
//! least recently used revisions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::cache::delete::{self, DeletePlan};
use hubcache::cache::evict::{self, EvictReason, EvictionPlan, EvictionPolicy};
use hubcache::cache::scan::{self, CacheInfo};
use hubcache::Settings;

use super::{cache_dir, confirm, exit_for, now, out, print_selections, run_plan};
use crate::units::{self, format_size, format_timesince, Age};
use crate::CmdResult;

/// Arguments of `hubcache cache prune`.
#[derive(Args)]
pub struct PruneArgs {
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Also remove least recently used revisions until the cache's size is at most SIZE
    /// (bytes, or with a unit: 500MB, 20GB, 1t; decimal).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_max_size)]
    max_size: Option<u64>,
    /// Also remove revisions not accessed for DURATION (90s, 12h, 30d, 2w, 3mo, 1y).
    #[arg(long, value_name = "DURATION", value_parser = units::parse_age)]
    older_than: Option<Age>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (it is only asked on a terminal).
    #[arg(long, short)]
    yes: bool,
}

/// What a prune plan removes, in words; `evicted` of its revisions are evictions.
fn prune_summary(plan: &DeletePlan, evicted: usize) -> String {
    let (_, revisions) = plan.counts();
    let mut parts = Vec::new();
    if evicted > 0 {
        parts.push(format!("{evicted} least recently used revision(s)"));
    }
    if revisions > evicted {
        parts.push(format!("{} unreferenced revision(s)", revisions - evicted));
    }
    if plan.orphan_blobs > 0 {
        parts.push(format!("{} unused blob(s)", plan.orphan_blobs));
    }
    if !plan.incomplete.is_empty() {
        parts.push(format!("{} incomplete download(s)", plan.incomplete.len()));
    }
    let payloads = plan.shared_payloads.len();
    if payloads > 0 {
        parts.push(format!("{payloads} shared blob(s) to check"));
    }
    match parts.len() {
        0 => String::new(),
        1 => parts.remove(0),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

impl PruneArgs {
    /// The eviction asked for, if any.
    fn policy(&self, now: f64) -> Option<EvictionPolicy> {
        (self.max_size.is_some() || self.older_than.is_some()).then(|| EvictionPolicy {
            max_size: self.max_size,
            older_than: self.older_than.as_ref().map(|a| a.secs),
            now,
        })
    }
}

/// The evicted revisions in eviction order, with why, and the sizes before and after.
fn print_eviction(e: &EvictionPlan, args: &PruneArgs, now: f64) {
    let limit = args.max_size.map(format_size);
    if !e.evicted.is_empty() {
        out("Evicted, least recently used first:");
    }
    for ev in &e.evicted {
        let why = match (ev.reason, &args.older_than, &limit) {
            (EvictReason::OlderThan, Some(age), _) => format!("unused for {}", age.raw),
            (_, _, Some(limit)) => format!("to fit under {limit}"),
            _ => String::new(),
        };
        let refs = ev.refs.join(" ");
        out(&format!(
            "  - {}@{} [{refs}] {}, last accessed {} ({why})",
            ev.cache_id,
            ev.commit_hash,
            format_size(ev.size_on_disk),
            format_timesince(ev.last_accessed, now)
        ));
    }
    for id in &e.skipped_busy {
        eprintln!("note: {id} is left alone: a download is writing into it");
    }
    let mut sizes = format!(
        "Cache size: {} now, {} after",
        format_size(e.size_before),
        format_size(e.size_after)
    );
    if let Some(limit) = &limit {
        sizes.push_str(&format!(" (limit {limit})"));
    }
    out(&format!("{sizes}."));
    if let (Some(max), Some(limit)) = (args.max_size, &limit) {
        if e.size_after > max {
            eprintln!(
                "warning: the cache stays over {limit}: what is left belongs to repos in use or to no revision this prune may remove"
            );
        }
    }
}

/// Runs `cache prune`.
pub fn run(settings: &Settings, args: PruneArgs) -> CmdResult {
    let cache = cache_dir(settings, &args.cache_dir);
    let info = scan::scan(&cache)?;
    let now = now();
    let policy = args.policy(now);
    let eviction = policy.map(|p| evict::plan_eviction(&info, &p, &evict::busy_repos(&info)));
    let plan = match &eviction {
        Some(e) => e.plan.clone(),
        None => delete::plan_prune(&info),
    };
    let summary = prune_summary(&plan, eviction.as_ref().map_or(0, |e| e.evicted.len()));
    if plan.is_empty() {
        let evictions = if eviction.is_some() {
            ", and no revision to evict"
        } else {
            ""
        };
        out(&format!(
            "No unreferenced revisions, unused blobs, incomplete downloads or shared blobs found{evictions}."
        ));
    } else {
        out(&format!(
            "About to delete {summary} ({} total), then empty folders.",
            format_size(plan.expected_freed_size)
        ));
        print_selections(&plan);
    }
    if let Some(e) = &eviction {
        print_eviction(e, &args, now);
    }
    if args.dry_run {
        out("Dry run: no files were deleted.");
        return Ok(ExitCode::SUCCESS);
    }
    if !plan.is_empty() && !confirm("Proceed?", args.yes) {
        eprintln!("Aborted.");
        return Ok(ExitCode::from(1));
    }
    // Under the lock, a repo that became busy or a revision used since keeps what it has.
    let replan = |now_info: &CacheInfo| match &policy {
        Some(p) => evict::plan_eviction(now_info, p, &evict::busy_repos(now_info)).plan,
        None => delete::plan_prune(now_info),
    };
    let (report, ran) = run_plan(&info.cache_dir, &plan, replan)?;
    for ev in eviction.iter().flat_map(|e| &e.evicted) {
        if !ran.repos.contains(&ev.repo_path) && !ran.snapshots.contains(&ev.snapshot_path) {
            eprintln!(
                "kept {}@{}: used or changed since the plan was made",
                ev.cache_id, ev.commit_hash
            );
        }
    }
    if report.removed > 0 || report.empty_dirs > 0 || !plan.is_empty() {
        let mut done = format!(
            "Deleted {} item(s); freed {}",
            report.removed,
            format_size(report.freed)
        );
        if report.empty_dirs > 0 {
            done.push_str(&format!("; removed {} empty folder(s)", report.empty_dirs));
        }
        out(&format!("{done}."));
    }
    if eviction.is_some() {
        let size = scan::scan(&info.cache_dir)?.size_on_disk;
        out(&format!("Cache size now: {}.", format_size(size)));
    }
    Ok(exit_for(&report))
}
