//! `hf-hub` 0.4's API over the [hubcache] library: switch a project with one
//! `[patch.crates-io] hf-hub = { path = "…/crates/hf-hub-compat" }` line and no code change.
//!
//! Module paths, names and signatures follow hf-hub 0.4 (`Repo`, `RepoType`, `Cache`,
//! `CacheRepo`, `api::sync`, `api::tokio`). The one deliberate difference: the environment is
//! read as Python's huggingface_hub reads it, by every constructor (`HF_ENDPOINT`, `HF_HOME`,
//! `HF_HUB_CACHE`, `HF_TOKEN`, `HF_HUB_OFFLINE`/`TRANSFORMERS_OFFLINE`, timeouts, proxies).
//! Downloads are verified, resumable, wait for a held lock and share Python's lock and temp-file
//! layout. A function of hf-hub that is not here does not compile: there are no stubs.
//! Those are the accessors of hf-hub's HTTP clients, whose types are ureq's and reqwest's:
//!
//! ```compile_fail
//! let api = hf_hub::api::sync::Api::new().unwrap();
//! let _agent = api.client(); // hf-hub: the ureq agent
//! ```
//!
//! ```compile_fail
//! let api = hf_hub::api::sync::Api::new().unwrap();
//! let _request = api.model("gpt2".into()).info_request(); // hf-hub: a ureq request
//! ```
//!
//! ```compile_fail
//! # async fn f() {
//! let api = hf_hub::api::tokio::Api::new().unwrap();
//! let _client = api.client(); // hf-hub: the reqwest client
//! # }
//! ```

#![warn(missing_docs)]

use std::io::Write;
use std::path::PathBuf;

use hubcache::cache::{CacheLayout, CacheLookup};
use hubcache::Settings;

#[cfg(any(feature = "tokio", feature = "ureq"))]
pub mod api;

/// The kind of a repo on the Hub.
#[derive(Debug, Clone, Copy)]
pub enum RepoType {
    /// A model (`models--org--name` in the cache).
    Model,
    /// A dataset (`datasets--…`).
    Dataset,
    /// A space (`spaces--…`).
    Space,
}

impl RepoType {
    fn hubcache(self) -> hubcache::RepoType {
        match self {
            RepoType::Model => hubcache::RepoType::Model,
            RepoType::Dataset => hubcache::RepoType::Dataset,
            RepoType::Space => hubcache::RepoType::Space,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }
}

/// The local cache (the Python-compatible `hub/` folder).
#[derive(Clone, Debug)]
pub struct Cache {
    path: PathBuf,
    /// `Some` for a cache resolved from the environment: the token file Python uses.
    env_token_path: Option<PathBuf>,
}

impl Cache {
    /// A cache at `path` (its token file is `path/../token`, as in hf-hub).
    pub fn new(path: PathBuf) -> Self {
        Cache {
            path,
            env_token_path: None,
        }
    }

    /// The cache Python would use: `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else
    /// `$HF_HOME/hub` (`HF_HOME` defaulting to `$XDG_CACHE_HOME/huggingface`).
    pub fn from_env() -> Self {
        let settings = Settings::from_env();
        Cache {
            path: settings.cache_dir,
            env_token_path: Some(settings.token_path),
        }
    }

    /// The cache folder.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// The token file: `HF_TOKEN_PATH` or `$HF_HOME/token` for [`Cache::from_env`], else
    /// the cache folder's parent's `token`.
    pub fn token_path(&self) -> PathBuf {
        match &self.env_token_path {
            Some(p) => p.clone(),
            None => {
                let mut path = self.path.clone();
                path.pop();
                path.push("token");
                path
            }
        }
    }

    /// The token to send: `HF_TOKEN` (or the legacy `HUGGING_FACE_HUB_TOKEN`) as in Python, else
    /// the content of [`Cache::token_path`]; none when `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set.
    pub fn token(&self) -> Option<String> {
        use hubcache::settings::TokenSource;
        let settings = Settings::from_env();
        if settings.disable_implicit_token {
            return None;
        }
        if matches!(
            settings.token_source,
            TokenSource::HfToken | TokenSource::HuggingFaceHubToken
        ) {
            return settings.token.map(|t| t.expose().to_string());
        }
        let raw = std::fs::read_to_string(self.token_path()).ok()?;
        hubcache::Token::parse(&raw).map(|t| t.expose().to_string())
    }

    /// The cached view of one repo at its revision.
    pub fn repo(&self, repo: Repo) -> CacheRepo {
        CacheRepo {
            cache: self.clone(),
            repo,
        }
    }

    /// Shorthand for a model at `main`.
    pub fn model(&self, model_id: String) -> CacheRepo {
        self.repo(Repo::new(model_id, RepoType::Model))
    }

    /// Shorthand for a dataset at `main`.
    pub fn dataset(&self, model_id: String) -> CacheRepo {
        self.repo(Repo::new(model_id, RepoType::Dataset))
    }

    /// Shorthand for a space at `main`.
    pub fn space(&self, model_id: String) -> CacheRepo {
        self.repo(Repo::new(model_id, RepoType::Space))
    }
}

impl Default for Cache {
    /// Same as [`Cache::from_env`] (hf-hub ignores the environment here; Python does not).
    fn default() -> Self {
        Cache::from_env()
    }
}

/// One repo at one revision inside a [`Cache`]; no network.
#[derive(Debug)]
pub struct CacheRepo {
    cache: Cache,
    repo: Repo,
}

impl CacheRepo {
    /// The cached file at this revision (a branch, tag or commit), or `None`.
    pub fn get(&self, filename: &str) -> Option<PathBuf> {
        let (repo, revision, path) = self.repo.hubcache(filename).ok()?;
        match hubcache::cache::lookup::try_to_load_from_cache(
            &CacheLayout::new(self.cache.path.clone()),
            &repo,
            &revision,
            &path,
        ) {
            CacheLookup::Hit(p) => Some(p),
            CacheLookup::KnownMissing | CacheLookup::Miss => None,
        }
    }

    fn path(&self) -> PathBuf {
        self.cache.path.join(self.repo.folder_name())
    }

    /// Records that this revision points at `commit_hash` (`refs/<revision>`).
    pub fn create_ref(&self, commit_hash: &str) -> Result<(), std::io::Error> {
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
        if hubcache::Revision::new(self.repo.revision()).is_err() {
            return Err(invalid(&format!("invalid revision `{}`", self.repo.revision())));
        }
        let commit = commit_hash.trim();
        if !hubcache::repo::is_commit_hash(commit) {
            return Err(invalid(&format!("`{commit}` is not a 40-character commit hash")));
        }
        let ref_path = self.path().join("refs").join(self.repo.revision());
        if let Some(parent) = ref_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&ref_path)?;
        file.write_all(commit.as_bytes())
    }

    /// The blob of `etag` in this repo's `blobs/` folder (hf-hub 0.5).
    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.path().join("blobs").join(etag)
    }

    /// The snapshot folder of `commit_hash` (hf-hub 0.5).
    pub fn pointer_path(&self, commit_hash: &str) -> PathBuf {
        self.path().join("snapshots").join(commit_hash)
    }
}

/// A repo id, its type and a revision (default `main`).
#[derive(Clone, Debug)]
pub struct Repo {
    repo_id: String,
    repo_type: RepoType,
    revision: String,
}

impl Repo {
    /// A repo at `main`.
    pub fn new(repo_id: String, repo_type: RepoType) -> Self {
        Self::with_revision(repo_id, repo_type, "main".to_string())
    }

    /// A repo at a branch, tag or commit.
    pub fn with_revision(repo_id: String, repo_type: RepoType, revision: String) -> Self {
        Repo {
            repo_id,
            repo_type,
            revision,
        }
    }

    /// A model at `main`.
    pub fn model(repo_id: String) -> Self {
        Self::new(repo_id, RepoType::Model)
    }

    /// A dataset at `main`.
    pub fn dataset(repo_id: String) -> Self {
        Self::new(repo_id, RepoType::Dataset)
    }

    /// A space at `main`.
    pub fn space(repo_id: String) -> Self {
        Self::new(repo_id, RepoType::Space)
    }

    /// The cache folder name, e.g. `models--org--name`.
    pub fn folder_name(&self) -> String {
        hubcache::repo::folder_name(self.repo_type.plural(), &self.repo_id)
    }

    /// The revision.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The repo's URL path on the Hub: `id`, `datasets/id` or `spaces/id`.
    #[cfg(any(feature = "tokio", feature = "ureq"))]
    pub fn url(&self) -> String {
        match self.repo_type {
            RepoType::Model => self.repo_id.clone(),
            other => format!("{}/{}", other.plural(), self.repo_id),
        }
    }

    /// The revision as it goes into a URL (`/` encoded).
    #[cfg(any(feature = "tokio", feature = "ureq"))]
    pub fn url_revision(&self) -> String {
        self.revision.replace('/', "%2F")
    }

    /// The repo info route below `/api/`: `models/id/revision/rev`.
    #[cfg(any(feature = "tokio", feature = "ureq"))]
    pub fn api_url(&self) -> String {
        format!(
            "{}/{}/revision/{}",
            self.repo_type.plural(),
            self.repo_id,
            self.url_revision()
        )
    }

    /// The hubcache names of this repo, its revision and `file`, validated.
    fn hubcache(
        &self,
        file: &str,
    ) -> Result<(hubcache::Repo, hubcache::Revision, hubcache::RepoPath), hubcache::NameError> {
        let id = hubcache::RepoId::new(&self.repo_id)?;
        let revision = hubcache::Revision::new(&self.revision)?;
        let path = hubcache::RepoPath::new(file)?;
        Ok((hubcache::Repo::new(id, self.repo_type.hubcache()), revision, path))
    }

    /// The hubcache repo and revision (no file).
    #[cfg(any(feature = "tokio", feature = "ureq"))]
    fn hubcache_repo(&self) -> Result<(hubcache::Repo, hubcache::Revision), hubcache::NameError> {
        let id = hubcache::RepoId::new(&self.repo_id)?;
        let revision = hubcache::Revision::new(&self.revision)?;
        Ok((hubcache::Repo::new(id, self.repo_type.hubcache()), revision))
    }
}
