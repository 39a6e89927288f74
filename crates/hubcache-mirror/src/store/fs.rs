//! The cache folder as the mirror sees it: which commit a revision names, which files a commit
//! has (from `trees/<commit>.json` and the snapshot folder), and where each file's bytes are.
//! Nothing here writes. Every call may block on the disk: run it on the blocking pool.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hubcache::cache::lookup;
use hubcache::cache::tree::{self, TreeFile};
use hubcache::cache::walk;
use hubcache::cache::CacheLayout;
use hubcache::repo::is_valid_etag;
use hubcache::{CommitHash, Repo, RepoPath, Revision};

use super::{BlobReader, BlobRef, BlobStream, CachedFile, FileState};

/// Read buffer when streaming a file.
const STREAM_CHUNK: usize = 1024 * 1024;

/// A parsed `trees/<commit>.json`, with the file stamp it was read at.
type Listing = Arc<BTreeMap<RepoPath, TreeFile>>;
/// A file's identity for memoisation: path, size, modification time.
type Stamp = (PathBuf, u64, Option<SystemTime>);

/// Read access to one cache folder.
pub struct FsStore {
    cache: CacheLayout,
    /// Parsed listings, reused while the file's size and mtime are unchanged: a snapshot of
    /// N files asks for the listing N times.
    listings: Mutex<HashMap<Stamp, Listing>>,
    /// Hashes of copied (non-symlink) snapshot files, keyed by path, size and mtime.
    hashed: Mutex<HashMap<Stamp, String>>,
}

impl FsStore {
    /// A store over the cache at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStore {
            cache: CacheLayout::new(root),
            listings: Mutex::new(HashMap::new()),
            hashed: Mutex::new(HashMap::new()),
        }
    }

    /// The cache layout.
    pub fn cache(&self) -> &CacheLayout {
        &self.cache
    }

    /// Whether the cache has any folder for this repo.
    pub fn has_repo(&self, repo: &Repo) -> bool {
        self.cache.repo(repo).root().join("snapshots").is_dir()
    }

    /// The commit a revision names, from the revision itself or `refs/`.
    pub fn resolve(&self, repo: &Repo, revision: &Revision) -> Option<CommitHash> {
        let layout = self.cache.repo(repo);
        let commit = lookup::resolve_commit(&layout, revision)?;
        layout.snapshot_dir(&commit).is_dir().then_some(commit)
    }

    /// The full listing of a commit when the cache knows it (`trees/<commit>.json`).
    pub fn tree_listing(&self, repo: &Repo, commit: &CommitHash) -> Option<Listing> {
        let path = self.cache.repo(repo).tree_file(commit);
        let meta = fs::metadata(&path).ok()?;
        let stamp: Stamp = (path.clone(), meta.len(), meta.modified().ok());
        if let Some(l) = self.listings.lock().ok()?.get(&stamp) {
            return Some(l.clone());
        }
        let listing = Arc::new(tree::read(&path)?);
        let mut cache = self.listings.lock().ok()?;
        // Older versions of this listing are dead weight.
        cache.retain(|k, _| k.0 != path);
        cache.insert(stamp, listing.clone());
        Some(listing)
    }

    /// Every file of the commit present in the cache, with its metadata.
    pub fn cached_files(&self, repo: &Repo, commit: &CommitHash) -> BTreeMap<RepoPath, CachedFile> {
        let layout = self.cache.repo(repo);
        let root = layout.snapshot_dir(commit);
        let listing = self.tree_listing(repo, commit).unwrap_or_default();
        let mut entries = Vec::new();
        // An unreadable part of the snapshot serves what could be read (as a listing would).
        let _ = walk::walk_snapshot(&root, &mut entries);
        let mut out = BTreeMap::new();
        for entry in entries {
            let path = entry.file_path;
            let Some(rel) = path
                .strip_prefix(&root)
                .ok()
                .and_then(|r| RepoPath::new(&r.to_string_lossy()).ok())
            else {
                continue;
            };
            if let Some(file) = self.describe(&path, &rel, listing.get(&rel)) {
                out.insert(rel, file);
            }
        }
        out
    }

    /// The state of one file.
    pub fn file(&self, repo: &Repo, commit: &CommitHash, path: &RepoPath) -> FileState {
        let layout = self.cache.repo(repo);
        if layout.no_exist_marker(commit, path).is_file() {
            return FileState::Missing;
        }
        let listing = self.tree_listing(repo, commit);
        let disk = layout.snapshot_file(commit, path);
        if hubcache::fs::is_file(&disk) {
            let known = listing.as_ref().and_then(|l| l.get(path));
            if let Some(f) = self.describe(&disk, path, known) {
                return FileState::Cached(f);
            }
        }
        match listing {
            Some(l) if !l.contains_key(path) => FileState::Missing,
            _ => FileState::Unknown,
        }
    }

    /// Metadata of a snapshot entry: from the listing, else from its blob name, else by hashing.
    fn describe(&self, disk: &Path, rel: &RepoPath, known: Option<&TreeFile>) -> Option<CachedFile> {
        let size = fs::metadata(disk).ok()?.len();
        if let Some(meta) = known {
            if meta.content_size() == size {
                return Some(CachedFile {
                    meta: meta.clone(),
                    blob: BlobRef::File(disk.to_path_buf()),
                });
            }
        }
        let etag = match fs::read_link(disk) {
            Ok(target) => target.file_name()?.to_string_lossy().into_owned(),
            Err(_) => self.hash_copied(disk, rel, size)?,
        };
        if !is_valid_etag(&etag) {
            return None;
        }
        let meta = TreeFile::for_blob(etag, size);
        Some(CachedFile {
            meta,
            blob: BlobRef::File(disk.to_path_buf()),
        })
    }

    /// A copied file (no-symlink caches) has no blob name: hash it once, as the Hub would.
    fn hash_copied(&self, disk: &Path, rel: &RepoPath, size: u64) -> Option<String> {
        let mtime = fs::metadata(disk).ok()?.modified().ok();
        let key = (disk.to_path_buf(), size, mtime);
        if let Some(h) = self.hashed.lock().ok()?.get(&key) {
            return Some(h.clone());
        }
        let digest = walk::entry_etag(disk, rel).ok()?;
        self.hashed.lock().ok()?.insert(key, digest.clone());
        Some(digest)
    }
}

impl BlobReader for FsStore {
    async fn read_range(&self, blob: &BlobRef, start: u64, len: u64) -> io::Result<BlobStream> {
        let path = match blob {
            BlobRef::File(path) => path.clone(),
            #[cfg(feature = "s3")]
            BlobRef::Object { .. } => return Err(io::Error::other("an S3 object read through the folder store")),
        };
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
            .await
            .map_err(io::Error::other)??;
        Ok(Box::pin(file_stream(file, start, len)))
    }
}

/// Streams `len` bytes from `start`, read on a blocking thread in large chunks (no zeroing,
/// no per-chunk task hop), with a small bounded queue so memory stays flat.
fn file_stream(
    mut file: std::fs::File,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = io::Result<bytes::Bytes>> {
    use std::io::{Read, Seek};
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(STREAM_CHUNK as u64);
            let mut buf = Vec::with_capacity(STREAM_CHUNK.min(want as usize));
            match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "cached file shrank while being served",
                    )));
                    return;
                }
                Ok(n) => {
                    remaining -= n as u64;
                    if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                        return; // The client went away.
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
