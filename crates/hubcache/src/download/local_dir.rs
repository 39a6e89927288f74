//! `--local-dir` mode: real files in a folder of the user's, with huggingface_hub's
//! `.cache/huggingface/download/<path>.metadata` (commit, etag, timestamp) so re-runs skip
//! files that did not change.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::file::{describe_file, KnownFile};
use super::off_worker;
use super::{FileRequest, Hub};
use crate::cache::layout::{join_repo_path, CACHEDIR_TAG};
use crate::cache::lookup::CacheLookup;
use crate::digest::{hash_file, DigestKind};
use crate::error::{Error, Result};
use crate::lock::LockedFile;
use crate::repo::{CommitHash, Repo, RepoPath, Revision};

/// Parsed `<path>.metadata`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LocalMetadata {
    pub commit: String,
    pub etag: String,
    pub timestamp: f64,
}

/// Paths of one file in a local dir.
pub(crate) struct LocalPaths {
    pub file: PathBuf,
    pub metadata: PathBuf,
    pub lock: PathBuf,
    pub meta_root: PathBuf,
}

pub(crate) fn local_paths(dir: &Path, path: &RepoPath) -> LocalPaths {
    let meta_root = dir.join(".cache").join("huggingface");
    let download = join_repo_path(&meta_root.join("download"), path);
    let name = download
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    LocalPaths {
        file: join_repo_path(dir, path),
        metadata: download.with_file_name(format!("{name}.metadata")),
        lock: download.with_file_name(format!("{name}.lock")),
        meta_root,
    }
}

/// Parses the three-line format; `None` when malformed.
pub(crate) fn parse_metadata(text: &str) -> Option<LocalMetadata> {
    let mut lines = text.lines();
    let commit = lines.next()?.trim().to_string();
    let etag = lines.next()?.trim().to_string();
    let timestamp = lines.next()?.trim().parse::<f64>().ok()?;
    Some(LocalMetadata {
        commit,
        etag,
        timestamp,
    })
}

/// Renders the three-line format with Python's `str(time.time())`-style timestamp.
pub(crate) fn render_metadata(commit: &str, etag: &str, timestamp: f64) -> String {
    format!("{commit}\n{etag}\n{timestamp}\n")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Metadata that still describes the file on disk (file present, not modified since).
fn read_metadata(paths: &LocalPaths) -> Option<LocalMetadata> {
    let text = fs::read_to_string(&paths.metadata).ok()?;
    let Some(meta) = parse_metadata(&text) else {
        let _ = fs::remove_file(&paths.metadata);
        return None;
    };
    let mtime = fs::metadata(&paths.file).ok()?.modified().ok()?;
    let mtime = mtime.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    (mtime - 1.0 <= meta.timestamp).then_some(meta)
}

fn write_metadata(paths: &LocalPaths, commit: &str, etag: &str) -> Result<()> {
    crate::fs::create_parent(&paths.metadata).map_err(|e| Error::io("create the folder of", &paths.metadata, e))?;
    crate::fs::write_atomic(&paths.metadata, render_metadata(commit, etag, now()).as_bytes())
        .map_err(|e| Error::io("write", &paths.metadata, e))
}

fn prepare_meta_root(paths: &LocalPaths) {
    let _ = fs::create_dir_all(&paths.meta_root);
    let _ = crate::fs::create_if_absent(&paths.meta_root.join(".gitignore"), b"*");
    let _ = crate::fs::create_if_absent(&paths.meta_root.join("CACHEDIR.TAG"), CACHEDIR_TAG.as_bytes());
}

impl Hub {
    /// `hf_hub_download(local_dir=…)`.
    pub(crate) async fn download_to_local_dir(&self, req: &FileRequest, dir: &Path) -> Result<PathBuf> {
        let paths = local_paths(dir, &req.path);
        let meta = read_metadata(&paths);
        if let (Revision::Commit(c), Some(m), false) = (&req.revision, &meta, req.force) {
            if m.commit == c.as_str() {
                return Ok(paths.file);
            }
        }
        if let Some(reason) = self.offline_reason(req.local_only) {
            if paths.file.is_file() && !req.force {
                return Ok(paths.file);
            }
            return Err(Error::Offline {
                repo: req.repo.to_string(),
                revision: req.revision.to_string(),
                what: describe_file(&req.path),
                cache: dir.to_path_buf(),
                reason,
            });
        }
        let remote = match self
            .client
            .file_metadata(&req.repo, req.revision.as_str(), &req.path, false)
            .await
        {
            Ok(m) => m,
            Err(e) if paths.file.is_file() && !req.force && !e.is_not_found() => {
                self.reporter
                    .warning(&format!("using the local copy of {}: {e}", req.path));
                return Ok(paths.file);
            }
            Err(e) => {
                let e = if e.is_transient() {
                    self.client
                        .file_metadata(&req.repo, req.revision.as_str(), &req.path, true)
                        .await
                } else {
                    Err(e)
                };
                match e {
                    Ok(m) => m,
                    Err(source) => {
                        return Err(Error::Hub {
                            repo: req.repo.to_string(),
                            revision: req.revision.to_string(),
                            what: describe_file(&req.path),
                            source,
                        })
                    }
                }
            }
        };
        let commit = CommitHash::new(&remote.commit).map_err(|_| Error::BadResponse {
            what: "commit hash (X-Repo-Commit)",
            detail: remote.commit.escape_debug().to_string(),
        })?;
        let known = KnownFile {
            commit,
            etag: remote.etag,
            size: remote.size,
            location: remote.location,
            xet_hash: remote.xet_hash,
        };
        self.fetch_known_local(&req.repo, &req.path, dir, &known, req.force, meta)
            .await
    }

    /// Places one known file in `dir`, skipping it when the local copy is already right.
    pub(crate) async fn fetch_known_local(
        &self,
        repo: &Repo,
        path: &RepoPath,
        dir: &Path,
        known: &KnownFile,
        force: bool,
        meta: Option<LocalMetadata>,
    ) -> Result<PathBuf> {
        let paths = local_paths(dir, path);
        prepare_meta_root(&paths);
        if !force && paths.file.is_file() {
            if meta.as_ref().is_some_and(|m| m.etag == known.etag) {
                write_metadata(&paths, known.commit.as_str(), &known.etag)?;
                return Ok(paths.file);
            }
            if meta.is_none() && DigestKind::for_etag(&known.etag) == Some(DigestKind::Sha256) {
                let file = paths.file.clone();
                let local = off_worker(move || hash_file(&file, DigestKind::Sha256))
                    .await
                    .map_err(|e| Error::io("read", &paths.file, e))?;
                if local == known.etag {
                    write_metadata(&paths, known.commit.as_str(), &known.etag)?;
                    return Ok(paths.file);
                }
            }
        }
        crate::fs::create_parent(&paths.lock).map_err(|e| Error::io("create the folder of", &paths.lock, e))?;
        crate::fs::create_parent(&paths.file).map_err(|e| Error::io("create the folder of", &paths.file, e))?;
        let reporter = self.reporter.clone();
        let _lock = LockedFile::acquire(&paths.lock, self.lock_timeout, |p, w| reporter.waiting_for_lock(p, w)).await?;
        let cached = self.lookup(repo, &Revision::Commit(known.commit.clone()), path);
        match cached {
            CacheLookup::Hit(src) if !force => {
                let dest = paths.file.clone();
                off_worker(move || crate::fs::copy_atomic(&src, &dest))
                    .await
                    .map_err(|e| Error::io("copy into", &paths.file, e))?;
            }
            _ => {
                let temp = crate::fs::sibling_temp(&paths.metadata, "incomplete");
                self.transfer_to(repo, path, known, &temp, &paths.file).await?;
            }
        }
        write_metadata(&paths, known.commit.as_str(), &known.etag)?;
        Ok(paths.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_format() {
        let text = render_metadata(&"a".repeat(40), "etag", 1712656091.123456);
        assert_eq!(text, format!("{}\netag\n1712656091.123456\n", "a".repeat(40)));
        let m = parse_metadata(&text).unwrap();
        assert_eq!(m.etag, "etag");
        assert!(parse_metadata("x\ny\nnot-a-number\n").is_none());
        let p = local_paths(Path::new("/d"), &RepoPath::new("a/b.txt").unwrap());
        assert_eq!(p.file, PathBuf::from("/d/a/b.txt"));
        assert_eq!(
            p.metadata,
            PathBuf::from("/d/.cache/huggingface/download/a/b.txt.metadata")
        );
        assert_eq!(p.lock, PathBuf::from("/d/.cache/huggingface/download/a/b.txt.lock"));
    }
}
