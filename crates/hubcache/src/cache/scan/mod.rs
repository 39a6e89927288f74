//! The cache report: `scan_cache_dir()` of huggingface_hub 2.4.0, field for field.
//!
//! Rules (2.4.0, `utils/_cache_manager.py`), kept exactly so `hubcache cache ls --json` and
//! Python agree on every number:
//! - root entries `.locks`, `CACHEDIR.TAG`, `.DS_Store`, `Thumbs.db`, `desktop.ini` and a marked
//!   shared store `blobs/` are skipped; every other entry is a repo folder
//!   `<type>s--<org>--<name>` with type in datasets/kernels/models/spaces;
//! - a repo with any problem (not a folder, bad name, no `snapshots/`, `refs` a file, a file in
//!   `snapshots/`, a broken link, a ref naming no snapshot) becomes one typed [`ScanWarning`]
//!   with Python's message and is left out of the report — never an error;
//! - a snapshot file's `blob_path` is the *first* symlink hop, made absolute and normalised
//!   (`abspath(parent / readlink(file))`); size and times come from `stat()` through the whole
//!   chain, each blob stat'ed once per repo;
//! - sizes: a revision and a repo count each distinct blob path once; the cache total is
//!   physical: distinct per-repo blob paths that are not shared-store links, plus every
//!   payload of the shared store;
//! - refs are read raw (no trimming): a ref with a trailing newline names no snapshot.
//!
//! Repos are scanned in parallel; the report is sorted (repos by `type/id`, revisions by
//! commit, files by path) so its JSON is stable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

mod report;
mod warning;

pub use super::layout::{parse_folder_name, CachedRepoType};
pub use report::{CacheInfo, FileInfo, IncompleteFile, RepoInfo, RevisionInfo, StorePayload, UnreferencedBlob};
pub use warning::ScanWarning;

use super::error::CacheError;
use super::shared_store;
use super::walk::{identities, is_blob_name, read_refs, referenced_identities, walk_snapshot};
use crate::pool::{io_threads, parallel_map};

/// Names skipped wherever Python skips them (root entries, revision folders, refs).
pub const FILES_TO_IGNORE: [&str; 3] = [".DS_Store", "Thumbs.db", "desktop.ini"];

/// Unix time of a stat field the way CPython builds `st_atime`/`st_mtime`.
pub(crate) fn py_time(sec: i64, nsec: i64) -> f64 {
    sec as f64 + nsec as f64 * 1e-9
}

#[derive(Debug, Clone, Copy)]
struct BlobStat {
    size: u64,
    atime: f64,
    mtime: f64,
}

impl BlobStat {
    fn of(m: &Metadata) -> BlobStat {
        BlobStat {
            size: m.len(),
            atime: py_time(m.atime(), m.atime_nsec()),
            mtime: py_time(m.mtime(), m.mtime_nsec()),
        }
    }
}

fn unreadable(path: &Path, e: io::Error) -> ScanWarning {
    ScanWarning::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Scans one repo folder (`_scan_cached_repo`).
fn scan_repo(
    repo_path: &Path,
    blobs: &[(String, fs::FileType)],
    cache_dir: &Path,
    store_marked: bool,
) -> Result<RepoInfo, ScanWarning> {
    if !fs::metadata(repo_path).is_ok_and(|m| m.is_dir()) {
        return Err(ScanWarning::NotADirectory {
            path: repo_path.to_path_buf(),
        });
    }
    let name = repo_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((prefix, _)) = name.split_once("--") else {
        return Err(ScanWarning::InvalidName {
            path: repo_path.to_path_buf(),
        });
    };
    let Some((repo_type, repo_id)) = parse_folder_name(&name) else {
        return Err(ScanWarning::UnknownRepoType {
            prefix: prefix.to_string(),
            path: repo_path.to_path_buf(),
        });
    };
    let snapshots = repo_path.join("snapshots");
    let refs_dir = repo_path.join("refs");
    if !fs::metadata(&snapshots).is_ok_and(|m| m.is_dir()) {
        return Err(ScanWarning::MissingSnapshots { path: snapshots });
    }
    let mut refs_by_hash: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(meta) = fs::metadata(&refs_dir) {
        if meta.is_file() {
            return Err(ScanWarning::RefsIsFile { path: refs_dir });
        }
        for (name, content) in read_refs(&refs_dir).map_err(|e| unreadable(&refs_dir, e))? {
            refs_by_hash.entry(content).or_default().push(name);
        }
    }
    let mut blob_stats: HashMap<PathBuf, BlobStat> = HashMap::new();
    let mut revisions = Vec::new();
    let rev_dirs = fs::read_dir(&snapshots).map_err(|e| unreadable(&snapshots, e))?;
    for rev in rev_dirs {
        let rev = rev.map_err(|e| unreadable(&snapshots, e))?;
        let rev_name = rev.file_name().to_string_lossy().into_owned();
        if FILES_TO_IGNORE.contains(&rev_name.as_str()) {
            continue;
        }
        let rev_path = rev.path();
        if fs::metadata(&rev_path).is_ok_and(|m| m.is_file()) {
            return Err(ScanWarning::FileInSnapshots { path: rev_path });
        }
        let mut entries = Vec::new();
        walk_snapshot(&rev_path, &mut entries).map_err(|e| unreadable(&rev_path, e))?;
        let mut files = Vec::with_capacity(entries.len());
        for entry in entries {
            let stat = match blob_stats.get(&entry.blob_path) {
                Some(s) => *s,
                None => {
                    let Ok(meta) = fs::metadata(&entry.blob_path) else {
                        return Err(ScanWarning::BrokenSymlink {
                            blob_path: entry.blob_path,
                        });
                    };
                    let s = BlobStat::of(&meta);
                    blob_stats.insert(entry.blob_path.clone(), s);
                    s
                }
            };
            let shared_target = if store_marked {
                shared_store::store_target(&entry.blob_path, cache_dir)
            } else {
                None
            };
            files.push(FileInfo {
                file_name: entry
                    .file_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                file_path: entry.file_path,
                blob_path: entry.blob_path,
                size_on_disk: stat.size,
                blob_last_accessed: stat.atime,
                blob_last_modified: stat.mtime,
                shared_target,
            });
        }
        files.sort_by(|a, b| a.file_path.cmp(&b.file_path));
        let last_modified = match files.iter().map(|f| f.blob_last_modified).reduce(f64::max) {
            Some(m) => m,
            None => {
                let m = fs::metadata(&rev_path).map_err(|e| unreadable(&rev_path, e))?;
                py_time(m.mtime(), m.mtime_nsec())
            }
        };
        let distinct: HashMap<&Path, u64> = files.iter().map(|f| (f.blob_path.as_path(), f.size_on_disk)).collect();
        let mut refs = refs_by_hash.remove(&rev_name).unwrap_or_default();
        refs.sort();
        revisions.push(RevisionInfo {
            commit_hash: rev_name,
            snapshot_path: rev_path,
            size_on_disk: distinct.values().sum(),
            nb_files: files.len(),
            refs,
            last_modified,
            files,
        });
    }
    if !refs_by_hash.is_empty() {
        return Err(ScanWarning::MissingCommits {
            refs: refs_by_hash,
            repo_path: repo_path.to_path_buf(),
        });
    }
    revisions.sort_by(|a, b| a.commit_hash.cmp(&b.commit_hash));
    let (last_accessed, last_modified) = if blob_stats.is_empty() {
        let m = fs::metadata(repo_path).map_err(|e| unreadable(repo_path, e))?;
        (py_time(m.atime(), m.atime_nsec()), py_time(m.mtime(), m.mtime_nsec()))
    } else {
        (
            blob_stats.values().map(|s| s.atime).fold(f64::MIN, f64::max),
            blob_stats.values().map(|s| s.mtime).fold(f64::MIN, f64::max),
        )
    };
    let refs = revisions
        .iter()
        .flat_map(|r| r.refs.iter().map(|name| (name.clone(), r.commit_hash.clone())))
        .collect();
    let unreferenced_blobs = unreferenced_blobs(repo_path, blobs, &revisions, cache_dir, store_marked);
    Ok(RepoInfo {
        repo_id,
        repo_type,
        repo_path: repo_path.to_path_buf(),
        size_on_disk: blob_stats.values().map(|s| s.size).sum(),
        nb_files: blob_stats.len(),
        last_accessed,
        last_modified,
        refs,
        revisions,
        unreferenced_blobs,
    })
}

/// Entries of `<repo>/blobs/` (listed once by the caller) that no snapshot file of the repo uses.
fn unreferenced_blobs(
    repo_path: &Path,
    blobs: &[(String, fs::FileType)],
    revisions: &[RevisionInfo],
    cache_dir: &Path,
    store_marked: bool,
) -> Vec<UnreferencedBlob> {
    let paths: HashSet<&Path> = revisions
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.blob_path.as_path()))
        .collect();
    let mut ids: Option<HashSet<(u64, u64)>> = None;
    let mut out = Vec::new();
    for (name, kind) in blobs {
        if !is_blob_name(name) || !(kind.is_file() || kind.is_symlink()) {
            continue;
        }
        let path = repo_path.join("blobs").join(name);
        if paths.contains(path.as_path()) {
            continue;
        }
        let ids = ids.get_or_insert_with(|| referenced_identities(paths.iter().copied()));
        if identities(&path).into_iter().flatten().any(|id| ids.contains(&id)) {
            continue;
        }
        out.push(UnreferencedBlob {
            size: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            shared_target: if store_marked {
                shared_store::store_target(&path, cache_dir)
            } else {
                None
            },
            path,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Lists `<root>/blobs/` once: its entries, and the `*.incomplete` ones with their sizes
/// (Python's `*/blobs/*.incomplete` glob, which also covers folders that are not valid repos).
fn list_blobs(root: &Path) -> (Vec<(String, fs::FileType)>, Vec<IncompleteFile>) {
    let blobs = root.join("blobs");
    let mut entries = Vec::new();
    let mut incomplete = Vec::new();
    let Ok(rd) = fs::read_dir(&blobs) else {
        return (entries, incomplete);
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".incomplete") {
            match fs::metadata(entry.path()) {
                Ok(m) if !m.is_dir() => incomplete.push(IncompleteFile {
                    file_path: entry.path(),
                    size_on_disk: m.len(),
                }),
                _ => {}
            }
        }
        if let Ok(kind) = entry.file_type() {
            entries.push((name, kind));
        }
    }
    (entries, incomplete)
}

/// Resolves the cache folder as Python does (`expanduser().resolve()`) and checks it.
pub fn resolve_cache_dir(cache_dir: &Path) -> Result<PathBuf, CacheError> {
    let resolved = fs::canonicalize(cache_dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CacheError::NotFound {
            path: shared_store::normalize(cache_dir),
        },
        _ => CacheError::io("resolve", cache_dir, e),
    })?;
    if !resolved.is_dir() {
        return Err(CacheError::NotADirectory { path: resolved });
    }
    Ok(resolved)
}

/// Scans the cache at `cache_dir` (`scan_cache_dir`).
pub fn scan(cache_dir: &Path) -> Result<CacheInfo, CacheError> {
    let cache_dir = resolve_cache_dir(cache_dir)?;
    let store_marked = shared_store::is_store_dir(&shared_store::store_dir(&cache_dir));
    // (path, is a repo candidate): skipped root entries still count for `*/blobs/*.incomplete`.
    let mut roots = Vec::new();
    for entry in fs::read_dir(&cache_dir).map_err(|e| CacheError::io("read", &cache_dir, e))? {
        let entry = entry.map_err(|e| CacheError::io("read", &cache_dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let skip = FILES_TO_IGNORE.contains(&name.as_ref())
            || name == ".locks"
            || name == "CACHEDIR.TAG"
            || (name == shared_store::STORE_DIR_NAME && store_marked);
        roots.push((entry.path(), !skip));
    }
    roots.sort();
    let scanned = parallel_map(&roots, io_threads(), |(p, is_repo)| {
        let (blobs, incomplete) = list_blobs(p);
        let repo = is_repo.then(|| scan_repo(p, &blobs, &cache_dir, store_marked));
        (repo, incomplete)
    });
    let mut repos = Vec::new();
    let mut warnings = Vec::new();
    let mut incomplete_files = Vec::new();
    for (r, incomplete) in scanned {
        match r {
            Some(Ok(repo)) => repos.push(repo),
            Some(Err(w)) => warnings.push(w),
            None => {}
        }
        incomplete_files.extend(incomplete);
    }
    incomplete_files.sort_by(|a, b| a.file_path.cmp(&b.file_path));
    repos.sort_by_key(|r| r.cache_id());
    let shared_store = store_marked.then(|| {
        shared_store::payloads(&cache_dir)
            .into_iter()
            .map(|p| {
                let size = fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
                let references = shared_store::manifest_references(&p, &cache_dir);
                (p, StorePayload { size, references })
            })
            .collect::<BTreeMap<_, _>>()
    });
    let mut physical: HashMap<&Path, u64> = HashMap::new();
    for f in repos.iter().flat_map(|r| &r.revisions).flat_map(|rev| &rev.files) {
        if f.shared_target.is_none() {
            physical.insert(&f.blob_path, f.size_on_disk);
        }
    }
    let store_total: u64 = shared_store.iter().flat_map(|s| s.values()).map(|p| p.size).sum();
    let size_on_disk = physical.values().sum::<u64>() + store_total;
    Ok(CacheInfo {
        size_on_disk,
        repos,
        incomplete_files,
        warnings,
        cache_dir,
        shared_store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testutil::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn sizes_counts_refs_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let repo = two_revisions(dir.path());
        add_ref(&repo, "refs/pr/1", C2);
        fs::write(dir.path().join("CACHEDIR.TAG"), "x").unwrap();
        fs::create_dir_all(dir.path().join(".locks/models--org--m")).unwrap();
        let info = scan(dir.path()).unwrap();
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(info.repos.len(), 1);
        let r = &info.repos[0];
        let root = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(r.repo_id, "org/m");
        assert_eq!(r.repo_type, CachedRepoType::Model);
        assert_eq!(r.repo_path, root.join("models--org--m"));
        assert_eq!((r.size_on_disk, r.nb_files), (32, 3));
        assert_eq!(info.size_on_disk, 32);
        assert_eq!(r.revisions.len(), 2);
        let (r1, r2) = (&r.revisions[0], &r.revisions[1]);
        assert_eq!((r1.commit_hash.as_str(), r1.size_on_disk, r1.nb_files), (C1, 12, 2));
        assert!(r1.refs.is_empty());
        assert_eq!(r2.refs, vec!["main".to_string(), "refs/pr/1".to_string()]);
        let nested = r2.files.iter().find(|f| f.file_name == "weights.bin").unwrap();
        assert_eq!(nested.blob_path, root.join("models--org--m/blobs/e3"));
        assert_eq!(
            nested.file_path,
            root.join(format!("models--org--m/snapshots/{C2}/sub/dir/weights.bin"))
        );
        assert_eq!(r.refs.get("refs/pr/1").map(String::as_str), Some(C2));
        assert_eq!(r.revision("main").unwrap().commit_hash, C2);
        assert!(r.unreferenced_blobs.is_empty());
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["repos"][0]["revisions"][1]["files"][0]["file_name"], "config.json");
        assert!(json["repos"][0].get("unreferenced_blobs").is_none());
    }

    #[test]
    fn every_corruption_is_a_warning_never_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        fs::write(c.join("version.txt"), "1").unwrap();
        fs::create_dir_all(c.join("nodashes")).unwrap();
        fs::create_dir_all(c.join("weird--org--x/snapshots")).unwrap();
        fs::create_dir_all(c.join("models--no--snapshots/blobs")).unwrap();
        fs::create_dir_all(c.join("models--refs--file/snapshots")).unwrap();
        fs::write(c.join("models--refs--file/refs"), "x").unwrap();
        fs::create_dir_all(c.join("models--file--in/snapshots")).unwrap();
        fs::write(c.join("models--file--in/snapshots/stray"), "x").unwrap();
        let broken = c.join("models--broken--link");
        add_file(&broken, C1, "a", "e1", b"x");
        fs::remove_file(broken.join("blobs/e1")).unwrap();
        let dangling = c.join("datasets--dangling--ref");
        add_file(&dangling, C1, "a", "e1", b"x");
        add_ref(&dangling, "main", &format!("{C1}\n"));
        let info = scan(c).unwrap();
        assert!(info.repos.is_empty(), "{:?}", info.repos);
        let root = fs::canonicalize(c).unwrap();
        let mut msgs: Vec<String> = info.warnings.iter().map(|w| w.to_string()).collect();
        msgs.sort();
        let expected = [
            format!(
                "Blob missing (broken symlink): {}",
                root.join("models--broken--link/blobs/e1").display()
            ),
            format!(
                "Refs directory cannot be a file: {}",
                root.join("models--refs--file/refs").display()
            ),
            format!(
                "Reference(s) refer to missing commit hashes: {{'{C1}\\n': {{'main'}}}} ({}).",
                root.join("datasets--dangling--ref").display()
            ),
            format!("Repo path is not a directory: {}", root.join("version.txt").display()),
            format!(
                "Repo path is not a valid HuggingFace cache directory: {}",
                root.join("nodashes").display()
            ),
            format!(
                "Repo type must be one of ['datasets', 'kernels', 'models', 'spaces'], found `weird` ({}).",
                root.join("weird--org--x").display()
            ),
            format!(
                "Snapshots dir doesn't exist in cached repo: {}",
                root.join("models--no--snapshots/snapshots").display()
            ),
            format!(
                "Snapshots folder corrupted. Found a file: {}",
                root.join("models--file--in/snapshots/stray").display()
            ),
        ];
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(msgs, expected);
    }

    #[test]
    fn kernels_copies_incomplete_and_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        let k = c.join("kernels--org--k");
        add_file(&k, C1, "a", "e1", b"abc");
        add_ref(&k, "main", C1);
        // A copied file (no symlinks): blob_path is the file itself.
        fs::write(k.join("snapshots").join(C1).join("copied"), b"12345").unwrap();
        fs::write(k.join("blobs/e9"), b"orphan!").unwrap();
        fs::write(k.join("blobs/e1.0a1b2c3d.incomplete"), b"part").unwrap();
        fs::write(k.join("blobs/.e1.0a1b2c3d.new"), b"hidden").unwrap();
        fs::create_dir_all(k.join("snapshots").join(C2)).unwrap();
        let info = scan(c).unwrap();
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        let r = &info.repos[0];
        assert_eq!(r.repo_type, CachedRepoType::Kernel);
        assert_eq!(r.cache_id(), "kernel/org/k");
        assert_eq!((r.size_on_disk, r.nb_files), (8, 2));
        let copied = r.revisions[0].files.iter().find(|f| f.file_name == "copied").unwrap();
        assert_eq!(copied.blob_path, copied.file_path);
        assert_eq!(r.revisions[1].nb_files, 0, "an empty snapshot is a revision");
        assert_eq!(r.unreferenced_blobs.len(), 1);
        assert!(r.unreferenced_blobs[0].path.ends_with("blobs/e9"));
        assert_eq!(r.unreferenced_blobs[0].size, 7);
        assert_eq!(info.incomplete_files.len(), 1);
        assert_eq!(info.incomplete_size_on_disk(), 4);
    }

    #[test]
    fn shared_store_sizes_are_logical_per_repo_and_physical_in_total() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        let xet = format!("ab{}", "0".repeat(62));
        shared_store::tests::shared_fixture(c, &xet, b"0123456789", "s1", &["models--o--a", "models--o--b"]);
        for name in ["models--o--a", "models--o--b"] {
            let repo = c.join(name);
            fs::create_dir_all(repo.join("snapshots").join(C1)).unwrap();
            symlink("../../blobs/s1", repo.join("snapshots").join(C1).join("w.bin")).unwrap();
            add_ref(&repo, "main", C1);
        }
        add_file(&c.join("models--o--a"), C1, "own.txt", "e1", b"xyz");
        // A payload nothing references (empty manifest).
        let orphan = format!("cd{}", "0".repeat(62));
        shared_store::tests::shared_fixture(c, &orphan, b"12345", "zz", &[]);
        let info = scan(c).unwrap();
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(info.repos.len(), 2);
        assert_eq!(info.repos[0].size_on_disk, 13);
        assert_eq!(info.repos[1].size_on_disk, 10);
        assert_eq!(
            info.size_on_disk,
            3 + 10 + 5,
            "each payload once, plus the unreferenced one"
        );
        let f = info.repos[1].revisions[0]
            .files
            .iter()
            .find(|f| f.file_name == "w.bin")
            .unwrap();
        assert!(f.blob_path.ends_with("models--o--b/blobs/s1"), "first hop only");
        assert!(f.shared_target.is_some());
        assert_eq!(info.unreferenced_shared_blobs().len(), 1);
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<usize> = (0..100).collect();
        assert_eq!(
            parallel_map(&items, 7, |i| i * 2),
            (0..100).map(|i| i * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn missing_cache_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            scan(&dir.path().join("nope")),
            Err(CacheError::NotFound { .. })
        ));
        fs::write(dir.path().join("f"), "").unwrap();
        assert!(matches!(
            scan(&dir.path().join("f")),
            Err(CacheError::NotADirectory { .. })
        ));
    }
}
