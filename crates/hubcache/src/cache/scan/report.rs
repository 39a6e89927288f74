//! The report structs of a scan (`HFCacheInfo` and its parts), with the serde shape of
//! `hubcache cache ls --json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::warning::ScanWarning;
use crate::cache::layout::CachedRepoType;

/// One file of a cached revision (`CachedFileInfo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInfo {
    /// Base name.
    pub file_name: String,
    /// `snapshots/<commit>/<path>`.
    #[serde(serialize_with = "ser_path")]
    pub file_path: PathBuf,
    /// First symlink hop, absolute and normalised (the file itself when it is not a link).
    #[serde(serialize_with = "ser_path")]
    pub blob_path: PathBuf,
    /// Size of the content.
    pub size_on_disk: u64,
    /// Access time of the content (Unix seconds, as Python's `st_atime`).
    pub blob_last_accessed: f64,
    /// Modification time of the content.
    pub blob_last_modified: f64,
    /// The shared-store payload behind `blob_path`, when it is a store link.
    #[serde(skip)]
    pub shared_target: Option<PathBuf>,
}

/// One cached revision (`CachedRevisionInfo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevisionInfo {
    /// The snapshot folder's name.
    pub commit_hash: String,
    /// `snapshots/<commit>`.
    #[serde(serialize_with = "ser_path")]
    pub snapshot_path: PathBuf,
    /// Sum of the distinct blobs of the revision.
    pub size_on_disk: u64,
    /// Number of files.
    pub nb_files: usize,
    /// Refs pointing here, sorted.
    pub refs: Vec<String>,
    /// Newest blob mtime, or the folder's mtime when empty.
    pub last_modified: f64,
    /// Files, sorted by path.
    pub files: Vec<FileInfo>,
}

/// One cached repo (`CachedRepoInfo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepoInfo {
    /// `org/name`.
    pub repo_id: String,
    /// Model, dataset, space or kernel.
    pub repo_type: CachedRepoType,
    /// The repo folder.
    #[serde(serialize_with = "ser_path")]
    pub repo_path: PathBuf,
    /// Sum of the distinct blobs of all revisions (shared payloads counted in every repo).
    pub size_on_disk: u64,
    /// Number of distinct blobs.
    pub nb_files: usize,
    /// Newest blob atime, or the folder's atime when there are no files.
    pub last_accessed: f64,
    /// Newest blob mtime, or the folder's mtime when there are no files.
    pub last_modified: f64,
    /// Ref name → commit.
    pub refs: BTreeMap<String, String>,
    /// Revisions, sorted by commit.
    pub revisions: Vec<RevisionInfo>,
    /// Entries of `blobs/` no snapshot file uses (candidates for `prune`), not in Python's report.
    #[serde(skip)]
    pub unreferenced_blobs: Vec<UnreferencedBlob>,
}

/// A blob no snapshot of its repo links to.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreferencedBlob {
    /// `<repo>/blobs/<etag>`.
    pub path: PathBuf,
    /// Content size (through a store link).
    pub size: u64,
    /// Its shared-store payload, when it is a store link.
    pub shared_target: Option<PathBuf>,
}

/// A leftover or running download (`CachedIncompleteFileInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompleteFile {
    /// `<repo>/blobs/<etag>[.<8 hex>].incomplete`.
    #[serde(serialize_with = "ser_path")]
    pub file_path: PathBuf,
    /// Its size.
    pub size_on_disk: u64,
}

/// One payload of the shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePayload {
    /// Its size.
    pub size: u64,
    /// Valid manifest references; `None` when the manifest is unreadable (never collected).
    pub references: Option<std::collections::BTreeSet<PathBuf>>,
}

/// The whole report (`HFCacheInfo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheInfo {
    /// Physical bytes: distinct blobs once, shared payloads once.
    pub size_on_disk: u64,
    /// Valid repos, sorted by `type/id`.
    pub repos: Vec<RepoInfo>,
    /// Every `*/blobs/*.incomplete`.
    pub incomplete_files: Vec<IncompleteFile>,
    /// One per repo folder left out, with Python's message.
    #[serde(serialize_with = "ser_display_list")]
    pub warnings: Vec<ScanWarning>,
    /// The scanned folder, resolved.
    #[serde(serialize_with = "ser_path")]
    pub cache_dir: PathBuf,
    /// Payloads of the marked shared store, if there is one.
    #[serde(skip)]
    pub shared_store: Option<BTreeMap<PathBuf, StorePayload>>,
}

fn ser_path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

fn ser_display_list<S: Serializer>(items: &[ScanWarning], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().map(|w| w.to_string()))
}

impl RepoInfo {
    /// `type/id`, e.g. `model/org/name`.
    pub fn cache_id(&self) -> String {
        format!("{}/{}", self.repo_type, self.repo_id)
    }

    /// The folder name (`models--org--name`).
    pub fn folder_name(&self) -> String {
        self.repo_type.folder_name(&self.repo_id)
    }

    /// The revision a ref name or a full commit hash designates.
    pub fn revision(&self, rev: &str) -> Option<&RevisionInfo> {
        let commit = self.refs.get(rev).map(String::as_str).unwrap_or(rev);
        self.revisions.iter().find(|r| r.commit_hash == commit)
    }
}

impl CacheInfo {
    /// Total size of the incomplete files.
    pub fn incomplete_size_on_disk(&self) -> u64 {
        self.incomplete_files.iter().map(|f| f.size_on_disk).sum()
    }

    /// Shared-store payloads whose manifest proves nothing references them, with sizes.
    pub fn unreferenced_shared_blobs(&self) -> Vec<(PathBuf, u64)> {
        let Some(store) = &self.shared_store else {
            return Vec::new();
        };
        store
            .iter()
            .filter(|(_, p)| p.references.as_ref().is_some_and(|r| r.is_empty()))
            .map(|(path, p)| (path.clone(), p.size))
            .collect()
    }

    /// The repo of that type and id (case-insensitive, as `hf cache rm` matches).
    pub fn repo(&self, repo_type: CachedRepoType, repo_id: &str) -> Option<&RepoInfo> {
        self.repos
            .iter()
            .find(|r| r.repo_type == repo_type && r.repo_id.eq_ignore_ascii_case(repo_id))
    }
}
