//! Helpers for the S3 store tests and benchmark: an in-process s3s-fs server (SigV4 checked,
//! 127.0.0.1 only) with a fault layer in front of its service, and mirrors over it.
//!
//! Faults ([`Fault`]) are matched by method and a substring of the path, fire a bounded number
//! of times, and every firing is written to the fault log ([`S3Server::fault_log`]) so a test
//! can prove its fault really happened.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hubcache_mirror::store::s3::S3Config;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The access key the test server accepts.
pub const ACCESS_KEY: &str = "hubcache-test-key";
/// The secret key the test server accepts.
pub const SECRET_KEY: &str = "hubcache-test-secret-0123456789";
/// The test bucket.
pub const BUCKET: &str = "fleet";

/// What a fault does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status and an S3 error body (`SlowDown` for 503, `InternalError` else).
    Status(u16),
    /// Drop the connection without an answer.
    Reset,
    /// Answer after this long.
    Stall(Duration),
    /// Send the headers and a first part of the body, then cut the connection.
    CutBody,
}

/// A fault rule.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `GET`, `PUT`, … (`None`: any).
    pub method: Option<&'static str>,
    /// A substring of the request path.
    pub path_contains: String,
    /// What happens.
    pub kind: FaultKind,
    /// How many matching requests it hits (then it is spent).
    pub times: usize,
}

#[derive(Default)]
struct Shared {
    faults: Vec<Fault>,
    fired: Vec<String>,
    requests: Vec<String>,
}

/// An s3s-fs server on 127.0.0.1 over a temporary folder, on its own runtime thread.
pub struct S3Server {
    /// Its address.
    pub addr: SocketAddr,
    root: tempfile::TempDir,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// Starts a server with bucket [`BUCKET`].
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket dir");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let fs_root = root.path().to_path_buf();
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let fs = s3s_fs::FileSystem::new(&fs_root).expect("s3s-fs");
                let mut b = s3s::service::S3ServiceBuilder::new(fs);
                b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
                let service = b.build();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stop_rx => break,
                        r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                    };
                    // Without it small GETs wait ~30 ms on Nagle + delayed ACK.
                    let _ = tcp.set_nodelay(true);
                    let (service, sh) = (service.clone(), sh.clone());
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (service, sh) = (service.clone(), sh.clone());
                        async move { faulty(service, sh, req).await }
                    });
                    let conn = http.serve_connection(TokioIo::new(tcp), svc).into_owned();
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            });
        });
        let addr = addr_rx.recv().expect("s3 server thread died");
        S3Server {
            addr,
            root,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The folder holding the buckets (a bucket is a folder, an object a file).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The file behind object `key` of the test bucket.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The `AWS_*` variables a client of this server needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// A store configuration for `s3://fleet/<prefix>` on this server.
    pub fn config(&self, prefix: &str) -> S3Config {
        let env = self.env();
        S3Config::from_url(&format!("s3://{BUCKET}/{prefix}"), |name| {
            env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        })
        .expect("store config")
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        if let Ok(mut s) = self.shared.lock() {
            s.faults.push(fault);
        }
    }

    /// Each fault that fired: `"<kind> <METHOD> <path>"`.
    pub fn fault_log(&self) -> Vec<String> {
        self.shared.lock().map(|s| s.fired.clone()).unwrap_or_default()
    }

    /// Every request received: `"<METHOD> <path>[?query]"`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.requests.clear();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn faulty(
    service: s3s::service::S3Service,
    shared: Arc<Mutex<Shared>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<s3s::Body>, s3s::HttpError> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let fault = {
        let mut s = shared.lock().map_err(|_| s3s::HttpError::new("poisoned".into()))?;
        s.requests.push(format!("{method} {path}{query}"));
        let hit = s
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && f.method.is_none_or(|m| m == method) && path.contains(f.path_contains.as_str()));
        let kind = hit.map(|f| {
            f.times -= 1;
            f.kind
        });
        if let Some(k) = kind {
            s.fired.push(format!("{k:?} {method} {path}"));
        }
        kind
    };
    match fault {
        None => service.call(req.map(s3s::Body::from)).await,
        Some(FaultKind::Status(code)) => {
            let name = if code == 503 { "SlowDown" } else { "InternalError" };
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{name}</Code><Message>injected</Message></Error>");
            hyper::Response::builder()
                .status(code)
                .header("content-type", "application/xml")
                .body(s3s::Body::from(body))
                .map_err(|e| s3s::HttpError::new(Box::new(e)))
        }
        Some(FaultKind::Reset) => Err(s3s::HttpError::new("injected reset".into())),
        Some(FaultKind::Stall(d)) => {
            tokio::time::sleep(d).await;
            service.call(req.map(s3s::Body::from)).await
        }
        Some(FaultKind::CutBody) => {
            let resp = service.call(req.map(s3s::Body::from)).await?;
            let (parts, body) = resp.into_parts();
            let bytes = http_body_util::BodyExt::collect(body)
                .await
                .map_err(|e| s3s::HttpError::new(e.to_string().into()))?
                .to_bytes();
            let half = bytes.slice(..bytes.len() / 2);
            let body = s3s::Body::from(Box::pin(CutStream(Some(half))) as s3s::stream::DynByteStream);
            Ok(hyper::Response::from_parts(parts, body))
        }
    }
}

/// Yields its bytes, then an error: the connection is cut mid-body.
struct CutStream(Option<bytes::Bytes>);

impl futures_util::Stream for CutStream {
    type Item = Result<bytes::Bytes, s3s::StdError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(Some(match self.0.take() {
            Some(b) => Ok(b),
            None => Err("injected cut".into()),
        }))
    }
}

impl s3s::stream::ByteStream for CutStream {}

/// A mirror (in this process, on its own runtime thread) on 127.0.0.1:<free port>; stops on drop.
pub struct Replica {
    /// Its address.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    /// Opens the store (layout and credentials checked) and serves it.
    pub fn start(config: hubcache_mirror::MirrorConfig) -> Result<Replica, hubcache_mirror::MirrorError> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(hubcache_mirror::MirrorError::Listen {
                        addr: "runtime".into(),
                        source: e,
                    }));
                    return;
                }
            };
            rt.block_on(async move {
                let mirror = match hubcache_mirror::Mirror::open(config).await {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let (listener, addr) = match hubcache_mirror::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let _ = addr_tx.send(Ok(addr));
                let _ = mirror
                    .serve(listener, async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().expect("replica thread died")?;
        Ok(Replica {
            addr,
            url: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// A replica over `s3://fleet/<prefix>` of `server`, offline, with a short drain.
    pub fn over(server: &S3Server, prefix: &str) -> Replica {
        Replica::start(replica_config(server, prefix)).expect("replica")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An offline mirror configuration over `s3://fleet/<prefix>` (1 s drain, 5 s S3 I/O timeout).
pub fn replica_config(server: &S3Server, prefix: &str) -> hubcache_mirror::MirrorConfig {
    let mut c = hubcache_mirror::MirrorConfig::new("/nonexistent-cache-unused");
    c.drain = Duration::from_secs(1);
    let mut s3 = server.config(prefix);
    s3.io_timeout = Duration::from_secs(5);
    c.s3 = Some(s3);
    c
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The headers without `date`, for comparing replicas.
    pub fn headers_but_date(&self) -> Vec<(String, String)> {
        self.headers.iter().filter(|(k, _)| k != "date").cloned().collect()
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end (20 s guard).
pub fn http(addr: &SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Answer> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// A load balancer on 127.0.0.1 that sends each request to the next backend in turn
/// (request by request, not connection by connection), counting what each one got.
pub struct RoundRobin {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests forwarded to each backend.
    pub counts: Arc<Vec<std::sync::atomic::AtomicUsize>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RoundRobin {
    /// Balances over these backends (`http://host:port`).
    pub fn start(backends: Vec<String>) -> RoundRobin {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let counts: Arc<Vec<AtomicUsize>> = Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let c = counts.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("client");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send");
                let next = Arc::new(AtomicUsize::new(0));
                let backends = Arc::new(backends);
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stop_rx => break,
                        r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                    };
                    let _ = tcp.set_nodelay(true);
                    let (client, next, backends, c) = (client.clone(), next.clone(), backends.clone(), c.clone());
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (client, next, backends, c) = (client.clone(), next.clone(), backends.clone(), c.clone());
                        async move {
                            let i = next.fetch_add(1, Ordering::SeqCst) % backends.len();
                            c[i].fetch_add(1, Ordering::SeqCst);
                            forward(&client, &backends[i], req).await
                        }
                    });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            });
        });
        let addr = addr_rx.recv().expect("balancer thread died");
        RoundRobin {
            addr,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type ProxyBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

async fn forward(
    client: &reqwest::Client,
    backend: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<ProxyBody>, std::io::Error> {
    use futures_util::TryStreamExt;
    use http_body_util::BodyExt;
    let target = format!(
        "{backend}{}",
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let mut out = client.request(parts.method.clone(), &target).body(body);
    for (k, v) in &parts.headers {
        if k != hyper::header::HOST {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.map_err(std::io::Error::other)?;
    let mut builder = hyper::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    let stream = resp
        .bytes_stream()
        .map_ok(hyper::body::Frame::data)
        .map_err(std::io::Error::other);
    builder
        .body(http_body_util::StreamBody::new(stream).boxed())
        .map_err(std::io::Error::other)
}
