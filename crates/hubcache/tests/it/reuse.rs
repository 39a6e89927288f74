//! Reuse before transfer: a blob the cache already holds (another repo's `blobs/<etag>`, or a
//! payload of huggingface_hub 2.4.0's shared blob store named by the listing's Xet hash) is
//! linked instead of downloaded, after its bytes are hashed; the request log proves it.

#![allow(clippy::unwrap_used)]

use crate::common::fast_builder;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hubcache::cache::shared_store;
use hubcache::cache::tree::{self, TreeFile};
use hubcache::{blocking, FileRequest, Repo, RepoPath, Reporter, Revision, SnapshotRequest};
use hubcache_test_support::{git_blob_sha1, sha256_hex, FakeHub, LoggedRequest, RepoKind};

const WEIGHTS: &str = "model.safetensors";
const CONFIG: &str = "config.json";

fn weights() -> Bytes {
    Bytes::from((0..(1 << 20)).map(|i| (i * 7 % 253) as u8).collect::<Vec<u8>>())
}

fn config() -> Bytes {
    Bytes::from_static(b"{\"model_type\": \"llama\"}\n")
}

/// The same two files committed to `org/a` and `org/b`: (commit of a, commit of b).
fn seed(hub: &FakeHub) -> (String, String) {
    let files = || vec![(WEIGHTS.to_string(), weights()), (CONFIG.to_string(), config())];
    (
        hub.commit(RepoKind::Model, "org/a", "main", files()),
        hub.commit(RepoKind::Model, "org/b", "main", files()),
    )
}

/// Notices the library sends, for assertions.
#[derive(Default)]
struct Notes {
    debug: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
}

impl Reporter for Notes {
    fn debug(&self, message: &str) {
        self.debug.lock().unwrap().push(message.to_string());
    }
    fn warning(&self, message: &str) {
        self.warnings.lock().unwrap().push(message.to_string());
    }
}

impl Notes {
    fn debug_has(&self, needle: &str) -> bool {
        self.debug.lock().unwrap().iter().any(|m| m.contains(needle))
    }
    fn warned(&self, needle: &str) -> bool {
        self.warnings.lock().unwrap().iter().any(|m| m.contains(needle))
    }
}

fn client(hub: &FakeHub, cache: &Path, notes: &Arc<Notes>, copy_mode: bool) -> blocking::Hub {
    let builder = fast_builder(hub, cache, 2, Duration::from_secs(2))
        .disable_symlinks(copy_mode)
        .reporter(notes.clone());
    blocking::Hub::new(builder).unwrap()
}

fn snapshot(c: &blocking::Hub, repo: &str, force: bool) -> PathBuf {
    let mut req = SnapshotRequest::new(Repo::model(repo).unwrap(), Revision::main());
    req.force = force;
    c.snapshot(&req).unwrap()
}

fn content_gets(hub: &FakeHub) -> Vec<LoggedRequest> {
    hub.requests().into_iter().filter(|r| r.is_content_get()).collect()
}

fn blob(cache: &Path, repo: &str, etag: &str) -> PathBuf {
    cache
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("blobs")
        .join(etag)
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

fn xet_hash_of(content: &[u8]) -> String {
    sha256_hex(&[b"xet:".as_slice(), content].concat())
}

/// A marked shared store holding `content` as the payload `xet`; returns the payload path.
fn store_payload(cache: &Path, xet: &str, content: &[u8]) -> PathBuf {
    let store = shared_store::store_dir(cache);
    fs::create_dir_all(store.join(&xet[..2])).unwrap();
    fs::write(store.join(shared_store::MARKER_NAME), b"1\n").unwrap();
    let payload = store.join(&xet[..2]).join(xet);
    fs::write(&payload, content).unwrap();
    let mut perms = fs::metadata(&payload).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
    fs::set_permissions(&payload, perms).unwrap();
    payload
}

/// `trees/<commit>.json` of `repo` as Python 2.4.0 writes it for a Xet-served repo: the
/// weights carry `xet`.
fn write_listing(cache: &Path, repo: &str, commit: &str, xet: &str) {
    let mut listing = BTreeMap::new();
    let mut lfs = TreeFile::lfs(sha256_hex(&weights()), weights().len() as u64);
    lfs.xet_hash = Some(xet.to_string());
    listing.insert(RepoPath::new(WEIGHTS).unwrap(), lfs);
    listing.insert(
        RepoPath::new(CONFIG).unwrap(),
        TreeFile::regular(git_blob_sha1(&config()), config().len() as u64),
    );
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    tree::write(&folder.join("trees").join(format!("{commit}.json")), &listing).unwrap();
}

#[test]
fn reuse_hard_links_the_blobs_another_repo_holds_and_fetches_nothing() {
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let notes = Arc::new(Notes::default());
    let c = client(&hub, cache.path(), &notes, false);
    snapshot(&c, "org/a", false);
    assert_eq!(content_gets(&hub).len(), 2, "repo a is downloaded");
    hub.clear_requests();

    let dir = snapshot(&c, "org/b", false);
    assert_eq!(content_gets(&hub), vec![], "nothing fetched for repo b");
    assert_eq!(fs::read(dir.join(WEIGHTS)).unwrap(), weights());
    assert_eq!(fs::read(dir.join(CONFIG)).unwrap(), config());
    // LFS (sha256 etag) and regular (git-sha1 etag) blobs alike: the same inode.
    for etag in [sha256_hex(&weights()), git_blob_sha1(&config())] {
        let (a, b) = (blob(cache.path(), "org/a", &etag), blob(cache.path(), "org/b", &etag));
        assert!(fs::symlink_metadata(&b).unwrap().file_type().is_file());
        assert_eq!(inode(&a), inode(&b), "{etag} is a hard link");
        assert!(notes.debug_has(&format!("reused blob {etag}")), "reported");
    }
    let mut names: Vec<String> = fs::read_dir(blob(cache.path(), "org/b", "x").parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut etags = vec![sha256_hex(&weights()), git_blob_sha1(&config())];
    etags.sort();
    assert_eq!(names, etags, "nothing staged is left behind");
}

#[test]
fn reuse_single_file_download_and_copy_mode_copies() {
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let notes = Arc::new(Notes::default());
    snapshot(&client(&hub, cache.path(), &notes, false), "org/a", false);
    hub.clear_requests();

    // Copy mode: the bytes are copied (no link between repos), then moved into the snapshot.
    let c = client(&hub, cache.path(), &notes, true);
    let req = FileRequest::new(
        Repo::model("org/b").unwrap(),
        Revision::main(),
        RepoPath::new(WEIGHTS).unwrap(),
    );
    let path = c.download_file(&req).unwrap();
    assert_eq!(content_gets(&hub), vec![], "only the HEAD");
    assert_eq!(fs::read(&path).unwrap(), weights());
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
    let a = blob(cache.path(), "org/a", &sha256_hex(&weights()));
    assert_ne!(inode(&path), inode(&a), "a copy, not a link");
    assert!(notes.debug_has("(copy)"));
}

#[test]
fn reuse_refuses_a_corrupted_blob_of_another_repo() {
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let notes = Arc::new(Notes::default());
    let c = client(&hub, cache.path(), &notes, false);
    snapshot(&c, "org/a", false);
    let etag = sha256_hex(&weights());
    let a = blob(cache.path(), "org/a", &etag);
    // Same size, other bytes: only the hash can tell.
    let mut bad = weights().to_vec();
    bad[1000] ^= 0xff;
    fs::remove_file(&a).unwrap();
    fs::write(&a, &bad).unwrap();
    hub.clear_requests();

    let dir = snapshot(&c, "org/b", false);
    let gets = content_gets(&hub);
    assert_eq!(gets.len(), 1, "the weights are downloaded: {gets:?}");
    assert_eq!(fs::read(dir.join(WEIGHTS)).unwrap(), weights());
    assert_ne!(inode(&blob(cache.path(), "org/b", &etag)), inode(&a));
    assert_eq!(fs::read(&a).unwrap(), bad, "repo a's blob is left alone");
    assert!(notes.warned("does not hash to its name"));
    // The healthy regular blob was still reused.
    let cfg = git_blob_sha1(&config());
    assert_eq!(
        inode(&blob(cache.path(), "org/a", &cfg)),
        inode(&blob(cache.path(), "org/b", &cfg))
    );
}

#[test]
fn reuse_links_a_shared_store_payload_by_xet_hash_as_python_does() {
    let hub = FakeHub::start();
    let (_, commit_b) = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().canonicalize().unwrap();
    let xet = xet_hash_of(&weights());
    let payload = store_payload(&cache_dir, &xet, &weights());
    write_listing(&cache_dir, "org/b", &commit_b, &xet);
    let notes = Arc::new(Notes::default());
    let c = client(&hub, &cache_dir, &notes, false);

    let req = FileRequest::new(
        Repo::model("org/b").unwrap(),
        Revision::main(),
        RepoPath::new(WEIGHTS).unwrap(),
    );
    let path = c.download_file(&req).unwrap();
    assert_eq!(content_gets(&hub), vec![], "linked, not fetched");
    assert_eq!(fs::read(&path).unwrap(), weights());
    let etag = sha256_hex(&weights());
    let b = blob(&cache_dir, "org/b", &etag);
    assert_eq!(
        fs::read_link(&b).unwrap(),
        PathBuf::from(format!("../../blobs/{}/{xet}", &xet[..2]))
    );
    assert_eq!(
        fs::read_to_string(shared_store::manifest_path(&payload)).unwrap(),
        format!("models--org--b/blobs/{etag}\n")
    );
    assert_eq!(shared_store::store_target(&b, &cache_dir), Some(payload.clone()));
    assert!(notes.debug_has("the shared blob store"));
    let blobs_dir = b.parent().unwrap().to_path_buf();
    let names: Vec<String> = fs::read_dir(&blobs_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, std::slice::from_ref(&etag), "no temporary link left");

    // Repo a's listing has no Xet hash, but repo b's blob is a shared symlink to the same
    // content: repo a is linked to that payload the Python way, not copied.
    hub.clear_requests();
    let dir = snapshot(&c, "org/a", false);
    assert_eq!(
        content_gets(&hub).len(),
        1,
        "only the config, the weights come from the store"
    );
    assert_eq!(fs::read(dir.join(WEIGHTS)).unwrap(), weights());
    let a = blob(&cache_dir, "org/a", &etag);
    assert_eq!(shared_store::store_target(&a, &cache_dir), Some(payload.clone()));
    assert_eq!(
        shared_store::manifest_references(&payload, &cache_dir).unwrap(),
        [a, b].into_iter().collect()
    );
}

#[test]
fn reuse_refuses_a_shared_payload_with_wrong_bytes() {
    let hub = FakeHub::start();
    let (_, commit_b) = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().canonicalize().unwrap();
    let xet = xet_hash_of(&weights());
    let mut bad = weights().to_vec();
    bad[7] ^= 1;
    let payload = store_payload(&cache_dir, &xet, &bad);
    write_listing(&cache_dir, "org/b", &commit_b, &xet);
    let notes = Arc::new(Notes::default());
    let c = client(&hub, &cache_dir, &notes, false);

    let dir = snapshot(&c, "org/b", false);
    assert_eq!(content_gets(&hub).len(), 2, "both files downloaded");
    assert_eq!(fs::read(dir.join(WEIGHTS)).unwrap(), weights());
    let b = blob(&cache_dir, "org/b", &sha256_hex(&weights()));
    assert!(
        fs::symlink_metadata(&b).unwrap().file_type().is_file(),
        "a blob of its own"
    );
    assert!(!shared_store::manifest_path(&payload).exists(), "no reference recorded");
    assert!(notes.warned("does not hash to"));
}

#[test]
fn reuse_is_skipped_with_force() {
    let hub = FakeHub::start();
    let (_, commit_b) = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().canonicalize().unwrap();
    let notes = Arc::new(Notes::default());
    let c = client(&hub, &cache_dir, &notes, false);
    snapshot(&c, "org/a", false);
    let xet = xet_hash_of(&weights());
    let payload = store_payload(&cache_dir, &xet, &weights());
    write_listing(&cache_dir, "org/b", &commit_b, &xet);
    hub.clear_requests();

    let dir = snapshot(&c, "org/b", true);
    assert_eq!(content_gets(&hub).len(), 2, "force downloads everything");
    assert_eq!(fs::read(dir.join(WEIGHTS)).unwrap(), weights());
    let etag = sha256_hex(&weights());
    let b = blob(&cache_dir, "org/b", &etag);
    assert!(fs::symlink_metadata(&b).unwrap().file_type().is_file());
    assert_ne!(inode(&b), inode(&blob(&cache_dir, "org/a", &etag)));
    assert!(!shared_store::manifest_path(&payload).exists());
    assert!(!notes.debug_has("reused blob"));
}

#[test]
fn reuse_copies_a_shared_payload_in_copy_mode_without_touching_the_store() {
    let hub = FakeHub::start();
    seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().canonicalize().unwrap();
    let xet = xet_hash_of(&weights());
    let payload = store_payload(&cache_dir, &xet, &weights());
    // Repo a holds the weights as a shared link, as Python 2.4.0 leaves them.
    let etag = sha256_hex(&weights());
    let a = blob(&cache_dir, "org/a", &etag);
    fs::create_dir_all(a.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(format!("../../blobs/{}/{xet}", &xet[..2]), &a).unwrap();
    let manifest = shared_store::manifest_path(&payload);
    fs::write(&manifest, format!("models--org--a/blobs/{etag}\n")).unwrap();
    let notes = Arc::new(Notes::default());
    let c = client(&hub, &cache_dir, &notes, true);

    let req = FileRequest::new(
        Repo::model("org/b").unwrap(),
        Revision::main(),
        RepoPath::new(WEIGHTS).unwrap(),
    );
    let path = c.download_file(&req).unwrap();
    assert_eq!(content_gets(&hub), vec![], "copied from the payload");
    assert_eq!(fs::read(&path).unwrap(), weights());
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
    assert_ne!(inode(&path), inode(&payload), "a copy: copy mode links nothing");
    assert_eq!(
        fs::read_to_string(&manifest).unwrap(),
        format!("models--org--a/blobs/{etag}\n"),
        "the store is not touched"
    );
    assert!(notes.debug_has("(copy)"));
}

#[test]
fn reuse_leaves_the_shared_store_alone_when_it_is_disabled() {
    let hub = FakeHub::start();
    let (_, commit_b) = seed(&hub);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().canonicalize().unwrap();
    let xet = xet_hash_of(&weights());
    let payload = store_payload(&cache_dir, &xet, &weights());
    write_listing(&cache_dir, "org/b", &commit_b, &xet);
    let notes = Arc::new(Notes::default());
    // As huggingface_hub with HF_HUB_DISABLE_SHARED_BLOBS (or HF_HUB_DISABLE_XET) set.
    let builder = fast_builder(&hub, &cache_dir, 2, Duration::from_secs(2))
        .disable_shared_blobs(true)
        .reporter(notes.clone());
    let c = blocking::Hub::new(builder).unwrap();
    let req = FileRequest::new(
        Repo::model("org/b").unwrap(),
        Revision::main(),
        RepoPath::new(WEIGHTS).unwrap(),
    );
    let path = c.download_file(&req).unwrap();
    assert_eq!(content_gets(&hub).len(), 1, "downloaded, not linked");
    assert_eq!(fs::read(&path).unwrap(), weights());
    let b = blob(&cache_dir, "org/b", &sha256_hex(&weights()));
    assert!(
        fs::symlink_metadata(&b).unwrap().file_type().is_file(),
        "a blob of its own"
    );
    assert!(!shared_store::manifest_path(&payload).exists(), "no reference recorded");
}

#[test]
fn reuse_links_a_shared_payload_named_by_the_heads_xet_hash() {
    let hub = FakeHub::start();
    seed(&hub);
    // A Xet-backed repo: the HEAD names the Xet hash and a refresh route; no listing is cached.
    hub.set_xet_headers(true);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().canonicalize().unwrap();
    let xet = hubcache_test_support::fake_xet_hash(&weights());
    let payload = store_payload(&cache_dir, &xet, &weights());
    let notes = Arc::new(Notes::default());
    let c = client(&hub, &cache_dir, &notes, false);
    let req = FileRequest::new(
        Repo::model("org/b").unwrap(),
        Revision::main(),
        RepoPath::new(WEIGHTS).unwrap(),
    );
    let path = c.download_file(&req).unwrap();
    assert!(hub.requests().iter().any(|r| r.method == "HEAD"), "the HEAD was asked");
    assert_eq!(content_gets(&hub), vec![], "linked from the store, not fetched");
    assert_eq!(fs::read(&path).unwrap(), weights());
    let b = blob(&cache_dir, "org/b", &sha256_hex(&weights()));
    assert_eq!(shared_store::store_target(&b, &cache_dir), Some(payload));
}
