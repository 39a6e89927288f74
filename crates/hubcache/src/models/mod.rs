//! Model resolution as transformers does it (`cached_file(s)`, `has_file`, the weight choice of
//! `from_pretrained`), offline-first, on top of the [`Hub`] pipelines.
//!
//! Resolution order of [`ModelLoader::cached_files`] (transformers 5.24 `utils/hub.py`):
//!
//! 1. offline (the hub's setting or [`LoadOptions::local_only`]) → the cache only;
//! 2. a local directory is used as is (a missing file is an error, except `config.json`);
//! 3. commit-pinned lookup: when every file is known at the pinned commit (a snapshot entry or a
//!    `.no_exist` marker) the answer comes from the cache with zero requests;
//! 4. download: one file through the file pipeline (a 404 with a commit writes `.no_exist`), several
//!    as one snapshot whose patterns are the exact names;
//! 5. errors in transformers' order: repo not found, revision not found, permission → raised;
//!    then recovery when every file is cached; then gated / connection / other HTTP errors,
//!    each tolerated or not per [`Tolerate`];
//! 6. final lookup at the pinned commit (or the revision); missing files raise unless tolerated.
//!
//! Pinning ([`ModelLoader::pin`], transformers' `resolve_revision`): a branch or tag is resolved
//! once (one revision API call that also writes `refs/<rev>`; offline, `refs/<rev>` is read) and
//! every later call uses the commit. A warm load therefore makes no request for any file it
//! already knows, present or absent, and [`ModelLoader::bundle`] pins everything to one commit.
//!
//! Deviation: transformers' final lookup forgets the repo type (non-model repos are looked up
//! under `models--…`); here the repo type is always used.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hubcache::models::{BundleOptions, LoadOptions, ModelLoader, ModelSource};
//! use hubcache::{HubBuilder, RepoType, Settings};
//!
//! let hub = HubBuilder::from_settings(&Settings::from_env()).build()?;
//! let source = ModelSource::parse("sentence-transformers/all-MiniLM-L6-v2", RepoType::Model)?;
//! let mut loader = ModelLoader::new(hub, source, LoadOptions::default());
//! let bundle = loader.bundle(&BundleOptions::default()).await?;
//! println!("config {:?}, weights {:?}", bundle.config(), bundle.weights.files);
//! # Ok(())
//! # }
//! ```

pub mod blocking;
mod bundle;
mod error;
mod inspect;
mod resolve;
mod weights;

use std::path::{Path, PathBuf};

use crate::download::Hub;
use crate::repo::{CommitHash, Repo, RepoId, RepoType, Revision};

pub use bundle::{BundleFile, BundleOptions, FileKind, ModelBundle, OPTIONAL_FILES};
pub use error::ModelError;
pub use inspect::{inspect_safetensors, parse_safetensors_header, SafetensorsHeader, WeightsSummary};
pub use resolve::extract_commit_hash;
pub use weights::{
    add_variant, exact_pattern, explicit_candidate, weight_candidates, Candidate, ShardIndex, Weights, WeightsFormat,
    WeightsOptions, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME,
};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local folder, used as is (no cache, no network).
    Dir(PathBuf),
    /// A repo on the Hub, resolved through the cache.
    Repo(Repo),
}

impl ModelSource {
    /// As transformers decides: an existing directory wins, otherwise the text must be a repo id.
    pub fn parse(value: &str, repo_type: RepoType) -> Result<ModelSource, ModelError> {
        let path = Path::new(value);
        if path.is_dir() {
            return Ok(ModelSource::Dir(path.to_path_buf()));
        }
        let id = RepoId::new(value).map_err(|source| ModelError::InvalidSource {
            value: value.to_string(),
            source,
        })?;
        Ok(ModelSource::Repo(Repo::new(id, repo_type)))
    }

    /// The repo id or the folder, as messages show it.
    pub fn display_id(&self) -> String {
        match self {
            ModelSource::Dir(d) => d.display().to_string(),
            ModelSource::Repo(r) => r.id.to_string(),
        }
    }
}

/// What transformers' `cached_files` returns `None` for instead of raising.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tolerate {
    /// Files that do not exist (`_raise_exceptions_for_missing_entries=False`).
    pub missing_entries: bool,
    /// The Hub unreachable or offline, and the cache without the files
    /// (`_raise_exceptions_for_connection_errors=False`).
    pub connection_errors: bool,
    /// A gated repo without access (`_raise_exceptions_for_gated_repo=False`).
    pub gated: bool,
}

impl Tolerate {
    /// Raise for everything (transformers' defaults).
    pub const NOTHING: Tolerate = Tolerate {
        missing_entries: false,
        connection_errors: false,
        gated: false,
    };
    /// Missing files become `None`; everything else raises.
    pub const MISSING: Tolerate = Tolerate {
        missing_entries: true,
        connection_errors: false,
        gated: false,
    };
    /// Optional files: missing, unreachable or gated all become `None`.
    pub const ALL: Tolerate = Tolerate {
        missing_entries: true,
        connection_errors: true,
        gated: true,
    };
}

/// Options of one model load (transformers' `revision`, `subfolder`, `local_files_only`,
/// `force_download`).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Requested revision (default `main`).
    pub revision: Revision,
    /// Folder inside the repo or directory (empty = top level).
    pub subfolder: String,
    /// Never touch the network for this load.
    pub local_only: bool,
    /// Download again even if cached.
    pub force_download: bool,
}

/// Resolves the files of one model (a local folder or a repo) like transformers' loaders.
#[derive(Clone)]
pub struct ModelLoader {
    hub: Hub,
    source: ModelSource,
    options: LoadOptions,
    pinned: Option<CommitHash>,
}

impl std::fmt::Debug for ModelLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelLoader")
            .field("source", &self.source)
            .field("options", &self.options)
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

impl ModelLoader {
    /// A loader for `source` with `options`, downloading through `hub`.
    pub fn new(hub: Hub, source: ModelSource, options: LoadOptions) -> ModelLoader {
        ModelLoader {
            hub,
            source,
            options,
            pinned: None,
        }
    }

    /// The model's source.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The load options.
    pub fn options(&self) -> &LoadOptions {
        &self.options
    }

    /// The hub used for downloads and cache lookups.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The commit every call is pinned to: the pinned one, or the revision when it is a commit.
    pub fn commit(&self) -> Option<&CommitHash> {
        self.pinned.as_ref().or_else(|| self.options.revision.commit())
    }

    /// Pins later calls to `commit` (as transformers chains a resolved commit).
    pub fn pin_to(&mut self, commit: CommitHash) {
        self.pinned = Some(commit);
    }

    /// True when no request may be made (offline setting or local-only load).
    pub fn is_offline(&self) -> bool {
        self.options.local_only || self.hub.is_offline()
    }

    /// The revision downloads and lookups use: the pinned commit, else the requested revision.
    fn effective_revision(&self) -> Revision {
        match self.commit() {
            Some(c) => Revision::Commit(c.clone()),
            None => self.options.revision.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send() {
        // Inference servers spawn these on a multi-threaded runtime.
        let hub = crate::HubBuilder::new("http://127.0.0.1:9", "/nonexistent")
            .build()
            .unwrap();
        let mut loader = ModelLoader::new(hub, ModelSource::Dir("/nonexistent".into()), LoadOptions::default());
        assert_send(&loader.cached_files(&["a"], Tolerate::NOTHING));
        assert_send(&loader.has_file("a"));
        assert_send(&loader.weights(&WeightsOptions::default()));
        assert_send(&loader.bundle(&BundleOptions::default()));
        assert_send(&loader.pin());
    }

    #[test]
    fn sources() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().to_str().unwrap();
        assert_eq!(
            ModelSource::parse(s, RepoType::Model).unwrap(),
            ModelSource::Dir(dir.path().into())
        );
        let repo = ModelSource::parse("org/name", RepoType::Dataset).unwrap();
        assert_eq!(repo.display_id(), "org/name");
        assert!(matches!(repo, ModelSource::Repo(r) if r.repo_type == RepoType::Dataset));
        for bad in ["../x", "a/b/c", ""] {
            assert!(matches!(
                ModelSource::parse(bad, RepoType::Model),
                Err(ModelError::InvalidSource { .. })
            ));
        }
    }
}
