use std::time::{Duration, Instant};

use hubcache_mirror::store::s3::{fill, S3Store};
use hubcache_s3_tests::{http, replica_config, Fault, FaultKind, Replica, S3Server};

use crate::common::{bundle, files, filled_cache};

const BIG: &str = "/org/fleet/resolve/main/model.safetensors";

/// A store with `org/fleet` imported under `prefix`, and a replica over it (S3 I/O timeout `io`).
fn setup(prefix: &str, io: Duration) -> (S3Server, Replica, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let (_hub, commit) = filled_cache(&cache);
    let b = bundle(&cache, &commit, &work.path().join("b.bundle"));
    let s3 = S3Server::start();
    let config = s3.config(prefix);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let st = S3Store::open(&config).await.unwrap();
        fill::import_bundle(&st, &b).await.unwrap();
    });
    let mut c = replica_config(&s3, prefix);
    if let Some(s) = &mut c.s3 {
        s.io_timeout = io;
    }
    let m = Replica::start(c).unwrap();
    (s3, m, work)
}

fn fault(method: &'static str, path: &str, kind: FaultKind, times: usize) -> Fault {
    Fault {
        method: Some(method),
        path_contains: path.into(),
        kind,
        times,
    }
}

#[test]
fn slowdown_500_and_resets_are_retried_and_the_bytes_are_right() {
    let (s3, m, _w) = setup("f", Duration::from_secs(5));
    let big = files()[2].1.clone();
    for kind in [FaultKind::Status(503), FaultKind::Status(500), FaultKind::Reset] {
        s3.inject(fault("GET", "/blobs/", kind, 2));
        s3.inject(fault("GET", "/snapshots/", kind, 1));
        let r = http(&m.addr, "GET", BIG, &[]).unwrap();
        assert_eq!(r.status, 200, "{kind:?}");
        assert_eq!(r.body, big, "{kind:?}");
        let fired = s3.fault_log();
        assert!(
            fired
                .iter()
                .filter(|f| f.contains("/blobs/") && f.starts_with(&format!("{kind:?}")))
                .count()
                == 2,
            "{kind:?}: {fired:?}"
        );
    }
}

#[test]
fn a_persistent_s3_failure_is_a_hub_style_5xx_never_a_short_200() {
    let (s3, m, _w) = setup("p", Duration::from_secs(5));
    s3.inject(fault("GET", "/blobs/", FaultKind::Status(503), 100));
    let r = http(&m.addr, "GET", BIG, &[]).unwrap();
    assert!(r.status >= 500, "{}", r.status);
    assert!(r.header("x-error-message").contains("store"), "{:?}", r.headers);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["error"].is_string());
    // Bounded: the configured retries, then the answer.
    let fired = s3.fault_log().len();
    assert!((2..=6).contains(&fired), "{fired} attempts");
    // Metadata failing the same way: a 5xx too, not a 404.
    s3.inject(fault("GET", "/refs/", FaultKind::Status(500), 100));
    let r = http(&m.addr, "GET", "/org/fleet/resolve/main/config.json", &[]).unwrap();
    assert!(r.status >= 500, "{}", r.status);
}

#[test]
fn a_stalled_or_cut_body_never_reaches_the_client_as_complete() {
    let (s3, m, _w) = setup("s", Duration::from_secs(2));
    let big = files()[2].1.clone();
    // Cut mid-body: resumed by a ranged retry, or the client sees a short body; never wrong bytes.
    s3.inject(fault("GET", "/blobs/", FaultKind::CutBody, 1));
    let r = http(&m.addr, "GET", BIG, &[]);
    assert!(
        s3.fault_log().iter().any(|f| f.starts_with("CutBody")),
        "{:?}",
        s3.fault_log()
    );
    if let Ok(a) = r {
        if a.status == 200 && a.body.len() == big.len() {
            assert_eq!(a.body, big, "wrong bytes");
        }
        let len: usize = a.header("content-length").parse().unwrap_or(0);
        assert!(a.status != 200 || a.body.len() < len || a.body == big);
    }
    // Stalled: bounded by the I/O timeout, then a 5xx.
    s3.inject(fault("GET", "/blobs/", FaultKind::Stall(Duration::from_secs(30)), 100));
    let t = Instant::now();
    let r = http(&m.addr, "GET", BIG, &[]).unwrap();
    assert!(r.status >= 500, "{}", r.status);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(s3.fault_log().iter().any(|f| f.starts_with("Stall")));
}
