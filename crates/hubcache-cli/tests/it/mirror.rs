//! `hubcache serve` as a real process: Hub-faithful answers, Python and hubcache clients,
//! pull-through from the fake Hub, access control, traversal, graceful shutdown.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::{http, hubcache, python, single_path, stdout, Served};
use hubcache_test_support::{sha256_hex, FakeHub, RepoKind};

/// Imports `dir` into a fresh mirror cache as `repo`; returns (cache, commit).
fn seed_mirror(home: &Path, dir: &Path, repo: &str) -> (PathBuf, String) {
    let cache = home.join("mirror-cache");
    let out = hubcache(home)
        .args(["cache", "add-folder"])
        .arg(dir)
        .args(["--repo", repo, "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    let snap = single_path(&out);
    let commit = snap.file_name().unwrap().to_string_lossy().into_owned();
    (cache, commit)
}

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tiny-model")
}

fn source_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn assert_same_files(source: &Path, snapshot: &Path) {
    let files = source_files(source);
    assert!(!files.is_empty());
    for f in &files {
        assert_eq!(
            fs::read(source.join(f)).unwrap(),
            fs::read(snapshot.join(f)).unwrap(),
            "{f} differs"
        );
    }
    assert_eq!(source_files(snapshot), files, "extra or missing files");
}

#[test]
fn hub_faithful_headers_ranges_and_errors() {
    let home = tempfile::tempdir().unwrap();
    let (cache, commit) = seed_mirror(home.path(), &tiny_model(), "demo/tiny");
    let server = Served::start(home.path(), &["--cache-dir", cache.to_str().unwrap()], &[]);
    let a = &server.addr;

    let weights = fs::read(tiny_model().join("model-00001-of-00002.safetensors")).unwrap();
    let sha = sha256_hex(&weights);
    let head = http(
        a,
        "HEAD",
        "/demo/tiny/resolve/main/model-00001-of-00002.safetensors",
        &[],
        b"",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["x-repo-commit"], commit);
    assert_eq!(head.headers["x-linked-etag"], format!("\"{sha}\""));
    assert_eq!(head.headers["x-linked-size"], weights.len().to_string());
    assert_eq!(head.headers["content-length"], weights.len().to_string());
    assert_eq!(head.headers["accept-ranges"], "bytes");
    assert!(head.body.is_empty());
    let cfg = http(a, "HEAD", "/demo/tiny/resolve/main/config.json", &[], b"");
    let cfg_bytes = fs::read(tiny_model().join("config.json")).unwrap();
    assert_eq!(
        cfg.headers["etag"],
        format!("\"{}\"", hubcache_test_support::git_blob_sha1(&cfg_bytes))
    );
    assert!(!cfg.headers.contains_key("x-linked-etag"));
    assert!(!cfg.headers.keys().any(|k| k.starts_with("x-xet")));

    let by_commit = http(
        a,
        "GET",
        &format!("/demo/tiny/resolve/{commit}/1_Pooling%2Fconfig.json"),
        &[],
        b"",
    );
    assert_eq!(by_commit.status, 200);
    assert_eq!(
        by_commit.body,
        fs::read(tiny_model().join("1_Pooling/config.json")).unwrap()
    );

    let part = http(
        a,
        "GET",
        "/demo/tiny/resolve/main/model-00001-of-00002.safetensors",
        &[("Range", "bytes=10-19")],
        b"",
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, weights[10..20]);
    assert_eq!(part.headers["content-range"], format!("bytes 10-19/{}", weights.len()));
    let tail = http(
        a,
        "GET",
        "/demo/tiny/resolve/main/model-00001-of-00002.safetensors",
        &[("Range", "bytes=-5")],
        b"",
    );
    assert_eq!(tail.body, weights[weights.len() - 5..]);
    let beyond = format!("bytes={}-", weights.len());
    let bad = http(
        a,
        "GET",
        "/demo/tiny/resolve/main/model-00001-of-00002.safetensors",
        &[("Range", &beyond)],
        b"",
    );
    assert_eq!(bad.status, 416);
    assert_eq!(bad.headers["content-range"], format!("bytes */{}", weights.len()));

    let no_repo = http(a, "GET", "/demo/nope/resolve/main/config.json", &[], b"");
    assert_eq!(
        (no_repo.status, no_repo.headers["x-error-code"].as_str()),
        (401, "RepoNotFound")
    );
    let no_rev = http(a, "HEAD", "/demo/tiny/resolve/nobranch/config.json", &[], b"");
    assert_eq!(
        (no_rev.status, no_rev.headers["x-error-code"].as_str()),
        (404, "RevisionNotFound")
    );
    let no_file = http(a, "HEAD", "/demo/tiny/resolve/main/missing.json", &[], b"");
    assert_eq!(
        (no_file.status, no_file.headers["x-error-code"].as_str()),
        (404, "EntryNotFound")
    );
    assert_eq!(no_file.headers["x-repo-commit"], commit);

    let info = http(a, "GET", "/api/models/demo/tiny/revision/main?blobs=true", &[], b"");
    let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(info["sha"], commit.as_str());
    assert_eq!(
        info["siblings"].as_array().unwrap().len(),
        source_files(&tiny_model()).len()
    );
    let tree = http(a, "GET", "/api/models/demo/tiny/tree/main?recursive=false", &[], b"");
    let tree: serde_json::Value = serde_json::from_slice(&tree.body).unwrap();
    let kinds: HashMap<String, String> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(kinds["1_Pooling"], "directory");
    assert!(
        !kinds.contains_key("1_Pooling/config.json"),
        "non-recursive lists direct children only"
    );
    let sub = http(a, "GET", "/api/models/demo/tiny/tree/main/1_Pooling", &[], b"");
    let sub: serde_json::Value = serde_json::from_slice(&sub.body).unwrap();
    assert_eq!(sub[0]["path"], "1_Pooling/config.json");
    let lfs = http(a, "GET", "/api/models/demo/tiny/tree/main?recursive=true", &[], b"");
    let lfs: serde_json::Value = serde_json::from_slice(&lfs.body).unwrap();
    let w = lfs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "model-00001-of-00002.safetensors")
        .unwrap();
    assert_eq!(w["lfs"]["oid"], sha.as_str());
    assert!(w.get("xetHash").is_none());
    let paths = http(
        a,
        "POST",
        "/api/models/demo/tiny/paths-info/main",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"paths=config.json&paths=1_Pooling&paths=nope&expand=false",
    );
    let paths: serde_json::Value = serde_json::from_slice(&paths.body).unwrap();
    let got: Vec<&str> = paths
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["config.json", "1_Pooling"]);
}

#[test]
fn traversal_in_every_segment_reads_nothing() {
    let home = tempfile::tempdir().unwrap();
    let (cache, _) = seed_mirror(home.path(), &tiny_model(), "demo/tiny");
    fs::write(home.path().join("secret.txt"), b"TOP-SECRET-CONTENT").unwrap();
    let server = Served::start(home.path(), &["--cache-dir", cache.to_str().unwrap()], &[]);
    for path in [
        "/demo/tiny/resolve/main/..%2F..%2F..%2Fsecret.txt",
        "/demo/tiny/resolve/main/../../../secret.txt",
        "/demo/tiny/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/demo/tiny/resolve/..%2F..%2F..%2F/secret.txt",
        "/demo/tiny/resolve/main/%2Fetc%2Fpasswd",
        "/demo/tiny/resolve/main/a%00b",
        "/demo/tiny/resolve/main/..%5C..%5Csecret.txt",
        "/..%2F..%2F/tiny/resolve/main/config.json",
        "/demo/..%2F..%2Fsecret.txt/resolve/main/config.json",
        "/api/models/demo/tiny/tree/main/..%2F..%2F..",
        "/api/models/demo/tiny/revision/..%2F..%2F..%2Fsecret.txt",
        "/api/models/demo/..%2F../tree/main",
    ] {
        let r = http(&server.addr, "GET", path, &[], b"");
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        assert!(!String::from_utf8_lossy(&r.body).contains("TOP-SECRET"), "{path}");
    }
}

#[test]
fn hubcache_clients_through_the_mirror_eight_at_once() {
    let home = tempfile::tempdir().unwrap();
    let (cache, commit) = seed_mirror(home.path(), &tiny_model(), "demo/tiny");
    let server = Served::start(home.path(), &["--cache-dir", cache.to_str().unwrap()], &[]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            hubcache(home.path())
                .args(["download", "demo/tiny", "--cache-dir"])
                .arg(home.path().join(format!("client-{i}")))
                .env("HF_ENDPOINT", &server.url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let snap = single_path(&child.wait_with_output().unwrap());
        assert!(snap.ends_with(&commit));
        assert_same_files(&tiny_model(), &snap);
    }
}

/// `--upstream` wiring end to end; the single flight itself is tested in the mirror crate.
#[test]
fn pull_through_fetches_each_blob_once() {
    let hub = FakeHub::start();
    let big: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let commit = hub.commit(
        RepoKind::Model,
        "up/model",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"up\": true}")),
            ("model-00001-of-00002.safetensors".into(), Bytes::from(big.clone())),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let mirror_cache = home.path().join("pull-cache");
    let server = Served::start(
        home.path(),
        &["--cache-dir", mirror_cache.to_str().unwrap(), "--upstream", &hub.url()],
        &[],
    );
    let children: Vec<_> = (0..2)
        .map(|i| {
            hubcache(home.path())
                .args(["download", "up/model", "--cache-dir"])
                .arg(home.path().join(format!("c{i}")))
                .env("HF_ENDPOINT", &server.url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let snap = single_path(&child.wait_with_output().unwrap());
        assert_eq!(fs::read(snap.join("model-00001-of-00002.safetensors")).unwrap(), big);
    }
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for r in hub.requests().into_iter().filter(|r| r.is_content_get()) {
        *per_file.entry(r.path).or_default() += 1;
    }
    assert_eq!(per_file.len(), 2, "{per_file:?}");
    assert!(per_file.values().all(|n| *n == 1), "upstream transfers: {per_file:?}");
    // The mirror's cache is a normal cache: hubcache reads it offline.
    let p = single_path(
        &hubcache(home.path())
            .args(["download", "up/model", "config.json", "--offline", "--cache-dir"])
            .arg(&mirror_cache)
            .output()
            .unwrap(),
    );
    assert!(p.ends_with(format!("{commit}/config.json")));
    // A file the upstream does not have is a Hub-style 404 through the mirror.
    let r = http(&server.addr, "HEAD", "/up/model/resolve/main/nope.bin", &[], b"");
    assert_eq!((r.status, r.headers["x-error-code"].as_str()), (404, "EntryNotFound"));
    let r = http(&server.addr, "HEAD", "/up/absent/resolve/main/x", &[], b"");
    assert_eq!(r.status, 401);
}

#[test]
fn token_file_controls_access() {
    let home = tempfile::tempdir().unwrap();
    let (cache, _) = seed_mirror(home.path(), &tiny_model(), "demo/tiny");
    let tokens = home.path().join("tokens");
    fs::write(&tokens, "# team tokens\nhf_team_a\n\nhf_team_b\n").unwrap();
    let server = Served::start(
        home.path(),
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--token-file",
            tokens.to_str().unwrap(),
        ],
        &[],
    );
    let path = "/demo/tiny/resolve/main/config.json";
    assert_eq!(http(&server.addr, "GET", path, &[], b"").status, 401);
    assert_eq!(
        http(&server.addr, "GET", path, &[("Authorization", "Bearer wrong")], b"").status,
        401
    );
    assert_eq!(
        http(&server.addr, "GET", path, &[("Authorization", "Bearer hf_team_b")], b"").status,
        200
    );
    let denied = hubcache(home.path())
        .args(["download", "demo/tiny", "config.json", "--cache-dir"])
        .arg(home.path().join("c-denied"))
        .env("HF_ENDPOINT", &server.url)
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let allowed = hubcache(home.path())
        .args(["download", "demo/tiny", "--cache-dir"])
        .arg(home.path().join("c-ok"))
        .env("HF_ENDPOINT", &server.url)
        .env("HF_TOKEN", "hf_team_a")
        .output()
        .unwrap();
    assert_same_files(&tiny_model(), &single_path(&allowed));
    assert!(!server.log().contains("hf_team"), "tokens must not be logged");
}

#[test]
fn serve_limit_flags_close_idle_connections_and_reject_zero() {
    use std::io::Read;
    let home = tempfile::tempdir().unwrap();
    let (cache, _) = seed_mirror(home.path(), &tiny_model(), "demo/tiny");
    let server = Served::start(
        home.path(),
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--idle-timeout",
            "1",
            "--header-timeout",
            "1",
            "--max-connections",
            "8",
        ],
        &[],
    );
    let mut idle = std::net::TcpStream::connect(&server.addr).unwrap();
    idle.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 16];
    // EOF (or a reset) well before the hang guard: the server closed the idle connection.
    match idle.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{n} unexpected bytes on an idle connection"),
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the idle connection stayed open"
        ),
    }
    assert_eq!(
        http(&server.addr, "GET", "/demo/tiny/resolve/main/config.json", &[], b"").status,
        200
    );
    for flag in ["--idle-timeout", "--header-timeout", "--max-connections"] {
        let out = hubcache(home.path()).args(["serve", flag, "0"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} 0 accepted");
    }
}

#[test]
fn shutdown_drains_an_in_flight_transfer() {
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("big-model");
    fs::create_dir_all(&src).unwrap();
    let big: Vec<u8> = (0..(48 << 20)).map(|i: u32| (i % 241) as u8).collect();
    fs::write(src.join("model.safetensors"), &big).unwrap();
    let (cache, _) = seed_mirror(home.path(), &src, "big/model");
    let mut server = Served::start(home.path(), &["--cache-dir", cache.to_str().unwrap()], &[]);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "GET /big/model/resolve/main/model.safetensors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 64 * 1024];
    s.read_exact(&mut first).unwrap();
    // SIGTERM while the client is mid-file.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    first.extend(rest);
    let split = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(&first[split + 4..], &big[..], "the transfer was cut");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(&server.addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn python_and_transformers_through_the_mirror_on_the_real_model() {
    let Some(py) = python() else { return };
    let model = common::minilm_dir(&py);
    let repo = "sentence-transformers/all-MiniLM-L6-v2";
    let home = tempfile::tempdir().unwrap();
    let (cache, commit) = seed_mirror(home.path(), &model, repo);
    let server = Served::start(home.path(), &["--cache-dir", cache.to_str().unwrap()], &[]);
    let client_cache = home.path().join("py-client");
    let run_py = |code: &str, offline: bool| {
        let mut cmd = common::python_command(&py, home.path(), &client_cache, &server.url, code);
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        stdout(&common::run_ok(&mut cmd))
    };
    let printed = run_py(
        &format!(
            "from huggingface_hub import snapshot_download, hf_hub_download\n\
             print(hf_hub_download('{repo}', 'model.safetensors'))\nprint(snapshot_download('{repo}'))"
        ),
        false,
    );
    let snap = PathBuf::from(printed.trim().lines().last().unwrap());
    assert!(snap.ends_with(&commit));
    assert_same_files(&model, &snap);
    let loaded = run_py(
        &format!(
            "from transformers import AutoConfig, AutoTokenizer\n\
             c = AutoConfig.from_pretrained('{repo}')\nt = AutoTokenizer.from_pretrained('{repo}')\n\
             print(c.model_type, t('hello world')['input_ids'])"
        ),
        true,
    );
    assert_eq!(loaded.trim().lines().last().unwrap(), "bert [101, 7592, 2088, 102]");
    let rs = single_path(
        &hubcache(home.path())
            .args(["download", repo, "--cache-dir"])
            .arg(home.path().join("rs-client"))
            .env("HF_ENDPOINT", &server.url)
            .output()
            .unwrap(),
    );
    assert_same_files(&model, &rs);
}
