//! The mirror over the S3 store: revisions, files and listings from the bucket, and misses
//! filled from the upstream into the bucket with one upstream transfer per blob across all
//! replicas.
//!
//! A miss (a file the commit's manifest lacks, with an upstream):
//! 1. its listing entry comes from the upstream (HEAD answers from it, no transfer);
//! 2. in this process one task fills a blob, however many requests want it; across replicas
//!    the `leases/<etag>` object decides ([`crate::store::s3::lease`]);
//! 3. the filler streams the upstream body to S3 (multipart above [`PART_SIZE`]) and to its
//!    first client at once, holding back the last chunk until the hash check passed and the
//!    upload completed, so no client and no other replica ever sees unverified bytes as
//!    complete; then the manifest gains the file and the lease is released;
//! 4. everyone else polls the blob with backoff (bounded) and takes over a lapsed lease.
//!
//! [`PART_SIZE`]: crate::store::s3::fill::PART_SIZE

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use bytes::Bytes;
use hubcache::cache::tree::TreeFile;
use hubcache::{CommitHash, Repo, RepoPath, Revision};
use tokio::sync::watch;

use crate::respond;
use crate::serve_file::Want;
use crate::server::{Mirror, Served};
use crate::store::s3::fill::BlobUpload;
use crate::store::s3::lease::{now_ms, Acquire};
use crate::store::s3::{S3Store, StoreError};
use crate::store::{BlobRef, BlobStream, CachedFile, FileState};
use crate::upstream::{upstream_error, Upstream};

/// How long the filling request's client may read nothing before the fill stops feeding it.
const CLIENT_STALL: Duration = Duration::from_secs(30);

/// How long a waiting request waits for another replica's fill at most.
const PULL_WAIT: Duration = Duration::from_secs(900);

/// A fill under way in this process: `None` while running, then its outcome.
type Fill = watch::Receiver<Option<Result<(), String>>>;

/// Per-process pull-through state over the S3 store.
pub(crate) struct S3Pulls {
    /// Random id of this replica, written into leases.
    holder: String,
    /// How long a lease holds without renewal.
    lease_ttl: Duration,
    /// Fills under way here, by etag.
    fills: Arc<Mutex<HashMap<String, Fill>>>,
    /// The last commit written for each upstream ref (to skip rewriting an unchanged one).
    refs_written: Mutex<HashMap<(Repo, String), CommitHash>>,
    /// Until when the upstream counts as unreachable (after a transient failure): requests
    /// for what the store holds do not wait on its retries meanwhile.
    upstream_down_until: Mutex<Option<Instant>>,
}

/// How long an unreachable upstream is skipped before it is tried again.
const UPSTREAM_BACKOFF: Duration = Duration::from_secs(30);

impl S3Pulls {
    fn upstream_down(&self) -> bool {
        self.upstream_down_until
            .lock()
            .ok()
            .and_then(|u| *u)
            .is_some_and(|t| Instant::now() < t)
    }

    fn mark_upstream_down(&self) {
        if let Ok(mut u) = self.upstream_down_until.lock() {
            *u = Some(Instant::now() + UPSTREAM_BACKOFF);
        }
    }
}

impl S3Pulls {
    /// State for one replica.
    pub(crate) fn new(lease_ttl: Duration) -> S3Pulls {
        S3Pulls {
            holder: format!("{}-{}", std::process::id(), hubcache::fs::random_suffix()),
            lease_ttl,
            fills: Arc::new(Mutex::new(HashMap::new())),
            refs_written: Mutex::new(HashMap::new()),
            upstream_down_until: Mutex::new(None),
        }
    }
}

/// The Hub-style answer when the store fails during a request.
pub(crate) fn store_error(e: &StoreError) -> Response<Body> {
    let status = if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    };
    respond::hub_error(status, None, &format!("the mirror's store failed: {e}"), None)
}

fn internal() -> Response<Body> {
    respond::hub_error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error", None)
}

impl Mirror {
    /// Revision → commit over the S3 store.
    pub(crate) async fn s3_resolve(
        &self,
        s3: &S3Store,
        repo: &Repo,
        revision: &Revision,
    ) -> Result<CommitHash, Response<Body>> {
        if let Revision::Commit(c) = revision {
            if self.upstream.is_some() || s3.has_repo(repo).await.map_err(|e| store_error(&e))? {
                return Ok(c.clone());
            }
            return Err(respond::repo_not_found());
        }
        let down = self.s3_pulls.as_ref().is_some_and(S3Pulls::upstream_down);
        if let (Some(up), false) = (&self.upstream, down) {
            match up.ref_commit(repo, revision).await? {
                Some(c) => {
                    self.s3_remember_ref(s3, repo, revision, &c).await;
                    return Ok(c);
                }
                // Unreachable: serve what the store has, and stop asking for a while.
                None => {
                    if let Some(p) = &self.s3_pulls {
                        p.mark_upstream_down();
                    }
                }
            }
        }
        match s3
            .resolve_ref(repo, revision.as_str())
            .await
            .map_err(|e| store_error(&e))?
        {
            Some(c) => Ok(c),
            None if s3.has_repo(repo).await.map_err(|e| store_error(&e))? => {
                Err(respond::revision_not_found(revision.as_str()))
            }
            None => Err(respond::repo_not_found()),
        }
    }

    /// Records an upstream ref in the store (conditional write; skipped when unchanged).
    async fn s3_remember_ref(&self, s3: &S3Store, repo: &Repo, revision: &Revision, commit: &CommitHash) {
        let Some(pulls) = &self.s3_pulls else { return };
        let key = (repo.clone(), revision.as_str().to_string());
        if pulls
            .refs_written
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
            .as_ref()
            == Some(commit)
        {
            return;
        }
        if s3.write_ref(repo, revision.as_str(), commit).await.is_ok() {
            if let Ok(mut m) = pulls.refs_written.lock() {
                m.insert(key, commit.clone());
            }
        }
    }

    /// Every file of a commit: the upstream listing (stored for later), else the store's
    /// listing, else its manifest.
    pub(crate) async fn s3_listing(
        &self,
        s3: &S3Store,
        repo: &Repo,
        commit: &CommitHash,
    ) -> Result<BTreeMap<RepoPath, TreeFile>, Response<Body>> {
        if let Some(l) = s3.listing(repo, commit).await.map_err(|e| store_error(&e))? {
            return Ok((*l).clone());
        }
        let down = self.s3_pulls.as_ref().is_some_and(S3Pulls::upstream_down);
        if let (Some(up), false) = (&self.upstream, down) {
            match up.hub().commit_listing(repo, commit).await {
                Ok(l) => {
                    let _ = s3.put_listing(repo, commit, &l).await;
                    return Ok(l);
                }
                Err(e) => match e.hub_error() {
                    Some(h) if !h.is_transient() => return Err(upstream_error(h)),
                    _ => {
                        if let Some(p) = &self.s3_pulls {
                            p.mark_upstream_down();
                        }
                    }
                },
            }
        }
        match s3.manifest(repo, commit, true).await.map_err(|e| store_error(&e))? {
            Some(m) => Ok((*m).clone()),
            None => Err(respond::revision_not_found(commit.as_str())),
        }
    }

    /// A file over the S3 store: stored, or (with an upstream) its metadata for a HEAD, a live
    /// stream for a whole-file GET that starts the fill, or stored once another fill is done.
    pub(crate) async fn s3_file(
        &self,
        s3: &Arc<S3Store>,
        repo: &Repo,
        commit: &CommitHash,
        path: &RepoPath,
        body: Want,
    ) -> Result<Served, Response<Body>> {
        match s3.file(repo, commit, path).await.map_err(|e| store_error(&e))? {
            FileState::Cached(f) => return Ok(Served::Stored(f)),
            FileState::Missing => return Err(respond::entry_not_found(commit.as_str())),
            FileState::Unknown => {}
        }
        let (Some(up), Some(pulls)) = (&self.upstream, &self.s3_pulls) else {
            return Err(respond::entry_not_found(commit.as_str()));
        };
        let listing = self.s3_listing(s3, repo, commit).await?;
        let Some(meta) = listing.get(path).cloned() else {
            return Err(respond::entry_not_found(commit.as_str()));
        };
        let stored = |meta: &TreeFile| CachedFile {
            meta: meta.clone(),
            blob: BlobRef::Object {
                key: s3.keys().blob(meta.etag()),
                size: meta.content_size(),
            },
        };
        if body == Want::Head {
            return Ok(Served::Meta(meta));
        }
        if pulls.upstream_down() && !s3.has_blob(meta.etag(), meta.content_size()).await.unwrap_or(false) {
            return Err(respond::hub_error(
                StatusCode::BAD_GATEWAY,
                None,
                "the mirror's upstream is unreachable and its store lacks this file",
                None,
            ));
        }
        let (etag, size) = (meta.etag().to_string(), meta.content_size());
        let deadline = Instant::now() + PULL_WAIT;
        let mut backoff = Duration::from_millis(50);
        loop {
            if s3.has_blob(&etag, size).await.map_err(|e| store_error(&e))? {
                let one = BTreeMap::from([(path.clone(), meta.clone())]);
                s3.add_to_manifest(repo, commit, &one)
                    .await
                    .map_err(|e| store_error(&e))?;
                return Ok(Served::Stored(stored(&meta)));
            }
            // One fill per blob in this process: the first request registers it before
            // asking for the lease; the others wait for its outcome.
            let (done_tx, done_rx) = watch::channel(None);
            let running = {
                let mut m = pulls.fills.lock().map_err(|_| internal())?;
                match m.get(&etag) {
                    Some(f) => Some(f.clone()),
                    None => {
                        m.insert(etag.clone(), done_rx.clone());
                        None
                    }
                }
            };
            if let Some(mut fill) = running {
                let outcome = fill.wait_for(Option::is_some).await.map(|o| o.clone()).ok().flatten();
                if let Some(Err(e)) = outcome {
                    return Err(respond::hub_error(StatusCode::BAD_GATEWAY, None, &e, None));
                }
                continue;
            }
            let holder = format!("{}-{}", pulls.holder, hubcache::fs::random_suffix());
            let acquired = s3.try_lease(&etag, &holder, pulls.lease_ttl).await;
            let forget = || {
                if let Ok(mut m) = pulls.fills.lock() {
                    m.remove(&etag);
                }
            };
            let acquired = match acquired {
                Ok(a) => a,
                Err(e) => {
                    forget();
                    let _ = done_tx.send(Some(Err(e.to_string())));
                    return Err(store_error(&e));
                }
            };
            match acquired {
                Acquire::Held(lease) => {
                    let live = body == Want::Full;
                    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
                    let job = FillJob {
                        s3: s3.clone(),
                        hub: up_hub(up),
                        repo: repo.clone(),
                        commit: commit.clone(),
                        path: path.clone(),
                        meta: meta.clone(),
                        lease_ttl: pulls.lease_ttl,
                        client: live.then_some(tx),
                    };
                    let (fills, key) = (pulls.fills.clone(), etag.clone());
                    tokio::spawn(async move {
                        let outcome = job.run(lease).await;
                        if let Ok(mut m) = fills.lock() {
                            m.remove(&key);
                        }
                        let _ = done_tx.send(Some(outcome));
                    });
                    if live {
                        let stream =
                            futures_util::stream::unfold(
                                rx,
                                |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
                            );
                        return Ok(Served::Live(meta, Box::pin(stream) as BlobStream));
                    }
                    let mut done = done_rx;
                    if let Ok(Some(Err(e))) = done.wait_for(Option::is_some).await.map(|o| o.clone()) {
                        return Err(respond::hub_error(StatusCode::BAD_GATEWAY, None, &e, None));
                    }
                }
                Acquire::Busy(_) => {
                    // Another replica fills it: local waiters poll with us.
                    forget();
                    let _ = done_tx.send(Some(Ok(())));
                    if Instant::now() > deadline {
                        return Err(respond::hub_error(
                            StatusCode::GATEWAY_TIMEOUT,
                            None,
                            "another mirror replica is still fetching this file",
                            None,
                        ));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

fn up_hub(up: &Upstream) -> hubcache::Hub {
    up.hub().clone()
}

/// One blob fill: upstream → S3 (and a client), under a lease.
struct FillJob {
    s3: Arc<S3Store>,
    hub: hubcache::Hub,
    repo: Repo,
    commit: CommitHash,
    path: RepoPath,
    meta: TreeFile,
    lease_ttl: Duration,
    client: Option<tokio::sync::mpsc::Sender<io::Result<Bytes>>>,
}

impl FillJob {
    /// Fills the blob; the lease is released either way.
    async fn run(mut self, mut lease: crate::store::s3::lease::LeaseGuard) -> Result<(), String> {
        let result = self.fill(&mut lease).await;
        if let (Err(e), Some(c)) = (&result, &self.client) {
            let _ = c.send(Err(io::Error::other(e.clone()))).await;
        }
        self.s3.release_lease(lease).await;
        result
    }

    async fn fill(&mut self, lease: &mut crate::store::s3::lease::LeaseGuard) -> Result<(), String> {
        let (etag, size) = (self.meta.etag().to_string(), self.meta.content_size());
        let client = self.hub.client();
        let head = client
            .file_metadata(&self.repo, self.commit.as_str(), &self.path, true)
            .await
            .map_err(|e| format!("upstream: {e}"))?;
        let mut resp = client
            .get_content(&head.location, 0)
            .await
            .map_err(|e| format!("upstream: {e}"))?;
        let s3 = self.s3.clone();
        let mut upload = BlobUpload::begin(&s3, &etag, size).map_err(|e| e.to_string())?;
        let mut held: Option<Bytes> = None;
        let mut renewed = now_ms();
        let renew_every = (self.lease_ttl.as_millis() as u64 / 3).max(200);
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(60), resp.chunk())
                .await
                .map_err(|_| "upstream stalled".to_string())?
                .map_err(|e| format!("upstream body: {e}"))?;
            let Some(chunk) = chunk else { break };
            upload.write(&chunk).await.map_err(|e| e.to_string())?;
            if let Some(prev) = held.replace(chunk) {
                self.send_client(prev).await;
            }
            if now_ms() - renewed > renew_every {
                if !self.s3.renew_lease(lease, self.lease_ttl).await.unwrap_or(true) {
                    return Err("another replica took over the fill".into());
                }
                renewed = now_ms();
            }
        }
        upload.finish().await.map_err(|e| e.to_string())?;
        let one = BTreeMap::from([(self.path.clone(), self.meta.clone())]);
        self.s3
            .add_to_manifest(&self.repo, &self.commit, &one)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(last) = held {
            self.send_client(last).await;
        }
        Ok(())
    }

    /// Forwards bytes to the first client while it keeps up; a client gone, or one that reads
    /// nothing for [`CLIENT_STALL`], is dropped, and the fill goes on for everyone else.
    async fn send_client(&mut self, chunk: Bytes) {
        if let Some(c) = &self.client {
            if !matches!(tokio::time::timeout(CLIENT_STALL, c.send(Ok(chunk))).await, Ok(Ok(()))) {
                self.client = None;
            }
        }
    }
}
