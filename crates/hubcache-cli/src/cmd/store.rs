//! The S3 store from the command line: `--store s3://BUCKET/PREFIX` resolution (shared by
//! `serve`, `import`, `push` and `env`), bundle import into the store, and `hubcache push`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use hubcache::{Repo, RepoId, RepoType, Settings};
use hubcache_mirror::store::s3::{fill, S3Config, S3Store, StoreError};
use hubcache_mirror::store::FsStore;

use crate::{CmdResult, Hinted};

impl Hinted for StoreError {
    fn hints(&self) -> Vec<String> {
        StoreError::hints(self)
    }
}

/// The store URL and `AWS_*` settings from the environment.
pub fn config(url: &str) -> Result<S3Config, StoreError> {
    S3Config::from_url(url, |name| std::env::var(name).ok())
}

fn runtime() -> Result<tokio::runtime::Runtime, hubcache::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| hubcache::Error::io("start the runtime for", PathBuf::from("hubcache"), e))
}

/// `hubcache import BUNDLE… --store s3://…`: each blob verified before it is stored, then
/// listings, manifests and refs.
pub fn import(url: &str, bundles: &[PathBuf]) -> CmdResult {
    let config = config(url)?;
    runtime()?.block_on(async {
        let store = S3Store::open(&config).await?;
        for b in bundles {
            let r = fill::import_bundle(&store, b).await?;
            eprintln!(
                "imported {} into {}: {} repos, {} entries, {} blobs uploaded ({} bytes), {} already stored, all verified",
                b.display(),
                store.url(),
                r.repos,
                r.entries,
                r.blobs_uploaded,
                r.bytes_uploaded,
                r.blobs_present
            );
        }
        Ok::<(), StoreError>(())
    })?;
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}

/// A repo name or type on the command line is invalid.
#[derive(Debug, thiserror::Error)]
#[error("invalid name `{0}`: {1}")]
struct BadName(String, String);

impl Hinted for BadName {
    fn hints(&self) -> Vec<String> {
        vec!["repos are `org/name` (or `name`); --repo-type is model, dataset or space".into()]
    }
}

/// Arguments of `hubcache push`.
#[derive(Args)]
pub struct PushArgs {
    /// Repos of the local cache to push (`org/name`), with every cached snapshot and ref.
    #[arg(required = true)]
    repos: Vec<String>,
    /// The store: s3://BUCKET[/PREFIX] (endpoint and credentials from AWS_* variables).
    #[arg(long, env = "HUBCACHE_STORE")]
    store: String,
    /// Repo type of the repos.
    #[arg(long, default_value = "model")]
    repo_type: String,
    /// Cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// `hubcache push`: cached repos into the store (blobs verified, then manifests, then refs).
pub fn push(settings: &Settings, args: PushArgs) -> CmdResult {
    let config = config(&args.store)?;
    let bad = |name: &str, e: hubcache::NameError| BadName(name.to_string(), e.to_string());
    let kind: RepoType = args.repo_type.parse().map_err(|e| bad(&args.repo_type, e))?;
    let repos: Vec<Repo> = args
        .repos
        .iter()
        .map(|r| RepoId::new(r).map(|id| Repo::new(id, kind)).map_err(|e| bad(r, e)))
        .collect::<Result<_, _>>()?;
    let root = args.cache_dir.clone().unwrap_or_else(|| settings.cache_dir.clone());
    let cache = Arc::new(FsStore::new(root));
    runtime()?.block_on(async {
        let store = S3Store::open(&config).await?;
        for repo in &repos {
            let r = fill::push_repo(&store, &cache, repo).await?;
            eprintln!(
                "pushed {repo} to {}: {} entries, {} blobs uploaded ({} bytes), {} already stored, all verified",
                store.url(),
                r.entries,
                r.blobs_uploaded,
                r.bytes_uploaded,
                r.blobs_present
            );
        }
        Ok::<(), StoreError>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
