//! Walking a repo folder the way Python's scan does: every entry of a snapshot (first link hop
//! made absolute), the raw refs, blob names, and file identities. `scan`, `delete`, `verify`
//! and `evict` all walk through here, so they agree on what a snapshot holds.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::scan::FILES_TO_IGNORE;
use super::shared_store;

/// One file found under a snapshot folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The entry in the snapshot.
    pub file_path: PathBuf,
    /// First hop of the link (absolute, normalised), or the file itself.
    pub blob_path: PathBuf,
}

/// Every non-folder entry under `dir`, like `Path.glob("**/*")` minus folders: folder symlinks
/// are neither entered nor listed, broken links are listed.
pub fn walk_snapshot(dir: &Path, out: &mut Vec<SnapshotEntry>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_snapshot(&path, out)?;
        } else if kind.is_symlink() {
            if fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let target = fs::read_link(&path)?;
            let blob_path = shared_store::normalize(&dir.join(target));
            out.push(SnapshotEntry {
                file_path: path,
                blob_path,
            });
        } else {
            out.push(SnapshotEntry {
                blob_path: path.clone(),
                file_path: path,
            });
        }
    }
    Ok(())
}

/// Files under `dir` (recursively, folders not listed), as `(relative name, path)`.
fn walk_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk_files(&path, &rel, out)?;
        } else if !fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            out.push((rel, path));
        }
    }
    Ok(())
}

/// Reads a ref the way Python's text mode does (UTF-8, universal newlines, no trimming).
fn read_ref_raw(path: &Path) -> io::Result<String> {
    let bytes = fs::read(path)?;
    Ok(String::from_utf8_lossy(&bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n"))
}

/// Refs of a repo: ref name → raw content, each file under `refs/` (folder links not entered).
pub(crate) fn read_refs(refs_dir: &Path) -> io::Result<BTreeMap<String, String>> {
    let mut files = Vec::new();
    walk_files(refs_dir, "", &mut files)?;
    let mut out = BTreeMap::new();
    for (name, path) in files {
        let base = name.rsplit('/').next().unwrap_or(&name);
        if FILES_TO_IGNORE.contains(&base) {
            continue;
        }
        out.insert(name, read_ref_raw(&path)?);
    }
    Ok(out)
}

/// Whether a `blobs/` entry name is a blob (an etag), not a temp, probe or hidden file.
pub(crate) fn is_blob_name(name: &str) -> bool {
    crate::repo::is_valid_etag(name) && !name.starts_with("tmp_")
}

/// Identity of a file (device, inode): the same blob reached through different spellings of
/// the cache path (absolute links through a symlinked home, …) is still the same blob.
pub(crate) fn identities(path: &Path) -> [Option<(u64, u64)>; 2] {
    let id = |m: Metadata| (m.dev(), m.ino());
    [fs::symlink_metadata(path).ok().map(id), fs::metadata(path).ok().map(id)]
}

/// Identities of everything the snapshot files of `revisions` link to (first hop and content).
pub(crate) fn referenced_identities<'a>(files: impl Iterator<Item = &'a Path>) -> HashSet<(u64, u64)> {
    files.flat_map(|p| identities(p).into_iter().flatten()).collect()
}

/// The blob name of a snapshot entry: its link's target name, or, for a copied file (caches
/// without symlinks), the digest the Hub names it by under its LFS rules (the whole file is
/// hashed). `rel` is the entry's path in the repo.
pub fn entry_etag(path: &Path, rel: &crate::repo::RepoPath) -> io::Result<String> {
    if let Ok(target) = fs::read_link(path) {
        return Ok(target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default());
    }
    let size = fs::metadata(path)?.len();
    crate::digest::hash_file(path, crate::repo::lfs::blob_digest_kind(rel.as_str(), size))
}
