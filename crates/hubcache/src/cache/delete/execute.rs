//! Running a [`DeletePlan`] under the clean-up lock: etag locks, re-checks under them, removals
//! that never leave the cache or follow a link, the shared-store sweep and empty folders.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::plan::DeletePlan;
use crate::cache::error::CacheError;
use crate::cache::layout::{CacheLayout, RepoLayout};
use crate::cache::scan;
use crate::cache::shared_store;
use crate::cache::walk::{self, SnapshotEntry};
use crate::cache::writer::CleanupLock;
use crate::lock::LockedFile;

/// Empty folders younger than this are left alone (a download may be about to fill them).
const EMPTY_DIR_GRACE: Duration = Duration::from_secs(60);
/// Etag locks held at once while re-checking and deleting the blobs of one repo.
const LOCK_BATCH: usize = 128;
/// Why something in the plan was left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// What a clean-up did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecuteReport {
    /// Paths removed (files, links and folders).
    pub removed: usize,
    /// Bytes of regular files removed (payloads included).
    pub freed: u64,
    /// Left in place on purpose.
    pub kept: Vec<Kept>,
    /// Failed removals (missing paths are not failures).
    pub failed: Vec<Kept>,
    /// Empty folders removed.
    pub empty_dirs: usize,
}

impl ExecuteReport {
    fn removed(&mut self, bytes: u64) {
        self.removed += 1;
        self.freed += bytes;
    }

    fn keep(&mut self, path: &Path, reason: impl Into<String>) {
        self.kept.push(Kept {
            path: path.to_path_buf(),
            reason: reason.into(),
        });
    }

    fn fail(&mut self, path: &Path, e: &io::Error) {
        self.failed.push(Kept {
            path: path.to_path_buf(),
            reason: e.to_string(),
        });
    }
}

/// Sum of the regular files under `path` (links not followed, not counted).
fn regular_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| regular_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// Removes `path` (a file or link as itself, a folder with its content, never following links)
/// after checking that it lies inside `cache_dir`; returns the regular bytes removed.
fn safe_remove(cache_dir: &Path, path: &Path) -> io::Result<u64> {
    let outside = || io::Error::other(format!("refusing to delete {}: not inside the cache", path.display()));
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(outside());
    };
    let parent = fs::canonicalize(parent)?;
    if !parent.starts_with(cache_dir) {
        return Err(outside());
    }
    let target = parent.join(name);
    if target == cache_dir {
        return Err(outside());
    }
    let meta = fs::symlink_metadata(&target)?;
    let bytes = regular_bytes(&target);
    if meta.is_dir() {
        fs::remove_dir_all(&target)?;
    } else {
        fs::remove_file(&target)?;
    }
    Ok(bytes)
}

/// The repo folder name and etag a `blobs/` entry belongs to (`<etag>[.<…>]`).
fn blob_owner(path: &Path) -> Option<(String, String)> {
    let name = path.file_name()?.to_str()?;
    let etag = name.split('.').next().filter(|e| !e.is_empty())?;
    let blobs = path.parent()?;
    if blobs.file_name()? != "blobs" {
        return None;
    }
    let folder = blobs.parent()?.file_name()?.to_str()?;
    Some((folder.to_string(), etag.to_string()))
}

fn remove_into(report: &mut ExecuteReport, cache_dir: &Path, path: &Path) {
    match safe_remove(cache_dir, path) {
        Ok(bytes) => report.removed(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => report.fail(path, &e),
    }
}

/// Runs a plan (made under `lock`, see [`DeletePlan::restricted_to`]); `on_wait` hears about
/// every lock we wait for.
pub fn execute(
    plan: &DeletePlan,
    _lock: &CleanupLock,
    on_wait: &dyn Fn(&Path, Duration),
) -> Result<ExecuteReport, CacheError> {
    let cache = scan::resolve_cache_dir(&plan.cache_dir)?;
    let layout = CacheLayout::new(&cache);
    let mut report = ExecuteReport::default();
    for repo in &plan.repos {
        wait_for_repo_downloads(&layout, repo, on_wait)?;
        remove_into(&mut report, &cache, repo);
    }
    for snapshot in &plan.snapshots {
        remove_into(&mut report, &cache, snapshot);
    }
    for r in &plan.refs {
        // A ref's 40 bytes are not counted as freed (Python's expected size ignores them).
        let before = report.freed;
        remove_into(&mut report, &cache, r);
        report.freed = before;
    }
    let mut by_repo: BTreeMap<PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for blob in &plan.blobs {
        match blob.parent().and_then(Path::parent) {
            Some(repo) => by_repo.entry(repo.to_path_buf()).or_default().push(blob),
            None => report.keep(blob, "not inside a repo's blobs/ folder"),
        }
    }
    for (repo, blobs) in by_repo {
        for batch in blobs.chunks(LOCK_BATCH) {
            remove_blobs(&layout, &repo, batch, on_wait, &mut report)?;
        }
    }
    for file in &plan.incomplete {
        remove_incomplete(&layout, file, &mut report)?;
    }
    for payload in &plan.shared_payloads {
        let freed = shared_store::sweep(payload, &cache, on_wait)?;
        if freed > 0 {
            report.removed(freed);
        }
    }
    if plan.empty_dirs {
        remove_empty_dirs(&cache, &mut report);
    }
    Ok(report)
}

/// Waits until no download holds any etag lock of the repo (each lock free once).
fn wait_for_repo_downloads(
    layout: &CacheLayout,
    repo: &Path,
    on_wait: &dyn Fn(&Path, Duration),
) -> Result<(), CacheError> {
    let Some(folder) = repo.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    let locks_dir = layout.root().join(".locks").join(folder);
    let Ok(entries) = fs::read_dir(&locks_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let is_lock =
            entry.file_name().to_string_lossy().ends_with(".lock") && entry.file_type().is_ok_and(|t| t.is_file());
        if is_lock {
            drop(LockedFile::acquire_blocking(&entry.path(), Duration::MAX, on_wait)?);
        }
    }
    Ok(())
}

/// Deletes a batch of one repo's blobs while holding their etag locks, after checking again
/// (under the locks) that no snapshot links to them.
fn remove_blobs(
    layout: &CacheLayout,
    repo: &Path,
    blobs: &[&PathBuf],
    on_wait: &dyn Fn(&Path, Duration),
    report: &mut ExecuteReport,
) -> Result<(), CacheError> {
    let mut held = Vec::with_capacity(blobs.len());
    for blob in blobs {
        match blob_owner(blob) {
            Some((folder, etag)) => {
                let lock = LockedFile::acquire_blocking(&layout.etag_lock(&folder, &etag), Duration::MAX, on_wait)?;
                held.push((blob, lock));
            }
            None => report.keep(blob, "not a blob name"),
        }
    }
    let mut entries: Vec<SnapshotEntry> = Vec::new();
    if let Ok(revs) = fs::read_dir(RepoLayout::from_folder(repo).snapshots_dir()) {
        for rev in revs.flatten() {
            // Follow links: a linked revision folder is a revision too (Python scans it).
            if fs::metadata(rev.path()).is_ok_and(|m| m.is_dir()) {
                // An unreadable snapshot could hide a link: keep everything then.
                if let Err(e) = walk::walk_snapshot(&rev.path(), &mut entries) {
                    for (blob, _) in &held {
                        report.keep(blob, format!("cannot check {}: {e}", rev.path().display()));
                    }
                    return Ok(());
                }
            }
        }
    }
    let used_paths: HashSet<&Path> = entries.iter().map(|e| e.blob_path.as_path()).collect();
    let used_ids = walk::referenced_identities(used_paths.iter().copied());
    for (blob, _lock) in &held {
        let used = used_paths.contains(blob.as_path())
            || walk::identities(blob)
                .into_iter()
                .flatten()
                .any(|id| used_ids.contains(&id));
        if used {
            report.keep(blob, "a snapshot links to it now");
        } else {
            remove_into(report, layout.root(), blob);
        }
    }
    Ok(())
}

/// Deletes a `.incomplete` file unless a download holds its etag lock.
fn remove_incomplete(layout: &CacheLayout, file: &Path, report: &mut ExecuteReport) -> Result<(), CacheError> {
    let Some((folder, etag)) = blob_owner(file) else {
        report.keep(file, "not a blob name");
        return Ok(());
    };
    if fs::symlink_metadata(file).is_err() {
        return Ok(());
    }
    match LockedFile::try_acquire(&layout.etag_lock(&folder, &etag))? {
        Some(_lock) => remove_into(report, layout.root(), file),
        None => report.keep(file, "a running download is writing it"),
    }
    Ok(())
}

fn is_old(meta: &fs::Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age >= EMPTY_DIR_GRACE)
}

/// Removes empty folders under `dir` (not `dir` itself), bottom-up; true when `dir` is left empty.
fn prune_empty_under(dir: &Path, report: &mut ExecuteReport) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            empty = false;
            continue;
        }
        // Age first: emptying the child below touches its mtime.
        let was_old = fs::symlink_metadata(&path).is_ok_and(|m| is_old(&m));
        let child_empty = prune_empty_under(&path, report);
        if child_empty && was_old && fs::remove_dir(&path).is_ok() {
            report.empty_dirs += 1;
        } else {
            empty = false;
        }
    }
    empty
}

/// Whether a folder holds no files or links at any depth.
fn holds_no_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .all(|e| e.file_type().is_ok_and(|t| t.is_dir()) && holds_no_files(&e.path()))
    })
}

/// Empty folders: repo folders without a single file, and empty sub-folders of snapshots,
/// refs and `.no_exist` (revision folders themselves are revisions and stay).
fn remove_empty_dirs(cache: &Path, report: &mut ExecuteReport) {
    let Ok(roots) = fs::read_dir(cache) else { return };
    for root in roots.flatten() {
        let path = root.path();
        let name = root.file_name().to_string_lossy().into_owned();
        if scan::parse_folder_name(&name).is_none() || !root.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if holds_no_files(&path) {
            let newest_is_old = fs::symlink_metadata(&path).is_ok_and(|m| is_old(&m));
            if newest_is_old && prune_empty_under(&path, report) && fs::remove_dir(&path).is_ok() {
                report.empty_dirs += 1;
            }
            continue;
        }
        let repo = RepoLayout::from_folder(&path);
        if let Ok(revs) = fs::read_dir(repo.snapshots_dir()) {
            for rev in revs.flatten().filter(|r| r.file_type().is_ok_and(|t| t.is_dir())) {
                prune_empty_under(&rev.path(), report);
            }
        }
        prune_empty_under(&repo.refs_dir(), report);
        if prune_empty_under(&path.join(".no_exist"), report) {
            let _ = fs::remove_dir(path.join(".no_exist"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::delete::{plan_prune, plan_revisions, resolve_targets, select_commits, RevisionKey, Target};
    use crate::cache::scan::{scan, CacheInfo, CachedRepoType};
    use crate::cache::testutil::{add_ref, two_revisions, C1, C2};
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;

    fn commits(info: &CacheInfo, items: &[&str]) -> BTreeSet<RevisionKey> {
        select_commits(info, &items.iter().map(|s| s.to_string()).collect())
    }

    fn no_wait(_: &Path, _: Duration) {}

    #[test]
    fn copied_files_count_but_are_not_blobs_and_foreign_blobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = two_revisions(dir.path());
        fs::write(repo.join("snapshots").join(C1).join("copy.txt"), b"12345").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim"), b"precious").unwrap();
        symlink(
            outside.path().join("victim"),
            repo.join("snapshots").join(C1).join("abs"),
        )
        .unwrap();
        let info = scan(dir.path()).unwrap();
        let plan = plan_revisions(&info, &commits(&info, &[C1]));
        assert_eq!(plan.blobs.len(), 1);
        assert_eq!(plan.refused.len(), 1);
        assert_eq!(plan.expected_freed_size, 10 + 5);
        let lock = CleanupLock::acquire(dir.path(), &no_wait).unwrap();
        let report = execute(&plan, &lock, &no_wait).unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(fs::read(outside.path().join("victim")).unwrap(), b"precious");
        let after = scan(dir.path()).unwrap();
        assert!(after.warnings.is_empty());
        assert_eq!(after.repos[0].revisions.len(), 1);
    }

    #[test]
    fn prune_plans_detached_orphans_incomplete_and_executes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let repo = two_revisions(dir.path());
        fs::write(repo.join("blobs/e9"), b"orphan").unwrap();
        fs::write(repo.join("blobs/e1.0a1b2c3d.incomplete"), b"part").unwrap();
        fs::write(repo.join("blobs/e3.deadbeef.incomplete"), b"live").unwrap();
        let info = scan(dir.path()).unwrap();
        let plan = plan_prune(&info);
        assert_eq!(plan.counts(), (0, 1));
        assert_eq!(plan.orphan_blobs, 1);
        assert_eq!(plan.incomplete.len(), 2);
        assert_eq!(plan.expected_freed_size, 10 + 6 + 4 + 4);
        // A download holds e3's lock: its temp file must survive.
        let cache = fs::canonicalize(dir.path()).unwrap();
        let busy = LockedFile::try_acquire(&CacheLayout::new(&cache).etag_lock("models--org--m", "e3"))
            .unwrap()
            .unwrap();
        let lock = CleanupLock::acquire(dir.path(), &no_wait).unwrap();
        let report = execute(&plan, &lock, &no_wait).unwrap();
        drop(busy);
        assert!(repo.join("blobs/e3.deadbeef.incomplete").exists());
        assert!(!repo.join("blobs/e1.0a1b2c3d.incomplete").exists());
        assert!(!repo.join("blobs/e9").exists() && !repo.join("blobs/e2").exists());
        assert!(repo.join("blobs/e1").exists() && repo.join("blobs/e3").exists());
        assert_eq!(report.kept.len(), 1, "{:?}", report.kept);
        assert!(report.kept[0].reason.contains("download"));
        let after = scan(dir.path()).unwrap();
        assert!(after.warnings.is_empty(), "{:?}", after.warnings);
        assert_eq!(after.repos[0].revisions.len(), 1);
    }

    #[test]
    fn a_blob_linked_after_planning_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let repo = two_revisions(dir.path());
        let info = scan(dir.path()).unwrap();
        let plan = plan_revisions(&info, &commits(&info, &[C1]));
        assert!(plan.blobs.contains(&info.repos[0].repo_path.join("blobs/e2")));
        // Another process links e2 into C2 between planning and execution.
        symlink("../../blobs/e2", repo.join("snapshots").join(C2).join("late.bin")).unwrap();
        let lock = CleanupLock::acquire(dir.path(), &no_wait).unwrap();
        let report = execute(&plan, &lock, &no_wait).unwrap();
        assert!(repo.join("blobs/e2").exists());
        assert_eq!(report.kept.len(), 1);
        assert!(scan(dir.path()).unwrap().warnings.is_empty());
    }

    #[test]
    fn symlinked_repo_folder_is_unlinked_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let real = two_revisions(elsewhere.path());
        symlink(&real, dir.path().join("models--org--m")).unwrap();
        let info = scan(dir.path()).unwrap();
        let plan = plan_revisions(&info, &commits(&info, &[C1, C2]));
        let lock = CleanupLock::acquire(dir.path(), &no_wait).unwrap();
        execute(&plan, &lock, &no_wait).unwrap();
        assert!(!dir.path().join("models--org--m").exists());
        assert!(real.join("blobs/e1").exists(), "the link goes, not its target");
    }

    #[test]
    fn empty_folders_and_restriction() {
        let dir = tempfile::tempdir().unwrap();
        let repo = two_revisions(dir.path());
        fs::create_dir_all(dir.path().join("models--empty--repo/blobs")).unwrap();
        fs::create_dir_all(repo.join("snapshots").join(C2).join("gone/deeper")).unwrap();
        fs::create_dir_all(repo.join("refs/refs/pr")).unwrap();
        // Age everything past the grace period.
        let old = SystemTime::now() - Duration::from_secs(3600);
        for p in [
            dir.path().join("models--empty--repo/blobs"),
            dir.path().join("models--empty--repo"),
            repo.join("snapshots").join(C2).join("gone/deeper"),
            repo.join("snapshots").join(C2).join("gone"),
            repo.join("refs/refs/pr"),
            repo.join("refs/refs"),
        ] {
            fs::File::open(&p).unwrap().set_modified(old).unwrap();
        }
        let info = scan(dir.path()).unwrap();
        assert_eq!(info.warnings.len(), 1, "no snapshots/ in the empty repo");
        let shown = plan_prune(&info);
        let mut replanned = shown.clone();
        replanned.blobs.insert(repo.join("blobs/e1"));
        let run = replanned.restricted_to(&shown);
        assert!(!run.blobs.contains(&repo.join("blobs/e1")), "never more than shown");
        let lock = CleanupLock::acquire(dir.path(), &no_wait).unwrap();
        let report = execute(&run, &lock, &no_wait).unwrap();
        assert!(report.empty_dirs >= 4, "{report:?}");
        assert!(!dir.path().join("models--empty--repo").exists());
        assert!(!repo.join("snapshots").join(C2).join("gone").exists());
        assert!(repo.join("refs").is_dir() && repo.join("snapshots").join(C2).is_dir());
        let after = scan(dir.path()).unwrap();
        assert!(after.warnings.is_empty(), "{:?}", after.warnings);
    }

    #[test]
    fn shared_store_links_go_payloads_only_when_unreferenced() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        let xet = format!("ab{}", "0".repeat(62));
        let payload =
            shared_store::tests::shared_fixture(c, &xet, b"0123456789", "s1", &["models--o--a", "models--o--b"]);
        for name in ["models--o--a", "models--o--b"] {
            let repo = c.join(name);
            fs::create_dir_all(repo.join("snapshots").join(C1)).unwrap();
            symlink("../../blobs/s1", repo.join("snapshots").join(C1).join("w.bin")).unwrap();
            add_ref(&repo, "main", C1);
        }
        let info = scan(c).unwrap();
        let a = resolve_targets(
            &info,
            &[("o/a".into(), Target::parse("o/a", CachedRepoType::Model).unwrap())],
        );
        assert_eq!(a.revisions.len(), 1, "only o/a, although o/b has the same commit");
        let plan = plan_revisions(&info, &a.revisions);
        assert_eq!(plan.expected_freed_size, 0, "b still references the payload");
        let lock = CleanupLock::acquire(c, &no_wait).unwrap();
        execute(&plan, &lock, &no_wait).unwrap();
        assert!(payload.exists());
        let info = scan(c).unwrap();
        assert_eq!(info.size_on_disk, 10);
        let plan = plan_revisions(&info, &commits(&info, &[C1]));
        assert_eq!(plan.expected_freed_size, 10, "the last reference frees the payload");
        let report = execute(&plan, &lock, &no_wait).unwrap();
        assert!(!payload.exists());
        assert!(report.freed >= 10);
        assert_eq!(scan(c).unwrap().size_on_disk, 0);
    }
}
