use hubcache::{CommitHash, Repo, RepoPath};
use hubcache_mirror::store::{BlobRef, FileState, FsStore};
use hubcache_test_support::{git_blob_sha1, sha256_hex};

use crate::common::{client, etag_of, file_request, http, seed_cache, TestMirror};

const CONFIG: &[u8] = b"{\"hidden_size\": 8}\n";

fn weights() -> Vec<u8> {
    (0..10_000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn head_and_get_answer_like_the_hub_with_ranges() {
    let cache = tempfile::tempdir().unwrap();
    let w = weights();
    let commit = seed_cache(
        cache.path(),
        "org/model",
        &[("config.json", CONFIG), ("model.safetensors", &w)],
        false,
    );
    let m = TestMirror::offline(cache.path());
    let path = "/org/model/resolve/main/model.safetensors";

    let head = http(&m.addr, "HEAD", path, &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-repo-commit"), commit);
    assert_eq!(head.header("etag"), format!("\"{}\"", sha256_hex(&w)));
    assert_eq!(head.header("x-linked-etag"), format!("\"{}\"", sha256_hex(&w)));
    assert_eq!(head.header("content-length"), w.len().to_string());
    assert_eq!(head.header("accept-ranges"), "bytes");
    assert!(head.body.is_empty());

    let full = http(&m.addr, "GET", path, &[], b"");
    assert_eq!((full.status, &full.body), (200, &w));

    let part = http(&m.addr, "GET", path, &[("Range", "bytes=2-5")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), format!("bytes 2-5/{}", w.len()));
    assert_eq!(part.body, &w[2..=5]);

    let suffix = http(&m.addr, "GET", path, &[("Range", "bytes=-3")], b"");
    assert_eq!((suffix.status, suffix.body.as_slice()), (206, &w[w.len() - 3..]));

    let open = http(&m.addr, "GET", path, &[("Range", "bytes=9990-")], b"");
    assert_eq!((open.status, open.body.as_slice()), (206, &w[9990..]));

    let past = http(&m.addr, "GET", path, &[("Range", "bytes=10000-")], b"");
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), "bytes */10000");

    // A HEAD with a range describes the whole file, as the Hub does.
    let head_range = http(&m.addr, "HEAD", path, &[("Range", "bytes=2-5")], b"");
    assert_eq!((head_range.status, head_range.header("content-length")), (200, "10000"));

    let small = http(&m.addr, "GET", "/org/model/resolve/main/config.json", &[], b"");
    assert_eq!(small.header("etag"), format!("\"{}\"", git_blob_sha1(CONFIG)));
    assert!(small.header("x-linked-etag").is_empty());

    let missing = http(&m.addr, "GET", "/org/model/resolve/main/nope.bin", &[], b"");
    assert_eq!((missing.status, missing.header("x-error-code")), (404, "EntryNotFound"));
    let no_repo = http(&m.addr, "GET", "/org/other/resolve/main/config.json", &[], b"");
    assert_eq!((no_repo.status, no_repo.header("x-error-code")), (401, "RepoNotFound"));
    let bad_rev = http(&m.addr, "GET", "/org/model/resolve/v9/config.json", &[], b"");
    assert_eq!(
        (bad_rev.status, bad_rev.header("x-error-code")),
        (404, "RevisionNotFound")
    );
    let traversal = http(
        &m.addr,
        "GET",
        "/org/model/resolve/main/..%2F..%2Fetc%2Fpasswd",
        &[],
        b"",
    );
    assert_eq!(traversal.status, 400);
}

#[test]
fn hubcache_client_downloads_through_the_mirror() {
    let cache = tempfile::tempdir().unwrap();
    let w = weights();
    let commit = seed_cache(cache.path(), "org/model", &[("model.safetensors", &w)], false);
    let m = TestMirror::offline(cache.path());
    let dest = tempfile::tempdir().unwrap();
    let p = client(&m.url, dest.path())
        .download_file(&file_request("org/model", "main", "model.safetensors"))
        .unwrap();
    assert!(p.to_string_lossy().contains(&commit));
    assert_eq!(std::fs::read(p).unwrap(), w);
}

/// Store describe: a symlinked entry is named by its blob, a copied one is hashed as the Hub
/// would name it; both answer the same metadata over HTTP.
#[test]
fn store_describes_symlinked_and_copied_files_alike() {
    let w = weights();
    let files: &[(&str, &[u8])] = &[("config.json", CONFIG), ("sub/model.safetensors", &w)];
    let linked = tempfile::tempdir().unwrap();
    let copied = tempfile::tempdir().unwrap();
    let commit = seed_cache(linked.path(), "org/model", files, false);
    assert_eq!(seed_cache(copied.path(), "org/model", files, true), commit);
    let repo = Repo::model("org/model").unwrap();
    let c = CommitHash::new(&commit).unwrap();
    for root in [linked.path(), copied.path()] {
        let store = FsStore::new(root);
        for (path, content) in files {
            let FileState::Cached(f) = store.file(&repo, &c, &RepoPath::new(path).unwrap()) else {
                panic!("{path} not cached in {}", root.display())
            };
            assert_eq!(f.meta.etag(), etag_of(path, content), "{path}");
            assert_eq!(f.meta.content_size(), content.len() as u64);
            let BlobRef::File(disk) = &f.blob else { panic!() };
            assert_eq!(std::fs::read(disk).unwrap(), *content);
        }
        assert_eq!(
            store.file(&repo, &c, &RepoPath::new("absent.txt").unwrap()),
            FileState::Unknown
        );
        let listed = store.cached_files(&repo, &c);
        assert_eq!(listed.len(), 2);
    }
    // A `.no_exist` marker is a known absence.
    let marker = linked
        .path()
        .join(format!("models--org--model/.no_exist/{commit}/gone.txt"));
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, b"").unwrap();
    let store = FsStore::new(linked.path());
    assert_eq!(
        store.file(&repo, &c, &RepoPath::new("gone.txt").unwrap()),
        FileState::Missing
    );

    let a = TestMirror::offline(linked.path());
    let b = TestMirror::offline(copied.path());
    for path in ["config.json", "sub/model.safetensors"] {
        let url = format!("/org/model/resolve/main/{path}");
        let (x, y) = (
            http(&a.addr, "HEAD", &url, &[], b""),
            http(&b.addr, "HEAD", &url, &[], b""),
        );
        assert_eq!(x.status, 200);
        for h in ["etag", "x-linked-etag", "content-length", "x-repo-commit"] {
            assert_eq!(x.header(h), y.header(h), "{path}: {h}");
        }
    }
    let tree = |m: &TestMirror| {
        http(
            &m.addr,
            "GET",
            "/api/models/org/model/tree/main?recursive=true",
            &[],
            b"",
        )
        .json()
    };
    assert_eq!(tree(&a), tree(&b));
}
