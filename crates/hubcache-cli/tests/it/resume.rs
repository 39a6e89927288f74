//! Issue 6, points 3 and 4 with the real binary: downloads killed with SIGKILL resume on the
//! next run (and leftover temp files of Python or of dead runs are reused or cleaned up, never
//! piled up); full disks fail early or cleanly on a small tmpfs inside a mount namespace.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{hubcache, single_path, stderr};
use hubcache_test_support::{git_blob_sha1, sha256_hex, FakeHub, Fault, FaultRule, LoggedRequest, Origin, RepoKind};

const MIB: u64 = 1 << 20;

/// Deterministic bytes that differ at every offset modulo 251 (so a shifted prefix is wrong).
fn content(n: u64) -> Bytes {
    Bytes::from((0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

/// A tiny seeded xorshift: pseudo-random kill points that are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A fake Hub whose repo `org/big` holds one `model.safetensors` of `size` bytes (returned).
fn big_repo(size: u64) -> (FakeHub, Bytes) {
    let hub = FakeHub::start();
    let data = content(size);
    hub.commit(
        RepoKind::Model,
        "org/big",
        "main",
        vec![("model.safetensors".into(), data.clone())],
    );
    (hub, data)
}

/// `hubcache download org/big model.safetensors --verbose` with `env` set, into a fresh cache:
/// checks that it placed `data` and printed only the path on stdout; returns its stderr.
fn verbose_download(hub: &FakeHub, data: &Bytes, env: (&str, &str)) -> String {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let out = run(
        home.path(),
        hub,
        &cache,
        &["download", "org/big", "model.safetensors", "--verbose"],
    )
    .env(env.0, env.1)
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let path = single_path(&out);
    assert!(fs::read(&path).unwrap() == data[..], "the file is right");
    assert_eq!(
        common::stdout(&out).trim(),
        path.to_string_lossy(),
        "stdout is the path alone"
    );
    stderr(&out)
}

/// `hubcache ARGS` against the fake hub with the cache in `cache`.
fn run(home: &Path, hub: &FakeHub, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = hubcache(home);
    cmd.args(args)
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
    cmd
}

/// Every `<etag>*.incomplete` anywhere under `root`, with its length.
fn temps_of(root: &Path, etag: &str) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // A running download may rename or remove an entry between the listing and here.
            let Ok(meta) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if name.starts_with(etag) && name.ends_with(".incomplete") {
                out.push((e.path(), meta.len()));
            }
        }
    }
    out
}

/// The content GETs of the LFS object (CDN origin), in arrival order.
fn content_gets(hub: &FakeHub) -> Vec<LoggedRequest> {
    hub.requests()
        .into_iter()
        .filter(|r| r.origin == Origin::Cdn && r.method == "GET" && r.path.starts_with("/lfs/"))
        .collect()
}

/// `bytes=<start>-` → start; no Range → 0.
fn range_start(r: &LoggedRequest) -> u64 {
    r.range
        .as_deref()
        .map(|v| {
            v.strip_prefix("bytes=")
                .and_then(|v| v.strip_suffix('-'))
                .unwrap_or_else(|| panic!("unexpected range {v}"))
                .parse()
                .unwrap()
        })
        .unwrap_or(0)
}

/// Waits until the blob's single temp file grew past `from` and then stayed put for a while
/// (the server stalls after its quota); returns its length.
fn wait_until_stalled(cache: &Path, etag: &str, from: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (u64::MAX, Instant::now());
    loop {
        assert!(
            Instant::now() < deadline,
            "the download never stalled past {from} bytes"
        );
        let temps = temps_of(cache, etag);
        let len = temps.iter().map(|t| t.1).max().unwrap_or(0);
        if len != last.0 {
            last = (len, Instant::now());
        } else if len > from && last.1.elapsed() >= Duration::from_millis(500) {
            return len;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ten_kills_then_one_run_resumes_from_the_last_kill() {
    const SIZE: u64 = 64 * MIB;
    let (hub, data) = big_repo(SIZE);
    let etag = sha256_hex(&data);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let args = ["download", "org/big", "model.safetensors"];
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut on_disk = 0u64;
    for kill in 0..10 {
        // 2–8 MiB more each time, leaving at least 4 MiB for the final run.
        let after = (2 * MIB + rng.below(6 * MIB)).min(SIZE - 4 * MIB - on_disk).max(MIB);
        hub.clear_faults();
        hub.clear_requests();
        hub.inject(FaultRule::new("/lfs/", Fault::Stall { after }).on_method("GET"));
        // The sequential stream (one connection): its temp file is a contiguous prefix.
        let mut child = run(home.path(), &hub, &cache, &args)
            .env("HUBCACHE_MAX_CONNECTIONS", "1")
            .env("HF_HUB_DOWNLOAD_TIMEOUT", "120")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stalled_at = wait_until_stalled(&cache, &etag, on_disk);
        child.kill().unwrap(); // SIGKILL: no destructor, no clean-up runs
        child.wait().unwrap();
        let temps = temps_of(&cache, &etag);
        assert_eq!(temps.len(), 1, "kill {kill}: one temp file, never a pile: {temps:?}");
        // What the dead process left (a slow machine may have written a little after the poll).
        let left = temps[0].1;
        assert!(left >= stalled_at);
        let gets = content_gets(&hub);
        assert_eq!(gets.len(), 1, "kill {kill}: {gets:?}");
        assert_eq!(
            range_start(&gets[0]),
            on_disk,
            "kill {kill}: the run resumed from what the previous one left"
        );
        assert!(left <= on_disk + after);
        eprintln!("kill {kill}: stall after {after} more bytes, killed with {left} bytes on disk");
        on_disk = left;
    }
    hub.clear_faults();
    hub.clear_requests();
    let out = run(home.path(), &hub, &cache, &args)
        .env("HUBCACHE_MAX_CONNECTIONS", "1")
        .output()
        .unwrap();
    let path = single_path(&out);
    assert!(fs::read(&path).unwrap() == data, "final file is correct");
    assert!(temps_of(&cache, &etag).is_empty(), "no temp file of the blob remains");
    let gets = content_gets(&hub);
    assert_eq!(gets.len(), 1, "{gets:?}");
    let start = range_start(&gets[0]);
    assert_eq!(start, on_disk, "the final run resumed from the last kill");
    let transferred = SIZE - start;
    assert!(
        transferred * 2 < SIZE,
        "final run transferred {transferred} of {SIZE} bytes"
    );
    eprintln!(
        "resume: final run transferred {transferred} of {SIZE} bytes; saved {start} bytes ({:.1} %)",
        start as f64 * 100.0 / SIZE as f64
    );
}

/// A fake hub with one 24 MiB LFS file and one 3 MiB regular (git-sha1) file.
fn two_files() -> (FakeHub, Bytes, String, Bytes, String) {
    let hub = FakeHub::start();
    let lfs = content(24 * MIB);
    let regular = Bytes::from(content(3 * MIB + 5).iter().map(|b| b'a' + b % 26).collect::<Vec<u8>>());
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![
            ("model.safetensors".into(), lfs.clone()),
            ("data.txt".into(), regular.clone()),
        ],
    );
    let (e1, e2) = (sha256_hex(&lfs), git_blob_sha1(&regular));
    (hub, lfs, e1, regular, e2)
}

fn put_leftover(cache: &Path, name: &str, bytes: &[u8]) {
    let blobs = cache.join("models--org--model/blobs");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(blobs.join(name), bytes).unwrap();
}

#[test]
fn python_style_leftovers_are_reused_and_wrong_ones_refetched_once() {
    let (hub, lfs, etag, regular, git_etag) = two_files();
    let home = tempfile::tempdir().unwrap();
    let weights = ["download", "org/model", "model.safetensors"];

    // The right prefix in a Python-named temp, beside a shorter legacy one and one too long.
    let cache = home.path().join("reuse");
    put_leftover(
        &cache,
        &format!("{etag}.1a2b3c4d.incomplete"),
        &lfs[..20 * MIB as usize],
    );
    put_leftover(&cache, &format!("{etag}.incomplete"), &lfs[..5 * MIB as usize]);
    put_leftover(
        &cache,
        &format!("{etag}.deadbeef.incomplete"),
        &[lfs.as_ref(), b"tail"].concat(),
    );
    hub.clear_requests();
    let out = run(home.path(), &hub, &cache, &weights).output().unwrap();
    assert!(fs::read(single_path(&out)).unwrap() == lfs);
    let gets = content_gets(&hub);
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(
        range_start(&gets[0]),
        20 * MIB,
        "the largest fitting leftover was reused"
    );
    assert!(temps_of(&cache, &etag).is_empty(), "{:?}", temps_of(&cache, &etag));

    // A git-sha1 (regular) file resumes the same way.
    put_leftover(
        &cache,
        &format!("{git_etag}.0f0f0f0f.incomplete"),
        &regular[..MIB as usize],
    );
    hub.clear_requests();
    let out = run(home.path(), &hub, &cache, &["download", "org/model", "data.txt"])
        .output()
        .unwrap();
    assert!(fs::read(single_path(&out)).unwrap() == regular);
    let ranges: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/data.txt"))
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges, [Some(format!("bytes={MIB}-"))]);
    assert!(temps_of(&cache, &git_etag).is_empty());

    // A leftover that already holds every byte needs no transfer at all.
    let cache = home.path().join("complete");
    put_leftover(&cache, &format!("{etag}.00c0ffee.incomplete"), &lfs);
    hub.clear_requests();
    let out = run(home.path(), &hub, &cache, &weights).output().unwrap();
    assert!(fs::read(single_path(&out)).unwrap() == lfs);
    assert!(content_gets(&hub).is_empty());
    assert!(temps_of(&cache, &etag).is_empty());

    // Wrong bytes in the leftover: the check fails, it is discarded, one full refetch succeeds.
    let cache = home.path().join("wrong");
    put_leftover(
        &cache,
        &format!("{etag}.0badf00d.incomplete"),
        &vec![0x55u8; 20 * MIB as usize],
    );
    hub.clear_requests();
    let out = run(home.path(), &hub, &cache, &weights).output().unwrap();
    assert!(fs::read(single_path(&out)).unwrap() == lfs);
    assert!(stderr(&out).contains("did not check out"), "{}", stderr(&out));
    let starts: Vec<u64> = content_gets(&hub).iter().map(range_start).collect();
    assert_eq!(starts, [20 * MIB, 0], "one resume, one discard + full refetch");
    assert!(temps_of(&cache, &etag).is_empty());

    // …and if the full refetch is wrong too, a clear hash error and nothing left behind.
    let cache = home.path().join("wrong-twice");
    put_leftover(
        &cache,
        &format!("{etag}.0badf00d.incomplete"),
        &vec![0x55u8; 20 * MIB as usize],
    );
    hub.clear_requests();
    hub.inject(FaultRule::new("/lfs/", Fault::WrongBytes).on_method("GET").repeat(2));
    let out = run(home.path(), &hub, &cache, &weights).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not match its hash") && err.contains("model.safetensors"),
        "{err}"
    );
    assert_eq!(content_gets(&hub).len(), 2, "refetched once, not more");
    assert!(temps_of(&cache, &etag).is_empty());
    let repo = cache.join("models--org--model");
    assert!(!repo.join("blobs").join(&etag).exists());
    assert!(fs::read_dir(repo.join("snapshots"))
        .map(|d| d.flatten().all(|s| !s.path().join("model.safetensors").exists()))
        .unwrap_or(true));
}

#[test]
fn without_flock_leftovers_are_neither_adopted_nor_removed() {
    // No real lock means no proof that the leftover's writer is dead: leave it alone.
    let (hub, lfs, etag, _, _) = two_files();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let name = format!("{etag}.1a2b3c4d.incomplete");
    put_leftover(&cache, &name, &lfs[..20 * MIB as usize]);
    hub.clear_requests();
    let out = run(
        home.path(),
        &hub,
        &cache,
        &["download", "org/model", "model.safetensors"],
    )
    .env("HUBCACHE_DISABLE_FLOCK", "1")
    .output()
    .unwrap();
    assert!(fs::read(single_path(&out)).unwrap() == lfs);
    let starts: Vec<u64> = content_gets(&hub).iter().map(range_start).collect();
    assert_eq!(starts, [0]);
    let left = temps_of(&cache, &etag);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].0.ends_with(&name) && left[0].1 == 20 * MIB);
}

// ---- full disks, on a small tmpfs inside a private mount namespace ----

/// Whether this process may create mount namespaces and mount a tmpfs (root in CI).
fn can_mount_tmpfs() -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must be able to create mount namespaces (run as root)"
        );
        eprintln!("skipping: cannot mount a tmpfs in a mount namespace here");
    }
    ok
}

/// Runs `script` with `sh -c` in a new mount namespace where `$CACHE` is an 8 MiB tmpfs and
/// `$BIN` the binary under test; the caller sets HF_HUB_CACHE etc. on `cmd`.
fn in_small_tmpfs(home: &Path, hub: &FakeHub, cache: &Path, script: &str) -> Command {
    fs::create_dir_all(cache).unwrap();
    let mut cmd = Command::new("unshare");
    common::clean_env(&mut cmd, home);
    let full = format!("mount -t tmpfs -o size=8m tmpfs \"$CACHE\" || exit 90\n{script}");
    cmd.args(["-m", "sh", "-c", &full])
        .env("CACHE", cache)
        .env("BIN", env!("CARGO_BIN_EXE_hubcache"))
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
    cmd
}

/// The first number after `marker` in `text`.
fn number_after(text: &str, marker: &str) -> u64 {
    let rest = &text[text.find(marker).unwrap_or_else(|| panic!("no {marker:?} in {text}")) + marker.len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn a_file_larger_than_the_free_space_fails_before_any_transfer() {
    if !can_mount_tmpfs() {
        return;
    }
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![("model.safetensors".into(), content(16 * MIB))],
    );
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let out: Output = in_small_tmpfs(
        home.path(),
        &hub,
        &cache,
        "\"$BIN\" download org/model model.safetensors; rc=$?; find \"$CACHE\" -name '*.incomplete'; exit $rc",
    )
    .output()
    .unwrap();
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not enough disk space") && err.contains("model.safetensors"),
        "{err}"
    );
    assert_eq!(number_after(&err, "it needs "), 16 * MIB, "{err}");
    let available = number_after(&err, "), ");
    assert!(available <= 8 * MIB && available > 7 * MIB, "{err}");
    assert!(err.contains("hint:") && err.contains("--cache-dir"), "{err}");
    assert!(out.stdout.is_empty(), "no temp file: {}", common::stdout(&out));
    assert!(content_gets(&hub).is_empty(), "failed before any content request");
}

#[test]
fn a_snapshot_whose_files_fit_one_by_one_but_not_together_fails_first() {
    if !can_mount_tmpfs() {
        return;
    }
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![
            ("model-00001-of-00002.safetensors".into(), content(5 * MIB)),
            ("model-00002-of-00002.safetensors".into(), content(5 * MIB + 1)),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let out: Output = in_small_tmpfs(home.path(), &hub, &cache, "\"$BIN\" download org/model")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not enough disk space") && err.contains("2 files to fetch"),
        "{err}"
    );
    assert_eq!(number_after(&err, "it needs "), 10 * MIB + 1, "{err}");
    assert!(content_gets(&hub).is_empty(), "failed before any content request");
}

#[test]
fn disk_full_mid_stream_removes_the_temp_and_keeps_the_cache_loadable() {
    if !can_mount_tmpfs() {
        return;
    }
    let hub = FakeHub::start();
    let weights = content(6 * MIB);
    let etag = sha256_hex(&weights);
    hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"model_type\": \"bert\"}")),
            ("model.safetensors".into(), weights),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let o = home.path().join("out");
    fs::create_dir_all(&o).unwrap();
    // The preflight passes (6 MiB of 8), then, while the server sits on the content request,
    // a filler leaves 2 MiB free: the stream runs out of disk part-way.
    hub.inject(FaultRule::new("/lfs/", Fault::Delay { millis: 800 }).on_method("GET"));
    let script = r#"
"$BIN" download org/model config.json > "$O/first.out" 2> "$O/first.err" || exit 91
(
  i=0
  while [ ! -e "$O/trigger" ] && [ $i -lt 1000 ]; do sleep 0.02; i=$((i + 1)); done
  avail=$(( $(stat -f -c '%a' "$CACHE") * $(stat -f -c '%S' "$CACHE") ))
  head -c $((avail - 2097152)) /dev/zero > "$CACHE/filler"
  touch "$O/filled"
) &
"$BIN" download org/model model.safetensors > "$O/big.out" 2> "$O/big.err"
echo $? > "$O/big.rc"
wait
HF_HUB_OFFLINE=1 "$BIN" download org/model config.json > "$O/offline.out" 2> "$O/offline.err"
echo $? > "$O/offline.rc"
cat "$(cat "$O/offline.out")" > "$O/offline.content"
find "$CACHE" > "$O/listing"
"#;
    let mut child = in_small_tmpfs(home.path(), &hub, &cache, script)
        .env("O", &o)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The content request arrives only after the preflight: fill the disk while it is delayed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while content_gets(&hub).is_empty() {
        assert!(Instant::now() < deadline, "no content request");
        std::thread::sleep(Duration::from_millis(10));
    }
    fs::write(o.join("trigger"), b"").unwrap();
    let status = child.wait().unwrap();
    let read = |name: &str| fs::read_to_string(o.join(name)).unwrap_or_default();
    assert!(
        status.success(),
        "script failed: {status}; first: {}",
        read("first.err")
    );
    assert!(o.join("filled").exists(), "the filler ran");

    let err = read("big.err");
    eprintln!("{err}");
    assert_eq!(read("big.rc").trim(), "1", "{err}");
    assert!(
        err.contains("the disk is full") && err.contains("model.safetensors"),
        "{err}"
    );
    assert_eq!(number_after(&err, "the file needs "), 6 * MIB, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("the partial file was removed"), "{err}");
    assert!(err.contains("hint:") && err.contains("--cache-dir"), "{err}");

    let listing = read("listing");
    assert!(!listing.contains(".incomplete"), "temp file left:\n{listing}");
    assert!(!listing.contains(&format!("blobs/{etag}")), "partial blob:\n{listing}");
    assert!(
        !listing
            .lines()
            .any(|l| l.contains("/snapshots/") && l.ends_with("model.safetensors")),
        "snapshot entry:\n{listing}"
    );
    assert_eq!(read("offline.rc").trim(), "0", "offline load: {}", read("offline.err"));
    assert_eq!(read("offline.content"), "{\"model_type\": \"bert\"}");
}

/// The ranges a parts record under `cache` holds for `etag` of `size` bytes (`None`: no record yet).
fn parts_record(cache: &Path, etag: &str, size: u64) -> Option<hubcache::hub::transfer::RangeSet> {
    let (path, _) = temps_of(cache, etag)
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().ends_with(".ranges.incomplete"))?;
    hubcache::hub::transfer::RangeSet::decode(&fs::read_to_string(path).ok()?, size)
}

#[test]
fn kill_9_during_a_parallel_transfer_then_the_next_run_fetches_only_the_missing_ranges() {
    const SIZE: u64 = 64 * MIB;
    let (hub, data) = big_repo(SIZE);
    let etag = sha256_hex(&data);
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let args = ["download", "org/big", "model.safetensors"];
    // A capped link, so that 4 connections start (on plain loopback one connection would take
    // the whole rest in one GET). Four parts are served (7-8 MiB each: 64 MiB cut for 4
    // connections), every later part stalls: the process is killed mid-file.
    hub.set_wan(hubcache_test_support::Wan {
        cdn_rate: Some(100_000_000),
        ..Default::default()
    });
    hub.inject(
        FaultRule::new("/lfs/", Fault::Delay { millis: 0 })
            .on_method("GET")
            .repeat(4),
    );
    hub.inject(
        FaultRule::new("/lfs/", Fault::Stall { after: 3 * MIB })
            .on_method("GET")
            .repeat(1000),
    );
    let mut child = run(home.path(), &hub, &cache, &args)
        .env("HUBCACHE_MAX_CONNECTIONS", "4")
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "120")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let held = loop {
        assert!(started.elapsed() < Duration::from_secs(60), "no record appeared");
        if let Some(held) = parts_record(&cache, &etag, SIZE).filter(|h| h.covered() >= 32 * MIB) {
            break held;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    // What the dead process left: the record may have grown after the poll.
    let held = parts_record(&cache, &etag, SIZE).unwrap_or(held);
    let temps = temps_of(&cache, &etag);
    assert_eq!(temps.len(), 2, "a parts file and its record: {temps:?}");
    assert!(
        content_gets(&hub).iter().any(|g| g.range.is_some() && g.status == 206),
        "the killed run was ranged"
    );

    hub.clear_faults();
    hub.clear_requests();
    let out = run(home.path(), &hub, &cache, &args)
        .env("HUBCACHE_MAX_CONNECTIONS", "4")
        .output()
        .unwrap();
    let path = single_path(&out);
    assert!(fs::read(&path).unwrap() == data, "final file is correct");
    assert!(temps_of(&cache, &etag).is_empty(), "no temp file of the blob remains");
    let mut asked: Vec<(u64, u64)> = Vec::new();
    for g in content_gets(&hub) {
        let (a, b) = g
            .byte_range()
            .unwrap_or_else(|| panic!("unexpected range {:?}", g.range));
        for &(s, e) in held.ranges() {
            assert!(b <= s || a >= e, "{a}-{b} asks again for held bytes {s}-{e}");
        }
        asked.push((a, b));
    }
    // A slow part may be split and its rest asked for again on another connection, so requests
    // can overlap each other: what they cover together is what must equal the holes.
    asked.sort_unstable();
    let mut covered = 0;
    let mut end = 0;
    for (a, b) in asked {
        let a = a.max(end);
        if b > a {
            covered += b - a;
            end = b;
        }
    }
    assert_eq!(
        covered,
        SIZE - held.covered(),
        "exactly the missing ranges were fetched"
    );
    eprintln!("resumed: fetched {covered} of {SIZE} bytes after kill -9");
}

/// Python 2.4.0 asks for the same file while hubcache fetches it in parts: Python waits on the
/// shared lock (the one hubcache holds), finds the placed blob, downloads none of it, and never
/// mistakes the parts file for a prefix; then Python offline opens the result.
#[test]
fn python_downloads_the_same_file_during_a_parallel_transfer() {
    let Some(python) = common::python() else { return };
    const SIZE: u64 = 48 * MIB;
    let (hub, data) = big_repo(SIZE);
    let etag = sha256_hex(&data);
    // 4 MB/s per CDN connection: four connections take about 3 s for the file.
    hub.set_wan(hubcache_test_support::Wan {
        cdn_rate: Some(4_000_000),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let args = ["download", "org/big", "model.safetensors"];
    let child = run(home.path(), &hub, &cache, &args)
        .env("HUBCACHE_MAX_CONNECTIONS", "4")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while parts_record(&cache, &etag, SIZE).is_none_or(|h| h.covered() < 4 * MIB) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no parts record appeared: {:?} {:?}",
            temps_of(&cache, &etag),
            content_gets(&hub)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = child;
    assert!(child.try_wait().unwrap().is_none(), "hubcache is still transferring");
    let code = "from huggingface_hub import hf_hub_download; print(hf_hub_download('org/big', 'model.safetensors'))";
    let py = common::python_command(&python, home.path(), &cache, &hub.url(), code)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Python asked for the file while hubcache was still transferring it.
    let is_python = |r: &LoggedRequest| !r.user_agent.as_deref().unwrap_or("").contains("hubcache");
    let mut overlapped = false;
    while child.try_wait().unwrap().is_none() {
        overlapped |= hub
            .requests()
            .iter()
            .any(|r| is_python(r) && r.path.contains("/resolve/"));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(overlapped, "Python's request arrived after hubcache had finished");
    let py = py.wait_with_output().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(py.status.success(), "{}", common::stderr(&py));
    let ours = single_path(&out);
    let theirs = PathBuf::from(common::stdout(&py).trim());
    assert_eq!(ours, theirs, "both name the same snapshot entry");
    assert!(fs::read(&ours).unwrap() == data, "the file is right");
    let gets = content_gets(&hub);
    assert!(
        gets.iter().filter(|g| g.range.is_some() && g.status == 206).count() >= 3,
        "hubcache fetched in parts: {gets:?}"
    );
    let python_gets: Vec<_> = gets.iter().filter(|g| is_python(g)).collect();
    assert!(
        python_gets.is_empty(),
        "Python waited and fetched nothing: {python_gets:?}"
    );
    assert!(temps_of(&cache, &etag).is_empty(), "{:?}", temps_of(&cache, &etag));

    let code = "import hashlib; from huggingface_hub import hf_hub_download; \
        print(hashlib.sha256(open(hf_hub_download('org/big', 'model.safetensors'), 'rb').read()).hexdigest())";
    let mut offline = common::python_command(&python, home.path(), &cache, "http://127.0.0.1:9", code);
    offline.env("HF_HUB_OFFLINE", "1");
    let out = common::run_ok(&mut offline);
    assert_eq!(
        common::stdout(&out).trim(),
        etag,
        "Python offline reads the right bytes"
    );
}

/// `--verbose` logs how a ranged transfer runs on stderr; stdout still holds only the path.
#[test]
fn verbose_logs_connections_and_parts_on_stderr_only() {
    const SIZE: u64 = 40 * MIB;
    let (hub, data) = big_repo(SIZE);
    // A capped link (the first connection is measured slow) and one failed part.
    hub.set_wan(hubcache_test_support::Wan {
        cdn_rate: Some(40_000_000),
        ..Default::default()
    });
    hub.inject(FaultRule::new("/lfs/", Fault::Delay { millis: 0 }).on_method("GET"));
    hub.inject(
        FaultRule::new(
            "/lfs/",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        )
        .on_method("GET"),
    );
    let log = verbose_download(&hub, &data, ("HF_HUB_DOWNLOAD_TIMEOUT", "30"));
    assert!(
        log.lines().any(|l| l.starts_with("model.safetensors: ")
            && l.contains(" s: first connection at")
            && l.ends_with("connection(s), up to 24")),
        "{log}"
    );
    assert!(log.contains("again in"), "the failed part is logged: {log}");
    assert_eq!(
        content_gets(&hub).iter().filter(|g| g.status == 500).count(),
        1,
        "the fault fired"
    );
}

/// A link all connections share gets no faster with more of them: the ramp steps back, and
/// each connection it no longer wants leaves mid-part (the log says which bytes it handed
/// back) instead of finishing its part; another GET fetches exactly that rest, and the file is
/// right.
#[test]
fn connections_the_ramp_no_longer_wants_leave_mid_part_and_another_fetches_their_rest() {
    const SIZE: u64 = 64 * MIB;
    let (hub, data) = big_repo(SIZE);
    // A node that serves 30 MB/s in all to up to 2 streams and collapses to 5 MB/s above:
    // the first connection is measured slow, the 8 that start then get less than it did.
    hub.set_wan(hubcache_test_support::Wan {
        link_rate: Some(30_000_000),
        link_collapse: Some((2, 5_000_000)),
        ..Default::default()
    });
    let log = verbose_download(&hub, &data, ("HUBCACHE_MAX_CONNECTIONS", "12"));
    // "<rate> on N connection(s): now M" with M < N: the ramp stepped back.
    let stepped_back = log.lines().any(|l| {
        let Some((_, rest)) = l.split_once(" on ") else {
            return false;
        };
        let Some((from, to)) = rest.split_once(" connection(s): now ") else {
            return false;
        };
        matches!((from.parse::<u32>(), to.trim().parse::<u32>()), (Ok(a), Ok(b)) if b < a)
    });
    assert!(stepped_back, "the ramp stepped back: {log}");
    let left: Vec<(u64, u64)> = log
        .lines()
        .filter_map(|l| {
            l.split_once("one left mid-part; bytes ")?
                .1
                .split_once(" go to another")
        })
        .filter_map(|(range, _)| {
            let (a, b) = range.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    assert!(!left.is_empty(), "a connection left mid-part: {log}");
    let ranges: Vec<(u64, u64)> = content_gets(&hub)
        .iter()
        .filter(|g| g.status == 206)
        .filter_map(LoggedRequest::byte_range)
        .collect();
    for &(a, b) in &left {
        // A GET asked for these bytes and more before them: it was cut short at `a`.
        assert!(
            ranges.iter().any(|&(s, e)| s < a && e >= b),
            "a GET left {a}-{b} inside its range: {ranges:?}"
        );
        // The rest is asked for from exactly where the connection stopped.
        assert!(
            ranges.iter().any(|&(s, _)| s == a),
            "bytes {a}-{b} were asked for again: {ranges:?}"
        );
    }
}
