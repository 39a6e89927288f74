use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hubcache_mirror::{ConnectionLimits, Mirror, MirrorConfig};
use hubcache_test_support::{git_blob_sha1, sha256_hex};

/// A mirror serving on 127.0.0.1:<free port> from its own runtime thread; stops on drop.
pub struct TestMirror {
    pub addr: SocketAddr,
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestMirror {
    pub fn start(config: MirrorConfig) -> TestMirror {
        let mirror = Mirror::new(config).expect("mirror config");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (listener, addr) = hubcache_mirror::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(addr).unwrap();
                mirror
                    .serve(listener, async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().expect("mirror thread died");
        TestMirror {
            addr,
            url: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Signals shutdown without waiting for the server to stop.
    pub fn signal_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Waits until the server has stopped; true if it stopped within `limit`.
    pub fn wait_stopped(&mut self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Serves `cache` offline with a short drain.
    pub fn offline(cache: &Path) -> TestMirror {
        TestMirror::start(config(cache))
    }
}

impl Drop for TestMirror {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An offline configuration for `cache` with a 1 s drain (tests drop servers with open sockets).
pub fn config(cache: &Path) -> MirrorConfig {
    let mut c = MirrorConfig::new(cache);
    c.drain = Duration::from_secs(1);
    c
}

/// Limits with these bounds.
pub fn limits(header: Duration, idle: Duration, max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: header,
        idle_timeout: idle,
        max_connections,
    }
}

/// The etag the Hub gives these bytes at this path (sha256 for the LFS files used here).
pub fn etag_of(path: &str, content: &[u8]) -> String {
    if path.ends_with(".safetensors") {
        sha256_hex(content)
    } else {
        git_blob_sha1(content)
    }
}

/// Writes a Python-layout cache for model `repo_id` at a made-up commit with `main` pointing at
/// it: blobs named by etag, snapshot entries as relative symlinks (or copies); returns the commit.
pub fn seed_cache(cache: &Path, repo_id: &str, files: &[(&str, &[u8])], copied: bool) -> String {
    let commit = git_blob_sha1(repo_id.as_bytes());
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), &commit).unwrap();
    let snap = repo.join("snapshots").join(&commit);
    for (path, content) in files {
        let etag = etag_of(path, content);
        let blob = repo.join("blobs").join(&etag);
        std::fs::write(&blob, content).unwrap();
        let entry = snap.join(path);
        std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
        if copied {
            std::fs::write(&entry, content).unwrap();
        } else {
            let depth = path.matches('/').count();
            let target: PathBuf = std::iter::repeat_n("..", depth + 2)
                .collect::<PathBuf>()
                .join("blobs")
                .join(&etag);
            std::os::unix::fs::symlink(target, &entry).unwrap();
        }
    }
    std::fs::create_dir_all(&snap).unwrap();
    commit
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One request on a fresh connection (`Connection: close`), with a 20 s hang guard.
pub fn http(addr: &SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("the mirror did not answer");
    parse_answer(&raw)
}

/// Parses a complete `Content-Length` answer.
pub fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Reads one `Content-Length` answer off a keep-alive connection.
pub fn read_answer(s: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("the mirror did not answer"),
            1,
            "closed mid-head"
        );
        raw.push(byte[0]);
    }
    let mut a = parse_answer(&raw);
    let len: usize = a.header("content-length").parse().unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    a.body = body;
    a
}

/// A blocking hubcache client against `endpoint`, caching into `cache`.
pub fn client(endpoint: &str, cache: &Path) -> hubcache::blocking::Hub {
    hubcache::blocking::Hub::new(hubcache::HubBuilder::new(endpoint, cache).offline(false)).unwrap()
}

pub fn file_request(repo: &str, revision: &str, path: &str) -> hubcache::FileRequest {
    hubcache::FileRequest::new(
        hubcache::Repo::model(repo).unwrap(),
        hubcache::Revision::new(revision).unwrap(),
        hubcache::RepoPath::new(path).unwrap(),
    )
}
