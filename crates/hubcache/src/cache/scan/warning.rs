//! Why a repo folder was left out of the report: Python's `CorruptedCacheException` messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a repo folder was left out of the report (Python's `CorruptedCacheException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanWarning {
    /// A root entry that is not a folder (e.g. a stray `version.txt`).
    NotADirectory {
        /// The entry.
        path: PathBuf,
    },
    /// A root folder without `--` in its name.
    InvalidName {
        /// The folder.
        path: PathBuf,
    },
    /// A root folder whose prefix is not a repo type.
    UnknownRepoType {
        /// The prefix found.
        prefix: String,
        /// The folder.
        path: PathBuf,
    },
    /// A repo folder without `snapshots/`.
    MissingSnapshots {
        /// The missing `snapshots` path.
        path: PathBuf,
    },
    /// `refs` is a file.
    RefsIsFile {
        /// The `refs` path.
        path: PathBuf,
    },
    /// A plain file directly in `snapshots/`.
    FileInSnapshots {
        /// The file.
        path: PathBuf,
    },
    /// A snapshot entry whose blob is gone.
    BrokenSymlink {
        /// The blob path (first hop) that does not exist.
        blob_path: PathBuf,
    },
    /// Refs whose content names no snapshot folder.
    MissingCommits {
        /// Content of each dangling ref → the ref names holding it.
        refs: BTreeMap<String, Vec<String>>,
        /// The repo folder.
        repo_path: PathBuf,
    },
    /// Something could not be read (Python would stop with an exception here).
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
}

impl ScanWarning {
    /// The repo folder (or root entry) the warning is about.
    pub fn path(&self) -> &Path {
        match self {
            ScanWarning::NotADirectory { path }
            | ScanWarning::InvalidName { path }
            | ScanWarning::UnknownRepoType { path, .. }
            | ScanWarning::MissingSnapshots { path }
            | ScanWarning::RefsIsFile { path }
            | ScanWarning::FileInSnapshots { path }
            | ScanWarning::Unreadable { path, .. } => path,
            ScanWarning::BrokenSymlink { blob_path } => blob_path,
            ScanWarning::MissingCommits { repo_path, .. } => repo_path,
        }
    }
}

/// Python's `repr()` of a str, enough for ref contents.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

impl fmt::Display for ScanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanWarning::NotADirectory { path } => write!(f, "Repo path is not a directory: {}", path.display()),
            ScanWarning::InvalidName { path } => write!(
                f,
                "Repo path is not a valid HuggingFace cache directory: {}",
                path.display()
            ),
            ScanWarning::UnknownRepoType { prefix, path } => write!(
                f,
                "Repo type must be one of ['datasets', 'kernels', 'models', 'spaces'], found `{prefix}` ({}).",
                path.display()
            ),
            ScanWarning::MissingSnapshots { path } => {
                write!(f, "Snapshots dir doesn't exist in cached repo: {}", path.display())
            }
            ScanWarning::RefsIsFile { path } => write!(f, "Refs directory cannot be a file: {}", path.display()),
            ScanWarning::FileInSnapshots { path } => {
                write!(f, "Snapshots folder corrupted. Found a file: {}", path.display())
            }
            ScanWarning::BrokenSymlink { blob_path } => {
                write!(f, "Blob missing (broken symlink): {}", blob_path.display())
            }
            ScanWarning::MissingCommits { refs, repo_path } => {
                let items: Vec<String> = refs
                    .iter()
                    .map(|(hash, names)| {
                        let names: Vec<String> = names.iter().map(|n| py_repr(n)).collect();
                        format!("{}: {{{}}}", py_repr(hash), names.join(", "))
                    })
                    .collect();
                write!(
                    f,
                    "Reference(s) refer to missing commit hashes: {{{}}} ({}).",
                    items.join(", "),
                    repo_path.display()
                )
            }
            ScanWarning::Unreadable { path, message } => write!(f, "Cannot read {}: {message}", path.display()),
        }
    }
}
