//! `cache add-folder`: publish a local model folder into the cache as a commit of a repo.
//!
//! The commit id is derived from the content alone (same folder → same commit), so importing
//! twice is a no-op. Files follow the Hub's LFS rules: large or binary-weight files are stored
//! under their sha256, others under their git blob sha1; the listing goes to `trees/<commit>.json`
//! exactly as a download would have written it, so clients and the mirror see a normal commit.
//!
//! Hashing runs first, with no lock; placing runs through a [`CacheWriter`] (the clean-up lock
//! shared, each blob placed and linked under its etag lock), so a `cache prune` beside it can
//! never delete a blob it is about to link.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha1::{Digest as _, Sha1};

use super::error::CacheError;
use super::layout::CacheLayout;
use super::tree::TreeFile;
use super::writer::{CacheWriter, WriteOptions};
use crate::digest::hash_file_both;
use crate::repo::lfs::is_lfs;
use crate::repo::{CommitHash, Repo, RepoPath};

/// The commit id of a listing: sha1 over the repo id and every (path, blob id).
pub fn commit_id(repo: &Repo, files: &BTreeMap<RepoPath, TreeFile>) -> CommitHash {
    let mut h = Sha1::new();
    h.update(format!("hubcache add-folder v1\n{}\n{}\n", repo.repo_type, repo.id).as_bytes());
    for (path, f) in files {
        h.update(format!("{} {} {}\n", path, f.blob_id, f.etag()).as_bytes());
    }
    CommitHash::from_digest(&h.finalize().into())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(RepoPath, PathBuf)>) -> Result<(), CacheError> {
    let entries = fs::read_dir(dir).map_err(|e| CacheError::io("read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("read", dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        // The same folders huggingface_hub never uploads.
        if name == ".git" || (name == ".cache" && dir == root) {
            continue;
        }
        let meta = fs::metadata(&path).map_err(|e| CacheError::io("read", &path, e))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            // `path` is `root` joined with names read from it, so the prefix is always there.
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
            let rel = RepoPath::new(&rel).map_err(|source| CacheError::Name {
                path: path.clone(),
                source,
            })?;
            out.push((rel, path));
        }
    }
    Ok(())
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The commit the branch now points at.
    pub commit: CommitHash,
    /// The snapshot folder.
    pub snapshot: PathBuf,
    /// Files in the commit.
    pub files: usize,
    /// Total content bytes.
    pub bytes: u64,
}

/// Imports `dir` as a commit of `repo` and points `branch` at it.
pub fn add_folder(
    cache: &CacheLayout,
    repo: &Repo,
    branch: &str,
    dir: &Path,
    options: WriteOptions,
) -> Result<Imported, CacheError> {
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    let mut listing = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut bytes = 0;
    for (rel, src) in found {
        let (git, sha256, size) = hash_file_both(&src).map_err(|e| CacheError::io("read", &src, e))?;
        bytes += size;
        let file = if is_lfs(rel.as_str(), size) {
            TreeFile::lfs(sha256, size)
        } else {
            TreeFile::regular(git, size)
        };
        sources.insert(rel.clone(), src);
        listing.insert(rel, file);
    }
    let commit = commit_id(repo, &listing);
    let writer = CacheWriter::open_blocking(cache, options)?;
    let layout = cache.repo(repo);
    writer
        .prepare_repo(&layout)
        .map_err(|e| CacheError::io("create", layout.blobs_dir(), e))?;
    for (rel, file) in &listing {
        let pointer = layout.snapshot_file(&commit, rel);
        if crate::fs::is_file(&pointer) {
            continue;
        }
        let blob = writer.lock_blob_blocking(&layout, file.etag())?;
        // A copy, never a hard link: the user's folder may change after the import.
        let fresh = blob
            .place_copy(&sources[rel])
            .map_err(|e| CacheError::io("copy into", blob.blob_path(), e))?;
        blob.link(&commit, rel, fresh)
            .map_err(|e| CacheError::io("link", &pointer, e))?;
    }
    let snapshot = writer
        .create_snapshot_dir(&layout, &commit)
        .map_err(|e| CacheError::io("create", layout.snapshot_dir(&commit), e))?;
    writer
        .write_tree(&layout, &commit, &listing)
        .map_err(|e| CacheError::io("write", layout.tree_file(&commit), e))?;
    writer
        .write_ref(&layout, branch, &commit)
        .map_err(|e| CacheError::io("write", layout.ref_file(branch), e))?;
    Ok(Imported {
        commit,
        snapshot,
        files: listing.len(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tree;
    use crate::cache::writer::LinkMode;
    use crate::repo::{RepoId, RepoType};

    #[test]
    fn import_is_deterministic_and_readable() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("1_Pooling")).unwrap();
        fs::write(src.path().join("config.json"), b"{}").unwrap();
        fs::write(src.path().join("1_Pooling/config.json"), b"{\"a\":1}").unwrap();
        fs::write(src.path().join("model.safetensors"), b"weights").unwrap();
        fs::create_dir_all(src.path().join(".git")).unwrap();
        fs::write(src.path().join(".git/HEAD"), b"ref").unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = CacheLayout::new(cache_dir.path());
        let repo = Repo::new(RepoId::new("org/m").unwrap(), RepoType::Model);
        let opts = || WriteOptions::new(LinkMode::Symlink, std::time::Duration::from_secs(5));
        let a = add_folder(&cache, &repo, "main", src.path(), opts()).unwrap();
        let b = add_folder(&cache, &repo, "main", src.path(), opts()).unwrap();
        assert_eq!(a.commit, b.commit);
        assert_eq!(a.files, 3, ".git is skipped");
        let layout = cache.repo(&repo);
        assert_eq!(fs::read_to_string(layout.ref_file("main")).unwrap(), a.commit.as_str());
        let listing = tree::read(&layout.tree_file(&a.commit)).unwrap();
        let weights = &listing[&RepoPath::new("model.safetensors").unwrap()];
        assert_eq!(weights.lfs_size, Some(7));
        let snap = layout.snapshot_file(&a.commit, &RepoPath::new("model.safetensors").unwrap());
        assert_eq!(fs::read(&snap).unwrap(), b"weights");
        assert_eq!(
            fs::read_link(&snap).unwrap(),
            PathBuf::from(format!("../../blobs/{}", weights.lfs_sha256.as_deref().unwrap()))
        );
        fs::write(src.path().join("config.json"), b"{\"changed\": true}").unwrap();
        let c = add_folder(&cache, &repo, "main", src.path(), opts()).unwrap();
        assert_ne!(c.commit, a.commit);
        assert_eq!(fs::read_to_string(layout.ref_file("main")).unwrap(), c.commit.as_str());
    }
}
