//! Production failures users hit with other tools, each proven absent here: read-only caches,
//! black-holed endpoints, hand-edited refs, broken snapshot links.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{hubcache, single_path, stderr};
use hubcache_test_support::{FakeHub, RepoKind};

fn seed(hub: &FakeHub) -> String {
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"model_type\": \"bert\"}")),
            ("tokenizer.json".into(), Bytes::from_static(b"{\"version\": \"1.0\"}")),
            (
                "model.safetensors".into(),
                hubcache_test_support::safetensors_file(&[("w", "F32", &[4, 4])]),
            ),
        ],
    )
}

/// Whether this process may create mount namespaces (root in CI).
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `hubcache ARGS` inside a mount namespace where `cache` is a read-only bind mount.
fn hubcache_read_only(home: &Path, cache: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let bin = env!("CARGO_BIN_EXE_hubcache");
    let script = "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && shift && exec \"$@\"";
    let mut cmd = Command::new("unshare");
    common::clean_env(&mut cmd, home);
    cmd.args(["-m", "sh", "-c", script, "sh"])
        .arg(cache)
        .arg(bin)
        .args(args);
    cmd.env("HF_HUB_CACHE", cache);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Every path under `root` with its modification time and length (to prove nothing changed).
fn snapshot_of(root: &Path) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            out.push((e.path().display().to_string(), m.len(), m.modified().ok()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn complete_cache_on_a_read_only_mount_serves_everything() {
    if !can_unshare() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must be able to create mount namespaces (run as root)"
        );
        eprintln!("skipping: cannot create a mount namespace here");
        return;
    }
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let fill = |args: &[&str]| {
        let o = hubcache(home.path())
            .args(args)
            .env("HF_ENDPOINT", hub.url())
            .env("HF_HUB_CACHE", &cache)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        o
    };
    fill(&["download", "org/model"]);
    fill(&["model", "org/model"]);
    let before = snapshot_of(&cache);
    let url = hub.url();
    let online = [("HF_ENDPOINT", url.as_str())];
    let offline = [("HF_ENDPOINT", "http://127.0.0.1:9"), ("HF_HUB_OFFLINE", "1")];
    for (args, envs) in [
        (vec!["download", "org/model", "config.json"], &offline[..]),
        (
            vec!["download", "org/model", "config.json", "--revision", &commit],
            &online[..],
        ),
        (vec!["download", "org/model", "config.json"], &online[..]),
        (vec!["download", "org/model"], &online[..]),
        (vec!["download", "org/model"], &offline[..]),
        (vec!["model", "org/model"], &online[..]),
        (vec!["model", "org/model"], &offline[..]),
    ] {
        let out = hubcache_read_only(home.path(), &cache, &args, envs);
        assert!(
            out.status.success(),
            "{args:?} {envs:?} failed on a read-only cache:\n{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("Read-only"), "{args:?}: {}", stderr(&out));
    }
    let out = hubcache_read_only(
        home.path(),
        &cache,
        &["download", "org/model", "tokenizer.json"],
        &online,
    );
    assert!(single_path(&out).ends_with(format!("{commit}/tokenizer.json")));
    assert_eq!(snapshot_of(&cache), before, "something was written");
}

#[test]
fn black_holed_endpoint_returns_the_cached_file_within_the_metadata_timeout() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let run = |endpoint: &str, args: &[&str], envs: &[(&str, &str)]| {
        let mut cmd = hubcache(home.path());
        cmd.args(args).env("HF_ENDPOINT", endpoint).env("HF_HUB_CACHE", &cache);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let out = cmd.output().unwrap();
        (out, start.elapsed())
    };
    let (warm, _) = run(&hub.url(), &["download", "org/model"], &[]);
    let snap = single_path(&warm);
    // A server that accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_url = format!("http://{}", hole.local_addr().unwrap());
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hole.incoming().flatten() {
            held.push(s);
        }
    });
    let t = [("HF_HUB_ETAG_TIMEOUT", "2")];
    let (out, took) = run(&hole_url, &["download", "org/model", "config.json"], &t);
    assert_eq!(single_path(&out), snap.join("config.json"));
    assert!(took < Duration::from_secs(8), "file: {took:?}");
    let (out, took) = run(&hole_url, &["download", "org/model"], &t);
    assert_eq!(single_path(&out), snap);
    assert!(took < Duration::from_secs(8), "snapshot: {took:?}");
    let (out, took) = run(&hole_url, &["model", "org/model"], &t);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took < Duration::from_secs(8), "model: {took:?}");
    for envs in [&[("HF_HUB_OFFLINE", "1")][..], &[("TRANSFORMERS_OFFLINE", "1")][..]] {
        let (out, took) = run(&hole_url, &["download", "org/model", "config.json"], envs);
        assert_eq!(single_path(&out), snap.join("config.json"));
        assert!(took < Duration::from_secs(1), "offline must not wait: {took:?}");
    }
    let (out, took) = run(&hole_url, &["download", "org/model", "config.json", "--offline"], &[]);
    assert!(out.status.success());
    assert!(took < Duration::from_secs(1), "--offline must not wait: {took:?}");
}

#[test]
fn hand_edited_ref_and_broken_links() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let run = |args: &[&str], offline: bool| {
        let mut cmd = hubcache(home.path());
        cmd.args(args).env("HF_ENDPOINT", hub.url()).env("HF_HUB_CACHE", &cache);
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        cmd.output().unwrap()
    };
    let snap = single_path(&run(&["download", "org/model"], false));
    let repo = cache.join("models--org--model");
    assert_eq!(
        fs::read_to_string(repo.join("refs/main")).unwrap(),
        commit,
        "written byte-exact"
    );
    fs::write(repo.join("refs/main"), format!("{commit}\n  ")).unwrap();
    assert_eq!(
        single_path(&run(&["download", "org/model", "config.json"], true)),
        snap.join("config.json")
    );

    // A bad copy: the link survived, its blob did not.
    let target = fs::read_link(snap.join("tokenizer.json")).unwrap();
    fs::remove_file(snap.join(&target)).unwrap();
    let offline = run(&["download", "org/model", "tokenizer.json"], true);
    assert_eq!(offline.status.code(), Some(1), "a dangling link is not a cached file");
    assert!(stderr(&offline).contains("tokenizer.json"));
    let online = run(&["download", "org/model", "tokenizer.json"], false);
    assert_eq!(
        fs::read(single_path(&online)).unwrap(),
        b"{\"version\": \"1.0\"}",
        "re-downloaded"
    );
}
