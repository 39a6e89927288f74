//! `hubcache cache prune --max-size/--older-than` with the real binary: least recently used
//! revisions go first (by the access times of their blobs, set here explicitly), dry runs change
//! nothing, Python huggingface_hub 2.4.0 scans the result without warnings and loads what is
//! kept offline, a repo a running download writes into is left alone, and a shared-store
//! payload a kept repo links stays. The Python parts are skipped outside CI when the venv is
//! missing (and fail in CI).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::fs::{self, FileTimes};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::cache_fixtures::{
    assert_same, noise, shared_store_fixture, tree, wait_for_incomplete, PY_LOAD_ALL, PY_SCAN,
};
use common::{python, stderr, stdout, CacheEnv};
use hubcache_test_support::{FakeHub, Fault, FaultRule, RepoKind};
use serde_json::Value;

const DAY: u64 = 86_400;

/// A [`CacheEnv`] with the checks eviction needs.
struct Env(CacheEnv);

impl std::ops::Deref for Env {
    type Target = CacheEnv;
    fn deref(&self) -> &CacheEnv {
        &self.0
    }
}

impl Env {
    fn new(hub: FakeHub) -> Env {
        Env(CacheEnv::new(hub))
    }

    /// Runs Python and returns its last stdout line.
    fn py(&self, code: &str, offline: bool) -> String {
        self.py_stdout(code, offline)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    }

    /// `hubcache cache ls --json`.
    fn scan(&self) -> Value {
        serde_json::from_str(&stdout(&self.ok(&["cache", "ls", "--json"]))).unwrap()
    }

    /// Our scan, checked against Python's `scan_cache_dir()` (no warnings, same numbers) and,
    /// when `load` is set, Python loading every kept file offline; returns the scan and what
    /// Python loaded.
    fn check_with_python(&self, what: &str, load: bool) -> (Value, Option<Value>) {
        let rs = self.scan();
        assert_eq!(rs["warnings"], serde_json::json!([]), "{what}");
        if self.python.is_none() {
            return (rs, None);
        }
        let py: Value = serde_json::from_str(&self.py(PY_SCAN, true)).unwrap();
        assert_eq!(py["warnings"], serde_json::json!([]), "{what}");
        assert_same(&rs, &py, what);
        let loaded = load.then(|| serde_json::from_str(&self.py(PY_LOAD_ALL, true)).unwrap());
        (rs, loaded)
    }

    fn repo(&self, folder: &str) -> PathBuf {
        self.cache.join(folder)
    }
}

/// Sets the access time of `path` (through symlinks: the blob) to `days` ago.
fn set_atime(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * DAY);
    fs::File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(t))
        .unwrap();
}

/// Sets the access time of every file of a snapshot to `days` ago.
fn age_snapshot(snapshot: &Path, days: u64) {
    for e in fs::read_dir(snapshot).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            age_snapshot(&e.path(), days);
        } else {
            set_atime(&e.path(), days);
        }
    }
}

/// `hf`'s `_format_size` (decimal units, one decimal), to predict the printed sizes.
fn format_size(num: u64) -> String {
    let mut n = num as f64;
    for unit in ["", "K", "M", "G", "T"] {
        if n.abs() < 1000.0 {
            return format!("{n:3.1}{unit}");
        }
        n /= 1000.0;
    }
    format!("{n:.1}P")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

/// The repo of a scan by `type/id`.
fn repo<'a>(scan: &'a Value, id: &str) -> Option<&'a Value> {
    scan["repos"].as_array().unwrap().iter().find(|r| {
        format!(
            "{}/{}",
            r["repo_type"].as_str().unwrap(),
            r["repo_id"].as_str().unwrap()
        ) == id
    })
}

struct Lru {
    env: Env,
    alpha_v1: String,
    alpha_v2: String,
}

/// Four repos (five revisions with a ref) whose last use is, oldest first: beta 50 days ago,
/// alpha@v1.0 40 days (its weights, shared with alpha@main, were read then), gamma 10 days,
/// alpha@main 2 days and the dataset 1 day. Python fills alpha@v1.0 and the dataset (when
/// there), hubcache the rest.
fn lru_fixture() -> Lru {
    let hub = FakeHub::start();
    let weights = noise(300_000, 1);
    let alpha_v1 = hub.commit(
        RepoKind::Model,
        "org/alpha",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"v\": 1}")),
            ("model.safetensors".into(), weights.clone()),
            ("sub/nested.txt".into(), Bytes::from_static(b"nested file\n")),
        ],
    );
    hub.tag(RepoKind::Model, "org/alpha", "v1.0", &alpha_v1);
    let alpha_v2 = hub.commit(
        RepoKind::Model,
        "org/alpha",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"v\": 2}")),
            ("model.safetensors".into(), weights),
            ("new.txt".into(), Bytes::from_static(b"new in v2\n")),
        ],
    );
    hub.commit(
        RepoKind::Model,
        "org/beta",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"beta\": 1}")),
            ("weights.bin".into(), noise(120_000, 2)),
        ],
    );
    hub.commit(
        RepoKind::Model,
        "org/gamma",
        "main",
        vec![("model.safetensors".into(), noise(50_000, 3))],
    );
    hub.commit(
        RepoKind::Dataset,
        "org/data",
        "main",
        vec![
            ("data.csv".into(), Bytes::from_static(b"a,b\n1,2\n")),
            ("README.md".into(), Bytes::from_static(b"# data\n")),
        ],
    );
    let env = Env::new(hub);
    if env.python.is_some() {
        env.py(
            "from huggingface_hub import snapshot_download\n\
             snapshot_download('org/alpha', revision='v1.0')\n\
             snapshot_download('org/data', repo_type='dataset')",
            false,
        );
    } else {
        env.ok(&["download", "org/alpha", "--revision", "v1.0"]);
        env.ok(&["download", "org/data", "--repo-type", "dataset"]);
    }
    env.ok(&["download", "org/alpha"]);
    env.ok(&["download", "org/beta"]);
    env.ok(&["download", "org/gamma"]);
    let snap = |folder: &str, commit: &str| env.repo(folder).join("snapshots").join(commit);
    let only = |folder: &str| {
        let dir = env.repo(folder).join("snapshots");
        let mut revs: Vec<PathBuf> = fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(revs.len(), 1, "{folder}");
        revs.remove(0)
    };
    age_snapshot(&only("models--org--beta"), 50);
    age_snapshot(&snap("models--org--alpha", &alpha_v1), 60);
    set_atime(&snap("models--org--alpha", &alpha_v1).join("model.safetensors"), 40);
    set_atime(&snap("models--org--alpha", &alpha_v2).join("config.json"), 2);
    set_atime(&snap("models--org--alpha", &alpha_v2).join("new.txt"), 2);
    age_snapshot(&only("models--org--gamma"), 10);
    age_snapshot(&only("datasets--org--data"), 1);
    Lru {
        env,
        alpha_v1,
        alpha_v2,
    }
}

/// Bytes of alpha@v1.0 that no other revision uses (its config and nested file).
fn alpha_v1_only(scan: &Value, v1: &str) -> u64 {
    let revs = repo(scan, "model/org/alpha").unwrap()["revisions"].as_array().unwrap();
    let blobs = |r: &Value| -> Vec<(String, u64)> {
        r["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["blob_path"].as_str().unwrap().to_string(), u(&f["size_on_disk"])))
            .collect()
    };
    let v1_rev = revs.iter().find(|r| r["commit_hash"] == v1).unwrap();
    let other: Vec<String> = revs
        .iter()
        .filter(|r| r["commit_hash"] != v1)
        .flat_map(|r| blobs(r).into_iter().map(|(p, _)| p))
        .collect();
    blobs(v1_rev)
        .into_iter()
        .filter(|(p, _)| !other.contains(p))
        .map(|(_, s)| s)
        .sum()
}

#[test]
fn max_size_evicts_least_recently_used_revisions_until_the_cache_fits() {
    let Lru {
        env,
        alpha_v1,
        alpha_v2,
    } = lru_fixture();
    let before = env.scan();
    let total = u(&before["size_on_disk"]);
    let beta = u(&repo(&before, "model/org/beta").unwrap()["size_on_disk"]);
    let gamma = u(&repo(&before, "model/org/gamma").unwrap()["size_on_disk"]);
    let v1_only = alpha_v1_only(&before, &alpha_v1);
    assert_eq!(v1_only, 8 + 12, "config v1 and the nested file; the weights are shared");
    // Fits exactly once beta, alpha@v1.0 and gamma are gone.
    let limit = total - beta - v1_only - gamma;
    let limit_arg = limit.to_string();

    // A dry run shows the order and the sizes, and changes nothing.
    let files = tree(&env.cache);
    let out = env.ok(&["cache", "prune", "--max-size", &limit_arg, "--dry-run"]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "About to delete 3 least recently used revision(s) ({} total)",
            format_size(total - limit)
        )),
        "{text}"
    );
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  - ") && l.contains('@'))
        .collect();
    assert_eq!(order.len(), 3, "{text}");
    assert!(
        order[0].starts_with("  - model/org/beta@") && order[0].contains("2 months ago"),
        "{text}"
    );
    assert!(
        order[1].starts_with(&format!("  - model/org/alpha@{alpha_v1} [v1.0]")),
        "{text}"
    );
    assert!(order[2].starts_with("  - model/org/gamma@"), "{text}");
    assert!(order
        .iter()
        .all(|l| l.contains(&format!("(to fit under {})", format_size(limit)))));
    assert!(
        text.contains(&format!(
            "Cache size: {} now, {} after (limit {}).",
            format_size(total),
            format_size(limit),
            format_size(limit)
        )),
        "{text}"
    );
    assert!(text.contains("Dry run: no files were deleted."));
    assert_eq!(tree(&env.cache), files, "a dry run changed the cache");
    // One byte less and alpha@main (next least recently used) has to go too; units parse.
    let tighter = stdout(&env.ok(&["cache", "prune", "--max-size", &(limit - 1).to_string(), "--dry-run"]));
    assert!(
        tighter.contains("About to delete 4 least recently used revision(s)"),
        "{tighter}"
    );
    assert!(
        tighter.contains(&format!("model/org/alpha@{alpha_v2} [main]")),
        "{tighter}"
    );
    let roomy = stdout(&env.ok(&["cache", "prune", "--max-size", "1GB", "--dry-run"]));
    assert!(roomy.contains("no revision to evict"), "{roomy}");
    let bad = env
        .hubcache()
        .args(["cache", "prune", "--max-size", "1GiB"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert_eq!(tree(&env.cache), files);

    let out = env.ok(&["cache", "prune", "--max-size", &limit_arg, "--yes"]);
    let text = stdout(&out);
    assert!(text.contains("Deleted ") && text.contains("; freed "), "{text}");
    assert!(
        text.contains(&format!("Cache size now: {}.", format_size(limit))),
        "{text}"
    );
    assert!(!env.repo("models--org--beta").exists() && !env.repo("models--org--gamma").exists());
    let alpha = env.repo("models--org--alpha");
    assert!(!alpha.join("snapshots").join(&alpha_v1).exists());
    assert!(!alpha.join("refs/v1.0").exists());
    assert!(alpha
        .join("snapshots")
        .join(&alpha_v2)
        .join("model.safetensors")
        .is_file());

    let (after, loaded) = env.check_with_python("after --max-size", true);
    assert_eq!(u(&after["size_on_disk"]), limit);
    assert!(repo(&after, "model/org/beta").is_none() && repo(&after, "model/org/gamma").is_none());
    assert_eq!(
        repo(&after, "model/org/alpha").unwrap()["revisions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    if let Some(loaded) = loaded {
        assert_eq!(
            loaded["repos"],
            serde_json::json!(["dataset/org/data", "model/org/alpha"])
        );
        // alpha@main: 3 files × (commit, main); data: 2 × 2.
        assert_eq!(loaded["loaded"], 10);
    }
    // Under the limit now: nothing more goes.
    let again = stdout(&env.ok(&["cache", "prune", "--max-size", &limit_arg, "--yes"]));
    assert!(again.contains("no revision to evict"), "{again}");
}

#[test]
fn older_than_evicts_only_revisions_unused_that_long() {
    let Lru {
        env,
        alpha_v1,
        alpha_v2,
    } = lru_fixture();
    let before = env.scan();
    let total = u(&before["size_on_disk"]);
    let beta = u(&repo(&before, "model/org/beta").unwrap()["size_on_disk"]);
    let freed = beta + alpha_v1_only(&before, &alpha_v1);

    let files = tree(&env.cache);
    let out = env.ok(&["cache", "prune", "--older-than", "30d", "--dry-run"]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "About to delete 2 least recently used revision(s) ({} total)",
            format_size(freed)
        )),
        "{text}"
    );
    let evicted: Vec<&str> = text.lines().filter(|l| l.contains("(unused for 30d)")).collect();
    assert_eq!(evicted.len(), 2, "{text}");
    assert!(evicted[0].contains("model/org/beta@") && evicted[1].contains(&format!("model/org/alpha@{alpha_v1}")));
    assert!(!text.contains("model/org/gamma") && !text.contains(&alpha_v2), "{text}");
    assert_eq!(tree(&env.cache), files, "a dry run changed the cache");
    let none = stdout(&env.ok(&["cache", "prune", "--older-than", "2mo", "--dry-run"]));
    assert!(none.contains("no revision to evict"), "{none}");

    let text = stdout(&env.ok(&["cache", "prune", "--older-than", "30d", "--yes"]));
    assert!(
        text.contains(&format!("Cache size now: {}.", format_size(total - freed))),
        "{text}"
    );
    assert!(!env.repo("models--org--beta").exists());
    let alpha = env.repo("models--org--alpha");
    assert!(!alpha.join("snapshots").join(&alpha_v1).exists());
    // The weights alpha@main still uses stay.
    assert_eq!(
        fs::read(alpha.join("snapshots").join(&alpha_v2).join("model.safetensors"))
            .unwrap()
            .len(),
        300_000
    );
    let (after, loaded) = env.check_with_python("after --older-than", true);
    assert_eq!(u(&after["size_on_disk"]), total - freed);
    if let Some(loaded) = loaded {
        assert_eq!(
            loaded["repos"],
            serde_json::json!(["dataset/org/data", "model/org/alpha", "model/org/gamma"])
        );
        // alpha@main 3 × 2, gamma 1 × 2, data 2 × 2.
        assert_eq!(loaded["loaded"], 12);
    }
}

/// `org/slow` (a small file cached 90 days ago, a big one whose GET stalls 3 s) and `org/old`
/// (cached 90 days ago).
fn busy_fixture() -> (Env, Bytes) {
    let hub = FakeHub::start();
    hub.set_lfs_rule(|_, _| false);
    let big = noise(200_000, 9);
    hub.commit(
        RepoKind::Model,
        "org/slow",
        "main",
        vec![
            ("small.txt".into(), Bytes::from_static(b"small\n")),
            ("big.txt".into(), big.clone()),
        ],
    );
    hub.commit(
        RepoKind::Model,
        "org/old",
        "main",
        vec![("old.txt".into(), Bytes::from_static(b"old\n"))],
    );
    let env = Env::new(hub);
    env.ok(&["download", "org/slow", "small.txt"]);
    env.ok(&["download", "org/old"]);
    for folder in ["models--org--slow", "models--org--old"] {
        age_snapshot(&env.repo(folder).join("snapshots"), 90);
    }
    env.hub.inject(
        FaultRule::new("big.txt", Fault::Delay { millis: 3000 })
            .on_method("GET")
            .repeat(1),
    );
    (env, big)
}

/// After a prune beside a download of `org/slow`: `org/old` is gone, `org/slow` keeps its
/// cached file and gains the downloaded one, and both scanners see a clean cache.
fn assert_slow_kept(env: &Env, prune: &Output, downloaded: &Path, big: &[u8]) {
    assert!(prune.status.success(), "{}\n{}", stdout(prune), stderr(prune));
    assert!(
        stderr(prune).contains("note: model/org/slow is left alone: a download is writing into it"),
        "{}",
        stderr(prune)
    );
    assert!(stdout(prune).contains("model/org/old@"), "{}", stdout(prune));
    assert!(!stdout(prune).contains("model/org/slow@"), "{}", stdout(prune));
    assert!(!env.repo("models--org--old").exists());
    assert_eq!(fs::read(downloaded).unwrap(), big);
    assert_eq!(fs::read(downloaded.with_file_name("small.txt")).unwrap(), b"small\n");
    let (after, _) = env.check_with_python("after a prune beside a download", false);
    let slow = repo(&after, "model/org/slow").unwrap();
    assert_eq!(slow["revisions"][0]["nb_files"], 2);
}

#[test]
fn a_repo_a_running_hubcache_download_writes_into_is_not_evicted() {
    let (env, big) = busy_fixture();
    let download = env
        .hubcache()
        .args(["download", "org/slow", "big.txt"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_incomplete(&env.repo("models--org--slow/blobs"));
    let prune = env
        .hubcache()
        .args(["cache", "prune", "--older-than", "30d", "--yes"])
        .output()
        .unwrap();
    let dl = download.wait_with_output().unwrap();
    assert!(dl.status.success(), "download broke: {}", stderr(&dl));
    assert!(
        stderr(&prune).contains("waiting for running hubcache downloads to finish"),
        "{}",
        stderr(&prune)
    );
    assert_slow_kept(&env, &prune, Path::new(stdout(&dl).trim()), &big);
}

#[test]
fn a_revision_read_while_prune_waits_for_a_download_is_kept() {
    let (env, _) = busy_fixture();
    let download = env
        .hubcache()
        .args(["download", "org/slow", "big.txt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_incomplete(&env.repo("models--org--slow/blobs"));
    let log = env.home.path().join("prune.err");
    let prune = env
        .hubcache()
        .args(["cache", "prune", "--older-than", "30d", "--yes"])
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // The plan (org/old evicted) is shown; prune now waits for the download's clean-up lock.
    let start = std::time::Instant::now();
    while !fs::read_to_string(&log)
        .unwrap()
        .contains("waiting for running hubcache downloads")
    {
        assert!(start.elapsed() < Duration::from_secs(30), "prune did not wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile something reads org/old: it is no longer unused for 30 days.
    age_snapshot(&env.repo("models--org--old").join("snapshots"), 0);
    let out = prune.wait_with_output().unwrap();
    assert!(download.wait_with_output().unwrap().status.success());
    let err = fs::read_to_string(&log).unwrap();
    assert!(out.status.success(), "{}\n{err}", stdout(&out));
    assert!(stdout(&out).contains("model/org/old@"), "{}", stdout(&out));
    assert!(
        err.contains("kept model/org/old@") && err.contains("used or changed since the plan was made"),
        "{err}"
    );
    assert!(env.repo("models--org--old").join("snapshots").is_dir());
    let (after, _) = env.check_with_python("after a prune that kept a revision read meanwhile", false);
    assert!(repo(&after, "model/org/old").is_some());
}

#[test]
fn a_repo_a_running_python_download_writes_into_is_not_evicted() {
    if python().is_none() {
        return;
    }
    let (env, big) = busy_fixture();
    let child = env
        .py_cmd(
            "from huggingface_hub import hf_hub_download\nprint(hf_hub_download('org/slow', 'big.txt'))",
            false,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let temp = wait_for_incomplete(&env.repo("models--org--slow/blobs"));
    let prune = env
        .hubcache()
        .args(["cache", "prune", "--max-size", "0", "--yes"])
        .output()
        .unwrap();
    assert!(
        temp.exists(),
        "prune deleted the temp file of a running Python download"
    );
    assert!(
        stderr(&prune).contains("warning: the cache stays over 0.0"),
        "{}",
        stderr(&prune)
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python download broke: {}", stderr(&out));
    let path = PathBuf::from(stdout(&out).trim().lines().last().unwrap());
    assert_slow_kept(&env, &prune, &path, &big);
}

#[test]
fn a_shared_store_payload_a_kept_repo_links_stays() {
    let env = Env::new(FakeHub::start());
    let (payload, unreferenced, _) = shared_store_fixture(&env.cache);
    let a = env.repo("models--org--a");
    let b = env.repo("models--org--b");
    // a's files (its config and the shared payload) were last read 60 days ago, b's config now.
    age_snapshot(&a.join("snapshots"), 60);
    age_snapshot(&b.join("snapshots"), 0);
    set_atime(&payload, 60);
    let before = env.scan();
    assert_eq!(u(&before["size_on_disk"]), 40_000 + 2 * 11 + 15);

    let files = tree(&env.cache);
    let text = stdout(&env.ok(&["cache", "prune", "--older-than", "30d", "--dry-run"]));
    assert!(
        text.contains("1 least recently used revision(s) and 2 shared blob(s) to check (26.0 total)"),
        "{text}"
    );
    assert!(text.contains("  - model/org/a (entire repo)"), "{text}");
    assert!(text.contains("Cache size: 40.0K now, 40.0K after."), "{text}");
    assert_eq!(tree(&env.cache), files);

    env.ok(&["cache", "prune", "--older-than", "30d", "--yes"]);
    assert!(!a.exists() && b.exists());
    assert!(payload.is_file(), "org/b still links the payload");
    assert!(!unreferenced.exists(), "prune collects the unreferenced payload");
    let manifest = fs::read_to_string(format!("{}.refs", payload.display())).unwrap();
    assert_eq!(manifest.lines().collect::<Vec<_>>().len(), 1, "{manifest}");
    assert!(manifest.starts_with("models--org--b/blobs/"), "{manifest}");
    let (after, loaded) = env.check_with_python("shared store after --older-than", true);
    assert_eq!(u(&after["size_on_disk"]), 40_000 + 11);
    if let Some(loaded) = loaded {
        assert_eq!(loaded["repos"], serde_json::json!(["model/org/b"]));
        assert_eq!(loaded["loaded"], 4);
    }

    // The last user goes: its link, then the payload by the sweep.
    let text = stdout(&env.ok(&["cache", "prune", "--max-size", "0", "--yes"]));
    assert!(text.contains("Cache size now: 0.0."), "{text}");
    assert!(!b.exists() && !payload.exists());
    let (after, _) = env.check_with_python("shared store after --max-size 0", false);
    assert_eq!(u(&after["size_on_disk"]), 0);
}
