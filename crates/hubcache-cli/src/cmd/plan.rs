//! `download --dry-run` (what would be fetched: per file its size and whether it is cached, and
//! the totals; no content request) and `download --json` (what a download did), as `hf` does.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hubcache::download::patterns::Filter;
use hubcache::units::format_size;
use hubcache::{CacheLookup, Error, FileProgress, OfflineReason, Repo, RepoPath, Reporter, Revision};
use serde_json::json;

/// One file a download would place.
pub struct PlannedFile {
    path: RepoPath,
    size: u64,
    cached: bool,
}

/// What a download would do at a commit.
pub struct Plan {
    repo: String,
    revision: String,
    commit: String,
    files: Vec<PlannedFile>,
}

/// Resolves the revision and lists the commit (API requests only), selects like the download
/// (exact names, then `--include`/`--exclude`), and looks each file up in the cache.
pub fn plan(
    hub: &hubcache::blocking::Hub,
    repo: &Repo,
    revision: &Revision,
    include: &[String],
    exclude: &[String],
    local_only: bool,
) -> Result<(Plan, Vec<RepoPath>), Error> {
    let inner = hub.inner();
    let hub_error = |source| Error::Hub {
        repo: repo.to_string(),
        revision: revision.to_string(),
        what: "the file list".into(),
        source,
    };
    if inner.is_offline() || local_only {
        return Err(Error::Offline {
            repo: repo.to_string(),
            revision: revision.to_string(),
            what: "the file list (--dry-run asks the Hub)".into(),
            cache: inner.cache().root().to_path_buf(),
            reason: if inner.is_offline() {
                OfflineReason::Env
            } else {
                OfflineReason::LocalOnly
            },
        });
    }
    let commit = hub
        .block_on(inner.client().revision_commit(repo, revision.as_str()))
        .map_err(hub_error)?;
    let entries = hub
        .block_on(inner.client().list_tree(repo, &commit))
        .map_err(hub_error)?;
    let at = Revision::new(&commit)?;
    let mut listed = Vec::new();
    let mut sizes = std::collections::HashMap::new();
    for e in entries.into_iter().filter(|e| e.kind == "file") {
        let path = RepoPath::new(&e.path)?;
        sizes.insert(path.clone(), e.lfs.as_ref().map_or(e.size, |l| l.size));
        listed.push(path);
    }
    let selected = Filter::new(include, exclude).select(&listed).selected;
    let files = selected
        .into_iter()
        .map(|path| PlannedFile {
            size: sizes.get(&path).copied().unwrap_or(0),
            cached: matches!(inner.lookup(repo, &at, &path), CacheLookup::Hit(_)),
            path,
        })
        .collect();
    Ok((
        Plan {
            repo: repo.to_string(),
            revision: revision.to_string(),
            commit,
            files,
        },
        listed,
    ))
}

impl Plan {
    /// Whether the filters kept no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn totals(&self) -> (u64, usize, u64) {
        let total: u64 = self.files.iter().map(|f| f.size).sum();
        let fetch: Vec<&PlannedFile> = self.files.iter().filter(|f| !f.cached).collect();
        (total, fetch.len(), fetch.iter().map(|f| f.size).sum())
    }

    /// One line per file (size, `cached` or `fetch`, path), then the totals.
    pub fn print_text(&self) {
        println!("{}@{} (commit {})", self.repo, self.revision, self.commit);
        for f in &self.files {
            let state = if f.cached { "cached" } else { "fetch" };
            println!("{:>10}  {state:<6}  {}", format_size(f.size), f.path);
        }
        let (total, fetch_files, fetch_bytes) = self.totals();
        println!(
            "total: {} file(s), {}; to fetch: {fetch_files} file(s), {}; cached: {} file(s)",
            self.files.len(),
            format_size(total),
            format_size(fetch_bytes),
            self.files.len() - fetch_files
        );
    }

    /// The plan as one JSON object.
    pub fn print_json(&self) {
        let (total, fetch_files, fetch_bytes) = self.totals();
        let files: Vec<_> = self
            .files
            .iter()
            .map(|f| json!({ "path": f.path.as_str(), "size": f.size, "cached": f.cached }))
            .collect();
        let out = json!({
            "dry_run": true,
            "repo": self.repo,
            "revision": self.revision,
            "commit": self.commit,
            "files": files,
            "total_files": self.files.len(),
            "total_bytes": total,
            "fetch_files": fetch_files,
            "fetch_bytes": fetch_bytes,
            "cached_files": self.files.len() - fetch_files,
        });
        println!("{out}");
    }
}

/// Counts the transfers of a download (files started, bytes received) for `--json`.
#[derive(Default)]
pub struct Counter {
    files: AtomicUsize,
    bytes: Arc<AtomicU64>,
}

struct Counted(Arc<AtomicU64>);

impl FileProgress for Counted {
    fn advance(&mut self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

impl Reporter for Counter {
    fn file_started(&self, _name: &str, _total: Option<u64>) -> Box<dyn FileProgress> {
        self.files.fetch_add(1, Ordering::Relaxed);
        Box::new(Counted(Arc::clone(&self.bytes)))
    }

    fn waiting_for_lock(&self, lock: &Path, waited: Duration) {
        crate::progress::print_writer_wait(lock, waited);
    }
}

impl Counter {
    /// `{"path", "files", "fetched", "cached", "bytes_transferred", "seconds"}` on stdout.
    pub fn print_json(&self, path: &Path, files: usize, seconds: f64) {
        let fetched = self.files.load(Ordering::Relaxed).min(files);
        let out = json!({
            "path": path.display().to_string(),
            "files": files,
            "fetched": fetched,
            "cached": files - fetched,
            "bytes_transferred": self.bytes.load(Ordering::Relaxed),
            "seconds": seconds,
        });
        println!("{out}");
    }
}
