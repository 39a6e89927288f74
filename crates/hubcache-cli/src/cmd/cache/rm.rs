//! `hubcache cache rm`: remove repos or revisions, after showing the plan.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::cache::delete::{self, Target};
use hubcache::cache::scan;
use hubcache::cache::CacheError;
use hubcache::Settings;

use super::{cache_dir, confirm, exit_for, out, print_selections, repo_type, run_plan, REPO_TYPES};
use crate::units::format_size;
use crate::CmdResult;

/// Arguments of `hubcache cache rm`.
#[derive(Args)]
pub struct RmArgs {
    /// ORG/NAME (whole repo), ORG/NAME@REVISION (a ref, a commit or a commit prefix), or a
    /// 40-character commit hash.
    #[arg(required = true)]
    targets: Vec<String>,
    /// Type of the ORG/NAME targets.
    #[arg(long, default_value = "model", value_parser = REPO_TYPES)]
    repo_type: String,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (it is only asked on a terminal).
    #[arg(long, short)]
    yes: bool,
}

/// Runs `cache rm`.
pub fn run(settings: &Settings, args: RmArgs) -> CmdResult {
    let cache = cache_dir(settings, &args.cache_dir);
    let info = scan::scan(&cache)?;
    let default_type = repo_type(&args.repo_type);
    let mut targets = Vec::new();
    for raw in &args.targets {
        targets.push((raw.clone(), Target::parse(raw, default_type)?));
    }
    let resolution = delete::resolve_targets(&info, &targets);
    if !resolution.missing.is_empty() {
        eprintln!("warning: could not find in cache:");
        for m in &resolution.missing {
            eprintln!("  - {m}");
        }
    }
    if resolution.revisions.is_empty() {
        return Err(CacheError::NothingMatched {
            targets: resolution.missing,
        }
        .into());
    }
    let plan = delete::plan_revisions(&info, &resolution.revisions);
    let (repos, revisions) = plan.counts();
    let mut parts = Vec::new();
    if repos > 0 {
        parts.push(format!("{repos} repo(s)"));
    }
    let partial = revisions
        - plan
            .selections
            .iter()
            .filter(|s| s.whole_repo)
            .map(|s| s.revisions.len())
            .sum::<usize>();
    if partial > 0 {
        parts.push(format!("{partial} revision(s)"));
    }
    out(&format!(
        "About to delete {} totalling {}.",
        parts.join(" and "),
        format_size(plan.expected_freed_size)
    ));
    print_selections(&plan);
    if args.dry_run {
        out("Dry run: no files were deleted.");
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm("Proceed with deletion?", args.yes) {
        eprintln!("Aborted.");
        return Ok(ExitCode::from(1));
    }
    let chosen = resolution.revisions.clone();
    let (report, _) = run_plan(&info.cache_dir, &plan, |now| delete::plan_revisions(now, &chosen))?;
    out(&format!(
        "Deleted {repos} repo(s) and {revisions} revision(s); freed {}.",
        format_size(report.freed)
    ));
    Ok(exit_for(&report))
}
