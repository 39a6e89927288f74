//! `hubcache sync`: make the cache hold exactly what the lock names — online by fetching what
//! is missing at the pinned commits (no per-file HEAD, every blob verified), offline by
//! checking presence and hashes with zero requests.

use std::path::PathBuf;

use super::lockfile::{LockedFile, LockedRepo, Lockfile};
use super::DeployError;
use crate::cache::CacheLayout;
use crate::digest::file_matches_etag;
use crate::download::fanout::{fan_out, memory_weight};
use crate::download::file::KnownFile;
use crate::hub::url;
use crate::repo::Revision;
use crate::Hub;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files the lock names.
    pub files: usize,
    /// Files that were already in the cache.
    pub present: usize,
    /// Files downloaded now.
    pub fetched: usize,
    /// Bytes downloaded now.
    pub fetched_bytes: u64,
}

/// Fetches every locked file missing from the cache and points each revision's ref at its pin.
pub async fn sync(hub: &Hub, lock: &Lockfile, max_workers: usize) -> Result<SyncReport, DeployError> {
    let cache = hub.cache();
    let mut todo = Vec::new();
    let mut report = SyncReport::default();
    for r in &lock.repos {
        let layout = cache.repo(&r.repo);
        for f in &r.files {
            report.files += 1;
            if crate::fs::is_file(&layout.snapshot_file(&r.commit, &f.path)) {
                report.present += 1;
            } else {
                todo.push((r, f));
            }
        }
    }
    let ranged = hub.client().config().ranged;
    let weight = |(_, f): &(&LockedRepo, &LockedFile)| memory_weight(Some(f.size), &ranged);
    let results: Vec<Result<u64, crate::Error>> = fan_out(todo, max_workers, weight, |(r, f)| async move {
        let known = KnownFile {
            commit: r.commit.clone(),
            etag: f.blob.clone(),
            size: Some(f.size),
            location: url::resolve_url(hub.client().endpoint(), &r.repo, r.commit.as_str(), &f.path),
            xet_hash: None,
        };
        hub.fetch_known(&r.repo, None, &f.path, &known, false)
            .await
            .map(|_| f.size)
    })
    .await;
    for r in results {
        report.fetched_bytes += r?;
        report.fetched += 1;
    }
    let writer = hub.writer().await?;
    for r in &lock.repos {
        let layout = cache.repo(&r.repo);
        writer
            .create_snapshot_dir(&layout, &r.commit)
            .map_err(|e| DeployError::io("create", layout.snapshot_dir(&r.commit), e))?;
        if let Revision::Ref(name) = &r.revision {
            writer
                .write_ref(&layout, name, &r.commit)
                .map_err(|e| DeployError::io("write", layout.ref_file(name), e))?;
        }
    }
    Ok(report)
}

/// Checks, without any request, that every locked file is cached and hashes to its blob id.
/// Hashing runs on `threads` threads.
pub fn verify_offline(cache: &CacheLayout, lock: &Lockfile, threads: usize) -> Result<usize, DeployError> {
    let work: Vec<(String, PathBuf, String)> = lock
        .repos
        .iter()
        .flat_map(|r| {
            let layout = cache.repo(&r.repo);
            r.files.iter().map(move |f| {
                (
                    format!("{}: {}", r.repo, f.path),
                    layout.snapshot_file(&r.commit, &f.path),
                    f.blob.clone(),
                )
            })
        })
        .collect();
    // Each file: `None` when fine, else whether it is missing (true) or corrupt (false).
    let problems = crate::pool::parallel_map(&work, threads, |(_, path, blob)| {
        if !crate::fs::is_file(path) {
            return Some(true);
        }
        // A blob id that names no digest cannot be shown intact: as for `cache verify`,
        // that is a failure, not a pass.
        (!matches!(file_matches_etag(path, blob), Ok(Some(true)))).then_some(false)
    });
    let mut missing = Vec::new();
    let mut corrupt = Vec::new();
    for ((label, _, _), problem) in work.iter().zip(problems) {
        match problem {
            Some(true) => missing.push(label.clone()),
            Some(false) => corrupt.push(label.clone()),
            None => {}
        }
    }
    if missing.is_empty() && corrupt.is_empty() {
        return Ok(work.len());
    }
    missing.sort();
    corrupt.sort();
    Err(DeployError::Mismatch { missing, corrupt })
}
