//! Writing into the store: verified blob uploads, bundle import and push of a cached repo.
//!
//! Order of visibility, always: blobs first (each made visible only after its bytes matched
//! its id: the final PUT or CompleteMultipartUpload is sent after the hash check, otherwise the
//! upload is aborted), then listings and snapshot manifests, then refs. A reader therefore
//! never finds a manifest entry whose blob is missing or unverified.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use hubcache::cache::tree::TreeFile;
use hubcache::deploy::bundle::{read_bundle, BundleManifest};
use hubcache::digest::{DigestKind, Hasher};
use hubcache::{CommitHash, Repo, RepoId, RepoPath, RepoType};
use object_store::{MultipartUpload, PutMode, PutOptions, PutPayload};

use super::{obj, S3Store, StoreError};
use crate::store::FsStore;

/// Multipart part size (S3 wants at least 5 MiB but for the last part).
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once per blob.
const PARTS_IN_FLIGHT: usize = 2;

/// One blob being uploaded: hashed part by part (on the blocking pool), made visible by
/// [`BlobUpload::finish`] only if it matches its id. Dropped or failed: nothing visible (an
/// incomplete multipart upload is invisible; stores expire them by their lifecycle rules).
pub struct BlobUpload<'a> {
    store: &'a S3Store,
    etag: String,
    key: String,
    size: u64,
    hasher: Option<Hasher>,
    buf: BytesMut,
    written: u64,
    multipart: Option<Box<dyn MultipartUpload>>,
    /// Parts uploading (spawned: an `UploadPart` does nothing until polled).
    pending: Vec<tokio::task::JoinHandle<object_store::Result<()>>>,
}

impl<'a> BlobUpload<'a> {
    /// Starts the upload of blob `etag` of `size` bytes.
    pub fn begin(store: &'a S3Store, etag: &str, size: u64) -> Result<BlobUpload<'a>, StoreError> {
        let verify = |detail: &str| StoreError::Verify {
            etag: etag.to_string(),
            detail: detail.to_string(),
        };
        let kind = DigestKind::for_etag(etag).ok_or_else(|| verify("not a sha256 or git sha1"))?;
        let hasher = Hasher::for_kind(kind, Some(size)).ok_or_else(|| verify("no hasher"))?;
        Ok(BlobUpload {
            store,
            etag: etag.to_string(),
            key: store.keys().blob(etag),
            size,
            hasher: Some(hasher),
            buf: BytesMut::new(),
            written: 0,
            multipart: None,
            pending: Vec::new(),
        })
    }

    /// The bytes fed so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Feeds the next bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.written += chunk.len() as u64;
        if self.written > self.size {
            return Err(StoreError::Verify {
                etag: self.etag.clone(),
                detail: format!("more than the {} bytes announced", self.size),
            });
        }
        self.buf.extend_from_slice(chunk);
        while self.buf.len() >= PART_SIZE {
            let part = self.buf.split_to(PART_SIZE).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn hash(&mut self, part: Bytes) -> Result<(), StoreError> {
        let Some(mut hasher) = self.hasher.take() else {
            return Ok(());
        };
        let hasher = tokio::task::spawn_blocking(move || {
            hasher.update(&part);
            hasher
        })
        .await
        .map_err(|e| StoreError::Io {
            what: "the hashing thread".into(),
            source: std::io::Error::other(e),
        })?;
        self.hasher = Some(hasher);
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<(), StoreError> {
        self.hash(part.clone()).await?;
        if self.multipart.is_none() {
            let up = self
                .store
                .data()
                .put_multipart(&obj(&self.key))
                .await
                .map_err(|source| StoreError::S3 {
                    op: "CreateMultipartUpload",
                    key: self.key.clone(),
                    source,
                })?;
            self.multipart = Some(up);
        }
        if self.pending.len() >= PARTS_IN_FLIGHT {
            let first = self.pending.remove(0);
            join_part(first, &self.key).await?;
        }
        if let Some(up) = &mut self.multipart {
            self.pending.push(tokio::spawn(up.put_part(PutPayload::from(part))));
        }
        Ok(())
    }

    /// Checks the size and hash; only then makes the blob visible. On a mismatch or a
    /// failure the multipart upload is aborted.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        let result = self.finish_inner().await;
        if result.is_err() {
            if let Some(mut up) = self.multipart.take() {
                let _ = up.abort().await;
            }
        }
        result
    }

    async fn finish_inner(&mut self) -> Result<(), StoreError> {
        let rest = std::mem::take(&mut self.buf).freeze();
        if self.written != self.size {
            return Err(StoreError::Verify {
                etag: self.etag.clone(),
                detail: format!("{} bytes, {} expected", self.written, self.size),
            });
        }
        if self.multipart.is_some() && !rest.is_empty() {
            self.send_part(rest.clone()).await?;
        } else {
            self.hash(rest.clone()).await?;
        }
        let digests = self.hasher.take().map(Hasher::finish).unwrap_or_default();
        if !digests.matches_etag(&self.etag) {
            return Err(StoreError::Verify {
                etag: self.etag.clone(),
                detail: "hash mismatch".into(),
            });
        }
        let key = self.key.clone();
        let s3 = |op: &'static str| {
            let key = key.clone();
            move |source| StoreError::S3 { op, key, source }
        };
        match self.multipart.take() {
            Some(mut up) => {
                for p in std::mem::take(&mut self.pending) {
                    if let Err(e) = join_part(p, &key).await {
                        self.multipart = Some(up);
                        return Err(e);
                    }
                }
                if let Err(e) = up.complete().await {
                    self.multipart = Some(up);
                    return Err(s3("CompleteMultipartUpload")(e));
                }
            }
            None => {
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match self
                    .store
                    .data()
                    .put_opts(&obj(&key), PutPayload::from(rest), opts)
                    .await
                {
                    // Blobs are immutable and named by content: one already there is this one.
                    Ok(_)
                    | Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
                    Err(e) => return Err(s3("PUT")(e)),
                }
            }
        }
        Ok(())
    }
}

/// Waits for one spawned part upload.
async fn join_part(part: tokio::task::JoinHandle<object_store::Result<()>>, key: &str) -> Result<(), StoreError> {
    match part.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(StoreError::S3 {
            op: "UploadPart",
            key: key.to_string(),
            source,
        }),
        Err(e) => Err(StoreError::Io {
            what: format!("the upload of {key}"),
            source: std::io::Error::other(e),
        }),
    }
}

/// What an import or push wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FillReport {
    /// Repos.
    pub repos: usize,
    /// Snapshot entries.
    pub entries: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the store already had.
    pub blobs_present: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
}

enum Feed {
    Manifest(Box<BundleManifest>),
    Begin(String, u64),
    Chunk(Bytes),
    End,
}

/// Imports a bundle into the store: every blob verified on the way in; manifests, listings
/// and refs written only once every blob is stored.
pub async fn import_bundle(store: &S3Store, bundle: &Path) -> Result<FillReport, StoreError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Feed>(4);
    let path = bundle.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let stopped = |p: &Path| hubcache::deploy::DeployError::Bundle {
            path: p.to_path_buf(),
            detail: "the upload stopped".into(),
        };
        read_bundle(
            &path,
            |m| {
                tx.blocking_send(Feed::Manifest(Box::new(m.clone())))
                    .map_err(|_| stopped(&path))
            },
            |etag, info, r| {
                tx.blocking_send(Feed::Begin(etag.to_string(), info.size))
                    .map_err(|_| stopped(&path))?;
                loop {
                    let mut chunk = Vec::with_capacity(1 << 20);
                    std::io::Read::read_to_end(&mut std::io::Read::take(&mut *r, 1 << 20), &mut chunk).map_err(
                        |e| hubcache::deploy::DeployError::Bundle {
                            path: path.clone(),
                            detail: format!("truncated or unreadable blob {etag}: {e}"),
                        },
                    )?;
                    if chunk.is_empty() {
                        break;
                    }
                    tx.blocking_send(Feed::Chunk(Bytes::from(chunk)))
                        .map_err(|_| stopped(&path))?;
                }
                tx.blocking_send(Feed::End).map_err(|_| stopped(&path))
            },
        )
    });
    let mut report = FillReport::default();
    let mut manifest = None;
    let mut upload: Option<BlobUpload<'_>> = None;
    let mut failure = None;
    while let Some(item) = rx.recv().await {
        let step = async {
            match item {
                Feed::Manifest(m) => manifest = Some(*m),
                Feed::Begin(etag, size) => {
                    if store.has_blob(&etag, size).await? {
                        report.blobs_present += 1;
                    } else {
                        upload = Some(BlobUpload::begin(store, &etag, size)?);
                    }
                }
                Feed::Chunk(c) => {
                    if let Some(u) = &mut upload {
                        u.write(&c).await?;
                    }
                }
                Feed::End => {
                    if let Some(u) = upload.take() {
                        report.bytes_uploaded += u.written();
                        u.finish().await?;
                        report.blobs_uploaded += 1;
                    }
                }
            }
            Ok::<(), StoreError>(())
        };
        if let Err(e) = step.await {
            failure = Some(e);
            break;
        }
    }
    drop(rx);
    let read = reader.await.map_err(|e| StoreError::Io {
        what: bundle.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    read.map_err(|e| StoreError::Io {
        what: bundle.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let Some(m) = manifest else {
        return Err(StoreError::Io {
            what: bundle.display().to_string(),
            source: std::io::Error::other("no manifest"),
        });
    };
    for r in &m.repos {
        let bad = |detail: String| StoreError::Io {
            what: bundle.display().to_string(),
            source: std::io::Error::other(detail),
        };
        let kind: RepoType = r
            .repo_type
            .parse()
            .map_err(|e: hubcache::NameError| bad(e.to_string()))?;
        let repo = Repo::new(RepoId::new(&r.repo_id).map_err(|e| bad(e.to_string()))?, kind);
        let mut commits = BTreeMap::new();
        for (commit, files) in &r.snapshots {
            let commit = CommitHash::new(commit).map_err(|e| bad(e.to_string()))?;
            let listing = r.trees.get(commit.as_str());
            let mut entries = BTreeMap::new();
            for (path, etag) in files {
                let p = RepoPath::new(path).map_err(|e| bad(e.to_string()))?;
                let known = listing.and_then(|l| l.get(path)).filter(|f| f.etag() == etag);
                let size = m.blobs.get(etag).map(|b| b.size).unwrap_or(0);
                entries.insert(
                    p,
                    known.cloned().unwrap_or_else(|| TreeFile::for_blob(etag.clone(), size)),
                );
            }
            commits.insert(commit, entries);
        }
        let trees = r
            .trees
            .iter()
            .filter_map(|(c, l)| {
                let c = CommitHash::new(c).ok()?;
                let l: BTreeMap<RepoPath, TreeFile> = l
                    .iter()
                    .filter_map(|(p, f)| Some((RepoPath::new(p).ok()?, f.clone())))
                    .collect();
                Some((c, l))
            })
            .collect();
        report.entries += commits.values().map(BTreeMap::len).sum::<usize>();
        write_repo(store, &repo, &commits, &trees, &r.refs).await?;
        report.repos += 1;
    }
    Ok(report)
}

/// Listings, then manifests, then refs of one repo (its blobs are stored already).
async fn write_repo(
    store: &S3Store,
    repo: &Repo,
    snapshots: &BTreeMap<CommitHash, BTreeMap<RepoPath, TreeFile>>,
    trees: &BTreeMap<CommitHash, BTreeMap<RepoPath, TreeFile>>,
    refs: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    for (commit, listing) in trees {
        store.put_listing(repo, commit, listing).await?;
    }
    for (commit, files) in snapshots {
        store.add_to_manifest(repo, commit, files).await?;
    }
    for (name, commit) in refs {
        if let Ok(c) = CommitHash::new(commit) {
            store.write_ref(repo, name, &c).await?;
        }
    }
    Ok(())
}

/// Uploads one local file as blob `etag` (verified), unless the store has it. True if uploaded.
pub async fn upload_file(store: &S3Store, path: &Path, etag: &str, size: u64) -> Result<bool, StoreError> {
    if store.has_blob(etag, size).await? {
        return Ok(false);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut chunk = Vec::with_capacity(1 << 20);
            match (&mut f).take(1 << 20).read_to_end(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {
                    if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let mut up = BlobUpload::begin(store, etag, size)?;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.map_err(|source| StoreError::Io {
            what: path.display().to_string(),
            source,
        })?;
        up.write(&chunk).await?;
    }
    up.finish().await?;
    Ok(true)
}

/// Pushes every snapshot and ref of `repo` in the local cache (`cache`) to the store.
pub async fn push_repo(
    store: &S3Store,
    cache: &std::sync::Arc<FsStore>,
    repo: &Repo,
) -> Result<FillReport, StoreError> {
    let fs = cache.clone();
    let r = repo.clone();
    let found = tokio::task::spawn_blocking(move || {
        let layout = fs.cache().repo(&r);
        let refs = local_refs(&layout);
        let mut snapshots = BTreeMap::new();
        let mut trees = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(layout.root().join("snapshots")) {
            for entry in dir.flatten() {
                let Ok(commit) = CommitHash::new(&entry.file_name().to_string_lossy()) else {
                    continue;
                };
                if let Some(l) = fs.tree_listing(&r, &commit) {
                    trees.insert(commit.clone(), (*l).clone());
                }
                snapshots.insert(commit.clone(), fs.cached_files(&r, &commit));
            }
        }
        (refs, snapshots, trees)
    })
    .await
    .map_err(|e| StoreError::Io {
        what: "the cache".into(),
        source: std::io::Error::other(e),
    })?;
    let (refs, snapshots, trees) = found;
    if snapshots.is_empty() {
        return Err(StoreError::Io {
            what: format!("{repo} in {}", cache.cache().root().display()),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the cache holds no snapshot of it"),
        });
    }
    let mut report = FillReport {
        repos: 1,
        ..Default::default()
    };
    let mut manifests = BTreeMap::new();
    for (commit, files) in snapshots {
        let mut entries = BTreeMap::new();
        for (path, file) in files {
            let crate::store::BlobRef::File(disk) = &file.blob else {
                continue;
            };
            let size = file.meta.content_size();
            if upload_file(store, disk, file.meta.etag(), size).await? {
                report.blobs_uploaded += 1;
                report.bytes_uploaded += size;
            } else {
                report.blobs_present += 1;
            }
            entries.insert(path, file.meta);
        }
        report.entries += entries.len();
        manifests.insert(commit, entries);
    }
    let refs: BTreeMap<String, String> = refs.into_iter().map(|(n, c)| (n, c.as_str().to_string())).collect();
    write_repo(store, repo, &manifests, &trees, &refs).await?;
    Ok(report)
}

/// Every ref of a cached repo (`refs/<name>`, nested names such as `refs/pr/1` included).
fn local_refs(layout: &hubcache::cache::layout::RepoLayout) -> BTreeMap<String, CommitHash> {
    let root = layout.root().join("refs");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(name) = p
                .strip_prefix(&root)
                .ok()
                .map(|n| n.to_string_lossy().replace('\\', "/"))
            {
                if let Some(c) = hubcache::cache::lookup::read_ref(layout, &name) {
                    out.insert(name, c);
                }
            }
        }
    }
    out
}
