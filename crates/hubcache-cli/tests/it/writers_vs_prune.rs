//! Every cache writer in a loop beside `hubcache cache prune` in a loop: no snapshot entry ever
//! points at a missing blob, and what a writer just finished is complete.
//!
//! Each writer alternates between two commits of one repo, so each run leaves the other commit
//! detached (or unreferenced) and its blobs orphaned: the prune loop deletes them while the
//! writer brings them back. Without the writer protocol (clean-up lock shared, blob placed and
//! linked under its etag lock) a writer could link to a blob that a prune was deleting.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use common::{hubcache, run_ok, single_path, stderr, stdout, Served};
use hubcache_test_support::{FakeHub, RepoKind};

/// Writer iterations per test: enough for prune runs to interleave with every step.
const ROUNDS: usize = 30;

/// The files of one version: (path, content).
type Files = Vec<(String, Vec<u8>)>;

/// Every symlink under every `snapshots/` of the cache resolves; returns how many were checked.
/// The check holds the clean-up lock shared, as a writer does: a prune removing a whole repo
/// folder mid-way is not a state a writer can leave, so it is not looked at.
fn assert_no_dangling_links(cache: &Path) -> usize {
    let gc = hubcache::cache::CacheLayout::new(cache).gc_lock();
    let _hold = hubcache::lock::LockedFile::acquire_shared_blocking(&gc, Duration::from_secs(60), |_, _| {}).unwrap();
    let mut checked = 0;
    let Ok(repos) = fs::read_dir(cache) else { return 0 };
    for repo in repos.flatten() {
        let mut stack = vec![repo.path().join("snapshots")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let Ok(t) = e.file_type() else { continue };
                if t.is_dir() {
                    stack.push(e.path());
                } else if t.is_symlink() {
                    checked += 1;
                    // A folder removed by prune while we walk is fine; a link left behind is not.
                    if fs::symlink_metadata(e.path()).is_ok() {
                        assert!(
                            fs::metadata(e.path()).is_ok(),
                            "dangling snapshot link {} -> {:?}",
                            e.path().display(),
                            fs::read_link(e.path()).ok()
                        );
                    }
                }
            }
        }
    }
    checked
}

/// `hubcache cache prune --yes` in a loop until `stop`, checking links after every run.
struct PruneLoop {
    stop: Arc<AtomicBool>,
    /// Prune runs that deleted something.
    deleted: Arc<AtomicUsize>,
    /// Snapshot links checked after the runs.
    links: Arc<AtomicUsize>,
    handle: Option<JoinHandle<usize>>,
}

impl PruneLoop {
    fn start(home: &Path, cache: &Path) -> PruneLoop {
        fs::create_dir_all(cache).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let deleted = Arc::new(AtomicUsize::new(0));
        let links = Arc::new(AtomicUsize::new(0));
        let (home, cache) = (home.to_path_buf(), cache.to_path_buf());
        let (s, d, l) = (stop.clone(), deleted.clone(), links.clone());
        let handle = std::thread::spawn(move || {
            let mut runs = 0;
            while !s.load(Ordering::Relaxed) {
                let out = hubcache(&home)
                    .args(["cache", "prune", "--yes", "--cache-dir"])
                    .arg(&cache)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "prune failed: {}\n{}", stdout(&out), stderr(&out));
                runs += 1;
                if stdout(&out).contains("About to delete") {
                    d.fetch_add(1, Ordering::Relaxed);
                }
                l.fetch_add(assert_no_dangling_links(&cache), Ordering::Relaxed);
            }
            runs
        });
        PruneLoop {
            stop,
            deleted,
            links,
            handle: Some(handle),
        }
    }

    /// Stops the loop; returns (runs, runs that deleted something, links checked).
    fn finish(mut self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let runs = self.handle.take().unwrap().join().expect("the prune loop failed");
        (
            runs,
            self.deleted.load(Ordering::Relaxed),
            self.links.load(Ordering::Relaxed),
        )
    }
}

/// Two versions of a small model: a shared file, and files of their own (one LFS-sized).
fn version(dir: &Path, tag: u8) -> Files {
    let files = vec![
        (
            "config.json".to_string(),
            format!("{{\"version\": {tag}}}").into_bytes(),
        ),
        ("shared.txt".to_string(), b"the same in both versions\n".to_vec()),
        ("model.safetensors".to_string(), vec![tag; 300_000]),
        (format!("extra/v{tag}.bin"), vec![tag ^ 0x5a; 5_000]),
    ];
    for (p, c) in &files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, c).unwrap();
    }
    files
}

/// Every file of a finished write is there with its content.
fn assert_complete(snapshot: &Path, files: &Files) {
    for (p, c) in files {
        let got = fs::read(snapshot.join(p)).unwrap_or_else(|e| panic!("{p} of {}: {e}", snapshot.display()));
        assert_eq!(&got, c, "{p} of {}", snapshot.display());
    }
}

/// Stops the prune loop and checks it ran, deleted and saw links (`seen` more were checked by
/// the writer's side, for detached snapshots prune takes before it looks).
fn finish_and_check(prune: PruneLoop, cache: &Path, seen: usize) {
    let (runs, deleted, links) = prune.finish();
    let links = links + seen;
    assert!(runs >= 2, "prune ran {runs} times");
    assert!(
        deleted >= 1,
        "prune never found anything to delete ({runs} runs): the race was not exercised"
    );
    assert!(links > 0, "no snapshot link was checked during {runs} prune runs");
    assert_no_dangling_links(cache);
}

#[test]
fn add_folder_beside_prune() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let (a, b) = (home.path().join("a"), home.path().join("b"));
    let versions = [version(&a, 1), version(&b, 2)];
    let prune = PruneLoop::start(home.path(), &cache);
    for i in 0..ROUNDS {
        let src = if i % 2 == 0 { &a } else { &b };
        let out = run_ok(
            hubcache(home.path())
                .args(["cache", "add-folder"])
                .arg(src)
                .args(["--repo", "org/folder", "--cache-dir"])
                .arg(&cache),
        );
        assert_complete(&single_path(&out), &versions[i % 2]);
    }
    finish_and_check(prune, &cache, 0);
}

#[test]
fn bundle_import_beside_prune() {
    let home = tempfile::tempdir().unwrap();
    let seed = home.path().join("seed");
    let cache = home.path().join("cache");
    let mut bundles = Vec::new();
    let mut versions = Vec::new();
    for tag in [1u8, 2] {
        let dir = home.path().join(format!("v{tag}"));
        versions.push(version(&dir, tag));
        run_ok(
            hubcache(home.path())
                .args(["cache", "add-folder"])
                .arg(&dir)
                .args(["--repo", "org/bundled", "--cache-dir"])
                .arg(&seed),
        );
        let bundle = home.path().join(format!("v{tag}.tar"));
        run_ok(
            hubcache(home.path())
                .args(["export", "org/bundled@main", "-o"])
                .arg(&bundle)
                .arg("--cache-dir")
                .arg(&seed),
        );
        bundles.push(bundle);
    }
    let prune = PruneLoop::start(home.path(), &cache);
    for i in 0..ROUNDS {
        run_ok(
            hubcache(home.path())
                .arg("import")
                .arg(&bundles[i % 2])
                .arg("--cache-dir")
                .arg(&cache),
        );
        let repo = cache.join("models--org--bundled");
        let commit = fs::read_to_string(repo.join("refs/main")).unwrap();
        assert_complete(&repo.join("snapshots").join(commit.trim()), &versions[i % 2]);
    }
    finish_and_check(prune, &cache, 0);
}

/// A fake Hub with two commits of `org/dl` (main at the second); returns (hub, [commits]).
fn two_commits(home: &Path) -> (FakeHub, [String; 2], [Files; 2]) {
    let hub = FakeHub::start();
    let mut commits = Vec::new();
    let mut versions = Vec::new();
    for tag in [1u8, 2] {
        let files = version(&home.join(format!("v{tag}")), tag);
        let c = hub.commit(
            RepoKind::Model,
            "org/dl",
            "main",
            files.iter().map(|(p, c)| (p.clone(), Bytes::from(c.clone()))).collect(),
        );
        commits.push(c);
        versions.push(files);
    }
    let commits: [String; 2] = commits.try_into().unwrap();
    let versions: [Files; 2] = versions.try_into().unwrap();
    (hub, commits, versions)
}

fn download(home: &Path, endpoint: &str, cache: &Path, revision: &str) -> Command {
    let mut cmd = hubcache(home);
    cmd.args(["download", "org/dl", "--quiet", "--revision", revision, "--cache-dir"])
        .arg(cache)
        .env("HF_ENDPOINT", endpoint);
    cmd
}

#[test]
fn downloads_beside_prune() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let (hub, commits, _) = two_commits(home.path());
    let prune = PruneLoop::start(home.path(), &cache);
    let mut seen = 0;
    for i in 0..ROUNDS {
        // Commit-pinned: no ref, so the other commit is detached and pruned while we fetch.
        let out = run_ok(&mut download(home.path(), &hub.url(), &cache, &commits[i % 2]));
        assert!(single_path(&out).ends_with(&commits[i % 2]));
        seen += assert_no_dangling_links(&cache);
    }
    finish_and_check(prune, &cache, seen);
}

#[test]
fn sync_beside_prune() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let (hub, commits, versions) = two_commits(home.path());
    let mut projects: Vec<PathBuf> = Vec::new();
    for (i, commit) in commits.iter().enumerate() {
        let dir = home.path().join(format!("project{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("hubcache.toml"),
            format!("[[repo]]\nid = \"org/dl\"\nrevision = \"{commit}\"\n"),
        )
        .unwrap();
        run_ok(
            hubcache(home.path())
                .arg("lock")
                .current_dir(&dir)
                .env("HF_ENDPOINT", hub.url()),
        );
        projects.push(dir);
    }
    let prune = PruneLoop::start(home.path(), &cache);
    let mut seen = 0;
    for i in 0..ROUNDS {
        run_ok(
            hubcache(home.path())
                .args(["sync", "--locked", "--cache-dir"])
                .arg(&cache)
                .current_dir(&projects[i % 2])
                .env("HF_ENDPOINT", hub.url()),
        );
        // Pinned to a commit, the snapshot is detached: prune may take it right away, but
        // never half of it.
        let snapshot = cache.join("models--org--dl/snapshots").join(&commits[i % 2]);
        for (p, c) in &versions[i % 2] {
            if let Ok(got) = fs::read(snapshot.join(p)) {
                assert_eq!(&got, c, "{p}");
            }
        }
        seen += assert_no_dangling_links(&cache);
    }
    finish_and_check(prune, &cache, seen);
}

#[test]
fn mirror_pull_through_beside_prune() {
    let home = tempfile::tempdir().unwrap();
    let mirror_cache = home.path().join("mirror-cache");
    fs::create_dir_all(&mirror_cache).unwrap();
    let (hub, commits, versions) = two_commits(home.path());
    let served = Served::start(
        home.path(),
        &["--upstream", &hub.url(), "--cache-dir", mirror_cache.to_str().unwrap()],
        &[],
    );
    let prune = PruneLoop::start(home.path(), &mirror_cache);
    let mut seen = 0;
    for i in 0..ROUNDS {
        // A fresh client cache each time: every file goes through the mirror's pull-through.
        let client = home.path().join(format!("client{i}"));
        let out = run_ok(&mut download(home.path(), &served.url, &client, &commits[i % 2]));
        assert_complete(&single_path(&out), &versions[i % 2]);
        seen += assert_no_dangling_links(&mirror_cache);
    }
    finish_and_check(prune, &mirror_cache, seen);
}
