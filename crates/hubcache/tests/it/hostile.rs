//! A hostile or broken server gets a clear typed error after a bounded number of requests, and
//! nothing wrong lands in the cache. Each test injects one misbehaviour into the fake Hub,
//! checks that it fired (request log), how many attempts were made, and the error variant.
//! No wall-time asserts: every call runs under a generous hang guard instead.

#![allow(clippy::unwrap_used)]

use crate::common::fast_builder;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use hubcache::blocking;
use hubcache::hub::client::{MAX_API_BODY, MAX_REDIRECTS};
use hubcache::hub::transfer::TransferError;
use hubcache::hub::{HubError, RedirectRefusal};
use hubcache::{Error, FileRequest, Repo, RepoPath, Revision, SnapshotRequest};
use hubcache_test_support::{FakeHub, Fault, FaultRule, LoggedRequest, Origin, RepoKind};

const REPO: &str = "org/model";
/// Retries after the first attempt, for every test client.
const RETRIES: u32 = 3;

fn weights() -> Bytes {
    Bytes::from((0..3usize << 20).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

fn seed(hub: &FakeHub) {
    hub.commit(
        RepoKind::Model,
        REPO,
        "main",
        vec![
            (
                "config.json".into(),
                Bytes::from_static(b"{\"model_type\": \"bert\"}\n"),
            ),
            ("model.safetensors".into(), weights()),
        ],
    );
}

fn client(hub: &FakeHub, cache: &Path) -> blocking::Hub {
    blocking::Hub::new(fast_builder(hub, cache, RETRIES, Duration::from_secs(1))).unwrap()
}

fn weights_request() -> FileRequest {
    FileRequest::new(
        Repo::model(REPO).unwrap(),
        Revision::main(),
        RepoPath::new("model.safetensors").unwrap(),
    )
}

fn snapshot_request() -> SnapshotRequest {
    SnapshotRequest::new(Repo::model(REPO).unwrap(), Revision::main())
}

/// Runs `f` on its own thread and fails the test if it takes more than a minute (a hang guard,
/// not a speed assert).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the call hung: no answer within 60 s")
}

/// Downloads the weights with `rule` injected; returns the cache, the hub and the error.
fn weights_with(rule: FaultRule) -> (tempfile::TempDir, FakeHub, Error) {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(rule);
    let cache = tempfile::tempdir().unwrap();
    let (c, h) = (cache.path().to_path_buf(), hub.clone());
    let result = within_a_minute(move || client(&h, &c).download_file(&weights_request()));
    let err = result.expect_err("a hostile server must fail the download");
    (cache, hub, err)
}

/// Snapshot with `rule` injected.
fn snapshot_with(rule: FaultRule) -> (tempfile::TempDir, FakeHub, Error) {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(rule);
    let cache = tempfile::tempdir().unwrap();
    let (c, h) = (cache.path().to_path_buf(), hub.clone());
    let result = within_a_minute(move || client(&h, &c).snapshot(&snapshot_request()));
    let err = result.expect_err("a hostile server must fail the snapshot");
    (cache, hub, err)
}

fn cdn_gets(hub: &FakeHub) -> Vec<LoggedRequest> {
    hub.requests()
        .into_iter()
        .filter(|r| r.origin == Origin::Cdn && r.method == "GET" && r.path.starts_with("/lfs/"))
        .collect()
}

fn resolve_heads(hub: &FakeHub) -> usize {
    hub.requests()
        .iter()
        .filter(|r| r.origin == Origin::Hub && r.method == "HEAD" && r.path.contains("/resolve/"))
        .count()
}

fn tree_gets(hub: &FakeHub) -> usize {
    hub.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/tree/"))
        .count()
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(all_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// No blob, no temp file, no snapshot entry.
fn assert_nothing_placed(cache: &Path) {
    let files = all_files(cache);
    let placed: Vec<_> = files
        .iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains("/blobs/") || s.contains("/snapshots/")
        })
        .collect();
    assert!(placed.is_empty(), "{placed:?}");
}

fn promises_a_resume(err: &Error) -> bool {
    err.hints().iter().any(|h| h.contains("resumes"))
}

/// Permanent: not transient, no resume promised, nothing placed.
fn assert_permanent(cache: &Path, err: &Error) {
    assert!(!err.is_transient(), "{err:?}");
    assert!(!promises_a_resume(err), "{:?}", err.hints());
    assert!(!err.hints().is_empty(), "every error tells what to do next");
    assert_nothing_placed(cache);
}

// ---- redirects ----

#[test]
fn redirect_loop_on_the_cdn_fails_after_one_request() {
    let (cache, hub, err) = weights_with(FaultRule::new("/lfs/", Fault::RedirectLoop).repeat(1000));
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::Hub(HubError::RedirectLoop { .. }),
                ..
            }
        ),
        "{err:?}"
    );
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), 1, "one attempt, the loop seen at its first hop");
    assert_eq!(gets[0].status, 302, "the fault fired");
    assert_permanent(cache.path(), &err);
}

#[test]
fn redirect_loop_on_the_hub_fails_after_one_head() {
    let hub = FakeHub::start();
    seed(&hub);
    // The HEAD on the resolve URL redirects to itself (a same-origin hop, which is followed).
    hub.inject(
        FaultRule::new("/resolve/", Fault::RedirectLoop)
            .on_method("HEAD")
            .repeat(1000),
    );
    let cache = tempfile::tempdir().unwrap();
    let (c, h) = (cache.path().to_path_buf(), hub.clone());
    let err = within_a_minute(move || client(&h, &c).download_file(&weights_request())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Hub {
                source: HubError::RedirectLoop { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(resolve_heads(&hub), 1, "no patient second HEAD for a permanent error");
    assert!(cdn_gets(&hub).is_empty());
    assert_permanent(cache.path(), &err);
}

#[test]
fn a_fifty_hop_redirect_chain_stops_at_the_hop_limit() {
    let (cache, hub, err) = weights_with(FaultRule::new("/lfs/", Fault::RedirectChain { hops: 50 }).repeat(1000));
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::Hub(HubError::TooManyRedirects {
                    limit: MAX_REDIRECTS,
                    ..
                }),
                ..
            }
        ),
        "{err:?}"
    );
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), MAX_REDIRECTS + 1, "one chain, followed to the limit once");
    assert!(gets.iter().all(|r| r.status == 302));
    assert_permanent(cache.path(), &err);
}

#[test]
fn a_short_redirect_chain_is_followed() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(FaultRule::new("/lfs/", Fault::RedirectChain { hops: 5 }).repeat(1000));
    let cache = tempfile::tempdir().unwrap();
    let (c, h) = (cache.path().to_path_buf(), hub.clone());
    let path = within_a_minute(move || client(&h, &c).download_file(&weights_request())).unwrap();
    assert!(fs::read(path).unwrap() == weights());
    assert_eq!(cdn_gets(&hub).len(), 6);
}

const REFUSED: [(&str, RedirectRefusal); 5] = [
    ("file:///etc/passwd", RedirectRefusal::Scheme),
    ("ftp://127.0.0.1/lfs/x", RedirectRefusal::Scheme),
    ("http://169.254.169.254/latest/meta-data/", RedirectRefusal::LinkLocal),
    ("http://[fe80::1]:8080/x", RedirectRefusal::LinkLocal),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        RedirectRefusal::LinkLocal,
    ),
];

#[test]
fn redirects_from_the_cdn_to_other_schemes_or_metadata_addresses_are_refused() {
    for (location, why) in REFUSED {
        let (cache, hub, err) = weights_with(FaultRule::new(
            "/lfs/",
            Fault::RedirectTo {
                location: location.into(),
            },
        ));
        assert!(
            matches!(
                &err,
                Error::Transfer {
                    source: TransferError::Hub(HubError::BadRedirect { reason, .. }),
                    ..
                } if *reason == why
            ),
            "{location}: {err:?}"
        );
        let gets = cdn_gets(&hub);
        assert_eq!(gets.len(), 1, "{location}");
        assert_eq!(gets[0].status, 302, "{location}: the fault fired");
        assert_permanent(cache.path(), &err);
    }
}

#[test]
fn redirects_from_the_hub_head_to_other_schemes_or_metadata_addresses_are_refused() {
    for (location, why) in REFUSED {
        let hub = FakeHub::start();
        seed(&hub);
        hub.inject(
            FaultRule::new(
                "/resolve/",
                Fault::RedirectTo {
                    location: location.into(),
                },
            )
            .on_method("HEAD"),
        );
        let cache = tempfile::tempdir().unwrap();
        let (c, h) = (cache.path().to_path_buf(), hub.clone());
        let err = within_a_minute(move || client(&h, &c).download_file(&weights_request())).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Hub {
                    source: HubError::BadRedirect { reason, .. },
                    ..
                } if *reason == why
            ),
            "{location}: {err:?}"
        );
        assert_eq!(resolve_heads(&hub), 1, "{location}");
        assert!(cdn_gets(&hub).is_empty(), "{location}");
        assert_permanent(cache.path(), &err);
    }
}

// ---- malformed answers ----

#[test]
fn ten_thousand_headers_are_a_malformed_answer() {
    let (cache, hub, err) = weights_with(
        FaultRule::new("/lfs/", Fault::ManyHeaders { count: 10_000 })
            .on_method("GET")
            .repeat(1000),
    );
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::Hub(HubError::Malformed { .. }),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(cdn_gets(&hub).len(), 1);
    assert_permanent(cache.path(), &err);

    // The same on the Hub's HEAD.
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(
        FaultRule::new("/resolve/", Fault::ManyHeaders { count: 10_000 })
            .on_method("HEAD")
            .repeat(1000),
    );
    let cache = tempfile::tempdir().unwrap();
    let (c, h) = (cache.path().to_path_buf(), hub.clone());
    let err = within_a_minute(move || client(&h, &c).download_file(&weights_request())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Hub {
                source: HubError::Malformed { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(resolve_heads(&hub), 1);
    assert_permanent(cache.path(), &err);
}

#[test]
fn an_absurd_content_length_is_refused_before_the_body() {
    let (cache, hub, err) = weights_with(
        FaultRule::new(
            "/lfs/",
            Fault::ContentLength {
                announce: 1_000_000_000_000_000,
            },
        )
        .on_method("GET")
        .repeat(1000),
    );
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::Hub(HubError::BadLength { .. }),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(cdn_gets(&hub).len(), 1);
    assert_permanent(cache.path(), &err);
}

// ---- endless transfers ----

#[test]
fn a_server_that_sends_a_little_and_ignores_range_is_given_up_on() {
    let (cache, hub, err) = weights_with(
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
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::CutOff {
                    range_ignored: true,
                    kept: false,
                    attempts,
                    ..
                },
                ..
            } if attempts == RETRIES + 1
        ),
        "{err:?}"
    );
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), RETRIES as usize + 1, "restarts from zero are counted");
    assert_eq!(gets[0].range, None);
    assert!(
        gets[1..]
            .iter()
            .all(|r| r.range.as_deref() == Some("bytes=27-") && r.status == 200),
        "each resume asked for the rest and got the whole file again: {gets:?}"
    );
    assert!(!promises_a_resume(&err), "{:?}", err.hints());
    assert_nothing_placed(cache.path());
}

#[test]
fn a_server_announcing_a_petabyte_and_sending_27_bytes_is_refused_at_once() {
    let (cache, hub, err) = weights_with(
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
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::Hub(HubError::BadLength { .. }),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(cdn_gets(&hub).len(), 1);
    assert_permanent(cache.path(), &err);
}

#[test]
fn a_dripping_transfer_is_a_stall_and_resumes_until_the_budget_is_spent() {
    let (cache, hub, err) = weights_with(
        FaultRule::new("/lfs/", Fault::Drip { millis: 50 })
            .on_method("GET")
            .repeat(100_000),
    );
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::CutOff {
                    source: HubError::TooSlow { .. },
                    range_ignored: false,
                    kept: true,
                    attempts,
                    ..
                },
                ..
            } if attempts == RETRIES + 1
        ),
        "{err:?}"
    );
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), RETRIES as usize + 1);
    assert!(
        gets[1..].iter().all(|r| r.range.is_some() && r.status == 206),
        "each stall resumed with a Range: {gets:?}"
    );
    // The few bytes received are kept, and the hint about resuming is true.
    assert!(err.is_transient());
    assert!(promises_a_resume(&err), "{:?}", err.hints());
    let temps: Vec<_> = all_files(cache.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".incomplete"))
        .collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert!(fs::metadata(&temps[0]).unwrap().len() > 0);
}

// ---- listings ----

#[test]
fn a_dripping_listing_misses_its_deadline_once() {
    let (cache, hub, err) = snapshot_with(FaultRule::new("/tree/", Fault::Drip { millis: 100 }).repeat(100));
    assert!(
        matches!(
            err,
            Error::Unreachable {
                source: HubError::Deadline { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(tree_gets(&hub), 1, "a missed deadline is not retried");
    assert_nothing_placed(cache.path());
}

#[test]
fn a_self_referencing_next_link_is_endless_pagination() {
    let (cache, hub, err) = snapshot_with(FaultRule::new("/tree/", Fault::SelfLink).repeat(100));
    assert!(
        matches!(
            err,
            Error::Hub {
                source: HubError::EndlessPagination { repeated: true, .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(tree_gets(&hub), 1, "the repeated page is never fetched");
    assert_permanent(cache.path(), &err);
}

#[test]
fn a_huge_listing_is_refused_at_the_body_cap() {
    // About 45 bytes an entry: 3 million entries are ~130 MB, twice the cap.
    let (cache, hub, err) =
        snapshot_with(FaultRule::new("/tree/", Fault::HugeListing { entries: 3_000_000 }).repeat(100));
    assert!(
        matches!(
            err,
            Error::Hub {
                source: HubError::BodyTooLarge {
                    limit: MAX_API_BODY,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(tree_gets(&hub), 1);
    assert_permanent(cache.path(), &err);
}

#[test]
fn loopback_redirects_keep_working() {
    // Every test here runs on 127.0.0.1: the refusal rules must leave it alone.
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let (c, h) = (cache.path().to_path_buf(), hub.clone());
    let path = within_a_minute(move || client(&h, &c).download_file(&weights_request())).unwrap();
    assert!(fs::read(path).unwrap() == weights());
    let gets = cdn_gets(&hub);
    assert_eq!(gets.len(), 1);
    assert!(hub.cdn_url().starts_with("http://127.0.0.1:"));
}
