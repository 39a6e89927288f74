//! `hubcache cache …`: inspect and manage the cache.

use std::process::ExitCode;

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
enum CacheCommand {}

/// Runs a `cache` subcommand.
pub fn run(_settings: &Settings, args: CacheArgs) -> CmdResult {
    match args.command {}
    #[allow(unreachable_code)]
    Ok(ExitCode::SUCCESS)
}
