//! The bucket layout (pure key math and the marker format). Under `PREFIX/`:
//!
//! ```text
//! hubcache-store.json                                {"format":"hubcache-store","version":1}
//! blobs/<etag>                                       a blob, whole, by content id (immutable)
//! leases/<etag>                                      who is filling that blob, until when
//! repos/<type>s--<org>--<name>/refs/<name>           a branch or tag → commit (40 hex, no newline)
//! repos/<type>s--<org>--<name>/trees/<commit>.json   the commit's full listing (immutable)
//! repos/<type>s--<org>--<name>/snapshots/<commit>.json  the files of the commit the store holds
//! ```
//!
//! A repo's folder is named as in a cache (`models--org--name`), so no repo's objects sit
//! under another's prefix.
//!
//! An etag is the LFS sha256 (64 hex) or the git blob sha1 (40 hex), as in a cache's `blobs/`.
//! Listings and snapshot manifests map a path to its [`TreeFile`] (size, blob id, LFS sha256),
//! so the blob of a path is `blobs/<TreeFile::etag>`.

use std::collections::BTreeMap;

use hubcache::cache::tree::TreeFile;
use hubcache::{CommitHash, Repo};
use serde::{Deserialize, Serialize};

/// The marker's format name.
pub const FORMAT: &str = "hubcache-store";
/// The layout version this build reads and writes.
pub const VERSION: u32 = 1;
/// The marker object's name under the prefix.
pub const MARKER: &str = "hubcache-store.json";

/// `hubcache-store.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Always [`FORMAT`].
    pub format: String,
    /// Layout version.
    pub version: u32,
}

impl Marker {
    /// The marker this build writes.
    pub fn current() -> Marker {
        Marker {
            format: FORMAT.into(),
            version: VERSION,
        }
    }
}

/// A listing or snapshot manifest object: path → file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMap {
    /// Path in the repo → its listing entry.
    pub files: BTreeMap<String, TreeFile>,
}

/// A lease object: which replica fills a blob, and until when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// A random id of the holder (process and start).
    pub holder: String,
    /// When the lease lapses unless renewed.
    pub expires_ms: u64,
}

/// Object keys under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (no leading or trailing `/`; empty for the bucket root).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    /// `hubcache-store.json`.
    pub fn marker(&self) -> String {
        self.key(MARKER)
    }

    /// `blobs/<etag>`.
    pub fn blob(&self, etag: &str) -> String {
        self.key(&format!("blobs/{etag}"))
    }

    /// `leases/<etag>`.
    pub fn lease(&self, etag: &str) -> String {
        self.key(&format!("leases/{etag}"))
    }

    fn repo(&self, repo: &Repo) -> String {
        self.key(&format!("repos/{}", repo.folder_name()))
    }

    /// `repos/<type>s--<id>/refs/<name>`.
    pub fn git_ref(&self, repo: &Repo, name: &str) -> String {
        format!("{}/refs/{name}", self.repo(repo))
    }

    /// `repos/<type>s--<id>/trees/<commit>.json`.
    pub fn listing(&self, repo: &Repo, commit: &CommitHash) -> String {
        format!("{}/trees/{commit}.json", self.repo(repo))
    }

    /// `repos/<type>s--<id>/snapshots/<commit>.json`.
    pub fn manifest(&self, repo: &Repo, commit: &CommitHash) -> String {
        format!("{}/snapshots/{commit}.json", self.repo(repo))
    }

    /// `repos/<type>s--<id>/` (to ask whether the store knows a repo).
    pub fn repo_dir(&self, repo: &Repo) -> String {
        format!("{}/", self.repo(repo))
    }
}

/// Why a marker is refused, or `None` when this build serves it.
pub fn refuse_marker(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Marker>(bytes) {
        Ok(m) if m.format == FORMAT && m.version == VERSION => None,
        Ok(m) if m.format == FORMAT => Some(format!(
            "its layout is {FORMAT} version {}, this hubcache reads version {VERSION} only",
            m.version
        )),
        Ok(m) => Some(format!(
            "its {MARKER} names format `{}` version {}, not {FORMAT}",
            m.format.escape_debug(),
            m.version
        )),
        Err(e) => Some(format!("its {MARKER} is not a hubcache marker ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sit_under_the_prefix() {
        let repo = Repo::new(hubcache::RepoId::new("org/m").unwrap(), hubcache::RepoType::Dataset);
        let c = CommitHash::new(&"a".repeat(40)).unwrap();
        let k = Keys::new("/fleet/hf/");
        assert_eq!(k.marker(), "fleet/hf/hubcache-store.json");
        assert_eq!(k.blob("ab"), "fleet/hf/blobs/ab");
        assert_eq!(
            k.git_ref(&repo, "refs/pr/1"),
            "fleet/hf/repos/datasets--org--m/refs/refs/pr/1"
        );
        assert_eq!(
            k.manifest(&repo, &c),
            format!("fleet/hf/repos/datasets--org--m/snapshots/{c}.json")
        );
        assert_eq!(Keys::new("").lease("ab"), "leases/ab");
    }

    #[test]
    fn only_this_version_is_served() {
        assert_eq!(refuse_marker(br#"{"format":"hubcache-store","version":1}"#), None);
        let newer = refuse_marker(br#"{"format":"hubcache-store","version":2}"#).unwrap();
        assert!(newer.contains("version 2"), "{newer}");
        let other = refuse_marker(br#"{"format":"other-tool","version":1}"#).unwrap();
        assert!(other.contains("other-tool"), "{other}");
        assert!(refuse_marker(b"<xml/>").is_some());
    }
}
