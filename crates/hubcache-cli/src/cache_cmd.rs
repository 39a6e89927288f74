//! `hubcache cache …`: inspect and manage the cache.

use clap::{Args, Subcommand};
use hubcache::Settings;

use crate::CmdResult;

/// Arguments of `hubcache cache`.
#[derive(Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Import a local model folder into the cache as a new commit of a repo (prints the snapshot).
    AddFolder(crate::add_folder_cmd::AddFolderArgs),
}

/// Runs a `cache` subcommand.
pub fn run(settings: &Settings, args: CacheArgs) -> CmdResult {
    match args.command {
        CacheCommand::AddFolder(a) => crate::add_folder_cmd::run(settings, a),
    }
}
