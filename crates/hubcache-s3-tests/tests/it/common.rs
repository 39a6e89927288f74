use std::path::{Path, PathBuf};

use bytes::Bytes;
use hubcache::deploy::bundle::{export, ExportItem};
use hubcache::{CommitHash, Repo, Revision, SnapshotRequest};
use hubcache_test_support::{FakeHub, RepoKind};

/// A repo with a regular file, a nested one and a 12 MiB LFS file (one 8 MiB part and a rest).
pub fn files() -> Vec<(String, Bytes)> {
    let big: Vec<u8> = (0..(12u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    vec![
        ("config.json".into(), Bytes::from_static(b"{\"fleet\": true}")),
        ("sub/dir/notes.txt".into(), Bytes::from_static(b"nested file\n")),
        ("model.safetensors".into(), Bytes::from(big)),
    ]
}

/// Fills `cache` from a fake Hub with `org/fleet` (snapshot, listing, ref); returns the commit.
pub fn filled_cache(cache: &Path) -> (FakeHub, String) {
    let hub = FakeHub::start();
    let commit = hub.commit(RepoKind::Model, "org/fleet", "main", files());
    let client = hubcache::blocking::Hub::new(hubcache::HubBuilder::new(hub.url(), cache).offline(false)).unwrap();
    let req = SnapshotRequest::new(Repo::model("org/fleet").unwrap(), Revision::main());
    client.snapshot(&req).unwrap();
    (hub, commit)
}

/// A bundle of `org/fleet@main` from `cache`.
pub fn bundle(cache: &Path, commit: &str, out: &Path) -> PathBuf {
    let layout = hubcache::cache::CacheLayout::new(cache);
    let item = ExportItem {
        repo: Repo::model("org/fleet").unwrap(),
        commit: CommitHash::new(commit).unwrap(),
        refs: vec!["main".into()],
        files: None,
    };
    export(&layout, &[item], out, None).unwrap();
    out.to_path_buf()
}

/// The `hubcache` binary built beside this test (scripts/s3-test.sh builds it first).
pub fn hubcache_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("hubcache");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build -p hubcache-cli` (scripts/s3-test.sh does)",
        bin.display()
    );
    bin
}

/// A `hubcache` command with a clean environment and the store's `AWS_*` variables.
pub fn hubcache_cmd(server: &hubcache_s3_tests::S3Server, home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(hubcache_bin());
    cmd.env_clear()
        .env("HOME", home)
        .env("HF_HOME", home.join("hf"))
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    cmd
}
