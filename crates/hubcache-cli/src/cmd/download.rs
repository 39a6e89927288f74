//! `hubcache download`: one file, or a snapshot filtered by `--include`/`--exclude`; prints
//! the path on stdout.
//!
//! A pattern that can never match a repo file (`..`, a leading `/`, a backslash) is a usage
//! error before any request; filters that select no file of the commit are an error (exit 1)
//! naming a few of the repo's files, where the library, like Python, returns an empty folder.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use hubcache::download::patterns::{validate_pattern, Filter, PatternError};
use hubcache::{Error, FileRequest, Repo, RepoId, RepoPath, RepoType, Revision, Settings, SnapshotRequest};

use crate::cmd::plan;
use crate::{CmdResult, Hinted};

/// Arguments of `hubcache download`.
#[derive(Args)]
pub struct DownloadArgs {
    /// Repo id, `org/name` or `name`.
    repo_id: String,
    /// Files to download; none means the whole snapshot (filtered by --include/--exclude).
    files: Vec<String>,
    /// Repo type.
    #[arg(long, default_value = "model", value_parser = ["model", "dataset", "space"])]
    repo_type: String,
    /// Branch, tag, `refs/pr/N` or a 40-character commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Glob of files to include (repeatable; fnmatch semantics, `dir/` selects a folder).
    #[arg(long, value_parser = pattern)]
    include: Vec<String>,
    /// Glob of files to exclude (repeatable).
    #[arg(long, value_parser = pattern)]
    exclude: Vec<String>,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Put real files in this folder instead of the cache layout.
    #[arg(long)]
    local_dir: Option<PathBuf>,
    /// Download again even if the cache has it.
    #[arg(long)]
    force_download: bool,
    /// Use only the cache; never touch the network.
    #[arg(long)]
    offline: bool,
    /// Access token (default: HF_TOKEN, else the token file).
    #[arg(long)]
    token: Option<String>,
    /// Files in flight at once in a snapshot (larger files are also held to a memory budget).
    #[arg(long, default_value_t = hubcache::download::DEFAULT_MAX_WORKERS)]
    max_workers: usize,
    /// Most connections per large file, fetched in ranged parts (1: one stream per file;
    /// default: HUBCACHE_MAX_CONNECTIONS, else 24).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    max_connections: Option<u16>,
    /// No progress bars or warnings; only the result and errors.
    #[arg(long, short)]
    quiet: bool,
    /// Log on stderr how each transfer runs: connections, parts, retries, fallbacks
    /// (default: HUBCACHE_VERBOSE). Stdout is unchanged.
    #[arg(long, short)]
    verbose: bool,
    /// Fetch nothing: print each file that would be placed (size, cached or not) and the totals.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON (path, files fetched and cached, bytes, seconds; or the dry run).
    #[arg(long)]
    json: bool,
}

/// `--include`/`--exclude`: a usage error for a pattern that can never match a repo file.
fn pattern(value: &str) -> Result<String, PatternError> {
    validate_pattern(value).map(|()| value.to_string())
}

/// Runs `hubcache download`.
pub fn run(settings: &Settings, args: DownloadArgs) -> CmdResult {
    let repo_type: RepoType = args.repo_type.parse().map_err(Error::from)?;
    let repo = Repo::new(RepoId::new(&args.repo_id).map_err(Error::from)?, repo_type);
    let revision = Revision::new(&args.revision).map_err(Error::from)?;
    let counter = Arc::new(plan::Counter::default());
    let mut settings = settings.clone();
    settings.verbose |= args.verbose;
    let mut builder = crate::hub_builder(&settings, args.cache_dir.as_ref(), args.token.as_ref(), args.quiet);
    if let Some(n) = args.max_connections {
        builder = builder.max_connections(usize::from(n));
    }
    if args.json {
        builder = builder.reporter(counter.clone());
    }
    let hub = hubcache::blocking::Hub::new(builder)?;
    if args.dry_run {
        return dry_run(&hub, repo, revision, &args);
    }
    let started = Instant::now();
    let mut files = 1;
    let path = if args.files.len() == 1 {
        let mut req = FileRequest::new(repo, revision, RepoPath::new(&args.files[0]).map_err(Error::from)?);
        req.force = args.force_download;
        req.local_only = args.offline;
        req.local_dir = args.local_dir.clone();
        hub.download_file(&req)?
    } else {
        let mut req = SnapshotRequest::new(repo, revision);
        for f in &args.files {
            // Exact names as patterns, as transformers does; validate them as paths first.
            req.include.push(RepoPath::new(f).map_err(Error::from)?.to_string());
        }
        req.include.extend(args.include.iter().cloned());
        req.exclude = args.exclude.clone();
        req.max_workers = args.max_workers.max(1);
        req.force = args.force_download;
        req.local_only = args.offline;
        req.local_dir = args.local_dir.clone();
        let (path, selection) = hub.block_on(hub.inner().snapshot_selection(&req))?;
        let filtered = !req.include.is_empty() || !req.exclude.is_empty();
        if filtered && selection.selected.is_empty() {
            return Err(NothingSelected::new(&req, &args, selection.listed).into());
        }
        files = selection.selected.len();
        path
    };
    if args.json {
        counter.print_json(&path, files, started.elapsed().as_secs_f64());
    } else {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--dry-run`: the plan, with no content request.
fn dry_run(hub: &hubcache::blocking::Hub, repo: Repo, revision: Revision, args: &DownloadArgs) -> CmdResult {
    let mut req = SnapshotRequest::new(repo, revision);
    for f in &args.files {
        req.include.push(RepoPath::new(f).map_err(Error::from)?.to_string());
    }
    req.include.extend(args.include.iter().cloned());
    req.exclude = args.exclude.clone();
    let (plan, listed) = plan::plan(hub, &req.repo, &req.revision, &req.include, &req.exclude, args.offline)?;
    if plan.is_empty() && (!req.include.is_empty() || !req.exclude.is_empty()) {
        return Err(NothingSelected::new(&req, args, listed).into());
    }
    if args.json {
        plan.print_json();
    } else {
        plan.print_text();
    }
    Ok(ExitCode::SUCCESS)
}

/// How many of the repo's files a hint names.
const EXAMPLES: usize = 5;

/// A snapshot whose filters keep no file of the commit (the library returns an empty folder,
/// as Python does; here the user hears why).
#[derive(Debug, thiserror::Error)]
#[error("no file of {repo}@{revision} matches {filters}")]
pub struct NothingSelected {
    repo: String,
    revision: String,
    /// The names and flags as typed: `a.json --include '*.gguf' --exclude '*.bin'`.
    filters: String,
    /// Every file of the commit (or of the cached snapshot, offline without a listing).
    listed: Vec<RepoPath>,
    /// How many files the include side alone keeps (so: all removed by `--exclude`).
    included: usize,
}

impl NothingSelected {
    fn new(req: &SnapshotRequest, args: &DownloadArgs, listed: Vec<RepoPath>) -> Self {
        let mut filters: Vec<String> = args.files.clone();
        filters.extend(args.include.iter().map(|p| format!("--include '{p}'")));
        filters.extend(args.exclude.iter().map(|p| format!("--exclude '{p}'")));
        let included = Filter::new(&req.include, &[]).select(&listed).selected.len();
        NothingSelected {
            repo: req.repo.to_string(),
            revision: req.revision.to_string(),
            filters: filters.join(" "),
            listed,
            included,
        }
    }
}

impl Hinted for NothingSelected {
    fn hints(&self) -> Vec<String> {
        let at = format!("{}@{}", self.repo, self.revision);
        if self.listed.is_empty() {
            return vec![format!("{at} has no files")];
        }
        let names: Vec<&str> = self.listed.iter().take(EXAMPLES).map(RepoPath::as_str).collect();
        let more = if self.listed.len() > EXAMPLES { ", …" } else { "" };
        let mut hints = vec![format!(
            "{at} has {} file(s): {}{more}",
            self.listed.len(),
            names.join(", ")
        )];
        if self.included > 0 {
            hints.push(format!(
                "the names and --include select {} file(s); --exclude removes them all",
                self.included
            ));
        } else {
            hints.push(
                "patterns match the whole path, case-sensitively: `*` also crosses `/`, `dir/` selects a folder".into(),
            );
        }
        hints
    }
}
