//! Removing revisions, repos and leftovers: a pure plan first, then its execution.
//!
//! **Plan** ([`plan_revisions`], [`plan_prune`]; pure over a [`CacheInfo`]): huggingface_hub's
//! `delete_revisions` rules — every revision of a repo selected → the whole repo folder; else
//! each selected snapshot folder, its refs, and each of its blobs that no remaining revision
//! uses (a copied file inside the snapshot only counts its size). Bytes freed are Python's
//! `expected_freed_size`, shared-store aware: a store link frees its payload only when every
//! valid manifest reference is being deleted. `prune` adds detached revisions (no ref), blobs
//! no snapshot uses, every `*.incomplete`, unreferenced store payloads and empty folders.
//!
//! **Execute** ([`execute`]) in Python's order — repos → snapshots → refs → blobs → incomplete
//! files → shared-store sweep → empty folders — so no ref or link ever points at a missing blob
//! mid-way. Safety beside running downloads:
//! - it needs a [`CleanupLock`]: `.locks/hubcache-gc.lock` taken *exclusive* (waiting, with a
//!   message, while hubcache downloads hold it shared); callers re-scan and re-plan under it and
//!   run only what was shown ([`DeletePlan::restricted_to`]);
//! - Python does not know that lock, so every blob is deleted only while its
//!   `.locks/<repo>/<etag>.lock` is held (waiting for it), after re-checking under it that no
//!   snapshot links to the blob; an `.incomplete` file whose lock is busy is being written and
//!   is kept; a whole repo is removed only after each of its etag locks was free once;
//! - nothing outside the cache is touched: each path's parent is resolved and must lie inside
//!   the cache, a blob must sit directly in its own repo's `blobs/`, and links are removed as
//!   links (never their targets; store payloads go only through [`shared_store::sweep`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::CacheError;
use super::layout::CacheLayout;
use super::scan::{self, CacheInfo, CachedRepoType, RepoInfo};
use super::shared_store;
use super::walk::{self, SnapshotEntry};
use crate::lock::LockedFile;

/// Empty folders younger than this are left alone (a download may be about to fill them).
const EMPTY_DIR_GRACE: Duration = Duration::from_secs(60);
/// Etag locks held at once while re-checking and deleting the blobs of one repo.
const LOCK_BATCH: usize = 128;

/// A revision chosen for deletion, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedRevision {
    /// The commit.
    pub commit_hash: String,
    /// Its refs (empty: detached).
    pub refs: Vec<String>,
    /// Its size (sum of its distinct blobs).
    pub size_on_disk: u64,
}

/// What a plan removes from one repo, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `type/id`.
    pub cache_id: String,
    /// Every revision goes: the whole folder is removed.
    pub whole_repo: bool,
    /// The revisions removed.
    pub revisions: Vec<SelectedRevision>,
}

/// Everything one clean-up removes, and the bytes it frees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeletePlan {
    /// The cache (resolved).
    pub cache_dir: PathBuf,
    /// Whole repo folders.
    pub repos: BTreeSet<PathBuf>,
    /// Snapshot folders.
    pub snapshots: BTreeSet<PathBuf>,
    /// Ref files.
    pub refs: BTreeSet<PathBuf>,
    /// Per-repo blobs (`<repo>/blobs/<etag>`, a file or a shared-store link).
    pub blobs: BTreeSet<PathBuf>,
    /// `*/blobs/*.incomplete` files (prune).
    pub incomplete: BTreeSet<PathBuf>,
    /// Store payloads to sweep afterwards (collected only if their manifest allows it).
    pub shared_payloads: BTreeSet<PathBuf>,
    /// Remove empty folders at the end (prune).
    pub empty_dirs: bool,
    /// Bytes freed, as huggingface_hub computes `expected_freed_size` (plus prune's extras).
    pub expected_freed_size: u64,
    /// Per repo, what goes (for display), sorted by `type/id`.
    pub selections: Vec<Selection>,
    /// Revisions asked for that are not cached.
    pub not_found: Vec<String>,
    /// Blobs the plan refuses to delete (outside their repo's `blobs/`), with the reason.
    pub refused: Vec<(PathBuf, String)>,
    /// Orphan blobs removed by prune (count, for display).
    pub orphan_blobs: usize,
}

impl DeletePlan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.repos.is_empty()
            && self.snapshots.is_empty()
            && self.refs.is_empty()
            && self.blobs.is_empty()
            && self.incomplete.is_empty()
            && self.shared_payloads.is_empty()
    }

    /// Repos removed whole, and revisions removed in total.
    pub fn counts(&self) -> (usize, usize) {
        let repos = self.selections.iter().filter(|s| s.whole_repo).count();
        let revisions = self.selections.iter().map(|s| s.revisions.len()).sum();
        (repos, revisions)
    }

    /// The part of `self` (re-planned under the lock) that `shown` (what the user saw) also
    /// lists: a clean-up never removes more than it announced, nor anything that became used.
    pub fn restricted_to(&self, shown: &DeletePlan) -> DeletePlan {
        let both = |a: &BTreeSet<PathBuf>, b: &BTreeSet<PathBuf>| a.intersection(b).cloned().collect();
        DeletePlan {
            cache_dir: self.cache_dir.clone(),
            repos: both(&self.repos, &shown.repos),
            snapshots: both(&self.snapshots, &shown.snapshots),
            refs: both(&self.refs, &shown.refs),
            blobs: both(&self.blobs, &shown.blobs),
            incomplete: both(&self.incomplete, &shown.incomplete),
            shared_payloads: both(&self.shared_payloads, &shown.shared_payloads),
            empty_dirs: self.empty_dirs && shown.empty_dirs,
            expected_freed_size: shown.expected_freed_size.min(self.expected_freed_size),
            selections: shown.selections.clone(),
            not_found: shown.not_found.clone(),
            refused: self.refused.clone(),
            orphan_blobs: shown.orphan_blobs,
        }
    }
}

/// What `cache rm` was asked to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A 40-hex commit, in whichever repo has it.
    Commit(String),
    /// A whole repo (`org/name`, or `type/org/name`).
    Repo {
        /// Type from `--repo-type`.
        repo_type: CachedRepoType,
        /// The id as given.
        id: String,
    },
    /// One revision of a repo (`org/name@rev`: a ref, a commit or a unique commit prefix).
    Revision {
        /// Type from `--repo-type`.
        repo_type: CachedRepoType,
        /// The id as given.
        id: String,
        /// The revision as given.
        revision: String,
    },
}

impl Target {
    /// Parses a command-line target; `repo_type` applies to repo targets.
    pub fn parse(raw: &str, repo_type: CachedRepoType) -> Result<Target, CacheError> {
        let raw = raw.trim();
        let invalid = |reason: &str| CacheError::InvalidTarget {
            target: raw.to_string(),
            reason: reason.to_string(),
        };
        if raw.len() == 40 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Target::Commit(raw.to_ascii_lowercase()));
        }
        let (id, revision) = match raw.split_once('@') {
            Some((id, rev)) => (id, Some(rev)),
            None => (raw, None),
        };
        if id.is_empty() || id.starts_with('/') || id.ends_with('/') || id.contains("//") {
            return Err(invalid("expected ORG/NAME"));
        }
        if id.split('/').any(|s| s == ".." || s == ".") || id.contains(['\\', '\0']) {
            return Err(invalid("a repo id cannot contain `.`/`..` segments or backslashes"));
        }
        match revision {
            Some("") => Err(invalid("empty revision after `@`")),
            Some(rev) => Ok(Target::Revision {
                repo_type,
                id: id.to_string(),
                revision: rev.to_string(),
            }),
            None => Ok(Target::Repo {
                repo_type,
                id: id.to_string(),
            }),
        }
    }
}

/// One cached revision: its repo folder and commit.
pub type RevisionKey = (PathBuf, String);

/// The revisions some targets select, and the targets that matched nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// Revisions to delete.
    pub revisions: BTreeSet<RevisionKey>,
    /// Targets with no match (as given).
    pub missing: Vec<String>,
}

/// Finds a repo by type and id, or by a `type/org/name` id (Python's cache id) as a fallback.
fn find_repo<'a>(info: &'a CacheInfo, repo_type: CachedRepoType, id: &str) -> Option<&'a RepoInfo> {
    info.repo(repo_type, id).or_else(|| {
        let (t, rest) = id.split_once('/')?;
        info.repo(CachedRepoType::parse(t)?, rest)
    })
}

/// Resolves targets against a scan (pure).
pub fn resolve_targets(info: &CacheInfo, targets: &[(String, Target)]) -> Resolution {
    let mut res = Resolution::default();
    for (raw, target) in targets {
        let key = |r: &RepoInfo, c: &str| (r.repo_path.clone(), c.to_string());
        let found: Vec<RevisionKey> = match target {
            Target::Commit(c) => info
                .repos
                .iter()
                .flat_map(|r| r.revisions.iter().map(move |rev| (r, rev)))
                .filter(|(_, rev)| rev.commit_hash.eq_ignore_ascii_case(c))
                .map(|(r, rev)| key(r, &rev.commit_hash))
                .collect(),
            Target::Repo { repo_type, id } => find_repo(info, *repo_type, id)
                .map(|r| r.revisions.iter().map(|rev| key(r, &rev.commit_hash)).collect())
                .unwrap_or_default(),
            Target::Revision {
                repo_type,
                id,
                revision,
            } => find_repo(info, *repo_type, id)
                .and_then(|r| find_revision(r, revision).map(|c| key(r, &c)))
                .into_iter()
                .collect(),
        };
        if found.is_empty() {
            res.missing.push(raw.clone());
        }
        res.revisions.extend(found);
    }
    res
}

/// A ref name, a full commit (any case) or a unique commit prefix of at least 4 characters.
fn find_revision(repo: &RepoInfo, rev: &str) -> Option<String> {
    if let Some(r) = repo.revision(rev) {
        return Some(r.commit_hash.clone());
    }
    let lower = rev.to_ascii_lowercase();
    let hits: Vec<&str> = repo
        .revisions
        .iter()
        .map(|r| r.commit_hash.as_str())
        .filter(|c| (lower.len() >= 4 && c.starts_with(&lower)) || c.eq_ignore_ascii_case(rev))
        .collect();
    match hits.as_slice() {
        [one] => Some((*one).to_string()),
        _ => None,
    }
}

/// Whether `blob` is an entry directly inside `<repo>/blobs/`.
fn in_own_blobs(blob: &Path, repo_path: &Path) -> bool {
    blob.parent() == Some(repo_path.join("blobs").as_path())
}

/// Accumulates blobs to unlink and computes Python's `_expected_freed_size`.
#[derive(Default)]
struct FreedSize {
    /// Blob path → (size, shared payload).
    unlink: BTreeMap<PathBuf, (u64, Option<PathBuf>)>,
}

impl FreedSize {
    fn add(&mut self, blob: &Path, size: u64, shared: Option<&PathBuf>) {
        self.unlink.insert(blob.to_path_buf(), (size, shared.cloned()));
    }

    fn total(&self, info: &CacheInfo) -> u64 {
        let Some(store) = &info.shared_store else {
            return self.unlink.values().map(|(s, _)| s).sum();
        };
        let mut total = 0;
        let mut payloads = BTreeSet::new();
        for (size, shared) in self.unlink.values() {
            match shared {
                Some(p) => {
                    payloads.insert(p);
                }
                None => total += size,
            }
        }
        for p in payloads {
            let Some(entry) = store.get(p) else { continue };
            let all_gone = entry
                .references
                .as_ref()
                .is_some_and(|refs| !refs.is_empty() && refs.iter().all(|r| self.unlink.contains_key(r)));
            if all_gone {
                total += entry.size;
            }
        }
        total
    }

    fn payloads(&self) -> impl Iterator<Item = &PathBuf> {
        self.unlink.values().filter_map(|(_, p)| p.as_ref())
    }
}

/// Every cached revision with one of these commits, in any repo (Python's bare-hash targets).
pub fn select_commits(info: &CacheInfo, commits: &BTreeSet<String>) -> BTreeSet<RevisionKey> {
    info.repos
        .iter()
        .flat_map(|r| r.revisions.iter().map(move |rev| (r, rev)))
        .filter(|(_, rev)| commits.contains(&rev.commit_hash))
        .map(|(r, rev)| (r.repo_path.clone(), rev.commit_hash.clone()))
        .collect()
}

/// Python's `delete_revisions` as a plan (pure), for revisions chosen per repo: a commit
/// selected in one repo never takes the same commit of another repo with it.
pub fn plan_revisions(info: &CacheInfo, selected: &BTreeSet<RevisionKey>) -> DeletePlan {
    let mut plan = DeletePlan {
        cache_dir: info.cache_dir.clone(),
        ..DeletePlan::default()
    };
    let mut freed = FreedSize::default();
    let mut found = HashSet::new();
    for repo in &info.repos {
        let chosen = |commit: &str| selected.contains(&(repo.repo_path.clone(), commit.to_string()));
        let selected: Vec<_> = repo.revisions.iter().filter(|r| chosen(&r.commit_hash)).collect();
        if selected.is_empty() {
            continue;
        }
        found.extend(selected.iter().map(|r| (repo.repo_path.clone(), r.commit_hash.clone())));
        let whole = selected.len() == repo.revisions.len();
        plan.selections.push(Selection {
            cache_id: repo.cache_id(),
            whole_repo: whole,
            revisions: selected
                .iter()
                .map(|r| SelectedRevision {
                    commit_hash: r.commit_hash.clone(),
                    refs: r.refs.clone(),
                    size_on_disk: r.size_on_disk,
                })
                .collect(),
        });
        if whole {
            plan.repos.insert(repo.repo_path.clone());
            for f in repo.revisions.iter().flat_map(|r| &r.files) {
                freed.add(&f.blob_path, f.size_on_disk, f.shared_target.as_ref());
            }
            // Store links nothing uses any more go with the folder too: sweep their payloads.
            plan.shared_payloads
                .extend(repo.unreferenced_blobs.iter().filter_map(|b| b.shared_target.clone()));
            continue;
        }
        let kept: HashSet<&Path> = repo
            .revisions
            .iter()
            .filter(|r| !chosen(&r.commit_hash))
            .flat_map(|r| r.files.iter().map(|f| f.blob_path.as_path()))
            .collect();
        for rev in selected {
            plan.snapshots.insert(rev.snapshot_path.clone());
            for name in &rev.refs {
                plan.refs.insert(repo.repo_path.join("refs").join(name));
            }
            for f in &rev.files {
                if f.blob_path.starts_with(&rev.snapshot_path) {
                    freed.add(&f.blob_path, f.size_on_disk, None);
                } else if !kept.contains(f.blob_path.as_path()) {
                    if in_own_blobs(&f.blob_path, &repo.repo_path) {
                        plan.blobs.insert(f.blob_path.clone());
                        freed.add(&f.blob_path, f.size_on_disk, f.shared_target.as_ref());
                    } else if !plan.refused.iter().any(|(p, _)| p == &f.blob_path) {
                        plan.refused.push((
                            f.blob_path.clone(),
                            "not inside its repo's blobs/ folder; left in place".into(),
                        ));
                    }
                }
            }
        }
    }
    plan.not_found = selected
        .iter()
        .filter(|k| !found.contains(*k))
        .map(|(_, c)| c.clone())
        .collect();
    plan.expected_freed_size = freed.total(info);
    plan.shared_payloads.extend(freed.payloads().cloned());
    plan.selections.sort_by(|a, b| a.cache_id.cmp(&b.cache_id));
    plan
}

/// `cache prune` (pure): detached revisions, blobs no snapshot uses, every `*.incomplete`,
/// unreferenced store payloads, and empty folders.
pub fn plan_prune(info: &CacheInfo) -> DeletePlan {
    plan_prune_with(info, &BTreeSet::new())
}

/// [`plan_prune`] that also removes `extra` revisions (eviction's choice, see
/// [`super::evict`]), under the same rules as the detached ones.
pub fn plan_prune_with(info: &CacheInfo, extra: &BTreeSet<RevisionKey>) -> DeletePlan {
    let mut selected: BTreeSet<RevisionKey> = info
        .repos
        .iter()
        .flat_map(|r| r.revisions.iter().map(move |rev| (r, rev)))
        .filter(|(_, rev)| rev.refs.is_empty())
        .map(|(r, rev)| (r.repo_path.clone(), rev.commit_hash.clone()))
        .collect();
    selected.extend(extra.iter().cloned());
    let mut plan = plan_revisions(info, &selected);
    // Orphans of repos that stay, with the same shared-store accounting as the revisions'.
    let mut freed = FreedSize::default();
    for repo in info.repos.iter().filter(|r| !plan.repos.contains(&r.repo_path)) {
        for b in &repo.unreferenced_blobs {
            if in_own_blobs(&b.path, &repo.repo_path) && plan.blobs.insert(b.path.clone()) {
                plan.orphan_blobs += 1;
                freed.add(&b.path, b.size, b.shared_target.as_ref());
            }
        }
    }
    plan.expected_freed_size += freed.total(info);
    plan.shared_payloads.extend(freed.payloads().cloned());
    for f in &info.incomplete_files {
        plan.incomplete.insert(f.file_path.clone());
    }
    plan.expected_freed_size += info.incomplete_size_on_disk();
    for (payload, size) in info.unreferenced_shared_blobs() {
        plan.expected_freed_size += size;
        plan.shared_payloads.insert(payload);
    }
    plan.empty_dirs = true;
    plan
}

pub use super::writer::CleanupLock;

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
    if let Ok(revs) = fs::read_dir(repo.join("snapshots")) {
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
        if let Ok(revs) = fs::read_dir(path.join("snapshots")) {
            for rev in revs.flatten().filter(|r| r.file_type().is_ok_and(|t| t.is_dir())) {
                prune_empty_under(&rev.path(), report);
            }
        }
        prune_empty_under(&path.join("refs"), report);
        if prune_empty_under(&path.join(".no_exist"), report) {
            let _ = fs::remove_dir(path.join(".no_exist"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::scan::scan;
    use crate::cache::testutil::{add_file, add_ref, two_revisions, C1, C2};
    use std::os::unix::fs::symlink;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn commits(info: &CacheInfo, items: &[&str]) -> BTreeSet<RevisionKey> {
        select_commits(info, &set(items))
    }

    fn no_wait(_: &Path, _: Duration) {}

    #[test]
    fn partial_revision_keeps_shared_blobs() {
        let dir = tempfile::tempdir().unwrap();
        two_revisions(dir.path());
        let info = scan(dir.path()).unwrap();
        let repo = &info.repos[0];
        let mut chosen = commits(&info, &[C1]);
        chosen.insert((repo.repo_path.clone(), "f".repeat(40)));
        let plan = plan_revisions(&info, &chosen);
        assert!(plan.repos.is_empty());
        assert_eq!(
            plan.snapshots,
            BTreeSet::from([repo.revisions[0].snapshot_path.clone()])
        );
        assert!(plan.refs.is_empty(), "C1 is detached");
        assert_eq!(
            plan.blobs,
            BTreeSet::from([repo.repo_path.join("blobs/e2")]),
            "e1 is shared with C2"
        );
        assert_eq!(plan.expected_freed_size, 10);
        assert_eq!(plan.not_found, vec!["f".repeat(40)]);
        assert_eq!(plan.counts(), (0, 1));

        let plan = plan_revisions(&info, &commits(&info, &[C2]));
        assert_eq!(plan.refs, BTreeSet::from([repo.repo_path.join("refs/main")]));
        assert_eq!(plan.expected_freed_size, 20);
    }

    #[test]
    fn every_revision_means_the_whole_repo() {
        let dir = tempfile::tempdir().unwrap();
        two_revisions(dir.path());
        let info = scan(dir.path()).unwrap();
        let plan = plan_revisions(&info, &commits(&info, &[C1, C2]));
        assert_eq!(plan.repos, BTreeSet::from([info.repos[0].repo_path.clone()]));
        assert!(plan.snapshots.is_empty() && plan.blobs.is_empty());
        assert_eq!(plan.expected_freed_size, 32);
        assert_eq!(plan.counts(), (1, 2));
        assert!(plan.selections[0].whole_repo);
    }

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
    fn targets_parse_and_resolve() {
        let dir = tempfile::tempdir().unwrap();
        two_revisions(dir.path());
        add_file(&dir.path().join("datasets--org--d"), C1, "x", "e5", b"x");
        add_ref(&dir.path().join("datasets--org--d"), "v1", C1);
        let info = scan(dir.path()).unwrap();
        let m = CachedRepoType::Model;
        let parse = |s: &str| (s.to_string(), Target::parse(s, m).unwrap());
        assert_eq!(Target::parse(&C1.to_uppercase(), m).unwrap(), Target::Commit(C1.into()));
        assert!(Target::parse("org/../x", m).is_err());
        assert!(Target::parse("org/m@", m).is_err());
        let m_path = info.repos[1].repo_path.clone();
        let d_path = info.repos[0].repo_path.clone();
        let keys = |p: &Path, cs: &[&str]| {
            cs.iter()
                .map(|c| (p.to_path_buf(), c.to_string()))
                .collect::<BTreeSet<_>>()
        };
        let r = resolve_targets(&info, &[parse("org/m@main")]);
        assert_eq!(r.revisions, keys(&m_path, &[C2]));
        let r = resolve_targets(&info, &[parse("ORG/M@1111")]);
        assert_eq!(r.revisions, keys(&m_path, &[C1]));
        let r = resolve_targets(&info, &[parse("org/m")]);
        assert_eq!(r.revisions, keys(&m_path, &[C1, C2]));
        let r = resolve_targets(&info, &[parse("dataset/org/d"), parse("org/d"), parse(&"a".repeat(40))]);
        assert_eq!(r.revisions, keys(&d_path, &[C1]));
        assert_eq!(r.missing, vec!["org/d".to_string(), "a".repeat(40)]);
        let ds = (
            "org/d@v1".to_string(),
            Target::parse("org/d@v1", CachedRepoType::Dataset).unwrap(),
        );
        assert_eq!(resolve_targets(&info, &[ds]).revisions, keys(&d_path, &[C1]));
        // A bare commit selects it in every repo that has it (Python's rule).
        let r = resolve_targets(&info, &[parse(C1)]);
        assert_eq!(r.revisions.len(), 2);
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
