//! `hubcache download` against a hostile or broken server: exit code 1 with an `error:` line,
//! never a panic (exit 101), a bounded number of requests, and nothing written outside the
//! cache. One test per class of misbehaviour, injected into the fake Hub.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use common::{hubcache, stderr};
use hubcache_test_support::{FakeHub, Fault, FaultRule, Origin, RepoKind};

fn seed(hub: &FakeHub) {
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"model_type\": \"bert\"}")),
            (
                "model.safetensors".into(),
                Bytes::from((0..(1usize << 20)).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
            ),
        ],
    );
}

/// Runs `hubcache download ARGS` against `hub` in a fresh HOME with the cache at HOME/cache,
/// under a 2-minute hang guard; returns the output and HOME.
fn download(hub: &FakeHub, args: &[&str]) -> (Output, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = hubcache(home.path());
    cmd.arg("download")
        .args(args)
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", home.path().join("cache"))
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_ETAG_TIMEOUT", "1")
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "1");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hubcache hung: no exit within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), home)
}

/// Exit 1, an `error:` line, no panic, and HOME holds nothing but the cache (which holds no
/// blob and no snapshot entry).
fn assert_clean_failure(out: &Output, home: &Path) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "no path printed: {:?}", out.stdout);
    let top: Vec<_> = fs::read_dir(home).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(top.iter().all(|n| n == "cache"), "written outside the cache: {top:?}");
    let mut stack = vec![home.join("cache")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let s = p.to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                assert!(!s.contains("/blobs/") && !s.contains("/snapshots/"), "placed: {s}");
            }
        }
    }
}

fn weights(hub: &FakeHub, rule: FaultRule) -> (Output, tempfile::TempDir) {
    seed(hub);
    hub.inject(rule);
    download(hub, &["org/model", "model.safetensors"])
}

fn cdn_gets(hub: &FakeHub) -> usize {
    hub.requests()
        .iter()
        .filter(|r| r.origin == Origin::Cdn && r.method == "GET")
        .count()
}

fn tree_gets(hub: &FakeHub) -> usize {
    hub.requests().iter().filter(|r| r.path.contains("/tree/")).count()
}

#[test]
fn redirect_loop_exits_1_after_one_request() {
    let hub = FakeHub::start();
    let (out, home) = weights(&hub, FaultRule::new("/lfs/", Fault::RedirectLoop).repeat(1000));
    assert_clean_failure(&out, home.path());
    assert!(stderr(&out).contains("redirect loop"), "{}", stderr(&out));
    assert_eq!(cdn_gets(&hub), 1);
}

#[test]
fn fifty_redirects_exit_1_at_the_hop_limit() {
    let hub = FakeHub::start();
    let (out, home) = weights(
        &hub,
        FaultRule::new("/lfs/", Fault::RedirectChain { hops: 50 }).repeat(1000),
    );
    assert_clean_failure(&out, home.path());
    assert_eq!(cdn_gets(&hub), 21);
}

#[test]
fn redirects_to_file_ftp_and_metadata_addresses_exit_1_without_following() {
    for (location, on) in [
        ("file:///etc/passwd", "/lfs/"),
        ("ftp://127.0.0.1/x", "/lfs/"),
        ("http://169.254.169.254/latest/meta-data/iam/", "/lfs/"),
        ("http://169.254.169.254/latest/meta-data/iam/", "/resolve/"),
    ] {
        let hub = FakeHub::start();
        let rule = FaultRule::new(
            on,
            Fault::RedirectTo {
                location: location.into(),
            },
        );
        let rule = if on == "/resolve/" {
            rule.on_method("HEAD")
        } else {
            rule
        };
        let (out, home) = weights(&hub, rule);
        assert_clean_failure(&out, home.path());
        let err = stderr(&out);
        assert!(err.contains("refused a redirect"), "{location}: {err}");
        let redirected = hub.requests().iter().filter(|r| r.status == 302).count();
        assert!(redirected >= 1, "{location}: the fault fired");
        assert!(cdn_gets(&hub) <= 1, "{location}");
    }
}

#[test]
fn ten_thousand_headers_exit_1_after_one_request() {
    let hub = FakeHub::start();
    let (out, home) = weights(
        &hub,
        FaultRule::new("/lfs/", Fault::ManyHeaders { count: 10_000 })
            .on_method("GET")
            .repeat(1000),
    );
    assert_clean_failure(&out, home.path());
    assert!(stderr(&out).contains("malformed answer"), "{}", stderr(&out));
    assert_eq!(cdn_gets(&hub), 1);
}

#[test]
fn an_absurd_content_length_exits_1_after_one_request() {
    let hub = FakeHub::start();
    let (out, home) = weights(
        &hub,
        FaultRule::new(
            "/lfs/",
            Fault::ShortIgnoringRange {
                announce: Some(1_000_000_000_000_000),
                after: 27,
            },
        )
        .on_method("GET")
        .repeat(100_000),
    );
    assert_clean_failure(&out, home.path());
    assert_eq!(cdn_gets(&hub), 1);
}

#[test]
fn a_server_that_sends_27_bytes_and_ignores_range_exits_1_after_the_retries() {
    let hub = FakeHub::start();
    let (out, home) = weights(
        &hub,
        FaultRule::new(
            "/lfs/",
            Fault::ShortIgnoringRange {
                announce: None,
                after: 27,
            },
        )
        .on_method("GET")
        .repeat(100_000),
    );
    assert_clean_failure(&out, home.path());
    let err = stderr(&out);
    assert!(err.contains("ignores Range"), "{err}");
    assert!(!err.contains("resumes"), "no false promise: {err}");
    // The default policy: 5 retries after the first attempt.
    assert_eq!(cdn_gets(&hub), 6);
}

#[test]
fn a_dripping_transfer_exits_1_and_keeps_its_bytes_for_a_resume() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(
        FaultRule::new("/lfs/", Fault::Drip { millis: 100 })
            .on_method("GET")
            .repeat(100_000),
    );
    let (out, home) = download(&hub, &["org/model", "model.safetensors"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("too slow") && err.contains("resumes"), "{err}");
    assert_eq!(cdn_gets(&hub), 6);
    let top: Vec<_> = fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, ["cache"]);
}

#[test]
fn a_dripping_listing_exits_1_at_its_deadline() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(FaultRule::new("/tree/", Fault::Drip { millis: 100 }).repeat(100));
    let (out, home) = download(&hub, &["org/model"]);
    assert_clean_failure(&out, home.path());
    assert!(stderr(&out).contains("did not complete"), "{}", stderr(&out));
    assert_eq!(tree_gets(&hub), 1);
}

#[test]
fn a_self_referencing_next_link_exits_1_after_one_page() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(FaultRule::new("/tree/", Fault::SelfLink).repeat(100));
    let (out, home) = download(&hub, &["org/model"]);
    assert_clean_failure(&out, home.path());
    assert!(stderr(&out).contains("endless pagination"), "{}", stderr(&out));
    assert_eq!(tree_gets(&hub), 1);
}

#[test]
fn a_huge_listing_exits_1_at_the_body_cap() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(FaultRule::new("/tree/", Fault::HugeListing { entries: 3_000_000 }).repeat(100));
    let (out, home) = download(&hub, &["org/model"]);
    assert_clean_failure(&out, home.path());
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert_eq!(tree_gets(&hub), 1);
}
