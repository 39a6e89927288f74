//! Exercises the fake hub over raw HTTP/1.1 (std TcpStream, `Connection: close`).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use hubcache_test_support::{git_blob_sha1, sha256_hex, FakeHub, Fault, FaultRule, Origin, RepoKind};

/// A parsed HTTP response.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends one request to `base` (an `http://host:port` URL) and reads until EOF, error or timeout.
fn request(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let host = base.strip_prefix("http://").expect("http URL");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "the fake hub always sends Content-Length"
    );
    RawResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(base: &str, path: &str) -> RawResponse {
    request(base, "GET", path, &[])
}

fn head(base: &str, path: &str) -> RawResponse {
    request(base, "HEAD", path, &[])
}

/// A deterministic, non-repeating-ish byte pattern.
fn pattern(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn files(list: &[(&str, Bytes)]) -> Vec<(String, Bytes)> {
    list.iter().map(|(p, c)| ((*p).to_owned(), c.clone())).collect()
}

/// A model repo with a regular file, an LFS file and a nested folder.
fn sample_hub() -> (FakeHub, String, Bytes) {
    let hub = FakeHub::start();
    let weights = pattern(3 * 1024 * 1024 + 17);
    let commit = hub.commit(
        RepoKind::Model,
        "org/model",
        "main",
        files(&[
            ("config.json", Bytes::from_static(b"{\"a\": 1}\n")),
            ("model.safetensors", weights.clone()),
            ("sub dir/a.txt", Bytes::from_static(b"aaa")),
            ("sub dir/deep/b.txt", Bytes::from_static(b"bbb")),
        ]),
    );
    (hub, commit, weights)
}

#[test]
fn head_regular_file() {
    let (hub, commit, _) = sample_hub();
    assert_eq!(commit.len(), 40);
    let r = head(&hub.url(), "/org/model/resolve/main/config.json");
    assert_eq!(r.status, 200);
    let expected = format!("\"{}\"", git_blob_sha1(b"{\"a\": 1}\n"));
    assert_eq!(r.header("etag"), Some(expected.as_str()));
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
    assert_eq!(r.content_length(), Some(9));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.body.is_empty());

    let r = get(&hub.url(), "/org/model/resolve/main/config.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"a\": 1}\n");

    // Percent-encoded path and a full commit id as revision.
    let r = get(&hub.url(), &format!("/org/model/resolve/{commit}/sub%20dir/deep/b.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"bbb");
}

#[test]
fn lfs_redirects_to_cdn() {
    let (hub, commit, weights) = sample_hub();
    let sha = sha256_hex(&weights);
    for method in ["HEAD", "GET"] {
        let r = request(&hub.url(), method, "/org/model/resolve/main/model.safetensors", &[]);
        assert_eq!(r.status, 302, "{method}");
        let location = r.header("location").expect("location");
        assert!(
            location.starts_with(&format!("{}/lfs/{sha}?", hub.cdn_url())),
            "{location}"
        );
        assert_eq!(r.header("x-linked-etag"), Some(format!("\"{sha}\"").as_str()));
        assert_eq!(r.header("x-linked-size"), Some(weights.len().to_string().as_str()));
        assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
        assert_eq!(r.header("etag").map(str::len), Some(42));
        assert_eq!(r.content_length(), Some(0));
    }
    let r = head(&hub.cdn_url(), &format!("/lfs/{sha}?sig=x"));
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(weights.len()));
    assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
    let r = get(&hub.cdn_url(), &format!("/lfs/{sha}?sig=x"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, weights.as_ref());
}

#[test]
fn range_requests() {
    let (hub, _, weights) = sample_hub();
    let sha = sha256_hex(&weights);
    let cdn = hub.cdn_url();
    let path = format!("/lfs/{sha}");
    let total = weights.len();

    let r = request(&cdn, "GET", &path, &[("Range", "bytes=1000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1000-{}/{total}", total - 1).as_str())
    );
    assert_eq!(r.body, &weights[1000..]);

    let r = request(&cdn, "GET", &path, &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &weights[10..20]);

    let r = request(&cdn, "GET", &path, &[("Range", "bytes=-5")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &weights[total - 5..]);

    let r = request(&cdn, "GET", &path, &[("Range", &format!("bytes={total}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(format!("bytes */{total}").as_str()));

    // Regular files on the hub origin honour ranges too; HEAD never does.
    let r = request(
        &hub.url(),
        "GET",
        "/org/model/resolve/main/config.json",
        &[("Range", "bytes=2-3")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"a\"");
    let r = request(
        &hub.url(),
        "HEAD",
        "/org/model/resolve/main/config.json",
        &[("Range", "bytes=2-3")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(9));
}

#[test]
fn errors_like_the_hub() {
    let (hub, commit, _) = sample_hub();
    let url = hub.url();

    let r = head(&url, "/org/model/resolve/main/missing.txt");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-error-code"), Some("EntryNotFound"));
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));

    let r = get(&url, "/org/model/resolve/main/missing.txt");
    assert_eq!(r.json()["error"], "Entry not found");

    let r = get(&url, "/org/nope/resolve/main/config.json");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    assert_eq!(r.header("x-error-message"), Some("Repository not found"));
    assert_eq!(r.json()["error"], "Repository not found");

    let r = head(&url, "/org/model/resolve/refs%2Fpr%2F9/config.json");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));
    assert_eq!(r.header("x-error-message"), Some("Invalid rev id: refs/pr/9"));

    assert_eq!(get(&url, "/api/agent-harnesses").status, 404);
    assert_eq!(get(&url, "/whatever").status, 404);
}

#[test]
fn refs_private_gated_renamed() {
    let hub = FakeHub::start();
    let url = hub.url();
    let c1 = hub.commit(
        RepoKind::Dataset,
        "org/data",
        "main",
        files(&[("a.txt", Bytes::from_static(b"1"))]),
    );
    let c2 = hub.commit(
        RepoKind::Dataset,
        "org/data",
        "main",
        files(&[("b.txt", Bytes::from_static(b"2"))]),
    );
    assert_ne!(c1, c2);
    hub.tag(RepoKind::Dataset, "org/data", "refs/pr/1", &c1);
    hub.tag(RepoKind::Dataset, "org/data", "v1", &c1);

    let r = head(&url, "/datasets/org/data/resolve/refs%2Fpr%2F1/a.txt");
    assert_eq!((r.status, r.header("x-repo-commit")), (200, Some(c1.as_str())));
    let r = head(&url, "/datasets/org/data/resolve/v1/a.txt");
    assert_eq!(r.status, 200);
    // Full replacement: a.txt is gone on main.
    let r = head(&url, "/datasets/org/data/resolve/main/a.txt");
    assert_eq!((r.status, r.header("x-repo-commit")), (404, Some(c2.as_str())));

    hub.set_private(RepoKind::Dataset, "org/data", "secret");
    assert_eq!(head(&url, "/datasets/org/data/resolve/main/b.txt").status, 401);
    let auth = [("Authorization", "Bearer secret")];
    assert_eq!(
        request(&url, "HEAD", "/datasets/org/data/resolve/main/b.txt", &auth).status,
        200
    );
    let info = request(&url, "GET", "/api/datasets/org/data", &auth).json();
    assert_eq!(info["private"], true);

    hub.commit(
        RepoKind::Model,
        "gpt",
        "main",
        files(&[("x", Bytes::from_static(b"x"))]),
    );
    hub.set_gated(RepoKind::Model, "gpt");
    let r = head(&url, "/gpt/resolve/main/x");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-error-code"), Some("GatedRepo"));
    assert_eq!(
        r.header("x-error-message"),
        Some("Access to model gpt is restricted. You must have access to it and be authenticated to access it. Please log in.")
    );

    hub.commit(
        RepoKind::Model,
        "old/name",
        "main",
        files(&[("f.txt", Bytes::from_static(b"f"))]),
    );
    hub.rename_repo(RepoKind::Model, "old/name", "new/name");
    let r = head(&url, "/old/name/resolve/main/f.txt");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/new/name/resolve/main/f.txt"));
    let r = get(&url, "/api/models/old/name/revision/main?blobs=true");
    assert_eq!(
        r.header("location"),
        Some("/api/models/new/name/revision/main?blobs=true")
    );
    assert_eq!(head(&url, "/new/name/resolve/main/f.txt").status, 200);
}

#[test]
fn repo_info() {
    let (hub, commit, weights) = sample_hub();
    let r = get(&hub.url(), "/api/models/org/model");
    assert_eq!(r.status, 200);
    let info = r.json();
    assert_eq!(info["id"], "org/model");
    assert_eq!(info["sha"], commit.as_str());
    let names: Vec<&str> = info["siblings"]
        .as_array()
        .expect("siblings")
        .iter()
        .map(|s| s["rfilename"].as_str().expect("rfilename"))
        .collect();
    assert_eq!(
        names,
        [
            "config.json",
            "model.safetensors",
            "sub dir/a.txt",
            "sub dir/deep/b.txt"
        ]
    );
    assert!(info["siblings"][0].get("size").is_none());

    let info = get(&hub.url(), "/api/models/org/model/revision/main?blobs=true").json();
    let lfs = &info["siblings"][1];
    assert_eq!(lfs["size"], weights.len());
    assert_eq!(lfs["lfs"]["sha256"], sha256_hex(&weights));
    assert_eq!(info["siblings"][0]["blobId"], git_blob_sha1(b"{\"a\": 1}\n"));

    let r = get(&hub.url(), "/api/models/org/model/revision/nope");
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));
}

#[test]
fn tree_listing_and_pagination() {
    let (hub, _, weights) = sample_hub();
    let url = hub.url();
    let r = get(&url, "/api/models/org/model/tree/main");
    let paths: Vec<String> = r
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap_or("?"),
                e["path"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        paths,
        ["file:config.json", "file:model.safetensors", "directory:sub dir"]
    );
    let entries = r.json();
    assert_eq!(entries[1]["lfs"]["oid"], sha256_hex(&weights));
    assert_eq!(entries[1]["lfs"]["size"], weights.len());
    assert!(entries[1]["lfs"]["pointerSize"].as_u64().is_some());

    let r = get(&url, "/api/models/org/model/tree/main/sub%20dir%2Fdeep?recursive=false");
    assert_eq!(r.json()[0]["path"], "sub dir/deep/b.txt");
    let r = get(&url, "/api/models/org/model/tree/main/nope");
    assert_eq!(r.header("x-error-code"), Some("EntryNotFound"));

    hub.set_tree_page_size(2);
    let mut path = "/api/models/org/model/tree/main?recursive=true&expand=false".to_owned();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(&url, &path);
        assert_eq!(r.status, 200);
        pages += 1;
        for e in r.json().as_array().expect("array") {
            all.push(e["path"].as_str().expect("path").to_owned());
        }
        let Some(link) = r.header("link") else { break };
        let next = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(u, _)| u)
            .expect("Link rel=next");
        assert!(next.starts_with(&url), "absolute link: {next}");
        assert!(next.contains("recursive=true"), "{next}");
        path = next[url.len()..].to_owned();
    }
    assert_eq!(pages, 3);
    assert_eq!(
        all,
        [
            "config.json",
            "model.safetensors",
            "sub dir",
            "sub dir/a.txt",
            "sub dir/deep",
            "sub dir/deep/b.txt"
        ]
    );
}

#[test]
fn faults() {
    let (hub, _, weights) = sample_hub();
    let sha = sha256_hex(&weights);
    let cdn = hub.cdn_url();
    let path = format!("/lfs/{sha}");

    hub.inject(FaultRule::new("/lfs/", Fault::TruncateBody { after: 1000 }).on_method("GET"));
    // A HEAD does not consume a body fault.
    assert_eq!(head(&cdn, &path).status, 200);
    let r = get(&cdn, &path);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(weights.len()));
    assert_eq!(r.body, &weights[..1000]);
    assert_eq!(get(&cdn, &path).body.len(), weights.len(), "rule spent");

    hub.inject(
        FaultRule::new(
            "config.json",
            Fault::Status {
                status: 503,
                retry_after: Some(3),
            },
        )
        .repeat(2),
    );
    for _ in 0..2 {
        let r = head(&hub.url(), "/org/model/resolve/main/config.json");
        assert_eq!((r.status, r.header("retry-after")), (503, Some("3")));
    }
    assert_eq!(head(&hub.url(), "/org/model/resolve/main/config.json").status, 200);

    hub.inject(FaultRule::new("/lfs/", Fault::WrongBytes));
    let r = get(&cdn, &path);
    assert_eq!(r.body.len(), weights.len());
    let diff: Vec<usize> = (0..weights.len()).filter(|&i| r.body[i] != weights[i]).collect();
    assert_eq!(diff, [weights.len() / 2]);

    hub.inject(FaultRule::new("/lfs/", Fault::IgnoreRange));
    get(&cdn, &path); // no Range header: rule not consumed
    let r = request(&cdn, "GET", &path, &[("Range", "bytes=5-")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), weights.len());

    hub.inject(FaultRule::new("/lfs/", Fault::Stall { after: 100 }));
    let started = std::time::Instant::now();
    let r = get(&cdn, &path); // client read timeout is 2 s
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(r.body, &weights[..100]);

    hub.inject(FaultRule::new("config.json", Fault::Delay { millis: 300 }));
    let started = std::time::Instant::now();
    assert_eq!(get(&hub.url(), "/org/model/resolve/main/config.json").status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    hub.clear_faults();
}

/// Head and raw body bytes (chunk framing included) of one request, read until EOF or timeout.
fn raw_exchange(base: &str, path: &str) -> (String, Vec<u8>) {
    let host = base.strip_prefix("http://").expect("http URL");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    (
        String::from_utf8_lossy(&raw[..split]).into_owned(),
        raw[split + 4..].to_vec(),
    )
}

/// Removes HTTP/1.1 chunk framing.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).expect("hex"), 16).expect("size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[test]
fn hostile_faults() {
    let (hub, _, weights) = sample_hub();
    let sha = sha256_hex(&weights);
    let cdn = hub.cdn_url();
    let path = format!("/lfs/{sha}");

    hub.inject(FaultRule::new("/lfs/", Fault::RedirectLoop));
    let r = get(&cdn, &format!("{path}?sig=1"));
    assert_eq!((r.status, r.header("location")), (302, Some(&*format!("{path}?sig=1"))));

    hub.inject(FaultRule::new("/lfs/", Fault::RedirectChain { hops: 3 }).repeat(4));
    let mut at = format!("{path}?sig=1");
    for k in 1..=3 {
        let r = get(&cdn, &at);
        assert_eq!(r.status, 302);
        at = r.header("location").unwrap().to_owned();
        assert_eq!(at, format!("{path}?sig=1&hop={k}"));
    }
    assert_eq!(get(&cdn, &at).body, weights, "the end of the chain answers normally");

    hub.inject(FaultRule::new(
        "/lfs/",
        Fault::RedirectTo {
            location: "http://169.254.169.254/latest/meta-data/".into(),
        },
    ));
    let r = get(&cdn, &path);
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("http://169.254.169.254/latest/meta-data/"))
    );

    hub.inject(FaultRule::new("/lfs/", Fault::ManyHeaders { count: 500 }));
    let r = get(&cdn, &path);
    assert_eq!(
        r.headers.iter().filter(|(k, _)| k.starts_with("x-filler-")).count(),
        500
    );
    assert_eq!(r.body, weights);

    hub.inject(FaultRule::new("/lfs/", Fault::ContentLength { announce: 1 << 40 }).on_method("GET"));
    let r = get(&cdn, &path);
    assert_eq!(r.content_length(), Some(1 << 40));
    assert_eq!(r.body, weights);

    hub.inject(
        FaultRule::new(
            "/lfs/",
            Fault::ShortIgnoringRange {
                announce: Some(1_000_000_000_000_000),
                after: 27,
            },
        )
        .on_method("GET"),
    );
    let r = request(&cdn, "GET", &path, &[("Range", "bytes=5-")]);
    assert_eq!((r.status, r.content_length()), (200, Some(1_000_000_000_000_000)));
    assert_eq!(r.body, &weights[..27]);

    hub.inject(FaultRule::new("/lfs/", Fault::Drip { millis: 30 }).on_method("GET"));
    let started = std::time::Instant::now();
    let r = request(&cdn, "GET", &path, &[("Range", "bytes=0-9")]);
    assert_eq!(r.body, &weights[..10]);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let tree = "/api/models/org/model/tree/main?recursive=true";
    hub.inject(FaultRule::new("/tree/", Fault::Drip { millis: 1 }));
    let dripped = get(&hub.url(), tree);
    assert_eq!(
        dripped.json(),
        get(&hub.url(), tree).json(),
        "a dripped answer is complete"
    );

    hub.inject(FaultRule::new("/tree/", Fault::SelfLink));
    let r = get(&hub.url(), tree);
    assert_eq!(r.header("link"), Some(&*format!("<{}{tree}>; rel=\"next\"", hub.url())));

    hub.inject(FaultRule::new("/tree/", Fault::HugeListing { entries: 25_000 }));
    let (head, raw) = raw_exchange(&hub.url(), tree);
    assert!(
        head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    let listing: serde_json::Value = serde_json::from_slice(&dechunk(&raw)).unwrap();
    let entries = listing.as_array().unwrap();
    assert_eq!(entries.len(), 25_000);
    assert_eq!(entries[24_999]["path"], "f/000024999");

    let kinds: Vec<u16> = hub.requests().iter().map(|r| r.status).collect();
    assert!(kinds.contains(&302) && kinds.contains(&200), "{kinds:?}");
    hub.clear_faults();
}

#[test]
fn request_log() {
    let (hub, _, _) = sample_hub();
    hub.clear_requests();
    request(
        &hub.url(),
        "HEAD",
        "/org/model/resolve/main/sub%20dir/a.txt",
        &[
            ("User-Agent", "test/1"),
            ("X-HF-Download-Counter", "1"),
            ("X-Amzn-Trace-Id", "abc"),
        ],
    );
    get(&hub.url(), "/org/model/resolve/main/config.json");
    let r = get(&hub.url(), "/org/model/resolve/main/model.safetensors");
    let location = r.header("location").expect("location").to_owned();
    let cdn_path = &location[hub.cdn_url().len()..];
    request(&hub.cdn_url(), "GET", cdn_path, &[("Range", "bytes=0-9")]);
    get(&hub.url(), "/api/models/org/model?blobs=true");

    let log = hub.requests();
    let summary: Vec<(Origin, &str, &str, u16, bool)> = log
        .iter()
        .map(|r| {
            (
                r.origin,
                r.method.as_str(),
                r.path.as_str(),
                r.status,
                r.is_content_get(),
            )
        })
        .collect();
    let (sha_path, query) = cdn_path.split_once('?').expect("query");
    assert_eq!(
        summary,
        [
            (
                Origin::Hub,
                "HEAD",
                "/org/model/resolve/main/sub%20dir/a.txt",
                200,
                false
            ),
            (Origin::Hub, "GET", "/org/model/resolve/main/config.json", 200, true),
            (
                Origin::Hub,
                "GET",
                "/org/model/resolve/main/model.safetensors",
                302,
                false
            ),
            (Origin::Cdn, "GET", sha_path, 206, true),
            (Origin::Hub, "GET", "/api/models/org/model", 200, false),
        ]
    );
    assert_eq!(log[0].user_agent.as_deref(), Some("test/1"));
    assert_eq!(log[3].range.as_deref(), Some("bytes=0-9"));
    assert_eq!(log[3].query.as_deref(), Some(query));
    assert_eq!(log[3].authorization, None);
    assert_eq!(log[4].query.as_deref(), Some("blobs=true"));
    hub.clear_requests();
    assert!(hub.requests().is_empty());
}

#[test]
fn commit_is_deterministic_and_folder_commit_works() {
    let dir = std::env::temp_dir().join(format!("fake-hub-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("nested/deeper")).expect("mkdir");
    std::fs::write(dir.join("top.txt"), b"top").expect("write");
    std::fs::write(dir.join("nested/deeper/w.bin"), b"weights").expect("write");

    let a = FakeHub::start();
    let b = FakeHub::start();
    let ca = a
        .commit_folder(RepoKind::Space, "s/p", "main", &dir)
        .expect("commit folder");
    let cb = b.commit(
        RepoKind::Space,
        "s/p",
        "main",
        files(&[
            ("nested/deeper/w.bin", Bytes::from_static(b"weights")),
            ("top.txt", Bytes::from_static(b"top")),
        ]),
    );
    assert_eq!(ca, cb);
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let r = head(&a.url(), "/spaces/s/p/resolve/main/nested/deeper/w.bin");
    assert_eq!(r.status, 302, "*.bin is LFS by default");

    a.set_lfs_rule(|_, _| false);
    a.commit(
        RepoKind::Space,
        "s/p",
        "main",
        files(&[("w.bin", Bytes::from_static(b"weights"))]),
    );
    let r = get(&a.url(), "/spaces/s/p/resolve/main/w.bin");
    assert_eq!((r.status, r.body.as_slice()), (200, b"weights".as_slice()));
}

#[tokio::test]
async fn works_inside_a_tokio_runtime() {
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "m",
        "main",
        files(&[("f", Bytes::from_static(b"hello"))]),
    );
    let url = hub.url();
    let r = tokio::task::spawn_blocking(move || get(&url, "/m/resolve/main/f"))
        .await
        .expect("join");
    assert_eq!(r.body, b"hello");
    drop(hub); // stopping the hub from async context must not panic
}

#[test]
fn large_body_streams_fast() {
    let hub = FakeHub::start();
    let big = Bytes::from(vec![7u8; 64 * 1024 * 1024]);
    hub.commit(
        RepoKind::Model,
        "big",
        "main",
        vec![("blob.gguf".to_owned(), big.clone())],
    );
    let path = format!("/lfs/{}", sha256_hex(&big));
    let host = hub.cdn_url();
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(host.trim_start_matches("http://")).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut buf = vec![0u8; 4 * 1024 * 1024];
    let mut total = 0usize;
    loop {
        match stream.read(&mut buf).expect("read") {
            0 => break,
            n => total += n,
        }
    }
    let elapsed = started.elapsed();
    assert!(total > big.len());
    eprintln!("64 MiB in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20));
}

#[test]
fn empty_file() {
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "e",
        "main",
        vec![("empty.txt".to_owned(), Bytes::new())],
    );
    let r = head(&hub.url(), "/e/resolve/main/empty.txt");
    assert_eq!((r.status, r.content_length()), (200, Some(0)));
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", git_blob_sha1(b"")).as_str()));
    let r = get(&hub.url(), "/e/resolve/main/empty.txt");
    assert_eq!((r.status, r.content_length(), r.body.len()), (200, Some(0), 0));
    let r = request(&hub.url(), "GET", "/e/resolve/main/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!(r.status, 416);
}
