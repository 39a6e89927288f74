use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use hubcache_test_support::{FakeHub, Fault, FaultRule, RepoKind};

use crate::common::{client, config, file_request, http, TestMirror};

fn pull_through(hub: &FakeHub, cache: &std::path::Path, ref_ttl: Duration) -> TestMirror {
    let mut c = config(cache);
    c.upstream = Some(hubcache::HubBuilder::new(hub.url(), cache).offline(false));
    c.ref_ttl = ref_ttl;
    TestMirror::start(c)
}

#[test]
fn concurrent_clients_cause_one_upstream_transfer_per_file() {
    let hub = FakeHub::start();
    let big: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 251) as u8).collect();
    hub.commit(
        RepoKind::Model,
        "up/model",
        "main",
        vec![
            ("config.json".into(), Bytes::from_static(b"{\"up\": true}")),
            ("model.safetensors".into(), Bytes::from(big.clone())),
        ],
    );
    // Slow content answers upstream, so the clients surely overlap.
    hub.inject(
        FaultRule::new("/lfs/", Fault::Delay { millis: 500 })
            .on_method("GET")
            .repeat(100),
    );
    let cache = tempfile::tempdir().unwrap();
    let m = pull_through(&hub, cache.path(), Duration::from_secs(30));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let url = m.url.clone();
            std::thread::spawn(move || {
                let dest = tempfile::tempdir().unwrap();
                let p = client(&url, dest.path())
                    .download_file(&file_request("up/model", "main", "model.safetensors"))
                    .unwrap();
                std::fs::read(p).unwrap()
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), big);
    }
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for r in hub.requests().into_iter().filter(|r| r.is_content_get()) {
        *per_file.entry(r.path).or_default() += 1;
    }
    assert_eq!(per_file.len(), 1, "{per_file:?}");
    assert!(per_file.values().all(|n| *n == 1), "upstream transfers: {per_file:?}");

    // What the upstream lacks is a Hub-style error through the mirror.
    let r = http(&m.addr, "HEAD", "/up/model/resolve/main/nope.bin", &[], b"");
    assert_eq!((r.status, r.header("x-error-code")), (404, "EntryNotFound"));
    let r = http(&m.addr, "HEAD", "/up/absent/resolve/main/x", &[], b"");
    assert_eq!(r.status, 401);

    // The mirror's cache is a normal cache: hubcache reads it offline.
    let offline =
        hubcache::blocking::Hub::new(hubcache::HubBuilder::new(hub.url(), cache.path()).offline(true)).unwrap();
    let p = offline
        .download_file(&file_request("up/model", "main", "model.safetensors"))
        .unwrap();
    assert_eq!(std::fs::read(p).unwrap().len(), big.len());
}

fn revision_asks(hub: &FakeHub) -> usize {
    hub.requests()
        .iter()
        .filter(|r| r.path.contains("/revision/main"))
        .count()
}

#[test]
fn branch_answers_are_reused_for_the_ref_ttl() {
    let hub = FakeHub::start();
    let file = |v: &'static [u8]| vec![("config.json".to_string(), Bytes::from_static(v))];
    let first = hub.commit(RepoKind::Model, "up/model", "main", file(b"{\"v\": 1}"));
    let cache = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(3);
    let m = pull_through(&hub, cache.path(), ttl);
    let commit_of = || {
        http(&m.addr, "HEAD", "/up/model/resolve/main/config.json", &[], b"")
            .header("x-repo-commit")
            .to_string()
    };
    assert_eq!(commit_of(), first);
    let asked = revision_asks(&hub);
    assert_eq!(asked, 1);
    // The branch moves upstream; within the TTL the mirror keeps its answer without asking.
    let started = std::time::Instant::now();
    let second = hub.commit(RepoKind::Model, "up/model", "main", file(b"{\"v\": 2}"));
    assert_eq!(commit_of(), first);
    assert_eq!(revision_asks(&hub), asked);
    assert!(started.elapsed() < ttl, "too slow to test the TTL");
    // The answer was written to refs/ for offline clients.
    let ref_file = cache.path().join("models--up--model/refs/main");
    assert_eq!(std::fs::read_to_string(&ref_file).unwrap().trim(), first);
    std::thread::sleep(ttl.saturating_sub(started.elapsed()) + Duration::from_millis(200));
    assert_eq!(commit_of(), second);
    assert_eq!(revision_asks(&hub), asked + 1);
    assert_eq!(std::fs::read_to_string(&ref_file).unwrap().trim(), second);
}
