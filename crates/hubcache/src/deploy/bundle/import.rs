//! Import: every blob streamed into a staging folder and verified (size, etag, sha256) before
//! anything becomes visible, then placed and linked through the [`CacheWriter`], refs last.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::hashing::{Hasher, HASH_CHUNK};
use super::manifest::{validate, BundleManifest};
use super::parts::open_bundle;
use super::BundleReport;
use crate::cache::layout::CacheLayout;
use crate::cache::tree::TreeFile;
use crate::cache::writer::{CacheWriter, WriteOptions};
use crate::deploy::DeployError;
use crate::digest::DigestKind;
use crate::repo::{CommitHash, RepoPath};

/// Largest manifest accepted on import.
const MAX_MANIFEST: u64 = 256 << 20;

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
    let (reader, bundle_bytes) = open_bundle(bundle)?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, reader));
    let mut entries = archive.entries().map_err(|e| refuse(format!("not a tar file: {e}")))?;

    let mut first = match entries.next() {
        Some(Ok(e)) => e,
        Some(Err(e)) => return Err(refuse(format!("unreadable: {e}"))),
        None => return Err(refuse("empty".into())),
    };
    if first.path().map(|p| p != Path::new("manifest.json")).unwrap_or(true) || first.size() > MAX_MANIFEST {
        return Err(refuse("the first entry is not manifest.json".into()));
    }
    let mut json = Vec::new();
    first
        .read_to_end(&mut json)
        .map_err(|e| refuse(format!("truncated manifest: {e}")))?;
    let manifest: BundleManifest =
        serde_json::from_slice(&json).map_err(|e| refuse(format!("malformed manifest: {e}")))?;
    let plan = validate(&manifest).map_err(refuse)?;

    fs::create_dir_all(cache.root()).map_err(|e| DeployError::io("create", cache.root(), e))?;
    let staging_dir = cache
        .root()
        .join(".locks")
        .join(format!("hubcache-import-{}", crate::fs::random_suffix()));
    fs::create_dir_all(&staging_dir).map_err(|e| DeployError::io("create", &staging_dir, e))?;
    let mut staging = Staging(Some(staging_dir.clone()));

    let mut seen = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("truncated or corrupt: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| refuse(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let etag = name
            .strip_prefix("blobs/")
            .filter(|e| manifest.blobs.contains_key(*e))
            .ok_or_else(|| refuse(format!("unexpected entry `{}`", name.escape_debug())))?
            .to_string();
        if !seen.insert(etag.clone()) {
            return Err(refuse(format!("blob {etag} appears twice")));
        }
        let info = &manifest.blobs[&etag];
        if entry.size() != info.size {
            return Err(refuse(format!(
                "blob {etag} has {} bytes, the manifest says {}",
                entry.size(),
                info.size
            )));
        }
        let git = (DigestKind::for_etag(&etag) == Some(DigestKind::GitSha1)).then_some(info.size);
        let mut hasher = Hasher::new(git);
        let dest = staging_dir.join(&etag);
        let mut out = File::create(&dest).map_err(|e| DeployError::io("create", &dest, e))?;
        loop {
            // A fresh buffer per chunk: written, then handed to the hasher thread as is.
            let mut chunk = Vec::with_capacity(HASH_CHUNK);
            (&mut entry)
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
        if !sha_ok || !digests.matches_etag(&etag) {
            return Err(refuse(format!(
                "blob {etag} does not match its hash (tampered or damaged)"
            )));
        }
    }
    if let Some(missing) = manifest.blobs.keys().find(|e| !seen.contains(*e)) {
        return Err(refuse(format!("truncated: blob {missing} is missing")));
    }

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
