//! The pure plans (over a [`CacheInfo`]) of `cache rm` and `cache prune`: what goes, and the
//! bytes huggingface_hub's `expected_freed_size` says it frees.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use super::target::RevisionKey;
use crate::cache::layout::RepoLayout;
use crate::cache::scan::CacheInfo;

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

/// Whether `blob` is an entry directly inside `<repo>/blobs/`.
fn in_own_blobs(blob: &Path, repo_path: &Path) -> bool {
    blob.parent() == Some(RepoLayout::from_folder(repo_path).blobs_dir().as_path())
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
                plan.refs
                    .insert(RepoLayout::from_folder(&repo.repo_path).ref_file(name));
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
/// [`crate::cache::evict`]), under the same rules as the detached ones.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::delete::select_commits;
    use crate::cache::scan::scan;
    use crate::cache::testutil::{two_revisions, C1, C2};

    fn commits(info: &CacheInfo, items: &[&str]) -> BTreeSet<RevisionKey> {
        select_commits(info, &items.iter().map(|s| s.to_string()).collect())
    }

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
}
