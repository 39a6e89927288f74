//! Errors of model resolution, with the meaning of transformers' messages and a hint each.

use std::io;
use std::path::PathBuf;

use crate::error::Error;
use crate::repo::NameError;

/// Why a model (or one of its files) could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The argument is neither an existing folder nor a valid repo id.
    #[error("`{value}` is not a local folder and is not a valid repo id")]
    InvalidSource {
        /// What was given.
        value: String,
        /// Why it is not a repo id.
        #[source]
        source: NameError,
    },
    /// A file name or subfolder was rejected (traversal, absolute path, …).
    #[error(transparent)]
    Name(#[from] NameError),
    /// Files that do not exist in the folder or at the revision ("does not appear to have a file named").
    #[error("{id} does not appear to have {}{}", files_phrase(.files), tree_phrase(.tree_url))]
    MissingFiles {
        /// Repo id or folder.
        id: String,
        /// Paths in the repo (subfolder included).
        files: Vec<String>,
        /// Where the repo's files at that revision can be browsed (repos only).
        tree_url: Option<String>,
    },
    /// The repo does not exist or is private ("is not a valid model identifier").
    #[error("{id} is not a local folder and is not a valid model identifier listed on '{endpoint}/models'")]
    NotAModel {
        /// Repo id.
        id: String,
        /// Hub endpoint.
        endpoint: String,
        /// The Hub's answer.
        #[source]
        source: Error,
    },
    /// The revision does not exist ("is not a valid git identifier").
    #[error(
        "{revision} is not a valid git identifier (branch name, tag name or commit id) that exists for this model \
         name; check the model page at '{endpoint}/{id}' for available revisions"
    )]
    BadRevision {
        /// Repo id.
        id: String,
        /// The revision asked for.
        revision: String,
        /// Hub endpoint.
        endpoint: String,
        /// The Hub's answer.
        #[source]
        source: Error,
    },
    /// The repo is gated and this token has no access.
    #[error("you are trying to access a gated repo: make sure to have access to it at {endpoint}/{id}")]
    Gated {
        /// Repo id.
        id: String,
        /// Hub endpoint.
        endpoint: String,
        /// The Hub's answer.
        #[source]
        source: Error,
    },
    /// Offline or unreachable, and the cache does not have the files.
    #[error(
        "we couldn't connect to '{endpoint}' to load {}, and couldn't find {} in the cached files",
        list(.files), if .files.len() == 1 { "it" } else { "them" }
    )]
    CannotConnect {
        /// Hub endpoint.
        endpoint: String,
        /// The files that are not in the cache.
        files: Vec<String>,
        /// Offline, or the network failure.
        #[source]
        source: Error,
    },
    /// Another HTTP error ("there was a specific connection error").
    #[error("there was a specific connection error when trying to load {id}")]
    Http {
        /// Repo id.
        id: String,
        /// The Hub's answer.
        #[source]
        source: Error,
    },
    /// The cache folder could not be written.
    #[error("permission denied at {path} when downloading {id}")]
    Permission {
        /// Repo id.
        id: String,
        /// The path that could not be written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Error,
    },
    /// Any other download failure, unchanged (corrupt transfer, lock timeout, bad server answer).
    #[error(transparent)]
    Download(#[from] Error),
    /// No weights at all in the repo.
    #[error("{id} does not appear to have a file named {}", .names.join(" or "))]
    NoWeights {
        /// Repo id.
        id: String,
        /// The weight names looked for.
        names: Vec<String>,
    },
    /// No weights with this variant, but weights without it exist.
    #[error("{id} does not appear to have a file named {wanted} but there is a file without the variant {variant}")]
    VariantMissing {
        /// Repo id.
        id: String,
        /// The variant file asked for.
        wanted: String,
        /// The variant.
        variant: String,
    },
    /// Safetensors was required but the repo has none.
    #[error(
        "{id} does not appear to have a file named {single} or {index} and thus cannot be loaded with safetensors"
    )]
    NoSafetensors {
        /// Repo id.
        id: String,
        /// Single-file name.
        single: String,
        /// Index name.
        index: String,
    },
    /// No weights in a local folder.
    #[error("no file named {} found in directory {}", .names.join(", or "), .dir.display())]
    NoWeightsInDir {
        /// The folder (subfolder included).
        dir: PathBuf,
        /// The weight names looked for.
        names: Vec<String>,
    },
    /// `transformers_weights` in the config is not an allowed weight file.
    #[error("the weights file named in the config (`transformers_weights`) is invalid: `{value}` {reason}")]
    BadExplicitWeights {
        /// The configured name.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The config file is not valid JSON.
    #[error("the config file at {path} is not a valid JSON file: {detail}")]
    BadConfig {
        /// The config file.
        path: PathBuf,
        /// The parse error.
        detail: String,
    },
    /// A sharded checkpoint's index is unusable.
    #[error("invalid checkpoint index {path}: {detail}")]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A safetensors header is corrupt or does not match the file.
    #[error("corrupt safetensors file {path}: {detail}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A resolved file could not be read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn files_phrase(files: &[String]) -> String {
    match files {
        [one] => format!("a file named {one}"),
        many => format!("files named ({})", many.join(", ")),
    }
}

fn tree_phrase(url: &Option<String>) -> String {
    match url {
        Some(u) => format!("; check '{u}' for available files"),
        None => String::new(),
    }
}

fn list(files: &[String]) -> String {
    let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
    let more = files.len().saturating_sub(5);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl ModelError {
    /// An I/O error with its action and path.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> ModelError {
        ModelError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The library error underneath, if any.
    pub fn download_error(&self) -> Option<&Error> {
        match self {
            ModelError::NotAModel { source, .. }
            | ModelError::BadRevision { source, .. }
            | ModelError::Gated { source, .. }
            | ModelError::CannotConnect { source, .. }
            | ModelError::Http { source, .. }
            | ModelError::Permission { source, .. }
            | ModelError::Download(source) => Some(source),
            _ => None,
        }
    }

    /// The repo, revision or file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ModelError::MissingFiles { .. }
                | ModelError::NotAModel { .. }
                | ModelError::BadRevision { .. }
                | ModelError::NoWeights { .. }
                | ModelError::VariantMissing { .. }
                | ModelError::NoSafetensors { .. }
                | ModelError::NoWeightsInDir { .. }
        )
    }

    /// The repo is gated and access was not granted.
    pub fn is_gated(&self) -> bool {
        matches!(self, ModelError::Gated { .. })
    }

    /// The files are not cached and the network is off or unreachable.
    pub fn is_connection(&self) -> bool {
        matches!(self, ModelError::CannotConnect { .. })
    }

    /// What the user can do about it, one line each.
    pub fn hints(&self) -> Vec<String> {
        let mut hints: Vec<String> = Vec::new();
        match self {
            ModelError::InvalidSource { .. } => {
                hints.push("pass an existing model folder, or a repo id such as `org/name`".into())
            }
            ModelError::Name(_) => hints.push("file names and --subfolder must be relative paths without `..`".into()),
            ModelError::MissingFiles { tree_url, .. } => {
                hints.push("check the file name, --subfolder and --revision".into());
                if let Some(u) = tree_url {
                    hints.push(format!("the files of this revision are listed at {u}"));
                }
            }
            ModelError::NotAModel { .. } => {
                hints.push("check the repo id and --repo-type (model, dataset, space)".into());
                hints.push("for a private repo, pass a token with access (HF_TOKEN or --token)".into());
            }
            ModelError::BadRevision { .. } => {
                hints.push("use a branch, a tag, refs/pr/N or a commit that exists in the repo".into())
            }
            ModelError::Gated { endpoint, id, .. } => hints.push(format!(
                "request access at {endpoint}/{id}, then pass a token with access (HF_TOKEN or --token)"
            )),
            ModelError::CannotConnect { source, .. } => {
                hints.extend(source.hints());
                hints.push(
                    "offline mode: https://huggingface.co/docs/transformers/installation#offline-mode".into(),
                );
            }
            ModelError::Permission { .. } => {
                hints.push("check the cache folder's permissions, or choose another with --cache-dir".into());
                hints.push(
                    "another user may be downloading the same model (wait), or a canceled download left a lock file"
                        .into(),
                );
            }
            ModelError::Http { source, .. } | ModelError::Download(source) => hints.extend(source.hints()),
            ModelError::NoWeights { .. } => {
                hints.push("the repo has no safetensors or PyTorch weights here: check --revision and --subfolder".into())
            }
            ModelError::VariantMissing { variant, .. } => {
                hints.push(format!("drop --variant {variant} to load the weights without the variant"))
            }
            ModelError::NoSafetensors { .. } => {
                hints.push("allow PyTorch `.bin` weights, or pick a revision that has safetensors".into())
            }
            ModelError::NoWeightsInDir { .. } => {
                hints.push("check the folder, --subfolder and --variant: it has no weight file".into())
            }
            ModelError::BadExplicitWeights { .. } => hints.push(
                "`transformers_weights` must name a .safetensors or .safetensors.index.json file inside the model".into(),
            ),
            ModelError::BadConfig { .. } | ModelError::BadIndex { .. } | ModelError::Safetensors { .. } => {
                hints.push(
                    "the file is corrupt or truncated: download it again (`hubcache download <repo> <file> --force-download`)"
                        .into(),
                )
            }
            ModelError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                hints.push("check the permissions of the model folder or cache".into())
            }
            ModelError::Io { .. } => {}
        }
        hints
    }
}
