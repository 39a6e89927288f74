use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hubcache::{HubBuilder, Repo, Revision, SnapshotRequest};
use hubcache_s3_tests::{http, replica_config, Replica, S3Server, BUCKET};
use hubcache_test_support::{sha256_hex, FakeHub, Fault, FaultRule, RepoKind};

use crate::common::{files, hubcache_cmd};

fn pulling_replica(s3: &S3Server, prefix: &str, hub: &FakeHub, lease: Duration) -> Replica {
    let mut c = replica_config(s3, prefix);
    c.upstream = Some(HubBuilder::new(hub.url(), "/unused").offline(false));
    if let Some(s) = &mut c.s3 {
        s.lease_ttl = lease;
    }
    Replica::start(c).unwrap()
}

fn content_gets(hub: &FakeHub) -> HashMap<String, usize> {
    let mut per_file = HashMap::new();
    for r in hub.requests().into_iter().filter(|r| r.is_content_get()) {
        *per_file.entry(r.path).or_default() += 1;
    }
    per_file
}

#[test]
fn three_replicas_and_twelve_clients_on_an_empty_bucket_fetch_each_blob_once() {
    let hub = FakeHub::start();
    hub.commit(RepoKind::Model, "org/fleet", "main", files());
    // Slow content upstream, so that the clients surely overlap.
    hub.inject(
        FaultRule::new("/", Fault::Delay { millis: 300 })
            .on_method("GET")
            .repeat(1000),
    );
    let s3 = S3Server::start();
    let replicas: Vec<Replica> = (0..3)
        .map(|_| pulling_replica(&s3, "pt", &hub, Duration::from_secs(30)))
        .collect();
    let clients: Vec<_> = (0..12)
        .map(|i| {
            let url = replicas[i % 3].url.clone();
            std::thread::spawn(move || {
                let dest = tempfile::tempdir().unwrap();
                let c = hubcache::blocking::Hub::new(HubBuilder::new(url, dest.path()).offline(false)).unwrap();
                let snap = c
                    .snapshot(&SnapshotRequest::new(
                        Repo::model("org/fleet").unwrap(),
                        Revision::main(),
                    ))
                    .unwrap();
                std::fs::read(snap.join("model.safetensors")).unwrap()
            })
        })
        .collect();
    let big = files()[2].1.clone();
    for c in clients {
        assert_eq!(c.join().unwrap(), big);
    }
    let gets = content_gets(&hub);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(gets.values().all(|n| *n == 1), "upstream transfers per file: {gets:?}");
    // The store now holds the blob, whole, and no lease is left.
    let stored = std::fs::read(s3.object_path(&format!("pt/blobs/{}", sha256_hex(&big)))).unwrap();
    assert_eq!(stored, big);
    assert!(!s3.object_path(&format!("pt/leases/{}", sha256_hex(&big))).exists());
    // And a replica without upstream serves it all now.
    let offline = Replica::over(&s3, "pt");
    let r = http(&offline.addr, "GET", "/org/fleet/resolve/main/model.safetensors", &[]).unwrap();
    assert_eq!((r.status, r.body.len()), (200, big.len()));
    assert_eq!(r.body, big);
}

#[test]
fn wrong_bytes_upstream_never_become_visible_nor_a_complete_answer() {
    let hub = FakeHub::start();
    hub.commit(RepoKind::Model, "org/fleet", "main", files());
    hub.inject(FaultRule::new("/", Fault::WrongBytes).on_method("GET").repeat(1000));
    let s3 = S3Server::start();
    let m = pulling_replica(&s3, "wb", &hub, Duration::from_secs(30));
    let big = files()[2].1.clone();
    let r = http(&m.addr, "GET", "/org/fleet/resolve/main/model.safetensors", &[]);
    // Either an error status or a body cut short: never all the bytes with a 200.
    if let Ok(a) = &r {
        assert!(
            a.status != 200 || a.body.len() < big.len(),
            "a wrong file was answered as complete"
        );
    }
    assert!(
        hub.requests().iter().any(|r| r.is_content_get()),
        "the fault did not fire"
    );
    assert!(!s3.object_path(&format!("wb/blobs/{}", sha256_hex(&big))).exists());
    let h = http(&m.addr, "HEAD", "/org/fleet/resolve/main/config.json", &[]).unwrap();
    assert_eq!(h.status, 200);
}

/// `hubcache serve --store … --upstream …` as a child process, once it listens.
fn spawn_replica(s3: &S3Server, hub: &FakeHub, home: &std::path::Path) -> (Child, String) {
    let mut child = hubcache_cmd(s3, home)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--store",
            &format!("s3://{BUCKET}/kill"),
            "--upstream",
            &hub.url(),
            "--lease-secs",
            "3",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

#[test]
fn a_replica_killed_mid_pull_leaves_nothing_visible_and_another_completes() {
    let hub = FakeHub::start();
    hub.commit(RepoKind::Model, "org/fleet", "main", files());
    // The first transfer stalls after 10 MiB: one 8 MiB part is uploaded, the upload not completed.
    hub.inject(
        FaultRule::new("/", Fault::Stall { after: 10 << 20 })
            .on_method("GET")
            .repeat(1),
    );
    let s3 = S3Server::start();
    let home = tempfile::tempdir().unwrap();
    let (mut a, a_url) = spawn_replica(&s3, &hub, home.path());
    let (mut b, b_url) = spawn_replica(&s3, &hub, home.path());
    let big = files()[2].1.clone();
    let key = format!("kill/blobs/{}", sha256_hex(&big));
    let lease = format!("kill/leases/{}", sha256_hex(&big));
    let a_addr: std::net::SocketAddr = a_url.trim_start_matches("http://").parse().unwrap();
    let first = std::thread::spawn(move || http(&a_addr, "GET", "/org/fleet/resolve/main/model.safetensors", &[]));
    // Wait until A holds the lease and the upstream stalls mid-body.
    let start = Instant::now();
    while !s3.object_path(&lease).exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "A never took the lease");
        std::thread::sleep(Duration::from_millis(20));
    }
    // … and has uploaded its first part of a multipart upload it cannot complete.
    while !s3
        .requests()
        .iter()
        .any(|r| r.starts_with("PUT") && r.contains("partNumber=1"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "A never uploaded a part: {:?}",
            s3.requests()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s3.object_path(&key).exists(), "a partial blob is visible");
    a.kill().unwrap();
    let _ = a.wait();
    let killed_at = Instant::now();
    let got = first.join().unwrap();
    assert!(
        got.map(|r| r.body.len() < big.len()).unwrap_or(true),
        "A's client got everything?"
    );
    assert!(
        !s3.object_path(&key).exists(),
        "a partial blob is visible after the kill"
    );

    let b_addr: std::net::SocketAddr = b_url.trim_start_matches("http://").parse().unwrap();
    let r = http(&b_addr, "GET", "/org/fleet/resolve/main/model.safetensors", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, big);
    // B waited for A's lease to lapse (3 s from its last renewal), no longer than a little more.
    let waited = killed_at.elapsed();
    assert!(waited < Duration::from_secs(10), "blocked {waited:?}");
    assert_eq!(std::fs::read(s3.object_path(&key)).unwrap(), big);
    assert_eq!(
        content_gets(&hub).values().sum::<usize>(),
        2,
        "{:?}",
        content_gets(&hub)
    );
    let _ = b.kill();
    let _ = b.wait();
}

#[test]
fn with_the_upstream_unreachable_a_replica_serves_what_the_store_holds() {
    let hub = FakeHub::start();
    hub.commit(RepoKind::Model, "org/fleet", "main", files());
    let s3 = S3Server::start();
    let filler = pulling_replica(&s3, "down", &hub, Duration::from_secs(30));
    let r = http(&filler.addr, "GET", "/org/fleet/resolve/main/config.json", &[]).unwrap();
    assert_eq!(r.status, 200);
    drop(filler);
    // An upstream nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut c = replica_config(&s3, "down");
    c.upstream = Some(
        HubBuilder::new(dead_url, "/unused")
            .offline(false)
            .retry(hubcache::hub::RetryPolicy::none()),
    );
    let m = Replica::start(c).unwrap();
    let r = http(&m.addr, "GET", "/org/fleet/resolve/main/config.json", &[]).unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &files()[0].1[..]));
    // A miss fails with a Hub-style error, not a hang.
    let r = http(&m.addr, "GET", "/org/fleet/resolve/main/model.safetensors", &[]).unwrap();
    assert!(r.status >= 400, "{}", r.status);
    assert!(!r.header("x-error-message").is_empty());
}

#[test]
fn a_miss_streams_to_its_client_while_it_is_uploaded() {
    use std::io::{Read, Write};
    let hub = FakeHub::start();
    hub.commit(RepoKind::Model, "org/fleet", "main", files());
    // The upstream sends 10 MiB, then stalls: whatever the client has by then was streamed.
    hub.inject(
        FaultRule::new("/", Fault::Stall { after: 10 << 20 })
            .on_method("GET")
            .repeat(1),
    );
    let s3 = S3Server::start();
    let m = pulling_replica(&s3, "live", &hub, Duration::from_secs(30));
    let big = files()[2].1.clone();
    let mut tcp = std::net::TcpStream::connect(m.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        tcp,
        "GET /org/fleet/resolve/main/model.safetensors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    // Past the first 8 MiB part, so the multipart upload is under way.
    while got.len() < (9 << 20) {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&got[..split]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {}", big.len())), "{head}");
    let body = &got[split + 4..];
    assert_eq!(body, &big[..body.len()], "streamed bytes differ");
    // The client has megabytes while the store has no blob: it was streamed, not stored first.
    assert!(!s3.object_path(&format!("live/blobs/{}", sha256_hex(&big))).exists());
    let reqs = s3.requests();
    assert!(reqs.iter().any(|r| r.contains("uploads")), "{reqs:?}");
}
