//! One call for everything a model needs: config, weights, tokenizer and processor files, all
//! pinned to one commit.
//!
//! Order: pin the revision (one request online, none offline or for a commit); the config (it
//! must exist; its commit pins the rest when pinning failed, as transformers chained
//! `_commit_hash`); then the weights and the optional files concurrently. Optional files are
//! probed with every error tolerated, one `cached_file` each: a 404 writes `.no_exist`, so the
//! next load (online or offline) answers them from the cache without a request.

use std::path::{Path, PathBuf};

use futures_util::stream::{self, StreamExt};

use super::error::ModelError;
use super::inspect::WeightsSummary;
use super::resolve::extract_commit_hash;
use super::weights::{Weights, WeightsFormat, WeightsOptions};
use super::{ModelLoader, ModelSource, Tolerate};
use crate::repo::{CommitHash, Revision};

/// How many optional files are probed at once.
const PROBE_CONCURRENCY: usize = 8;

/// What a resolved file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// `config.json`.
    Config,
    /// `generation_config.json`.
    GenerationConfig,
    /// `tokenizer.json` (fast tokenizer).
    Tokenizer,
    /// `tokenizer_config.json`.
    TokenizerConfig,
    /// `special_tokens_map.json`.
    SpecialTokensMap,
    /// `added_tokens.json`.
    AddedTokens,
    /// A vocabulary (`vocab.txt`, `vocab.json`, `tokenizer.model`, `spiece.model`).
    Vocab,
    /// `merges.txt`.
    Merges,
    /// `chat_template.jinja` or the legacy `chat_template.json`.
    ChatTemplate,
    /// `processor_config.json`.
    ProcessorConfig,
    /// `preprocessor_config.json` (image processor or feature extractor).
    PreprocessorConfig,
    /// `video_preprocessor_config.json`.
    VideoPreprocessorConfig,
    /// The index of a sharded checkpoint.
    WeightsIndex,
    /// A weight file (single file or shard).
    Weights,
}

impl FileKind {
    /// A short snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::GenerationConfig => "generation_config",
            FileKind::Tokenizer => "tokenizer",
            FileKind::TokenizerConfig => "tokenizer_config",
            FileKind::SpecialTokensMap => "special_tokens_map",
            FileKind::AddedTokens => "added_tokens",
            FileKind::Vocab => "vocab",
            FileKind::Merges => "merges",
            FileKind::ChatTemplate => "chat_template",
            FileKind::ProcessorConfig => "processor_config",
            FileKind::PreprocessorConfig => "preprocessor_config",
            FileKind::VideoPreprocessorConfig => "video_preprocessor_config",
            FileKind::WeightsIndex => "weights_index",
            FileKind::Weights => "weights",
        }
    }
}

/// The optional files a bundle probes, in output order.
pub const OPTIONAL_FILES: &[(FileKind, &str)] = &[
    (FileKind::GenerationConfig, "generation_config.json"),
    (FileKind::Tokenizer, "tokenizer.json"),
    (FileKind::TokenizerConfig, "tokenizer_config.json"),
    (FileKind::SpecialTokensMap, "special_tokens_map.json"),
    (FileKind::AddedTokens, "added_tokens.json"),
    (FileKind::Vocab, "vocab.txt"),
    (FileKind::Vocab, "vocab.json"),
    (FileKind::Vocab, "tokenizer.model"),
    (FileKind::Vocab, "spiece.model"),
    (FileKind::Merges, "merges.txt"),
    (FileKind::ChatTemplate, "chat_template.jinja"),
    (FileKind::ChatTemplate, "chat_template.json"),
    (FileKind::ProcessorConfig, "processor_config.json"),
    (FileKind::PreprocessorConfig, "preprocessor_config.json"),
    (FileKind::VideoPreprocessorConfig, "video_preprocessor_config.json"),
];

/// One resolved file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// What it is for.
    pub kind: FileKind,
    /// Its name in the repo or folder (subfolder included).
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
}

/// Options of [`ModelLoader::bundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleOptions {
    /// Which weights to look for.
    pub weights: WeightsOptions,
    /// Read the safetensors headers (tensors, dtypes, parameters).
    pub inspect: bool,
}

impl Default for BundleOptions {
    fn default() -> Self {
        BundleOptions {
            weights: WeightsOptions::default(),
            inspect: true,
        }
    }
}

/// Everything a model needs, resolved.
#[derive(Debug, Clone)]
pub struct ModelBundle {
    /// Where it came from.
    pub source: ModelSource,
    /// The revision asked for.
    pub revision: Revision,
    /// The commit every file was resolved at (`None` for a local folder or an unpinned load).
    pub commit: Option<CommitHash>,
    /// Config, optional files, weights index and weights, in that order.
    pub files: Vec<BundleFile>,
    /// Optional files that are not there (or could not be had).
    pub absent: Vec<String>,
    /// The weights.
    pub weights: Weights,
    /// Totals over the weight files.
    pub summary: WeightsSummary,
}

impl ModelBundle {
    /// The first file of a kind.
    pub fn file(&self, kind: FileKind) -> Option<&Path> {
        self.files.iter().find(|f| f.kind == kind).map(|f| f.path.as_path())
    }

    /// `config.json`.
    pub fn config(&self) -> Option<&Path> {
        self.file(FileKind::Config)
    }
}

impl ModelLoader {
    /// Resolves config, weights, tokenizer and processor files, pinned to one commit.
    pub async fn bundle(&mut self, opts: &BundleOptions) -> Result<ModelBundle, ModelError> {
        self.pin().await;
        let config = match self.cached_file("config.json", Tolerate::NOTHING).await? {
            Some(p) => p,
            None => return Err(self.missing_config()),
        };
        if self.commit().is_none() && matches!(self.source, ModelSource::Repo(_)) {
            if let Some(c) = extract_commit_hash(&config) {
                self.pin_to(c);
            }
        }
        let mut weight_opts = opts.weights.clone();
        if weight_opts.explicit.is_none() {
            weight_opts.explicit = explicit_weights(&config)?;
        }
        let this = &*self;
        let optional = async {
            // Futures built eagerly (not in a stream closure) keep the whole future `Send`.
            let probes: Vec<_> = OPTIONAL_FILES
                .iter()
                .map(|(_, name)| this.cached_file(name, Tolerate::ALL))
                .collect();
            let results: Vec<Result<Option<PathBuf>, ModelError>> =
                stream::iter(probes).buffered(PROBE_CONCURRENCY).collect().await;
            results
        };
        let (weights, optional) = tokio::join!(this.weights(&weight_opts), optional);
        let weights = weights?;

        let full = |name: &str| match self.options.subfolder.trim_matches('/') {
            "" => name.to_string(),
            sub => format!("{sub}/{name}"),
        };
        let mut files = vec![BundleFile {
            kind: FileKind::Config,
            name: full("config.json"),
            path: config,
        }];
        let mut absent = Vec::new();
        for ((kind, name), found) in OPTIONAL_FILES.iter().zip(optional) {
            match found? {
                Some(path) => files.push(BundleFile {
                    kind: *kind,
                    name: full(name),
                    path,
                }),
                None => absent.push(full(name)),
            }
        }
        if let (Some(index), Some(_)) = (&weights.index, &weights.shard_index) {
            files.push(BundleFile {
                kind: FileKind::WeightsIndex,
                name: full(&weights.name),
                path: index.clone(),
            });
        }
        let weight_names: Vec<String> = match &weights.shard_index {
            Some(idx) => idx.shards.iter().map(|s| full(s.as_str())).collect(),
            None => vec![full(&weights.name)],
        };
        for (name, path) in weight_names.into_iter().zip(&weights.files) {
            files.push(BundleFile {
                kind: FileKind::Weights,
                name,
                path: path.clone(),
            });
        }
        let summary = if opts.inspect && weights.format == WeightsFormat::Safetensors {
            WeightsSummary::inspect(&weights.files)?
        } else {
            WeightsSummary::sizes(&weights.files)?
        };
        Ok(ModelBundle {
            source: self.source.clone(),
            revision: self.options.revision.clone(),
            commit: self.commit().cloned(),
            files,
            absent,
            weights,
            summary,
        })
    }

    fn missing_config(&self) -> ModelError {
        let name = match self.options.subfolder.trim_matches('/') {
            "" => "config.json".to_string(),
            sub => format!("{sub}/config.json"),
        };
        match &self.source {
            ModelSource::Repo(repo) => self.missing_files(repo, vec![name]),
            ModelSource::Dir(dir) => ModelError::MissingFiles {
                id: dir.display().to_string(),
                files: vec![name],
                tree_url: None,
            },
        }
    }
}

/// The config's `transformers_weights`, when it names the weight file explicitly.
fn explicit_weights(config: &Path) -> Result<Option<String>, ModelError> {
    let bytes = std::fs::read(config).map_err(|e| ModelError::io("read", config, e))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| ModelError::BadConfig {
        path: config.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(value
        .get("transformers_weights")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string))
}
