//! Validated names: repo ids, repo types, revisions and file paths in a repo.
//!
//! Every value here is checked on construction, so the rest of the library can join them onto
//! cache paths and URLs without re-checking. The same checks apply to names that come from a
//! server (tree listings, `X-Repo-Commit`), which are just as untrusted as user input.

pub mod lfs;

use std::fmt;
use std::str::FromStr;

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repo id is not `name` or `namespace/name` with allowed characters.
    #[error("invalid repo id `{value}`: {reason}")]
    RepoId {
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The repo type is not model, dataset or space.
    #[error("invalid repo type `{0}`: expected model, dataset or space")]
    RepoType(String),
    /// The revision cannot be used as a ref name.
    #[error("invalid revision `{value}`: {reason}")]
    Revision {
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file path would escape its folder or is malformed.
    #[error("invalid filename `{value}`: {reason}")]
    FilePath {
        /// The rejected value (control characters escaped).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A commit hash is not 40 lower-case hex characters.
    #[error("invalid commit hash `{0}`: expected 40 lower-case hex characters")]
    Commit(String),
}

/// The kind of repository on the Hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum RepoType {
    /// A model repo (the default).
    #[default]
    Model,
    /// A dataset repo.
    Dataset,
    /// A Space.
    Space,
}

impl RepoType {
    /// The singular name: `model`, `dataset`, `space`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
        }
    }

    /// The plural used in cache folder names and API paths: `models`, `datasets`, `spaces`.
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }

    /// The prefix of resolve URLs: empty for models, `datasets/`, `spaces/`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }
}

impl fmt::Display for RepoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RepoType {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        match s {
            "model" | "models" => Ok(RepoType::Model),
            "dataset" | "datasets" => Ok(RepoType::Dataset),
            "space" | "spaces" => Ok(RepoType::Space),
            other => Err(NameError::RepoType(other.to_string())),
        }
    }
}

/// A repo id, `name` or `namespace/name`, validated as huggingface_hub does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoId(String);

impl RepoId {
    /// Validates and wraps a repo id.
    pub fn new(value: &str) -> Result<Self, NameError> {
        let err = |reason| NameError::RepoId {
            value: value.to_string(),
            reason,
        };
        let parts: Vec<&str> = value.split('/').collect();
        if parts.len() > 2 {
            return Err(err("at most one `/` is allowed (namespace/name)"));
        }
        for part in &parts {
            if part.is_empty() || part.len() > 96 {
                return Err(err("each part must be 1 to 96 characters"));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(err("only ASCII letters, digits, `-`, `_` and `.` are allowed"));
            }
            let first = part.as_bytes()[0];
            let last = part.as_bytes()[part.len() - 1];
            if matches!(first, b'-' | b'.') || matches!(last, b'-' | b'.') {
                return Err(err("parts cannot start or end with `-` or `.`"));
            }
        }
        if value.contains("--") || value.contains("..") {
            return Err(err("`--` and `..` are forbidden"));
        }
        if value.ends_with(".git") {
            return Err(err("cannot end with `.git`"));
        }
        Ok(RepoId(value.to_string()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        RepoId::new(s)
    }
}

/// A repo id together with its type: what a cache folder is named after.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repo {
    /// The repo id.
    pub id: RepoId,
    /// The repo type.
    pub repo_type: RepoType,
}

impl Repo {
    /// A repo of the given type.
    pub fn new(id: RepoId, repo_type: RepoType) -> Self {
        Repo { id, repo_type }
    }

    /// A model repo; panics never, validates the id.
    pub fn model(id: &str) -> Result<Self, NameError> {
        Ok(Repo::new(RepoId::new(id)?, RepoType::Model))
    }

    /// The cache folder name: `models--org--name`.
    pub fn folder_name(&self) -> String {
        folder_name(self.repo_type.plural(), self.id.as_str())
    }
}

/// The cache folder name of a repo from its type's plural and its id: `models--org--name`
/// (the one spelling; `cache::layout::parse_folder_name` reads it back).
pub fn folder_name(type_plural: &str, repo_id: &str) -> String {
    format!("{type_plural}--{}", repo_id.replace('/', "--"))
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.repo_type {
            RepoType::Model => write!(f, "{}", self.id),
            other => write!(f, "{} {}", other, self.id),
        }
    }
}

/// A full 40-hex lower-case commit hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitHash(String);

impl CommitHash {
    /// Validates a commit hash (exactly 40 lower-case hex characters).
    pub fn new(value: &str) -> Result<Self, NameError> {
        if is_commit_hash(value) {
            Ok(CommitHash(value.to_string()))
        } else {
            Err(NameError::Commit(value.to_string()))
        }
    }

    /// The commit hash spelled by a 20-byte SHA-1 digest (always valid).
    pub fn from_digest(sha1: &[u8; 20]) -> Self {
        CommitHash(crate::digest::hex(sha1))
    }

    /// The hash as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommitHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for exactly 40 lower-case hex characters (what Python treats as a commit hash).
pub fn is_commit_hash(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A revision: a commit hash, or a ref name (branch, tag, `refs/pr/N`, short hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Revision {
    /// A full commit hash: resolvable from the cache without a ref.
    Commit(CommitHash),
    /// Any other name; resolved through `refs/<name>` or the server.
    Ref(String),
}

impl Revision {
    /// The default branch, `main`.
    pub fn main() -> Self {
        Revision::Ref("main".to_string())
    }

    /// Validates a revision. Ref names become relative paths under `refs/`, so they must not
    /// escape it.
    pub fn new(value: &str) -> Result<Self, NameError> {
        if is_commit_hash(value) {
            return Ok(Revision::Commit(CommitHash(value.to_string())));
        }
        let err = |reason| NameError::Revision {
            value: escape(value),
            reason,
        };
        if value.is_empty() {
            return Err(err("empty"));
        }
        if value.len() > 255 {
            return Err(err("longer than 255 characters"));
        }
        if value.bytes().any(|b| b.is_ascii_control() || b == b'\\') {
            return Err(err("control characters and backslashes are not allowed"));
        }
        if value.starts_with('/') || value.ends_with('/') {
            return Err(err("cannot start or end with `/`"));
        }
        for seg in value.split('/') {
            if seg.is_empty() {
                return Err(err("empty path segment (`//`)"));
            }
            if seg == "." || seg == ".." {
                return Err(err("`.` and `..` segments are not allowed"));
            }
            if seg.ends_with(".lock") || seg.starts_with('.') {
                return Err(err("segments cannot start with `.` or end with `.lock`"));
            }
        }
        Ok(Revision::Ref(value.to_string()))
    }

    /// The revision as text, as it appears in URLs and `refs/`.
    pub fn as_str(&self) -> &str {
        match self {
            Revision::Commit(c) => c.as_str(),
            Revision::Ref(r) => r,
        }
    }

    /// The commit hash when the revision is one.
    pub fn commit(&self) -> Option<&CommitHash> {
        match self {
            Revision::Commit(c) => Some(c),
            Revision::Ref(_) => None,
        }
    }
}

impl Default for Revision {
    fn default() -> Self {
        Revision::main()
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Revision {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Revision::new(s)
    }
}

/// A relative file path inside a repo, with `/` separators, that cannot escape its folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath(String);

impl RepoPath {
    /// Validates a repo file path (rejects traversal, absolute paths, NUL, backslashes, empty
    /// segments and drive letters).
    pub fn new(value: &str) -> Result<Self, NameError> {
        let err = |reason| NameError::FilePath {
            value: escape(value),
            reason,
        };
        if value.is_empty() {
            return Err(err("empty path"));
        }
        if value.len() > 4096 {
            return Err(err("longer than 4096 bytes"));
        }
        if value.bytes().any(|b| b == 0 || b.is_ascii_control()) {
            return Err(err("control characters (including NUL) are not allowed"));
        }
        if value.contains('\\') {
            return Err(err("backslashes are not allowed"));
        }
        if value.starts_with('/') {
            return Err(err("absolute paths are not allowed"));
        }
        for seg in value.split('/') {
            if seg.is_empty() {
                return Err(err("empty path segment (`//` or trailing `/`)"));
            }
            if seg == "." || seg == ".." {
                return Err(err("`.` and `..` segments are not allowed"));
            }
            if seg.len() > 255 {
                return Err(err("a segment is longer than 255 bytes"));
            }
            let b = seg.as_bytes();
            if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
                return Err(err("drive-qualified segments are not allowed"));
            }
        }
        Ok(RepoPath(value.to_string()))
    }

    /// Joins a subfolder (may be empty) and a file name, then validates the result.
    pub fn with_subfolder(subfolder: &str, file: &str) -> Result<Self, NameError> {
        let sub = subfolder.trim_matches('/');
        if sub.is_empty() {
            RepoPath::new(file)
        } else {
            RepoPath::new(&format!("{sub}/{file}"))
        }
    }

    /// The path with `/` separators.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Number of folders above the file (0 for a top-level file).
    pub fn depth(&self) -> usize {
        self.0.matches('/').count()
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoPath {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        RepoPath::new(s)
    }
}

/// Whether an etag is safe as a blob file name: 1–128 of `[A-Za-z0-9_-]` (any case kept as is).
/// Safe is not verifiable: [`crate::digest::DigestKind::for_etag`] tells which names hash.
pub fn is_valid_etag(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn escape(value: &str) -> String {
    value.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        for ok in ["gpt2", "org/name", "a.b/c_d-e", "Org123/Model.v2"] {
            assert!(RepoId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "a/b/c",
            "../x",
            "a/..",
            "a--b/c",
            "a/b.git",
            "a b/c",
            "a/-b",
            "ünï/x",
            "a/b\0",
            ".hidden/x",
            "a\\b",
        ] {
            assert!(RepoId::new(bad).is_err(), "{bad:?}");
        }
        assert!(RepoId::new(&"a".repeat(97)).is_err());
    }

    #[test]
    fn folder_names() {
        let r = Repo::new(RepoId::new("julien-c/EsperBERTo-small").unwrap(), RepoType::Model);
        assert_eq!(r.folder_name(), "models--julien-c--EsperBERTo-small");
        let r = Repo::new(RepoId::new("gpt2").unwrap(), RepoType::Model);
        assert_eq!(r.folder_name(), "models--gpt2");
        let r = Repo::new(RepoId::new("google/fleurs").unwrap(), RepoType::Dataset);
        assert_eq!(r.folder_name(), "datasets--google--fleurs");
        let r = Repo::new(RepoId::new("org/app").unwrap(), RepoType::Space);
        assert_eq!(r.folder_name(), "spaces--org--app");
    }

    #[test]
    fn revisions() {
        let c = "a".repeat(40);
        assert!(matches!(Revision::new(&c).unwrap(), Revision::Commit(_)));
        assert!(matches!(Revision::new(&"A".repeat(40)).unwrap(), Revision::Ref(_)));
        for ok in ["main", "v1.0", "refs/pr/1", "9b8c223", "feature/x"] {
            assert!(matches!(Revision::new(ok).unwrap(), Revision::Ref(_)), "{ok}");
        }
        for bad in [
            "", "..", "../main", "a/../b", "/abs", "a//b", "a\\b", "a\0b", "x/", ".git", "a/b.lock",
        ] {
            assert!(Revision::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repo_paths() {
        for ok in [
            "config.json",
            "1_Pooling/config.json",
            "a b/c?.txt",
            ".gitattributes",
            "x..y",
        ] {
            assert!(RepoPath::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "folder/..\\..\\..\\file",
            "a\0b",
            "C:/x",
            "c:x",
            "a\nb",
        ] {
            assert!(RepoPath::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(RepoPath::with_subfolder("", "a").unwrap().as_str(), "a");
        assert_eq!(RepoPath::with_subfolder("sub/", "a").unwrap().as_str(), "sub/a");
        assert!(RepoPath::with_subfolder("..", "a").is_err());
        assert_eq!(RepoPath::new("a/b/c").unwrap().depth(), 2);
    }

    #[test]
    fn etags() {
        assert!(is_valid_etag(&"a".repeat(64)));
        assert!(!is_valid_etag("../x"));
        assert!(!is_valid_etag(""));
        assert!(!is_valid_etag("a/b"));
    }
}
