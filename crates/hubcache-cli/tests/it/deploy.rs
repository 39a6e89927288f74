//! Reproducible deployments as an operator runs them: lock → sync → export on machine A (the
//! fake Hub), import on machine B with no network, then Python, transformers and `hubcache
//! serve` use B's cache.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bytes::Bytes;
use common::{hubcache, python, single_path, stderr, stdout, Served};
use hubcache_test_support::{FakeHub, RepoKind};

const UNREACHABLE: &str = "http://127.0.0.1:9";

fn weights(n: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

struct Machine {
    home: tempfile::TempDir,
}

impl Machine {
    fn new() -> Self {
        Machine {
            home: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.home.path().join(p)
    }
    /// `hubcache ARGS` run in the machine's home, with its cache and endpoint.
    fn run(&self, endpoint: &str, args: &[&str]) -> Output {
        hubcache(self.home.path())
            .current_dir(self.home.path())
            .args(args)
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HUB_CACHE", self.path("cache"))
            .output()
            .unwrap()
    }
    fn ok(&self, endpoint: &str, args: &[&str]) -> Output {
        let o = self.run(endpoint, args);
        assert!(o.status.success(), "hubcache {args:?} failed:\n{}", stderr(&o));
        o
    }
}

/// Every entry under `root`: relative path → symlink target or file content.
fn tree_of(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    fs::read_link(&p).unwrap().to_string_lossy().into_owned().into_bytes(),
                ));
            } else if meta.is_dir() {
                if !rel.starts_with(".locks") {
                    stack.push(p);
                }
            } else {
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn seed(hub: &FakeHub) -> (String, String) {
    let model = hub.commit(
        RepoKind::Model,
        "acme/encoder",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"model_type\": \"bert\"}")),
            ("model.safetensors".into(), weights(4 << 20, 1)),
            ("onnx/model.onnx".into(), weights(1 << 20, 2)),
            ("README.md".into(), Bytes::from_static(b"# encoder\n")),
        ],
    );
    let data = hub.commit(
        RepoKind::Dataset,
        "acme/eval",
        "main",
        vec![
            ("data/test.parquet".into(), weights(2 << 20, 3)),
            ("README.md".into(), Bytes::from_static(b"# eval\n")),
        ],
    );
    (model, data)
}

const MANIFEST: &str =
    "[[repo]]\nid = \"acme/encoder\"\nexclude = [\"onnx/\"]\n\n[[repo]]\nid = \"acme/eval\"\ntype = \"dataset\"\n";

#[test]
fn lock_sync_export_import_round_trip() {
    let hub = FakeHub::start();
    let (model_commit, data_commit) = seed(&hub);
    let a = Machine::new();
    fs::write(a.path("hubcache.toml"), MANIFEST).unwrap();
    a.ok(&hub.url(), &["lock"]);
    let lock = fs::read_to_string(a.path("hubcache.lock")).unwrap();
    assert!(lock.contains(&model_commit) && lock.contains(&data_commit), "{lock}");
    assert!(!lock.contains("onnx/model.onnx"), "exclude applied");
    assert_eq!(a.run(&hub.url(), &["lock", "--check"]).status.code(), Some(0));

    // The branch moves after locking: sync still fetches the pinned commit.
    hub.commit(
        RepoKind::Model,
        "acme/encoder",
        "main",
        vec![("config.json".into(), Bytes::from_static(b"{\"v\": 2}"))],
    );
    a.ok(&hub.url(), &["sync", "--locked"]);
    let snap = a.path(&format!("cache/models--acme--encoder/snapshots/{model_commit}"));
    assert_eq!(
        fs::read(snap.join("config.json")).unwrap(),
        b"{\"model_type\": \"bert\"}"
    );
    assert!(!snap.join("onnx").exists());
    assert_eq!(
        fs::read_to_string(a.path("cache/models--acme--encoder/refs/main")).unwrap(),
        model_commit
    );
    assert_eq!(
        lock,
        fs::read_to_string(a.path("hubcache.lock")).unwrap(),
        "--locked never touches the lock"
    );

    hub.clear_requests();
    a.ok(UNREACHABLE, &["sync", "--offline"]);
    assert_eq!(hub.requests().len(), 0);

    let out = a.ok(&hub.url(), &["export", "--lock", "hubcache.lock", "-o", "bundle.tar"]);
    assert_eq!(single_path(&out), PathBuf::from("bundle.tar"));
    let bundle = a.path("bundle.tar");
    let unique: u64 = (4 << 20) + (2 << 20) + 22 + 10 + 7;
    let size = fs::metadata(&bundle).unwrap().len();
    assert!(
        size as f64 <= 1.01 * unique as f64,
        "bundle {size} vs unique blobs {unique}"
    );

    // Machine B: fresh cache, no network at all.
    let b = Machine::new();
    let mut import = hubcache(b.home.path());
    let out = import
        .args(["import"])
        .arg(&bundle)
        .env("HF_ENDPOINT", UNREACHABLE)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", b.path("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let again = b.run(UNREACHABLE, &["import", bundle.to_str().unwrap()]);
    assert!(again.status.success(), "import is idempotent: {}", stderr(&again));
    let p = single_path(&b.run(
        UNREACHABLE,
        &["download", "acme/encoder", "model.safetensors", "--offline"],
    ));
    assert_eq!(fs::read(p).unwrap(), weights(4 << 20, 1));
    let p = single_path(&b.ok(
        UNREACHABLE,
        &[
            "download",
            "acme/eval",
            "data/test.parquet",
            "--repo-type",
            "dataset",
            "--offline",
        ],
    ));
    assert_eq!(fs::read(p).unwrap(), weights(2 << 20, 3));
    // The same lock checks out on B offline too.
    fs::copy(a.path("hubcache.lock"), b.path("hubcache.lock")).unwrap();
    b.ok(
        UNREACHABLE,
        &["sync", "--offline", "--locked", "--manifest", "absent.toml"],
    );

    // Two syncs of one lock into two fresh caches are identical.
    let c1 = Machine::new();
    let c2 = Machine::new();
    for m in [&c1, &c2] {
        fs::copy(a.path("hubcache.lock"), m.path("hubcache.lock")).unwrap();
        m.ok(&hub.url(), &["sync", "--locked", "--manifest", "absent.toml"]);
    }
    assert_eq!(tree_of(&c1.path("cache")), tree_of(&c2.path("cache")));
    assert_eq!(
        tree_of(&c1.path("cache"))
            .into_iter()
            .filter(|(p, _)| p.contains("/blobs/"))
            .count(),
        5
    );
}

#[test]
fn lock_check_upgrade_and_hostile_bundles() {
    let hub = FakeHub::start();
    let (model_commit, _) = seed(&hub);
    let a = Machine::new();
    fs::write(a.path("hubcache.toml"), MANIFEST).unwrap();
    a.ok(&hub.url(), &["lock"]);

    fs::write(
        a.path("hubcache.toml"),
        MANIFEST.replace("exclude = [\"onnx/\"]", "exclude = []"),
    )
    .unwrap();
    let check = a.run(&hub.url(), &["lock", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains("acme/encoder") && stderr(&check).contains("hint:"),
        "{}",
        stderr(&check)
    );
    let locked = a.run(&hub.url(), &["sync", "--locked"]);
    assert_eq!(locked.status.code(), Some(1), "--locked refuses a stale lock");
    fs::write(a.path("hubcache.toml"), MANIFEST).unwrap();

    // Export by repo name from the cache, then tamper.
    a.ok(&hub.url(), &["sync"]);
    a.ok(&hub.url(), &["export", "acme/encoder", "-o", "b.tar"]);
    let good = fs::read(a.path("b.tar")).unwrap();
    let mut flipped = good.clone();
    // The 4 MiB weights blob fills the middle of the bundle.
    let at = good.len() / 2;
    flipped[at] ^= 0xff;
    fs::write(a.path("flipped.tar"), &flipped).unwrap();
    fs::write(a.path("truncated.tar"), &good[..good.len() / 2]).unwrap();
    for bad in ["flipped.tar", "truncated.tar"] {
        let c = Machine::new();
        let out = c.run(UNREACHABLE, &["import", a.path(bad).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{bad} accepted");
        assert!(stderr(&out).contains("refusing bundle"), "{}", stderr(&out));
        let visible: Vec<_> = tree_of(&c.path("cache"))
            .into_iter()
            .filter(|(p, _)| p.starts_with("models--"))
            .collect();
        assert!(visible.is_empty(), "{bad} left {visible:?}");
    }

    let moved = hub.commit(
        RepoKind::Model,
        "acme/encoder",
        "main",
        vec![("config.json".into(), Bytes::from_static(b"{}"))],
    );
    a.ok(&hub.url(), &["lock"]);
    assert!(
        fs::read_to_string(a.path("hubcache.lock"))
            .unwrap()
            .contains(&model_commit),
        "plain lock keeps pins"
    );
    let up = a.ok(&hub.url(), &["lock", "--upgrade", "acme/encoder"]);
    assert!(
        stderr(&up).contains(&format!("{} -> {}", &model_commit[..12], &moved[..12])),
        "{}",
        stderr(&up)
    );
    assert!(fs::read_to_string(a.path("hubcache.lock")).unwrap().contains(&moved));
}

#[test]
fn split_bundles_round_trip_and_a_missing_part_is_refused() {
    let hub = FakeHub::start();
    let (model_commit, _) = seed(&hub);
    let a = Machine::new();
    fs::write(a.path("hubcache.toml"), MANIFEST).unwrap();
    a.ok(&hub.url(), &["lock"]);
    a.ok(&hub.url(), &["sync", "--locked"]);
    let out = a.ok(
        &hub.url(),
        &["export", "--lock", "hubcache.lock", "-o", "m.tar", "--split", "2MB"],
    );
    assert_eq!(single_path(&out), PathBuf::from("m.tar.000"));
    let parts: Vec<u64> = (0..)
        .map(|i| a.path(&format!("m.tar.{i:03}")))
        .take_while(|p| p.exists())
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    assert!(parts.len() >= 3, "{parts:?}");
    assert!(parts.iter().all(|n| *n <= 2_000_000), "{parts:?}");
    assert!(!a.path("m.tar").exists());

    let b = Machine::new();
    b.ok(UNREACHABLE, &["import", a.path("m.tar.000").to_str().unwrap()]);
    let p = single_path(&b.ok(
        UNREACHABLE,
        &["download", "acme/encoder", "model.safetensors", "--offline"],
    ));
    assert!(p.to_string_lossy().contains(&model_commit));
    assert_eq!(fs::read(p).unwrap(), weights(4 << 20, 1));

    fs::remove_file(a.path("m.tar.001")).unwrap();
    let c = Machine::new();
    let out = c.run(UNREACHABLE, &["import", a.path("m.tar.000").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("refusing bundle"), "{}", stderr(&out));
    let too_small = a.run(
        &hub.url(),
        &["export", "acme/encoder", "-o", "x.tar", "--split", "10kb"],
    );
    assert_eq!(too_small.status.code(), Some(2), "parts under 1 MiB are a usage error");
}

#[test]
fn air_gapped_machine_serves_python_and_transformers() {
    let Some(py) = python() else { return };
    let model = common::minilm_dir(&py);
    let repo = "sentence-transformers/all-MiniLM-L6-v2";
    let hub = FakeHub::start();
    hub.commit_folder(RepoKind::Model, repo, "main", &model).unwrap();
    let a = Machine::new();
    fs::write(a.path("hubcache.toml"), format!("[[repo]]\nid = \"{repo}\"\n")).unwrap();
    a.ok(&hub.url(), &["lock"]);
    a.ok(&hub.url(), &["sync", "--locked"]);
    a.ok(&hub.url(), &["export", "--lock", "hubcache.lock", "-o", "minilm.tar"]);

    let b = Machine::new();
    b.ok(UNREACHABLE, &["import", a.path("minilm.tar").to_str().unwrap()]);
    let py_run = |code: &str, endpoint: &str, offline: bool, cache: &Path| {
        let mut cmd = common::python_command(&py, b.home.path(), cache, endpoint, code);
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        stdout(&common::run_ok(&mut cmd))
    };
    let loaded = py_run(
        &format!(
            "from huggingface_hub import snapshot_download, scan_cache_dir\n\
             from transformers import AutoConfig, AutoTokenizer\n\
             print(snapshot_download('{repo}'))\n\
             assert not scan_cache_dir().warnings, scan_cache_dir().warnings\n\
             print(AutoConfig.from_pretrained('{repo}').model_type, AutoTokenizer.from_pretrained('{repo}')('hello world')['input_ids'])"
        ),
        UNREACHABLE,
        true,
        &b.path("cache"),
    );
    assert_eq!(loaded.trim().lines().last().unwrap(), "bert [101, 7592, 2088, 102]");
    let resolved = hubcache(b.home.path())
        .args(["model", repo, "--json"])
        .env("HF_ENDPOINT", UNREACHABLE)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", b.path("cache"))
        .output()
        .unwrap();
    assert!(resolved.status.success(), "{}", stderr(&resolved));
    let bundle: serde_json::Value = serde_json::from_str(&stdout(&resolved)).unwrap();
    let lock = fs::read_to_string(a.path("hubcache.lock")).unwrap();
    assert!(lock.contains(bundle["commit"].as_str().unwrap()), "{bundle}");

    // B serves its imported cache to a Python client on another "machine".
    let server = Served::start(b.home.path(), &["--cache-dir", b.path("cache").to_str().unwrap()], &[]);
    let client_cache = b.path("client-cache");
    let snap = py_run(
        &format!("from huggingface_hub import snapshot_download\nprint(snapshot_download('{repo}'))"),
        &server.url,
        false,
        &client_cache,
    );
    let snap = PathBuf::from(snap.trim().lines().last().unwrap());
    assert_eq!(
        fs::read(snap.join("model.safetensors")).unwrap(),
        fs::read(model.join("model.safetensors")).unwrap()
    );
}
