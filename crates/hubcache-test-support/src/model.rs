//! Repository model: repos, commits, refs and stored files.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha1::{Digest as _, Sha1};

use crate::util::{hex, is_commit_hash};
use crate::{git_blob_sha1, sha256_hex};

/// Kind of a Hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepoKind {
    /// A model repository (no URL prefix, API segment `models`).
    Model,
    /// A dataset repository (URL prefix `datasets/`, API segment `datasets`).
    Dataset,
    /// A Space repository (URL prefix `spaces/`, API segment `spaces`).
    Space,
}

impl RepoKind {
    /// Prefix placed before the repo id in resolve URLs: `""`, `"datasets/"` or `"spaces/"`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
            RepoKind::Space => "spaces/",
        }
    }

    /// Path segment used in API URLs: `"models"`, `"datasets"` or `"spaces"`.
    pub fn api_segment(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
            RepoKind::Space => "spaces",
        }
    }

    /// Singular noun used in Hub messages: `"model"`, `"dataset"` or `"space"`.
    pub fn noun(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
            RepoKind::Space => "space",
        }
    }

    /// Parses an API segment (`models`, `datasets`, `spaces`).
    pub(crate) fn from_api_segment(s: &str) -> Option<RepoKind> {
        match s {
            "models" => Some(RepoKind::Model),
            "datasets" => Some(RepoKind::Dataset),
            "spaces" => Some(RepoKind::Space),
            _ => None,
        }
    }
}

/// Signature of the rule deciding whether a file is stored in LFS: `(path, size) -> is_lfs`.
pub(crate) type LfsRule = fn(&str, u64) -> bool;

/// The default LFS rule: extension in {safetensors, bin, pt, pth, onnx, h5, msgpack, ckpt, gguf} or size >= 10 MiB.
pub fn default_lfs_rule(path: &str, size: u64) -> bool {
    const EXTENSIONS: [&str; 9] = [
        "safetensors",
        "bin",
        "pt",
        "pth",
        "onnx",
        "h5",
        "msgpack",
        "ckpt",
        "gguf",
    ];
    if size >= 10 * 1024 * 1024 {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((_, ext)) => EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => false,
    }
}

/// LFS metadata of a stored file.
#[derive(Debug)]
pub(crate) struct LfsMeta {
    /// SHA-256 of the content (64 hex).
    pub sha256: String,
    /// Size in bytes of the git-lfs pointer file.
    pub pointer_size: u64,
}

/// One file in a commit.
#[derive(Debug)]
pub(crate) struct StoredFile {
    /// The bytes.
    pub content: Bytes,
    /// Git blob SHA-1: of the content for regular files, of the LFS pointer for LFS files.
    pub oid: String,
    /// Present iff the file is stored in LFS.
    pub lfs: Option<LfsMeta>,
}

impl StoredFile {
    /// Content size in bytes.
    pub fn size(&self) -> u64 {
        self.content.len() as u64
    }
}

/// An immutable commit: a full set of files.
#[derive(Debug)]
pub(crate) struct Commit {
    /// 40-hex commit id.
    pub id: String,
    /// Files by path, sorted.
    pub files: BTreeMap<String, Arc<StoredFile>>,
}

/// A repository with its refs and commits.
#[derive(Debug)]
pub(crate) struct Repo {
    /// Repo id (`name` or `org/name`).
    pub id: String,
    /// Branch name → commit id.
    pub branches: BTreeMap<String, String>,
    /// Tag / other ref name (e.g. `v1`, `refs/pr/1`) → commit id.
    pub tags: BTreeMap<String, String>,
    /// All commits by id.
    pub commits: HashMap<String, Arc<Commit>>,
    /// Bearer token required to see the repo, if private.
    pub private_token: Option<String>,
    /// Whether the repo answers 403 GatedRepo.
    pub gated: bool,
}

impl Repo {
    fn new(id: &str) -> Repo {
        Repo {
            id: id.to_owned(),
            branches: BTreeMap::new(),
            tags: BTreeMap::new(),
            commits: HashMap::new(),
            private_token: None,
            gated: false,
        }
    }

    /// Resolves a branch, tag, `refs/heads/X`, `refs/tags/X`, other ref, full commit id, or an
    /// unambiguous short commit id (7 to 39 lower-case hex, as the Hub accepts `9b8c223`).
    pub fn resolve(&self, rev: &str) -> Option<Arc<Commit>> {
        let id = self
            .branches
            .get(rev)
            .or_else(|| self.tags.get(rev))
            .or_else(|| rev.strip_prefix("refs/heads/").and_then(|b| self.branches.get(b)))
            .or_else(|| rev.strip_prefix("refs/tags/").and_then(|t| self.tags.get(t)))
            .map(String::as_str)
            .or_else(|| is_commit_hash(rev).then_some(rev));
        match id {
            Some(id) => self.commits.get(id).cloned(),
            None => self.resolve_short(rev),
        }
    }

    fn resolve_short(&self, rev: &str) -> Option<Arc<Commit>> {
        let hex = rev.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !(7..40).contains(&rev.len()) || !hex {
            return None;
        }
        let mut found = self.commits.iter().filter(|(id, _)| id.starts_with(rev));
        match (found.next(), found.next()) {
            (Some((_, commit)), None) => Some(commit.clone()),
            _ => None,
        }
    }
}

/// The whole mutable model of the fake hub.
pub(crate) struct HubState {
    /// Repos by (kind, id).
    pub repos: HashMap<(RepoKind, String), Repo>,
    /// Old (kind, id) → new id, for renamed repos.
    pub renames: HashMap<(RepoKind, String), String>,
    /// LFS objects served by the CDN origin, by sha256.
    pub lfs_objects: HashMap<String, Bytes>,
    /// Current LFS rule (applies to later commits).
    pub lfs_rule: LfsRule,
    /// Tree listing page size.
    pub tree_page_size: usize,
    /// Answer a resolve of an LFS file with `X-Xet-Hash` ([`crate::fake_xet_hash`]) and an
    /// `X-Xet-Refresh-Route`, as a Xet-backed repo does.
    pub xet_headers: bool,
}

impl HubState {
    /// An empty hub.
    pub fn new() -> HubState {
        HubState {
            repos: HashMap::new(),
            renames: HashMap::new(),
            lfs_objects: HashMap::new(),
            lfs_rule: default_lfs_rule,
            tree_page_size: 1000,
            xet_headers: false,
        }
    }

    /// The repo, created if missing.
    pub fn repo_mut(&mut self, kind: RepoKind, repo_id: &str) -> &mut Repo {
        self.repos
            .entry((kind, repo_id.to_owned()))
            .or_insert_with(|| Repo::new(repo_id))
    }

    /// Records a commit holding exactly `files` on `branch`; returns its id.
    pub fn commit(
        &mut self,
        kind: RepoKind,
        repo_id: &str,
        branch: &str,
        files: BTreeMap<String, Arc<StoredFile>>,
    ) -> String {
        for file in files.values() {
            if let Some(lfs) = &file.lfs {
                self.lfs_objects
                    .entry(lfs.sha256.clone())
                    .or_insert_with(|| file.content.clone());
            }
        }
        let repo = self.repo_mut(kind, repo_id);
        let parent = repo.branches.get(branch).cloned();
        let id = commit_id(repo_id, parent.as_deref(), &files);
        repo.commits
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Commit { id: id.clone(), files }));
        repo.branches.insert(branch.to_owned(), id.clone());
        id
    }
}

/// Deterministic commit id: sha1 over repo id, parent commit and the sorted (path, oid) list.
fn commit_id(repo_id: &str, parent: Option<&str>, files: &BTreeMap<String, Arc<StoredFile>>) -> String {
    let mut h = Sha1::new();
    h.update(b"repo ");
    h.update(repo_id.as_bytes());
    h.update(b"\nparent ");
    h.update(parent.unwrap_or("").as_bytes());
    h.update(b"\n");
    for (path, file) in files {
        h.update(path.as_bytes());
        h.update([0u8]);
        h.update(file.oid.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

/// The git-lfs pointer text for a content of `size` bytes with the given sha256.
pub(crate) fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

fn hash_file(path: &str, content: Bytes, rule: LfsRule) -> StoredFile {
    let size = content.len() as u64;
    if rule(path, size) {
        let sha256 = sha256_hex(&content);
        let pointer = lfs_pointer(&sha256, size);
        StoredFile {
            content,
            oid: git_blob_sha1(pointer.as_bytes()),
            lfs: Some(LfsMeta {
                sha256,
                pointer_size: pointer.len() as u64,
            }),
        }
    } else {
        StoredFile {
            oid: git_blob_sha1(&content),
            content,
            lfs: None,
        }
    }
}

/// Normalises a committed path: no leading `/`, `\` turned into `/`.
fn normalise_path(path: &str) -> String {
    path.replace('\\', "/").trim_start_matches('/').to_owned()
}

/// Hashes the files (in parallel when large) and builds the sorted file map; later duplicates win.
pub(crate) fn prepare_files(files: Vec<(String, Bytes)>, rule: LfsRule) -> BTreeMap<String, Arc<StoredFile>> {
    let files: Vec<(String, Bytes)> = files.into_iter().map(|(p, c)| (normalise_path(&p), c)).collect();
    let total: usize = files.iter().map(|(_, c)| c.len()).sum();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len());
    let hashed: Vec<StoredFile> = if workers > 1 && total >= 32 * 1024 * 1024 {
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<StoredFile>>> = files.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, content)) = files.get(i) else {
                        break;
                    };
                    let stored = hash_file(path, content.clone(), rule);
                    *slots[i].lock().expect("hash slot poisoned") = Some(stored);
                });
            }
        });
        slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .expect("hash slot poisoned")
                    .expect("every file hashed")
            })
            .collect()
    } else {
        files.iter().map(|(p, c)| hash_file(p, c.clone(), rule)).collect()
    };
    files
        .into_iter()
        .zip(hashed)
        .map(|((path, _), stored)| (path, Arc::new(stored)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule() {
        assert!(default_lfs_rule("model.safetensors", 10));
        assert!(default_lfs_rule("a/b/weights.BIN", 10));
        assert!(!default_lfs_rule("config.json", 10));
        assert!(!default_lfs_rule("dir.bin/readme", 10));
        assert!(default_lfs_rule("big.txt", 10 * 1024 * 1024));
    }

    #[test]
    fn pointer_size() {
        let p = lfs_pointer(&"a".repeat(64), 123_456_789);
        assert_eq!(p.len(), 134);
    }
}
