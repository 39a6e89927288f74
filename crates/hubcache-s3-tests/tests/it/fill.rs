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

#[test]
fn two_replicas_adding_to_one_manifest_at_once_lose_no_entry() {
    use std::collections::BTreeMap;

    use hubcache::cache::tree::TreeFile;
    use hubcache::{CommitHash, Repo, RepoPath};
    use hubcache_mirror::store::s3::S3Store;

    let s3 = S3Server::start();
    let config = s3.config("race");
    let repo = Repo::model("org/race").unwrap();
    let commit = CommitHash::new(&"c".repeat(40)).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let a = std::sync::Arc::new(S3Store::open(&config).await.unwrap());
        let b = std::sync::Arc::new(S3Store::open(&config).await.unwrap());
        let mut tasks = Vec::new();
        for i in 0..24u32 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (repo, commit) = (repo.clone(), commit.clone());
            tasks.push(tokio::spawn(async move {
                let id = hubcache::digest::git_blob_sha1(&i.to_le_bytes());
                let one = BTreeMap::from([(RepoPath::new(&format!("f{i}.txt")).unwrap(), TreeFile::regular(id, 4))]);
                store.add_to_manifest(&repo, &commit, &one).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let fresh = S3Store::open(&config).await.unwrap();
        let m = fresh.manifest(&repo, &commit, true).await.unwrap().unwrap();
        assert_eq!(m.len(), 24, "entries lost: {:?}", m.keys().collect::<Vec<_>>());
        // Refs: the last of concurrent writers wins, and the ref names one of the commits written.
        let (c1, c2) = (
            CommitHash::new(&"1".repeat(40)).unwrap(),
            CommitHash::new(&"2".repeat(40)).unwrap(),
        );
        let (r1, r2) = tokio::join!(a.write_ref(&repo, "main", &c1), b.write_ref(&repo, "main", &c2));
        r1.unwrap();
        r2.unwrap();
        let now = fresh.resolve_ref(&repo, "main").await.unwrap().unwrap();
        assert!(now == c1 || now == c2);
    });
}
