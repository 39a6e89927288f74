//! Production failures users hit with other tools, each proven absent here: read-only caches,
//! black-holed endpoints, hand-edited refs, broken snapshot links.

#![allow(clippy::unwrap_used)]

use crate::common;

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
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hole.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    let connections = || {
        // Let the accept loop catch up with connections the kernel already took.
        std::thread::sleep(Duration::from_millis(200));
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    };
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
    let online = connections();
    assert!(
        online >= 3,
        "the online calls did try the black hole ({online} connections)"
    );
    // Offline never waits on the network: not one connection is attempted.
    for envs in [&[("HF_HUB_OFFLINE", "1")][..], &[("TRANSFORMERS_OFFLINE", "1")][..]] {
        let (out, _) = run(&hole_url, &["download", "org/model", "config.json"], envs);
        assert_eq!(single_path(&out), snap.join("config.json"));
    }
    let (out, _) = run(&hole_url, &["download", "org/model", "config.json", "--offline"], &[]);
    assert!(out.status.success());
    assert_eq!(connections(), online, "an offline call connected to the endpoint");
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

fn big_repo(hub: &FakeHub) -> Bytes {
    let weights: Vec<u8> = (0..(6 << 20))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let weights = Bytes::from(weights);
    hub.commit(
        RepoKind::Model,
        "org/big",
        "main",
        vec![
            ("model.safetensors".into(), weights.clone()),
            ("config.json".into(), Bytes::from_static(b"{}")),
        ],
    );
    weights
}

#[test]
fn six_writers_without_flock_all_succeed_and_nothing_corrupt_lands() {
    let hub = FakeHub::start();
    let weights = big_repo(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let children: Vec<_> = (0..6)
        .map(|_| {
            hubcache(home.path())
                .args(["download", "org/big"])
                .env("HF_ENDPOINT", hub.url())
                .env("HF_HUB_CACHE", &cache)
                .env("HUBCACHE_DISABLE_FLOCK", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut corrupt = 0;
    for child in children {
        let snap = single_path(&child.wait_with_output().unwrap());
        if fs::read(snap.join("model.safetensors")).unwrap() != weights {
            corrupt += 1;
        }
    }
    assert_eq!(corrupt, 0);
    let transfers = hub
        .requests()
        .into_iter()
        .filter(|r| r.is_content_get() && r.path.contains("/lfs/"))
        .count();
    eprintln!("6 writers without flock: {transfers} transfers of the weights, 0 corrupt");
    let leftovers: Vec<_> = fs::read_dir(cache.join("models--org--big/blobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn waiting_for_a_stuck_lock_is_reported_and_bounded() {
    let hub = FakeHub::start();
    big_repo(&hub);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let etag = hubcache_test_support::git_blob_sha1(b"{}");
    let lock_path = cache.join(format!(".locks/models--org--big/{etag}.lock"));
    fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let holder = fs::File::create(&lock_path).unwrap();
    holder.lock().unwrap();
    let start = Instant::now();
    let out = hubcache(home.path())
        .args(["download", "org/big", "config.json"])
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", &cache)
        .env("HUBCACHE_LOCK_TIMEOUT", "3")
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("waiting for another process"), "{err}");
    assert!(
        err.contains(&format!("{etag}.lock")),
        "the error names the lock file: {err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "{took:?}"
    );
    drop(holder);
}

#[test]
fn group_shared_cache_works_for_two_users() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !nix_root() {
        assert!(std::env::var("CI").is_err(), "CI runs as root to test two users");
        eprintln!("skipping: needs root to switch users");
        return;
    }
    let hub = FakeHub::start();
    seed(&hub);
    big_repo(&hub);
    let home = tempfile::tempdir().unwrap();
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let cache = home.path().join("shared");
    fs::create_dir(&cache).unwrap();
    let group = 4242u32;
    std::os::unix::fs::chown(&cache, Some(0), Some(group)).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o2775)).unwrap();
    let as_user = |uid: u32, args: &[&str]| {
        let script = "umask 002 && exec \"$@\"";
        let mut cmd = Command::new("setpriv");
        common::clean_env(&mut cmd, home.path());
        cmd.args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            &format!("--groups={group}"),
            "sh",
            "-c",
            script,
            "sh",
            env!("CARGO_BIN_EXE_hubcache"),
        ])
        .args(args)
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", &cache)
        .env("HOME", home.path());
        cmd.output().unwrap()
    };
    let a = as_user(3001, &["download", "org/model"]);
    assert!(a.status.success(), "user A: {}", stderr(&a));
    let b = as_user(3002, &["download", "org/big"]);
    assert!(b.status.success(), "user B extends the cache: {}", stderr(&b));
    let b_reads = as_user(3002, &["download", "org/model", "config.json", "--offline"]);
    assert!(b_reads.status.success(), "user B reads A's files: {}", stderr(&b_reads));
    assert_eq!(fs::read(single_path(&b_reads)).unwrap(), b"{\"model_type\": \"bert\"}");
    let a_again = as_user(3001, &["download", "org/model", "tokenizer.json"]);
    assert!(a_again.status.success(), "user A after B: {}", stderr(&a_again));
    // Modes as Python sets them under umask 002, group kept by the setgid folders.
    let repo = cache.join("models--org--model");
    for blob in fs::read_dir(repo.join("blobs")).unwrap().flatten() {
        let m = blob.metadata().unwrap();
        assert_eq!(m.mode() & 0o777, 0o664, "{:?}", blob.path());
        assert_eq!(m.gid(), group, "{:?}", blob.path());
    }
    for dir in [
        repo.join("blobs"),
        repo.join("snapshots"),
        cache.join(".locks/models--org--big"),
    ] {
        let m = fs::metadata(&dir).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o2775, "{dir:?}");
        assert_eq!(m.gid(), group, "{dir:?}");
    }
}

fn nix_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
