use hubcache_s3_tests::{http, replica_config, Replica, S3Server, BUCKET};
use hubcache_test_support::sha256_hex;

use crate::common::{bundle, files, filled_cache, hubcache_cmd};

/// A request: method, path, headers.
type Probe = (&'static str, String, Vec<(&'static str, &'static str)>);

/// Requests whose answers must not depend on the store (folder or S3) or the replica.
fn probes(commit: &str) -> Vec<Probe> {
    vec![
        ("HEAD", "/org/fleet/resolve/main/model.safetensors".into(), vec![]),
        ("GET", "/org/fleet/resolve/main/config.json".into(), vec![]),
        ("GET", format!("/org/fleet/resolve/{commit}/sub/dir/notes.txt"), vec![]),
        (
            "GET",
            "/org/fleet/resolve/main/model.safetensors".into(),
            vec![("Range", "bytes=5242000-5243999")],
        ),
        (
            "GET",
            "/org/fleet/resolve/main/model.safetensors".into(),
            vec![("Range", "bytes=-10")],
        ),
        (
            "GET",
            "/org/fleet/resolve/main/model.safetensors".into(),
            vec![("Range", "bytes=99999999-")],
        ),
        ("GET", "/org/fleet/resolve/main/missing.bin".into(), vec![]),
        ("GET", "/org/fleet/resolve/nobranch/config.json".into(), vec![]),
        ("GET", "/org/nothere/resolve/main/config.json".into(), vec![]),
        // Repo `org` is not `org/fleet`'s parent: its objects must not make it known.
        ("GET", "/org/resolve/main/config.json".into(), vec![]),
        ("GET", "/api/models/org/fleet".into(), vec![]),
        ("GET", "/api/models/org/fleet/revision/main?blobs=true".into(), vec![]),
        ("GET", "/api/models/org/fleet/tree/main?recursive=true".into(), vec![]),
        ("GET", "/api/models/org/fleet/tree/main/sub".into(), vec![]),
    ]
}

#[test]
fn bundle_import_then_two_replicas_answer_as_the_folder_mirror_does() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let (_hub, commit) = filled_cache(&cache);
    let b = bundle(&cache, &commit, &work.path().join("fleet.bundle"));
    let s3 = S3Server::start();
    let out = hubcache_cmd(&s3, work.path())
        .args(["import", b.to_str().unwrap(), "--store", &format!("s3://{BUCKET}/hf")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Each blob is one whole object any S3 client can read.
    let big = &files()[2].1;
    let blob = std::fs::read(s3.object_path(&format!("hf/blobs/{}", sha256_hex(big)))).unwrap();
    assert_eq!(&blob[..], &big[..]);

    let mut folder_config = hubcache_mirror::MirrorConfig::new(&cache);
    folder_config.drain = std::time::Duration::from_secs(1);
    let folder = Replica::start(folder_config).unwrap();
    let (a, b) = (Replica::over(&s3, "hf"), Replica::over(&s3, "hf"));
    for (method, path, headers) in probes(&commit) {
        let want = http(&folder.addr, method, &path, &headers).unwrap();
        for r in [&a, &b] {
            let got = http(&r.addr, method, &path, &headers).unwrap();
            assert_eq!(got.status, want.status, "{method} {path}");
            assert_eq!(got.headers_but_date(), want.headers_but_date(), "{method} {path}");
            assert_eq!(got.body, want.body, "{method} {path}");
        }
    }
    // The range answers are the right bytes, byte for byte.
    let r = http(
        &a.addr,
        "GET",
        "/org/fleet/resolve/main/model.safetensors",
        &[("Range", "bytes=5242000-5243999")],
    )
    .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        format!("bytes 5242000-5243999/{}", big.len())
    );
    assert_eq!(&r.body[..], &big[5242000..5244000]);
    let full = http(&b.addr, "GET", "/org/fleet/resolve/main/model.safetensors", &[]).unwrap();
    assert_eq!(full.status, 200);
    assert_eq!(&full.body[..], &big[..]);
}

#[test]
fn a_range_is_one_ranged_get_never_the_whole_object() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let (_hub, commit) = filled_cache(&cache);
    let b = bundle(&cache, &commit, &work.path().join("fleet.bundle"));
    let s3 = S3Server::start();
    let store = s3.config("r");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let st = hubcache_mirror::store::s3::S3Store::open(&store).await.unwrap();
        hubcache_mirror::store::s3::fill::import_bundle(&st, &b).await.unwrap();
    });
    let m = Replica::over(&s3, "r");
    s3.clear_requests();
    let r = http(
        &m.addr,
        "GET",
        "/org/fleet/resolve/main/model.safetensors",
        &[("Range", "bytes=100-199")],
    )
    .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], &files()[2].1[100..200]);
    let blob_gets: Vec<String> = s3.requests().into_iter().filter(|r| r.contains("/blobs/")).collect();
    assert_eq!(blob_gets.len(), 1, "{blob_gets:?}");
    // A HEAD answers from the manifest: no blob request at all.
    s3.clear_requests();
    let h = http(&m.addr, "HEAD", "/org/fleet/resolve/main/model.safetensors", &[]).unwrap();
    assert_eq!(h.status, 200);
    assert!(
        s3.requests().iter().all(|r| !r.contains("/blobs/")),
        "{:?}",
        s3.requests()
    );
}

#[test]
fn an_empty_prefix_is_initialised_and_a_foreign_or_newer_layout_refused() {
    let s3 = S3Server::start();
    // Empty: initialised with the marker.
    drop(Replica::over(&s3, "fresh"));
    let marker = std::fs::read_to_string(s3.object_path("fresh/hubcache-store.json")).unwrap();
    assert!(
        marker.contains("\"hubcache-store\"") && marker.contains("\"version\":1"),
        "{marker}"
    );

    // Another tool's objects, no marker.
    std::fs::create_dir_all(s3.object_path("other/data")).unwrap();
    std::fs::write(s3.object_path("other/data/part-0.parquet"), b"PAR1").unwrap();
    let e = Replica::start(replica_config(&s3, "other")).err().expect("refused");
    assert!(e.to_string().contains("another tool"), "{e}");

    // A future version.
    std::fs::create_dir_all(s3.object_path("future")).unwrap();
    std::fs::write(
        s3.object_path("future/hubcache-store.json"),
        br#"{"format":"hubcache-store","version":7}"#,
    )
    .unwrap();
    let e = Replica::start(replica_config(&s3, "future")).err().expect("refused");
    assert!(e.to_string().contains("version 7"), "{e}");
    assert!(!s3.object_path("other/hubcache-store.json").exists());
}

#[test]
fn serve_refuses_wrong_credentials_and_a_missing_bucket_at_start_up() {
    let s3 = S3Server::start();
    let home = tempfile::tempdir().unwrap();
    let out = hubcache_cmd(&s3, home.path())
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
        .args(["serve", "--addr", "127.0.0.1:0", "--store", &format!("s3://{BUCKET}/x")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refused access") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret-at-all"), "secret printed: {err}");
    assert!(!err.contains("listening"), "{err}");

    let out = hubcache_cmd(&s3, home.path())
        .args(["serve", "--addr", "127.0.0.1:0", "--store", "s3://no-such-bucket/x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("`no-such-bucket`") && err.contains("does not exist"),
        "{err}"
    );

    // `hubcache env` shows what was resolved, never the secret.
    let out = hubcache_cmd(&s3, home.path())
        .env("HUBCACHE_STORE", format!("s3://{BUCKET}/x"))
        .arg("env")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&s3.endpoint()) && text.contains("access key and secret key set"),
        "{text}"
    );
    assert!(!text.contains(hubcache_s3_tests::SECRET_KEY), "{text}");
}

#[test]
fn the_token_file_guards_an_s3_replica_as_it_guards_a_folder() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let (_hub, commit) = filled_cache(&cache);
    let b = bundle(&cache, &commit, &work.path().join("fleet.bundle"));
    let s3 = S3Server::start();
    let config = s3.config("tok");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let st = hubcache_mirror::store::s3::S3Store::open(&config).await.unwrap();
        hubcache_mirror::store::s3::fill::import_bundle(&st, &b).await.unwrap();
    });
    let mut c = replica_config(&s3, "tok");
    c.client_tokens = Some(vec!["hf_fleet_token".into()]);
    let m = Replica::start(c).unwrap();
    let path = "/org/fleet/resolve/main/config.json";
    assert_eq!(http(&m.addr, "GET", path, &[]).unwrap().status, 401);
    assert_eq!(
        http(&m.addr, "GET", path, &[("Authorization", "Bearer nope")])
            .unwrap()
            .status,
        401
    );
    let ok = http(&m.addr, "GET", path, &[("Authorization", "Bearer hf_fleet_token")]).unwrap();
    assert_eq!((ok.status, &ok.body[..]), (200, &files()[0].1[..]));
}
