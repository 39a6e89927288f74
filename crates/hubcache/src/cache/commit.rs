//! The only code that changes a repo folder: persist a blob, link a snapshot entry, write a ref,
//! record a `.no_exist` marker, tag the cache root.
//!
//! Invariants: a blob appears under `blobs/<etag>` only complete and verified (atomic rename of a
//! temp file in the same folder); a snapshot entry appears only once its blob exists; refs are
//! replaced atomically and only when their content changes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::layout::{blob_link_target, CacheLayout, RepoLayout, CACHEDIR_TAG};
use crate::repo::{CommitHash, RepoPath};

/// How snapshot entries are materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Relative symlinks into `blobs/` (the normal layout).
    Symlink,
    /// No symlinks: a new blob is moved into the snapshot, an existing one copied.
    Copy,
}

impl LinkMode {
    /// Symlinks unless disabled or unsupported in `dir`.
    pub fn detect(dir: &Path, disable_symlinks: bool) -> LinkMode {
        if !disable_symlinks && crate::fs::symlinks_supported(dir) {
            LinkMode::Symlink
        } else {
            LinkMode::Copy
        }
    }
}

/// Writes `CACHEDIR.TAG` at the cache root if it is absent.
pub fn ensure_cachedir_tag(cache: &CacheLayout) -> io::Result<()> {
    fs::create_dir_all(cache.root())?;
    crate::fs::create_if_absent(&cache.cachedir_tag(), CACHEDIR_TAG.as_bytes())
}

/// Points `refs/<name>` at `commit` (no newline), atomically, only if it differs.
pub fn write_ref(repo: &RepoLayout, name: &str, commit: &CommitHash) -> io::Result<()> {
    if name == commit.as_str() {
        return Ok(());
    }
    let path = repo.ref_file(name);
    if fs::read_to_string(&path).is_ok_and(|c| c == commit.as_str()) {
        return Ok(());
    }
    crate::fs::create_parent(&path)?;
    crate::fs::write_atomic(&path, commit.as_str().as_bytes())
}

/// Records that `path` does not exist at `commit`.
pub fn write_no_exist(repo: &RepoLayout, commit: &CommitHash, path: &RepoPath) -> io::Result<()> {
    let marker = repo.no_exist_marker(commit, path);
    crate::fs::create_parent(&marker)?;
    crate::fs::create_if_absent(&marker, b"")
}

/// Moves a verified temp file onto `blobs/<etag>` (replacing any older copy atomically).
pub fn persist_blob(temp: &Path, blob: &Path) -> io::Result<()> {
    fs::rename(temp, blob)
}

/// Creates `snapshots/<commit>/<path>` for the blob `etag`; returns the entry's path.
/// `new_blob` says the blob was just downloaded (in copy mode it is then moved, not copied).
pub fn link_snapshot(
    repo: &RepoLayout,
    commit: &CommitHash,
    path: &RepoPath,
    etag: &str,
    mode: LinkMode,
    new_blob: bool,
) -> io::Result<PathBuf> {
    let pointer = repo.snapshot_file(commit, path);
    let blob = repo.blob(etag);
    match mode {
        LinkMode::Symlink => crate::fs::relative_symlink(&blob_link_target(path, etag), &pointer)?,
        LinkMode::Copy if new_blob => {
            crate::fs::create_parent(&pointer)?;
            fs::rename(&blob, &pointer)?;
        }
        LinkMode::Copy => crate::fs::copy_atomic(&blob, &pointer)?,
    }
    Ok(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{Repo, RepoId, RepoType};

    #[test]
    fn refs_links_markers() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheLayout::new(dir.path());
        let repo = cache.repo(&Repo::new(RepoId::new("o/m").unwrap(), RepoType::Model));
        let commit = CommitHash::new(&"d".repeat(40)).unwrap();
        write_ref(&repo, "refs/pr/1", &commit).unwrap();
        assert_eq!(fs::read_to_string(repo.ref_file("refs/pr/1")).unwrap(), "d".repeat(40));
        write_ref(&repo, commit.as_str(), &commit).unwrap();
        assert!(!repo.ref_file(commit.as_str()).exists(), "never a ref for a commit");

        fs::create_dir_all(repo.blobs_dir()).unwrap();
        fs::write(repo.blob("e1"), b"hello").unwrap();
        let path = RepoPath::new("sub/f.txt").unwrap();
        let p = link_snapshot(&repo, &commit, &path, "e1", LinkMode::Symlink, true).unwrap();
        assert_eq!(fs::read_link(&p).unwrap(), PathBuf::from("../../../blobs/e1"));
        assert_eq!(fs::read(&p).unwrap(), b"hello");

        let other = RepoPath::new("copy.txt").unwrap();
        let p = link_snapshot(&repo, &commit, &other, "e1", LinkMode::Copy, false).unwrap();
        assert!(!fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert!(repo.blob("e1").exists());
        let moved = RepoPath::new("moved.txt").unwrap();
        link_snapshot(&repo, &commit, &moved, "e1", LinkMode::Copy, true).unwrap();
        assert!(!repo.blob("e1").exists(), "a new blob is moved in copy mode");

        write_no_exist(&repo, &commit, &RepoPath::new("a/b.json").unwrap()).unwrap();
        assert_eq!(
            fs::read(repo.no_exist_marker(&commit, &RepoPath::new("a/b.json").unwrap())).unwrap(),
            b""
        );

        ensure_cachedir_tag(&cache).unwrap();
        assert_eq!(fs::read_to_string(cache.cachedir_tag()).unwrap(), CACHEDIR_TAG);
    }
}
