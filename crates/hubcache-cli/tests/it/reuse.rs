//! Reuse before transfer beside the real Python huggingface_hub 2.4.0: a blob hubcache links
//! from Python's shared blob store is one Python reads offline and keeps consistent when it
//! deletes revisions (its own sweep). The Python parts are skipped outside CI without the venv.

#![allow(clippy::unwrap_used)]

use crate::common::cache_fixtures::noise;
use crate::common::{single_path, CacheEnv};

use std::fs;
use std::path::PathBuf;

use hubcache_test_support::{sha256_hex, FakeHub, RepoKind};

const WEIGHTS: &str = "model.safetensors";

/// `trees/<commit>.json` as Python writes it for a Xet-served repo: one LFS file with its Xet hash.
fn write_listing(folder: &std::path::Path, commit: &str, sha: &str, size: usize, xet: &str) {
    let pointer = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n");
    let blob_id = hubcache_test_support::git_blob_sha1(pointer.as_bytes());
    let json = format!(
        "{{\n \"format_version\": 1,\n \"files\": {{\n  \"{WEIGHTS}\": {{\n   \"size\": {size},\n   \
         \"blob_id\": \"{blob_id}\",\n   \"lfs_sha256\": \"{sha}\",\n   \"lfs_size\": {size},\n   \
         \"xet_hash\": \"{xet}\"\n  }}\n }}\n}}"
    );
    fs::create_dir_all(folder.join("trees")).unwrap();
    fs::write(folder.join("trees").join(format!("{commit}.json")), json).unwrap();
}

#[test]
fn reuse_from_the_shared_store_is_what_python_reads_and_sweeps() {
    let weights = noise(300_000, 11);
    let sha = sha256_hex(&weights);
    let xet = sha256_hex(&[b"xet:".as_slice(), &weights].concat());
    let hub = FakeHub::start();
    let files = || vec![(WEIGHTS.to_string(), weights.clone())];
    let commit_a = hub.commit(RepoKind::Model, "org/a", "main", files());
    let commit_b = hub.commit(RepoKind::Model, "org/b", "main", files());
    let env = CacheEnv::new(hub);
    let Some(_) = env.python.as_ref() else { return };

    // Repo a as Python 2.4.0 leaves it after a Xet download: its blob published to the store
    // by Python's own code (marker, payload mode, manifest line, symlink).
    env.ok(&["download", "org/a", WEIGHTS]);
    let blob_a = env.cache.join("models--org--a/blobs").join(&sha);
    let publish = format!(
        "from huggingface_hub.utils._shared_blobs import publish_blob_to_shared_store as p\n\
         assert p(blob_path={:?}, xet_hash={xet:?}, cache_dir={:?}, expected_size={})",
        blob_a.display().to_string(),
        env.cache.display().to_string(),
        weights.len()
    );
    env.py_stdout(&publish, true);
    let payload = env.cache.join("blobs").join(&xet[..2]).join(&xet);
    assert!(fs::symlink_metadata(&blob_a).unwrap().file_type().is_symlink());
    assert!(payload.is_file());

    // Repo b: hubcache finds the payload through the listing's Xet hash and links it.
    write_listing(&env.cache.join("models--org--b"), &commit_b, &sha, weights.len(), &xet);
    env.hub.clear_requests();
    let path = single_path(&env.ok(&["download", "org/b", WEIGHTS]));
    let gets: Vec<_> = env.hub.requests().into_iter().filter(|r| r.is_content_get()).collect();
    assert!(gets.is_empty(), "nothing fetched: {gets:?}");
    assert_eq!(fs::read(&path).unwrap(), weights);
    let blob_b = env.cache.join("models--org--b/blobs").join(&sha);
    assert_eq!(
        fs::read_link(&blob_b).unwrap(),
        PathBuf::from(format!("../../blobs/{}/{xet}", &xet[..2]))
    );
    let manifest = payload.with_file_name(format!("{xet}.refs"));
    assert_eq!(
        fs::read_to_string(&manifest).unwrap(),
        format!("models--org--a/blobs/{sha}\nmodels--org--b/blobs/{sha}\n")
    );

    // Python offline opens it; its scan sees one payload shared by two repos, no warning.
    let check = format!(
        "import hashlib, os\n\
         from huggingface_hub import hf_hub_download, scan_cache_dir\n\
         p = hf_hub_download('org/b', {WEIGHTS:?})\n\
         assert hashlib.sha256(open(p, 'rb').read()).hexdigest() == {sha:?}, p\n\
         info = scan_cache_dir()\n\
         assert not info.warnings, info.warnings\n\
         sizes = sorted((r.repo_id, r.size_on_disk) for r in info.repos)\n\
         assert sizes == [('org/a', {n}), ('org/b', {n})], sizes\n\
         assert info.size_on_disk == {n}, info.size_on_disk\n\
         print('ok')",
        n = weights.len()
    );
    assert_eq!(env.py_stdout(&check, true).trim(), "ok");

    // Python deletes repo a's revision: the payload stays, because hubcache's manifest line
    // is a valid reference for Python's sweep; repo b still opens offline.
    let delete = |commit: &str| {
        format!(
            "from huggingface_hub import scan_cache_dir\n\
             scan_cache_dir().delete_revisions({commit:?}).execute()"
        )
    };
    env.py_stdout(&delete(&commit_a), true);
    assert!(fs::symlink_metadata(&blob_a).is_err(), "repo a's link is gone");
    assert!(payload.is_file(), "still referenced by repo b");
    assert_eq!(
        fs::read_to_string(&manifest).unwrap(),
        format!("models--org--b/blobs/{sha}\n")
    );
    let reopen = format!(
        "import hashlib\nfrom huggingface_hub import hf_hub_download\n\
         p = hf_hub_download('org/b', {WEIGHTS:?})\n\
         assert hashlib.sha256(open(p, 'rb').read()).hexdigest() == {sha:?}\nprint('ok')"
    );
    assert_eq!(env.py_stdout(&reopen, true).trim(), "ok");

    // The last reference gone: Python's sweep collects the payload and its manifest.
    env.py_stdout(&delete(&commit_b), true);
    assert!(!payload.exists() && !manifest.exists(), "payload collected");
}
