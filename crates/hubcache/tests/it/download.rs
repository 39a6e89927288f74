//! Download pipelines against the fake Hub on 127.0.0.1, asserting on files and on its request log.

#![allow(clippy::unwrap_used)]

use crate::common::fast_builder;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hubcache::blocking;
use hubcache::hub::transfer::TransferError;
use hubcache::hub::RetryPolicy;
use hubcache::{
    CacheLookup, Error, FileRequest, HubBuilder, Repo, RepoPath, RepoType, Revision, SnapshotRequest, Token,
};
use hubcache_test_support::{git_blob_sha1, sha256_hex, FakeHub, Fault, FaultRule, Origin, RepoKind};

const REPO: &str = "org/model";

fn lfs_content(n: usize) -> Bytes {
    Bytes::from((0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

fn seed(hub: &FakeHub) -> String {
    hub.commit(
        RepoKind::Model,
        REPO,
        "main",
        vec![
            (
                "config.json".into(),
                Bytes::from_static(b"{\"model_type\": \"bert\"}\n"),
            ),
            (
                "1_Pooling/config.json".into(),
                Bytes::from_static(b"{\"pooling\": true}"),
            ),
            ("model.safetensors".into(), lfs_content(3 << 20)),
            ("README.md".into(), Bytes::from_static(b"# readme\n")),
        ],
    )
}

fn builder(hub: &FakeHub, cache: &Path) -> HubBuilder {
    fast_builder(hub, cache, 3, Duration::from_secs(2))
}

fn client(hub: &FakeHub, cache: &Path) -> blocking::Hub {
    blocking::Hub::new(builder(hub, cache)).unwrap()
}

fn repo() -> Repo {
    Repo::model(REPO).unwrap()
}

fn file(rev: &str, path: &str) -> FileRequest {
    FileRequest::new(repo(), Revision::new(rev).unwrap(), RepoPath::new(path).unwrap())
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--org--model")
}

/// Every file under `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(files_ending(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out
}

#[test]
fn file_download_writes_python_layout() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());

    let path = c.download_file(&file("main", "config.json")).unwrap();
    let root = repo_dir(cache.path());
    let etag = git_blob_sha1(b"{\"model_type\": \"bert\"}\n");
    assert_eq!(path, root.join("snapshots").join(&commit).join("config.json"));
    assert_eq!(
        fs::read_link(&path).unwrap(),
        PathBuf::from(format!("../../blobs/{etag}"))
    );
    assert_eq!(fs::read(&path).unwrap(), b"{\"model_type\": \"bert\"}\n");
    assert_eq!(
        fs::read_to_string(root.join("refs/main")).unwrap(),
        commit,
        "no trailing newline"
    );
    assert!(cache
        .path()
        .join(format!(".locks/models--org--model/{etag}.lock"))
        .exists());
    assert!(fs::read_to_string(cache.path().join("CACHEDIR.TAG"))
        .unwrap()
        .starts_with("Signature: 8a477f597d28d172789f06886806bc55\n"));

    let nested = c.download_file(&file("main", "1_Pooling/config.json")).unwrap();
    let nested_etag = git_blob_sha1(b"{\"pooling\": true}");
    assert_eq!(
        fs::read_link(&nested).unwrap(),
        PathBuf::from(format!("../../../blobs/{nested_etag}"))
    );

    let weights = c.download_file(&file("main", "model.safetensors")).unwrap();
    let sha = sha256_hex(&lfs_content(3 << 20));
    assert_eq!(
        fs::read_link(&weights).unwrap(),
        PathBuf::from(format!("../../blobs/{sha}"))
    );
    assert_eq!(fs::read(&weights).unwrap(), lfs_content(3 << 20));
    assert!(files_ending(cache.path(), ".incomplete").is_empty());
}

#[test]
fn warm_calls_make_zero_requests() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let first = c.download_file(&file("main", "config.json")).unwrap();
    hub.clear_requests();

    // Commit-pinned: answered from the cache alone.
    assert_eq!(c.download_file(&file(&commit, "config.json")).unwrap(), first);
    // Offline by setting, and local-only per call: the ref leads to the same file.
    let offline = blocking::Hub::new(builder(&hub, cache.path()).offline(true)).unwrap();
    assert_eq!(offline.download_file(&file("main", "config.json")).unwrap(), first);
    let mut local = file("main", "config.json");
    local.local_only = true;
    assert_eq!(c.download_file(&local).unwrap(), first);
    assert_eq!(hub.requests().len(), 0, "{:?}", hub.requests());

    // An online branch download of a cached file costs one HEAD and no content.
    assert_eq!(c.download_file(&file("main", "config.json")).unwrap(), first);
    let reqs = hub.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "HEAD");
}

#[test]
fn offline_miss_names_repo_revision_file_and_switch() {
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let offline = blocking::Hub::new(builder(&hub, cache.path()).offline(true)).unwrap();
    let err = offline.download_file(&file("main", "config.json")).unwrap_err();
    assert!(err.is_offline());
    let text = err.to_string();
    for needle in ["org/model", "main", "config.json", "offline"] {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
    assert!(
        err.hints().iter().any(|h| h.contains("HF_HUB_OFFLINE")),
        "{:?}",
        err.hints()
    );
    let err = offline
        .snapshot(&SnapshotRequest::new(repo(), Revision::main()))
        .unwrap_err();
    assert!(err.is_offline());
    assert_eq!(hub.requests().len(), 0);
}

#[test]
fn missing_file_is_recorded_in_no_exist() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let err = c.download_file(&file("main", "generation_config.json")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let marker = repo_dir(cache.path())
        .join(".no_exist")
        .join(&commit)
        .join("generation_config.json");
    assert_eq!(fs::read(&marker).unwrap(), b"");
    assert_eq!(
        fs::read_to_string(repo_dir(cache.path()).join("refs/main")).unwrap(),
        commit
    );
    assert_eq!(
        c.lookup(
            &repo(),
            &Revision::main(),
            &RepoPath::new("generation_config.json").unwrap()
        ),
        CacheLookup::KnownMissing
    );
    assert_eq!(
        c.lookup(&repo(), &Revision::main(), &RepoPath::new("other.json").unwrap()),
        CacheLookup::Miss
    );
}

#[test]
fn typed_errors_for_repo_revision_gated() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.commit(
        RepoKind::Model,
        "org/gated",
        "main",
        vec![("a".into(), Bytes::from_static(b"a"))],
    );
    hub.set_gated(RepoKind::Model, "org/gated");
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());

    let mut req = file("main", "config.json");
    req.repo = Repo::model("org/nope").unwrap();
    let err = c.download_file(&req).unwrap_err();
    assert!(
        matches!(err.hub_error(), Some(hubcache::hub::HubError::RepoNotFound { .. })),
        "{err:?}"
    );
    assert!(err.hints().iter().any(|h| h.contains("HF_TOKEN")));

    let err = c.download_file(&file("nonexistent-branch", "config.json")).unwrap_err();
    assert!(
        matches!(err.hub_error(), Some(hubcache::hub::HubError::RevisionNotFound { .. })),
        "{err:?}"
    );

    req.repo = Repo::model("org/gated").unwrap();
    req.path = RepoPath::new("a").unwrap();
    let err = c.download_file(&req).unwrap_err();
    assert!(
        matches!(err.hub_error(), Some(hubcache::hub::HubError::Gated { .. })),
        "{err:?}"
    );
    assert!(err.hints().iter().any(|h| h.contains("licence")));
}

#[test]
fn token_goes_to_the_hub_never_to_the_cdn() {
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "org/private",
        "main",
        vec![
            ("model.safetensors".into(), lfs_content(1000)),
            ("config.json".into(), Bytes::from_static(b"{}")),
        ],
    );
    hub.set_private(RepoKind::Model, "org/private", "hf_secret_token");
    let cache = tempfile::tempdir().unwrap();
    let mut req = file("main", "model.safetensors");
    req.repo = Repo::model("org/private").unwrap();

    let anonymous = client(&hub, cache.path());
    let err = anonymous.download_file(&req).unwrap_err();
    assert!(!format!("{err:?}").contains("hf_secret_token"));

    let authed = blocking::Hub::new(builder(&hub, cache.path()).token(Token::parse("hf_secret_token"))).unwrap();
    let path = authed.download_file(&req).unwrap();
    assert_eq!(fs::read(path).unwrap(), lfs_content(1000));
    let reqs = hub.requests();
    let cdn: Vec<_> = reqs.iter().filter(|r| r.origin == Origin::Cdn).collect();
    assert!(!cdn.is_empty());
    assert!(
        cdn.iter().all(|r| r.authorization.is_none()),
        "token leaked to the CDN: {cdn:?}"
    );
    assert!(reqs
        .iter()
        .filter(|r| r.origin == Origin::Hub && r.status < 400)
        .all(|r| r.authorization.as_deref() == Some("Bearer hf_secret_token")));
    // The cached private file is served without a token when the Hub says 401.
    assert!(anonymous.download_file(&req).is_ok());
}

#[test]
fn snapshot_twice_fetches_nothing_again_and_pinned_makes_no_request() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let dir = c.snapshot(&SnapshotRequest::new(repo(), Revision::main())).unwrap();
    assert_eq!(dir, repo_dir(cache.path()).join("snapshots").join(&commit));
    for p in ["config.json", "1_Pooling/config.json", "model.safetensors", "README.md"] {
        assert!(dir.join(p).is_file(), "{p}");
    }
    let reqs = hub.requests();
    assert_eq!(
        reqs.iter().filter(|r| r.method == "HEAD").count(),
        0,
        "no per-file HEAD"
    );
    assert_eq!(reqs.iter().filter(|r| r.is_content_get()).count(), 4);
    assert!(repo_dir(cache.path())
        .join("trees")
        .join(format!("{commit}.json"))
        .is_file());
    assert_eq!(
        fs::read_to_string(repo_dir(cache.path()).join("refs/main")).unwrap(),
        commit
    );

    hub.clear_requests();
    assert_eq!(
        c.snapshot(&SnapshotRequest::new(repo(), Revision::main())).unwrap(),
        dir
    );
    let reqs = hub.requests();
    assert_eq!(reqs.iter().filter(|r| r.is_content_get()).count(), 0, "{reqs:?}");
    assert_eq!(reqs.len(), 1, "only the revision lookup: {reqs:?}");

    hub.clear_requests();
    let pinned = SnapshotRequest::new(repo(), Revision::new(&commit).unwrap());
    assert_eq!(c.snapshot(&pinned).unwrap(), dir);
    assert_eq!(hub.requests().len(), 0);
}

#[test]
fn snapshot_filters_and_offline_completeness() {
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let mut req = SnapshotRequest::new(repo(), Revision::main());
    req.include = vec!["*.json".into()];
    let dir = c.snapshot(&req).unwrap();
    assert!(dir.join("config.json").is_file() && dir.join("1_Pooling/config.json").is_file());
    assert!(!dir.join("model.safetensors").exists() && !dir.join("README.md").exists());

    let offline = blocking::Hub::new(builder(&hub, cache.path()).offline(true)).unwrap();
    assert_eq!(offline.snapshot(&req).unwrap(), dir, "the filtered part is complete");
    let err = offline
        .snapshot(&SnapshotRequest::new(repo(), Revision::main()))
        .unwrap_err();
    match err {
        Error::IncompleteSnapshot { missing, .. } => {
            assert_eq!(missing, vec!["README.md".to_string(), "model.safetensors".to_string()]);
        }
        other => panic!("expected an incomplete snapshot, got {other:?}"),
    }
}

#[test]
fn refs_for_tags_and_pull_requests() {
    let hub = FakeHub::start();
    let first = seed(&hub);
    let second = hub.commit(
        RepoKind::Model,
        REPO,
        "main",
        vec![("config.json".into(), Bytes::from_static(b"{\"v\": 2}"))],
    );
    hub.tag(RepoKind::Model, REPO, "refs/pr/1", &first);
    hub.tag(RepoKind::Model, REPO, "v1", &first);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let pr = c.download_file(&file("refs/pr/1", "config.json")).unwrap();
    let tagged = c.download_file(&file("v1", "config.json")).unwrap();
    let main = c.download_file(&file("main", "config.json")).unwrap();
    let root = repo_dir(cache.path());
    assert_eq!(fs::read_to_string(root.join("refs/refs/pr/1")).unwrap(), first);
    assert_eq!(fs::read_to_string(root.join("refs/v1")).unwrap(), first);
    assert_eq!(fs::read_to_string(root.join("refs/main")).unwrap(), second);
    assert_eq!(pr, tagged);
    assert_eq!(fs::read(main).unwrap(), b"{\"v\": 2}");
}

#[test]
fn renamed_repo_follows_relative_redirect() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.rename_repo(RepoKind::Model, "org/old-name", REPO);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let mut req = file("main", "config.json");
    req.repo = Repo::model("org/old-name").unwrap();
    let path = c.download_file(&req).unwrap();
    assert!(path.starts_with(cache.path().join("models--org--old-name")));
    assert_eq!(fs::read(path).unwrap(), b"{\"model_type\": \"bert\"}\n");
}

#[test]
fn no_symlink_mode_moves_new_blobs_and_copies_existing() {
    let hub = FakeHub::start();
    let first = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let c = blocking::Hub::new(builder(&hub, cache.path()).disable_symlinks(true)).unwrap();
    let p = c.download_file(&file("main", "config.json")).unwrap();
    assert!(!fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&p).unwrap(), b"{\"model_type\": \"bert\"}\n");
    assert_eq!(
        fs::read_dir(repo_dir(cache.path()).join("blobs")).unwrap().count(),
        0,
        "moved, not duplicated"
    );
    assert!(c.download_file(&file(&first, "config.json")).is_ok());
}

#[test]
fn local_dir_mode_writes_metadata_and_skips_unchanged() {
    let hub = FakeHub::start();
    let commit = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let mut req = SnapshotRequest::new(repo(), Revision::main());
    req.local_dir = Some(out.path().to_path_buf());
    assert_eq!(c.snapshot(&req).unwrap(), out.path());
    let f = out.path().join("1_Pooling/config.json");
    assert!(!fs::symlink_metadata(&f).unwrap().file_type().is_symlink());
    let meta = fs::read_to_string(
        out.path()
            .join(".cache/huggingface/download/1_Pooling/config.json.metadata"),
    )
    .unwrap();
    let lines: Vec<&str> = meta.lines().collect();
    assert_eq!(lines[0], commit);
    assert_eq!(lines[1], git_blob_sha1(b"{\"pooling\": true}"));
    assert!(lines[2].parse::<f64>().is_ok());
    assert_eq!(
        fs::read(out.path().join(".cache/huggingface/.gitignore")).unwrap(),
        b"*"
    );
    assert!(
        !repo_dir(cache.path()).join("blobs").exists(),
        "nothing in the hub cache"
    );

    hub.clear_requests();
    c.snapshot(&req).unwrap();
    assert_eq!(hub.requests().iter().filter(|r| r.is_content_get()).count(), 0);

    let mut one = file("main", "config.json");
    one.local_dir = Some(out.path().to_path_buf());
    hub.clear_requests();
    assert_eq!(c.download_file(&one).unwrap(), out.path().join("config.json"));
    assert_eq!(hub.requests().iter().filter(|r| r.is_content_get()).count(), 0);
}

// ---- faults: nothing corrupt ever lands ----

fn assert_nothing_landed(cache: &Path) {
    let blobs = repo_dir(cache).join("blobs");
    let count = fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 0, "a blob landed");
    assert!(files_ending(cache, ".incomplete").is_empty(), "temp file left behind");
    let snaps = files_ending(&repo_dir(cache).join("snapshots"), "model.safetensors");
    assert!(snaps.is_empty(), "snapshot entry created: {snaps:?}");
}

fn weights_after(fault: Fault, times: usize) -> (tempfile::TempDir, FakeHub, Result<PathBuf, Error>) {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(FaultRule::new("/lfs/", fault).on_method("GET").repeat(times));
    let cache = tempfile::tempdir().unwrap();
    let result = client(&hub, cache.path()).download_file(&file("main", "model.safetensors"));
    (cache, hub, result)
}

#[test]
fn truncated_body_resumes_with_range() {
    let (_cache, hub, result) = weights_after(Fault::TruncateBody { after: 1 << 20 }, 2);
    assert_eq!(fs::read(result.unwrap()).unwrap(), lfs_content(3 << 20));
    let ranges: Vec<_> = hub.requests().into_iter().filter_map(|r| r.range).collect();
    assert!(
        ranges.iter().any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "{ranges:?}"
    );
}

/// The content GETs of the weights (CDN origin), in arrival order.
fn lfs_gets(hub: &FakeHub) -> Vec<hubcache_test_support::LoggedRequest> {
    hub.requests()
        .into_iter()
        .filter(|r| r.origin == Origin::Cdn && r.method == "GET" && r.path.starts_with("/lfs/"))
        .collect()
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let hub = FakeHub::start();
    seed(&hub);
    hub.inject(FaultRule::new("/lfs/", Fault::TruncateBody { after: 100_000 }).on_method("GET"));
    hub.inject(FaultRule::new("/lfs/", Fault::IgnoreRange).on_method("GET"));
    let cache = tempfile::tempdir().unwrap();
    let p = client(&hub, cache.path())
        .download_file(&file("main", "model.safetensors"))
        .unwrap();
    assert_eq!(fs::read(p).unwrap(), lfs_content(3 << 20));
    let gets: Vec<_> = lfs_gets(&hub).into_iter().map(|r| (r.range, r.status)).collect();
    assert_eq!(
        gets,
        [(None, 200), (Some("bytes=100000-".to_string()), 200)],
        "cut at 100,000 bytes, resumed with a Range, answered 200 and restarted from zero"
    );
}

#[test]
fn server_errors_are_retried() {
    let (_cache, hub, result) = weights_after(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    assert_eq!(fs::read(result.unwrap()).unwrap(), lfs_content(3 << 20));
    let statuses: Vec<u16> = lfs_gets(&hub).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 200], "two retries, then the transfer");
}

#[test]
fn stalled_server_times_out_and_resumes() {
    let (_cache, hub, result) = weights_after(Fault::Stall { after: 500_000 }, 1);
    assert_eq!(fs::read(result.unwrap()).unwrap(), lfs_content(3 << 20));
    let gets = lfs_gets(&hub);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    // The stalled attempt wrote everything it received; the resume asks for the rest.
    assert_eq!(gets[1].range.as_deref(), Some("bytes=500000-"));
    assert_eq!(gets[1].status, 206);
}

#[test]
fn wrong_bytes_never_land() {
    let (cache, _hub, result) = weights_after(Fault::WrongBytes, 10);
    let err = result.unwrap_err();
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(
        matches!(
            err,
            Error::Transfer {
                source: TransferError::Hash { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_nothing_landed(cache.path());
}

#[test]
fn persistent_truncation_fails_cleanly() {
    let (cache, _hub, result) = weights_after(Fault::TruncateBody { after: 0 }, 100);
    assert!(result.is_err());
    assert_nothing_landed(cache.path());
}

#[test]
fn persistent_500_falls_back_to_cached_copy() {
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let cached = c.download_file(&file("main", "config.json")).unwrap();
    hub.inject(
        FaultRule::new(
            "/resolve/",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        )
        .repeat(100),
    );
    assert_eq!(c.download_file(&file("main", "config.json")).unwrap(), cached);
    let err = c.download_file(&file("main", "README.md")).unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[test]
fn unreachable_hub_falls_back_to_cache() {
    let cache = tempfile::tempdir().unwrap();
    let path;
    {
        let hub = FakeHub::start();
        seed(&hub);
        path = client(&hub, cache.path())
            .download_file(&file("main", "config.json"))
            .unwrap();
    }
    // Nothing listens there any more: connection refused.
    let c = blocking::Hub::new(HubBuilder::new("http://127.0.0.1:9", cache.path()).retry(RetryPolicy {
        max_retries: 1,
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    }))
    .unwrap();
    assert_eq!(c.download_file(&file("main", "config.json")).unwrap(), path);
    let snap = c.snapshot(&SnapshotRequest::new(repo(), Revision::main())).unwrap();
    assert_eq!(snap, path.parent().unwrap());
    let err = c.download_file(&file("main", "README.md")).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
}

#[test]
fn hostile_tree_listing_is_refused() {
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "org/evil",
        "main",
        vec![("../../../escape.txt".into(), Bytes::from_static(b"pwned"))],
    );
    let cache = tempfile::tempdir().unwrap();
    let err = client(&hub, cache.path())
        .snapshot(&SnapshotRequest::new(
            Repo::new("org/evil".parse().unwrap(), RepoType::Model),
            Revision::main(),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::BadResponse { .. }), "{err:?}");
    assert!(!cache.path().join("escape.txt").exists());
    assert!(!cache.path().parent().unwrap().join("escape.txt").exists());
}

#[test]
fn user_input_traversal_is_refused() {
    for bad in ["../x", "a/../../x", "/etc/passwd", "a\\..\\b", "a\0b", "a//b"] {
        assert!(RepoPath::new(bad).is_err(), "{bad:?}");
    }
    for bad in ["../main", "a/../../b", "a\0"] {
        assert!(Revision::new(bad).is_err(), "{bad:?}");
    }
    for bad in ["../org", "org/../x", "a/b/c"] {
        assert!(Repo::model(bad).is_err(), "{bad:?}");
    }
}

/// A server that answers every request with the same raw HTTP response.
fn raw_server(response: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    url
}

#[test]
fn hostile_metadata_headers_are_refused() {
    for (response, what) in [
        (
            "HTTP/1.1 200 OK\r\nX-Repo-Commit: ../../../../tmp/evil\r\nETag: \"0123456789abcdef0123456789abcdef01234567\"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            "commit",
        ),
        (
            "HTTP/1.1 200 OK\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\nETag: \"../../../escape\"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            "etag",
        ),
    ] {
        let url = raw_server(response);
        // The cache sits four levels below a fresh folder: anything written outside it (by a
        // `..` in a header) shows up in that folder's tree.
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("a/b/c/cache");
        fs::create_dir_all(&cache).unwrap();
        let c = blocking::Hub::new(HubBuilder::new(url, &cache).retry(RetryPolicy::none())).unwrap();
        let err = c.download_file(&file("main", "config.json")).unwrap_err();
        assert!(matches!(err, Error::BadResponse { .. }), "{what}: {err:?}");
        assert!(err.to_string().contains(what), "{err}");
        let top: Vec<_> = fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(top, ["a"], "{what}: nothing beside the cache's first folder");
        let mut outside = files_ending(root.path(), "");
        outside.retain(|p| !p.starts_with(&cache));
        assert!(outside.is_empty(), "{what}: written outside the cache: {outside:?}");
        let dirs: Vec<_> = ["a", "a/b", "a/b/c"]
            .iter()
            .map(|d| fs::read_dir(root.path().join(d)).unwrap().count())
            .collect();
        assert_eq!(dirs, [1, 1, 1], "{what}: the folders above the cache hold only the path to it");
        assert!(!repo_dir(&cache).join("blobs").exists(), "{what}: nothing may be written");
    }
}

/// Many small files of a snapshot are in flight at once, up to the client's connection budget
/// and never beyond it (the fake Hub counts the requests it answers at once; 30 ms each).
#[test]
fn snapshot_files_run_together_within_the_connection_budget() {
    let hub = FakeHub::start();
    let files: Vec<(String, Bytes)> = (0..48)
        .map(|i| (format!("f/{i:02}.txt"), Bytes::from(format!("file {i}\n"))))
        .collect();
    hub.commit(RepoKind::Model, REPO, "main", files);
    hub.set_wan(hubcache_test_support::Wan {
        latency: Duration::from_millis(30),
        ..Default::default()
    });
    let run = |budget: Option<usize>| {
        let cache = tempfile::tempdir().unwrap();
        let mut b = builder(&hub, cache.path());
        if let Some(n) = budget {
            b = b.connection_budget(n);
        }
        let api = blocking::Hub::new(b).unwrap();
        hub.clear_requests();
        let dir = api
            .snapshot(&SnapshotRequest::new(repo(), Revision::new("main").unwrap()))
            .unwrap();
        assert_eq!(fs::read_to_string(dir.join("f/47.txt")).unwrap(), "file 47\n");
        let gets = hub.requests().iter().filter(|r| r.is_content_get()).count();
        assert_eq!(gets, 48);
        hub.peak_in_flight()
    };
    let free = run(None);
    assert!(
        free >= 16,
        "48 small files with the default budget: {free} at most at once"
    );
    let bounded = run(Some(3));
    assert!(
        (2..=3).contains(&bounded),
        "a budget of 3 connections: {bounded} requests at once"
    );
}
