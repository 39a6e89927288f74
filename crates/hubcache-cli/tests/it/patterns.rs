//! `hubcache download --include/--exclude`: patterns that can never match are usage errors
//! before any request, and filters that select no file fail naming the repo's files, online
//! and offline.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::process::Output;

use bytes::Bytes;
use common::{hubcache, single_path, stderr, stdout};
use hubcache_test_support::{FakeHub, RepoKind};

fn seed(hub: &FakeHub) -> String {
    hub.commit(
        RepoKind::Model,
        "org/tiny",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{}")),
            ("tokenizer.json".into(), Bytes::from_static(b"{\"v\": 1}")),
            ("model.safetensors".into(), Bytes::from_static(b"weights")),
            ("sub/dir/file.txt".into(), Bytes::from_static(b"nested")),
        ],
    )
}

fn download(home: &Path, hub: &FakeHub, args: &[&str]) -> Output {
    hubcache(home)
        .args(["download", "org/tiny"])
        .args(args)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .env("HF_ENDPOINT", hub.url())
        .output()
        .unwrap()
}

#[test]
fn patterns_that_cannot_match_are_usage_errors_before_any_request() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let bad = [
        "../*",
        "/etc/*",
        "../../**",
        "sub/../x",
        "..\\*",
        "\\etc\\*",
        "sub\\*.json",
    ];
    for pattern in bad {
        for flag in ["--include", "--exclude"] {
            let out = download(home.path(), &hub, &[flag, pattern]);
            assert_eq!(out.status.code(), Some(2), "{flag} {pattern}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&format!("'{pattern}'")),
                "names the pattern {pattern}: {}",
                stderr(&out)
            );
            assert!(stdout(&out).is_empty(), "{flag} {pattern}: {}", stdout(&out));
            assert_eq!(hub.requests().len(), 0, "{flag} {pattern}: {:?}", hub.requests());
        }
    }
    assert!(!home.path().join("cache").exists(), "nothing was written");
}

#[test]
fn filters_that_select_nothing_exit_1_naming_the_repo_files() {
    let hub = FakeHub::start();
    seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let out = download(home.path(), &hub, &["--include", "*.gguf"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: no file of org/tiny@main matches --include '*.gguf'"),
        "{err}"
    );
    assert!(
        err.contains(
            "hint: org/tiny@main has 4 file(s): config.json, model.safetensors, sub/dir/file.txt, tokenizer.json"
        ),
        "{err}"
    );
    assert!(err.contains("`*` also crosses `/`"), "{err}");
    // Nothing was written for a selection of nothing: no ref, no empty snapshot folder.
    let repo = home.path().join("cache/models--org--tiny");
    assert!(!repo.join("refs").exists(), "a ref was written");
    assert!(!repo.join("snapshots").exists(), "an empty snapshot was left");

    // The include side matches, the exclude side removes everything.
    let out = download(home.path(), &hub, &["--include", "*.json", "--exclude", "*"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("no file of org/tiny@main matches --include '*.json' --exclude '*'"),
        "{err}"
    );
    assert!(err.contains("select 2 file(s); --exclude removes them all"), "{err}");

    // Exact names that are not in the repo are filters too.
    let out = download(home.path(), &hub, &["missing.json", "other.bin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no file of org/tiny@main matches missing.json other.bin"));
}

#[test]
fn a_matching_pattern_still_downloads_its_files_only() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let home = tempfile::tempdir().unwrap();
    let out = download(home.path(), &hub, &["--include", "*.json", "--exclude", "tokenizer*"]);
    let dir = single_path(&out);
    assert!(dir.ends_with(format!("snapshots/{commit}")), "{}", dir.display());
    assert!(dir.join("config.json").is_file());
    assert!(!dir.join("tokenizer.json").exists() && !dir.join("model.safetensors").exists());
    let out = download(home.path(), &hub, &["--include", "sub/"]);
    assert!(single_path(&out).join("sub/dir/file.txt").is_file());
}

#[test]
fn offline_filters_that_select_nothing_fail_from_the_cached_listing_or_folder() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let home = tempfile::tempdir().unwrap();
    single_path(&download(home.path(), &hub, &["--include", "*.json"]));

    // The listing cached by the first download answers, with zero requests.
    hub.clear_requests();
    let out = download(home.path(), &hub, &["--offline", "--include", "*.gguf"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("no file of org/tiny@main matches --include '*.gguf'"),
        "{err}"
    );
    assert!(err.contains("has 4 file(s): config.json, model.safetensors"), "{err}");
    assert_eq!(hub.requests().len(), 0, "{:?}", hub.requests());

    // A cache without listings (as Python leaves it): the snapshot folder's files answer.
    let repo = home.path().join("cache/models--org--tiny");
    std::fs::remove_file(repo.join(format!("trees/{commit}.json"))).unwrap();
    let out = download(home.path(), &hub, &["--offline", "--include", "*.gguf"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("hint: org/tiny@main has 2 file(s): config.json, tokenizer.json"),
        "{err}"
    );
    let out = download(home.path(), &hub, &["--offline", "--include", "config.*"]);
    assert!(single_path(&out).join("config.json").is_file());
    assert_eq!(hub.requests().len(), 0, "{:?}", hub.requests());
}
