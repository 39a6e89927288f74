//! `hf`'s conventions: `download --dry-run` (no content request), `--json`, `sync --dry-run`, `completions`.

use crate::common;

use bytes::Bytes;
use common::{hubcache, stderr, stdout};
use hubcache_test_support::{FakeHub, RepoKind};
use serde_json::Value;

const BIG: usize = 300_000;

fn seed(hub: &FakeHub) -> String {
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("model.safetensors".into(), Bytes::from(vec![3u8; BIG])),
            ("sub/vocab.txt".into(), Bytes::from_static(b"a\nb\n")),
        ],
    )
}

fn run(hub: &FakeHub, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = hubcache(home)
        .args(args)
        .env("HF_HUB_CACHE", home.join("cache"))
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    out
}

#[test]
fn dry_run_shows_sizes_and_cached_state_and_fetches_nothing() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let home = tempfile::tempdir().unwrap();
    run(&hub, home.path(), &["download", "org/model", "config.json"]);
    hub.clear_requests();

    let out = stdout(&run(&hub, home.path(), &["download", "org/model", "--dry-run"]));
    assert!(out.contains(&commit), "{out}");
    assert!(
        out.lines().any(|l| l.contains("cached") && l.ends_with("config.json")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("fetch") && l.ends_with("model.safetensors")),
        "{out}"
    );
    assert!(
        out.contains("total: 3 file(s)") && out.contains("to fetch: 2 file(s)"),
        "{out}"
    );
    assert!(out.contains("cached: 1 file(s)"), "{out}");

    let out = stdout(&run(
        &hub,
        home.path(),
        &[
            "download",
            "org/model",
            "--dry-run",
            "--json",
            "--include",
            "*.safetensors",
        ],
    ));
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["commit"], commit.as_str());
    assert_eq!(plan["total_files"], 1);
    assert_eq!(plan["files"][0]["path"], "model.safetensors");
    assert_eq!(plan["files"][0]["size"], BIG);
    assert_eq!(plan["files"][0]["cached"], false);
    assert_eq!(plan["fetch_bytes"], BIG);

    assert!(
        hub.requests().iter().all(|r| !r.is_content_get()),
        "{:?}",
        hub.requests()
    );
    let blobs = std::fs::read_dir(home.path().join("cache/models--org--model/blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1, "the dry runs placed nothing");
}

#[test]
fn dry_run_offline_is_an_error_with_a_hint() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let out = hubcache(home.path())
        .args(["download", "org/model", "--dry-run", "--offline"])
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    assert!(hub.requests().is_empty());
}

#[test]
fn json_reports_fetched_cached_and_bytes() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let args = ["download", "org/model", "config.json", "model.safetensors", "--json"];
    let first: Value = serde_json::from_str(&stdout(&run(&hub, home.path(), &args))).unwrap();
    assert_eq!(first["files"], 2);
    assert_eq!(first["fetched"], 2);
    assert_eq!(first["cached"], 0);
    assert_eq!(first["bytes_transferred"], BIG + 2);
    assert!(first["seconds"].as_f64().is_some());
    let snapshot = first["path"].as_str().unwrap();
    assert!(std::path::Path::new(snapshot).join("model.safetensors").is_file());

    let again: Value = serde_json::from_str(&stdout(&run(&hub, home.path(), &args))).unwrap();
    assert_eq!(again["fetched"], 0);
    assert_eq!(again["cached"], 2);
    assert_eq!(again["bytes_transferred"], 0);

    let one: Value = serde_json::from_str(&stdout(&run(
        &hub,
        home.path(),
        &["download", "org/model", "sub/vocab.txt", "--json"],
    )))
    .unwrap();
    assert_eq!((one["files"].as_u64(), one["fetched"].as_u64()), (Some(1), Some(1)));
    assert!(one["path"].as_str().unwrap().ends_with("sub/vocab.txt"));
}

#[test]
fn completions_for_bash_zsh_fish() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = hubcache(home.path()).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(
            script.contains("hubcache") && script.contains("download"),
            "{shell}: {script}"
        );
    }
    let out = hubcache(home.path()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn sync_dry_run_lists_locked_files_and_changes_nothing() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let out = hubcache(home.path())
            .current_dir(home.path())
            .args(args)
            .env("HF_HUB_CACHE", home.path().join("cache"))
            .env("HF_ENDPOINT", hub.url())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    std::fs::write(home.path().join("hubcache.toml"), "[[repo]]\nid = \"org/model\"\n").unwrap();
    cmd(&["lock"]);
    cmd(&["download", "org/model", "config.json"]);
    hub.clear_requests();
    let out = cmd(&["sync", "--dry-run"]);
    assert!(
        out.lines()
            .any(|l| l.contains("cached") && l.ends_with("org/model config.json")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("fetch") && l.ends_with("org/model model.safetensors")),
        "{out}"
    );
    assert!(
        out.contains("total: 3 file(s)") && out.contains("to fetch: 2 file(s)"),
        "{out}"
    );
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
    assert!(!home
        .path()
        .join("cache/models--org--model/snapshots")
        .read_dir()
        .unwrap()
        .any(|e| { e.unwrap().path().join("model.safetensors").exists() }));
}
