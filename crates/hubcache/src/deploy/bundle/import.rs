//! Import: every blob streamed into a staging folder and verified (size, etag, sha256) before
//! anything becomes visible, then placed and linked through the [`CacheWriter`], refs last.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::hashing::{Hasher, HASH_CHUNK};
use super::manifest::validate;
use super::parts::open_bundle;
use super::reader::read_bundle;
use super::BundleReport;
use crate::cache::layout::CacheLayout;
use crate::cache::tree::TreeFile;
use crate::cache::writer::{CacheWriter, WriteOptions};
use crate::deploy::DeployError;
use crate::digest::DigestKind;
use crate::repo::{CommitHash, RepoPath};

/// Removes the staging folder unless disarmed.
struct Staging(Option<PathBuf>);

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Imports a bundle into `cache`; all or nothing becomes visible.
pub fn import(cache: &CacheLayout, bundle: &Path, options: WriteOptions) -> Result<BundleReport, DeployError> {
    let refuse = |detail: String| DeployError::Bundle {
        path: bundle.to_path_buf(),
        detail,
    };
    let bundle_bytes = open_bundle(bundle)?.1;
    // Made once the manifest is known to be valid; every blob is staged in it.
    let staging: std::cell::OnceCell<(Staging, PathBuf)> = std::cell::OnceCell::new();
    let manifest = read_bundle(
        bundle,
        |_| {
            fs::create_dir_all(cache.root()).map_err(|e| DeployError::io("create", cache.root(), e))?;
            let dir = cache
                .root()
                .join(".locks")
                .join(format!("hubcache-import-{}", crate::fs::random_suffix()));
            fs::create_dir_all(&dir).map_err(|e| DeployError::io("create", &dir, e))?;
            let _ = staging.set((Staging(Some(dir.clone())), dir));
            Ok(())
        },
        |etag, info, entry| {
            let Some((_, staging_dir)) = staging.get() else {
                return Err(refuse("no staging folder".into()));
            };
            let git = (DigestKind::for_etag(etag) == Some(DigestKind::GitSha1)).then_some(info.size);
            let mut hasher = Hasher::new(git);
            let dest = staging_dir.join(etag);
            let mut out = File::create(&dest).map_err(|e| DeployError::io("create", &dest, e))?;
            loop {
                // A fresh buffer per chunk: written, then handed to the hasher thread as is.
                let mut chunk = Vec::with_capacity(HASH_CHUNK);
                (&mut *entry)
                    .take(HASH_CHUNK as u64)
                    .read_to_end(&mut chunk)
                    .map_err(|e| refuse(format!("truncated or unreadable blob {etag}: {e}")))?;
                if chunk.is_empty() {
                    break;
                }
                out.write_all(&chunk).map_err(|e| DeployError::io("write", &dest, e))?;
                hasher.update_owned(chunk);
            }
            let (digests, read) = hasher.finish();
            if read != info.size {
                return Err(refuse(format!("blob {etag} is truncated")));
            }
            let sha_ok = digests
                .sha256
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(&info.sha256));
            if !sha_ok || !digests.matches_etag(etag) {
                return Err(refuse(format!(
                    "blob {etag} does not match its hash (tampered or damaged)"
                )));
            }
            Ok(())
        },
    )?;
    let plan = validate(&manifest).map_err(refuse)?;
    let Some((mut staging, staging_dir)) = staging.into_inner() else {
        return Err(refuse("no staging folder".into()));
    };

    // Everything verified: place blobs, then snapshot links and listings, then refs.
    let mut report = BundleReport {
        repos: plan.repos.len(),
        blobs: manifest.blobs.len(),
        blob_bytes: manifest.blobs.values().map(|b| b.size).sum(),
        bundle_bytes,
        entries: 0,
    };
    // Through one writer: a `cache prune` beside the import waits instead of deleting a blob
    // between its placing and its linking.
    let writer = CacheWriter::open_blocking(cache, options)?;
    for (repo, entry) in &plan.repos {
        let layout = cache.repo(repo);
        writer
            .prepare_repo(&layout)
            .map_err(|e| DeployError::io("create", layout.blobs_dir(), e))?;
        // Snapshot entries grouped by blob: each blob is placed and linked under its lock.
        let mut by_blob: BTreeMap<&String, Vec<(CommitHash, RepoPath)>> = BTreeMap::new();
        for (commit, files) in &entry.snapshots {
            let commit = CommitHash::new(commit).map_err(|e| refuse(e.to_string()))?;
            writer
                .create_snapshot_dir(&layout, &commit)
                .map_err(|e| DeployError::io("create", layout.snapshot_dir(&commit), e))?;
            for (path, etag) in files {
                let path = RepoPath::new(path).map_err(|e| refuse(e.to_string()))?;
                by_blob.entry(etag).or_default().push((commit.clone(), path));
            }
        }
        for (etag, links) in by_blob {
            let blob = writer.lock_blob_blocking(&layout, etag)?;
            blob.place_hard_link(&staging_dir.join(etag))
                .map_err(|e| DeployError::io("place", blob.blob_path(), e))?;
            for (commit, path) in links {
                blob.link(&commit, &path, false)
                    .map_err(|e| DeployError::io("link", blob.entry_path(&commit, &path), e))?;
                report.entries += 1;
            }
        }
        for (commit, listing) in &entry.trees {
            let commit = CommitHash::new(commit).map_err(|e| refuse(e.to_string()))?;
            if layout.tree_file(&commit).is_file() {
                continue;
            }
            let listing: BTreeMap<RepoPath, TreeFile> = listing
                .iter()
                .filter_map(|(p, f)| RepoPath::new(p).ok().map(|p| (p, f.clone())))
                .collect();
            writer
                .write_tree(&layout, &commit, &listing)
                .map_err(|e| DeployError::io("write", layout.tree_file(&commit), e))?;
        }
        for (name, commit) in &entry.refs {
            let commit = CommitHash::new(commit).map_err(|e| refuse(e.to_string()))?;
            writer
                .write_ref(&layout, name, &commit)
                .map_err(|e| DeployError::io("write", layout.ref_file(name), e))?;
        }
    }
    if let Some(p) = staging.0.take() {
        let _ = fs::remove_dir_all(p);
    }
    Ok(report)
}
