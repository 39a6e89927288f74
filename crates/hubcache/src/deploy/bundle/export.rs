//! Export: the snapshots to carry, their blobs' sizes and sha256, and the tar stream (manifest
//! first, then each distinct blob, checked against its name on the way out).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::hashing::HashingReader;
use super::manifest::{BlobInfo, BundleManifest, RepoEntry, FORMAT, VERSION};
use super::parts::PartWriter;
use super::BundleReport;
use crate::cache::layout::CacheLayout;
use crate::cache::{tree, walk};
use crate::deploy::DeployError;
use crate::digest::DigestKind;
use crate::repo::{is_valid_etag, CommitHash, Repo, RepoPath};

/// What to export: one commit of a repo, all of its cached files or just these.
#[derive(Debug, Clone)]
pub struct ExportItem {
    /// Repo and type.
    pub repo: Repo,
    /// The commit.
    pub commit: CommitHash,
    /// Ref names to carry for this commit.
    pub refs: Vec<String>,
    /// `Some((path, etag))` list from a lock; `None` = every file of the cached snapshot.
    pub files: Option<Vec<(RepoPath, String)>>,
}

/// Every file of a cached snapshot with its etag (symlink target name, or hashed if copied).
fn snapshot_entries(
    cache: &CacheLayout,
    repo: &Repo,
    commit: &CommitHash,
) -> Result<Vec<(RepoPath, String)>, DeployError> {
    let layout = cache.repo(repo);
    let root = layout.snapshot_dir(commit);
    if !root.is_dir() {
        return Err(DeployError::SnapshotNotCached {
            repo: repo.to_string(),
            commit: commit.to_string(),
        });
    }
    let mut entries = Vec::new();
    walk::walk_snapshot(&root, &mut entries).map_err(|e| DeployError::io("read", &root, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.file_path;
        let bad = |reason: String| DeployError::BadSnapshotEntry {
            path: path.clone(),
            reason,
        };
        // `path` is `root` joined with names read from it, so the prefix is always there.
        let rel = path.strip_prefix(&root).unwrap_or(&path);
        let rel = RepoPath::new(&rel.to_string_lossy()).map_err(|e| bad(e.to_string()))?;
        let etag = walk::entry_etag(&path, &rel).map_err(|e| DeployError::io("read", &path, e))?;
        if !is_valid_etag(&etag) {
            return Err(bad(format!("{repo}: {rel} has no valid blob name")));
        }
        out.push((rel, etag));
    }
    out.sort();
    Ok(out)
}

/// Writes a bundle of `items` from `cache` to `out`; with `split`, into parts `out.000`,
/// `out.001`, … of at most that many bytes each (import takes the first part). Parts are written
/// under temporary names and renamed only when the whole bundle is complete.
pub fn export(
    cache: &CacheLayout,
    items: &[ExportItem],
    out: &Path,
    split: Option<u64>,
) -> Result<BundleReport, DeployError> {
    let mut repos: BTreeMap<Repo, RepoEntry> = BTreeMap::new();
    // etag → (file on disk, size)
    let mut blobs: BTreeMap<String, (PathBuf, u64)> = BTreeMap::new();
    let mut entries = 0;
    for item in items {
        let layout = cache.repo(&item.repo);
        let files = match &item.files {
            Some(f) => f.clone(),
            None => snapshot_entries(cache, &item.repo, &item.commit)?,
        };
        let entry = repos.entry(item.repo.clone()).or_insert_with(|| RepoEntry {
            repo_id: item.repo.id.to_string(),
            repo_type: item.repo.repo_type.as_str().to_string(),
            refs: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            trees: BTreeMap::new(),
        });
        for r in &item.refs {
            entry.refs.insert(r.clone(), item.commit.to_string());
        }
        if let Some(listing) = tree::read(&layout.tree_file(&item.commit)) {
            entry.trees.insert(
                item.commit.to_string(),
                listing.into_iter().map(|(p, f)| (p.to_string(), f)).collect(),
            );
        }
        let snap = entry.snapshots.entry(item.commit.to_string()).or_default();
        for (path, etag) in files {
            let disk = layout.snapshot_file(&item.commit, &path);
            let size = fs::metadata(&disk)
                .map_err(|_| DeployError::FileNotCached {
                    repo: item.repo.to_string(),
                    path: path.to_string(),
                })?
                .len();
            snap.insert(path.to_string(), etag.clone());
            blobs.entry(etag).or_insert((disk, size));
            entries += 1;
        }
    }
    // sha256 of each blob: the etag itself for LFS blobs; computed for git-sha1 blobs.
    let mut infos = BTreeMap::new();
    for (etag, (disk, size)) in &blobs {
        let sha256 = if DigestKind::for_etag(etag) == Some(DigestKind::Sha256) {
            etag.to_ascii_lowercase()
        } else {
            let mut r = HashingReader::new(File::open(disk).map_err(|e| DeployError::io("read", disk, e))?, None);
            io::copy(&mut r, &mut io::sink()).map_err(|e| DeployError::io("read", disk, e))?;
            r.finish().0.sha256.unwrap_or_default()
        };
        infos.insert(etag.clone(), BlobInfo { size: *size, sha256 });
    }
    let manifest = BundleManifest {
        format: FORMAT.into(),
        version: VERSION,
        blobs: infos,
        repos: repos.into_values().collect(),
    };
    let mut writer = PartWriter::new(out, split)?;
    if let Err(e) = write_tar(&manifest, &blobs, &mut writer, out) {
        writer.discard();
        return Err(e);
    }
    let bundle_bytes = writer.commit()?;
    Ok(BundleReport {
        repos: manifest.repos.len(),
        entries,
        blobs: blobs.len(),
        blob_bytes: blobs.values().map(|(_, s)| s).sum(),
        bundle_bytes,
    })
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h
}

fn write_tar(
    manifest: &BundleManifest,
    blobs: &BTreeMap<String, (PathBuf, u64)>,
    out: &mut PartWriter,
    path: &Path,
) -> Result<(), DeployError> {
    let mut tar = tar::Builder::new(out);
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| DeployError::io("encode the manifest of", path, e.into()))?;
    let mut h = header(json.len() as u64);
    tar.append_data(&mut h, "manifest.json", json.as_slice())
        .map_err(|e| DeployError::io("write", path, e))?;
    for (etag, (disk, size)) in blobs {
        let src = File::open(disk).map_err(|e| DeployError::io("read", disk, e))?;
        let git = (DigestKind::for_etag(etag) == Some(DigestKind::GitSha1)).then_some(*size);
        let mut reader = HashingReader::new(BufReader::with_capacity(1 << 20, src).take(*size), git);
        let mut h = header(*size);
        tar.append_data(&mut h, format!("blobs/{etag}"), &mut reader)
            .map_err(|e| DeployError::io("write", path, e))?;
        let (digests, read) = reader.finish();
        if read != *size || !digests.matches_etag(etag) {
            return Err(DeployError::CorruptBlob {
                path: disk.clone(),
                etag: etag.clone(),
            });
        }
    }
    tar.into_inner().map_err(|e| DeployError::io("write", path, e))?;
    Ok(())
}
