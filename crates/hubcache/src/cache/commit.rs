//! The only code that changes a repo folder: persist a blob, link a snapshot entry, write a ref,
//! record a `.no_exist` marker, tag the cache root, take over a blob's leftover temp files.
//!
//! Invariants: a blob appears under `blobs/<etag>` only complete and verified (atomic rename of a
//! temp file in the same folder); a snapshot entry appears only once its blob exists; refs are
//! replaced atomically and only when their content changes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::layout::{
    blob_link_target, is_temp_blob_of, parts_file_of, CacheLayout, PartsFile, RepoLayout, CACHEDIR_TAG,
};
use crate::repo::{CommitHash, RepoPath};

/// How snapshot entries are materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Relative symlinks into `blobs/` (the normal layout).
    Symlink,
    /// No symlinks: a new blob is moved into the snapshot, an existing one copied.
    Copy,
}

impl LinkMode {
    /// Symlinks unless disabled or unsupported in `dir`.
    pub fn detect(dir: &Path, disable_symlinks: bool) -> LinkMode {
        if !disable_symlinks && crate::fs::symlinks_supported(dir) {
            LinkMode::Symlink
        } else {
            LinkMode::Copy
        }
    }
}

/// Writes `CACHEDIR.TAG` at the cache root if it is absent.
pub fn ensure_cachedir_tag(cache: &CacheLayout) -> io::Result<()> {
    fs::create_dir_all(cache.root())?;
    crate::fs::create_if_absent(&cache.cachedir_tag(), CACHEDIR_TAG.as_bytes())
}

/// Points `refs/<name>` at `commit` (no newline), atomically, only if it differs.
pub fn write_ref(repo: &RepoLayout, name: &str, commit: &CommitHash) -> io::Result<()> {
    if name == commit.as_str() {
        return Ok(());
    }
    let path = repo.ref_file(name);
    if fs::read_to_string(&path).is_ok_and(|c| c == commit.as_str()) {
        return Ok(());
    }
    crate::fs::create_parent(&path)?;
    crate::fs::write_atomic(&path, commit.as_str().as_bytes())
}

/// Records that `path` does not exist at `commit`.
pub fn write_no_exist(repo: &RepoLayout, commit: &CommitHash, path: &RepoPath) -> io::Result<()> {
    let marker = repo.no_exist_marker(commit, path);
    crate::fs::create_parent(&marker)?;
    crate::fs::create_if_absent(&marker, b"")
}

/// Takes over the temp files an earlier (dead) writer left for blob `etag` — ours and Python's
/// `<etag>.<8 hex>.incomplete`, the legacy `<etag>.incomplete`: the largest regular file not
/// longer than `max_len` is renamed to `temp` and its length returned (0: none, `temp` absent);
/// every other one is removed. With `max_len` `None` (a forced download) all are removed.
/// Call only while holding the blob's etag lock for real: that lock is what proves no live
/// writer owns these files. Errors only when `blobs/` cannot be listed (nothing changed then).
pub fn adopt_leftover(repo: &RepoLayout, etag: &str, max_len: Option<u64>, temp: &Path) -> io::Result<u64> {
    let entries = match fs::read_dir(repo.blobs_dir()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| parts_file_of(n, etag).is_some()) {
            // A ranged download's leftover: this (sequential) writer cannot use it.
            if fs::symlink_metadata(entry.path()).is_ok_and(|m| !m.is_dir()) {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        if !name.to_str().is_some_and(|n| is_temp_blob_of(n, etag)) {
            continue;
        }
        let path = entry.path();
        match fs::symlink_metadata(&path) {
            // Never a symlink: writing through it would land outside `blobs/`.
            Ok(m) if m.is_file() => found.push((m.len(), path)),
            Ok(m) if m.is_dir() => {}
            _ => found.push((0, path)),
        }
    }
    let best = found
        .iter()
        .enumerate()
        .filter(|(_, (len, _))| *len > 0 && max_len.is_some_and(|max| *len <= max))
        .max_by_key(|(_, (len, _))| *len)
        .map(|(i, _)| i);
    let mut adopted = 0;
    for (i, (len, path)) in found.iter().enumerate() {
        if Some(i) == best && fs::rename(path, temp).is_ok() {
            adopted = *len;
            continue;
        }
        // Best effort: one that cannot be removed is only wasted space, which prune reports.
        let _ = fs::remove_file(path);
    }
    Ok(adopted)
}

/// What [`adopt_parts`] took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptedParts {
    /// Nothing: the data file does not exist.
    None,
    /// A ranged download's file, with the text of its record (untrusted).
    Parts(String),
    /// A contiguous `.incomplete` leftover of this many bytes (ours or Python's).
    Prefix(u64),
}

/// Largest record read back (a record lists a few ranges per connection).
const MAX_RECORD: u64 = 1 << 20;

/// Takes over the leftovers of dead writers of blob `etag` for a ranged download into `data`
/// (record `record`): a parts file not longer than `size` with its record (the newest record
/// wins), else the largest contiguous `.incomplete` leftover not longer than `size`. Every
/// other leftover of the blob (parts files, records, `.incomplete` files) is removed. Same
/// rules as [`adopt_leftover`]: call only under the blob's real etag lock.
pub fn adopt_parts(repo: &RepoLayout, etag: &str, size: u64, data: &Path, record: &Path) -> io::Result<AdoptedParts> {
    let entries = match fs::read_dir(repo.blobs_dir()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AdoptedParts::None),
        Err(e) => return Err(e),
    };
    let mut datas: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut records: Vec<(String, PathBuf, std::time::SystemTime, u64)> = Vec::new();
    let mut prefixes: Vec<(u64, PathBuf)> = Vec::new();
    let mut junk: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        let meta = fs::symlink_metadata(&path);
        let file = meta.as_ref().ok().filter(|m| m.is_file());
        if let Some((kind, suffix)) = parts_file_of(name, etag) {
            match (kind, file) {
                (PartsFile::Data, Some(m)) => datas.push((suffix.to_string(), path, m.len())),
                (PartsFile::Record, Some(m)) => records.push((
                    suffix.to_string(),
                    path,
                    m.modified().unwrap_or(std::time::UNIX_EPOCH),
                    m.len(),
                )),
                _ if meta.as_ref().is_ok_and(|m| m.is_dir()) => {}
                _ => junk.push(path),
            }
        } else if is_temp_blob_of(name, etag) {
            match file {
                Some(m) => prefixes.push((m.len(), path)),
                None if meta.as_ref().is_ok_and(|m| m.is_dir()) => {}
                None => junk.push(path),
            }
        }
    }
    // The newest record whose data file exists and fits.
    let best = records
        .iter()
        .filter(|(suffix, _, _, len)| {
            *len <= MAX_RECORD && datas.iter().any(|(s, _, dlen)| s == suffix && *dlen <= size)
        })
        .max_by_key(|(_, _, modified, _)| *modified)
        .map(|(suffix, ..)| suffix.clone());
    let mut adopted = AdoptedParts::None;
    if let Some(suffix) = &best {
        let text = records
            .iter()
            .find(|(s, ..)| s == suffix)
            .and_then(|(_, p, ..)| fs::read_to_string(p).ok());
        let data_src = datas.iter().find(|(s, ..)| s == suffix).map(|(_, p, _)| p.clone());
        if let (Some(text), Some(src)) = (text, data_src) {
            if fs::rename(&src, data).is_ok() {
                adopted = AdoptedParts::Parts(text);
            }
        }
    }
    if adopted == AdoptedParts::None {
        let largest = prefixes
            .iter()
            .filter(|(len, _)| *len > 0 && *len <= size)
            .max_by_key(|(len, _)| *len);
        if let Some((len, src)) = largest {
            if fs::rename(src, data).is_ok() {
                adopted = AdoptedParts::Prefix(*len);
            }
        }
    }
    // Everything else goes (best effort; prune reports what stays).
    let all = datas
        .into_iter()
        .map(|(_, p, _)| p)
        .chain(records.into_iter().map(|(_, p, ..)| p))
        .chain(prefixes.into_iter().map(|(_, p)| p))
        .chain(junk);
    for path in all {
        if path != data {
            let _ = fs::remove_file(path);
        }
    }
    // The record is rewritten by the new writer; the old one was read.
    let _ = fs::remove_file(record);
    Ok(adopted)
}

/// Moves a verified temp file onto `blobs/<etag>` (replacing any older copy atomically).
pub fn persist_blob(temp: &Path, blob: &Path) -> io::Result<()> {
    fs::rename(temp, blob)
}

/// Creates `snapshots/<commit>/<path>` for the blob `etag`; returns the entry's path.
/// `new_blob` says the blob was just downloaded (in copy mode it is then moved, not copied).
pub fn link_snapshot(
    repo: &RepoLayout,
    commit: &CommitHash,
    path: &RepoPath,
    etag: &str,
    mode: LinkMode,
    new_blob: bool,
) -> io::Result<PathBuf> {
    let pointer = repo.snapshot_file(commit, path);
    let blob = repo.blob(etag);
    match mode {
        LinkMode::Symlink => crate::fs::relative_symlink(&blob_link_target(path, etag), &pointer)?,
        LinkMode::Copy if new_blob => {
            crate::fs::create_parent(&pointer)?;
            fs::rename(&blob, &pointer)?;
        }
        LinkMode::Copy => crate::fs::copy_atomic(&blob, &pointer)?,
    }
    Ok(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{Repo, RepoId, RepoType};

    #[test]
    fn refs_links_markers() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheLayout::new(dir.path());
        let repo = cache.repo(&Repo::new(RepoId::new("o/m").unwrap(), RepoType::Model));
        let commit = CommitHash::new(&"d".repeat(40)).unwrap();
        write_ref(&repo, "refs/pr/1", &commit).unwrap();
        assert_eq!(fs::read_to_string(repo.ref_file("refs/pr/1")).unwrap(), "d".repeat(40));
        write_ref(&repo, commit.as_str(), &commit).unwrap();
        assert!(!repo.ref_file(commit.as_str()).exists(), "never a ref for a commit");

        fs::create_dir_all(repo.blobs_dir()).unwrap();
        fs::write(repo.blob("e1"), b"hello").unwrap();
        let path = RepoPath::new("sub/f.txt").unwrap();
        let p = link_snapshot(&repo, &commit, &path, "e1", LinkMode::Symlink, true).unwrap();
        assert_eq!(fs::read_link(&p).unwrap(), PathBuf::from("../../../blobs/e1"));
        assert_eq!(fs::read(&p).unwrap(), b"hello");

        let other = RepoPath::new("copy.txt").unwrap();
        let p = link_snapshot(&repo, &commit, &other, "e1", LinkMode::Copy, false).unwrap();
        assert!(!fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert!(repo.blob("e1").exists());
        let moved = RepoPath::new("moved.txt").unwrap();
        link_snapshot(&repo, &commit, &moved, "e1", LinkMode::Copy, true).unwrap();
        assert!(!repo.blob("e1").exists(), "a new blob is moved in copy mode");

        write_no_exist(&repo, &commit, &RepoPath::new("a/b.json").unwrap()).unwrap();
        assert_eq!(
            fs::read(repo.no_exist_marker(&commit, &RepoPath::new("a/b.json").unwrap())).unwrap(),
            b""
        );

        ensure_cachedir_tag(&cache).unwrap();
        assert_eq!(fs::read_to_string(cache.cachedir_tag()).unwrap(), CACHEDIR_TAG);
    }

    #[test]
    fn leftovers_largest_fitting_adopted_rest_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheLayout::new(dir.path());
        let repo = cache.repo(&Repo::new(RepoId::new("o/m").unwrap(), RepoType::Model));
        let e = "ab".repeat(32);
        let temp = repo.temp_blob(&e, "11111111");
        assert_eq!(adopt_leftover(&repo, &e, Some(10), &temp).unwrap(), 0, "no blobs/ yet");
        fs::create_dir_all(repo.blobs_dir()).unwrap();
        let put = |name: String, len: usize| fs::write(repo.blobs_dir().join(name), vec![7u8; len]).unwrap();
        put(format!("{e}.incomplete"), 3);
        put(format!("{e}.0a1b2c3d.incomplete"), 6);
        put(format!("{e}.deadbeef.incomplete"), 11);
        put(format!("{e}.00000000.incomplete"), 0);
        put("other.0a1b2c3d.incomplete".into(), 5);
        std::os::unix::fs::symlink("/etc/passwd", repo.blobs_dir().join(format!("{e}.feedface.incomplete"))).unwrap();
        assert_eq!(adopt_leftover(&repo, &e, Some(10), &temp).unwrap(), 6);
        assert_eq!(fs::read(&temp).unwrap(), vec![7u8; 6]);
        let mut left: Vec<String> = fs::read_dir(repo.blobs_dir())
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [format!("{e}.11111111.incomplete"), "other.0a1b2c3d.incomplete".into()]
        );
        assert!(Path::new("/etc/passwd").exists());

        // A forced download: nothing is adopted, everything goes.
        let next = repo.temp_blob(&e, "22222222");
        assert_eq!(adopt_leftover(&repo, &e, None, &next).unwrap(), 0);
        assert!(!temp.exists() && !next.exists());
    }
}
