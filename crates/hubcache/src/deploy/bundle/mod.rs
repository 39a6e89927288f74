//! Bundles: one tar file carrying selected snapshots across an air gap, verified on arrival.
//!
//! Layout: `manifest.json` first (every repo's refs, snapshot entries and tree listings, and
//! every blob's size and sha256), then `blobs/<etag>` once per distinct blob, deduplicated
//! across revisions and repos. No symlinks travel: the importer rebuilds them. Export streams
//! each blob from the cache and checks it against its name on the way out; import streams each
//! blob into a staging folder, checks its etag and sha256, and only when the whole bundle has
//! been read and verified moves blobs into place, then links snapshots, then writes refs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::DeployError;
use crate::cache::layout::CacheLayout;
use crate::cache::tree::{self, TreeFile};
use crate::cache::writer::{CacheWriter, WriteOptions};
use crate::digest::{self, DigestKind, Digests, HashThread};
use crate::repo::lfs::blob_digest_kind;
use crate::repo::{is_valid_etag, CommitHash, Repo, RepoId, RepoPath, RepoType, Revision};

/// Bundle format name and version in `manifest.json`.
const FORMAT: &str = "hubcache-bundle";
const VERSION: u32 = 1;
/// Largest manifest accepted on import.
const MAX_MANIFEST: u64 = 256 << 20;

/// One blob in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: String,
}

/// One repo in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoEntry {
    /// Repo id.
    pub repo_id: String,
    /// `model`, `dataset` or `space`.
    pub repo_type: String,
    /// Ref name → commit.
    pub refs: BTreeMap<String, String>,
    /// Commit → (path → etag).
    pub snapshots: BTreeMap<String, BTreeMap<String, String>>,
    /// Commit → listing, when the cache had one.
    #[serde(default)]
    pub trees: BTreeMap<String, BTreeMap<String, TreeFile>>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Always `hubcache-bundle`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Etag → blob info.
    pub blobs: BTreeMap<String, BlobInfo>,
    /// Repos.
    pub repos: Vec<RepoEntry>,
}

/// What to export: one commit of a repo, all of its cached files or just these.
#[derive(Debug, Clone)]
pub struct ExportItem {
    /// Repo and type.
    pub repo: Repo,
    /// The commit.
    pub commit: CommitHash,
    /// Ref names to carry for this commit.
    pub refs: Vec<String>,
    /// `Some((path, etag))` list from a lock; `None` = every file of the cached snapshot.
    pub files: Option<Vec<(RepoPath, String)>>,
}

/// What an export or import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleReport {
    /// Repos.
    pub repos: usize,
    /// Snapshot entries.
    pub entries: usize,
    /// Distinct blobs.
    pub blobs: usize,
    /// Bytes of distinct blobs.
    pub blob_bytes: u64,
    /// Size of the bundle file.
    pub bundle_bytes: u64,
}

/// Bytes gathered before a chunk is handed to the hasher thread.
const HASH_CHUNK: usize = 1 << 20;

/// Gathers what is read into chunks for a [`HashThread`] (sha256 always, git blob sha1 when
/// asked), so hashing overlaps the reads and writes instead of following them.
struct Hasher {
    buf: Vec<u8>,
    thread: HashThread,
    read: u64,
}

impl Hasher {
    fn new(git_size: Option<u64>) -> Self {
        let hasher = git_size.map_or_else(digest::Hasher::sha256, digest::Hasher::both);
        Hasher {
            buf: Vec::with_capacity(HASH_CHUNK),
            thread: HashThread::spawn(hasher, 8, |_| Ok(())),
            read: 0,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.read += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= HASH_CHUNK {
            self.ship();
        }
    }

    /// Hands a whole chunk over without copying it (when nothing is pending).
    fn update_owned(&mut self, data: Vec<u8>) {
        if !self.buf.is_empty() {
            self.update(&data);
            return;
        }
        self.read += data.len() as u64;
        self.thread.update(Bytes::from(data));
    }

    fn ship(&mut self) {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(HASH_CHUNK));
        self.thread.update(Bytes::from(full));
    }

    /// The digests and the bytes seen (no digest if the hasher thread failed).
    fn finish(mut self) -> (Digests, u64) {
        if !self.buf.is_empty() {
            self.ship();
        }
        (self.thread.finish().unwrap_or_default(), self.read)
    }
}

/// Hashes everything read through it (see [`Hasher`]).
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R, git_size: Option<u64>) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(git_size),
        }
    }

    fn finish(self) -> (Digests, u64) {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Every file of a cached snapshot with its etag (symlink target name, or hashed if copied).
fn snapshot_entries(
    cache: &CacheLayout,
    repo: &Repo,
    commit: &CommitHash,
) -> Result<Vec<(RepoPath, String)>, DeployError> {
    let layout = cache.repo(repo);
    let root = layout.snapshot_dir(commit);
    if !root.is_dir() {
        return Err(DeployError::SnapshotNotCached {
            repo: repo.to_string(),
            commit: commit.to_string(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| DeployError::io("read", &dir, e))? {
            let entry = entry.map_err(|e| DeployError::io("read", &dir, e))?;
            let path = entry.path();
            if entry
                .file_type()
                .map_err(|e| DeployError::io("read", &path, e))?
                .is_dir()
            {
                stack.push(path);
                continue;
            }
            let bad = |reason: String| DeployError::BadSnapshotEntry {
                path: path.clone(),
                reason,
            };
            // `path` is `root` joined with names read from it, so the prefix is always there.
            let rel = path.strip_prefix(&root).unwrap_or(&path);
            let rel = RepoPath::new(&rel.to_string_lossy()).map_err(|e| bad(e.to_string()))?;
            let etag = match fs::read_link(&path) {
                Ok(t) => t
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                Err(_) => {
                    let size = fs::metadata(&path)
                        .map_err(|e| DeployError::io("read", &path, e))?
                        .len();
                    digest::hash_file(&path, blob_digest_kind(rel.as_str(), size))
                        .map_err(|e| DeployError::io("read", &path, e))?
                }
            };
            if !is_valid_etag(&etag) {
                return Err(bad(format!("{repo}: {rel} has no valid blob name")));
            }
            out.push((rel, etag));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a bundle of `items` from `cache` to `out`; with `split`, into parts `out.000`,
/// `out.001`, … of at most that many bytes each (import takes the first part). Parts are written
/// under temporary names and renamed only when the whole bundle is complete.
pub fn export(
    cache: &CacheLayout,
    items: &[ExportItem],
    out: &Path,
    split: Option<u64>,
) -> Result<BundleReport, DeployError> {
    let mut repos: BTreeMap<Repo, RepoEntry> = BTreeMap::new();
    // etag → (file on disk, size)
    let mut blobs: BTreeMap<String, (PathBuf, u64)> = BTreeMap::new();
    let mut entries = 0;
    for item in items {
        let layout = cache.repo(&item.repo);
        let files = match &item.files {
            Some(f) => f.clone(),
            None => snapshot_entries(cache, &item.repo, &item.commit)?,
        };
        let entry = repos.entry(item.repo.clone()).or_insert_with(|| RepoEntry {
            repo_id: item.repo.id.to_string(),
            repo_type: item.repo.repo_type.as_str().to_string(),
            refs: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            trees: BTreeMap::new(),
        });
        for r in &item.refs {
            entry.refs.insert(r.clone(), item.commit.to_string());
        }
        if let Some(listing) = tree::read(&layout.tree_file(&item.commit)) {
            entry.trees.insert(
                item.commit.to_string(),
                listing.into_iter().map(|(p, f)| (p.to_string(), f)).collect(),
            );
        }
        let snap = entry.snapshots.entry(item.commit.to_string()).or_default();
        for (path, etag) in files {
            let disk = layout.snapshot_file(&item.commit, &path);
            let size = fs::metadata(&disk)
                .map_err(|_| DeployError::FileNotCached {
                    repo: item.repo.to_string(),
                    path: path.to_string(),
                })?
                .len();
            snap.insert(path.to_string(), etag.clone());
            blobs.entry(etag).or_insert((disk, size));
            entries += 1;
        }
    }
    // sha256 of each blob: the etag itself for LFS blobs; computed for git-sha1 blobs.
    let mut infos = BTreeMap::new();
    for (etag, (disk, size)) in &blobs {
        let sha256 = if DigestKind::for_etag(etag) == Some(DigestKind::Sha256) {
            etag.to_ascii_lowercase()
        } else {
            let mut r = HashingReader::new(File::open(disk).map_err(|e| DeployError::io("read", disk, e))?, None);
            io::copy(&mut r, &mut io::sink()).map_err(|e| DeployError::io("read", disk, e))?;
            r.finish().0.sha256.unwrap_or_default()
        };
        infos.insert(etag.clone(), BlobInfo { size: *size, sha256 });
    }
    let manifest = BundleManifest {
        format: FORMAT.into(),
        version: VERSION,
        blobs: infos,
        repos: repos.into_values().collect(),
    };
    let mut writer = PartWriter::new(out, split)?;
    if let Err(e) = write_tar(&manifest, &blobs, &mut writer, out) {
        writer.discard();
        return Err(e);
    }
    let bundle_bytes = writer.commit()?;
    Ok(BundleReport {
        repos: manifest.repos.len(),
        entries,
        blobs: blobs.len(),
        blob_bytes: blobs.values().map(|(_, s)| s).sum(),
        bundle_bytes,
    })
}

/// Name of part `index` of a split bundle (`<out>.000`, `<out>.001`, …).
pub fn part_name(out: &Path, index: usize) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(format!(".{index:03}"));
    PathBuf::from(name)
}

/// Writes the bundle into one file or into parts of at most `limit` bytes, all under
/// temporary names until [`PartWriter::commit`].
struct PartWriter {
    out: PathBuf,
    limit: Option<u64>,
    /// (temporary name, final name) of every part so far.
    parts: Vec<(PathBuf, PathBuf)>,
    current: Option<BufWriter<File>>,
    in_part: u64,
    total: u64,
}

impl PartWriter {
    fn new(out: &Path, limit: Option<u64>) -> Result<Self, DeployError> {
        let limit = limit.filter(|l| *l > 0);
        let mut w = PartWriter {
            out: out.to_path_buf(),
            limit,
            parts: Vec::new(),
            current: None,
            in_part: 0,
            total: 0,
        };
        w.open_next()?;
        Ok(w)
    }

    fn open_next(&mut self) -> Result<(), DeployError> {
        let fin = match self.limit {
            Some(_) => part_name(&self.out, self.parts.len()),
            None => self.out.clone(),
        };
        let tmp = crate::fs::sibling_temp(&fin, "partial");
        let file = File::create(&tmp).map_err(|e| DeployError::io("create", &tmp, e))?;
        self.finish_current()
            .map_err(|e| DeployError::io("write", &self.out, e))?;
        self.current = Some(BufWriter::with_capacity(1 << 20, file));
        self.parts.push((tmp, fin));
        self.in_part = 0;
        Ok(())
    }

    fn finish_current(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some(w) => {
                w.flush()?;
                w.get_ref().sync_all()
            }
            None => Ok(()),
        }
    }

    fn current(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.current
            .as_mut()
            .ok_or_else(|| io::Error::other("no open bundle part"))
    }

    /// Flushes, syncs and renames every part to its final name; returns the bundle's size.
    fn commit(mut self) -> Result<u64, DeployError> {
        self.finish_current()
            .map_err(|e| DeployError::io("write", &self.out, e))?;
        for (tmp, fin) in &self.parts {
            fs::rename(tmp, fin).map_err(|e| DeployError::io("move into place", fin, e))?;
        }
        Ok(self.total)
    }

    /// Removes every part written so far.
    fn discard(self) {
        for (tmp, _) in &self.parts {
            let _ = fs::remove_file(tmp);
        }
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.limit {
            if self.in_part >= limit {
                self.open_next().map_err(io::Error::other)?;
            }
            let room = (limit - self.in_part) as usize;
            let n = self.current()?.write(&buf[..buf.len().min(room)])?;
            self.in_part += n as u64;
            self.total += n as u64;
            return Ok(n);
        }
        let n = self.current()?.write(buf)?;
        self.total += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.current()?.flush()
    }
}

/// The bundle's bytes: one file, or the parts `<x>.000`, `<x>.001`, … chained in order.
fn open_bundle(path: &Path) -> Result<(Box<dyn Read>, u64), DeployError> {
    let name = path.to_string_lossy();
    let first = File::open(path).map_err(|e| DeployError::io("open", path, e))?;
    let mut total = first.metadata().map(|m| m.len()).unwrap_or(0);
    let Some(base) = name.strip_suffix(".000") else {
        return Ok((Box::new(first), total));
    };
    let mut reader: Box<dyn Read> = Box::new(first);
    for index in 1.. {
        let part = PathBuf::from(format!("{base}.{index:03}"));
        let Ok(f) = File::open(&part) else { break };
        total += f.metadata().map(|m| m.len()).unwrap_or(0);
        reader = Box::new(reader.chain(f));
    }
    Ok((reader, total))
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h
}

fn write_tar(
    manifest: &BundleManifest,
    blobs: &BTreeMap<String, (PathBuf, u64)>,
    out: &mut PartWriter,
    path: &Path,
) -> Result<(), DeployError> {
    let mut tar = tar::Builder::new(out);
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| DeployError::io("encode the manifest of", path, e.into()))?;
    let mut h = header(json.len() as u64);
    tar.append_data(&mut h, "manifest.json", json.as_slice())
        .map_err(|e| DeployError::io("write", path, e))?;
    for (etag, (disk, size)) in blobs {
        let src = File::open(disk).map_err(|e| DeployError::io("read", disk, e))?;
        let git = (DigestKind::for_etag(etag) == Some(DigestKind::GitSha1)).then_some(*size);
        let mut reader = HashingReader::new(BufReader::with_capacity(1 << 20, src).take(*size), git);
        let mut h = header(*size);
        tar.append_data(&mut h, format!("blobs/{etag}"), &mut reader)
            .map_err(|e| DeployError::io("write", path, e))?;
        let (digests, read) = reader.finish();
        if read != *size || !digests.matches_etag(etag) {
            return Err(DeployError::CorruptBlob {
                path: disk.clone(),
                etag: etag.clone(),
            });
        }
    }
    tar.into_inner().map_err(|e| DeployError::io("write", path, e))?;
    Ok(())
}

/// A validated manifest: every name checked before anything touches the disk.
struct Plan {
    repos: Vec<(Repo, RepoEntry)>,
}

fn validate(m: &BundleManifest) -> Result<Plan, String> {
    if m.format != FORMAT || m.version != VERSION {
        return Err(format!("not a {FORMAT} v{VERSION} bundle"));
    }
    for (etag, info) in &m.blobs {
        if DigestKind::for_etag(etag).is_none() {
            return Err(format!("invalid blob name `{}`", etag.escape_debug()));
        }
        if DigestKind::for_etag(&info.sha256) != Some(DigestKind::Sha256) {
            return Err(format!("invalid sha256 for blob {etag}"));
        }
    }
    let mut repos = Vec::new();
    for r in &m.repos {
        let repo_type: RepoType = r.repo_type.parse().map_err(|e: crate::NameError| e.to_string())?;
        let repo = Repo::new(RepoId::new(&r.repo_id).map_err(|e| e.to_string())?, repo_type);
        for (name, commit) in &r.refs {
            Revision::new(name).map_err(|e| e.to_string())?;
            CommitHash::new(commit).map_err(|e| e.to_string())?;
            if !r.snapshots.contains_key(commit) {
                return Err(format!("ref {name} of {repo} points at a commit the bundle lacks"));
            }
        }
        for (commit, files) in &r.snapshots {
            CommitHash::new(commit).map_err(|e| e.to_string())?;
            for (path, etag) in files {
                RepoPath::new(path).map_err(|e| e.to_string())?;
                if !m.blobs.contains_key(etag) {
                    return Err(format!("{repo}: {path} names a blob the bundle lacks"));
                }
            }
        }
        for (commit, listing) in &r.trees {
            CommitHash::new(commit).map_err(|e| e.to_string())?;
            for p in listing.keys() {
                RepoPath::new(p).map_err(|e| e.to_string())?;
            }
        }
        repos.push((repo, r.clone()));
    }
    Ok(Plan { repos })
}

/// Removes the staging folder unless disarmed.
struct Staging(Option<PathBuf>);

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Imports a bundle into `cache`; all or nothing becomes visible.
pub fn import(cache: &CacheLayout, bundle: &Path, options: WriteOptions) -> Result<BundleReport, DeployError> {
    let refuse = |detail: String| DeployError::Bundle {
        path: bundle.to_path_buf(),
        detail,
    };
    let (reader, bundle_bytes) = open_bundle(bundle)?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, reader));
    let mut entries = archive.entries().map_err(|e| refuse(format!("not a tar file: {e}")))?;

    let mut first = match entries.next() {
        Some(Ok(e)) => e,
        Some(Err(e)) => return Err(refuse(format!("unreadable: {e}"))),
        None => return Err(refuse("empty".into())),
    };
    if first.path().map(|p| p != Path::new("manifest.json")).unwrap_or(true) || first.size() > MAX_MANIFEST {
        return Err(refuse("the first entry is not manifest.json".into()));
    }
    let mut json = Vec::new();
    first
        .read_to_end(&mut json)
        .map_err(|e| refuse(format!("truncated manifest: {e}")))?;
    let manifest: BundleManifest =
        serde_json::from_slice(&json).map_err(|e| refuse(format!("malformed manifest: {e}")))?;
    let plan = validate(&manifest).map_err(refuse)?;

    fs::create_dir_all(cache.root()).map_err(|e| DeployError::io("create", cache.root(), e))?;
    let staging_dir = cache
        .root()
        .join(".locks")
        .join(format!("hubcache-import-{}", crate::fs::random_suffix()));
    fs::create_dir_all(&staging_dir).map_err(|e| DeployError::io("create", &staging_dir, e))?;
    let mut staging = Staging(Some(staging_dir.clone()));

    let mut seen = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("truncated or corrupt: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| refuse(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let etag = name
            .strip_prefix("blobs/")
            .filter(|e| manifest.blobs.contains_key(*e))
            .ok_or_else(|| refuse(format!("unexpected entry `{}`", name.escape_debug())))?
            .to_string();
        if !seen.insert(etag.clone()) {
            return Err(refuse(format!("blob {etag} appears twice")));
        }
        let info = &manifest.blobs[&etag];
        if entry.size() != info.size {
            return Err(refuse(format!(
                "blob {etag} has {} bytes, the manifest says {}",
                entry.size(),
                info.size
            )));
        }
        let git = (DigestKind::for_etag(&etag) == Some(DigestKind::GitSha1)).then_some(info.size);
        let mut hasher = Hasher::new(git);
        let dest = staging_dir.join(&etag);
        let mut out = File::create(&dest).map_err(|e| DeployError::io("create", &dest, e))?;
        loop {
            // A fresh buffer per chunk: written, then handed to the hasher thread as is.
            let mut chunk = Vec::with_capacity(HASH_CHUNK);
            (&mut entry)
                .take(HASH_CHUNK as u64)
                .read_to_end(&mut chunk)
                .map_err(|e| refuse(format!("truncated or unreadable blob {etag}: {e}")))?;
            if chunk.is_empty() {
                break;
            }
            out.write_all(&chunk).map_err(|e| DeployError::io("write", &dest, e))?;
            hasher.update_owned(chunk);
        }
        let (digests, read) = hasher.finish();
        if read != info.size {
            return Err(refuse(format!("blob {etag} is truncated")));
        }
        let sha_ok = digests
            .sha256
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(&info.sha256));
        if !sha_ok || !digests.matches_etag(&etag) {
            return Err(refuse(format!(
                "blob {etag} does not match its hash (tampered or damaged)"
            )));
        }
    }
    if let Some(missing) = manifest.blobs.keys().find(|e| !seen.contains(*e)) {
        return Err(refuse(format!("truncated: blob {missing} is missing")));
    }

    // Everything verified: place blobs, then snapshot links and listings, then refs.
    let mut report = BundleReport {
        repos: plan.repos.len(),
        blobs: manifest.blobs.len(),
        blob_bytes: manifest.blobs.values().map(|b| b.size).sum(),
        bundle_bytes,
        entries: 0,
    };
    // Through one writer: a `cache prune` beside the import waits instead of deleting a blob
    // between its placing and its linking.
    let writer = CacheWriter::open_blocking(cache, options)?;
    for (repo, entry) in &plan.repos {
        let layout = cache.repo(repo);
        writer
            .prepare_repo(&layout)
            .map_err(|e| DeployError::io("create", layout.blobs_dir(), e))?;
        // Snapshot entries grouped by blob: each blob is placed and linked under its lock.
        let mut by_blob: BTreeMap<&String, Vec<(CommitHash, RepoPath)>> = BTreeMap::new();
        for (commit, files) in &entry.snapshots {
            let commit = CommitHash::new(commit).map_err(|e| refuse(e.to_string()))?;
            writer
                .create_snapshot_dir(&layout, &commit)
                .map_err(|e| DeployError::io("create", layout.snapshot_dir(&commit), e))?;
            for (path, etag) in files {
                let path = RepoPath::new(path).map_err(|e| refuse(e.to_string()))?;
                by_blob.entry(etag).or_default().push((commit.clone(), path));
            }
        }
        for (etag, links) in by_blob {
            let blob = writer.lock_blob_blocking(&layout, etag)?;
            blob.place_hard_link(&staging_dir.join(etag))
                .map_err(|e| DeployError::io("place", blob.blob_path(), e))?;
            for (commit, path) in links {
                blob.link(&commit, &path, false)
                    .map_err(|e| DeployError::io("link", blob.entry_path(&commit, &path), e))?;
                report.entries += 1;
            }
        }
        for (commit, listing) in &entry.trees {
            let commit = CommitHash::new(commit).map_err(|e| refuse(e.to_string()))?;
            if layout.tree_file(&commit).is_file() {
                continue;
            }
            let listing: BTreeMap<RepoPath, TreeFile> = listing
                .iter()
                .filter_map(|(p, f)| RepoPath::new(p).ok().map(|p| (p, f.clone())))
                .collect();
            writer
                .write_tree(&layout, &commit, &listing)
                .map_err(|e| DeployError::io("write", layout.tree_file(&commit), e))?;
        }
        for (name, commit) in &entry.refs {
            let commit = CommitHash::new(commit).map_err(|e| refuse(e.to_string()))?;
            writer
                .write_ref(&layout, name, &commit)
                .map_err(|e| DeployError::io("write", layout.ref_file(name), e))?;
        }
    }
    if let Some(p) = staging.0.take() {
        let _ = fs::remove_dir_all(p);
    }
    Ok(report)
}
