//! The mirror under abuse (issue 10, section 4): connections that never send a request or drip
//! a header byte at a time must neither keep others from being served nor stay open.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubcache_test_support::{FakeHub, Fault, FaultRule, RepoKind};

use crate::common::{client, config, file_request, http, limits, read_answer, seed_cache, TestMirror};

/// Sockets of this process whose local port is `port` (the mirror's accepted connections).
#[cfg(target_os = "linux")]
fn server_sockets(port: u16) -> usize {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inodes: std::collections::HashSet<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            // 0A is LISTEN: the listener itself is not a connection.
            (local_port == port && f.get(3)? != &"0A").then(|| f.get(9).map(|s| s.to_string()))?
        })
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .filter(|i| inodes.contains(i))
        .count()
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Whether the server has closed `s` (EOF or reset); `false` while it is open and silent.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false, // An answer (e.g. 408) arrived; the close follows.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

fn small_cache() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    seed_cache(cache.path(), "org/model", &[("config.json", b"{\"ok\": 1}")], false);
    cache
}

#[test]
fn idle_and_dripping_connections_neither_starve_clients_nor_stay_open() {
    let cache = small_cache();
    let mut c = config(cache.path());
    // Bounds long enough that all 200 are surely open at once on a loaded machine, and far
    // enough apart to tell which one closed a connection.
    let (header, idle) = (Duration::from_secs(2), Duration::from_secs(8));
    c.limits = limits(header, idle, 1024);
    let m = TestMirror::start(c);
    let port = m.addr.port();
    let before = server_sockets(port);

    let opened = Instant::now();
    let mut idlers: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(m.addr).unwrap()).collect();
    let mut drippers: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(m.addr).unwrap();
            s.write_all(b"GET /org/model/resolve/main/config.json HTTP/1.1\r\nX-Drip: ")
                .unwrap();
            s
        })
        .collect();
    let writers: Vec<TcpStream> = drippers.iter().map(|s| s.try_clone().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let drip = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut writers = writers;
            while !stop.load(Ordering::Relaxed) {
                for w in &mut writers {
                    let _ = w.write_all(b"a"); // Fails once the server has closed it.
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    assert!(
        eventually(Duration::from_secs(10), || server_sockets(port) >= before + 200),
        "the 200 connections were not accepted: {} mirror-side sockets",
        server_sockets(port)
    );
    let during = server_sockets(port);

    // A normal client is served while the 200 are open.
    let dest = tempfile::tempdir().unwrap();
    let p = client(&m.url, dest.path())
        .download_file(&file_request("org/model", "main", "config.json"))
        .unwrap();
    assert_eq!(std::fs::read(p).unwrap(), b"{\"ok\": 1}");
    assert_eq!(
        http(&m.addr, "GET", "/org/model/resolve/main/config.json", &[], b"").status,
        200
    );

    // Then the server closes all 200: the drippers after the header bound (although bytes keep
    // coming), the idle ones after the idle bound, and not before it.
    for s in idlers.iter_mut().chain(drippers.iter_mut()) {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    let mut idle_closed_at = vec![None; idlers.len()];
    let mut drip_closed_at = vec![None; drippers.len()];
    let all_closed = eventually(Duration::from_secs(30), || {
        for (i, s) in idlers.iter_mut().enumerate() {
            if idle_closed_at[i].is_none() && closed_by_server(s) {
                idle_closed_at[i] = Some(opened.elapsed());
            }
        }
        for (i, s) in drippers.iter_mut().enumerate() {
            if drip_closed_at[i].is_none() && closed_by_server(s) {
                drip_closed_at[i] = Some(opened.elapsed());
            }
        }
        idle_closed_at.iter().all(Option::is_some) && drip_closed_at.iter().all(Option::is_some)
    });
    stop.store(true, Ordering::Relaxed);
    drip.join().unwrap();
    let after = server_sockets(port);
    let first_idle_close = idle_closed_at.iter().flatten().min().copied();
    let last_drip_close = drip_closed_at.iter().flatten().max().copied();
    eprintln!(
        "mirror-side sockets: {before} before, {during} with 200 idle/dripping clients, {after} after the bounds \
         (idle closed from {first_idle_close:?}, dripping closed by {last_drip_close:?})"
    );
    assert!(
        all_closed,
        "still open: {} idle, {} dripping",
        idle_closed_at.iter().filter(|c| c.is_none()).count(),
        drip_closed_at.iter().filter(|c| c.is_none()).count()
    );
    assert!(
        first_idle_close.unwrap() >= idle - Duration::from_millis(300),
        "idle closed early"
    );
    // Bytes keep arriving, so only the header bound can have closed them, well before the idle one.
    assert!(
        last_drip_close.unwrap() < idle - Duration::from_secs(1),
        "drippers outlived the header bound"
    );
    assert_eq!(after, before, "the server still holds the connections");
}

#[test]
fn keep_alive_idle_time_does_not_count_against_the_header_bound() {
    let cache = small_cache();
    let mut c = config(cache.path());
    c.limits = limits(Duration::from_secs(1), Duration::from_secs(10), 16);
    let m = TestMirror::start(c);
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = b"GET /org/model/resolve/main/config.json HTTP/1.1\r\nHost: m\r\n\r\n";
    s.write_all(req).unwrap();
    assert_eq!(read_answer(&mut s).status, 200);
    // Twice the header bound of silence, then a second request on the same connection.
    std::thread::sleep(Duration::from_secs(2));
    s.write_all(req).unwrap();
    let second = read_answer(&mut s);
    assert_eq!((second.status, second.body.as_slice()), (200, &b"{\"ok\": 1}"[..]));
}

#[test]
fn connection_cap_holds_extra_clients_in_the_backlog() {
    let cache = small_cache();
    let mut c = config(cache.path());
    let cap = 4;
    c.limits = limits(Duration::from_secs(30), Duration::from_secs(30), cap);
    let m = TestMirror::start(c);
    let port = m.addr.port();
    let mut holders: Vec<TcpStream> = (0..cap).map(|_| TcpStream::connect(m.addr).unwrap()).collect();
    assert!(eventually(Duration::from_secs(10), || server_sockets(port) == cap));
    // Three more clients connect (the kernel's backlog completes the handshake) and ask.
    let mut waiting: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(m.addr).unwrap();
            s.write_all(b"GET /org/model/resolve/main/config.json HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(server_sockets(port), cap, "accepted past the cap");
    for s in &mut waiting {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        assert!(
            matches!(s.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock),
            "answered past the cap"
        );
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    // One slot frees: the waiting clients are served through it, one after another.
    drop(holders.remove(0));
    for s in &mut waiting {
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("a waiting client was never served");
        assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));
        assert!(server_sockets(port) <= cap);
    }
    drop(holders);
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_idle_bound() {
    let cache = tempfile::tempdir().unwrap();
    let big: Vec<u8> = vec![7u8; 32 << 20];
    seed_cache(cache.path(), "org/big", &[("model.safetensors", &big)], false);
    let mut c = config(cache.path());
    c.limits = limits(Duration::from_secs(1), Duration::from_secs(1), 16);
    let m = TestMirror::start(c);
    let port = m.addr.port();
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.write_all(b"GET /org/big/resolve/main/model.safetensors HTTP/1.1\r\nHost: m\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).unwrap();
    // Never read again: once the socket buffers fill, nothing moves for the idle bound.
    assert!(
        eventually(Duration::from_secs(20), || server_sockets(port) == 0),
        "a stalled reader still holds its connection"
    );
}

#[test]
fn a_slow_upstream_fetch_is_not_cut_by_the_idle_bound() {
    let hub = FakeHub::start();
    hub.commit(
        RepoKind::Model,
        "up/model",
        "main",
        vec![("config.json".into(), Bytes::from_static(b"{\"up\": 1}"))],
    );
    hub.inject(FaultRule::new("config.json", Fault::Delay { millis: 2500 }).on_method("GET"));
    let cache = tempfile::tempdir().unwrap();
    let mut c = config(cache.path());
    c.upstream = Some(hubcache::HubBuilder::new(hub.url(), cache.path()).offline(false));
    c.limits = limits(Duration::from_secs(1), Duration::from_secs(1), 16);
    let m = TestMirror::start(c);
    let a = http(&m.addr, "GET", "/up/model/resolve/main/config.json", &[], b"");
    assert_eq!((a.status, a.body.as_slice()), (200, &b"{\"up\": 1}"[..]));
}
