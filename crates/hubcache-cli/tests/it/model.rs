//! `hubcache model` as a real process against the fake Hub: the bundle output, offline runs
//! (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, no network), a local folder winning over the cache,
//! error messages with hints, and interop with the real transformers 5.24 in both directions.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use common::{hubcache, python, stderr, stdout};
use hubcache_test_support::{shard_name, sharded_model, FakeHub, RepoKind};
use serde_json::Value;

const SHARDED: &str = "org/sharded";
const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

struct Env {
    hub: FakeHub,
    home: tempfile::TempDir,
    commit: String,
}

impl Env {
    fn new() -> Env {
        let hub = FakeHub::start();
        let commit = hub.commit(RepoKind::Model, SHARDED, "main", sharded_model());
        Env {
            hub,
            home: tempfile::tempdir().unwrap(),
            commit,
        }
    }

    fn cache(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    fn model(&self, args: &[&str]) -> Command {
        let mut cmd = hubcache(self.home.path());
        cmd.arg("model")
            .args(args)
            .env("HF_ENDPOINT", self.hub.url())
            .env("HF_HUB_CACHE", self.cache());
        cmd
    }

    fn requests(&self) -> Vec<String> {
        let out = self
            .hub
            .requests()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        self.hub.clear_requests();
        out
    }
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", out.status, stderr(out));
    stdout(out)
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

#[test]
fn sharded_model_online_then_offline() {
    let env = Env::new();
    let online = env.model(&[SHARDED, "--json"]).output().unwrap();
    let first = json(&online);
    assert!(stderr(&online).is_empty(), "{}", stderr(&online));
    let cold = env.requests();
    assert_eq!(first["commit"], env.commit.as_str());
    assert_eq!(first["local"], false);
    let w = &first["weights"];
    assert_eq!(w["format"], "safetensors");
    assert_eq!(w["sharded"], true);
    assert_eq!((w["shards"].as_u64(), w["tensors"].as_u64()), (Some(3), Some(12)));
    assert_eq!(w["indexed_tensors"], 12);
    assert_eq!(w["parameters"], 516);
    assert_eq!(w["dtypes"], serde_json::json!({"F16": 6, "F32": 6}));
    let shard_bytes: u64 = sharded_model()
        .iter()
        .filter(|(n, _)| n.starts_with("model-0"))
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert_eq!(w["total_bytes"], shard_bytes);
    let kinds: Vec<&str> = first["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "config",
            "generation_config",
            "tokenizer_config",
            "vocab",
            "weights_index",
            "weights",
            "weights",
            "weights"
        ]
    );
    for f in first["files"].as_array().unwrap() {
        let p = Path::new(f["path"].as_str().unwrap());
        assert!(p.is_file(), "{}", p.display());
        assert!(p.to_string_lossy().contains(&format!("/snapshots/{}/", env.commit)));
    }
    eprintln!("cold online run: {} requests", cold.len());

    // transformers' test_offline_mode: with either offline variable, the same answer and no request.
    for var in ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"] {
        let again = json(&env.model(&[SHARDED, "--json"]).env(var, "1").output().unwrap());
        assert_eq!(again, first, "{var}");
        assert_eq!(env.requests(), Vec::<String>::new(), "{var}");
    }
    let again = json(&env.model(&[SHARDED, "--json", "--offline"]).output().unwrap());
    assert_eq!(again, first);
    assert_eq!(env.requests(), Vec::<String>::new());
    // Warm online: the revision call only; pinned to the commit: nothing.
    assert_eq!(
        json(&env.model(&[SHARDED, "--json"]).output().unwrap())["files"],
        first["files"]
    );
    assert_eq!(env.requests(), [format!("GET /api/models/{SHARDED}/revision/main")]);
    let pinned = json(
        &env.model(&[SHARDED, "--json", "--revision", &env.commit])
            .output()
            .unwrap(),
    );
    assert_eq!(pinned["files"], first["files"]);
    assert_eq!(env.requests(), Vec::<String>::new());

    // The text form: kind → path lines, the commit and the shard summary.
    let text = ok(&env.model(&[SHARDED]).env("HF_HUB_OFFLINE", "1").output().unwrap());
    let commit_line = text.lines().find(|l| l.starts_with("commit")).unwrap();
    assert!(commit_line.ends_with(&env.commit), "{text}");
    let summary = text.lines().find(|l| l.starts_with("summary")).unwrap();
    assert!(
        summary.contains("safetensors, 3 shards, 12 tensors") && summary.contains("516 parameters"),
        "{summary}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("weights ")).count(), 3, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("absent") && l.contains("tokenizer.json")),
        "{text}"
    );
}

#[test]
fn no_network_falls_back_to_the_cache() {
    // transformers' test_offline_mode_no_internet: no offline flag, but the Hub cannot be reached.
    let env = Env::new();
    let first = json(&env.model(&[SHARDED, "--json"]).output().unwrap());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let start = std::time::Instant::now();
    let out = env
        .model(&[SHARDED, "--json"])
        .env("HF_ENDPOINT", &closed)
        .output()
        .unwrap();
    assert_eq!(json(&out)["files"], first["files"]);
    assert_eq!(json(&out)["commit"], env.commit.as_str());
    assert!(start.elapsed().as_secs() < 10, "no retry storm: {:?}", start.elapsed());
}

#[test]
fn missing_shard_offline_is_named() {
    let env = Env::new();
    ok(&env.model(&[SHARDED]).output().unwrap());
    let shard = env.cache().join(format!(
        "models--org--sharded/snapshots/{}/{}",
        env.commit,
        shard_name(3, 3)
    ));
    fs::remove_file(&shard).unwrap();
    env.requests();
    let out = env.model(&[SHARDED]).env("TRANSFORMERS_OFFLINE", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: we couldn't connect"), "{err}");
    assert!(err.contains(&shard_name(3, 3)), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(stdout(&out).is_empty());
    assert_eq!(env.requests(), Vec::<String>::new());
}

#[test]
fn local_folder_wins_over_the_cache() {
    let env = Env::new();
    ok(&env.model(&[SHARDED]).output().unwrap());
    env.requests();
    // A folder named like the repo, relative to the working directory.
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join(SHARDED);
    fs::create_dir_all(&local).unwrap();
    for (name, bytes) in sharded_model() {
        fs::write(local.join(name), bytes).unwrap();
    }
    let out = json(
        &env.model(&[SHARDED, "--json"])
            .current_dir(work.path())
            .output()
            .unwrap(),
    );
    assert_eq!(out["local"], true);
    assert_eq!(out["commit"], Value::Null);
    for f in out["files"].as_array().unwrap() {
        assert!(f["path"].as_str().unwrap().starts_with(SHARDED), "{f}");
    }
    assert_eq!(out["weights"]["parameters"], 516);
    assert_eq!(env.requests(), Vec::<String>::new());
}

#[test]
fn gated_bad_revision_and_unknown_repo_messages() {
    let env = Env::new();
    env.hub.commit(
        RepoKind::Model,
        "org/gated",
        "main",
        vec![("config.json".into(), Bytes::from_static(b"{}"))],
    );
    env.hub.set_gated(RepoKind::Model, "org/gated");
    let cases = [
        (
            vec!["org/gated"],
            "you are trying to access a gated repo",
            "request access",
        ),
        (
            vec![SHARDED, "--revision", "v9"],
            "v9 is not a valid git identifier",
            "branch, a tag",
        ),
        (vec!["org/nope"], "is not a valid model identifier", "token"),
        (
            vec!["a/b/c"],
            "is not a local folder and is not a valid repo id",
            "repo id",
        ),
    ];
    for (args, message, hint) in cases {
        let out = env.model(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: ") && err.contains(message), "{args:?}: {err}");
        assert!(
            err.lines().any(|l| l.starts_with("hint: ") && l.contains(hint)),
            "{args:?}: {err}"
        );
        assert!(stdout(&out).is_empty());
    }
}

// ---- interop with the real transformers 5.24 ----

fn py(env: &Env, python: &Path, offline: bool, code: &str) -> Value {
    let mut cmd = common::python_command(python, env.home.path(), &env.cache(), &env.hub.url(), code);
    cmd.env("REPO", MINILM);
    if offline {
        cmd.env("TRANSFORMERS_OFFLINE", "1");
    }
    let out = common::run_ok(&mut cmd);
    serde_json::from_str(stdout(&out).trim().lines().last().unwrap()).unwrap()
}

fn minilm_env() -> Option<(Env, PathBuf)> {
    let python = python()?;
    let env = Env::new();
    env.hub
        .commit_folder(RepoKind::Model, MINILM, "main", &common::minilm_dir(&python))
        .unwrap();
    Some((env, python))
}

fn paths_by_name(bundle: &Value) -> Vec<(String, String)> {
    bundle["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn transformers_reads_offline_what_hubcache_model_resolved() {
    let Some((env, python)) = minilm_env() else { return };
    let bundle = json(&env.model(&[MINILM, "--json"]).output().unwrap());
    assert_eq!(bundle["weights"]["tensors"], 104);
    let files = paths_by_name(&bundle);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let absent = bundle["absent"].clone();
    let code = format!(
        "import os, json\n\
         from transformers.utils.hub import cached_file\n\
         from transformers import AutoTokenizer\n\
         from huggingface_hub import try_to_load_from_cache\n\
         from huggingface_hub.file_download import _CACHED_NO_EXIST\n\
         repo = os.environ['REPO']\n\
         out = {{'found': {{f: cached_file(repo, f) for f in {names:?}}}}}\n\
         out['absent'] = {{f: cached_file(repo, f, _raise_exceptions_for_missing_entries=False) for f in json.loads('{absent}')}}\n\
         out['no_exist'] = [f for f in json.loads('{absent}') if try_to_load_from_cache(repo, f) is _CACHED_NO_EXIST]\n\
         out['ids'] = AutoTokenizer.from_pretrained(repo)('hello world')['input_ids']\n\
         print(json.dumps(out))"
    );
    let out = py(&env, &python, true, &code);
    for (name, path) in &files {
        assert_eq!(out["found"][name].as_str(), Some(path.as_str()), "{name}");
    }
    for name in absent.as_array().unwrap() {
        assert_eq!(out["absent"][name.as_str().unwrap()], Value::Null, "{name}");
    }
    // Every absent optional file was recorded in .no_exist, which Python honours.
    assert_eq!(out["no_exist"], absent);
    assert_eq!(out["ids"], serde_json::json!([101, 7592, 2088, 102]));
}

#[test]
fn hubcache_model_reads_offline_what_transformers_downloaded() {
    let Some((env, python)) = minilm_env() else { return };
    let out = py(
        &env,
        &python,
        false,
        "import os, json\n\
         from transformers import AutoConfig, AutoTokenizer\n\
         from transformers.utils.hub import cached_file\n\
         repo = os.environ['REPO']\n\
         AutoConfig.from_pretrained(repo)\n\
         AutoTokenizer.from_pretrained(repo)\n\
         print(json.dumps({f: cached_file(repo, f) for f in ['config.json', 'tokenizer.json', 'vocab.txt', 'model.safetensors']}))",
    );
    env.requests();
    let bundle = json(
        &env.model(&[MINILM, "--json"])
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(env.requests(), Vec::<String>::new());
    let files = paths_by_name(&bundle);
    for name in ["config.json", "tokenizer.json", "vocab.txt", "model.safetensors"] {
        let ours = files.iter().find(|(n, _)| n == name).map(|(_, p)| p.as_str());
        assert_eq!(ours, out[name].as_str(), "{name}");
    }
    assert_eq!(bundle["weights"]["parameters"], 22_713_728);
}
