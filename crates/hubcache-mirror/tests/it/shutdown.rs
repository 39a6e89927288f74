use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{config, seed_cache, TestMirror};

#[test]
fn shutdown_lets_a_transfer_under_way_finish_then_stops_accepting() {
    let cache = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(24u32 << 20)).map(|i| (i % 241) as u8).collect();
    seed_cache(cache.path(), "org/big", &[("model.safetensors", &big)], false);
    let mut c = config(cache.path());
    c.drain = Duration::from_secs(30);
    let mut m = TestMirror::start(c);
    let idle = TcpStream::connect(m.addr).unwrap();
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /org/big/resolve/main/model.safetensors HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = vec![0u8; 64 * 1024];
    s.read_exact(&mut got).unwrap();
    m.signal_stop();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    got.extend(rest);
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(got[split + 4..].len(), big.len(), "the transfer was cut");
    assert!(got[split + 4..] == big[..]);
    // The idle connection does not hold the shutdown for the drain bound.
    assert!(
        m.wait_stopped(Duration::from_secs(10)),
        "shutdown waited on an idle connection"
    );
    drop(idle);
    assert!(TcpStream::connect(m.addr).is_err(), "still accepting after shutdown");
}
