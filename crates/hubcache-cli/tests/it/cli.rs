//! The real `hubcache` binary against the fake Hub: output contract, exit codes, offline,
//! concurrent processes.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::fs;

use bytes::Bytes;
use common::{hubcache, single_path, stderr, stdout};
use hubcache_test_support::{FakeHub, RepoKind};

fn seed(hub: &FakeHub) -> String {
    let big: Vec<u8> = (0..(2 << 20)).map(|i: u32| (i % 253) as u8).collect();
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("tokenizer.json".into(), Bytes::from_static(b"{\"v\": 1}")),
            ("model.safetensors".into(), Bytes::from(big)),
            ("sub/dir/file.txt".into(), Bytes::from_static(b"nested")),
        ],
    )
}

#[test]
fn download_prints_exactly_the_path() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let out = hubcache(home.path())
        .args(["download", "org/model", "config.json", "--cache-dir"])
        .arg(&cache)
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap();
    let path = single_path(&out);
    assert_eq!(
        path,
        cache
            .canonicalize()
            .unwrap()
            .join(format!("models--org--model/snapshots/{commit}/config.json"))
    );
    assert_eq!(fs::read(&path).unwrap(), b"{}");
    assert!(
        stderr(&out).is_empty(),
        "no bars or chatter when not on a terminal: {}",
        stderr(&out)
    );

    // Whole snapshot through HF_HUB_CACHE, printed as the folder.
    let out = hubcache(home.path())
        .args(["download", "org/model"])
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    let dir = single_path(&out);
    assert!(dir.join("sub/dir/file.txt").is_file() && dir.join("model.safetensors").is_file());

    // Default cache location: $HOME/.cache/huggingface/hub.
    let out = hubcache(home.path())
        .args(["download", "org/model", "tokenizer.json"])
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap();
    assert!(single_path(&out).starts_with(home.path().join(".cache/huggingface/hub/models--org--model")));
}

#[test]
fn offline_env_and_flag_make_no_request() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], offline_env: bool| {
        let mut cmd = hubcache(home.path());
        cmd.args(["download", "org/model"])
            .args(extra)
            .env("HF_ENDPOINT", hub.url());
        if offline_env {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        cmd.output().unwrap()
    };
    let online = single_path(&run(&["config.json"], false));
    hub.clear_requests();
    assert_eq!(single_path(&run(&["config.json"], true)), online);
    assert_eq!(single_path(&run(&["config.json", "--offline"], false)), online);
    let snap = run(&["--include", "config.json"], true);
    assert_eq!(single_path(&snap), online.parent().unwrap());
    assert_eq!(hub.requests().len(), 0, "{:?}", hub.requests());

    let miss = run(&["tokenizer.json"], true);
    assert_eq!(miss.status.code(), Some(1));
    let err = stderr(&miss);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("tokenizer.json") && err.contains("org/model") && err.contains("main"),
        "{err}"
    );
    assert!(err.contains("hint: ") && err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(stdout(&miss).is_empty());
}

#[test]
fn errors_exit_1_with_hints_and_usage_exits_2() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let out = hubcache(home.path())
        .args(["download", "org/missing-repo", "config.json"])
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("repository not found"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: "));

    let out = hubcache(home.path())
        .args(["download", "org/model", "../../etc/passwd"])
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid filename"), "{}", stderr(&out));
    assert_eq!(hub.requests().iter().filter(|r| r.path.contains("etc")).count(), 0);

    let out = hubcache(home.path())
        .args(["download", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn env_shows_token_source_never_the_token() {
    let home = tempfile::tempdir().unwrap();
    let out = hubcache(home.path())
        .arg("env")
        .env("HF_TOKEN", "hf_supersecret")
        .env("HF_HOME", home.path().join("hf"))
        .env("HF_HUB_OFFLINE", "yes")
        .env("HTTPS_PROXY", "http://user:pw@proxy:3128")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(!text.contains("hf_supersecret") && !text.contains("pw@"), "{text}");
    assert!(text.contains("HF_TOKEN"), "{text}");
    assert!(
        text.contains(&format!("{}", home.path().join("hf/hub").display())),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("offline:") && l.ends_with("yes")),
        "{text}"
    );
}

#[test]
fn token_never_appears_in_errors() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let out = hubcache(home.path())
        .args(["download", "org/private-x", "config.json", "--token", "hf_topsecret"])
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("hf_topsecret") && !stdout(&out).contains("hf_topsecret"));
}

#[test]
fn four_processes_share_one_transfer_per_blob() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("shared-cache");
    let children: Vec<_> = (0..4)
        .map(|_| {
            hubcache(home.path())
                .args(["download", "org/model", "--cache-dir"])
                .arg(&cache)
                .env("HF_ENDPOINT", hub.url())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(single_path(&out).ends_with(&commit));
    }
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for r in hub.requests().into_iter().filter(|r| r.is_content_get()) {
        *per_file.entry(r.path).or_default() += 1;
    }
    assert_eq!(per_file.len(), 4, "{per_file:?}");
    assert!(
        per_file.values().all(|n| *n == 1),
        "a blob was transferred twice: {per_file:?}"
    );
    let dir = cache.join(format!("models--org--model/snapshots/{commit}"));
    assert_eq!(fs::read(dir.join("sub/dir/file.txt")).unwrap(), b"nested");
}
