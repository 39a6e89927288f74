//! The checks: what each file should hash to, the comparison with the Hub's listing, and the
//! hashing of every distinct content once, in parallel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::report::{Finding, VerifyReport};
use super::select::RevisionToCheck;
use super::TreeSource;
use crate::cache::error::CacheError;
use crate::cache::layout::{CachedRepoType, RepoLayout};
use crate::cache::tree;
use crate::cache::walk::{self, SnapshotEntry};
use crate::digest::{hash_file, Digest, DigestKind};
use crate::repo::{Repo, RepoId, RepoPath, RepoType};

/// One file to check: where it is, what it reads through, what it should hash to.
pub(super) struct Check {
    pub(super) file_path: PathBuf,
    pub(super) blob_path: PathBuf,
    pub(super) expected: Option<Digest>,
}

/// The repo-relative path of a snapshot entry (`a/b.txt`).
pub(super) fn relative_name(snapshot: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(snapshot).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()?;
    Some(parts.join("/"))
}

/// What a snapshot entry should hash to: its blob's name, else the commit's cached listing.
pub(super) fn expected_digest(
    entry: &SnapshotEntry,
    repo: &Path,
    rel: Option<&str>,
    listing: &Option<BTreeMap<RepoPath, tree::TreeFile>>,
) -> Option<Digest> {
    let in_blobs = entry.blob_path.parent() == Some(RepoLayout::from_folder(repo).blobs_dir().as_path());
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

/// Blobs of `blobs/` that no snapshot uses are checked against their names too.
pub(super) fn unused_blobs(folder: &Path, used: &[PathBuf], checks: &mut Vec<Check>) {
    let Ok(entries) = fs::read_dir(RepoLayout::from_folder(folder).blobs_dir()) else {
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
pub(super) fn compare_with_hub(
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
pub(super) fn run_checks(checks: Vec<Check>, remote_checks: Vec<(PathBuf, Digest)>, report: &mut VerifyReport) {
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
