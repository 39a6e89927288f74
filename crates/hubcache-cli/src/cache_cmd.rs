//! `hubcache cache …`: inspect and manage the cache.
//!
//! `ls` prints the scan (`--json`: huggingface_hub's `scan_cache_dir()` field names), `rm` and
//! `prune` print their plan, ask on a terminal, then run it under the clean-up lock (waiting
//! for running downloads); `prune --max-size/--older-than` adds the least recently used
//! revisions ([`evict`]). `verify` re-hashes files. Results go to stdout, notices to stderr.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use hubcache::cache::delete::{self, CleanupLock, DeletePlan, ExecuteReport, Target};
use hubcache::cache::evict::{self, EvictReason, EvictionPlan, EvictionPolicy};
use hubcache::cache::layout::GC_LOCK_NAME;
use hubcache::cache::scan::{self, CacheInfo, CachedRepoType};
use hubcache::cache::verify::{self, Finding, VerifySelection};
use hubcache::cache::CacheError;
use hubcache::download::trees::HubTrees;
use hubcache::{HubBuilder, Settings, Token};

use crate::cache_view::{self, format_size, format_timesince, Age, Filter, Sort};
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
    Ls(LsArgs),
    /// Remove repos or revisions: ORG/NAME, ORG/NAME@REVISION or a 40-character commit.
    Rm(RmArgs),
    /// Remove detached revisions, unused blobs, stale .incomplete files and empty folders; with
    /// --max-size/--older-than also the least recently used revisions.
    Prune(PruneArgs),
    /// Re-hash cached files against their blob names (and the Hub's listing with --remote).
    Verify(VerifyArgs),
    /// Import a local model folder into the cache as a new commit of a repo (prints the snapshot).
    AddFolder(crate::add_folder_cmd::AddFolderArgs),
}

/// Runs a `cache` subcommand.
pub fn run(settings: &Settings, args: CacheArgs) -> CmdResult {
    match args.command {
        CacheCommand::Ls(a) => ls(settings, a),
        CacheCommand::Rm(a) => rm(settings, a),
        CacheCommand::Prune(a) => prune(settings, a),
        CacheCommand::Verify(a) => verify_cmd(settings, a),
        CacheCommand::AddFolder(a) => crate::add_folder_cmd::run(settings, a),
    }
}

const REPO_TYPES: [&str; 4] = ["model", "dataset", "space", "kernel"];

#[derive(Args)]
struct LsArgs {
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

#[derive(Args)]
struct RmArgs {
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

#[derive(Args)]
struct PruneArgs {
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Also remove least recently used revisions until the cache's size is at most SIZE
    /// (bytes, or with a unit: 500MB, 20GB, 1t; decimal).
    #[arg(long, value_name = "SIZE", value_parser = cache_view::parse_max_size)]
    max_size: Option<u64>,
    /// Also remove revisions not accessed for DURATION (90s, 12h, 30d, 2w, 3mo, 1y).
    #[arg(long, value_name = "DURATION", value_parser = cache_view::parse_age)]
    older_than: Option<Age>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (it is only asked on a terminal).
    #[arg(long, short)]
    yes: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// ORG/NAME to verify (default: the whole cache).
    repo_id: Option<String>,
    /// Type of REPO.
    #[arg(long, default_value = "model", value_parser = REPO_TYPES)]
    repo_type: String,
    /// Only this revision of REPO (a ref or a commit); default: all its cached revisions.
    #[arg(long, requires = "repo_id")]
    revision: Option<String>,
    /// Also compare each snapshot with the Hub's file listing of its commit.
    #[arg(long)]
    remote: bool,
    /// With --remote: fail when the Hub has files the snapshot lacks.
    #[arg(long, requires = "remote")]
    fail_on_missing_files: bool,
    /// With --remote: fail when the snapshot has files the Hub does not list.
    #[arg(long, requires = "remote")]
    fail_on_extra_files: bool,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Access token for --remote (default: HF_TOKEN, else the token file).
    #[arg(long)]
    token: Option<String>,
}

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

fn ls(settings: &Settings, args: LsArgs) -> CmdResult {
    let info = scan::scan(&cache_dir(settings, &args.cache_dir))?;
    let now = now();
    let rows = cache_view::select_rows(&info, args.revisions, &args.filter, args.sort, args.limit, now);
    if args.json {
        print_json(&info, &rows, args.revisions);
    } else {
        out(&cache_view::render_table(&rows, args.revisions, now));
        if !rows.is_empty() {
            let whole = args.filter.is_empty() && args.limit.is_none();
            out(&format!(
                "\n{}",
                cache_view::footer(&info, &rows, args.revisions, whole)
            ));
        }
    }
    print_scan_notes(&info, args.show_warnings);
    Ok(ExitCode::SUCCESS)
}

/// The scan as JSON; with filters, sort or limit only the selected repos (and revisions).
fn print_json(info: &CacheInfo, rows: &[cache_view::Row<'_>], revisions: bool) {
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

/// What we say while waiting for a lock held by someone else.
fn wait_notice(lock: &Path, waited: Duration) {
    let name = lock
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let what = if name == GC_LOCK_NAME {
        "waiting for running hubcache downloads to finish before cleaning up".to_string()
    } else {
        format!(
            "waiting for a download to finish with {}",
            name.trim_end_matches(".lock")
        )
    };
    eprintln!("{what} (lock {}, waited {}s)", lock.display(), waited.as_secs());
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

fn rm(settings: &Settings, args: RmArgs) -> CmdResult {
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

fn prune(settings: &Settings, args: PruneArgs) -> CmdResult {
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

fn verify_cmd(settings: &Settings, args: VerifyArgs) -> CmdResult {
    let cache = cache_dir(settings, &args.cache_dir);
    let selection = VerifySelection {
        repo: args.repo_id.as_ref().map(|id| (repo_type(&args.repo_type), id.clone())),
        revision: args.revision.clone(),
    };
    let trees = if args.remote {
        let mut builder = HubBuilder::from_settings(settings).cache_dir(&cache);
        if let Some(t) = &args.token {
            builder = builder.token(Token::parse(t));
        }
        Some(HubTrees::new(builder.build()?.client().clone()))
    } else {
        None
    };
    let report = verify::verify(&cache, &selection, trees.as_ref().map(|t| t as &dyn verify::TreeSource))?;
    let (mut damaged, mut missing_remote, mut extra_remote) = (0usize, 0usize, 0usize);
    for f in &report.findings {
        match f {
            Finding::Corrupt {
                file_path,
                expected,
                actual,
                ..
            } => {
                damaged += 1;
                out(&format!(
                    "corrupt: {}: expected {} {}, got {actual}",
                    file_path.display(),
                    expected.kind,
                    expected.hex
                ));
            }
            Finding::Missing { file_path, blob_path } => {
                damaged += 1;
                out(&format!(
                    "missing: {} (blob {} is gone)",
                    file_path.display(),
                    blob_path.display()
                ));
            }
            Finding::Unreadable { path, message } => {
                damaged += 1;
                out(&format!("unreadable: {}: {message}", path.display()));
            }
            Finding::RemoteMismatch {
                file_path,
                expected,
                actual,
            } => {
                damaged += 1;
                out(&format!(
                    "mismatch: {}: the Hub says {} {}, the file hashes to {actual}",
                    file_path.display(),
                    expected.kind,
                    expected.hex
                ));
            }
            Finding::RemoteMissing { repo, commit, path } => {
                missing_remote += 1;
                if args.fail_on_missing_files {
                    out(&format!("missing locally: {repo}@{commit}: {path}"));
                }
            }
            Finding::RemoteExtra { repo, commit, path } => {
                extra_remote += 1;
                if args.fail_on_extra_files {
                    out(&format!("extra: {repo}@{commit}: {path}"));
                }
            }
        }
    }
    if missing_remote > 0 && !args.fail_on_missing_files {
        eprintln!(
            "warning: {missing_remote} file(s) on the Hub are not in the cached snapshot(s); --fail-on-missing-files lists them"
        );
    }
    if extra_remote > 0 && !args.fail_on_extra_files {
        eprintln!("warning: {extra_remote} cached file(s) are not on the Hub; --fail-on-extra-files lists them");
    }
    if !report.unverifiable.is_empty() {
        eprintln!(
            "note: {} file(s) have no blob name or cached listing to check against (copied files)",
            report.unverifiable.len()
        );
    }
    let failed = damaged > 0
        || (args.fail_on_missing_files && missing_remote > 0)
        || (args.fail_on_extra_files && extra_remote > 0);
    let scope = format!(
        "{} file(s) in {} revision(s) ({} distinct blob(s), {})",
        report.files,
        report.revisions,
        report.hashed,
        format_size(report.bytes)
    );
    if failed {
        out(&format!(
            "Verification failed: {damaged} damaged file(s) among {scope}."
        ));
        return Ok(ExitCode::from(1));
    }
    out(&format!("Verified {scope}: all checksums match."));
    Ok(ExitCode::SUCCESS)
}
