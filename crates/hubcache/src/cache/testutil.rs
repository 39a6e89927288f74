//! Fixtures for the cache management tests: hand-made repo folders (blobs, links, refs).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

pub(crate) const C1: &str = "1111111111111111111111111111111111111111";
pub(crate) const C2: &str = "2222222222222222222222222222222222222222";

/// Adds `blobs/<etag>` with `content` and links `snapshots/<commit>/<path>` to it.
pub(crate) fn add_file(repo: &Path, commit: &str, path: &str, etag: &str, content: &[u8]) {
    let blob = repo.join("blobs").join(etag);
    fs::create_dir_all(blob.parent().unwrap()).unwrap();
    fs::write(&blob, content).unwrap();
    let pointer = repo.join("snapshots").join(commit).join(path);
    fs::create_dir_all(pointer.parent().unwrap()).unwrap();
    let depth = path.matches('/').count();
    let target = format!("{}../../blobs/{etag}", "../".repeat(depth));
    let _ = fs::remove_file(&pointer);
    symlink(target, pointer).unwrap();
}

pub(crate) fn add_ref(repo: &Path, name: &str, commit: &str) {
    let p = repo.join("refs").join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, commit).unwrap();
}

/// Two revisions sharing one blob; C2 is `main`, C1 detached.
pub(crate) fn two_revisions(cache: &Path) -> PathBuf {
    let repo = cache.join("models--org--m");
    add_file(&repo, C1, "config.json", "e1", b"{}");
    add_file(&repo, C1, "weights.bin", "e2", b"0123456789");
    add_file(&repo, C2, "config.json", "e1", b"{}");
    add_file(&repo, C2, "sub/dir/weights.bin", "e3", b"abcdefghijklmnopqrst");
    add_ref(&repo, "main", C2);
    repo
}
