//! Eviction for `cache prune --max-size/--older-than`: which revisions go (pure, over a scan).
//!
//! - **Last use** of a revision is the newest access time of its blobs as the scan reports
//!   them (`blob_last_accessed`, followed through symlinks and shared-store links), or its
//!   folder's modification time when it has no files. A blob two revisions share makes both
//!   look as recent as its last read: we cannot tell which one was read, so neither is
//!   evicted on a guess.
//! - **Candidates** are the revisions a ref points to (prune removes detached ones anyway),
//!   least recently used first, ties broken by `type/id` then commit. A repo a download is
//!   writing into (one of its `.locks/<repo>/<etag>.lock` held, by hubcache or Python) has no
//!   candidates: see [`busy_repos`].
//! - **Choice**: the shortest prefix of the candidates that holds every revision unused for
//!   `older_than` and brings the physical size under `max_size` — the size `cache ls` totals
//!   (each blob once, each shared payload once), measured *after* the whole plan, prune's own
//!   removals included. The size only falls as the prefix grows, so the prefix is found by
//!   bisection.
//! - **Plan**: the chosen revisions join prune's in one [`DeletePlan`]
//!   ([`delete::plan_prune_with`]), so blobs a kept revision still uses and shared payloads a
//!   kept repo still links stay, by the same rules as `cache rm`; executing it is
//!   [`delete::execute`]'s job (clean-up lock, etag locks, shared-store sweep).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::delete::{self, DeletePlan, RevisionKey};
use super::layout::CacheLayout;
use super::scan::{CacheInfo, RevisionInfo};
use crate::lock::LockedFile;

/// What `cache prune` evicts besides its usual removals.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EvictionPolicy {
    /// Evict least recently used revisions until the physical size is at most this many bytes.
    pub max_size: Option<u64>,
    /// Evict revisions last used at least this many seconds before `now`.
    pub older_than: Option<u64>,
    /// The time ages are measured from (Unix seconds).
    pub now: f64,
}

/// Why a revision is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictReason {
    /// Unused for longer than `older_than`.
    OlderThan,
    /// Needed to get under `max_size`.
    OverSize,
}

/// One evicted revision, for display.
#[derive(Debug, Clone, PartialEq)]
pub struct Evicted {
    /// Its repo folder.
    pub repo_path: PathBuf,
    /// `type/id` of the repo.
    pub cache_id: String,
    /// The commit.
    pub commit_hash: String,
    /// Its refs.
    pub refs: Vec<String>,
    /// `snapshots/<commit>`.
    pub snapshot_path: PathBuf,
    /// Its size (sum of its distinct blobs).
    pub size_on_disk: u64,
    /// Its last use (Unix seconds), see [`revision_last_accessed`].
    pub last_accessed: f64,
    /// Why it goes.
    pub reason: EvictReason,
}

/// A prune plan with evictions, and the sizes around it.
#[derive(Debug, Clone, PartialEq)]
pub struct EvictionPlan {
    /// Everything to remove: prune's usual removals plus the evicted revisions.
    pub plan: DeletePlan,
    /// The evicted revisions, least recently used first.
    pub evicted: Vec<Evicted>,
    /// Physical size now (the scan's `size_on_disk`).
    pub size_before: u64,
    /// Physical size once the plan has run.
    pub size_after: u64,
    /// `type/id` of the repos left alone because a download is writing into them.
    pub skipped_busy: Vec<String>,
}

impl EvictionPlan {
    /// Whether the cache is under `policy.max_size` once the plan has run (true without a limit).
    pub fn fits(&self, policy: &EvictionPolicy) -> bool {
        policy.max_size.is_none_or(|max| self.size_after <= max)
    }
}

/// When a revision was last used: its blobs' newest access time, else its folder's mtime.
pub fn revision_last_accessed(rev: &RevisionInfo) -> f64 {
    rev.files
        .iter()
        .map(|f| f.blob_last_accessed)
        .reduce(f64::max)
        .unwrap_or(rev.last_modified)
}

/// The physical size of the cache (as the scan totals it) once `plan` has run (pure).
pub fn size_after(info: &CacheInfo, plan: &DeletePlan) -> u64 {
    let gone = |blob: &Path| plan.blobs.contains(blob) || plan.repos.iter().any(|r| blob.starts_with(r));
    let mut kept: HashMap<&Path, u64> = HashMap::new();
    for repo in info.repos.iter().filter(|r| !plan.repos.contains(&r.repo_path)) {
        for rev in repo
            .revisions
            .iter()
            .filter(|r| !plan.snapshots.contains(&r.snapshot_path))
        {
            for f in rev.files.iter().filter(|f| f.shared_target.is_none()) {
                kept.insert(&f.blob_path, f.size_on_disk);
            }
        }
    }
    let payloads: u64 = info
        .shared_store
        .iter()
        .flatten()
        .filter(|(path, payload)| {
            // The sweep collects a payload only when its manifest proves every reference gone.
            let collected = plan.shared_payloads.contains(*path)
                && payload
                    .references
                    .as_ref()
                    .is_some_and(|refs| refs.iter().all(|r| gone(r)));
            !collected
        })
        .map(|(_, payload)| payload.size)
        .sum();
    kept.values().sum::<u64>() + payloads
}

/// Prune's plan plus the least recently used revisions `policy` asks for (pure); revisions of
/// the repos in `busy` (see [`busy_repos`]) are never chosen.
pub fn plan_eviction(info: &CacheInfo, policy: &EvictionPolicy, busy: &BTreeSet<PathBuf>) -> EvictionPlan {
    let mut candidates: Vec<(f64, String, &RevisionInfo, &PathBuf)> = info
        .repos
        .iter()
        .filter(|r| !busy.contains(&r.repo_path))
        .flat_map(|r| r.revisions.iter().map(move |rev| (r, rev)))
        .filter(|(_, rev)| !rev.refs.is_empty())
        .map(|(r, rev)| (revision_last_accessed(rev), r.cache_id(), rev, &r.repo_path))
        .collect();
    candidates.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| a.2.commit_hash.cmp(&b.2.commit_hash))
    });
    let plan_for = |k: usize| {
        let chosen: BTreeSet<RevisionKey> = candidates[..k]
            .iter()
            .map(|(_, _, rev, repo)| ((*repo).clone(), rev.commit_hash.clone()))
            .collect();
        let plan = delete::plan_prune_with(info, &chosen);
        let size = size_after(info, &plan);
        (plan, size)
    };
    let by_age = policy.older_than.map_or(0, |secs| {
        candidates
            .iter()
            .take_while(|(last, ..)| policy.now - last >= secs as f64)
            .count()
    });
    let mut chosen = plan_for(by_age);
    let mut count = by_age;
    if let Some(max) = policy.max_size.filter(|max| chosen.1 > *max) {
        let all = plan_for(candidates.len());
        count = candidates.len();
        if all.1 <= max {
            // Invariant: a prefix of `lo` does not fit, one of `count` does.
            let (mut lo, mut best) = (by_age, all);
            while count - lo > 1 {
                let mid = lo + (count - lo) / 2;
                let probe = plan_for(mid);
                if probe.1 <= max {
                    (count, best) = (mid, probe);
                } else {
                    lo = mid;
                }
            }
            chosen = best;
        } else {
            chosen = all;
        }
    }
    EvictionPlan {
        evicted: evicted(&candidates[..count], by_age),
        size_before: info.size_on_disk,
        size_after: chosen.1,
        plan: chosen.0,
        skipped_busy: info
            .repos
            .iter()
            .filter(|r| busy.contains(&r.repo_path))
            .map(|r| r.cache_id())
            .collect(),
    }
}

fn evicted(candidates: &[(f64, String, &RevisionInfo, &PathBuf)], by_age: usize) -> Vec<Evicted> {
    candidates
        .iter()
        .enumerate()
        .map(|(i, (last, cache_id, rev, repo))| Evicted {
            repo_path: (*repo).clone(),
            cache_id: cache_id.clone(),
            commit_hash: rev.commit_hash.clone(),
            refs: rev.refs.clone(),
            snapshot_path: rev.snapshot_path.clone(),
            size_on_disk: rev.size_on_disk,
            last_accessed: *last,
            reason: if i < by_age {
                EvictReason::OlderThan
            } else {
                EvictReason::OverSize
            },
        })
        .collect()
}

/// Repos of the scan a download is writing into right now: one of their
/// `.locks/<repo>/<etag>.lock` is held (by hubcache or Python). A lock that cannot be checked
/// counts as held.
pub fn busy_repos(info: &CacheInfo) -> BTreeSet<PathBuf> {
    let locks = CacheLayout::new(&info.cache_dir).root().join(".locks");
    info.repos
        .iter()
        .filter(|repo| {
            let Ok(entries) = fs::read_dir(locks.join(repo.folder_name())) else {
                return false;
            };
            entries.flatten().any(|e| {
                let is_lock =
                    e.file_name().to_string_lossy().ends_with(".lock") && e.file_type().is_ok_and(|t| t.is_file());
                is_lock && !matches!(LockedFile::try_acquire(&e.path()), Ok(Some(_)))
            })
        })
        .map(|r| r.repo_path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::scan::scan;
    use crate::cache::shared_store;
    use crate::cache::testutil::{add_file, add_ref, C1, C2};
    use std::fs::FileTimes;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const DAY: u64 = 86_400;

    fn now() -> f64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    }

    /// Sets the access time of every blob a revision's files reach to `days` ago.
    fn touch(repo: &Path, commit: &str, days: u64) {
        for e in fs::read_dir(repo.join("snapshots").join(commit)).unwrap().flatten() {
            set_atime(&e.path(), days);
        }
    }

    fn set_atime(path: &Path, days: u64) {
        let t = SystemTime::now() - Duration::from_secs(days * DAY);
        let f = fs::File::open(path).unwrap();
        f.set_times(FileTimes::new().set_accessed(t)).unwrap();
    }

    /// One repo per (name, size, days since last use), each with a single `main` revision.
    fn repos(cache: &Path, specs: &[(&str, usize, u64)]) {
        for (i, (name, size, days)) in specs.iter().enumerate() {
            let repo = cache.join(format!("models--org--{name}"));
            let commit = format!("{:x}", i + 10).repeat(20);
            add_file(&repo, &commit, "w.bin", &format!("e{name}"), &vec![b'x'; *size]);
            add_ref(&repo, "main", &commit);
            touch(&repo, &commit, *days);
        }
    }

    fn ids(plan: &EvictionPlan) -> Vec<String> {
        plan.evicted.iter().map(|e| e.cache_id.clone()).collect()
    }

    fn policy(max_size: Option<u64>, older_than_days: Option<u64>) -> EvictionPolicy {
        EvictionPolicy {
            max_size,
            older_than: older_than_days.map(|d| d * DAY),
            now: now(),
        }
    }

    #[test]
    fn max_size_evicts_least_recently_used_first_with_deterministic_ties() {
        let dir = tempfile::tempdir().unwrap();
        repos(
            dir.path(),
            &[("a", 100, 5), ("b", 200, 40), ("c", 300, 40), ("d", 400, 1)],
        );
        let info = scan(dir.path()).unwrap();
        assert_eq!(info.size_on_disk, 1000);
        let none = BTreeSet::new();
        // b and c tie on age: b first by name; removing b alone leaves 800.
        let p = plan_eviction(&info, &policy(Some(800), None), &none);
        assert_eq!(ids(&p), ["model/org/b"]);
        assert_eq!((p.size_before, p.size_after), (1000, 800));
        assert!(p.fits(&policy(Some(800), None)));
        assert_eq!(p.evicted[0].reason, EvictReason::OverSize);
        assert_eq!(p.plan.repos.len(), 1, "its only revision: the whole repo goes");
        let p = plan_eviction(&info, &policy(Some(799), None), &none);
        assert_eq!(ids(&p), ["model/org/b", "model/org/c"]);
        assert_eq!((p.size_after, p.plan.expected_freed_size), (500, 500));
        let p = plan_eviction(&info, &policy(Some(450), None), &none);
        assert_eq!(ids(&p), ["model/org/b", "model/org/c", "model/org/a"]);
        assert_eq!((p.size_after, p.plan.expected_freed_size), (400, 600));
        // Already under the limit: nothing.
        let p = plan_eviction(&info, &policy(Some(1000), None), &none);
        assert!(p.evicted.is_empty() && p.plan.is_empty());
        // Zero: everything.
        let p = plan_eviction(&info, &policy(Some(0), None), &none);
        assert_eq!(p.evicted.len(), 4);
        assert_eq!(p.size_after, 0);
    }

    #[test]
    fn older_than_takes_the_old_prefix_and_combines_with_max_size() {
        let dir = tempfile::tempdir().unwrap();
        repos(
            dir.path(),
            &[("a", 100, 5), ("b", 200, 40), ("c", 300, 31), ("d", 400, 1)],
        );
        let info = scan(dir.path()).unwrap();
        let none = BTreeSet::new();
        let p = plan_eviction(&info, &policy(None, Some(30)), &none);
        assert_eq!(ids(&p), ["model/org/b", "model/org/c"]);
        assert!(p.evicted.iter().all(|e| e.reason == EvictReason::OlderThan));
        assert_eq!(p.size_after, 500);
        assert!(plan_eviction(&info, &policy(None, Some(60)), &none).evicted.is_empty());
        // Both: the old ones, then more until the size fits.
        let p = plan_eviction(&info, &policy(Some(450), Some(30)), &none);
        assert_eq!(ids(&p), ["model/org/b", "model/org/c", "model/org/a"]);
        assert_eq!(p.evicted[2].reason, EvictReason::OverSize);
        assert_eq!(p.size_after, 400);
        // A generous limit adds nothing to the old ones.
        let p = plan_eviction(&info, &policy(Some(10_000), Some(30)), &none);
        assert_eq!(p.evicted.len(), 2);
    }

    #[test]
    fn a_blob_shared_with_a_kept_revision_stays_and_detached_bytes_count() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--org--m");
        let c3 = "3".repeat(40);
        add_file(&repo, C1, "config.json", "e1", b"{}");
        add_file(&repo, C1, "w.bin", "e2", &[b'a'; 10]);
        add_file(&repo, C2, "config.json", "e1", b"{}");
        add_file(&repo, C2, "w.bin", "e3", &[b'b'; 20]);
        add_file(&repo, &c3, "old.bin", "e4", &[b'c'; 50]);
        add_ref(&repo, "v1", C1);
        add_ref(&repo, "main", C2);
        touch(&repo, C1, 10);
        touch(&repo, C2, 0);
        // Detached: prune removes it whatever the policy says.
        touch(&repo, &c3, 1);
        let info = scan(dir.path()).unwrap();
        assert_eq!(info.size_on_disk, 82);
        let none = BTreeSet::new();
        // Removing the detached revision alone gets to 32.
        let p = plan_eviction(&info, &policy(Some(32), None), &none);
        assert!(p.evicted.is_empty());
        assert_eq!((p.size_after, p.plan.counts()), (32, (0, 1)));
        // e1 was read through C2 just now, so C1 looks recent too: the shared blob ties them.
        assert!(revision_last_accessed(&info.repos[0].revisions[0]) > now() - 60.0);
        touch(&repo, C2, 20);
        set_atime(&repo.join("blobs/e3"), 0);
        let info = scan(dir.path()).unwrap();
        let p = plan_eviction(&info, &policy(Some(31), None), &none);
        assert_eq!(p.evicted.len(), 1);
        assert_eq!(p.evicted[0].commit_hash, C1);
        assert!(p.plan.blobs.contains(&info.repos[0].repo_path.join("blobs/e2")));
        assert!(!p.plan.blobs.contains(&info.repos[0].repo_path.join("blobs/e1")));
        assert_eq!(p.size_after, 22);
        assert!(p.plan.refs.contains(&info.repos[0].repo_path.join("refs/v1")));
    }

    #[test]
    fn a_shared_payload_stays_while_a_kept_repo_links_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        let xet = format!("ab{}", "0".repeat(62));
        let payload = shared_store::tests::shared_fixture(c, &xet, &[7; 100], "s1", &["models--o--a", "models--o--b"]);
        for (name, commit, days) in [("models--o--a", C1, 50), ("models--o--b", C2, 2)] {
            let repo = c.join(name);
            fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
            std::os::unix::fs::symlink("../../blobs/s1", repo.join("snapshots").join(commit).join("w.bin")).unwrap();
            add_file(&repo, commit, "own.txt", "e1", &[1; 10]);
            add_ref(&repo, "main", commit);
            set_atime(&repo.join("blobs/e1"), days);
        }
        set_atime(&payload, 60);
        let info = scan(c).unwrap();
        assert_eq!(info.size_on_disk, 100 + 10 + 10);
        let none = BTreeSet::new();
        // Evicting a frees only its own file: b still links the payload.
        let p = plan_eviction(&info, &policy(Some(115), None), &none);
        assert_eq!(ids(&p), ["model/o/a"]);
        assert_eq!(p.size_after, 110);
        assert_eq!(p.plan.expected_freed_size, 10);
        // Only when both go does the payload count as freed.
        let p = plan_eviction(&info, &policy(Some(0), None), &none);
        assert_eq!(p.evicted.len(), 2);
        assert_eq!(p.size_after, 0);
        assert_eq!(p.plan.expected_freed_size, 120);
    }

    #[test]
    fn busy_repos_are_skipped_and_an_unreachable_limit_takes_what_it_can() {
        let dir = tempfile::tempdir().unwrap();
        repos(dir.path(), &[("a", 100, 50), ("b", 200, 40)]);
        let info = scan(dir.path()).unwrap();
        assert!(busy_repos(&info).is_empty());
        let a = info.repos[0].repo_path.clone();
        let lock = CacheLayout::new(&info.cache_dir).etag_lock("models--org--a", "e9");
        let held = LockedFile::try_acquire(&lock).unwrap().unwrap();
        let busy = busy_repos(&info);
        assert_eq!(busy, BTreeSet::from([a.clone()]));
        let p = plan_eviction(&info, &policy(Some(0), Some(30)), &busy);
        assert_eq!(ids(&p), ["model/org/b"]);
        assert_eq!(p.skipped_busy, ["model/org/a"]);
        assert_eq!(p.size_after, 100);
        assert!(!p.fits(&policy(Some(0), None)));
        drop(held);
        assert!(busy_repos(&info).is_empty(), "a free lock file is not a download");
    }
}
