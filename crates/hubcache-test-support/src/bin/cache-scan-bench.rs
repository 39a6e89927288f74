//! Benchmark: `hubcache cache ls --json` vs Python `scan_cache_dir()` on a synthetic cache.
//!
//! `cargo build --release -p hubcache-cli && cargo run --release -p hubcache-test-support
//! --bin cache-scan-bench -- [--repos 1000] [--files 20] [--runs 5] [--dir DIR] [--verify]
//! [--hubcache PATH] [--python PATH]`
//!
//! Builds `repos` repos × `files` snapshot files (every tenth repo a dataset, nested paths,
//! refs, real git-sha1 blob names) under DIR (default: a temp folder, removed afterwards),
//! warms the page cache, then prints the best and median wall time of each tool over `runs`
//! runs, and checks that both report the same repo count, file count and total size.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hubcache_test_support::git_blob_sha1;

struct Opts {
    repos: usize,
    files: usize,
    runs: usize,
    dir: Option<PathBuf>,
    verify: bool,
    hubcache: PathBuf,
    python: PathBuf,
}

fn parse_args() -> Result<Opts, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        repos: 1000,
        files: 20,
        runs: 5,
        dir: None,
        verify: false,
        hubcache: root.join("target/release/hubcache"),
        python: root.join(".venv/bin/python"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--repos" => o.repos = val()?.parse().map_err(|e| format!("--repos: {e}"))?,
            "--files" => o.files = val()?.parse().map_err(|e| format!("--files: {e}"))?,
            "--runs" => o.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--dir" => o.dir = Some(PathBuf::from(val()?)),
            "--verify" => o.verify = true,
            "--hubcache" => o.hubcache = PathBuf::from(val()?),
            "--python" => o.python = PathBuf::from(val()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Writes the synthetic cache; returns the number of snapshot files.
fn build(cache: &Path, repos: usize, files: usize) -> std::io::Result<usize> {
    let mut total = 0;
    for r in 0..repos {
        let kind = if r % 10 == 9 { "datasets" } else { "models" };
        let repo = cache.join(format!("{kind}--bench-org--repo-{r:04}"));
        let commit = format!("{:040x}", 0xc0ffee_u64.wrapping_mul(r as u64 + 1));
        let snapshot = repo.join("snapshots").join(&commit);
        fs::create_dir_all(repo.join("blobs"))?;
        fs::create_dir_all(repo.join("refs"))?;
        fs::write(repo.join("refs/main"), &commit)?;
        for f in 0..files {
            let content = format!(
                "{{\"repo\": {r}, \"file\": {f}, \"pad\": \"{}\"}}\n",
                "x".repeat((f * 37) % 900)
            );
            let etag = git_blob_sha1(content.as_bytes());
            fs::write(repo.join("blobs").join(&etag), &content)?;
            let (rel, depth) = if f % 4 == 3 {
                (format!("sub/dir/file-{f}.json"), 2)
            } else {
                (format!("file-{f}.json"), 0)
            };
            let pointer = snapshot.join(&rel);
            fs::create_dir_all(pointer.parent().unwrap_or(&snapshot))?;
            let target = format!("{}../../blobs/{etag}", "../".repeat(depth));
            std::os::unix::fs::symlink(target, pointer)?;
            total += 1;
        }
    }
    Ok(total)
}

fn timed(cmd: &mut Command) -> Result<(Duration, String), String> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn summary(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

const PY: &str = "import json, sys, time\n\
t0 = time.perf_counter()\n\
from huggingface_hub import scan_cache_dir\n\
t1 = time.perf_counter()\n\
info = scan_cache_dir(sys.argv[1])\n\
t2 = time.perf_counter()\n\
print(json.dumps({'import': t1 - t0, 'scan': t2 - t1, 'repos': len(info.repos), \
'files': sum(r.nb_files for r in info.repos), 'size': info.size_on_disk, 'warnings': len(info.warnings)}))";

fn run() -> Result<(), String> {
    let o = parse_args()?;
    if !o.hubcache.is_file() {
        return Err(format!(
            "no hubcache binary at {} (cargo build --release -p hubcache-cli)",
            o.hubcache.display()
        ));
    }
    let temp;
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("cache-scan-bench-{}", std::process::id()));
            temp
        }
    };
    let cache = dir.join("hub");
    let _ = fs::remove_dir_all(&cache);
    let start = Instant::now();
    let files = build(&cache, o.repos, o.files).map_err(|e| format!("building the cache: {e}"))?;
    println!(
        "synthetic cache: {} repos, {files} snapshot files, built in {:.1?} at {}",
        o.repos,
        start.elapsed(),
        cache.display()
    );
    let hubcache_ls = || {
        let mut c = Command::new(&o.hubcache);
        c.args(["cache", "ls", "--json", "--cache-dir"]).arg(&cache);
        c
    };
    let python = || {
        let mut c = Command::new(&o.python);
        c.args(["-c", PY]).arg(&cache).env("HF_HUB_OFFLINE", "1");
        c
    };
    // Warm-up (page cache, Python bytecode), and the cross-check.
    let (_, rs_json) = timed(&mut hubcache_ls())?;
    let rs: serde_json::Value = serde_json::from_str(&rs_json).map_err(|e| e.to_string())?;
    let rs_files: u64 = rs["repos"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["nb_files"].as_u64()).sum())
        .unwrap_or(0);
    println!(
        "hubcache: {} repos, {rs_files} blobs, {} bytes, {} warnings, {} bytes of JSON",
        rs["repos"].as_array().map_or(0, Vec::len),
        rs["size_on_disk"],
        rs["warnings"].as_array().map_or(0, Vec::len),
        rs_json.len()
    );
    let have_python = o.python.is_file();
    if have_python {
        let (_, py) = timed(&mut python())?;
        println!("python:   {}", py.trim());
    } else {
        println!("python:   not found at {} (skipped)", o.python.display());
    }
    let mut rs_times = Vec::new();
    let mut py_times = Vec::new();
    let mut py_scan = Vec::new();
    for _ in 0..o.runs.max(1) {
        rs_times.push(timed(&mut hubcache_ls())?.0);
        if have_python {
            let (t, out) = timed(&mut python())?;
            py_times.push(t);
            let v: serde_json::Value = serde_json::from_str(out.trim()).map_err(|e| e.to_string())?;
            py_scan.push(Duration::from_secs_f64(v["scan"].as_f64().unwrap_or(0.0)));
        }
    }
    let (best, median) = summary(&mut rs_times);
    println!("\nwall time over {} runs (best / median):", o.runs.max(1));
    println!("  hubcache cache ls --json          {best:>10.1?} / {median:>10.1?}   (whole process)");
    if have_python {
        let (pb, pm) = summary(&mut py_times);
        let (sb, sm) = summary(&mut py_scan);
        println!("  python scan_cache_dir() process   {pb:>10.1?} / {pm:>10.1?}   (interpreter + import + scan)");
        println!("  python scan_cache_dir() call      {sb:>10.1?} / {sm:>10.1?}   (the call alone)");
        println!(
            "  speed-up: {:.1}x vs the call alone, {:.1}x process to process (medians)",
            sm.as_secs_f64() / median.as_secs_f64(),
            pm.as_secs_f64() / median.as_secs_f64()
        );
    }
    if o.verify {
        let mut c = Command::new(&o.hubcache);
        c.args(["cache", "verify", "--cache-dir"]).arg(&cache);
        let (t, out) = timed(&mut c)?;
        println!("  hubcache cache verify             {t:>10.1?}   ({})", out.trim());
    }
    if o.dir.is_none() {
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
