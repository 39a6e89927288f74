//! The Hub as a [`TreeSource`] for `cache verify --remote`: the network half of verification,
//! kept above `cache` so the cache layer never names the Hub client.
//!
//! `TreeSource` is synchronous (verification hashes on a thread pool). Each listing runs on a
//! short-lived thread of its own with a current-thread runtime, so calling it from inside an
//! async runtime (the mirror, an async caller) is safe: nothing calls `block_on` on a runtime
//! thread.

use std::collections::BTreeMap;

use crate::cache::verify::{Digest, TreeSource};
use crate::cache::CacheError;
use crate::digest::DigestKind;
use crate::hub::{HubClient, HubError, TreeEntry};
use crate::repo::Repo;

/// A [`TreeSource`] that asks the Hub (`GET /api/{type}s/{id}/tree/{commit}?recursive=true`).
#[derive(Debug, Clone)]
pub struct HubTrees {
    client: HubClient,
}

impl HubTrees {
    /// Lists through `client`.
    pub fn new(client: HubClient) -> HubTrees {
        HubTrees { client }
    }

    fn list(&self, repo: &Repo, commit: &str) -> Result<Vec<TreeEntry>, HubError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| HubError::Connect {
                        url: self.client.endpoint().to_string(),
                        detail: format!("cannot start an I/O runtime: {e}"),
                    })?;
                runtime.block_on(self.client.list_tree(repo, commit))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(HubError::Transfer {
                    url: self.client.endpoint().to_string(),
                    detail: "the listing thread panicked".into(),
                })
            })
        })
    }
}

/// Python's choice of digest for a listed file: `lfs.sha256` if any, else the git `oid`.
pub fn listed_digest(entry: &TreeEntry) -> Digest {
    match &entry.lfs {
        Some(lfs) if !lfs.oid.is_empty() => Digest {
            kind: DigestKind::Sha256,
            hex: lfs.oid.to_ascii_lowercase(),
        },
        _ => Digest {
            kind: DigestKind::GitSha1,
            hex: entry.oid.to_ascii_lowercase(),
        },
    }
}

impl TreeSource for HubTrees {
    fn files(&self, repo: &Repo, commit: &str) -> Result<BTreeMap<String, Digest>, CacheError> {
        let entries = self.list(repo, commit).map_err(|source| CacheError::Remote {
            repo: format!("{}/{}", repo.repo_type, repo.id),
            revision: commit.to_string(),
            source: Box::new(source),
        })?;
        Ok(entries
            .into_iter()
            .filter(|e| e.kind == "file")
            .map(|e| (e.path.clone(), listed_digest(&e)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_digest_prefers_lfs() {
        let mut e: TreeEntry = serde_json::from_str(r#"{"type":"file","path":"a","size":1,"oid":"AB"}"#).unwrap();
        assert_eq!(listed_digest(&e).kind, DigestKind::GitSha1);
        assert_eq!(listed_digest(&e).hex, "ab");
        e.lfs = Some(crate::hub::client::LfsInfo {
            oid: "CD".into(),
            size: 1,
            pointer_size: None,
        });
        assert_eq!(listed_digest(&e).kind, DigestKind::Sha256);
        assert_eq!(listed_digest(&e).hex, "cd");
    }
}
