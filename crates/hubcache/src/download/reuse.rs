//! Before a transfer: reuse what the cache already holds.
//!
//! Runs under the blob's etag lock, when the blob is missing from the repo's `blobs/` and
//! `force` is off. In this order:
//!
//! 1. **The shared blob store** of huggingface_hub 2.4.0 (`<cache>/blobs/<2 hex>/<xet hash>`,
//!    see [`crate::cache::shared_store`]), as Python's `try_link_from_shared_store`: only in
//!    symlink mode, with a marked store, a known size and the file's Xet hash from the commit's
//!    listing (`trees/<commit>.json`, written by the snapshot before its files are fetched).
//!    The per-repo blob becomes the relative symlink into the store, its `.refs` line appended
//!    first, under the payload's lock.
//! 2. **The same blob in another repo** of the cache (`<repo folder>/blobs/<etag>`: LFS
//!    sha256 and git-sha1 etags both name content): a regular file is hard-linked (copied when
//!    that fails or in copy mode); a blob that is itself a shared-store symlink is linked to the
//!    same payload the Python way, so the payload's manifest lists every repo that uses it and
//!    Python's sweep never removes a payload we still need (a hard link to the payload would
//!    survive a sweep too, but be counted twice and lose the sharing).
//! 3. Nothing matched: the caller downloads.
//!
//! Beyond Python, nothing is used before its bytes are hashed against the etag (sha256 or
//! git-sha1): a payload or blob that fails is reported and skipped, never linked. Hashing and
//! copying run on the blocking pool. Finding candidates costs one listing of the cache root
//! (remembered for a few seconds, so a big snapshot lists it a handful of times) and one
//! `lstat` per other repo and file.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use super::file::KnownFile;
use crate::cache::commit::LinkMode;
use crate::cache::shared_store::{self, FileIdentity};
use crate::cache::tree::{self, TreeFile};
use crate::cache::writer::{StagedBlob, Staging};
use crate::cache::BlobLock;
use crate::digest::{self, DigestKind};
use crate::download::{off_worker, Hub};
use crate::repo::{Repo, RepoPath};

/// How long a listing of the cache root's repo folders is trusted: a repo that appears
/// meanwhile is only missed (then downloaded), one that goes away only fails its `lstat`.
const FOLDER_LIST_TTL: Duration = Duration::from_secs(2);
/// Commit listings kept in memory for their Xet hashes (one per snapshot in flight).
const LISTING_MEMO: usize = 16;

/// Where a blob came from instead of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reused {
    /// Linked to this shared-store payload (the blob is a symlink).
    Shared {
        /// The payload.
        payload: PathBuf,
    },
    /// Hard-linked or copied from this file of another repo.
    Staged {
        /// The source file.
        from: PathBuf,
        /// Hard link or copy.
        how: Staging,
    },
}

impl Reused {
    /// Whether the blob is a regular file of this repo (in copy mode it may then be moved into
    /// the snapshot); a shared symlink is copied through instead, as Python does.
    pub(crate) fn is_regular_blob(&self) -> bool {
        matches!(self, Reused::Staged { .. })
    }
}

/// A same-etag blob found in another repo folder.
#[derive(Debug)]
enum Candidate {
    /// A regular file.
    Regular(PathBuf),
    /// A valid shared-store symlink: its payload.
    Shared(PathBuf),
}

impl Hub {
    /// Steps 1–2 of the module note; `None` means "download it". Never fails: a reuse that
    /// does not work out is reported (debug, or a warning for bytes that do not match their
    /// name) and the caller downloads as usual.
    pub(crate) async fn reuse_blob(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        blob: &BlobLock<'_>,
    ) -> Option<Reused> {
        // A name that names no digest cannot be checked, so nothing is reused for it.
        DigestKind::for_etag(&known.etag)?;
        let cache = self.cache.root().to_path_buf();
        let store_usable = !self.disable_shared_blobs
            && blob.link_mode() == LinkMode::Symlink
            && shared_store::is_store_dir(&shared_store::store_dir(&cache));
        let mut reused = None;
        if store_usable {
            reused = self.reuse_listed_payload(repo, path, known, blob, &cache).await;
        }
        if reused.is_none() {
            reused = self
                .reuse_other_repo(repo, path, known, blob, &cache, store_usable)
                .await;
        }
        let reused = reused?;
        let source = match &reused {
            Reused::Shared { payload } => format!("the shared blob store ({})", payload.display()),
            Reused::Staged { from, how } => format!(
                "{} ({})",
                from.display(),
                match how {
                    Staging::HardLink => "hard link",
                    Staging::Copy => "copy",
                }
            ),
        };
        self.reporter.debug(&format!(
            "reused blob {} for {path} of {repo} from {source}; nothing downloaded",
            known.etag
        ));
        let mut progress = self.reporter.file_started(path.as_str(), known.size);
        if let Some(size) = known.size {
            progress.advance(size);
        }
        progress.finish();
        Some(reused)
    }

    /// Step 1: the payload named by the listing's Xet hash, when it exists with the size.
    async fn reuse_listed_payload(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        blob: &BlobLock<'_>,
        cache: &Path,
    ) -> Option<Reused> {
        let size = known.size?;
        let xet = self.listed_xet_hash(repo, path, known).await?;
        let payload = shared_store::payload_path(cache, &xet)?;
        if !shared_store::usable_payload(&payload, size) {
            if std::fs::symlink_metadata(&payload).is_ok() {
                self.reporter.debug(&format!(
                    "the shared blob {} is not a readable file of {size} bytes; not using it",
                    payload.display()
                ));
            }
            return None;
        }
        self.link_payload(path, known, blob, payload).await
    }

    /// The Xet hash the HEAD or the listing gave, else the one the commit's cached listing
    /// gives `path` (if its etag is the one fetched).
    async fn listed_xet_hash(&self, repo: &Repo, path: &RepoPath, known: &KnownFile) -> Option<String> {
        if let Some(xet) = &known.xet_hash {
            return Some(xet.clone());
        }
        let tree_file = self.cache.repo(repo).tree_file(&known.commit);
        let listing = off_worker(move || Ok(cached_listing(&tree_file))).await.ok()??;
        let entry = listing.get(path)?;
        (entry.etag() == known.etag).then(|| entry.xet_hash.clone()).flatten()
    }

    /// Hashes `payload` against the etag, then links the blob to it (under the payload's lock,
    /// proving it is still the file that was hashed).
    async fn link_payload(
        &self,
        path: &RepoPath,
        known: &KnownFile,
        blob: &BlobLock<'_>,
        payload: PathBuf,
    ) -> Option<Reused> {
        let etag = known.etag.clone();
        let p = payload.clone();
        let checked = off_worker(move || {
            let identity = FileIdentity::of(&p)?;
            let matches = digest::file_matches_etag(&p, &etag)?;
            Ok((identity, matches))
        })
        .await;
        let identity = match checked {
            Ok((identity, Some(true))) => identity,
            Ok(_) => {
                self.reporter.warning(&format!(
                    "the shared blob {} does not hash to {} (wanted for {path}); not using it",
                    payload.display(),
                    known.etag
                ));
                return None;
            }
            Err(e) => {
                self.reporter
                    .debug(&format!("cannot check the shared blob {}: {e}", payload.display()));
                return None;
            }
        };
        let job = blob.shared_link(payload.clone(), identity);
        match off_worker(move || job.run().map_err(io::Error::other)).await {
            Ok(true) => Some(Reused::Shared { payload }),
            Ok(false) => None,
            Err(e) => {
                self.reporter.debug(&format!(
                    "could not link {} from the shared blob store: {e}",
                    blob.blob_path().display()
                ));
                None
            }
        }
    }

    /// Step 2: the same etag in another repo folder, checked, then linked or staged.
    async fn reuse_other_repo(
        &self,
        repo: &Repo,
        path: &RepoPath,
        known: &KnownFile,
        blob: &BlobLock<'_>,
        cache: &Path,
        store_usable: bool,
    ) -> Option<Reused> {
        let own = self.cache.repo(repo).root().to_path_buf();
        let (root, etag, size) = (cache.to_path_buf(), known.etag.clone(), known.size);
        let candidates = off_worker(move || Ok(candidates(&root, &own, &etag, size)))
            .await
            .unwrap_or_default();
        if !candidates.is_empty() {
            blob.clear_stale_stages();
        }
        for candidate in candidates {
            let reused = match candidate {
                Candidate::Shared(payload) if store_usable => self.link_payload(path, known, blob, payload).await,
                // Copy mode (or no marked store): the payload's bytes, never a hard link to it.
                Candidate::Shared(payload) => self.stage_from(path, known, blob, payload, false).await,
                Candidate::Regular(file) => {
                    let hard_link = blob.link_mode() == LinkMode::Symlink;
                    self.stage_from(path, known, blob, file, hard_link).await
                }
            };
            if reused.is_some() {
                return reused;
            }
        }
        None
    }

    /// Stages `src` beside the blob (hard link or copy), hashes the staged file and places it
    /// only when it matches the etag (and the size, when known).
    async fn stage_from(
        &self,
        path: &RepoPath,
        known: &KnownFile,
        blob: &BlobLock<'_>,
        src: PathBuf,
        hard_link: bool,
    ) -> Option<Reused> {
        let temp = blob.stage_path();
        let (from, etag, size) = (src.clone(), known.etag.clone(), known.size);
        let staged = off_worker(move || {
            let staged = StagedBlob::stage(&from, temp, hard_link)?;
            let len = std::fs::metadata(staged.path())?.len();
            let matches =
                size.is_none_or(|s| s == len) && digest::file_matches_etag(staged.path(), &etag)? == Some(true);
            Ok((staged, matches))
        })
        .await;
        let staged = match staged {
            Ok((staged, true)) => staged,
            Ok((staged, false)) => {
                drop(staged);
                self.reporter.warning(&format!(
                    "{} does not hash to its name {} (wanted for {path}); not reusing it \
                     (`hubcache cache verify` checks the whole cache)",
                    src.display(),
                    known.etag
                ));
                return None;
            }
            Err(e) => {
                self.reporter
                    .debug(&format!("cannot reuse {} for {path}: {e}", src.display()));
                return None;
            }
        };
        let how = staged.how();
        match blob.place_staged(staged) {
            Ok(_) => Some(Reused::Staged { from: src, how }),
            Err(e) => {
                self.reporter.debug(&format!(
                    "cannot place {} from {}: {e}",
                    blob.blob_path().display(),
                    src.display()
                ));
                None
            }
        }
    }
}

/// Same-etag blobs of the other repo folders of `cache` (sorted), `own` excluded, with the
/// right size when it is known. One `lstat` per repo folder.
fn candidates(cache: &Path, own: &Path, etag: &str, size: Option<u64>) -> Vec<Candidate> {
    let store_marked = shared_store::is_store_dir(&shared_store::store_dir(cache));
    let own = shared_store::normalize(own);
    let mut out = Vec::new();
    for folder in repo_folders(cache).iter() {
        if shared_store::normalize(folder) == own {
            continue;
        }
        let candidate = folder.join("blobs").join(etag);
        let Ok(meta) = std::fs::symlink_metadata(&candidate) else {
            continue;
        };
        let size_ok = |len: u64| size.is_none_or(|s| s == len);
        if meta.file_type().is_file() && size_ok(meta.len()) {
            out.push(Candidate::Regular(candidate));
        } else if meta.file_type().is_symlink() && store_marked {
            // Only a valid link into the marked store counts; any other symlink is not ours.
            let payload = shared_store::store_target(&candidate, cache);
            if let Some(payload) = payload.filter(|p| std::fs::metadata(p).is_ok_and(|m| size_ok(m.len()))) {
                out.push(Candidate::Shared(payload));
            }
        }
    }
    out
}

/// The repo folders (`models--…`, `datasets--…`, `spaces--…`) at the cache root, sorted;
/// remembered per cache for [`FOLDER_LIST_TTL`].
fn repo_folders(cache: &Path) -> Arc<Vec<PathBuf>> {
    type Memo = Mutex<HashMap<PathBuf, (Instant, Arc<Vec<PathBuf>>)>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some((at, folders)) = memo.lock().ok().and_then(|m| m.get(cache).cloned()) {
        if at.elapsed() < FOLDER_LIST_TTL {
            return folders;
        }
    }
    let mut folders: Vec<PathBuf> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(crate::cache::layout::parse_folder_name)
                .is_some_and(|(_, id)| !id.is_empty())
        })
        .map(|e| e.path())
        .collect();
    folders.sort();
    let folders = Arc::new(folders);
    if let Ok(mut m) = memo.lock() {
        m.insert(cache.to_path_buf(), (Instant::now(), folders.clone()));
    }
    folders
}

/// `trees/<commit>.json`, parsed once per version of the file (size and modification time)
/// for the life of the process, as Python keeps parsed listings.
fn cached_listing(tree_file: &Path) -> Option<Arc<std::collections::BTreeMap<RepoPath, TreeFile>>> {
    type Listing = Arc<std::collections::BTreeMap<RepoPath, TreeFile>>;
    type Memo = Mutex<HashMap<PathBuf, (u64, SystemTime, Listing)>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    let meta = std::fs::metadata(tree_file).ok()?;
    let version = (meta.len(), meta.modified().ok()?);
    if let Some((len, mtime, listing)) = memo.lock().ok().and_then(|m| m.get(tree_file).cloned()) {
        if (len, mtime) == version {
            return Some(listing);
        }
    }
    let listing = Arc::new(tree::read(tree_file)?);
    if let Ok(mut m) = memo.lock() {
        if m.len() >= LISTING_MEMO {
            m.clear();
        }
        m.insert(tree_file.to_path_buf(), (version.0, version.1, listing.clone()));
    }
    Some(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_skip_own_repo_wrong_sizes_and_foreign_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let etag = "a".repeat(64);
        for (repo, content) in [
            ("models--o--own", &b"12345"[..]),
            ("models--o--a", b"12345"),
            ("models--o--short", b"123"),
        ] {
            std::fs::create_dir_all(cache.join(repo).join("blobs")).unwrap();
            std::fs::write(cache.join(repo).join("blobs").join(&etag), content).unwrap();
        }
        std::fs::create_dir_all(cache.join("models--o--link/blobs")).unwrap();
        std::os::unix::fs::symlink(
            cache.join("models--o--a/blobs").join(&etag),
            cache.join("models--o--link/blobs").join(&etag),
        )
        .unwrap();
        std::fs::create_dir_all(cache.join("not-a-repo/blobs")).unwrap();
        std::fs::write(cache.join("not-a-repo/blobs").join(&etag), b"12345").unwrap();
        let found = candidates(cache, &cache.join("models--o--own"), &etag, Some(5));
        let paths: Vec<String> = found
            .iter()
            .map(|c| match c {
                Candidate::Regular(p) | Candidate::Shared(p) => p.strip_prefix(cache).unwrap().display().to_string(),
            })
            .collect();
        assert_eq!(paths, [format!("models--o--a/blobs/{etag}")]);
    }
}
