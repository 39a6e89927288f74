//! `hubcache serve`: a Hub-compatible endpoint over the cache.

use std::process::ExitCode;

use clap::Args;
use hubcache::Settings;

use crate::CmdResult;

/// Arguments of `hubcache serve`.
#[derive(Args)]
pub struct ServeArgs {}

/// Runs `hubcache serve`.
pub fn run(_settings: &Settings, _args: ServeArgs) -> CmdResult {
    eprintln!("error: `hubcache serve` is not implemented yet");
    Ok(ExitCode::from(1))
}
