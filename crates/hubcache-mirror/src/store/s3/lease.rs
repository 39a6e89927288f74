//! Single flight across replicas: before filling a blob from the upstream, a replica creates
//! `leases/<etag>` if absent (`If-None-Match: *`), holding an expiry it renews while it works.
//! Others wait for the blob; a lease past its expiry (its holder died) is taken over with
//! `If-Match` on the lapsed lease's e-tag, so exactly one replica takes it over.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};

use super::layout::Lease;
use super::{obj, S3Store, StoreError, SETTLE};

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A held lease.
#[derive(Debug)]
pub struct LeaseGuard {
    key: String,
    holder: String,
    version: UpdateVersion,
}

/// What an attempt to take a lease found.
#[derive(Debug)]
pub enum Acquire {
    /// This replica holds it now.
    Held(LeaseGuard),
    /// Another replica holds it until this time (Unix ms).
    Busy(u64),
}

fn body(holder: &str, ttl: Duration) -> PutPayload {
    let lease = Lease {
        holder: holder.to_string(),
        expires_ms: now_ms() + ttl.as_millis() as u64,
    };
    PutPayload::from(serde_json::to_vec(&lease).unwrap_or_default())
}

fn lost(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
    )
}

impl LeaseGuard {
    /// The guard of a lease just written by `holder` (its version from the PUT's answer).
    fn written(key: String, holder: &str, put: object_store::PutResult) -> LeaseGuard {
        LeaseGuard {
            key,
            holder: holder.to_string(),
            version: UpdateVersion {
                e_tag: put.e_tag,
                version: put.version,
            },
        }
    }
}

impl S3Store {
    /// Tries to take the lease on filling blob `etag` for `ttl`.
    pub async fn try_lease(&self, etag: &str, holder: &str, ttl: Duration) -> Result<Acquire, StoreError> {
        let key = self.keys().lease(etag);
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.meta().put_opts(&obj(&key), body(holder, ttl), create).await {
            Ok(r) => {
                let guard = LeaseGuard::written(key, holder, r);
                return self.confirm(guard, ttl).await;
            }
            Err(e) if lost(&e) => {}
            Err(source) => return Err(StoreError::S3 { op: "PUT", key, source }),
        }
        let Some((bytes, version)) = self.get_small(&key).await? else {
            // Released in between: the blob is likely there; the caller looks again.
            return Ok(Acquire::Busy(0));
        };
        // A lease nobody can read counts as lapsed.
        let expires = serde_json::from_slice::<Lease>(&bytes)
            .map(|l| l.expires_ms)
            .unwrap_or(0);
        if expires > now_ms() {
            return Ok(Acquire::Busy(expires));
        }
        let update = PutOptions {
            mode: PutMode::Update(version),
            ..Default::default()
        };
        match self.meta().put_opts(&obj(&key), body(holder, ttl), update).await {
            Ok(r) => {
                let guard = LeaseGuard::written(key, holder, r);
                self.confirm(guard, ttl).await
            }
            Err(e) if lost(&e) => Ok(Acquire::Busy(now_ms() + ttl.as_millis() as u64)),
            Err(source) => Err(StoreError::S3 { op: "PUT", key, source }),
        }
    }

    /// A won write is confirmed by reading the lease back after [`SETTLE`]: on a server whose
    /// conditional writes are not atomic, the last of racing writers holds it.
    async fn confirm(&self, guard: LeaseGuard, ttl: Duration) -> Result<Acquire, StoreError> {
        tokio::time::sleep(SETTLE).await;
        match self.get_small(&guard.key).await? {
            Some((bytes, version)) => match serde_json::from_slice::<Lease>(&bytes) {
                Ok(l) if l.holder == guard.holder => Ok(Acquire::Held(LeaseGuard { version, ..guard })),
                Ok(l) => Ok(Acquire::Busy(l.expires_ms)),
                Err(_) => Ok(Acquire::Busy(now_ms() + ttl.as_millis() as u64)),
            },
            None => Ok(Acquire::Busy(0)),
        }
    }

    /// Extends a held lease; false if another replica took it over meanwhile.
    pub async fn renew_lease(&self, lease: &mut LeaseGuard, ttl: Duration) -> Result<bool, StoreError> {
        let opts = PutOptions {
            mode: PutMode::Update(lease.version.clone()),
            ..Default::default()
        };
        match self
            .meta()
            .put_opts(&obj(&lease.key), body(&lease.holder, ttl), opts)
            .await
        {
            Ok(r) => {
                lease.version = UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                };
                Ok(true)
            }
            Err(e) if lost(&e) => Ok(false),
            Err(source) => Err(StoreError::S3 {
                op: "PUT",
                key: lease.key.clone(),
                source,
            }),
        }
    }

    /// Gives a lease up (best effort: an unreleased lease lapses at its expiry).
    pub async fn release_lease(&self, lease: LeaseGuard) {
        let mine = match self.get_small(&lease.key).await {
            Ok(Some((bytes, _))) => serde_json::from_slice::<Lease>(&bytes).is_ok_and(|l| l.holder == lease.holder),
            _ => false,
        };
        if mine {
            let _ = self.meta().delete(&obj(&lease.key)).await;
        }
    }
}
