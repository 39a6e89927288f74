//! Content integrity: re-hash every cached file against the name of its blob, optionally
//! against the Hub's file listing too.
//!
//! - **What is checked**: every file of the selected snapshots (the whole cache, one repo, or
//!   one revision) plus, without `--revision`, every blob of `blobs/` no snapshot uses. The
//!   expected digest is the blob's name: 64 hex → SHA-256 of the content (LFS), 40 hex → git
//!   blob SHA-1 (`blob <size>\0` + content). A copied file (no symlinks) has no blob name; it
//!   is checked against `trees/<commit>.json` when that listing exists, else reported as
//!   unverifiable. A shared-store link is checked through its whole chain: the payload's bytes
//!   must hash to the per-repo name.
//! - **Missing**: a snapshot entry whose blob is gone (a broken link).
//! - **Remote** ([`TreeSource`]): the commit's listing from the Hub; files the Hub has and the
//!   snapshot lacks (missing), files the snapshot has and the Hub does not (extra), and files
//!   whose content does not hash to the Hub's `lfs.sha256` / `oid` (Python's `hf cache
//!   verify` rules).
//! - **Cost**: each distinct (content, digest) pair is hashed once, streaming in 256 KiB reads,
//!   on a bounded pool of threads: memory stays a few MiB whatever the cache size, and large
//!   files hash in parallel. Nothing is written, not even access times beyond the OS's.
//!
//! Where things are: `select.rs` turns a [`VerifySelection`] into folders and revisions,
//! `checks.rs` decides what each file should hash to and hashes, `report.rs` holds the
//! [`Finding`]s; [`verify`] here ties them together.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

mod checks;
mod report;
mod select;

pub use crate::digest::Digest;
pub use checks::compare_listing;
pub use report::{Finding, VerifyReport};
pub use select::VerifySelection;

use super::error::CacheError;
use super::scan;
use super::tree;
use super::walk;
use crate::repo::Repo;
use checks::{compare_with_hub, expected_digest, relative_name, run_checks, unused_blobs, Check};

/// The Hub's file listing of a commit: path → digest (Python's choice: `lfs.sha256` if any,
/// else the git `oid`).
pub trait TreeSource {
    /// Lists the files of `repo` at `commit`.
    fn files(&self, repo: &Repo, commit: &str) -> Result<BTreeMap<String, Digest>, CacheError>;
}

impl<T: TreeSource + ?Sized> TreeSource for &T {
    fn files(&self, repo: &Repo, commit: &str) -> Result<BTreeMap<String, Digest>, CacheError> {
        (**self).files(repo, commit)
    }
}

/// Verifies the selected part of the cache; `remote` adds the comparison with the Hub.
pub fn verify(
    cache_dir: &Path,
    selection: &VerifySelection,
    remote: Option<&dyn TreeSource>,
) -> Result<VerifyReport, CacheError> {
    let cache = scan::resolve_cache_dir(cache_dir)?;
    let mut report = VerifyReport::default();
    let mut checks: Vec<Check> = Vec::new();
    // (snapshot entry, Hub digest) pairs to hash with the Hub's algorithm.
    let mut remote_checks: Vec<(PathBuf, Digest)> = Vec::new();
    for (folder, revisions) in select::select(&cache, selection)? {
        let mut used: Vec<PathBuf> = Vec::new();
        for rev in &revisions {
            report.revisions += 1;
            let mut entries = Vec::new();
            if let Err(e) = walk::walk_snapshot(&rev.snapshot, &mut entries) {
                report.findings.push(Finding::Unreadable {
                    path: rev.snapshot.clone(),
                    message: e.to_string(),
                });
            }
            entries.sort_by(|a, b| a.file_path.cmp(&b.file_path));
            let listing = tree::read(&folder.join("trees").join(format!("{}.json", rev.commit)));
            let mut local: BTreeMap<String, PathBuf> = BTreeMap::new();
            for entry in entries {
                used.push(entry.blob_path.clone());
                let rel = relative_name(&rev.snapshot, &entry.file_path);
                if let Some(rel) = &rel {
                    local.insert(rel.clone(), entry.file_path.clone());
                }
                if fs::metadata(&entry.file_path).is_err() {
                    report.findings.push(Finding::Missing {
                        file_path: entry.file_path,
                        blob_path: entry.blob_path,
                    });
                    continue;
                }
                let expected = expected_digest(&entry, &folder, rel.as_deref(), &listing);
                checks.push(Check {
                    file_path: entry.file_path,
                    blob_path: entry.blob_path,
                    expected,
                });
            }
            if let Some(source) = remote {
                compare_with_hub(source, rev, &local, &mut report, &mut remote_checks)?;
            }
        }
        if selection.revision.is_none() {
            unused_blobs(&folder, &used, &mut checks);
        }
    }
    run_checks(checks, remote_checks, &mut report);
    report.findings.sort_by_key(report::sort_key);
    report.unverifiable.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::layout::CachedRepoType;
    use crate::cache::testutil::{add_file, add_ref, C1, C2};
    use crate::digest::DigestKind;
    use crate::repo::RepoPath;
    use std::cell::Cell;

    use crate::digest::{git_blob_sha1 as git_sha1, sha256_hex as sha256};

    /// A repo with a git-sha1 file, an LFS file (shared by two revisions) and a nested file.
    fn fixture(cache: &Path) -> PathBuf {
        let repo = cache.join("models--org--m");
        let lfs = vec![7u8; 300_000];
        add_file(&repo, C1, "config.json", &git_sha1(b"{}"), b"{}");
        add_file(&repo, C1, "model.safetensors", &sha256(&lfs), &lfs);
        add_file(&repo, C2, "model.safetensors", &sha256(&lfs), &lfs);
        add_file(&repo, C2, "a/b.txt", &git_sha1(b"nested"), b"nested");
        add_ref(&repo, "main", C2);
        repo
    }

    #[test]
    fn clean_cache_passes_and_each_blob_is_hashed_once() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let r = verify(dir.path(), &VerifySelection::default(), None).unwrap();
        assert_eq!(r.findings, vec![]);
        assert_eq!((r.revisions, r.files, r.hashed), (2, 4, 3));
        assert_eq!(r.bytes, 2 + 300_000 + 6);
    }

    #[test]
    fn a_flipped_byte_a_broken_link_and_an_unused_blob() {
        let dir = tempfile::tempdir().unwrap();
        let repo = fixture(dir.path());
        let lfs_blob = repo.join("blobs").join(sha256(&vec![7u8; 300_000]));
        let mut bytes = fs::read(&lfs_blob).unwrap();
        bytes[150_000] ^= 1;
        fs::write(&lfs_blob, bytes).unwrap();
        fs::remove_file(repo.join("blobs").join(git_sha1(b"nested"))).unwrap();
        let unused = repo.join("blobs").join(git_sha1(b"unused"));
        fs::write(&unused, b"unuseD").unwrap();
        let r = verify(dir.path(), &VerifySelection::default(), None).unwrap();
        let corrupt: Vec<&PathBuf> = r
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::Corrupt { file_path, .. } => Some(file_path),
                _ => None,
            })
            .collect();
        assert_eq!(corrupt.len(), 3, "{:?}", r.findings);
        assert!(corrupt.iter().any(|p| p.ends_with(format!("{C1}/model.safetensors"))));
        assert!(corrupt.iter().any(|p| p.ends_with(format!("{C2}/model.safetensors"))));
        assert!(corrupt.contains(&&fs::canonicalize(&unused).unwrap()));
        assert!(r
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Missing { file_path, .. } if file_path.ends_with("a/b.txt"))));
        assert!(r.findings.iter().all(Finding::is_damage));

        // One revision only: C1 (by commit) sees the corrupt LFS file and nothing else.
        let sel = VerifySelection {
            repo: Some((CachedRepoType::Model, "org/m".into())),
            revision: Some(C1.into()),
        };
        let r = verify(dir.path(), &sel, None).unwrap();
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        let sel = VerifySelection {
            repo: Some((CachedRepoType::Model, "org/m".into())),
            revision: Some("nope".into()),
        };
        assert!(matches!(
            verify(dir.path(), &sel, None),
            Err(CacheError::RevisionNotCached { .. })
        ));
    }

    #[test]
    fn copied_files_use_the_tree_listing_or_are_unverifiable() {
        let dir = tempfile::tempdir().unwrap();
        let repo = fixture(dir.path());
        fs::write(repo.join("snapshots").join(C1).join("copy.txt"), b"copied").unwrap();
        let r = verify(dir.path(), &VerifySelection::default(), None).unwrap();
        assert_eq!(r.unverifiable.len(), 1);
        let mut listing = BTreeMap::new();
        listing.insert(
            RepoPath::new("copy.txt").unwrap(),
            tree::TreeFile {
                size: 6,
                blob_id: git_sha1(b"copieD"),
                lfs_sha256: None,
                lfs_size: None,
                xet_hash: None,
            },
        );
        tree::write(&repo.join("trees").join(format!("{C1}.json")), &listing).unwrap();
        let r = verify(dir.path(), &VerifySelection::default(), None).unwrap();
        assert!(r.unverifiable.is_empty());
        assert!(matches!(&r.findings[..], [Finding::Corrupt { file_path, .. }] if file_path.ends_with("copy.txt")));
    }

    struct FakeTrees(BTreeMap<String, Digest>, Cell<usize>);

    impl TreeSource for FakeTrees {
        fn files(&self, _: &Repo, _: &str) -> Result<BTreeMap<String, Digest>, CacheError> {
            self.1.set(self.1.get() + 1);
            Ok(self.0.clone())
        }
    }

    #[test]
    fn remote_listing_missing_extra_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let d = |kind: DigestKind, hex: String| Digest { kind, hex };
        let mut hub = BTreeMap::new();
        hub.insert(
            "model.safetensors".to_string(),
            d(DigestKind::Sha256, sha256(&vec![7u8; 300_000])),
        );
        hub.insert("a/b.txt".to_string(), d(DigestKind::GitSha1, git_sha1(b"other")));
        hub.insert("README.md".to_string(), d(DigestKind::GitSha1, git_sha1(b"readme")));
        let trees = FakeTrees(hub, Cell::new(0));
        let sel = VerifySelection {
            repo: Some((CachedRepoType::Model, "org/m".into())),
            revision: Some("main".into()),
        };
        let r = verify(dir.path(), &sel, Some(&trees)).unwrap();
        assert_eq!(trees.1.get(), 1);
        assert_eq!(r.findings.len(), 2, "{:?}", r.findings);
        assert!(matches!(&r.findings[0], Finding::RemoteMismatch { file_path, .. } if file_path.ends_with("a/b.txt")));
        assert!(matches!(&r.findings[1], Finding::RemoteMissing { path, .. } if path == "README.md"));
        let mut local = BTreeMap::new();
        local.insert("x".to_string(), PathBuf::from("/s/x"));
        let (missing, extra, both) = compare_listing(&local, &BTreeMap::new());
        assert!(missing.is_empty() && both.is_empty());
        assert_eq!(extra, vec!["x".to_string()]);
    }
}
