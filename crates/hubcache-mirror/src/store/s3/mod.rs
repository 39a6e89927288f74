//! An S3-compatible object store as the mirror's store (feature `s3`), on `object_store`.
//!
//! The bucket layout is in [`layout`]. Every replica over one prefix reads the same objects
//! and keeps no state of its own beyond memoised immutable objects (commit listings, and the
//! entries of snapshot manifests, which only ever grow), so any replica answers as any other.
//!
//! - Metadata (refs, listings, manifests, the marker) travels through a client with a total
//!   request timeout, so a stalled small request is retried rather than waited on.
//! - Blob bytes travel through a client without a total timeout (a 1 GiB body takes its
//!   time); a body that yields nothing for the I/O timeout fails instead ([`S3Store::read_range`]).
//! - Refs change by conditional writes (create-if-absent, or `If-Match` on the e-tag read), so
//!   two replicas never lose an update; blobs are written once, verified ([`fill`]).

pub mod fill;
pub mod layout;
pub mod lease;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hubcache::cache::tree::TreeFile;
use hubcache::{CommitHash, Repo, RepoPath};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};

use self::layout::{FileMap, Keys, Marker};
use super::{BlobStream, CachedFile, FileState};

/// A commit listing, shared.
pub type Listing = Arc<BTreeMap<RepoPath, TreeFile>>;

/// Where the store is and how to reach it (`s3://BUCKET/PREFIX` plus the `AWS_*` variables).
#[derive(Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// Endpoint URL (`AWS_ENDPOINT_URL`); AWS itself when unset.
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: String,
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    /// Plain HTTP allowed (`AWS_ALLOW_HTTP=true`).
    pub allow_http: bool,
    /// Silence after which an S3 request or body read fails (then retried or reported).
    pub io_timeout: Duration,
    /// Retries of a failed S3 request (500, 503, SlowDown, reset, timeout).
    pub max_retries: usize,
    /// How long a pull-through lease holds without renewal (a dead replica blocks a blob
    /// at most this long).
    pub lease_ttl: Duration,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &self.credentials_summary())
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Config {
    /// Parses `s3://BUCKET[/PREFIX]` and reads the `AWS_*` settings through `var` (the caller
    /// owns the environment; tests pass their own).
    pub fn from_url(url: &str, var: impl Fn(&str) -> Option<String>) -> Result<S3Config, StoreError> {
        let bad = |detail: &str| StoreError::Url {
            url: url.to_string(),
            detail: detail.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(bad("the prefix has an empty, `.` or `..` segment"));
        }
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        Ok(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: set("AWS_ENDPOINT_URL_S3").or_else(|| set("AWS_ENDPOINT_URL")),
            region: set("AWS_REGION")
                .or_else(|| set("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: set("AWS_ACCESS_KEY_ID"),
            secret_access_key: set("AWS_SECRET_ACCESS_KEY"),
            session_token: set("AWS_SESSION_TOKEN"),
            allow_http: set("AWS_ALLOW_HTTP").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true")),
            io_timeout: Duration::from_secs(30),
            max_retries: 3,
            lease_ttl: Duration::from_secs(30),
        })
    }

    /// The URL, `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Which credentials are set, never their values.
    pub fn credentials_summary(&self) -> String {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), Some(_)) if self.session_token.is_some() => "access key, secret key and session token set".into(),
            (Some(_), Some(_)) => "access key and secret key set".into(),
            (Some(_), None) => "access key set, AWS_SECRET_ACCESS_KEY missing".into(),
            (None, Some(_)) => "secret key set, AWS_ACCESS_KEY_ID missing".into(),
            (None, None) => "none (instance or web-identity credentials, if any)".into(),
        }
    }

    /// `(name, value)` lines for `hubcache env`; no secret.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("bucket", self.bucket.clone()),
            (
                "prefix",
                if self.prefix.is_empty() {
                    "(bucket root)".into()
                } else {
                    self.prefix.clone()
                },
            ),
            (
                "endpoint",
                self.endpoint.clone().unwrap_or_else(|| "AWS (default)".into()),
            ),
            ("region", self.region.clone()),
            ("credentials", self.credentials_summary()),
            ("plain http", if self.allow_http { "allowed" } else { "refused" }.into()),
        ]
    }

    fn build(&self, total_timeout: Option<Duration>) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let mut options = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_connect_timeout(self.io_timeout.min(Duration::from_secs(10)))
            .with_pool_idle_timeout(Duration::from_secs(30));
        options = match total_timeout {
            Some(t) => options.with_timeout(t),
            None => options.with_timeout_disabled(),
        };
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: Duration::from_secs(60),
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_allow_http(self.allow_http)
            .with_client_options(options)
            .with_retry(retry);
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &self.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        if let Some(t) = &self.session_token {
            b = b.with_token(t);
        }
        let s3 = b.build().map_err(|e| StoreError::Config {
            url: self.url(),
            detail: e.to_string(),
        })?;
        Ok(Arc::new(s3))
    }
}

/// Why the S3 store cannot be used, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `--store` is not `s3://BUCKET[/PREFIX]`.
    #[error("invalid store URL `{url}`: {detail}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The client could not be configured.
    #[error("cannot configure the S3 client for {url}: {detail}")]
    Config {
        /// The store URL.
        url: String,
        /// The cause.
        detail: String,
    },
    /// S3 refused the credentials.
    #[error("S3 refused access to {url}: {source}")]
    Denied {
        /// The store URL.
        url: String,
        /// The cause.
        source: object_store::Error,
    },
    /// The bucket does not exist (or the endpoint is not the right server).
    #[error("the bucket `{bucket}` of {url} does not exist")]
    NoBucket {
        /// The store URL.
        url: String,
        /// The bucket.
        bucket: String,
    },
    /// The bucket holds something this build must not serve.
    #[error("refusing to use {url}: {detail}")]
    Layout {
        /// The store URL.
        url: String,
        /// What was found.
        detail: String,
    },
    /// An S3 request failed (after its retries).
    #[error("S3 {op} of {key} failed: {source}")]
    S3 {
        /// What was done.
        op: &'static str,
        /// The object key.
        key: String,
        /// The cause.
        source: object_store::Error,
    },
    /// An object of the layout is malformed.
    #[error("malformed object {key} in the store: {detail}")]
    Malformed {
        /// The object key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// Content did not match its id: nothing was made visible.
    #[error("blob {etag} does not match its id ({detail}); upload aborted")]
    Verify {
        /// The blob id.
        etag: String,
        /// What did not match.
        detail: String,
    },
    /// Reading local input failed.
    #[error("cannot read {what}: {source}")]
    Io {
        /// What was read.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

impl StoreError {
    /// What the operator can do about it.
    pub fn hints(&self) -> Vec<String> {
        match self {
            StoreError::Url { .. } => vec!["write the store as s3://BUCKET or s3://BUCKET/PREFIX".into()],
            StoreError::Config { .. } => {
                vec!["check AWS_ENDPOINT_URL and AWS_REGION (`hubcache env --store …` shows them)".into()]
            }
            StoreError::Denied { .. } => vec![
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and the bucket's policy"
                    .into(),
            ],
            StoreError::NoBucket { .. } => {
                vec!["create the bucket first, or check AWS_ENDPOINT_URL and the bucket name".into()]
            }
            StoreError::Layout { .. } => vec![
                "point --store at an empty prefix (it is initialised) or one written by this hubcache version".into(),
            ],
            StoreError::S3 {
                source: object_store::Error::NotFound { .. },
                ..
            } => {
                vec!["check that the bucket exists and AWS_ENDPOINT_URL points at the right server".into()]
            }
            StoreError::S3 { .. } => {
                vec!["check that the S3 endpoint is reachable (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP for http://)".into()]
            }
            StoreError::Malformed { .. } => {
                vec!["the object was changed by another tool; re-import or re-push the repo".into()]
            }
            StoreError::Verify { .. } => vec!["the source is damaged; fetch it again".into()],
            StoreError::Io { .. } => vec!["check the input path and permissions".into()],
        }
    }

    /// Whether the failure is S3 being unavailable (answer 503, not 404).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::S3 { .. } | StoreError::Denied { .. })
    }
}

/// An S3 prefix laid out as in [`layout`].
pub struct S3Store {
    meta: Arc<dyn ObjectStore>,
    data: Arc<dyn ObjectStore>,
    keys: Keys,
    url: String,
    bucket: String,
    io_timeout: Duration,
    /// Immutable listings read so far.
    listings: Mutex<HashMap<(Repo, CommitHash), Listing>>,
    /// Snapshot manifests read so far (they only grow; a path missing here is read again).
    manifests: Mutex<HashMap<(Repo, CommitHash), Listing>>,
    /// Per manifest key: its writer's turn, and the additions queued for the next write.
    manifest_writers: Mutex<HashMap<String, ManifestWriter>>,
}

/// One manifest's writer lock and queued additions.
type ManifestWriter = (Arc<tokio::sync::Mutex<()>>, BTreeMap<RepoPath, TreeFile>);

fn poisoned(key: &str) -> StoreError {
    StoreError::Malformed {
        key: key.to_string(),
        detail: "internal lock poisoned".into(),
    }
}

/// Pause before reading back a conditional write. On AWS S3 (and R2, MinIO) a conditional
/// PUT is atomic; some S3-compatible servers (s3s-fs among them) check the condition, then
/// write, so two racing writers can both succeed. Reading back after this pause (longer than
/// a small PUT takes) tells the loser, which then merges and writes again.
pub const SETTLE: Duration = Duration::from_millis(100);

/// Memoised objects kept at most (each map is cleared when it grows past this).
const MEMO_MAX: usize = 512;

fn obj(key: &str) -> ObjPath {
    ObjPath::from(key)
}

fn s3_err<'a>(op: &'static str, key: &'a str) -> impl FnOnce(object_store::Error) -> StoreError + 'a {
    move |source| StoreError::S3 {
        op,
        key: key.to_string(),
        source,
    }
}

impl S3Store {
    /// Connects, then checks the marker: a store of this layout version is opened; an empty
    /// prefix is initialised; anything else (objects of another tool, another version, no
    /// bucket, wrong credentials) is refused with the reason.
    pub async fn open(config: &S3Config) -> Result<S3Store, StoreError> {
        let store = S3Store {
            meta: config.build(Some(config.io_timeout))?,
            data: config.build(None)?,
            keys: Keys::new(&config.prefix),
            url: config.url(),
            bucket: config.bucket.clone(),
            io_timeout: config.io_timeout,
            listings: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            manifest_writers: Mutex::new(HashMap::new()),
        };
        store.check_layout().await?;
        Ok(store)
    }

    /// The store URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The layout's key math.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Connection-level errors at start-up become [`StoreError::Denied`] when S3 said so.
    fn startup_err(&self, op: &'static str, key: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                StoreError::Denied {
                    url: self.url.clone(),
                    source: e,
                }
            }
            source => StoreError::S3 {
                op,
                key: key.to_string(),
                source,
            },
        }
    }

    async fn check_layout(&self) -> Result<(), StoreError> {
        let key = self.keys.marker();
        let refuse = |detail: String| StoreError::Layout {
            url: self.url.clone(),
            detail,
        };
        for _ in 0..2 {
            match self.get_small(&key).await {
                Ok(Some((bytes, _))) => {
                    return match layout::refuse_marker(&bytes) {
                        None => Ok(()),
                        Some(why) => Err(refuse(why)),
                    };
                }
                Ok(None) => {}
                Err(StoreError::S3 { source, .. }) => return Err(self.startup_err("GET", &key, source)),
                Err(e) => return Err(e),
            }
            // No marker: initialise an empty prefix; refuse one that holds anything.
            let list_prefix = if self.keys.prefix().is_empty() {
                None
            } else {
                Some(obj(self.keys.prefix()))
            };
            let mut listing = self.meta.list(list_prefix.as_ref());
            match listing.next().await {
                Some(Ok(o)) => {
                    return Err(refuse(format!(
                        "it holds objects (e.g. {}) but no {}: another tool's layout?",
                        o.location,
                        layout::MARKER
                    )))
                }
                Some(Err(e)) if e.to_string().contains("NoSuchBucket") => {
                    return Err(StoreError::NoBucket {
                        url: self.url.clone(),
                        bucket: self.bucket.clone(),
                    })
                }
                Some(Err(e)) => return Err(self.startup_err("LIST", self.keys.prefix(), e)),
                None => {}
            }
            drop(listing);
            let body = serde_json::to_vec(&Marker::current()).unwrap_or_default();
            match self.put_create(&key, body.into()).await {
                Ok(_) => return Ok(()),
                // Another replica initialised it first: read it again.
                Err(StoreError::S3 {
                    source: object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                    ..
                }) => continue,
                Err(StoreError::S3 { source, .. }) => return Err(self.startup_err("PUT", &key, source)),
                Err(e) => return Err(e),
            }
        }
        Err(refuse("its marker keeps changing".into()))
    }

    /// A small object and its version, `None` when absent.
    async fn get_small(&self, key: &str) -> Result<Option<(Bytes, UpdateVersion)>, StoreError> {
        match self.meta.get(&obj(key)).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(s3_err("GET", key))?;
                Ok(Some((bytes, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_err("GET", key)(e)),
        }
    }

    async fn put_create(&self, key: &str, body: PutPayload) -> Result<(), StoreError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.meta
            .put_opts(&obj(key), body, opts)
            .await
            .map_err(s3_err("PUT", key))?;
        Ok(())
    }

    /// Whether the store knows anything of the repo.
    pub async fn has_repo(&self, repo: &Repo) -> Result<bool, StoreError> {
        let key = self.keys.repo_dir(repo);
        let prefix = obj(&key);
        let mut listing = self.meta.list(Some(&prefix));
        match listing.next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(s3_err("LIST", &key)(e)),
            None => Ok(false),
        }
    }

    /// The commit a branch or tag names in the store.
    pub async fn resolve_ref(&self, repo: &Repo, name: &str) -> Result<Option<CommitHash>, StoreError> {
        let key = self.keys.git_ref(repo, name);
        let Some((bytes, _)) = self.get_small(&key).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        CommitHash::new(text.trim())
            .map(Some)
            .map_err(|e| StoreError::Malformed {
                key,
                detail: e.to_string(),
            })
    }

    /// Points a branch or tag at `commit`: create-if-absent, else `If-Match` on the version
    /// read, retried on a lost race, so concurrent writers never lose an update.
    pub async fn write_ref(&self, repo: &Repo, name: &str, commit: &CommitHash) -> Result<(), StoreError> {
        let key = self.keys.git_ref(repo, name);
        let mut wrote = false;
        for _ in 0..8 {
            let mode = match self.get_small(&key).await? {
                Some((bytes, _)) if bytes.as_ref() == commit.as_str().as_bytes() => return Ok(()),
                // Written, yet another commit is there: a later writer's update won.
                Some(_) if wrote => return Ok(()),
                Some((_, version)) => PutMode::Update(version),
                None => PutMode::Create,
            };
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            let body = PutPayload::from(commit.as_str().to_string());
            match self.meta.put_opts(&obj(&key), body, opts).await {
                Ok(_) => {
                    wrote = true;
                    tokio::time::sleep(SETTLE).await;
                }
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => continue,
                Err(e) => return Err(s3_err("PUT", &key)(e)),
            }
        }
        Err(StoreError::Malformed {
            key,
            detail: "the ref kept changing under 8 conditional writes".into(),
        })
    }

    fn parse_map(key: &str, bytes: &[u8]) -> Result<Listing, StoreError> {
        let map: FileMap = serde_json::from_slice(bytes).map_err(|e| StoreError::Malformed {
            key: key.to_string(),
            detail: e.to_string(),
        })?;
        let mut out = BTreeMap::new();
        for (p, f) in map.files {
            let path = RepoPath::new(&p).map_err(|e| StoreError::Malformed {
                key: key.to_string(),
                detail: e.to_string(),
            })?;
            if !hubcache::repo::is_valid_etag(f.etag()) {
                return Err(StoreError::Malformed {
                    key: key.to_string(),
                    detail: format!("{p} names no valid blob"),
                });
            }
            out.insert(path, f);
        }
        Ok(Arc::new(out))
    }

    fn to_map(files: &BTreeMap<RepoPath, TreeFile>) -> Vec<u8> {
        let map = FileMap {
            files: files.iter().map(|(p, f)| (p.as_str().to_string(), f.clone())).collect(),
        };
        serde_json::to_vec(&map).unwrap_or_default()
    }

    fn memo(map: &Mutex<HashMap<(Repo, CommitHash), Listing>>, k: (Repo, CommitHash), v: Listing) {
        if let Ok(mut m) = map.lock() {
            if m.len() >= MEMO_MAX {
                m.clear();
            }
            m.insert(k, v);
        }
    }

    /// The full listing of a commit, when the store has it.
    pub async fn listing(&self, repo: &Repo, commit: &CommitHash) -> Result<Option<Listing>, StoreError> {
        let k = (repo.clone(), commit.clone());
        if let Some(l) = self.listings.lock().ok().and_then(|m| m.get(&k).cloned()) {
            return Ok(Some(l));
        }
        let key = self.keys.listing(repo, commit);
        let Some((bytes, _)) = self.get_small(&key).await? else {
            return Ok(None);
        };
        let listing = Self::parse_map(&key, &bytes)?;
        Self::memo(&self.listings, k, listing.clone());
        Ok(Some(listing))
    }

    /// Stores a commit's full listing unless it is there (listings are immutable).
    pub async fn put_listing(
        &self,
        repo: &Repo,
        commit: &CommitHash,
        files: &BTreeMap<RepoPath, TreeFile>,
    ) -> Result<(), StoreError> {
        let key = self.keys.listing(repo, commit);
        match self.put_create(&key, Self::to_map(files).into()).await {
            Ok(()) => Ok(()),
            Err(StoreError::S3 {
                source: object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The snapshot manifest: the files of the commit whose blobs the store holds.
    pub async fn manifest(&self, repo: &Repo, commit: &CommitHash, fresh: bool) -> Result<Option<Listing>, StoreError> {
        let k = (repo.clone(), commit.clone());
        if !fresh {
            if let Some(l) = self.manifests.lock().ok().and_then(|m| m.get(&k).cloned()) {
                return Ok(Some(l));
            }
        }
        let key = self.keys.manifest(repo, commit);
        let Some((bytes, _)) = self.get_small(&key).await? else {
            return Ok(None);
        };
        let manifest = Self::parse_map(&key, &bytes)?;
        Self::memo(&self.manifests, k, manifest.clone());
        Ok(Some(manifest))
    }

    /// Adds files (whose blobs are already stored) to a commit's manifest, by conditional
    /// writes retried on a lost race: a concurrent addition by another replica is kept.
    ///
    /// In this process one writer per manifest at a time, carrying every addition queued
    /// meanwhile: a snapshot of many files filled at once costs few writes, not one race each.
    pub async fn add_to_manifest(
        &self,
        repo: &Repo,
        commit: &CommitHash,
        files: &BTreeMap<RepoPath, TreeFile>,
    ) -> Result<(), StoreError> {
        let key = self.keys.manifest(repo, commit);
        let turn = {
            let mut w = self.manifest_writers.lock().map_err(|_| poisoned(&key))?;
            let (lock, queued) = w.entry(key.clone()).or_default();
            queued.extend(files.iter().map(|(p, f)| (p.clone(), f.clone())));
            lock.clone()
        };
        let _turn = turn.lock().await;
        let mut batch = {
            let mut w = self.manifest_writers.lock().map_err(|_| poisoned(&key))?;
            w.get_mut(&key).map(|(_, q)| std::mem::take(q)).unwrap_or_default()
        };
        // Ours may have gone with an earlier writer's batch (whose outcome we cannot see).
        batch.extend(files.iter().map(|(p, f)| (p.clone(), f.clone())));
        self.write_manifest(repo, commit, &key, &batch).await
    }

    async fn write_manifest(
        &self,
        repo: &Repo,
        commit: &CommitHash,
        key: &str,
        files: &BTreeMap<RepoPath, TreeFile>,
    ) -> Result<(), StoreError> {
        let key = key.to_string();
        for attempt in 0..32u32 {
            let (mut current, mode) = match self.get_small(&key).await? {
                Some((bytes, version)) => ((*Self::parse_map(&key, &bytes)?).clone(), PutMode::Update(version)),
                None => (BTreeMap::new(), PutMode::Create),
            };
            if files.iter().all(|(p, f)| current.get(p) == Some(f)) {
                Self::memo(&self.manifests, (repo.clone(), commit.clone()), Arc::new(current));
                return Ok(());
            }
            current.extend(files.iter().map(|(p, f)| (p.clone(), f.clone())));
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            match self
                .meta
                .put_opts(&obj(&key), Self::to_map(&current).into(), opts)
                .await
            {
                // Confirmed by the next round, after the settle pause (see [`SETTLE`]).
                Ok(_) => tokio::time::sleep(SETTLE).await,
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    // Lost the race: back off a little (jittered) and merge again.
                    let ms = 5 + u64::from(attempt) * 10 + fastrand_ms();
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) => return Err(s3_err("PUT", &key)(e)),
            }
        }
        Err(StoreError::Malformed {
            key,
            detail: "the manifest kept changing under 32 conditional writes".into(),
        })
    }

    /// What the store says about one file at one commit.
    pub async fn file(&self, repo: &Repo, commit: &CommitHash, path: &RepoPath) -> Result<FileState, StoreError> {
        let mut manifest = self.manifest(repo, commit, false).await?;
        if manifest.as_ref().is_none_or(|m| !m.contains_key(path)) {
            manifest = self.manifest(repo, commit, true).await?;
        }
        if let Some(meta) = manifest.as_ref().and_then(|m| m.get(path)) {
            return Ok(FileState::Cached(CachedFile {
                meta: meta.clone(),
                blob: super::BlobRef::Object {
                    key: self.keys.blob(meta.etag()),
                    size: meta.content_size(),
                },
            }));
        }
        match self.listing(repo, commit).await? {
            Some(l) if !l.contains_key(path) => Ok(FileState::Missing),
            _ => Ok(FileState::Unknown),
        }
    }

    /// Whether a blob is stored (a HEAD; the object's size must be the expected one).
    pub async fn has_blob(&self, etag: &str, size: u64) -> Result<bool, StoreError> {
        let key = self.keys.blob(etag);
        match self.meta.head(&obj(&key)).await {
            Ok(m) => Ok(m.size == size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_err("HEAD", &key)(e)),
        }
    }

    /// Streams `len` bytes of object `key` from `start` with one ranged GET. A body that stops
    /// for the I/O timeout, or ends early, ends the stream with an error (never a short stream
    /// that looks complete).
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> io::Result<BlobStream> {
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let range = start..(start + len);
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..Default::default()
        };
        let got = tokio::time::timeout(self.io_timeout, self.data.get_opts(&obj(key), opts))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("S3 GET of {key} timed out")))?
            .map_err(|e| io::Error::other(format!("S3 GET of {key}: {e}")))?;
        let inner = got.into_stream();
        let idle = self.io_timeout;
        let key = key.to_string();
        let state = (inner, len, key, idle, false);
        let stream = futures_util::stream::unfold(state, |(mut inner, left, key, idle, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout(idle, inner.next()).await {
                Err(_) => Some((
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("S3 body of {key} stalled"),
                    )),
                    (inner, left, key, idle, true),
                )),
                Ok(Some(Ok(chunk))) if chunk.len() as u64 <= left => {
                    let left = left - chunk.len() as u64;
                    Some((Ok(chunk), (inner, left, key, idle, false)))
                }
                Ok(Some(Ok(_))) => Some((
                    Err(io::Error::other(format!("S3 sent more of {key} than asked"))),
                    (inner, left, key, idle, true),
                )),
                Ok(Some(Err(e))) => Some((
                    Err(io::Error::other(format!("S3 body of {key}: {e}"))),
                    (inner, left, key, idle, true),
                )),
                Ok(None) if left == 0 => None,
                Ok(None) => Some((
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("S3 body of {key} ended early"),
                    )),
                    (inner, left, key, idle, true),
                )),
            }
        });
        Ok(Box::pin(stream))
    }

    /// The client for blob bytes (no total timeout).
    pub(crate) fn data(&self) -> &Arc<dyn ObjectStore> {
        &self.data
    }

    /// The client for small objects (total timeout).
    pub(crate) fn meta(&self) -> &Arc<dyn ObjectStore> {
        &self.meta
    }
}

/// A few milliseconds of jitter, without a random-number dependency.
fn fastrand_ms() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos % 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn urls_and_variables_resolve_and_secrets_never_show() {
        let vars = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-very-secret"),
            ("AWS_SESSION_TOKEN", "session-secret"),
            ("AWS_ALLOW_HTTP", "TRUE"),
        ];
        let c = S3Config::from_url("s3://models/fleet/hf/", env(&vars)).unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("models", "fleet/hf"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region, "eu-west-3");
        assert!(c.allow_http);
        let shown = format!("{c:?} {:?}", c.describe());
        assert!(shown.contains("session token set"), "{shown}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("session-secret"),
            "{shown}"
        );
        let root = S3Config::from_url("s3://models", env(&[])).unwrap();
        assert_eq!((root.prefix.as_str(), root.region.as_str()), ("", "us-east-1"));
        assert!(!root.allow_http);
        for bad in ["models/x", "s3://", "s3:///x", "s3://b/a/../c", "s3://b/a//c"] {
            assert!(S3Config::from_url(bad, env(&[])).is_err(), "{bad}");
        }
    }
}
