//! Where answers come from: the cache first, the upstream (pull-through) on a miss.
//!
//! - A branch or tag resolves through the upstream when there is one (answers reused for
//!   [`REF_TTL`] and written to `refs/` so offline clients see them), else through `refs/`; an
//!   unreachable upstream falls back to the cache.
//! - A missing file is fetched into the cache by the hubcache client, once however many clients
//!   ask at the same time (single flight per repo, commit and path).
//! - A listing comes from the upstream, else from what the cache holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use hubcache::cache::tree::TreeFile;
use hubcache::hub::HubError;
use hubcache::{CommitHash, FileRequest, Hub, Repo, RepoPath, Revision};

use crate::respond;
use crate::serve_file::Want;
#[cfg(feature = "s3")]
use crate::server::Store;
use crate::server::{Mirror, Served};
use crate::store::{CachedFile, FileState};

/// How long a branch → commit answer from the upstream is reused, by default.
pub const REF_TTL: Duration = Duration::from_secs(30);

type FlightKey = String;
type Flights = Mutex<HashMap<FlightKey, Arc<tokio::sync::Mutex<()>>>>;

/// The upstream Hub and what the mirror remembers about it.
pub(crate) struct Upstream {
    hub: Hub,
    ref_ttl: Duration,
    /// Recent branch → commit answers.
    refs: Mutex<HashMap<(Repo, String), (CommitHash, Instant)>>,
    /// One lock per file being fetched: the first client transfers, the others wait for it.
    flights: Flights,
}

impl Upstream {
    /// Wraps a client whose cache folder is the one served.
    pub(crate) fn new(hub: Hub, ref_ttl: Duration) -> Self {
        Upstream {
            hub,
            ref_ttl,
            refs: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The client.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The commit a ref names upstream (reused for the ref TTL); `Ok(None)` when the upstream
    /// cannot be reached.
    pub(crate) async fn ref_commit(
        &self,
        repo: &Repo,
        revision: &Revision,
    ) -> Result<Option<CommitHash>, Response<Body>> {
        let key = (repo.clone(), revision.as_str().to_string());
        if let Some((c, at)) = self.refs.lock().ok().and_then(|m| m.get(&key).cloned()) {
            if at.elapsed() < self.ref_ttl {
                return Ok(Some(c));
            }
        }
        match self.hub.client().revision_commit(repo, revision.as_str()).await {
            Ok(sha) => {
                let commit = CommitHash::new(&sha).map_err(|_| {
                    respond::hub_error(StatusCode::BAD_GATEWAY, None, "upstream sent an invalid commit", None)
                })?;
                self.remember_ref(repo, revision, &commit).await;
                if let Ok(mut m) = self.refs.lock() {
                    m.insert(key, (commit.clone(), Instant::now()));
                }
                Ok(Some(commit))
            }
            Err(e) if !e.is_transient() => Err(upstream_error(&e)),
            Err(_) => Ok(None),
        }
    }

    /// Writes the ref into the served cache (best effort: a read-only cache still serves).
    /// The mirror's only write besides the pull-through download itself.
    async fn remember_ref(&self, repo: &Repo, revision: &Revision, commit: &CommitHash) {
        let Ok(writer) = self.hub.writer().await else { return };
        let layout = self.hub.cache().repo(repo);
        let (name, commit) = (revision.as_str().to_string(), commit.clone());
        let _ = tokio::task::spawn_blocking(move || writer.write_ref(&layout, &name, &commit)).await;
    }
}

/// Removes a finished (or abandoned) flight, so a handler dropped mid-transfer (client gone,
/// shutdown) does not leave its entry behind.
struct FlightGuard<'a> {
    flights: &'a Flights,
    key: FlightKey,
    flight: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.flights.lock() {
            // Only our entry: a later flight for the same file may have replaced it.
            if m.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                m.remove(&self.key);
            }
        }
    }
}

impl Mirror {
    /// Revision → commit: a commit as is; a ref from the upstream (cached briefly), else `refs/`.
    pub(crate) async fn resolve(&self, repo: &Repo, revision: &Revision) -> Result<CommitHash, Response<Body>> {
        #[cfg(feature = "s3")]
        if let Store::S3(s3) = self.store_kind() {
            return self.s3_resolve(s3, repo, revision).await;
        }
        if let Revision::Commit(c) = revision {
            if self.upstream.is_some() || self.has_repo(repo).await? {
                return Ok(c.clone());
            }
            return Err(respond::repo_not_found());
        }
        if let Some(up) = &self.upstream {
            if let Some(c) = up.ref_commit(repo, revision).await? {
                return Ok(c);
            }
            // Upstream unreachable: serve what the cache has.
        }
        let (r, rev) = (repo.clone(), revision.clone());
        match self.with_store(move |s| s.resolve(&r, &rev)).await? {
            Some(c) => Ok(c),
            None if self.has_repo(repo).await? => Err(respond::revision_not_found(revision.as_str())),
            None => Err(respond::repo_not_found()),
        }
    }

    async fn has_repo(&self, repo: &Repo) -> Result<bool, Response<Body>> {
        let repo = repo.clone();
        self.with_store(move |s| s.has_repo(&repo)).await
    }

    /// The file to answer a request with, from whichever store.
    pub(crate) async fn file_for(
        &self,
        repo: &Repo,
        commit: &CommitHash,
        path: &RepoPath,
        want: Want,
    ) -> Result<Served, Response<Body>> {
        #[cfg(feature = "s3")]
        if let Store::S3(s3) = self.store_kind() {
            return self.s3_file(s3, repo, commit, path, want).await;
        }
        let _ = want;
        self.file(repo, commit, path).await.map(Served::Stored)
    }

    /// The file, fetched from upstream on a miss (one transfer per file however many ask).
    pub(crate) async fn file(
        &self,
        repo: &Repo,
        commit: &CommitHash,
        path: &RepoPath,
    ) -> Result<CachedFile, Response<Body>> {
        match self.file_state(repo, commit, path).await? {
            FileState::Cached(f) => return Ok(f),
            FileState::Missing => return Err(respond::entry_not_found(commit.as_str())),
            FileState::Unknown => {}
        }
        let Some(up) = &self.upstream else {
            return Err(respond::entry_not_found(commit.as_str()));
        };
        let key = format!("{}/{}/{}/{}", repo.repo_type, repo.id, commit, path);
        let flight = up
            .flights
            .lock()
            .map(|mut m| m.entry(key.clone()).or_default().clone())
            .map_err(|_| respond::hub_error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error", None))?;
        let _guard = FlightGuard {
            flights: &up.flights,
            key,
            flight: flight.clone(),
        };
        let _turn = flight.lock().await;
        if let FileState::Cached(f) = self.file_state(repo, commit, path).await? {
            return Ok(f);
        }
        let req = FileRequest::new(repo.clone(), Revision::Commit(commit.clone()), path.clone());
        match up.hub.download_file(&req).await {
            Ok(_) => match self.file_state(repo, commit, path).await? {
                FileState::Cached(f) => Ok(f),
                _ => Err(respond::hub_error(
                    StatusCode::BAD_GATEWAY,
                    None,
                    "upstream file vanished",
                    None,
                )),
            },
            Err(e) => Err(match e.hub_error() {
                Some(h) => upstream_error(h),
                None => respond::hub_error(
                    StatusCode::BAD_GATEWAY,
                    None,
                    &format!("upstream download failed: {e}"),
                    None,
                ),
            }),
        }
    }

    async fn file_state(&self, repo: &Repo, commit: &CommitHash, path: &RepoPath) -> Result<FileState, Response<Body>> {
        let (repo, commit, path) = (repo.clone(), commit.clone(), path.clone());
        self.with_store(move |s| s.file(&repo, &commit, &path)).await
    }

    /// Every file of a commit: the full upstream listing, else the cached files.
    pub(crate) async fn listing(
        &self,
        repo: &Repo,
        commit: &CommitHash,
    ) -> Result<BTreeMap<RepoPath, TreeFile>, Response<Body>> {
        #[cfg(feature = "s3")]
        if let Store::S3(s3) = self.store_kind() {
            return self.s3_listing(s3, repo, commit).await;
        }
        if let Some(up) = &self.upstream {
            match up.hub.commit_listing(repo, commit).await {
                Ok(l) => return Ok(l),
                Err(e) => {
                    if let Some(h) = e.hub_error().filter(|h| !h.is_transient()) {
                        return Err(upstream_error(h));
                    }
                }
            }
        }
        let (r, c) = (repo.clone(), commit.clone());
        let (cached, has_snapshot) = self
            .with_store(move |s| {
                let files = s.cached_files(&r, &c);
                let has_snapshot = s.cache().repo(&r).snapshot_dir(&c).is_dir();
                (files, has_snapshot)
            })
            .await?;
        if cached.is_empty() && !has_snapshot {
            return Err(respond::revision_not_found(commit.as_str()));
        }
        Ok(cached.into_iter().map(|(p, f)| (p, f.meta)).collect())
    }
}

/// The Hub-style answer for an upstream failure.
pub(crate) fn upstream_error(e: &HubError) -> Response<Body> {
    match e {
        HubError::RepoNotFound { .. } => respond::repo_not_found(),
        HubError::RevisionNotFound { .. } => respond::revision_not_found("(upstream)"),
        HubError::EntryNotFound { commit, .. } => respond::entry_not_found(commit.as_deref().unwrap_or("")),
        HubError::Gated { message, .. } => respond::hub_error(
            StatusCode::FORBIDDEN,
            Some("GatedRepo"),
            message
                .as_deref()
                .unwrap_or("Access to this repository is restricted upstream"),
            None,
        ),
        other => respond::hub_error(StatusCode::BAD_GATEWAY, None, &format!("upstream: {other}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_flight_leaves_no_entry_and_spares_a_newer_one() {
        let flights: Flights = Mutex::new(HashMap::new());
        let enter = |key: &str| {
            let flight = flights.lock().unwrap().entry(key.into()).or_default().clone();
            FlightGuard {
                flights: &flights,
                key: key.into(),
                flight,
            }
        };
        let (a, b) = (enter("k"), enter("k"));
        assert!(Arc::ptr_eq(&a.flight, &b.flight));
        drop(a); // E.g. the handler future was dropped mid-transfer.
        assert!(flights.lock().unwrap().is_empty());
        let newer = enter("k");
        drop(b); // The old flight's last waiter must not remove the newer flight.
        assert_eq!(flights.lock().unwrap().len(), 1);
        drop(newer);
        assert!(flights.lock().unwrap().is_empty());
    }
}
