use std::collections::BTreeSet;

use crate::common::{http, seed_cache, TestMirror};

/// The `next` URL's path and query from a `Link` header, if any.
fn next_link(link: &str) -> Option<String> {
    let url = link.strip_prefix('<')?.split_once(">; rel=\"next\"")?.0;
    let after_scheme = url.strip_prefix("http://")?;
    Some(after_scheme[after_scheme.find('/')?..].to_string())
}

#[test]
fn tree_pages_follow_link_headers_to_every_entry() {
    let cache = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..2100).map(|i| format!("shards/part-{i:05}.txt")).collect();
    let contents: Vec<Vec<u8>> = (0..2100).map(|i| format!("part {i}\n").into_bytes()).collect();
    let mut files: Vec<(&str, &[u8])> = names
        .iter()
        .map(String::as_str)
        .zip(contents.iter().map(Vec::as_slice))
        .collect();
    files.push(("README.md", b"# hi\n"));
    seed_cache(cache.path(), "org/many", &files, false);
    let m = TestMirror::offline(cache.path());

    let mut next = Some("/api/models/org/many/tree/main?recursive=true".to_string());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(path) = next {
        let a = http(&m.addr, "GET", &path, &[], b"");
        assert_eq!(a.status, 200, "{path}");
        let page = a.json();
        let page = page.as_array().unwrap();
        assert!(page.len() <= 1000);
        seen.extend(page.iter().map(|e| e["path"].as_str().unwrap().to_string()));
        next = next_link(a.header("link"));
        pages += 1;
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    // 2100 files, README.md and the `shards` folder, each exactly once.
    assert_eq!(seen.len(), 2102);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 2102);
    assert!(seen.contains(&"shards".to_string()) && seen.contains(&"README.md".to_string()));

    // Without `recursive`, the root lists the folder and the file only.
    let root = http(&m.addr, "GET", "/api/models/org/many/tree/main", &[], b"").json();
    let kinds: Vec<(String, String)> = root
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().into(), e["type"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("README.md".into(), "file".into()),
            ("shards".into(), "directory".into())
        ]
    );
    let missing = http(&m.addr, "GET", "/api/models/org/many/tree/main/nope", &[], b"");
    assert_eq!((missing.status, missing.header("x-error-code")), (404, "EntryNotFound"));
}

#[test]
fn repo_info_and_paths_info_describe_the_commit() {
    let cache = tempfile::tempdir().unwrap();
    let commit = seed_cache(
        cache.path(),
        "org/model",
        &[("config.json", b"{}"), ("model.safetensors", b"weights")],
        false,
    );
    let m = TestMirror::offline(cache.path());
    let info = http(
        &m.addr,
        "GET",
        "/api/models/org/model/revision/main?blobs=true",
        &[],
        b"",
    )
    .json();
    assert_eq!(info["sha"], commit.as_str());
    assert_eq!(info["id"], "org/model");
    let siblings = info["siblings"].as_array().unwrap();
    assert_eq!(siblings.len(), 2);
    let weights = siblings.iter().find(|s| s["rfilename"] == "model.safetensors").unwrap();
    assert_eq!(weights["size"], 7);
    assert_eq!(weights["lfs"]["sha256"], hubcache_test_support::sha256_hex(b"weights"));

    let json = http(
        &m.addr,
        "POST",
        "/api/models/org/model/paths-info/main",
        &[("Content-Type", "application/json")],
        br#"{"paths": ["config.json", "nope.txt"]}"#,
    )
    .json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["path"], "config.json");
    let form = http(
        &m.addr,
        "POST",
        "/api/models/org/model/paths-info/main",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"paths=model.safetensors&paths=config.json",
    )
    .json();
    assert_eq!(form.as_array().unwrap().len(), 2);
}
