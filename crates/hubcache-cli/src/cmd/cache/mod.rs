//! `hubcache cache …`: inspect and manage the cache.
//!
//! `ls` prints the scan (`--json`: huggingface_hub's `scan_cache_dir()` field names), `rm` and
//! `prune` print their plan, ask on a terminal, then run it under the clean-up lock (waiting
//! for running downloads); `prune --max-size/--older-than` adds the least recently used
//! revisions ([`hubcache::cache::evict`]). `verify` re-hashes files. Results go to stdout, notices to stderr.

mod add_folder;
mod filter;
mod ls;
mod prune;
mod rm;
mod table;
mod verify;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use hubcache::cache::delete::{self, CleanupLock, DeletePlan, ExecuteReport};
use hubcache::cache::scan::{self, CacheInfo, CachedRepoType};
use hubcache::cache::CacheError;
use hubcache::Settings;

use crate::progress::{lock_wait_notice, Waiter};
use crate::units::format_size;
use crate::{CmdResult, Hinted};

impl Hinted for CacheError {
    fn hints(&self) -> Vec<String> {
        CacheError::hints(self)
    }
}

/// Arguments of `hubcache cache`.
#[derive(Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cached repos (or revisions): sizes, last access and modification, refs.
    #[command(alias = "list")]
    Ls(ls::LsArgs),
    /// Remove repos or revisions: ORG/NAME, ORG/NAME@REVISION or a 40-character commit.
    Rm(rm::RmArgs),
    /// Remove detached revisions, unused blobs, stale .incomplete files and empty folders; with
    /// --max-size/--older-than also the least recently used revisions.
    Prune(prune::PruneArgs),
    /// Re-hash cached files against their blob names (and the Hub's listing with --remote).
    Verify(verify::VerifyArgs),
    /// Import a local model folder into the cache as a new commit of a repo (prints the snapshot).
    AddFolder(add_folder::AddFolderArgs),
}

/// Runs a `cache` subcommand.
pub fn run(settings: &Settings, args: CacheArgs) -> CmdResult {
    match args.command {
        CacheCommand::Ls(a) => ls::run(settings, a),
        CacheCommand::Rm(a) => rm::run(settings, a),
        CacheCommand::Prune(a) => prune::run(settings, a),
        CacheCommand::Verify(a) => verify::run(settings, a),
        CacheCommand::AddFolder(a) => add_folder::run(settings, a),
    }
}

const REPO_TYPES: [&str; 4] = ["model", "dataset", "space", "kernel"];

fn cache_dir(settings: &Settings, arg: &Option<PathBuf>) -> PathBuf {
    arg.clone().unwrap_or_else(|| settings.cache_dir.clone())
}

fn repo_type(name: &str) -> CachedRepoType {
    CachedRepoType::parse(name).unwrap_or(CachedRepoType::Model)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Prints lines to stdout, ignoring a closed pipe (`| head`).
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

/// Says on stderr that a clean-up waits for a lock (the downloads' side is in the reporter).
fn wait_notice(lock: &Path, waited: Duration) {
    eprintln!("{}", lock_wait_notice(Waiter::Cleanup, lock, waited));
}

/// Asks on a terminal; elsewhere (scripts, pipes) proceeds as told.
fn confirm(question: &str, yes: bool) -> bool {
    if yes || !std::io::stdin().is_terminal() {
        return true;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Prints the revisions of a plan as `hf cache rm` does.
fn print_selections(plan: &DeletePlan) {
    for s in &plan.selections {
        if s.whole_repo {
            out(&format!("  - {} (entire repo)", s.cache_id));
            continue;
        }
        out(&format!("  - {}:", s.cache_id));
        for r in &s.revisions {
            let refs = if r.refs.is_empty() {
                "(detached)".to_string()
            } else {
                r.refs.join(" ")
            };
            out(&format!(
                "      {} [{refs}] {}",
                r.commit_hash,
                format_size(r.size_on_disk)
            ));
        }
    }
    for (path, reason) in &plan.refused {
        eprintln!("warning: {} is {reason}", path.display());
    }
}

/// Runs `plan` (shown to the user) under the clean-up lock: re-scan, re-plan with `replan`,
/// keep only what was shown, execute; returns the report and the plan that ran.
fn run_plan(
    cache: &Path,
    shown: &DeletePlan,
    replan: impl Fn(&CacheInfo) -> DeletePlan,
) -> Result<(ExecuteReport, DeletePlan), CacheError> {
    let lock = CleanupLock::acquire(cache, &wait_notice)?;
    let now = scan::scan(cache)?;
    let plan = replan(&now).restricted_to(shown);
    let report = delete::execute(&plan, &lock, &wait_notice)?;
    for k in &report.kept {
        eprintln!("kept {}: {}", k.path.display(), k.reason);
    }
    for f in &report.failed {
        eprintln!("warning: could not delete {}: {}", f.path.display(), f.reason);
    }
    Ok((report, plan))
}

fn exit_for(report: &ExecuteReport) -> ExitCode {
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
