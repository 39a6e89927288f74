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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::error::CacheError;
use super::layout::RepoLayout;
use super::lookup;
use super::scan::{self, CachedRepoType};
use super::tree;
use super::walk::{self, SnapshotEntry};
pub use crate::digest::Digest;
use crate::digest::{hash_file, DigestKind};
use crate::repo::{Repo, RepoId, RepoPath, RepoType, Revision};

/// Which part of the cache to verify.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifySelection {
    /// One repo (type and id); `None` verifies every repo.
    pub repo: Option<(CachedRepoType, String)>,
    /// One revision of that repo (a ref or a commit); `None` verifies all of them.
    pub revision: Option<String>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The content does not hash to what it should.
    Corrupt {
        /// The snapshot entry (or the blob, for a blob no snapshot uses).
        file_path: PathBuf,
        /// The blob it reads through.
        blob_path: PathBuf,
        /// What it should hash to.
        expected: Digest,
        /// What it hashes to.
        actual: String,
    },
    /// The snapshot entry's blob is gone.
    Missing {
        /// The snapshot entry.
        file_path: PathBuf,
        /// The blob it points at.
        blob_path: PathBuf,
    },
    /// A file or folder could not be read.
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The Hub lists a file that the snapshot does not have.
    RemoteMissing {
        /// `type/id`.
        repo: String,
        /// The commit.
        commit: String,
        /// Path in the repo.
        path: String,
    },
    /// The snapshot has a file that the Hub does not list.
    RemoteExtra {
        /// `type/id`.
        repo: String,
        /// The commit.
        commit: String,
        /// Path in the repo.
        path: String,
    },
    /// The local content does not hash to the Hub's digest.
    RemoteMismatch {
        /// The snapshot entry.
        file_path: PathBuf,
        /// The Hub's digest.
        expected: Digest,
        /// What the local content hashes to.
        actual: String,
    },
}

impl Finding {
    /// Whether this finding is a broken or corrupt file (always a failure), as opposed to a
    /// difference in the set of files (missing/extra against the Hub).
    pub fn is_damage(&self) -> bool {
        !matches!(self, Finding::RemoteMissing { .. } | Finding::RemoteExtra { .. })
    }
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Revisions looked at.
    pub revisions: usize,
    /// Files (snapshot entries and unused blobs) checked against a digest.
    pub files: usize,
    /// Distinct contents hashed.
    pub hashed: usize,
    /// Bytes read while hashing.
    pub bytes: u64,
    /// Files with nothing to compare with (no blob name, no listing).
    pub unverifiable: Vec<PathBuf>,
    /// Problems, sorted.
    pub findings: Vec<Finding>,
}

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

/// One selected revision.
struct RevisionToCheck {
    repo_type: CachedRepoType,
    repo_id: String,
    commit: String,
    snapshot: PathBuf,
}

/// One file to check: where it is, what it reads through, what it should hash to.
struct Check {
    file_path: PathBuf,
    blob_path: PathBuf,
    expected: Option<Digest>,
}

/// Resolves the selection to repo folders and revisions.
fn select(cache: &Path, sel: &VerifySelection) -> Result<Vec<(PathBuf, Vec<RevisionToCheck>)>, CacheError> {
    let folders: Vec<PathBuf> = match &sel.repo {
        Some((t, id)) => {
            let folder = cache.join(t.folder_name(id));
            if !folder.join("snapshots").is_dir() {
                return Err(CacheError::RepoNotCached {
                    repo: format!("{t}/{id}"),
                    cache: cache.to_path_buf(),
                });
            }
            vec![folder]
        }
        None => {
            let mut v: Vec<PathBuf> = fs::read_dir(cache)
                .map_err(|e| CacheError::io("read", cache, e))?
                .flatten()
                .filter(|e| {
                    scan::parse_folder_name(&e.file_name().to_string_lossy()).is_some()
                        && e.path().join("snapshots").is_dir()
                })
                .map(|e| e.path())
                .collect();
            v.sort();
            v
        }
    };
    let mut out = Vec::new();
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((repo_type, repo_id)) = scan::parse_folder_name(&name) else {
            continue;
        };
        let snapshots = folder.join("snapshots");
        let commits: Vec<String> = match &sel.revision {
            Some(rev) => vec![
                resolve_revision(&folder, rev).ok_or_else(|| CacheError::RevisionNotCached {
                    repo: format!("{repo_type}/{repo_id}"),
                    revision: rev.clone(),
                })?,
            ],
            None => {
                let mut v: Vec<String> = fs::read_dir(&snapshots)
                    .map_err(|e| CacheError::io("read", &snapshots, e))?
                    .flatten()
                    .filter(|e| fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            }
        };
        let revisions = commits
            .into_iter()
            .map(|commit| RevisionToCheck {
                repo_type,
                repo_id: repo_id.clone(),
                snapshot: snapshots.join(&commit),
                commit,
            })
            .collect();
        out.push((folder, revisions));
    }
    Ok(out)
}

/// A ref (content trimmed, as `hf cache verify` reads it) or a commit with a snapshot folder.
fn resolve_revision(folder: &Path, rev: &str) -> Option<String> {
    let layout = RepoLayout::from_folder(folder);
    let commit = lookup::resolve_commit(&layout, &Revision::new(rev).ok()?)?;
    layout.snapshot_dir(&commit).is_dir().then(|| commit.to_string())
}

/// The repo-relative path of a snapshot entry (`a/b.txt`).
fn relative_name(snapshot: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(snapshot).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()?;
    Some(parts.join("/"))
}

/// What a snapshot entry should hash to: its blob's name, else the commit's cached listing.
fn expected_digest(
    entry: &SnapshotEntry,
    repo: &Path,
    rel: Option<&str>,
    listing: &Option<BTreeMap<RepoPath, tree::TreeFile>>,
) -> Option<Digest> {
    let in_blobs = entry.blob_path.parent() == Some(repo.join("blobs").as_path());
    if entry.blob_path != entry.file_path && in_blobs {
        if let Some(d) = entry
            .blob_path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(Digest::from_etag)
        {
            return Some(d);
        }
    }
    let path = RepoPath::new(rel?).ok()?;
    Digest::from_etag(listing.as_ref()?.get(&path)?.etag())
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
    for (folder, revisions) in select(&cache, selection)? {
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
    report.findings.sort_by_key(sort_key);
    report.unverifiable.sort();
    Ok(report)
}

/// Blobs of `blobs/` that no snapshot uses are checked against their names too.
fn unused_blobs(folder: &Path, used: &[PathBuf], checks: &mut Vec<Check>) {
    let Ok(entries) = fs::read_dir(folder.join("blobs")) else {
        return;
    };
    let used_paths: BTreeSet<&PathBuf> = used.iter().collect();
    let used_ids = walk::referenced_identities(used.iter().map(PathBuf::as_path));
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_blob = walk::is_blob_name(&name) && fs::metadata(&path).is_ok_and(|m| m.is_file());
        if !is_blob || used_paths.contains(&path) {
            continue;
        }
        if walk::identities(&path)
            .into_iter()
            .flatten()
            .any(|id| used_ids.contains(&id))
        {
            continue;
        }
        checks.push(Check {
            file_path: path.clone(),
            blob_path: path,
            expected: Digest::from_etag(&name),
        });
    }
}

/// Compares one snapshot with the Hub's listing of its commit.
fn compare_with_hub(
    source: &dyn TreeSource,
    rev: &RevisionToCheck,
    local: &BTreeMap<String, PathBuf>,
    report: &mut VerifyReport,
    remote_checks: &mut Vec<(PathBuf, Digest)>,
) -> Result<(), CacheError> {
    let cache_id = format!("{}/{}", rev.repo_type, rev.repo_id);
    let repo_type = match rev.repo_type {
        CachedRepoType::Model => RepoType::Model,
        CachedRepoType::Dataset => RepoType::Dataset,
        CachedRepoType::Space => RepoType::Space,
        CachedRepoType::Kernel => {
            return Err(CacheError::RemoteUnsupported {
                repo: cache_id,
                reason: "kernel repos have no tree listing API here".into(),
            })
        }
    };
    let id = RepoId::new(&rev.repo_id).map_err(|e| CacheError::RemoteUnsupported {
        repo: cache_id.clone(),
        reason: e.to_string(),
    })?;
    let listing = source.files(&Repo::new(id, repo_type), &rev.commit)?;
    let (missing, extra, both) = compare_listing(local, &listing);
    for path in missing {
        report.findings.push(Finding::RemoteMissing {
            repo: cache_id.clone(),
            commit: rev.commit.clone(),
            path,
        });
    }
    for path in extra {
        report.findings.push(Finding::RemoteExtra {
            repo: cache_id.clone(),
            commit: rev.commit.clone(),
            path,
        });
    }
    for (file, digest) in both {
        remote_checks.push((file, digest));
    }
    Ok(())
}

/// Splits local files and the Hub's listing into missing, extra, and pairs to compare (pure).
pub fn compare_listing(
    local: &BTreeMap<String, PathBuf>,
    remote: &BTreeMap<String, Digest>,
) -> (Vec<String>, Vec<String>, Vec<(PathBuf, Digest)>) {
    let missing = remote.keys().filter(|p| !local.contains_key(*p)).cloned().collect();
    let extra = local.keys().filter(|p| !remote.contains_key(*p)).cloned().collect();
    let both = local
        .iter()
        .filter_map(|(p, file)| remote.get(p).map(|d| (file.clone(), d.clone())))
        .collect();
    (missing, extra, both)
}

/// Hashes every distinct (content, algorithm) once, in parallel, and records the findings.
fn run_checks(checks: Vec<Check>, remote_checks: Vec<(PathBuf, Digest)>, report: &mut VerifyReport) {
    // Contents are keyed by the first hop: all files that share a blob share one hash.
    let mut jobs: Vec<(PathBuf, DigestKind)> = Vec::new();
    let mut index: HashMap<(PathBuf, DigestKind), usize> = HashMap::new();
    let mut job_of = |path: &Path, d: &Digest| -> usize {
        *index.entry((path.to_path_buf(), d.kind)).or_insert_with(|| {
            jobs.push((path.to_path_buf(), d.kind));
            jobs.len() - 1
        })
    };
    let mut wanted = Vec::new();
    for c in checks {
        match &c.expected {
            Some(d) => {
                let job = job_of(&c.blob_path, d);
                wanted.push((c, job));
            }
            None => report.unverifiable.push(c.file_path),
        }
    }
    let remote_wanted: Vec<(PathBuf, Digest, usize)> = remote_checks
        .into_iter()
        .map(|(file, d)| {
            let job = job_of(&file, &d);
            (file, d, job)
        })
        .collect();
    let results = crate::pool::parallel_map(&jobs, crate::pool::io_threads(), |(path, kind)| {
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        hash_file(path, *kind).map(|d| (d, size))
    });
    report.hashed = jobs.len();
    report.bytes = results.iter().filter_map(|r| r.as_ref().ok()).map(|(_, s)| s).sum();
    let mut unreadable_reported = BTreeSet::new();
    for (c, job) in wanted {
        report.files += 1;
        let Some(expected) = c.expected else { continue };
        match &results[job] {
            Ok((actual, _)) if expected.matches(actual) => {}
            Ok((actual, _)) => report.findings.push(Finding::Corrupt {
                file_path: c.file_path,
                blob_path: c.blob_path,
                expected,
                actual: actual.clone(),
            }),
            Err(e) => {
                if unreadable_reported.insert(jobs[job].0.clone()) {
                    report.findings.push(Finding::Unreadable {
                        path: c.file_path,
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    for (file, expected, job) in remote_wanted {
        if let Ok((actual, _)) = &results[job] {
            if !expected.matches(actual) {
                report.findings.push(Finding::RemoteMismatch {
                    file_path: file,
                    expected,
                    actual: actual.clone(),
                });
            }
        }
    }
}

fn sort_key(f: &Finding) -> (u8, String) {
    match f {
        Finding::Corrupt { file_path, .. } => (0, file_path.to_string_lossy().into_owned()),
        Finding::Missing { file_path, .. } => (1, file_path.to_string_lossy().into_owned()),
        Finding::Unreadable { path, .. } => (2, path.to_string_lossy().into_owned()),
        Finding::RemoteMismatch { file_path, .. } => (3, file_path.to_string_lossy().into_owned()),
        Finding::RemoteMissing { repo, commit, path } => (4, format!("{repo}@{commit}/{path}")),
        Finding::RemoteExtra { repo, commit, path } => (5, format!("{repo}@{commit}/{path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testutil::{add_file, add_ref, C1, C2};
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
