//! File-system primitives: atomic writes, unique temp names, relative symlinks, copies.
//!
//! Every rename in the library goes through here, and every rename stays inside one folder,
//! so a reader sees either the old file or the new one, never a partial one.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Eight random lower-case hex characters, as used in temp file names.
pub fn random_suffix() -> String {
    format!("{:08x}", fastrand::u32(..))
}

/// Writes `bytes` to `path` atomically: `<name>.<8 hex>.tmp` beside it, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = sibling_temp(path, "tmp");
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `<dir>/<name>.<8 hex>.<ext>` next to `path`.
pub fn sibling_temp(path: &Path, ext: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.{}.{ext}", random_suffix()))
}

/// Creates `path` with exactly `content` unless something already exists there.
pub fn create_if_absent(path: &Path, content: &[u8]) -> io::Result<()> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut f) => f.write_all(content),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the parent folder of `path`.
pub fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// Bytes an unprivileged user may still write on the file system holding `dir` (statvfs
/// `f_bavail * f_frsize`, as Python's `shutil.disk_usage(...).free`); `None` if unknown.
pub fn available_space(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether a write failed because the disk (or the user's quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::ENOSPC || code == libc::EDQUOT)
}

/// Whether `path` exists as a file (following symlinks).
pub fn is_file(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_file()).unwrap_or(false)
}

/// Whether relative symlinks can be created in `dir`; probed once per folder and process.
pub fn symlinks_supported(dir: &Path) -> bool {
    static PROBES: OnceLock<Mutex<HashMap<PathBuf, bool>>> = OnceLock::new();
    let probes = PROBES.get_or_init(Default::default);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if let Some(v) = probes.lock().ok().and_then(|m| m.get(&key).copied()) {
        return v;
    }
    let supported = probe_symlinks(&key).unwrap_or(false);
    if let Ok(mut m) = probes.lock() {
        m.insert(key, supported);
    }
    supported
}

fn probe_symlinks(dir: &Path) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".symlink-probe-{}", random_suffix()));
    fs::create_dir(&probe)?;
    let result = (|| {
        File::create(probe.join("src"))?;
        std::os::unix::fs::symlink("src", probe.join("dst"))?;
        Ok::<_, io::Error>(fs::read_link(probe.join("dst")).is_ok())
    })();
    let _ = fs::remove_dir_all(&probe);
    Ok(result.unwrap_or(false))
}

/// Creates `link` as a symlink with the relative `target`. An existing link with the same
/// target is accepted (another process got there first); anything else there is replaced.
pub fn relative_symlink(target: &Path, link: &Path) -> io::Result<()> {
    create_parent(link)?;
    if let Ok(existing) = fs::read_link(link) {
        if existing == target {
            return Ok(());
        }
    }
    // Build beside the final name and rename over it: never a moment without a valid entry.
    let tmp = sibling_temp(link, "link");
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Copies `src` to `dst` through a temp file, so `dst` is never partial.
pub fn copy_atomic(src: &Path, dst: &Path) -> io::Result<()> {
    create_parent(dst)?;
    let tmp = sibling_temp(dst, "tmp");
    let result = fs::copy(src, &tmp).and_then(|_| fs::rename(&tmp, dst));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ref");
        write_atomic(&p, b"abc").unwrap();
        write_atomic(&p, b"def").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"def");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");

        fs::write(dir.path().join("blob"), b"x").unwrap();
        let link = dir.path().join("a/b/link");
        relative_symlink(Path::new("../../blob"), &link).unwrap();
        relative_symlink(Path::new("../../blob"), &link).unwrap();
        assert_eq!(fs::read(&link).unwrap(), b"x");
        assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("../../blob"));
        assert!(symlinks_supported(dir.path()));

        create_if_absent(&dir.path().join("tag"), b"one").unwrap();
        create_if_absent(&dir.path().join("tag"), b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("tag")).unwrap(), b"one");
    }

    #[test]
    fn free_space_and_full_disk_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_space(dir.path()).is_some());
        assert_eq!(available_space(&dir.path().join("missing")), None);
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(libc::EIO)));
    }

    #[test]
    fn suffix_is_8_hex() {
        let s = random_suffix();
        assert_eq!(s.len(), 8);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
