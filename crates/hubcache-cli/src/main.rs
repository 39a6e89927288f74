//! `hubcache`: download from a Hub-compatible endpoint into the Hugging Face cache, and load
//! from it offline. Results go to stdout, everything else to stderr.

mod add_folder_cmd;
mod cache_cmd;
mod cache_view;
mod deploy_cmd;
mod model_cmd;
mod progress;
mod serve_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use hubcache::{
    Error, FileRequest, HubBuilder, Repo, RepoId, RepoPath, RepoType, Revision, Settings, SnapshotRequest, Token,
};

/// Hugging Face Hub cache and downloads, compatible with huggingface_hub.
#[derive(Parser)]
#[command(name = "hubcache", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download files or a whole repo snapshot into the cache (prints the path).
    Download(Box<DownloadArgs>),
    /// Print the resolved settings (cache folder, endpoint, offline, token source).
    Env,
    /// Inspect and manage the cache (list, remove, prune, verify, add a local folder).
    Cache(cache_cmd::CacheArgs),
    /// Resolve everything a model needs (config, weights, tokenizer) like from_pretrained.
    Model(model_cmd::ModelArgs),
    /// Serve the cache as a Hub-compatible endpoint (HF_ENDPOINT for other machines).
    Serve(serve_cmd::ServeArgs),
    /// Pin the repos of hubcache.toml to commits and exact files in hubcache.lock.
    Lock(deploy_cmd::LockArgs),
    /// Make the cache hold exactly what hubcache.lock names.
    Sync(deploy_cmd::SyncArgs),
    /// Write cached snapshots into one self-verifying bundle file.
    Export(deploy_cmd::ExportArgs),
    /// Import bundles into a cache, verifying every blob first.
    Import(deploy_cmd::ImportArgs),
}

/// An error the CLI can print: the message chain, then `hint:` lines.
pub trait Hinted: std::error::Error {
    /// What the user can do about it.
    fn hints(&self) -> Vec<String>;
}

impl Hinted for Error {
    fn hints(&self) -> Vec<String> {
        Error::hints(self)
    }
}

/// What a command returns: its exit code, or an error to print (exit 1).
pub type CmdResult = Result<ExitCode, Box<dyn Hinted>>;

impl<E: Hinted + 'static> From<E> for Box<dyn Hinted> {
    fn from(e: E) -> Self {
        Box::new(e)
    }
}

#[derive(Args)]
struct DownloadArgs {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Settings::from_env();
    hubcache::lock::disable_flock(settings.disable_flock);
    let result: CmdResult = match cli.command {
        Command::Download(args) => download(&settings, *args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Env => {
            print_env(&settings);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cache(args) => cache_cmd::run(&settings, args),
        Command::Model(args) => model_cmd::run(&settings, args),
        Command::Serve(args) => serve_cmd::run(&settings, args),
        Command::Lock(args) => deploy_cmd::lock(&settings, args),
        Command::Sync(args) => deploy_cmd::sync_cmd(&settings, args),
        Command::Export(args) => deploy_cmd::export(&settings, args),
        Command::Import(args) => deploy_cmd::import(&settings, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(e.as_ref());
            ExitCode::from(1)
        }
    }
}

fn report(e: &dyn Hinted) {
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    for hint in e.hints() {
        eprintln!("hint: {hint}");
    }
}

/// A hub configured from the settings and the common flags (`--cache-dir`, `--token`,
/// `--quiet`), reporting on stderr (bars only on a terminal).
pub fn hub_builder(
    settings: &Settings,
    cache_dir: Option<&PathBuf>,
    token: Option<&String>,
    quiet: bool,
) -> HubBuilder {
    let mut builder = HubBuilder::from_settings(settings);
    if let Some(dir) = cache_dir {
        builder = builder.cache_dir(dir);
    }
    if let Some(t) = token {
        builder = builder.token(Token::parse(t));
    }
    let show_bars = !quiet && settings.disable_progress_bars != Some(true) && progress::stderr_is_terminal();
    builder.reporter(Arc::new(progress::CliReporter::new(show_bars, quiet)))
}

fn download(settings: &Settings, args: DownloadArgs) -> Result<(), Error> {
    let repo_type: RepoType = args.repo_type.parse()?;
    let repo = Repo::new(RepoId::new(&args.repo_id)?, repo_type);
    let revision = Revision::new(&args.revision)?;
    let hub = hubcache::blocking::Hub::new(hub_builder(
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

fn redact_proxy(p: &Option<String>) -> String {
    match p {
        None => "-".into(),
        Some(raw) => match raw.split_once('@') {
            Some((creds, host)) => {
                let scheme = creds
                    .split_once("://")
                    .map(|(s, _)| format!("{s}://"))
                    .unwrap_or_default();
                format!("{scheme}<credentials>@{host}")
            }
            None => raw.clone(),
        },
    }
}

fn print_env(s: &Settings) {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("hubcache version:   {}", env!("CARGO_PKG_VERSION"));
    println!("HF_HOME:            {}", s.hf_home.display());
    println!("hub cache:          {}", s.cache_dir.display());
    println!("endpoint:           {}", s.endpoint);
    println!("offline:            {}", yes_no(s.offline));
    println!("token:              {}", s.token_source);
    println!("token file:         {}", s.token_path.display());
    println!("implicit token off: {}", yes_no(s.disable_implicit_token));
    println!("etag timeout:       {}s", s.etag_timeout.as_secs());
    println!("download timeout:   {}s", s.download_timeout.as_secs());
    println!("symlinks disabled:  {}", yes_no(s.disable_symlinks));
    let bars = match s.disable_progress_bars {
        None => "auto (terminal only)",
        Some(true) => "off",
        Some(false) => "on",
    };
    println!("progress bars:      {bars}");
    println!("http proxy:         {}", redact_proxy(&s.proxies.http));
    println!("https proxy:        {}", redact_proxy(&s.proxies.https));
    println!("all proxy:          {}", redact_proxy(&s.proxies.all));
    println!("no proxy:           {}", s.proxies.no_proxy.as_deref().unwrap_or("-"));
}
