//! `hubcache cache ls | rm | prune | verify` with the real binary, on caches filled both by
//! Python huggingface_hub 2.4.0 and by hubcache through the fake Hub, checked against
//! Python's own `scan_cache_dir()` and offline loading. The Python parts are skipped outside CI
//! when the venv is missing (and fail in CI); the hubcache-only parts always run.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::cache_fixtures::{
    assert_same, noise, shared_store_fixture, tree, wait_for_incomplete, PY_LOAD_ALL, PY_SCAN,
};
use common::{clean_env, hubcache, python, stderr, stdout, CacheEnv};
use hubcache_test_support::{git_blob_sha1, sha256_hex, FakeHub, Fault, FaultRule, RepoKind};
use serde_json::Value;

/// The cache fixture: a [`CacheEnv`] and the commits it was filled with.
struct Fixture {
    env: CacheEnv,
    alpha_v1: String,
    alpha_v2: String,
    beta_b1: String,
    gamma: String,
}

impl std::ops::Deref for Fixture {
    type Target = CacheEnv;
    fn deref(&self) -> &CacheEnv {
        &self.env
    }
}

impl Fixture {
    fn py(&self, code: &str, offline: bool) -> String {
        self.py_stdout(code, offline)
    }

    /// Python's `scan_cache_dir()` in the JSON shape of `hubcache cache ls --json`.
    fn py_scan(&self) -> Value {
        let text = self.py(PY_SCAN, true);
        serde_json::from_str(text.trim().lines().last().unwrap()).unwrap()
    }

    fn rs_scan(&self) -> Value {
        let out = self.ok(&["cache", "ls", "--json"]);
        let mut v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let mut warnings: Vec<Value> = v["warnings"].as_array().unwrap().clone();
        warnings.sort_by_key(|w| w.as_str().unwrap().to_string());
        v["warnings"] = Value::Array(warnings);
        v
    }

    /// Every path under the cache (except `.locks`) with its size, to prove nothing changed.
    fn tree(&self) -> BTreeMap<String, u64> {
        tree(&self.cache)
    }

    fn repo(&self, folder: &str) -> PathBuf {
        self.cache.join(folder)
    }
}

/// Several repos, two revisions of `org/alpha` (v1 detached once main moves to v2, sharing the
/// LFS blob), a dataset, a tag; filled by Python (when available) and by hubcache; plus a stray
/// root file, a leftover `.incomplete`, an unused blob and an empty repo folder.
fn fixture() -> Fixture {
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
    let beta_b1 = hub.commit(
        RepoKind::Model,
        "org/beta",
        "main",
        vec![("config.json".into(), Bytes::from_static(b"{\"beta\": 1}"))],
    );
    hub.tag(RepoKind::Model, "org/beta", "v1.0", &beta_b1);
    hub.commit(
        RepoKind::Model,
        "org/beta",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"beta\": 2}")),
            ("weights.bin".into(), noise(120_000, 2)),
        ],
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
    let gamma = hub.commit(
        RepoKind::Model,
        "org/gamma",
        "main",
        vec![("model.safetensors".into(), noise(50_000, 3))],
    );
    let mut fx = Fixture {
        env: CacheEnv::new(hub),
        alpha_v1,
        alpha_v2: String::new(),
        beta_b1,
        gamma,
    };
    if fx.python.is_some() {
        fx.py(
            "from huggingface_hub import snapshot_download, hf_hub_download\n\
             snapshot_download('org/alpha')\n\
             snapshot_download('org/data', repo_type='dataset')\n\
             hf_hub_download('org/beta', 'config.json', revision='v1.0')",
            false,
        );
    } else {
        fx.ok(&["download", "org/alpha"]);
        fx.ok(&["download", "org/data", "--repo-type", "dataset"]);
        fx.ok(&["download", "org/beta", "config.json", "--revision", "v1.0"]);
    }
    fx.alpha_v2 = fx.hub.commit(
        RepoKind::Model,
        "org/alpha",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"v\": 2}")),
            ("model.safetensors".into(), weights),
            ("new.txt".into(), Bytes::from_static(b"new in v2\n")),
        ],
    );
    fx.ok(&["download", "org/alpha"]);
    fx.ok(&["download", "org/beta"]);
    fx.ok(&["download", "org/gamma"]);
    // Leftovers and strays.
    fs::write(fx.cache.join("version.txt"), "1").unwrap();
    let incomplete = fx
        .repo("models--org--beta")
        .join(format!("blobs/{}.0badf00d.incomplete", git_blob_sha1(b"{\"beta\": 3}")));
    fs::write(&incomplete, b"partial").unwrap();
    fs::write(
        fx.repo("models--org--alpha")
            .join("blobs")
            .join(git_blob_sha1(b"orphan")),
        b"orphan",
    )
    .unwrap();
    let ghost = fx.repo("models--org--ghost");
    fs::create_dir_all(ghost.join("blobs")).unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    for p in [ghost.join("blobs"), ghost.clone()] {
        fs::File::open(&p).unwrap().set_modified(old).unwrap();
    }
    fx
}

#[test]
fn ls_json_equals_python_scan_field_for_field() {
    let fx = fixture();
    let rs = fx.rs_scan();
    // The shape, whatever Python says.
    let ids: Vec<String> = rs["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["repo_type"].as_str().unwrap(),
                r["repo_id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            "dataset/org/data",
            "model/org/alpha",
            "model/org/beta",
            "model/org/gamma"
        ]
    );
    let alpha = &rs["repos"][1];
    assert_eq!(alpha["revisions"].as_array().unwrap().len(), 2);
    assert_eq!(alpha["refs"]["main"], fx.alpha_v2.as_str());
    let v1 = alpha["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["commit_hash"] == fx.alpha_v1.as_str())
        .unwrap();
    assert_eq!(v1["refs"], serde_json::json!([]), "v1 is detached");
    // Shared LFS blob counted once: 3 + 2 distinct small files + 300 kB.
    assert_eq!(alpha["nb_files"], 5);
    assert_eq!(rs["repos"][2]["refs"]["v1.0"], fx.beta_b1.as_str());
    assert_eq!(rs["warnings"].as_array().unwrap().len(), 2, "{}", rs["warnings"]);
    assert_eq!(rs["incomplete_files"].as_array().unwrap().len(), 1);
    // Human view: sizes and times as Python prints them.
    let table = stdout(&fx.ok(&["cache", "ls"]));
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("model/org/alpha") && table.contains("a few seconds ago"),
        "{table}"
    );
    assert!(
        table.contains("Found 4 repo(s) for a total of 6 revision(s)"),
        "{table}"
    );
    let revs = stdout(&fx.ok(&["cache", "ls", "--revisions", "-f", "refs=v1.0"]));
    assert!(revs.contains(&fx.beta_b1) && !revs.contains(&fx.gamma), "{revs}");
    let filtered = fx.ok(&["cache", "ls", "--json", "-f", "type=dataset"]);
    let filtered: Value = serde_json::from_str(&stdout(&filtered)).unwrap();
    assert_eq!(filtered["repos"].as_array().unwrap().len(), 1);
    let warn = stderr(&fx.ok(&["cache", "ls"]));
    assert!(
        warn.contains("Found 2 cache inconsistencies") && warn.contains("1 incomplete download(s)"),
        "{warn}"
    );

    if fx.python.is_none() {
        return;
    }
    let py = fx.py_scan();
    assert_same(&rs, &py, "scan");
}

#[test]
fn rm_and_prune_leave_a_cache_python_scans_clean_and_loads_offline() {
    let fx = fixture();
    // Dry runs change nothing.
    let before = fx.tree();
    let out = fx.ok(&["cache", "rm", "org/alpha", "--dry-run"]);
    assert!(stdout(&out).contains("About to delete 1 repo(s)"), "{}", stdout(&out));
    assert!(stdout(&out).contains("Dry run"));
    fx.ok(&["cache", "prune", "--dry-run"]);
    assert_eq!(fx.tree(), before, "a dry run changed the cache");

    // A revision by ref (tag v1.0 of beta), a whole repo by bare commit hash (gamma).
    let out = fx.ok(&["cache", "rm", "org/beta@v1.0", &fx.gamma, "--yes"]);
    let text = stdout(&out);
    assert!(text.contains("About to delete 1 repo(s) and 1 revision(s)"), "{text}");
    assert!(text.contains(&format!("{} [v1.0]", fx.beta_b1)), "{text}");
    assert!(text.contains("Deleted 1 repo(s) and 2 revision(s)"), "{text}");
    assert!(!fx.repo("models--org--gamma").exists());
    assert!(!fx.repo("models--org--beta").join("refs/v1.0").exists());
    // A target that matches nothing is an error with a hint.
    let miss = fx.run(&["cache", "rm", "org/nope", "--yes"]);
    assert_eq!(miss.status.code(), Some(1));
    assert!(stderr(&miss).contains("hint: "), "{}", stderr(&miss));

    // Prune: v1 of alpha (detached), the unused blob, the leftover .incomplete, the empty repo.
    fs::remove_file(fx.cache.join("version.txt")).unwrap();
    let out = fx.ok(&["cache", "prune", "--yes"]);
    let text = stdout(&out);
    assert!(
        text.contains("1 unreferenced revision(s), 1 unused blob(s) and 1 incomplete download(s)"),
        "{text}"
    );
    assert!(text.contains("empty folder"), "{text}");
    assert!(!fx
        .repo("models--org--alpha")
        .join("snapshots")
        .join(&fx.alpha_v1)
        .exists());
    assert!(!fx.repo("models--org--ghost").exists());
    let after = fx.rs_scan();
    assert_eq!(after["warnings"], serde_json::json!([]));
    assert_eq!(after["incomplete_files"], serde_json::json!([]));
    assert_eq!(after["repos"].as_array().unwrap().len(), 3);
    // Nothing left to prune; everything left is intact.
    let again = stdout(&fx.ok(&["cache", "prune", "--yes"]));
    assert!(again.starts_with("No unreferenced revisions"), "{again}");
    let verify = stdout(&fx.ok(&["cache", "verify"]));
    assert!(verify.contains("all checksums match"), "{verify}");

    if fx.python.is_none() {
        return;
    }
    // Scan again: verify just read every blob (access times moved).
    let after = fx.rs_scan();
    let py = fx.py_scan();
    assert_eq!(py["warnings"], serde_json::json!([]));
    assert_same(&after, &py, "scan after rm/prune");
    let loaded: Value = serde_json::from_str(fx.py(PY_LOAD_ALL, true).trim().lines().last().unwrap()).unwrap();
    assert_eq!(
        loaded["repos"],
        serde_json::json!(["dataset/org/data", "model/org/alpha", "model/org/beta"])
    );
    // alpha v2: 3 files × (commit, main); beta b2: 2 × 2; data: 2 × 2.
    assert_eq!(loaded["loaded"], 14);
}

#[test]
fn verify_finds_a_flipped_byte_and_names_the_file() {
    let fx = fixture();
    let clean = fx.ok(&["cache", "verify", "org/data", "--repo-type", "dataset"]);
    assert!(stdout(&clean).contains("all checksums match"), "{}", stdout(&clean));
    // Flip one byte of alpha's LFS blob (shared by both of its revisions).
    let blobs = fx.repo("models--org--alpha").join("blobs");
    let lfs = fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().len() == 64)
        .unwrap();
    let mut bytes = fs::read(&lfs).unwrap();
    bytes[123_456] ^= 0x20;
    fs::set_permissions(&lfs, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&lfs, &bytes).unwrap();

    let out = fx.run(&["cache", "verify"]);
    assert_ne!(out.status.code(), Some(0));
    let text = stdout(&out);
    let corrupt: Vec<&str> = text.lines().filter(|l| l.starts_with("corrupt: ")).collect();
    assert_eq!(corrupt.len(), 2, "both revisions name the file: {text}");
    for rev in [&fx.alpha_v1, &fx.alpha_v2] {
        assert!(
            corrupt.iter().any(|l| l.contains(&format!("{rev}/model.safetensors"))),
            "{text}"
        );
    }
    assert!(text.contains("expected sha256"), "{text}");
    let one = fx.run(&["cache", "verify", "org/alpha", "--revision", "main"]);
    assert_eq!(one.status.code(), Some(1));
    assert_eq!(stdout(&one).lines().filter(|l| l.starts_with("corrupt: ")).count(), 1);
    assert!(fx.run(&["cache", "verify", "org/beta"]).status.success());

    // A broken link is reported missing.
    fs::remove_file(blobs.join(git_blob_sha1(b"nested file\n"))).unwrap();
    let out = fx.run(&["cache", "verify", "org/alpha", "--revision", &fx.alpha_v1]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("missing: ") && stdout(&out).contains("sub/nested.txt"));

    // Against the Hub: both cached snapshots of beta hold exactly what the Hub lists for their
    // commits (v1.0 had a single file).
    let remote = fx.run(&["cache", "verify", "org/beta", "--remote"]);
    assert!(remote.status.success(), "{}\n{}", stdout(&remote), stderr(&remote));
    // Repair the blob, then make alpha's v2 snapshot partial: one file the Hub lists is gone.
    bytes[123_456] ^= 0x20;
    fs::write(&lfs, &bytes).unwrap();
    let snap = fx.repo("models--org--alpha").join("snapshots").join(&fx.alpha_v2);
    fs::remove_file(snap.join("new.txt")).unwrap();
    let args = ["cache", "verify", "org/alpha", "--revision", "main", "--remote"];
    let warn_only = fx.run(&args);
    assert!(warn_only.status.success(), "{}", stdout(&warn_only));
    assert!(
        stderr(&warn_only).contains("1 file(s) on the Hub"),
        "{}",
        stderr(&warn_only)
    );
    let strict = fx.run(&[&args[..], &["--fail-on-missing-files"]].concat());
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stdout(&strict).contains("missing locally: model/org/alpha@"),
        "{}",
        stdout(&strict)
    );
    assert!(stdout(&strict).contains("new.txt"));
}

fn slow_repo(hub: &FakeHub) -> Bytes {
    hub.set_lfs_rule(|_, _| false);
    let content = noise(200_000, 9);
    hub.commit(
        RepoKind::Model,
        "org/slow",
        "main",
        vec![("big.txt".into(), content.clone())],
    );
    hub.inject(
        FaultRule::new("big.txt", Fault::Delay { millis: 3000 })
            .on_method("GET")
            .repeat(1),
    );
    content
}

#[test]
fn prune_waits_for_a_running_hubcache_download() {
    let hub = FakeHub::start();
    let content = slow_repo(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let blobs = cache.join("models--org--slow/blobs");
    fs::create_dir_all(&blobs).unwrap();
    let stale = blobs.join(format!("{}.stale000.incomplete", git_blob_sha1(b"x")));
    fs::write(&stale, b"left over").unwrap();
    let download = hubcache(home.path())
        .args(["download", "org/slow", "big.txt"])
        .env("HF_HUB_CACHE", &cache)
        .env("HF_ENDPOINT", hub.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let temp = wait_for_incomplete(&blobs);
    let started = Instant::now();
    let prune = hubcache(home.path())
        .args(["cache", "prune", "--yes"])
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    let waited = started.elapsed();
    let dl = download.wait_with_output().unwrap();
    assert!(prune.status.success(), "{}\n{}", stdout(&prune), stderr(&prune));
    assert!(
        stderr(&prune).contains("waiting for running hubcache downloads to finish"),
        "{}",
        stderr(&prune)
    );
    assert!(waited >= Duration::from_millis(1500), "prune did not wait: {waited:?}");
    assert!(dl.status.success(), "download broke: {}", stderr(&dl));
    let path = PathBuf::from(stdout(&dl).trim());
    assert_eq!(fs::read(&path).unwrap(), content);
    assert!(!temp.exists(), "the temp file became the blob");
    assert!(blobs.join(git_blob_sha1(&content)).is_file(), "the fresh blob survived");
    assert!(!stale.exists(), "the stale leftover was pruned");
}

#[test]
fn prune_beside_a_running_python_download_keeps_its_temp_file() {
    let Some(py) = python() else { return };
    let hub = FakeHub::start();
    let content = slow_repo(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let mut cmd = Command::new(&py);
    clean_env(&mut cmd, home.path());
    let child = cmd
        .arg("-c")
        .arg("from huggingface_hub import hf_hub_download\nprint(hf_hub_download('org/slow', 'big.txt'))")
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HOME", home.path().join("hf-home"))
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let blobs = cache.join("models--org--slow/blobs");
    let temp = wait_for_incomplete(&blobs);
    let prune = hubcache(home.path())
        .args(["cache", "prune", "--yes"])
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    assert!(prune.status.success(), "{}\n{}", stdout(&prune), stderr(&prune));
    assert!(
        temp.exists(),
        "prune deleted the temp file of a running Python download"
    );
    assert!(
        stderr(&prune).contains("a running download is writing it"),
        "{}",
        stderr(&prune)
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python download broke: {}", stderr(&out));
    let path = PathBuf::from(stdout(&out).trim().lines().last().unwrap());
    assert_eq!(fs::read(path).unwrap(), content);
}

#[test]
fn shared_blob_store_scan_verify_rm_prune() {
    let env = CacheEnv::new(FakeHub::start());
    let (p1, p2, _) = shared_store_fixture(&env.cache);
    let fx = Fixture {
        env,
        alpha_v1: String::new(),
        alpha_v2: String::new(),
        beta_b1: String::new(),
        gamma: String::new(),
    };
    let compare = |what: &str| {
        let rs = fx.rs_scan();
        if fx.python.is_some() {
            let py = fx.py_scan();
            assert_eq!(py["warnings"], serde_json::json!([]), "{what}");
            assert_same(&rs, &py, what);
        }
        rs
    };
    let rs = compare("shared store");
    assert_eq!(rs["warnings"], serde_json::json!([]));
    assert_eq!(rs["repos"][0]["size_on_disk"], 40_000 + 11, "logical per repo");
    assert_eq!(rs["size_on_disk"], 40_000 + 11 * 2 + 15, "physical: each payload once");
    assert!(rs["repos"][0]["revisions"][0]["files"][1]["blob_path"]
        .as_str()
        .unwrap()
        .ends_with(&format!("models--org--a/blobs/{}", sha256_hex(&noise(40_000, 5)))));
    let ls = stderr(&fx.ok(&["cache", "ls"]));
    assert!(ls.contains("1 unreferenced shared blob(s)"), "{ls}");

    let ok = fx.ok(&["cache", "verify"]);
    assert!(stdout(&ok).contains("all checksums match"), "{}", stdout(&ok));
    // Corrupt the payload: both repos' files are named.
    fs::set_permissions(&p1, fs::Permissions::from_mode(0o644)).unwrap();
    let good = fs::read(&p1).unwrap();
    let mut bad = good.clone();
    bad[7] ^= 1;
    fs::write(&p1, &bad).unwrap();
    let out = fx.run(&["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let corrupt = stdout(&out);
    assert!(corrupt.contains("models--org--a/snapshots") && corrupt.contains("models--org--b/snapshots"));
    fs::write(&p1, &good).unwrap();

    // rm one repo: its link goes, the payload stays (b still uses it).
    fx.ok(&["cache", "rm", "org/a", "--yes"]);
    assert!(p1.exists());
    let manifest =
        fs::read_to_string(p1.with_file_name(format!("{}.refs", p1.file_name().unwrap().to_string_lossy()))).unwrap();
    assert_eq!(manifest.lines().count(), 1, "{manifest}");
    compare("after rm org/a");
    // prune: the unreferenced payload goes.
    fx.ok(&["cache", "prune", "--yes"]);
    assert!(!p2.exists() && p1.exists());
    compare("after prune");
    // rm the last user: the payload is swept.
    fx.ok(&["cache", "rm", "org/b", "--yes"]);
    assert!(!p1.exists());
    let rs = compare("after rm org/b");
    assert_eq!(rs["size_on_disk"], 0);
}
