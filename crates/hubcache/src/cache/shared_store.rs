//! The cache-wide shared blob store of huggingface_hub 2.4.0 (`utils/_shared_blobs.py`).
//!
//! ```text
//! <cache>/blobs/.huggingface-shared-blobs      marker, exactly "1\n" (an unmarked blobs/ is not a store)
//! <cache>/blobs/<2 hex>/<xet hash>             payload: a read-only regular file
//! <cache>/blobs/<2 hex>/<xet hash>.refs        manifest: one `models--org--name/blobs/<etag>` per line
//! <cache>/blobs/<2 hex>/<xet hash>.lock        flock taken to publish, link or collect the payload
//! <repo folder>/blobs/<etag>                   relative symlink to the payload
//! ```
//!
//! Rules kept here exactly as Python applies them: a per-repo blob is "shared" only when it is a
//! symlink whose target, normalised, is a valid payload path of a marked store; the manifest is
//! a hint whose every line is re-validated; a payload is collected only when its manifest is
//! readable and proves that no valid reference remains. Repo operations never delete a payload
//! directly; they unlink the per-repo symlink and then [`sweep`] the payload.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::error::CacheError;
use crate::lock::LockedFile;

/// Name of the store folder at the cache root.
pub const STORE_DIR_NAME: &str = "blobs";
/// Name of the marker file that makes `<cache>/blobs/` a store.
pub const MARKER_NAME: &str = ".huggingface-shared-blobs";
const MARKER_CONTENT: &[u8] = b"1\n";

/// `<cache>/blobs`.
pub fn store_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(STORE_DIR_NAME)
}

/// Whether `path` is a real folder holding the marker file with the supported layout version.
pub fn is_store_dir(path: &Path) -> bool {
    let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let marker = path.join(MARKER_NAME);
    is_dir && is_regular_file(&marker) && fs::read(&marker).is_ok_and(|c| c == MARKER_CONTENT)
}

/// Regular file, without following symlinks.
pub(crate) fn is_regular_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// `os.path.abspath`: absolute and lexically normalised (`.` dropped, `..` applied), no disk access
/// beyond the current directory for relative input.
pub fn normalize(path: &Path) -> PathBuf {
    let joined;
    let path = if path.is_absolute() {
        path
    } else {
        joined = std::env::current_dir().unwrap_or_default().join(path);
        &joined
    };
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn is_xet_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_repo_folder_name(s: &str) -> bool {
    super::layout::parse_folder_name(s).is_some_and(|(_, id)| !id.is_empty())
}

/// `models--org--name/blobs/<etag>` when `blob` is a per-repo blob path directly inside the cache.
pub fn relative_blob_path(blob: &Path, cache_dir: &Path) -> Option<String> {
    let blob = normalize(blob);
    let rel = blob.strip_prefix(normalize(cache_dir)).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()?;
    if parts.len() != 3 || !is_repo_folder_name(parts[0]) || parts[1] != "blobs" || parts[2].is_empty() {
        return None;
    }
    let joined = parts.join("/");
    (!joined.contains(['\n', '\r'])).then_some(joined)
}

/// The payload a per-repo blob symlink points at (not checked to exist); `Ok(None)` when it is
/// not such a symlink or is gone, `Err` on any other I/O failure.
fn raw_target(blob: &Path, cache_dir: &Path) -> io::Result<Option<PathBuf>> {
    if relative_blob_path(blob, cache_dir).is_none() {
        return Ok(None);
    }
    let link = match fs::symlink_metadata(blob) {
        Ok(m) if m.file_type().is_symlink() => match fs::read_link(blob) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        },
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let blob = normalize(blob);
    let target = match blob.parent() {
        Some(parent) if link.is_relative() => normalize(&parent.join(&link)),
        _ => normalize(&link),
    };
    let store = normalize(&store_dir(cache_dir));
    let Ok(rel) = target.strip_prefix(&store) else {
        return Ok(None);
    };
    let parts: Vec<&str> = match rel.components().map(|c| c.as_os_str().to_str()).collect::<Option<_>>() {
        Some(p) => p,
        None => return Ok(None),
    };
    if parts.len() != 2 || !is_xet_hash(parts[1]) || parts[0] != &parts[1][..2] {
        return Ok(None);
    }
    Ok(Some(store_dir(cache_dir).join(parts[0]).join(parts[1])))
}

/// The payload of a per-repo blob when it is a valid shared symlink to an existing payload.
/// Callers check [`is_store_dir`] once first.
pub fn store_target(blob: &Path, cache_dir: &Path) -> Option<PathBuf> {
    raw_target(blob, cache_dir)
        .ok()
        .flatten()
        .filter(|t| is_regular_file(t))
}

/// Every valid payload path of a marked store (none when the store is absent or unmarked).
pub fn payloads(cache_dir: &Path) -> Vec<PathBuf> {
    let store = store_dir(cache_dir);
    let mut out = Vec::new();
    if !is_store_dir(&store) {
        return out;
    }
    let Ok(prefixes) = fs::read_dir(&store) else {
        return out;
    };
    for prefix in prefixes.flatten() {
        let name = prefix.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_prefix = name.len() == 2 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_prefix || !prefix.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(entries) = fs::read_dir(prefix.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let ok = entry
                .file_name()
                .to_str()
                .is_some_and(|n| is_xet_hash(n) && n.starts_with(name));
            if ok && entry.file_type().is_ok_and(|t| t.is_file()) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// `<payload>.refs`.
pub fn manifest_path(payload: &Path) -> PathBuf {
    sibling(payload, "refs")
}

fn lock_path(payload: &Path) -> PathBuf {
    sibling(payload, "lock")
}

fn sibling(payload: &Path, ext: &str) -> PathBuf {
    let name = payload
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    payload.with_file_name(format!("{name}.{ext}"))
}

/// The per-repo blob paths of the manifest that really link to `payload`; `None` when the
/// manifest is missing or unreadable (then the payload must be kept).
pub fn manifest_references(payload: &Path, cache_dir: &Path) -> Option<BTreeSet<PathBuf>> {
    let manifest = manifest_path(payload);
    if !is_regular_file(&manifest) {
        return None;
    }
    let text = String::from_utf8(fs::read(&manifest).ok()?).ok()?;
    let cache = normalize(cache_dir);
    let payload = normalize(payload);
    let mut refs = BTreeSet::new();
    for line in text.lines() {
        let rel = Path::new(line);
        if rel.is_absolute() || rel.components().any(|c| c == Component::ParentDir) {
            continue;
        }
        let candidate = cache.join(rel);
        if relative_blob_path(&candidate, &cache).is_none() {
            continue;
        }
        match raw_target(&candidate, &cache) {
            Ok(Some(t)) if normalize(&t) == payload => {
                refs.insert(candidate);
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    Some(refs)
}

/// Takes the payload's lock as Python does (created without following symlinks, mode 0o666).
fn lock_payload(payload: &Path, on_wait: &dyn Fn(&Path, Duration)) -> Result<LockedFile, CacheError> {
    lock_payload_with(payload, Duration::MAX, on_wait)
}

/// [`lock_payload`] waiting at most `timeout`.
fn lock_payload_with(
    payload: &Path,
    timeout: Duration,
    on_wait: &dyn Fn(&Path, Duration),
) -> Result<LockedFile, CacheError> {
    let path = lock_path(payload);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| CacheError::io("open the shared-blob lock", &path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| CacheError::io("inspect the shared-blob lock", &path, e))?;
    if !meta.is_file() {
        return Err(CacheError::io(
            "lock",
            &path,
            io::Error::other("the shared-blob lock is not a regular file"),
        ));
    }
    let _ = file.set_permissions(fs::Permissions::from_mode(0o666));
    drop(file);
    Ok(LockedFile::acquire_blocking(&path, timeout, on_wait)?)
}

/// Collects one payload if its manifest proves no valid reference remains (then returns the
/// bytes freed); otherwise rewrites the manifest to its valid references and keeps it.
pub fn sweep(payload: &Path, cache_dir: &Path, on_wait: &dyn Fn(&Path, Duration)) -> Result<u64, CacheError> {
    let cache = normalize(cache_dir);
    let payload = normalize(payload);
    let store = normalize(&store_dir(&cache));
    let valid_shape = payload.strip_prefix(&store).is_ok_and(|r| r.components().count() == 2)
        && payload.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            is_xet_hash(n) && payload.parent().and_then(Path::file_name).and_then(|p| p.to_str()) == Some(&n[..2])
        });
    if !valid_shape || !is_store_dir(&store) {
        return Ok(0);
    }
    let _lock = lock_payload(&payload, on_wait)?;
    let Some(refs) = manifest_references(&payload, &cache) else {
        return Ok(0);
    };
    let manifest = manifest_path(&payload);
    if !refs.is_empty() {
        rewrite_manifest(&manifest, &refs, &cache)?;
        return Ok(0);
    }
    let size = match fs::symlink_metadata(&payload) {
        Ok(m) if m.file_type().is_file() => m.len(),
        _ => return Ok(0),
    };
    fs::remove_file(&payload).map_err(|e| CacheError::io("remove the shared blob", &payload, e))?;
    let _ = fs::remove_file(&manifest);
    Ok(size)
}

fn rewrite_manifest(manifest: &Path, refs: &BTreeSet<PathBuf>, cache: &Path) -> Result<(), CacheError> {
    let mut content = String::new();
    for r in refs {
        if let Ok(rel) = r.strip_prefix(cache) {
            content.push_str(&rel.to_string_lossy());
            content.push('\n');
        }
    }
    let tmp = crate::fs::sibling_temp(manifest, "tmp");
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.set_permissions(fs::Permissions::from_mode(0o666))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, manifest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| CacheError::io("rewrite the shared-blob manifest", manifest, e))
}

/// How long a soft (existence) lock is waited for where flock does not work, as in Python.
const SOFT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// `<cache>/blobs/<2 hex>/<xet hash>` for a valid Xet hash (64 lower-case hex, as Python's
/// store requires: an upper-case hash never names a payload).
pub fn payload_path(cache_dir: &Path, xet_hash: &str) -> Option<PathBuf> {
    is_xet_hash(xet_hash).then(|| store_dir(cache_dir).join(&xet_hash[..2]).join(xet_hash))
}

/// What a payload was when it was hashed (device, inode, size, modification time), so the
/// link step can prove, under the payload's lock, that it links the very file that was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileIdentity {
    /// The identity of the regular file at `path` (not following symlinks).
    pub fn of(path: &Path) -> io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(path)?;
        if !m.file_type().is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }
}

/// Python's `_is_usable_store_entry`: a regular, readable payload of exactly `expected_size`.
pub fn usable_payload(payload: &Path, expected_size: u64) -> bool {
    let regular_of_size =
        fs::symlink_metadata(payload).is_ok_and(|m| m.file_type().is_file() && m.len() == expected_size);
    regular_of_size && rustix::fs::access(payload, rustix::fs::Access::READ_OK).is_ok()
}

/// Whether `payload` is a well-formed payload path of the marked store of `cache_dir`.
fn is_payload_path(payload: &Path, cache_dir: &Path) -> bool {
    let store = normalize(&store_dir(cache_dir));
    let payload = normalize(payload);
    let in_store = payload.strip_prefix(&store).is_ok_and(|r| r.components().count() == 2);
    let named = payload.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        is_xet_hash(n) && payload.parent().and_then(Path::file_name).and_then(|p| p.to_str()) == Some(&n[..2])
    });
    in_store && named
}

/// The payload's lock, held until dropped: the flock of `<payload>.lock`, or where flock does
/// not work Python's fallback, the existence of `<payload>.lock.soft`.
struct PayloadLock {
    _flock: LockedFile,
    soft: Option<PathBuf>,
}

impl Drop for PayloadLock {
    fn drop(&mut self) {
        if let Some(soft) = self.soft.take() {
            let _ = fs::remove_file(soft);
        }
    }
}

/// Takes the payload's lock (waiting at most `timeout` for the flock, 10 s for a soft lock).
fn lock_payload_bounded(
    payload: &Path,
    timeout: Duration,
    on_wait: &dyn Fn(&Path, Duration),
) -> Result<PayloadLock, CacheError> {
    let flock = lock_payload_with(payload, timeout, on_wait)?;
    if flock.is_held() {
        return Ok(PayloadLock {
            _flock: flock,
            soft: None,
        });
    }
    let soft = sibling(payload, "lock.soft");
    let start = std::time::Instant::now();
    loop {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&soft);
        match created {
            Ok(_) => {
                return Ok(PayloadLock {
                    _flock: flock,
                    soft: Some(soft),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && start.elapsed() < SOFT_LOCK_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(CacheError::io("take the shared-blob soft lock", &soft, e)),
        }
    }
}

/// Appends one reference line to the manifest and flushes it (before the link it names
/// appears), as Python does: created without following symlinks, mode 0o666.
fn append_manifest_reference(manifest: &Path, relative_blob: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW)
        .open(manifest)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("the shared-blob manifest is not a regular file"));
    }
    let _ = file.set_permissions(fs::Permissions::from_mode(0o666));
    file.write_all(format!("{relative_blob}\n").as_bytes())?;
    file.sync_all()
}

/// Python's `try_link_from_shared_store` for a payload that was already checked: under the
/// payload's lock, if it is still the file `checked` describes (and a usable entry of that
/// size), `blob` becomes a relative symlink to it, its manifest line appended and flushed
/// first. `Ok(false)`: not linked (no marked store, a path outside the cache, the payload gone
/// or changed); the caller downloads instead.
pub fn link_blob_to_payload(
    blob: &Path,
    payload: &Path,
    cache_dir: &Path,
    checked: &FileIdentity,
    timeout: Duration,
    on_wait: &dyn Fn(&Path, Duration),
) -> Result<bool, CacheError> {
    let store = store_dir(cache_dir);
    let Some(relative_blob) = relative_blob_path(blob, cache_dir) else {
        return Ok(false);
    };
    if !is_store_dir(&store) || !is_payload_path(payload, cache_dir) {
        return Ok(false);
    }
    let Some(hash) = payload.file_name().and_then(|n| n.to_str()) else {
        return Ok(false);
    };
    // relative_blob_path proved `blob` is `<cache>/<repo folder>/blobs/<etag>`.
    let target = PathBuf::from(format!("../../{STORE_DIR_NAME}/{}/{hash}", &hash[..2]));
    let Some(etag) = blob.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(false);
    };
    let _lock = lock_payload_bounded(payload, timeout, on_wait)?;
    if !usable_payload(payload, checked.size()) || FileIdentity::of(payload).ok().as_ref() != Some(checked) {
        return Ok(false);
    }
    let tmp = blob.with_file_name(format!(".{etag}.{}.shared", crate::fs::random_suffix()));
    let result = (|| {
        std::os::unix::fs::symlink(&target, &tmp)?;
        append_manifest_reference(&manifest_path(payload), &relative_blob)?;
        fs::rename(&tmp, blob)
    })();
    let _ = fs::remove_file(&tmp);
    result.map_err(|e| CacheError::io("link from the shared blob store", blob, e))?;
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a marked store holding `content` under `xet`, linked from `repos`' `blobs/<etag>`.
    pub(crate) fn shared_fixture(cache: &Path, xet: &str, content: &[u8], etag: &str, repos: &[&str]) -> PathBuf {
        let store = store_dir(cache);
        fs::create_dir_all(store.join(&xet[..2])).unwrap();
        fs::write(store.join(MARKER_NAME), b"1\n").unwrap();
        let payload = store.join(&xet[..2]).join(xet);
        fs::write(&payload, content).unwrap();
        let mut manifest = String::new();
        for repo in repos {
            let blobs = cache.join(repo).join("blobs");
            fs::create_dir_all(&blobs).unwrap();
            std::os::unix::fs::symlink(format!("../../blobs/{}/{xet}", &xet[..2]), blobs.join(etag)).unwrap();
            manifest.push_str(&format!("{repo}/blobs/{etag}\n"));
        }
        fs::write(manifest_path(&payload), manifest).unwrap();
        payload
    }

    #[test]
    fn links_a_checked_payload_as_python_does() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let xet = format!("ef{}", "3".repeat(62));
        let payload = shared_fixture(cache, &xet, b"payload", "e1", &["models--o--a"]);
        let blobs = cache.join("models--o--b/blobs");
        fs::create_dir_all(&blobs).unwrap();
        let blob = blobs.join("e1");
        let checked = FileIdentity::of(&payload).unwrap();
        let no_wait = |_: &Path, _: Duration| {};
        assert!(link_blob_to_payload(&blob, &payload, cache, &checked, Duration::from_secs(5), &no_wait).unwrap());
        assert_eq!(
            fs::read_link(&blob).unwrap(),
            PathBuf::from(format!("../../blobs/ef/{xet}"))
        );
        assert_eq!(
            fs::read_to_string(manifest_path(&payload)).unwrap(),
            "models--o--a/blobs/e1\nmodels--o--b/blobs/e1\n"
        );
        assert_eq!(manifest_references(&payload, cache).unwrap().len(), 2);
        let leftovers: Vec<_> = fs::read_dir(&blobs).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["e1"], "no temporary link left");

        // A payload changed since it was checked is not linked, and nothing is written.
        let other = cache.join("models--o--c/blobs/e1");
        fs::create_dir_all(other.parent().unwrap()).unwrap();
        fs::remove_file(&payload).unwrap();
        fs::write(&payload, b"PAYLOAD").unwrap();
        assert!(!link_blob_to_payload(&other, &payload, cache, &checked, Duration::from_secs(5), &no_wait).unwrap());
        assert!(fs::symlink_metadata(&other).is_err());
        assert_eq!(manifest_references(&payload, cache).unwrap().len(), 2);
        // Outside the cache layout, or without the marker: no link.
        let stray = cache.join("elsewhere/e1");
        let fresh = FileIdentity::of(&payload).unwrap();
        assert!(!link_blob_to_payload(&stray, &payload, cache, &fresh, Duration::from_secs(5), &no_wait).unwrap());
        fs::write(store_dir(cache).join(MARKER_NAME), b"2\n").unwrap();
        assert!(!link_blob_to_payload(&other, &payload, cache, &fresh, Duration::from_secs(5), &no_wait).unwrap());
        assert!(fs::symlink_metadata(&other).is_err());
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/b"));
    }

    #[test]
    fn relative_blob_paths() {
        let c = Path::new("/c");
        assert_eq!(
            relative_blob_path(Path::new("/c/models--o--m/blobs/e"), c).as_deref(),
            Some("models--o--m/blobs/e")
        );
        assert!(relative_blob_path(Path::new("/c/models--o--m/snapshots/e"), c).is_none());
        assert!(relative_blob_path(Path::new("/c/foo--o/blobs/e"), c).is_none());
        assert!(relative_blob_path(Path::new("/c/models--/blobs/e"), c).is_none());
        assert!(relative_blob_path(Path::new("/d/models--o--m/blobs/e"), c).is_none());
    }

    #[test]
    fn marker_targets_manifest_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let xet = format!("ab{}", "1".repeat(62));
        let payload = shared_fixture(cache, &xet, b"payload", "e1", &["models--o--a", "models--o--b"]);
        assert!(is_store_dir(&store_dir(cache)));
        assert_eq!(payloads(cache), vec![payload.clone()]);
        let a = cache.join("models--o--a/blobs/e1");
        assert_eq!(store_target(&a, cache), Some(payload.clone()));
        assert_eq!(fs::read(&a).unwrap(), b"payload");
        assert_eq!(manifest_references(&payload, cache).unwrap().len(), 2);

        // One reference gone: the sweep keeps the payload and rewrites the manifest.
        fs::remove_file(&a).unwrap();
        assert_eq!(sweep(&payload, cache, &|_, _| {}).unwrap(), 0);
        assert_eq!(
            fs::read_to_string(manifest_path(&payload)).unwrap(),
            "models--o--b/blobs/e1\n"
        );
        // The last one gone: the payload and its manifest go.
        fs::remove_file(cache.join("models--o--b/blobs/e1")).unwrap();
        assert_eq!(sweep(&payload, cache, &|_, _| {}).unwrap(), 7);
        assert!(!payload.exists() && !manifest_path(&payload).exists());

        // An unmarked store is not a store; a missing manifest keeps the payload.
        let xet2 = format!("cd{}", "2".repeat(62));
        let p2 = shared_fixture(cache, &xet2, b"x", "e2", &[]);
        fs::remove_file(manifest_path(&p2)).unwrap();
        assert_eq!(sweep(&p2, cache, &|_, _| {}).unwrap(), 0);
        assert!(p2.exists());
        fs::write(store_dir(cache).join(MARKER_NAME), b"2\n").unwrap();
        assert!(!is_store_dir(&store_dir(cache)));
        assert!(payloads(cache).is_empty());
    }
}
