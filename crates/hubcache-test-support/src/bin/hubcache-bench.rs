//! Benchmark: hubcache vs Python huggingface_hub against the in-process fake Hub on loopback.
//!
//! `cargo run --release -p hubcache-test-support --bin hubcache-bench -- [--size-mib 1024]
//! [--files 1000] [--file-kib 4] [--hubcache PATH] [--python PATH] [--no-python]
//! [--hf-hub-peer PATH] [--mirror] [--bundle]`
//!
//! The large file also goes to `hf-hub-peer` (the `hf-hub` 1.0 crate, `HFClientSync`; it verifies
//! nothing), default `target/release/hf-hub-peer`, skipped when absent; build it with
//! `cargo build --release --manifest-path crates/hubcache-test-support/peers/hf-hub-peer/Cargo.toml --target-dir target`.
//!
//! With `--bundle` it times `hubcache export` and `hubcache import` of one large model (hashing
//! included).
//!
//! With `--mirror` the server is `hubcache serve` over a cache filled by `cache add-folder`
//! (a separate process, as in production) instead of the in-process fake Hub.
//!
//! With `--wan` the fake Hub gets CDN-shaped networks (a rate cap per CDN connection through
//! `SO_MAX_PACING_RATE`, a seeded bimodal draw of it, 20 ms per request) and hubcache is set
//! side by side with Python, `aria2c -x16 -s16 -k1M`, curl on the resolved CDN URL and
//! `hf-hub-peer` (aria2c, curl and hf-hub verify nothing); then a many-small-files snapshot at 20 ms per request.
//! `--only cap,bimodal,loopback,snapshot` runs some of these scenarios; `--repeat N` runs each
//! large-file scenario N rounds, each round started by another client, and prints medians.
//!
//! Prints throughput of one large LFS file, peak RSS of each client process (GNU time),
//! time of a many-small-files snapshot, and the requests warm calls make.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use hubcache_test_support::{sha256_hex, Bimodal, FakeHub, RepoKind, Wan};

struct Opts {
    size_mib: usize,
    files: usize,
    file_kib: usize,
    hubcache: PathBuf,
    python: Option<PathBuf>,
    /// `--hf-hub-peer PATH`: the hf-hub 1.0 peer binary (default: `target/release/hf-hub-peer` if built).
    hf_hub_peer: Option<PathBuf>,
    mirror: bool,
    bundle: bool,
    wan: bool,
    /// `--only cap,bimodal,loopback,snapshot`: the `--wan` scenarios to run (default: all).
    only: Option<Vec<String>>,
    /// `--repeat N`: rounds of each `--wan` large-file scenario (median printed; default 1).
    repeat: usize,
}

fn parse_args() -> Result<Opts, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        size_mib: 1024,
        files: 1000,
        file_kib: 4,
        hubcache: root.join("target/release/hubcache"),
        python: Some(root.join(".venv/bin/python")).filter(|p| p.is_file()),
        hf_hub_peer: Some(root.join("target/release/hf-hub-peer")).filter(|p| p.is_file()),
        mirror: false,
        bundle: false,
        wan: false,
        only: None,
        repeat: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--size-mib" => o.size_mib = val()?.parse().map_err(|e| format!("--size-mib: {e}"))?,
            "--files" => o.files = val()?.parse().map_err(|e| format!("--files: {e}"))?,
            "--file-kib" => o.file_kib = val()?.parse().map_err(|e| format!("--file-kib: {e}"))?,
            "--hubcache" => o.hubcache = PathBuf::from(val()?),
            "--python" => o.python = Some(PathBuf::from(val()?)),
            "--no-python" => o.python = None,
            "--hf-hub-peer" => o.hf_hub_peer = Some(PathBuf::from(val()?)),
            "--mirror" => o.mirror = true,
            "--bundle" => o.bundle = true,
            "--wan" => o.wan = true,
            "--only" => o.only = Some(val()?.split(',').map(str::to_string).collect()),
            "--repeat" => o.repeat = val()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Deterministic pseudo-random bytes (xorshift64*), fast enough for a GiB.
fn pseudo_random(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

struct Run {
    secs: f64,
    peak_rss_kib: Option<u64>,
}

/// Runs a command under GNU time, returning wall time and peak RSS.
fn run(mut cmd: Command) -> Run {
    let rss_file = std::env::temp_dir().join(format!("hubcache-bench-rss-{}", std::process::id()));
    let use_time = Path::new("/usr/bin/time").is_file();
    let mut full = if use_time {
        let mut t = Command::new("/usr/bin/time");
        t.arg("-o").arg(&rss_file).arg("-f").arg("%M").arg(cmd.get_program());
        t.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => t.env(k, v),
                None => t.env_remove(k),
            };
        }
        t
    } else {
        std::mem::replace(&mut cmd, Command::new("true"))
    };
    full.stdout(std::process::Stdio::null());
    let start = Instant::now();
    let status = full.status();
    let secs = start.elapsed().as_secs_f64();
    match status {
        Ok(s) if s.success() => {}
        other => eprintln!("warning: client failed: {other:?}"),
    }
    let peak_rss_kib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()));
    let _ = std::fs::remove_file(&rss_file);
    Run { secs, peak_rss_kib }
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hubcache-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn base_env(cmd: &mut Command, hub: &FakeHub, cache: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("HF_") || k.starts_with("HUGGING") || k.starts_with("TRANSFORMERS") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
}

fn python_cmd(python: &Path, hub: &FakeHub, cache: &Path, code: &str) -> Command {
    let mut c = Command::new(python);
    c.arg("-c").arg(code);
    base_env(&mut c, hub, cache);
    c
}

fn hubcache_cmd(o: &Opts, hub: &FakeHub, cache: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(&o.hubcache);
    c.args(args);
    base_env(&mut c, hub, cache);
    c
}

/// How to build the hf-hub 1.0 peer into the default `--hf-hub-peer` path (run from the repo root).
const HF_HUB_PEER_BUILD: &str = "cargo build --release --manifest-path crates/hubcache-test-support/peers/hf-hub-peer/Cargo.toml --target-dir target";

/// Says that the hf-hub 1.0 peer is skipped, and how to build it.
fn print_peer_skipped() {
    println!("hf-hub 1.0 (crate): skipped, not built (`{HF_HUB_PEER_BUILD}`, or --hf-hub-peer PATH)");
}

/// The hf-hub 1.0 peer downloading `repo`'s `file` into `cache`, or `None` (and a line saying how
/// to build it) when there is no peer binary.
fn hf_hub_peer_cmd(o: &Opts, hub: &FakeHub, cache: &Path, repo: &str, file: &str) -> Option<Command> {
    let Some(peer) = &o.hf_hub_peer else {
        print_peer_skipped();
        return None;
    };
    let mut c = Command::new(peer);
    c.args([repo, file]);
    base_env(&mut c, hub, cache);
    Some(c)
}

fn rss(r: &Run) -> String {
    r.peak_rss_kib
        .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

fn count_requests(hub: &FakeHub) -> String {
    let reqs = hub.requests();
    let heads = reqs.iter().filter(|r| r.method == "HEAD").count();
    let content = reqs.iter().filter(|r| r.is_content_get()).count();
    format!("{} requests ({heads} HEAD, {content} content GET)", reqs.len())
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if !o.hubcache.is_file() {
        eprintln!(
            "error: {} not found; run `cargo build --release` first",
            o.hubcache.display()
        );
        std::process::exit(2);
    }
    if o.mirror {
        mirror_bench(&o);
        return;
    }
    if o.bundle {
        bundle_bench(&o);
        return;
    }
    if o.wan {
        wan_bench(&o);
        return;
    }
    let hub = FakeHub::start();
    let size = o.size_mib << 20;
    eprintln!(
        "generating {} MiB and {} × {} KiB files…",
        o.size_mib, o.files, o.file_kib
    );
    hub.commit(
        RepoKind::Model,
        "bench/big",
        "main",
        vec![("model.safetensors".into(), pseudo_random(size, 7))],
    );
    let many: Vec<(String, Bytes)> = (0..o.files)
        .map(|i| {
            (
                format!("files/f{i:05}.txt"),
                pseudo_random(o.file_kib << 10, 2 * i as u64 + 11),
            )
        })
        .collect();
    let many_commit = hub.commit(RepoKind::Model, "bench/many", "main", many);
    let mb = size as f64 / 1e6;

    println!("# hubcache benchmark (fake Hub on 127.0.0.1, whole client processes)");
    println!(
        "## one {} MiB LFS file (HEAD + CDN GET, sha256 verified by hubcache)",
        o.size_mib
    );
    let cache = fresh_dir("big-rs");
    let r = run(hubcache_cmd(
        &o,
        &hub,
        &cache,
        &["download", "bench/big", "model.safetensors"],
    ));
    println!(
        "hubcache:          {:7.2} s  {:8.1} MB/s  peak RSS {}",
        r.secs,
        mb / r.secs,
        rss(&r)
    );
    let _ = std::fs::remove_dir_all(&cache);
    if let Some(py) = &o.python {
        let cache = fresh_dir("big-py");
        let r = run(python_cmd(
            py,
            &hub,
            &cache,
            "from huggingface_hub import hf_hub_download; hf_hub_download('bench/big', 'model.safetensors')",
        ));
        println!(
            "huggingface_hub:   {:7.2} s  {:8.1} MB/s  peak RSS {}",
            r.secs,
            mb / r.secs,
            rss(&r)
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
    let cache = fresh_dir("big-hf-hub");
    if let Some(c) = hf_hub_peer_cmd(&o, &hub, &cache, "bench/big", "model.safetensors") {
        let r = run(c);
        println!(
            "hf-hub 1.0 (crate): {:6.2} s  {:8.1} MB/s  peak RSS {}  (no verification)",
            r.secs,
            mb / r.secs,
            rss(&r)
        );
    }
    let _ = std::fs::remove_dir_all(&cache);

    println!("## snapshot of {} × {} KiB files", o.files, o.file_kib);
    let cache = fresh_dir("many-rs");
    hub.clear_requests();
    let r = run(hubcache_cmd(&o, &hub, &cache, &["download", "bench/many"]));
    println!(
        "hubcache (main):   {:7.2} s  peak RSS {}  {}",
        r.secs,
        rss(&r),
        count_requests(&hub)
    );
    let _ = std::fs::remove_dir_all(&cache);
    let cache = fresh_dir("many-rs-pinned");
    hub.clear_requests();
    let r = run(hubcache_cmd(
        &o,
        &hub,
        &cache,
        &["download", "bench/many", "--revision", &many_commit],
    ));
    println!(
        "hubcache (commit): {:7.2} s  peak RSS {}  {}",
        r.secs,
        rss(&r),
        count_requests(&hub)
    );
    hub.clear_requests();
    let r = run(hubcache_cmd(
        &o,
        &hub,
        &cache,
        &["download", "bench/many", "--revision", &many_commit],
    ));
    println!("  warm, commit-pinned:  {:5.3} s  {}", r.secs, count_requests(&hub));
    hub.clear_requests();
    let r = run(hubcache_cmd(&o, &hub, &cache, &["download", "bench/many"]));
    println!("  warm, online main:    {:5.3} s  {}", r.secs, count_requests(&hub));
    hub.clear_requests();
    let mut offline = hubcache_cmd(&o, &hub, &cache, &["download", "bench/many"]);
    offline.env("HF_HUB_OFFLINE", "1");
    let r = run(offline);
    println!("  warm, HF_HUB_OFFLINE: {:5.3} s  {}", r.secs, count_requests(&hub));
    let _ = std::fs::remove_dir_all(&cache);
    if let Some(py) = &o.python {
        let cache = fresh_dir("many-py");
        hub.clear_requests();
        let r = run(python_cmd(
            py,
            &hub,
            &cache,
            "from huggingface_hub import snapshot_download; snapshot_download('bench/many')",
        ));
        println!(
            "huggingface_hub:   {:7.2} s  peak RSS {}  {}",
            r.secs,
            rss(&r),
            count_requests(&hub)
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
}

/// Peak RSS of a running process (VmHWM), in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn write_folder(dir: &Path, files: &[(String, Bytes)]) {
    for (name, content) in files {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(&p, content) {
            eprintln!("error: cannot write {}: {e}", p.display());
            std::process::exit(1);
        }
    }
}

fn client_env(cmd: &mut Command, url: &str, cache: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("HF_") || k.starts_with("HUGGING") || k.starts_with("TRANSFORMERS") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HF_ENDPOINT", url)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
}

/// `hubcache serve` over an add-folder cache, with hubcache and Python as clients.
fn mirror_bench(o: &Opts) {
    use std::io::BufRead;
    let work = fresh_dir("mirror");
    let size = o.size_mib << 20;
    eprintln!(
        "generating {} MiB and {} × {} KiB files under {}…",
        o.size_mib,
        o.files,
        o.file_kib,
        work.display()
    );
    write_folder(
        &work.join("src-big"),
        &[("model.safetensors".into(), pseudo_random(size, 7))],
    );
    let many: Vec<(String, Bytes)> = (0..o.files)
        .map(|i| {
            (
                format!("files/f{i:05}.txt"),
                pseudo_random(o.file_kib << 10, 2 * i as u64 + 11),
            )
        })
        .collect();
    write_folder(&work.join("src-many"), &many);
    let mirror_cache = work.join("mirror-cache");
    for (dir, repo) in [("src-big", "bench/big"), ("src-many", "bench/many")] {
        let st = Command::new(&o.hubcache)
            .args(["cache", "add-folder"])
            .arg(work.join(dir))
            .args(["--repo", repo, "--cache-dir"])
            .arg(&mirror_cache)
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(st, Ok(s) if s.success()) {
            eprintln!("error: add-folder failed for {repo}");
            std::process::exit(1);
        }
        let _ = std::fs::remove_dir_all(work.join(dir));
    }
    let mut server = match Command::new(&o.hubcache)
        .args(["serve", "--addr", "127.0.0.1:0", "--cache-dir"])
        .arg(&mirror_cache)
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start hubcache serve: {e}");
            std::process::exit(1);
        }
    };
    let mut url = String::new();
    if let Some(err) = server.stderr.take() {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(u) = line.strip_prefix("listening on ") {
                url = u.to_string();
                break;
            }
        }
    }
    if url.is_empty() {
        eprintln!("error: hubcache serve did not start");
        let _ = server.kill();
        std::process::exit(1);
    }
    let mb = size as f64 / 1e6;
    println!(
        "# hubcache serve benchmark (mirror on 127.0.0.1, separate processes, caches under {})",
        work.display()
    );
    println!("## one {} MiB LFS file", o.size_mib);
    let curl = run({
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-o",
            "/dev/null",
            &format!("{url}/bench/big/resolve/main/model.safetensors"),
        ]);
        c
    });
    println!(
        "curl > /dev/null:  {:7.2} s  {:8.1} MB/s  (mirror throughput)",
        curl.secs,
        mb / curl.secs
    );
    let cache = work.join("c-big-rs");
    let mut c = Command::new(&o.hubcache);
    c.args(["download", "bench/big", "model.safetensors"]);
    client_env(&mut c, &url, &cache);
    let rs = run(c);
    println!(
        "hubcache:          {:7.2} s  {:8.1} MB/s  peak RSS {}",
        rs.secs,
        mb / rs.secs,
        rss(&rs)
    );
    let _ = std::fs::remove_dir_all(&cache);
    let mut py_big = None;
    if let Some(py) = &o.python {
        let cache = work.join("c-big-py");
        let mut c = Command::new(py);
        c.args([
            "-c",
            "from huggingface_hub import hf_hub_download; hf_hub_download('bench/big', 'model.safetensors')",
        ]);
        client_env(&mut c, &url, &cache);
        let r = run(c);
        println!(
            "huggingface_hub:   {:7.2} s  {:8.1} MB/s  peak RSS {}",
            r.secs,
            mb / r.secs,
            rss(&r)
        );
        py_big = Some(r.secs);
        let _ = std::fs::remove_dir_all(&cache);
    }
    if let Some(p) = py_big {
        println!(
            "ratio:             hubcache is {:.2}x the speed of huggingface_hub",
            p / rs.secs
        );
    }
    println!("## snapshot of {} × {} KiB files", o.files, o.file_kib);
    let cache = work.join("c-many-rs");
    let mut c = Command::new(&o.hubcache);
    c.args(["download", "bench/many"]);
    client_env(&mut c, &url, &cache);
    let rs = run(c);
    println!("hubcache:          {:7.2} s  peak RSS {}", rs.secs, rss(&rs));
    let _ = std::fs::remove_dir_all(&cache);
    if let Some(py) = &o.python {
        let cache = work.join("c-many-py");
        let mut c = Command::new(py);
        c.args([
            "-c",
            "from huggingface_hub import snapshot_download; snapshot_download('bench/many')",
        ]);
        client_env(&mut c, &url, &cache);
        let r = run(c);
        println!("huggingface_hub:   {:7.2} s  peak RSS {}", r.secs, rss(&r));
        println!(
            "ratio:             hubcache is {:.2}x the speed of huggingface_hub",
            r.secs / rs.secs
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
    let server_rss = vm_hwm_kib(server.id());
    println!(
        "mirror peak RSS:   {}",
        server_rss
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into())
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&work);
}

/// `hubcache export` then `hubcache import` of a model of `--size-mib`, hashing included.
fn bundle_bench(o: &Opts) {
    let work = fresh_dir("bundle");
    let size = o.size_mib << 20;
    write_folder(
        &work.join("src"),
        &[
            ("model.safetensors".into(), pseudo_random(size, 5)),
            ("config.json".into(), Bytes::from_static(b"{}")),
        ],
    );
    let hc = |args: &[&str]| {
        let mut c = Command::new(&o.hubcache);
        c.args(args);
        c
    };
    let a = work.join("cache-a");
    let b = work.join("cache-b");
    let bundle = work.join("model.tar");
    let (a_s, b_s, bundle_s, src_s) = (
        a.to_string_lossy().into_owned(),
        b.to_string_lossy().into_owned(),
        bundle.to_string_lossy().into_owned(),
        work.join("src").to_string_lossy().into_owned(),
    );
    let st = hc(&[
        "cache",
        "add-folder",
        &src_s,
        "--repo",
        "bench/model",
        "--cache-dir",
        &a_s,
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .status();
    if !matches!(st, Ok(s) if s.success()) {
        eprintln!("error: add-folder failed");
        std::process::exit(1);
    }
    let _ = std::fs::remove_dir_all(work.join("src"));
    let mb = size as f64 / 1e6;
    println!(
        "# bundle benchmark ({} MiB model, caches under {})",
        o.size_mib,
        work.display()
    );
    let e = run(hc(&["export", "bench/model", "-o", &bundle_s, "--cache-dir", &a_s]));
    println!(
        "export: {:6.2} s  {:8.1} MB/s  peak RSS {}",
        e.secs,
        mb / e.secs,
        rss(&e)
    );
    let i = run(hc(&["import", &bundle_s, "--cache-dir", &b_s]));
    println!(
        "import: {:6.2} s  {:8.1} MB/s  peak RSS {}",
        i.secs,
        mb / i.secs,
        rss(&i)
    );
    let bundle_len = std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0);
    println!("bundle: {bundle_len} bytes for {} bytes of blobs", size + 2);
    let _ = std::fs::remove_dir_all(&work);
}

/// One large file over CDN-shaped networks, then a snapshot of small files at 20 ms per request.
/// A client of the `--wan` large-file scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Hubcache,
    Python,
    Aria2,
    Curl,
    HfHub,
}

impl Client {
    /// The name printed for it.
    fn name(self) -> &'static str {
        match self {
            Client::Hubcache => "hubcache",
            Client::Python => "huggingface_hub",
            Client::Aria2 => "aria2c -x16 -s16 -k1M",
            Client::Curl => "curl (one stream)",
            Client::HfHub => "hf-hub 1.0 (crate)",
        }
    }

    /// What is printed after its figures.
    fn note(self) -> &'static str {
        match self {
            Client::Hubcache | Client::Python => "",
            _ => "  (no verification)",
        }
    }
}

/// Prints one client's runs of a `--mb` MB file: the median time and rate, the range of rates
/// over the rounds and the highest peak RSS.
fn print_runs(who: &str, runs: &[Run], mb: f64, extra: &str) {
    let mut secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    secs.sort_by(f64::total_cmp);
    let Some(&median) = secs.get(secs.len() / 2) else {
        return;
    };
    let range = match (secs.first(), secs.last()) {
        (Some(&fast), Some(&slow)) if secs.len() > 1 => format!("  [{:.0}–{:.0} MB/s]", mb / slow, mb / fast),
        _ => String::new(),
    };
    let peak = Run {
        secs: median,
        peak_rss_kib: runs.iter().filter_map(|r| r.peak_rss_kib).max(),
    };
    println!(
        "{who:<22} {median:7.2} s  {:8.1} MB/s  peak RSS {}{range}{extra}",
        mb / median,
        rss(&peak)
    );
}

fn wan_bench(o: &Opts) {
    let hub = FakeHub::start();
    let size = o.size_mib << 20;
    eprintln!(
        "generating {} MiB and {} × {} KiB files…",
        o.size_mib, o.files, o.file_kib
    );
    let big = pseudo_random(size, 7);
    let cdn = format!("{}/lfs/{}", hub.cdn_url(), sha256_hex(&big));
    // Kept (a reference, no copy) to time the hash alone after the loopback runs.
    let big_bytes = big.clone();
    hub.commit(
        RepoKind::Model,
        "bench/big",
        "main",
        vec![("model.safetensors".into(), big)],
    );
    let many: Vec<(String, Bytes)> = (0..o.files)
        .map(|i| {
            (
                format!("files/f{i:05}.txt"),
                pseudo_random(o.file_kib << 10, 2 * i as u64 + 11),
            )
        })
        .collect();
    hub.commit(RepoKind::Model, "bench/many", "main", many);
    let mb = size as f64 / 1e6;
    let aria2 = Path::new("/usr/bin/aria2c").is_file();
    let latency = std::time::Duration::from_millis(20);
    let wanted = |key: &str| o.only.as_ref().is_none_or(|only| only.iter().any(|k| k == key));
    let scenarios = [
        (
            "cap",
            "40 MB/s per connection + 20 ms per request",
            Wan {
                cdn_rate: Some(40_000_000),
                latency,
                ..Wan::default()
            },
        ),
        (
            "bimodal",
            "bimodal edges (8.7 MB/s p=0.7, else 68 MB/s, seed 1) + 20 ms per request",
            Wan {
                bimodal: Some(Bimodal::cloudfront(1)),
                latency,
                ..Wan::default()
            },
        ),
        ("loopback", "loopback, no caps", Wan::default()),
    ];
    println!(
        "# hubcache --wan benchmark: one {} MiB LFS file, fake Hub on 127.0.0.1",
        o.size_mib
    );
    for (key, name, wan) in scenarios {
        if !wanted(key) {
            continue;
        }
        hub.set_wan(wan);
        println!("## {name}");
        let mut clients = vec![Client::Hubcache];
        if o.python.is_some() {
            clients.push(Client::Python);
        }
        match aria2 {
            true => clients.push(Client::Aria2),
            false => println!("aria2c: not installed (apt-get install -y aria2)"),
        }
        clients.push(Client::Curl);
        match o.hf_hub_peer {
            Some(_) => clients.push(Client::HfHub),
            None => print_peer_skipped(),
        }
        let mut runs: Vec<Vec<Run>> = clients.iter().map(|_| Vec::new()).collect();
        let mut gets = Vec::new();
        for round in 0..o.repeat {
            // Each round starts with another client: whoever goes first meets the machine's
            // state after an idle moment (on a VM, memory handed back to the host is slow to
            // touch again).
            for k in 0..clients.len() {
                let i = (k + round) % clients.len();
                let dir = fresh_dir("wan-client");
                let _ = std::fs::create_dir_all(&dir);
                let cmd = match clients[i] {
                    Client::Hubcache => hubcache_cmd(o, &hub, &dir, &["download", "bench/big", "model.safetensors"]),
                    Client::Python => python_cmd(
                        o.python.as_deref().unwrap_or(Path::new("python3")),
                        &hub,
                        &dir,
                        "from huggingface_hub import hf_hub_download; hf_hub_download('bench/big', 'model.safetensors')",
                    ),
                    Client::Aria2 => {
                        let mut c = Command::new("/usr/bin/aria2c");
                        c.args([
                            "-x16",
                            "-s16",
                            "-k1M",
                            "-q",
                            "--file-allocation=none",
                            "--allow-overwrite=true",
                        ])
                        .arg("-d")
                        .arg(&dir)
                        .args(["-o", "aria2.bin", &cdn]);
                        c
                    }
                    Client::Curl => {
                        let mut c = Command::new("curl");
                        c.args(["-sf", "-o"]).arg(dir.join("curl.bin")).arg(&cdn);
                        c
                    }
                    Client::HfHub => match hf_hub_peer_cmd(o, &hub, &dir, "bench/big", "model.safetensors") {
                        Some(c) => c,
                        None => continue,
                    },
                };
                hub.clear_requests();
                runs[i].push(run(cmd));
                if clients[i] == Client::Hubcache {
                    gets.push(hub.requests().iter().filter(|r| r.is_content_get()).count());
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        for (client, runs) in clients.iter().zip(&runs) {
            let mut extra = client.note().to_string();
            if *client == Client::Hubcache {
                let list: Vec<String> = gets.iter().map(|g| g.to_string()).collect();
                extra = format!("  ({} content GETs)", list.join("/"));
            }
            print_runs(client.name(), runs, mb, &extra);
        }
        if key == "loopback" {
            // The ceiling of any client that checks the sha256: the hash alone, on one core.
            let started = Instant::now();
            let digest = sha256_hex(&big_bytes);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{:<22} {secs:7.2} s  {:8.1} MB/s  (sha256 of the file in memory, one core: no verifying client is faster; {})",
                "sha256 alone",
                mb / secs,
                &digest[..12]
            );
        }
    }
    if !wanted("snapshot") {
        return;
    }
    hub.set_wan(Wan {
        latency,
        ..Wan::default()
    });
    println!(
        "## snapshot of {} × {} KiB files, 20 ms per request, no cap",
        o.files, o.file_kib
    );
    let cache = fresh_dir("wan-many-rs");
    hub.clear_requests();
    let r = run(hubcache_cmd(o, &hub, &cache, &["download", "bench/many"]));
    println!(
        "hubcache               {:7.2} s  peak RSS {}  {}",
        r.secs,
        rss(&r),
        count_requests(&hub)
    );
    let _ = std::fs::remove_dir_all(&cache);
    if let Some(py) = &o.python {
        let cache = fresh_dir("wan-many-py");
        hub.clear_requests();
        let r = run(python_cmd(
            py,
            &hub,
            &cache,
            "from huggingface_hub import snapshot_download; snapshot_download('bench/many')",
        ));
        println!(
            "huggingface_hub        {:7.2} s  peak RSS {}  {}",
            r.secs,
            rss(&r),
            count_requests(&hub)
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
}
