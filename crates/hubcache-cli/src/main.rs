//! `hubcache`: download from a Hub-compatible endpoint into the Hugging Face cache, and load
//! from it offline. Results go to stdout, everything else to stderr.

mod cmd;
mod progress;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
// Colours: clap styles help and errors through anstream, which honours NO_COLOR (and
// CLICOLOR/CLICOLOR_FORCE); nothing else here prints colour.
use hubcache::{Error, HubBuilder, Settings, Token};

use crate::cmd::{cache, deploy, download, env, model};

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
    Download(Box<download::DownloadArgs>),
    /// Print the resolved settings (cache folder, endpoint, offline, token source).
    Env,
    /// Inspect and manage the cache (list, remove, prune, verify, add a local folder).
    Cache(cache::CacheArgs),
    /// Resolve everything a model needs (config, weights, tokenizer) like from_pretrained.
    Model(model::ModelArgs),
    /// Serve the cache as a Hub-compatible endpoint (HF_ENDPOINT for other machines).
    Serve(cmd::serve::ServeArgs),
    /// Pin the repos of hubcache.toml to commits and exact files in hubcache.lock.
    Lock(deploy::LockArgs),
    /// Make the cache hold exactly what hubcache.lock names.
    Sync(deploy::SyncArgs),
    /// Write cached snapshots into one self-verifying bundle file.
    Export(deploy::ExportArgs),
    /// Import bundles into a cache (or an S3 store with --store), verifying every blob first.
    Import(deploy::ImportArgs),
    /// Push cached repos (every snapshot and ref) into an S3 store for `serve --store`.
    Push(cmd::store::PushArgs),
    /// Print a shell completion script (e.g. `hubcache completions bash > /etc/bash_completion.d/hubcache`).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Settings::from_env();
    hubcache::lock::disable_flock(settings.disable_flock);
    let result: CmdResult = match cli.command {
        Command::Download(args) => download::run(&settings, *args),
        Command::Env => env::run(&settings),
        Command::Cache(args) => cache::run(&settings, args),
        Command::Model(args) => model::run(&settings, args),
        Command::Serve(args) => cmd::serve::run(&settings, args),
        Command::Lock(args) => deploy::lock(&settings, args),
        Command::Sync(args) => deploy::sync_cmd(&settings, args),
        Command::Export(args) => deploy::export(&settings, args),
        Command::Import(args) => deploy::import(&settings, args),
        Command::Push(args) => cmd::store::push(&settings, args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hubcache", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
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
    let verbose = settings.verbose;
    builder.reporter(Arc::new(progress::CliReporter::new(show_bars, quiet, verbose)))
}
