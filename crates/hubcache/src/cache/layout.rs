//! Pure path math for the huggingface_hub cache layout; nothing here touches the disk.
//!
//! ```text
//! <cache>/
//! ├── CACHEDIR.TAG
//! ├── .locks/<repo folder>/<etag>.lock
//! ├── .locks/hubcache-gc.lock                shared: downloads; exclusive: rm/prune
//! └── <repo folder>/                         models--org--name, datasets--…, spaces--…
//!     ├── blobs/<etag>                       content, named by the normalised etag
//!     ├── blobs/<etag>.<8 hex>.incomplete    a download in progress (or cut off: resumed next time)
//!     ├── refs/<revision>                    40-hex commit, no newline
//!     ├── snapshots/<commit>/<path>          relative symlink → ../../blobs/<etag>
//!     ├── .no_exist/<commit>/<path>          empty marker: the file is absent at that commit
//!     └── trees/<commit>.json                file listing of that commit
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::repo::{CommitHash, Repo, RepoPath};

/// Exact content of `CACHEDIR.TAG` as huggingface_hub writes it.
pub const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// File name of the clean-up lock under `<cache>/.locks/`.
pub const GC_LOCK_NAME: &str = "hubcache-gc.lock";

/// Paths of one cache root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLayout {
    root: PathBuf,
}

/// Paths inside one repo folder of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLayout {
    root: PathBuf,
    locks: PathBuf,
}

impl CacheLayout {
    /// Layout of the cache rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CacheLayout { root: root.into() }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<cache>/CACHEDIR.TAG`.
    pub fn cachedir_tag(&self) -> PathBuf {
        self.root.join("CACHEDIR.TAG")
    }

    /// `<cache>/.locks/hubcache-gc.lock`: downloads hold it shared, `cache rm`/`prune` exclusive.
    pub fn gc_lock(&self) -> PathBuf {
        self.root.join(".locks").join(GC_LOCK_NAME)
    }

    /// `<cache>/.locks/<repo folder>/<etag>.lock` for a repo folder given by name.
    pub fn etag_lock(&self, repo_folder: &str, etag: &str) -> PathBuf {
        self.root.join(".locks").join(repo_folder).join(format!("{etag}.lock"))
    }

    /// Layout of one repo's folder.
    pub fn repo(&self, repo: &Repo) -> RepoLayout {
        let folder = repo.folder_name();
        RepoLayout {
            root: self.root.join(&folder),
            locks: self.root.join(".locks").join(folder),
        }
    }
}

impl RepoLayout {
    /// The layout of an existing repo folder found on disk (management code walks folders it
    /// did not name; its locks are `<cache>/.locks/<folder name>`).
    pub fn from_folder(folder: &Path) -> RepoLayout {
        let name = folder.file_name().unwrap_or_default();
        let cache = folder.parent().unwrap_or(Path::new("."));
        RepoLayout {
            root: folder.to_path_buf(),
            locks: cache.join(".locks").join(name),
        }
    }

    /// The repo folder (`<cache>/models--org--name`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `refs/`.
    pub fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    /// `snapshots/`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `blobs/<etag>`.
    pub fn blob(&self, etag: &str) -> PathBuf {
        self.blobs_dir().join(etag)
    }

    /// `blobs/<etag>.<suffix>.incomplete` where suffix is 8 lower-case hex.
    pub fn temp_blob(&self, etag: &str, suffix: &str) -> PathBuf {
        self.blobs_dir().join(format!("{etag}.{suffix}.incomplete"))
    }

    /// `blobs/<etag>.<suffix>.parts.incomplete`: a ranged download's temp file, written at
    /// offsets (it has holes, so no writer may take it for a contiguous prefix; the strict
    /// `<etag>.<8 hex>.incomplete` pattern of [`is_temp_blob_of`] and Python never match it).
    pub fn parts_blob(&self, etag: &str, suffix: &str) -> PathBuf {
        self.blobs_dir().join(format!("{etag}.{suffix}{PARTS_DATA}"))
    }

    /// `blobs/<etag>.<suffix>.ranges.incomplete`: the record of the ranges a parts file holds.
    pub fn parts_record(&self, etag: &str, suffix: &str) -> PathBuf {
        self.blobs_dir().join(format!("{etag}.{suffix}{PARTS_RECORD}"))
    }

    /// `refs/<revision>` (nested for `refs/pr/1`).
    pub fn ref_file(&self, revision: &str) -> PathBuf {
        self.root.join("refs").join(revision)
    }

    /// `snapshots/<commit>/`.
    pub fn snapshot_dir(&self, commit: &CommitHash) -> PathBuf {
        self.root.join("snapshots").join(commit.as_str())
    }

    /// `snapshots/<commit>/<path>` with OS separators.
    pub fn snapshot_file(&self, commit: &CommitHash, path: &RepoPath) -> PathBuf {
        join_repo_path(&self.snapshot_dir(commit), path)
    }

    /// `.no_exist/<commit>/<path>`.
    pub fn no_exist_marker(&self, commit: &CommitHash, path: &RepoPath) -> PathBuf {
        join_repo_path(&self.root.join(".no_exist").join(commit.as_str()), path)
    }

    /// `trees/<commit>.json`.
    pub fn tree_file(&self, commit: &CommitHash) -> PathBuf {
        self.root.join("trees").join(format!("{}.json", commit.as_str()))
    }

    /// `<cache>/.locks/<repo folder>/<etag>.lock`.
    pub fn lock_file(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.lock"))
    }
}

/// Whether `name` (a file name in `blobs/`) is a temp file of the blob `etag`: ours and
/// Python's `<etag>.<8 hex>.incomplete`, or the legacy (< v1.18) `<etag>.incomplete`.
pub fn is_temp_blob_of(name: &str, etag: &str) -> bool {
    let Some(rest) = name.strip_prefix(etag).and_then(|r| r.strip_suffix(".incomplete")) else {
        return false;
    };
    match rest.strip_prefix('.') {
        None => rest.is_empty(),
        Some(suffix) => suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
    }
}

/// Name ending of a parts file (see [`RepoLayout::parts_blob`]).
const PARTS_DATA: &str = ".parts.incomplete";
/// Name ending of a parts record (see [`RepoLayout::parts_record`]).
const PARTS_RECORD: &str = ".ranges.incomplete";

/// Which half of a ranged download's leftovers a file in `blobs/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartsFile {
    /// The data, written at offsets.
    Data,
    /// The record of the ranges held.
    Record,
}

/// Whether `name` (in `blobs/`) is a ranged download's file of blob `etag`: its kind and its
/// 8-hex suffix (which pairs a data file with its record).
pub fn parts_file_of<'n>(name: &'n str, etag: &str) -> Option<(PartsFile, &'n str)> {
    let rest = name.strip_prefix(etag)?.strip_prefix('.')?;
    let (suffix, kind) = if let Some(s) = rest.strip_suffix(PARTS_DATA) {
        (s, PartsFile::Data)
    } else {
        (rest.strip_suffix(PARTS_RECORD)?, PartsFile::Record)
    };
    (suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit())).then_some((kind, suffix))
}

/// Joins a validated repo path onto a folder, one segment at a time.
pub fn join_repo_path(base: &Path, path: &RepoPath) -> PathBuf {
    let mut out = base.to_path_buf();
    for seg in path.segments() {
        out.push(seg);
    }
    out
}

/// Relative symlink target from `snapshots/<commit>/<path>` to `blobs/<etag>`.
pub fn blob_link_target(path: &RepoPath, etag: &str) -> PathBuf {
    let mut target = PathBuf::new();
    for _ in 0..path.depth() + 2 {
        target.push("..");
    }
    target.push("blobs");
    target.push(etag);
    target
}

/// Repo types a cache folder can have (kernels included, as in 2.4.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CachedRepoType {
    /// `models--…`
    Model,
    /// `datasets--…`
    Dataset,
    /// `spaces--…`
    Space,
    /// `kernels--…`
    Kernel,
}

impl CachedRepoType {
    /// All types, in Python's sorted prefix order.
    pub const ALL: [CachedRepoType; 4] = [
        CachedRepoType::Dataset,
        CachedRepoType::Kernel,
        CachedRepoType::Model,
        CachedRepoType::Space,
    ];

    /// The singular name (`model`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CachedRepoType::Model => "model",
            CachedRepoType::Dataset => "dataset",
            CachedRepoType::Space => "space",
            CachedRepoType::Kernel => "kernel",
        }
    }

    /// The folder-name prefix (`models`, …).
    pub fn plural(self) -> &'static str {
        match self {
            CachedRepoType::Model => "models",
            CachedRepoType::Dataset => "datasets",
            CachedRepoType::Space => "spaces",
            CachedRepoType::Kernel => "kernels",
        }
    }

    /// Parses a singular or plural name.
    pub fn parse(s: &str) -> Option<CachedRepoType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s || t.plural() == s)
    }

    /// The folder name of a repo of this type: `models--org--name`.
    pub fn folder_name(self, repo_id: &str) -> String {
        crate::repo::folder_name(self.plural(), repo_id)
    }
}

impl fmt::Display for CachedRepoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type and id a repo folder name stands for (`models--org--name` → model, `org/name`).
pub fn parse_folder_name(name: &str) -> Option<(CachedRepoType, String)> {
    let (prefix, rest) = name.split_once("--")?;
    let t = CachedRepoType::ALL.into_iter().find(|t| t.plural() == prefix)?;
    Some((t, rest.replace("--", "/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{RepoId, RepoType};

    #[test]
    fn paths() {
        let cache = CacheLayout::new("/c");
        let repo = cache.repo(&Repo::new(RepoId::new("org/m").unwrap(), RepoType::Model));
        let commit = CommitHash::new(&"a".repeat(40)).unwrap();
        let path = RepoPath::new("1_Pooling/config.json").unwrap();
        assert_eq!(repo.blob("e"), PathBuf::from("/c/models--org--m/blobs/e"));
        assert_eq!(
            repo.temp_blob("e", "0a1b2c3d"),
            PathBuf::from("/c/models--org--m/blobs/e.0a1b2c3d.incomplete")
        );
        assert_eq!(
            repo.ref_file("refs/pr/1"),
            PathBuf::from("/c/models--org--m/refs/refs/pr/1")
        );
        assert_eq!(
            repo.snapshot_file(&commit, &path),
            PathBuf::from(format!(
                "/c/models--org--m/snapshots/{}/1_Pooling/config.json",
                "a".repeat(40)
            ))
        );
        assert_eq!(
            repo.no_exist_marker(&commit, &path),
            PathBuf::from(format!(
                "/c/models--org--m/.no_exist/{}/1_Pooling/config.json",
                "a".repeat(40)
            ))
        );
        assert_eq!(repo.lock_file("e"), PathBuf::from("/c/.locks/models--org--m/e.lock"));
        assert_eq!(cache.etag_lock("models--org--m", "e"), repo.lock_file("e"));
        assert_eq!(cache.gc_lock(), PathBuf::from("/c/.locks/hubcache-gc.lock"));
        assert_eq!(
            repo.tree_file(&commit),
            PathBuf::from(format!("/c/models--org--m/trees/{}.json", "a".repeat(40)))
        );
    }

    #[test]
    fn parts_names_pair_and_never_look_like_a_prefix() {
        let e = "a".repeat(64);
        let repo = CacheLayout::new("/c").repo(&Repo::new(RepoId::new("org/m").unwrap(), RepoType::Model));
        let data = repo.parts_blob(&e, "0a1b2c3d");
        let record = repo.parts_record(&e, "0a1b2c3d");
        let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(parts_file_of(&name(&data), &e), Some((PartsFile::Data, "0a1b2c3d")));
        assert_eq!(parts_file_of(&name(&record), &e), Some((PartsFile::Record, "0a1b2c3d")));
        assert!(
            !is_temp_blob_of(&name(&data), &e),
            "never adopted as a contiguous prefix"
        );
        assert!(!is_temp_blob_of(&name(&record), &e));
        assert!(
            name(&data).ends_with(".incomplete"),
            "scan and prune (ours and Python's) see it"
        );
        for bad in [
            format!("{e}.0a1b2c3.parts.incomplete"),
            format!("{e}.0a1b2c3d.incomplete"),
            format!("{e}x.0a1b2c3d.parts.incomplete"),
            format!("{e}.0a1b2c3d.parts"),
        ] {
            assert_eq!(parts_file_of(&bad, &e), None, "{bad}");
        }
    }

    #[test]
    fn temp_blob_names() {
        let e = "ab".repeat(32);
        for ok in [format!("{e}.0a1b2c3d.incomplete"), format!("{e}.incomplete")] {
            assert!(is_temp_blob_of(&ok, &e), "{ok}");
        }
        for bad in [
            e.clone(),
            format!("{e}.0a1b2c3.incomplete"),
            format!("{e}.0a1b2c3dd.incomplete"),
            format!("{e}.0a1b2c3g.incomplete"),
            format!("{e}x.incomplete"),
            format!("{e}.0a1b2c3d.incomplete.x"),
            format!("x{e}.0a1b2c3d.incomplete"),
        ] {
            assert!(!is_temp_blob_of(&bad, &e), "{bad}");
        }
    }

    #[test]
    fn link_targets() {
        assert_eq!(
            blob_link_target(&RepoPath::new("a").unwrap(), "e"),
            PathBuf::from("../../blobs/e")
        );
        assert_eq!(
            blob_link_target(&RepoPath::new("x/y/a").unwrap(), "e"),
            PathBuf::from("../../../../blobs/e")
        );
    }

    #[test]
    fn cachedir_tag_bytes() {
        assert_eq!(CACHEDIR_TAG.lines().count(), 4);
        assert!(CACHEDIR_TAG.ends_with("#\thttps://bford.info/cachedir/\n"));
        assert!(CACHEDIR_TAG.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n# This"));
    }
}
