//! `hubcache model …`: resolve everything a model needs.

use std::process::ExitCode;

use clap::Args;
use hubcache::Settings;

use crate::CmdResult;

/// Arguments of `hubcache model`.
#[derive(Args)]
pub struct ModelArgs {
    /// Repo id or local folder.
    repo_id_or_dir: String,
}

/// Runs `hubcache model`.
pub fn run(_settings: &Settings, args: ModelArgs) -> CmdResult {
    eprintln!(
        "error: `hubcache model` is not implemented yet ({})",
        args.repo_id_or_dir
    );
    Ok(ExitCode::from(1))
}
