//! What a verification reports: the [`Finding`]s and the counts of [`VerifyReport`].

use std::path::PathBuf;

use crate::digest::Digest;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The content does not hash to what it should.
    Corrupt {
        /// The snapshot entry (or the blob, for a blob no snapshot uses).
        file_path: PathBuf,
        /// The blob it reads through.
        blob_path: PathBuf,
        /// What it should hash to.
        expected: Digest,
        /// What it hashes to.
        actual: String,
    },
    /// The snapshot entry's blob is gone.
    Missing {
        /// The snapshot entry.
        file_path: PathBuf,
        /// The blob it points at.
        blob_path: PathBuf,
    },
    /// A file or folder could not be read.
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The Hub lists a file that the snapshot does not have.
    RemoteMissing {
        /// `type/id`.
        repo: String,
        /// The commit.
        commit: String,
        /// Path in the repo.
        path: String,
    },
    /// The snapshot has a file that the Hub does not list.
    RemoteExtra {
        /// `type/id`.
        repo: String,
        /// The commit.
        commit: String,
        /// Path in the repo.
        path: String,
    },
    /// The local content does not hash to the Hub's digest.
    RemoteMismatch {
        /// The snapshot entry.
        file_path: PathBuf,
        /// The Hub's digest.
        expected: Digest,
        /// What the local content hashes to.
        actual: String,
    },
}

impl Finding {
    /// Whether this finding is a broken or corrupt file (always a failure), as opposed to a
    /// difference in the set of files (missing/extra against the Hub).
    pub fn is_damage(&self) -> bool {
        !matches!(self, Finding::RemoteMissing { .. } | Finding::RemoteExtra { .. })
    }
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Revisions looked at.
    pub revisions: usize,
    /// Files (snapshot entries and unused blobs) checked against a digest.
    pub files: usize,
    /// Distinct contents hashed.
    pub hashed: usize,
    /// Bytes read while hashing.
    pub bytes: u64,
    /// Files with nothing to compare with (no blob name, no listing).
    pub unverifiable: Vec<PathBuf>,
    /// Problems, sorted.
    pub findings: Vec<Finding>,
}

/// Order of findings in a report: damage first, by path, then differences with the Hub.
pub(super) fn sort_key(f: &Finding) -> (u8, String) {
    match f {
        Finding::Corrupt { file_path, .. } => (0, file_path.to_string_lossy().into_owned()),
        Finding::Missing { file_path, .. } => (1, file_path.to_string_lossy().into_owned()),
        Finding::Unreadable { path, .. } => (2, path.to_string_lossy().into_owned()),
        Finding::RemoteMismatch { file_path, .. } => (3, file_path.to_string_lossy().into_owned()),
        Finding::RemoteMissing { repo, commit, path } => (4, format!("{repo}@{commit}/{path}")),
        Finding::RemoteExtra { repo, commit, path } => (5, format!("{repo}@{commit}/{path}")),
    }
}
