//! `hubcache cache add-folder DIR --repo ORG/NAME`: publish a local folder into the cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hubcache::cache::add_folder::add_folder;
use hubcache::cache::writer::WriteOptions;
use hubcache::cache::CacheLayout;
use hubcache::{Repo, RepoId, RepoType, Revision, Settings};

use crate::CmdResult;

/// Arguments of `hubcache cache add-folder`.
#[derive(Args)]
pub struct AddFolderArgs {
    /// The folder to import (its files become the commit; `.git` is skipped).
    dir: PathBuf,
    /// Repo id to publish it as.
    #[arg(long)]
    repo: String,
    /// Repo type.
    #[arg(long, default_value = "model", value_parser = ["model", "dataset", "space"])]
    repo_type: String,
    /// Branch to point at the new commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// Imports the folder and prints the snapshot folder.
pub fn run(settings: &Settings, args: AddFolderArgs) -> CmdResult {
    let repo_type: RepoType = args.repo_type.parse().map_err(hubcache::Error::from)?;
    let repo = Repo::new(RepoId::new(&args.repo).map_err(hubcache::Error::from)?, repo_type);
    let revision = Revision::new(&args.revision).map_err(hubcache::Error::from)?;
    let Revision::Ref(branch) = revision else {
        return Err(hubcache::Error::from(hubcache::NameError::Revision {
            value: args.revision,
            reason: "must be a branch name, not a commit hash",
        })
        .into());
    };
    let root = args.cache_dir.unwrap_or_else(|| settings.cache_dir.clone());
    std::fs::create_dir_all(&root).map_err(|e| hubcache::Error::io("create", &root, e))?;
    let cache = CacheLayout::new(root.canonicalize().map_err(|e| hubcache::Error::io("open", &root, e))?);
    let options = WriteOptions::from_settings(&cache, settings).on_wait(crate::progress::print_writer_wait);
    let done = add_folder(&cache, &repo, &branch, &args.dir, options)?;
    eprintln!(
        "imported {} files ({} bytes) as {} commit {} ({branch})",
        done.files, done.bytes, repo, done.commit
    );
    println!("{}", done.snapshot.display());
    Ok(ExitCode::SUCCESS)
}
