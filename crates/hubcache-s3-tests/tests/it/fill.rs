use hubcache_s3_tests::{S3Server, BUCKET};
use hubcache_test_support::sha256_hex;

use crate::common::{bundle, files, filled_cache, hubcache_cmd};

#[test]
fn a_tampered_bundle_makes_nothing_visible_and_an_intact_one_then_imports() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let (_hub, commit) = filled_cache(&cache);
    let good = bundle(&cache, &commit, &work.path().join("good.bundle"));
    let big = files()[2].1.clone();
    // Flip one byte in the middle of the big blob inside the tar.
    let mut raw = std::fs::read(&good).unwrap();
    let probe = &big[6 << 20..(6 << 20) + 64];
    let at = raw
        .windows(64)
        .position(|w| w == probe)
        .expect("blob bytes in the bundle");
    raw[at + 10] ^= 0xff;
    let bad = work.path().join("bad.bundle");
    std::fs::write(&bad, &raw).unwrap();

    let s3 = S3Server::start();
    let store = format!("s3://{BUCKET}/imp");
    let out = hubcache_cmd(&s3, work.path())
        .args(["import", bad.to_str().unwrap(), "--store", &store])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("does not match its id"), "{err}");
    let blob = s3.object_path(&format!("imp/blobs/{}", sha256_hex(&big)));
    assert!(!blob.exists(), "the tampered blob became visible");
    assert!(!s3.object_path("imp/repos").exists(), "manifests or refs were written");
    // The multipart upload was begun and aborted.
    let reqs = s3.requests();
    assert!(
        reqs.iter().any(|r| r.starts_with("POST") && r.contains("uploads")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter().any(|r| r.starts_with("DELETE") && r.contains("uploadId")),
        "{reqs:?}"
    );

    let out = hubcache_cmd(&s3, work.path())
        .args(["import", good.to_str().unwrap(), "--store", &store])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&blob).unwrap(), big);
    let reference = std::fs::read_to_string(s3.object_path("imp/repos/models--org--fleet/refs/main")).unwrap();
    assert_eq!(reference, commit);
    // Pushing the same repo from the cache finds every blob already stored.
    let out = hubcache_cmd(&s3, work.path())
        .args(["push", "org/fleet", "--store", &store, "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("0 blobs uploaded") && err.contains("3 already stored"),
        "{err}"
    );
}
