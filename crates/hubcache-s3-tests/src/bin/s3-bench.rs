//! `s3-bench`: the mirror over a cache folder vs over s3s-fs vs a raw object_store GET, on one
//! machine. Prints figures; asserts nothing.
//!
//! `cargo run --release -p hubcache-s3-tests --bin s3-bench [-- --big-mib 1024 --files 1000]`
//!
//! The replicas run as child processes (this binary, `replica` mode) so their peak RSS
//! (`VmHWM`) is theirs alone; s3s-fs runs in this process on 127.0.0.1.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hubcache::digest::{git_blob_sha1, Hasher};
use hubcache::{Repo, RepoId, RepoType};
use hubcache_mirror::store::s3::{fill, S3Config, S3Store};
use hubcache_mirror::store::FsStore;
use hubcache_mirror::{Mirror, MirrorConfig};
use hubcache_s3_tests::S3Server;
use object_store::ObjectStore;

const REPO: &str = "bench/fleet";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("replica") {
        return replica(&args[2..]);
    }
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let big_mib = arg("--big-mib", 1024);
    let n_files = arg("--files", 1000) as usize;
    let work = tempfile::tempdir()?;
    let cache = work.path().join("cache");
    eprintln!(
        "writing a {big_mib} MiB file and {n_files} small files into {}",
        cache.display()
    );
    let (big_etag, small) = seed(&cache, big_mib, n_files)?;

    let s3 = S3Server::start();
    let config = s3.config("bench");
    let rt = tokio::runtime::Runtime::new()?;
    let t = Instant::now();
    rt.block_on(async {
        let store = S3Store::open(&config).await?;
        let fs = Arc::new(FsStore::new(&cache));
        let repo = Repo::new(RepoId::new(REPO)?, RepoType::Model);
        fill::push_repo(&store, &fs, &repo).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    eprintln!("pushed to s3s-fs in {:.1}s", t.elapsed().as_secs_f64());

    let exe = std::env::current_exe()?;
    let mut folder = spawn(&exe, &["folder", cache.to_str().unwrap_or_default()], &[])?;
    let mut over_s3 = spawn(&exe, &["s3", &config.url()], &s3.env())?;
    let http = reqwest::Client::new();
    let big_bytes = big_mib << 20;

    println!("# s3-bench: {big_mib} MiB file, {n_files}-file snapshot, 2 cores shared");
    let mut rows = Vec::new();
    for (name, r) in [("(a) folder mirror", &folder), ("(b) mirror over s3s-fs", &over_s3)] {
        let big = rt.block_on(get_all(&http, &format!("{}/{REPO}/resolve/main/big.bin", r.url)))?;
        let snap = rt.block_on(snapshot(&http, &r.url, &small, 8))?;
        let seq = rt.block_on(snapshot(&http, &r.url, &small[..small.len().min(300)], 1))?;
        rows.push((name, big, snap, seq));
    }
    // (c) the raw ranged GET of the same object with object_store.
    let raw = rt.block_on(async {
        let store = raw_store(&config)?;
        let key = object_store::path::Path::from(format!("bench/blobs/{big_etag}"));
        let t = Instant::now();
        let opts = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(0..big_bytes)),
            ..Default::default()
        };
        let mut s = store.get_opts(&key, opts).await?.into_stream();
        let mut n = 0u64;
        while let Some(c) = s.next().await {
            n += c?.len() as u64;
        }
        Ok::<_, Box<dyn std::error::Error>>((n, t.elapsed()))
    })?;
    let mbps = |bytes: u64, d: Duration| bytes as f64 / (1 << 20) as f64 / d.as_secs_f64();
    for (name, big, snap, seq) in &rows {
        println!(
            "{name:<26} big file {:>7.1} MiB/s | {n_files}-file snapshot {:>6.2}s ({:>6.0} req/s, 8 at once) | small files one at a time {:>6.0} req/s",
            mbps(big.0, big.1),
            snap.as_secs_f64(),
            small.len() as f64 / snap.as_secs_f64(),
            small.len().min(300) as f64 / seq.as_secs_f64(),
        );
    }
    println!(
        "{:<26} big file {:>7.1} MiB/s",
        "(c) raw object_store GET",
        mbps(raw.0, raw.1)
    );
    let b = mbps(rows[1].1 .0, rows[1].1 .1);
    let c = mbps(raw.0, raw.1);
    println!("(b)/(c) on the big file: {:.0} %", 100.0 * b / c);
    println!(
        "peak RSS: folder replica {} MiB, S3 replica {} MiB",
        peak_rss_mib(&folder.child),
        peak_rss_mib(&over_s3.child)
    );
    let _ = folder.child.kill();
    let _ = over_s3.child.kill();
    let _ = folder.child.wait();
    let _ = over_s3.child.wait();
    Ok(())
}

fn raw_store(c: &S3Config) -> Res<Arc<dyn ObjectStore>> {
    let mut b = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&c.bucket)
        .with_region(&c.region)
        .with_allow_http(true)
        .with_client_options(
            object_store::ClientOptions::new()
                .with_allow_http(true)
                .with_timeout_disabled(),
        );
    if let Some(e) = &c.endpoint {
        b = b.with_endpoint(e);
    }
    let b = b
        .with_access_key_id(hubcache_s3_tests::ACCESS_KEY)
        .with_secret_access_key(hubcache_s3_tests::SECRET_KEY);
    Ok(Arc::new(b.build()?))
}

/// A Python-layout cache: `big.bin` (LFS, sha256) and `small/NNNN.txt` files (git sha1).
fn seed(cache: &Path, big_mib: u64, n: usize) -> Res<(String, Vec<String>)> {
    use std::io::Write;
    let repo = cache.join("models--bench--fleet");
    let blobs = repo.join("blobs");
    std::fs::create_dir_all(&blobs)?;
    std::fs::create_dir_all(repo.join("refs"))?;
    std::fs::write(repo.join("refs/main"), COMMIT)?;
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(snap.join("small"))?;
    let tmp = blobs.join("big.tmp");
    let mut f = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(&tmp)?);
    let mut h = Hasher::sha256();
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..big_mib {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = ((j as u64).wrapping_mul(31) ^ i) as u8;
        }
        h.update(&chunk);
        f.write_all(&chunk)?;
    }
    f.flush()?;
    drop(f);
    let etag = h.finish().sha256.unwrap_or_default();
    std::fs::rename(&tmp, blobs.join(&etag))?;
    std::os::unix::fs::symlink(format!("../../blobs/{etag}"), snap.join("big.bin"))?;
    let mut small = Vec::new();
    for i in 0..n {
        let body = format!("small file {i}\n").repeat(1 + i % 64);
        let id = git_blob_sha1(body.as_bytes());
        std::fs::write(blobs.join(&id), &body)?;
        let name = format!("small/{i:04}.txt");
        let link = snap.join(&name);
        if !link.exists() {
            std::os::unix::fs::symlink(format!("../../../blobs/{id}"), &link)?;
        }
        small.push(name);
    }
    Ok((etag, small))
}

struct Spawned {
    child: Child,
    url: String,
}

fn spawn(exe: &Path, args: &[&str], env: &[(&'static str, String)]) -> Res<Spawned> {
    let mut cmd = Command::new(exe);
    cmd.arg("replica").args(args).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().ok_or("replica exited")??;
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Spawned { child, url })
}

/// `replica folder CACHE` | `replica s3 URL`: a mirror on 127.0.0.1:0 until killed.
fn replica(args: &[String]) -> Res<()> {
    let mut config = MirrorConfig::new(PathBuf::from(args.get(1).cloned().unwrap_or_default()));
    if args.first().map(String::as_str) == Some("s3") {
        let url = args.get(1).cloned().unwrap_or_default();
        config.s3 = Some(S3Config::from_url(&url, |n| std::env::var(n).ok())?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let mirror = Mirror::open(config).await?;
        let (listener, addr) = hubcache_mirror::bind("127.0.0.1:0").await?;
        eprintln!("listening on http://{addr}");
        mirror.serve(listener, std::future::pending()).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

async fn get_all(http: &reqwest::Client, url: &str) -> Res<(u64, Duration)> {
    let t = Instant::now();
    let resp = http.get(url).send().await?.error_for_status()?;
    let mut s = resp.bytes_stream();
    let mut n = 0u64;
    while let Some(c) = s.next().await {
        n += c?.len() as u64;
    }
    Ok((n, t.elapsed()))
}

/// GETs every file, `parallel` at a time, as a snapshot download does.
async fn snapshot(http: &reqwest::Client, base: &str, files: &[String], parallel: usize) -> Res<Duration> {
    let t = Instant::now();
    let results: Vec<Res<()>> = futures_util::stream::iter(files.iter().map(|f| {
        let url = format!("{base}/{REPO}/resolve/main/{f}");
        let http = http.clone();
        async move {
            let body = http.get(&url).send().await?.error_for_status()?.bytes().await?;
            if body.is_empty() {
                return Err("empty body".into());
            }
            Ok(())
        }
    }))
    .buffer_unordered(parallel)
    .collect()
    .await;
    for r in results {
        r?;
    }
    Ok(t.elapsed())
}

fn peak_rss_mib(child: &Child) -> String {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| (kb / 1024).to_string())
        .unwrap_or_else(|| "?".into())
}
