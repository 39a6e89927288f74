//! Cache fixtures and Python checks shared by the `cache` and `eviction` tests.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubcache_test_support::{git_blob_sha1, sha256_hex};
use serde_json::Value;

/// Bytes that do not compress and differ per seed.
pub fn noise(len: usize, seed: u64) -> Bytes {
    let mut s = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// Every path under `cache` (except `.locks`) with its size, to prove nothing changed.
pub fn tree(cache: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    walk(cache, cache, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == ".locks" {
            continue;
        }
        let meta = fs::symlink_metadata(&p).unwrap();
        out.insert(rel, meta.len());
        if meta.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// Python's `scan_cache_dir()` in the JSON shape of `hubcache cache ls --json`.
pub const PY_SCAN: &str = r#"
import json, os
from huggingface_hub import scan_cache_dir
info = scan_cache_dir(os.environ["HF_HUB_CACHE"])
def f(x):
    return {"file_name": x.file_name, "file_path": str(x.file_path), "blob_path": str(x.blob_path),
            "size_on_disk": x.size_on_disk, "blob_last_accessed": x.blob_last_accessed,
            "blob_last_modified": x.blob_last_modified}
def rev(r):
    return {"commit_hash": r.commit_hash, "snapshot_path": str(r.snapshot_path), "size_on_disk": r.size_on_disk,
            "nb_files": r.nb_files, "refs": sorted(r.refs), "last_modified": r.last_modified,
            "files": sorted((f(x) for x in r.files), key=lambda d: d["file_path"])}
def repo(r):
    return {"repo_id": r.repo_id, "repo_type": r.repo_type, "repo_path": str(r.repo_path),
            "size_on_disk": r.size_on_disk, "nb_files": r.nb_files, "last_accessed": r.last_accessed,
            "last_modified": r.last_modified, "refs": {k: v.commit_hash for k, v in r.refs.items()},
            "revisions": sorted((rev(x) for x in r.revisions), key=lambda d: d["commit_hash"])}
print(json.dumps({
    "size_on_disk": info.size_on_disk,
    "repos": sorted((repo(r) for r in info.repos), key=lambda d: d["repo_type"] + "/" + d["repo_id"]),
    "incomplete_files": sorted(({"file_path": str(x.file_path), "size_on_disk": x.size_on_disk}
                                for x in info.incomplete_files), key=lambda d: d["file_path"]),
    "warnings": sorted(str(w) for w in info.warnings),
    "cache_dir": str(info.cache_dir),
}))
"#;

/// Loads every file of every cached revision offline with `hf_hub_download` (by commit and by
/// each ref) and checks its bytes against its blob name.
pub const PY_LOAD_ALL: &str = r#"
import hashlib, json, os
from huggingface_hub import scan_cache_dir, hf_hub_download
info = scan_cache_dir(os.environ["HF_HUB_CACHE"])
assert not info.warnings, [str(w) for w in info.warnings]
loaded = 0
for repo in info.repos:
    for rev in repo.revisions:
        for f in rev.files:
            name = f.file_path.relative_to(rev.snapshot_path).as_posix()
            for revision in [rev.commit_hash, *rev.refs]:
                p = hf_hub_download(repo.repo_id, name, repo_type=repo.repo_type, revision=revision)
                data = open(p, "rb").read()
                etag = os.path.basename(f.blob_path)
                if len(etag) == 64:
                    digest = hashlib.sha256(data).hexdigest()
                else:
                    digest = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                assert digest == etag, (p, digest, etag)
                loaded += 1
print(json.dumps({"loaded": loaded, "repos": sorted(r.cache_id for r in info.repos)}))
"#;

/// Compares JSON values, floats within 1 µs, naming the first difference.
pub fn assert_same(rs: &Value, py: &Value, at: &str) {
    match (rs, py) {
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<&String> = a.keys().collect();
            let mut kb: Vec<&String> = b.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "keys differ at {at}");
            for k in ka {
                assert_same(&a[k], &b[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "lengths differ at {at}: {rs} vs {py}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((x - y).abs() < 1e-6, "{at}: {x} vs {y}");
        }
        _ => assert_eq!(rs, py, "{at}"),
    }
}

/// Polls until a `*.incomplete` file appears under `blobs`.
pub fn wait_for_incomplete(blobs: &Path) -> PathBuf {
    let start = Instant::now();
    loop {
        if let Some(p) = fs::read_dir(blobs).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".incomplete") && !p.to_string_lossy().contains("stale"))
        }) {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no download started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shared blob store built by hand (shared-blob-store.md): two repos link one payload, one
/// payload is unreferenced.
pub fn shared_store_fixture(fx_cache: &Path) -> (PathBuf, PathBuf, String) {
    let payload_bytes = noise(40_000, 5);
    let sha = sha256_hex(&payload_bytes);
    let xet1 = format!("ab{}", &sha256_hex(b"xet one")[2..]);
    let xet2 = format!("cd{}", &sha256_hex(b"xet two")[2..]);
    let store = fx_cache.join("blobs");
    fs::create_dir_all(store.join("ab")).unwrap();
    fs::create_dir_all(store.join("cd")).unwrap();
    fs::write(store.join(".huggingface-shared-blobs"), "1\n").unwrap();
    let p1 = store.join("ab").join(&xet1);
    fs::write(&p1, &payload_bytes).unwrap();
    fs::set_permissions(&p1, fs::Permissions::from_mode(0o444)).unwrap();
    let p2 = store.join("cd").join(&xet2);
    fs::write(&p2, b"nobody links me").unwrap();
    fs::write(store.join("cd").join(format!("{xet2}.refs")), "").unwrap();
    let mut manifest = String::new();
    for (i, name) in ["models--org--a", "models--org--b"].iter().enumerate() {
        let repo = fx_cache.join(name);
        let commit = format!("{}", i + 1).repeat(40);
        fs::create_dir_all(repo.join("blobs")).unwrap();
        fs::create_dir_all(repo.join("snapshots").join(&commit)).unwrap();
        fs::create_dir_all(repo.join("refs")).unwrap();
        fs::write(repo.join("refs/main"), &commit).unwrap();
        symlink(format!("../../blobs/ab/{xet1}"), repo.join("blobs").join(&sha)).unwrap();
        symlink(
            format!("../../blobs/{sha}"),
            repo.join("snapshots").join(&commit).join("model.safetensors"),
        )
        .unwrap();
        let cfg = format!("{{\"repo\": {i}}}");
        let etag = git_blob_sha1(cfg.as_bytes());
        fs::write(repo.join("blobs").join(&etag), &cfg).unwrap();
        symlink(
            format!("../../blobs/{etag}"),
            repo.join("snapshots").join(&commit).join("config.json"),
        )
        .unwrap();
        manifest.push_str(&format!("{name}/blobs/{sha}\n"));
    }
    fs::write(store.join("ab").join(format!("{xet1}.refs")), manifest).unwrap();
    (p1, p2, sha)
}
