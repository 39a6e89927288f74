//! `hubcache download`: one file, or a snapshot filtered by `--include`/`--exclude`; prints
//! the path on stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::{Error, FileRequest, Repo, RepoId, RepoPath, RepoType, Revision, Settings, SnapshotRequest};

use crate::CmdResult;

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
    #[arg(long)]
    include: Vec<String>,
    /// Glob of files to exclude (repeatable).
    #[arg(long)]
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
    /// Parallel transfers for snapshots.
    #[arg(long, default_value_t = 8)]
    max_workers: usize,
    /// No progress bars or warnings; only the result and errors.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `hubcache download`.
pub fn run(settings: &Settings, args: DownloadArgs) -> CmdResult {
    download(settings, args)?;
    Ok(ExitCode::SUCCESS)
}

fn download(settings: &Settings, args: DownloadArgs) -> Result<(), Error> {
    let repo_type: RepoType = args.repo_type.parse()?;
    let repo = Repo::new(RepoId::new(&args.repo_id)?, repo_type);
    let revision = Revision::new(&args.revision)?;
    let hub = hubcache::blocking::Hub::new(crate::hub_builder(
        settings,
        args.cache_dir.as_ref(),
        args.token.as_ref(),
        args.quiet,
    ))?;
    let path = if args.files.len() == 1 {
        let mut req = FileRequest::new(repo, revision, RepoPath::new(&args.files[0])?);
        req.force = args.force_download;
        req.local_only = args.offline;
        req.local_dir = args.local_dir.clone();
        hub.download_file(&req)?
    } else {
        let mut req = SnapshotRequest::new(repo, revision);
        for f in &args.files {
            // Exact names as patterns, as transformers does; validate them as paths first.
            req.include.push(RepoPath::new(f)?.to_string());
        }
        req.include.extend(args.include.iter().cloned());
        req.exclude = args.exclude.clone();
        req.max_workers = args.max_workers.max(1);
        req.force = args.force_download;
        req.local_only = args.offline;
        req.local_dir = args.local_dir.clone();
        hub.snapshot(&req)?
    };
    println!("{}", path.display());
    Ok(())
}
