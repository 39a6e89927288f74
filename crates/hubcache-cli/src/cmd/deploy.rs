//! `hubcache lock | sync | export | import`: reproducible, air-gapped deployments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::cache::writer::WriteOptions;
use hubcache::cache::CacheLayout;
use hubcache::deploy::bundle::{self, ExportItem};
use hubcache::deploy::resolve::{self, Upgrade};
use hubcache::deploy::{sync, DeployError, Lockfile, Manifest};
use hubcache::units::format_size;
use hubcache::{Repo, RepoId, RepoType, Revision, Settings};

use crate::{CmdResult, Hinted};

impl Hinted for DeployError {
    fn hints(&self) -> Vec<String> {
        DeployError::hints(self)
    }
}

/// Arguments of `hubcache lock`.
#[derive(Args)]
pub struct LockArgs {
    /// The manifest.
    #[arg(long, default_value = "hubcache.toml")]
    manifest: PathBuf,
    /// The lock file.
    #[arg(long, default_value = "hubcache.lock")]
    lockfile: PathBuf,
    /// Only check that the lock matches the manifest (no network); exit 1 if not.
    #[arg(long, conflicts_with = "upgrade")]
    check: bool,
    /// Move pins to the revisions' current commits: all repos, or only REPO.
    #[arg(long, num_args = 0..=1, default_missing_value = "*", value_name = "REPO")]
    upgrade: Option<String>,
    /// Repo type of the --upgrade REPO.
    #[arg(long, default_value = "model", value_parser = ["model", "dataset", "space"])]
    repo_type: String,
    /// Access token (default: HF_TOKEN, else the token file).
    #[arg(long)]
    token: Option<String>,
}

/// Arguments of `hubcache sync`.
#[derive(Args)]
pub struct SyncArgs {
    /// The manifest.
    #[arg(long, default_value = "hubcache.toml")]
    manifest: PathBuf,
    /// The lock file.
    #[arg(long, default_value = "hubcache.lock")]
    lockfile: PathBuf,
    /// Use the lock as it is; fail if it is missing or out of date (CI, production).
    #[arg(long)]
    locked: bool,
    /// No network: only check that every locked file is cached and hashes right.
    #[arg(long)]
    offline: bool,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Files in flight at once (larger files are also held to a memory budget).
    #[arg(long, default_value_t = hubcache::download::DEFAULT_MAX_WORKERS)]
    max_workers: usize,
    /// Access token (default: HF_TOKEN, else the token file).
    #[arg(long)]
    token: Option<String>,
    /// Change nothing: print each locked file (size, cached or not) and the totals; no request.
    #[arg(long)]
    dry_run: bool,
}

/// Arguments of `hubcache export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Repos to export, `ORG/NAME` or `ORG/NAME@REV` (default revision main), from the cache.
    repos: Vec<String>,
    /// Export exactly what this lock file names instead.
    #[arg(long, conflicts_with = "repos")]
    lock: Option<PathBuf>,
    /// Repo type of the REPO arguments.
    #[arg(long, default_value = "model", value_parser = ["model", "dataset", "space"])]
    repo_type: String,
    /// The bundle to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Write parts OUTPUT.000, OUTPUT.001, … of at most SIZE each (e.g. 4GB, 700MB; decimal units);
    /// import the first part.
    #[arg(long, value_name = "SIZE", value_parser = parse_split)]
    split: Option<u64>,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// Arguments of `hubcache import`.
#[derive(Args)]
pub struct ImportArgs {
    /// Bundles to import.
    #[arg(required = true)]
    bundles: Vec<PathBuf>,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long, conflicts_with = "store")]
    cache_dir: Option<PathBuf>,
    /// Import into this S3 store instead (s3://BUCKET[/PREFIX]; AWS_* variables), for `serve --store`.
    #[arg(long)]
    store: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, hubcache::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| hubcache::Error::io("start the runtime for", PathBuf::from("hubcache"), e))
}

fn hub(
    settings: &Settings,
    cache_dir: Option<&PathBuf>,
    token: Option<&String>,
) -> Result<hubcache::Hub, hubcache::Error> {
    crate::hub_builder(settings, cache_dir, token, false).build()
}

fn cache_layout(settings: &Settings, dir: Option<&PathBuf>) -> Result<CacheLayout, hubcache::Error> {
    let root = dir.cloned().unwrap_or_else(|| settings.cache_dir.clone());
    std::fs::create_dir_all(&root).map_err(|e| hubcache::Error::io("create", &root, e))?;
    Ok(CacheLayout::new(
        root.canonicalize().map_err(|e| hubcache::Error::io("open", &root, e))?,
    ))
}

/// `hubcache lock`.
pub fn lock(settings: &Settings, args: LockArgs) -> CmdResult {
    let manifest = Manifest::load(&args.manifest)?;
    let previous = Lockfile::load(&args.lockfile)?;
    if args.check {
        let problems = match &previous {
            Some(l) => resolve::check(&manifest, l),
            None => vec![format!("{} does not exist", args.lockfile.display())],
        };
        if problems.is_empty() {
            eprintln!(
                "{} is up to date with {}",
                args.lockfile.display(),
                args.manifest.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        return Err(DeployError::Stale { problems }.into());
    }
    let upgrade = match args.upgrade.as_deref() {
        None => Upgrade::None,
        Some("*") => Upgrade::All,
        Some(r) => Upgrade::Repo(Repo::new(
            RepoId::new(r).map_err(hubcache::Error::from)?,
            args.repo_type.parse::<RepoType>().map_err(hubcache::Error::from)?,
        )),
    };
    if settings.offline {
        return Err(hubcache::Error::Offline {
            repo: "(manifest)".into(),
            revision: "-".into(),
            what: "the revisions to lock".into(),
            cache: settings.cache_dir.clone(),
            reason: hubcache::OfflineReason::Env,
        }
        .into());
    }
    let hub = hub(settings, None, args.token.as_ref())?;
    let (lock, changes) = runtime()?.block_on(resolve::lock(&hub, &manifest, previous.as_ref(), &upgrade))?;
    lock.save(&args.lockfile)?;
    for c in &changes {
        let short = |c: &Option<String>| {
            c.as_deref()
                .map(|s| s[..12.min(s.len())].to_string())
                .unwrap_or_else(|| "-".into())
        };
        eprintln!("{}: {} -> {}", c.what, short(&c.from), short(&c.to));
    }
    let files: usize = lock.repos.iter().map(|r| r.files.len()).sum();
    eprintln!(
        "locked {} repos, {files} files in {}",
        lock.repos.len(),
        args.lockfile.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `hubcache sync`.
pub fn sync_cmd(settings: &Settings, args: SyncArgs) -> CmdResult {
    let offline = args.offline || settings.offline;
    let mut lock = Lockfile::load(&args.lockfile)?;
    let manifest = if args.manifest.exists() {
        Some(Manifest::load(&args.manifest)?)
    } else {
        None
    };
    let stale = match (&manifest, &lock) {
        (Some(m), Some(l)) => resolve::check(m, l),
        (_, None) => vec![format!("{} does not exist", args.lockfile.display())],
        (None, Some(_)) => vec![],
    };
    if !stale.is_empty() {
        if args.locked || offline || args.dry_run {
            return Err(DeployError::Stale { problems: stale }.into());
        }
        let Some(m) = &manifest else {
            return Err(DeployError::Stale { problems: stale }.into());
        };
        let hub = hub(settings, args.cache_dir.as_ref(), args.token.as_ref())?;
        let (fresh, _) = runtime()?.block_on(resolve::lock(&hub, m, lock.as_ref(), &Upgrade::None))?;
        fresh.save(&args.lockfile)?;
        eprintln!("updated {}", args.lockfile.display());
        lock = Some(fresh);
    }
    let Some(lock) = lock else {
        return Err(DeployError::Stale {
            problems: vec!["no lock".into()],
        }
        .into());
    };
    if args.dry_run {
        let cache = cache_layout(settings, args.cache_dir.as_ref())?;
        let (mut files, mut fetch, mut fetch_bytes, mut total) = (0usize, 0usize, 0u64, 0u64);
        for r in &lock.repos {
            let layout = cache.repo(&r.repo);
            for f in &r.files {
                let cached = hubcache::fs::is_file(&layout.snapshot_file(&r.commit, &f.path));
                let state = if cached { "cached" } else { "fetch" };
                println!("{:>10}  {state:<6}  {} {}", format_size(f.size), r.repo, f.path);
                files += 1;
                total += f.size;
                if !cached {
                    fetch += 1;
                    fetch_bytes += f.size;
                }
            }
        }
        println!(
            "total: {files} file(s), {}; to fetch: {fetch} file(s), {}; cached: {} file(s)",
            format_size(total),
            format_size(fetch_bytes),
            files - fetch
        );
        return Ok(ExitCode::SUCCESS);
    }
    if offline {
        let cache = cache_layout(settings, args.cache_dir.as_ref())?;
        let n = sync::verify_offline(
            &cache,
            &lock,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        )?;
        eprintln!("all {n} locked files are cached and verified (no network used)");
        return Ok(ExitCode::SUCCESS);
    }
    let hub = hub(settings, args.cache_dir.as_ref(), args.token.as_ref())?;
    let report = runtime()?.block_on(sync::sync(&hub, &lock, args.max_workers))?;
    eprintln!(
        "{} files: {} already cached, {} downloaded ({} bytes)",
        report.files, report.present, report.fetched, report.fetched_bytes
    );
    println!("{}", hub.cache().root().display());
    Ok(ExitCode::SUCCESS)
}

/// `hubcache export`.
pub fn export(settings: &Settings, args: ExportArgs) -> CmdResult {
    let cache = cache_layout(settings, args.cache_dir.as_ref())?;
    let mut items = Vec::new();
    if let Some(path) = &args.lock {
        let lock = Lockfile::load(path)?.ok_or_else(|| DeployError::Lock {
            path: path.clone(),
            detail: "does not exist".into(),
        })?;
        for r in lock.repos {
            items.push(ExportItem {
                refs: match &r.revision {
                    Revision::Ref(name) => vec![name.clone()],
                    Revision::Commit(_) => vec![],
                },
                files: Some(r.files.iter().map(|f| (f.path.clone(), f.blob.clone())).collect()),
                repo: r.repo,
                commit: r.commit,
            });
        }
    } else {
        if args.repos.is_empty() {
            return Err(DeployError::NothingToExport.into());
        }
        let repo_type: RepoType = args.repo_type.parse().map_err(hubcache::Error::from)?;
        for spec in &args.repos {
            let (id, rev) = spec.split_once('@').unwrap_or((spec, "main"));
            let repo = Repo::new(RepoId::new(id).map_err(hubcache::Error::from)?, repo_type);
            let revision = Revision::new(rev).map_err(hubcache::Error::from)?;
            let commit = hubcache::cache::lookup::resolve_commit(&cache.repo(&repo), &revision).ok_or_else(|| {
                DeployError::RevisionNotCached {
                    repo: repo.to_string(),
                    revision: revision.to_string(),
                }
            })?;
            items.push(ExportItem {
                refs: match &revision {
                    Revision::Ref(name) => vec![name.clone()],
                    Revision::Commit(_) => vec![],
                },
                repo,
                commit,
                files: None,
            });
        }
    }
    let report = bundle::export(&cache, &items, &args.output, args.split)?;
    eprintln!(
        "exported {} repos, {} entries, {} blobs ({} bytes) into {} ({} bytes)",
        report.repos,
        report.entries,
        report.blobs,
        report.blob_bytes,
        args.output.display(),
        report.bundle_bytes
    );
    match args.split {
        Some(_) => println!("{}", bundle::part_name(&args.output, 0).display()),
        None => println!("{}", args.output.display()),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_split(value: &str) -> Result<u64, String> {
    match crate::units::parse_size(value)? {
        n if n >= 1 << 20 => Ok(n as u64),
        _ => Err("a part must be at least 1 MiB".into()),
    }
}

/// `hubcache import`.
pub fn import(settings: &Settings, args: ImportArgs) -> CmdResult {
    if let Some(url) = &args.store {
        return crate::cmd::store::import(url, &args.bundles);
    }
    let cache = cache_layout(settings, args.cache_dir.as_ref())?;
    for b in &args.bundles {
        let options = WriteOptions::from_settings(&cache, settings).on_wait(crate::progress::print_writer_wait);
        let report = bundle::import(&cache, b, options)?;
        eprintln!(
            "imported {}: {} repos, {} entries, {} blobs ({} bytes), all verified",
            b.display(),
            report.repos,
            report.entries,
            report.blobs,
            report.blob_bytes
        );
    }
    println!("{}", cache.root().display());
    Ok(ExitCode::SUCCESS)
}
