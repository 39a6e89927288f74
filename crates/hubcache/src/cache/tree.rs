//! `trees/<commit>.json`: the file listing of one commit, in huggingface_hub's format_version 1.
//!
//! Written as Python writes it (1-space indent, ASCII-escaped, sorted paths, no trailing newline,
//! mode 0600 via a temp file and rename); read strictly, rejecting anything malformed.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::DigestKind;
use crate::repo::lfs::lfs_pointer_oid;
use crate::repo::RepoPath;

/// One file of a commit listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeFile {
    /// Size in bytes.
    pub size: u64,
    /// Git blob id (40 hex).
    pub blob_id: String,
    /// SHA-256 of the content for LFS files.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lfs_sha256: Option<String>,
    /// Size of the LFS content.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lfs_size: Option<u64>,
    /// Xet hash when the Hub reported one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub xet_hash: Option<String>,
}

impl TreeFile {
    /// An LFS file: its content's sha256 and size (the git blob id is its pointer's).
    pub fn lfs(sha256: String, size: u64) -> TreeFile {
        TreeFile {
            size,
            blob_id: lfs_pointer_oid(&sha256, size),
            lfs_sha256: Some(sha256),
            lfs_size: Some(size),
            xet_hash: None,
        }
    }

    /// A regular (non-LFS) file: its git blob id and size.
    pub fn regular(blob_id: String, size: u64) -> TreeFile {
        TreeFile {
            size,
            blob_id,
            lfs_sha256: None,
            lfs_size: None,
            xet_hash: None,
        }
    }

    /// The listing entry of a blob stored under `etag`: LFS when the etag is a sha256.
    pub fn for_blob(etag: String, size: u64) -> TreeFile {
        match DigestKind::for_etag(&etag) {
            Some(DigestKind::Sha256) => TreeFile::lfs(etag, size),
            _ => TreeFile::regular(etag, size),
        }
    }

    /// The etag the blob is stored under: the LFS sha256, else the git blob id.
    pub fn etag(&self) -> &str {
        self.lfs_sha256.as_deref().unwrap_or(&self.blob_id)
    }

    /// The content size.
    pub fn content_size(&self) -> u64 {
        self.lfs_size.unwrap_or(self.size)
    }
}

#[derive(Serialize, Deserialize)]
struct TreeCacheFile {
    format_version: u32,
    files: BTreeMap<String, TreeFile>,
}

/// Reads a tree cache; `None` when missing, malformed, of another version, or holding an
/// invalid path, blob id or Xet hash.
pub fn read(path: &Path) -> Option<BTreeMap<RepoPath, TreeFile>> {
    let text = fs::read_to_string(path).ok()?;
    let parsed: TreeCacheFile = serde_json::from_str(&text).ok()?;
    if parsed.format_version != 1 {
        return None;
    }
    let mut out = BTreeMap::new();
    for (name, file) in parsed.files {
        if !valid_entry(&file) {
            return None;
        }
        out.insert(RepoPath::new(&name).ok()?, file);
    }
    Some(out)
}

fn valid_entry(file: &TreeFile) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    crate::repo::is_valid_etag(&file.blob_id)
        && file.lfs_sha256.as_deref().is_none_or(|s| hex(s, 64))
        && file.xet_hash.as_deref().is_none_or(|s| hex(s, 64))
}

/// Renders the listing exactly as huggingface_hub does.
pub fn render(files: &BTreeMap<RepoPath, TreeFile>) -> String {
    let doc = TreeCacheFile {
        format_version: 1,
        files: files.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect(),
    };
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    // Serialising plain strings, numbers and maps cannot fail.
    if doc.serialize(&mut ser).is_err() {
        return String::new();
    }
    ascii_escape(&String::from_utf8_lossy(&buf))
}

/// Writes the listing (mode 0600, atomically); invalid listings are never written.
pub fn write(path: &Path, files: &BTreeMap<RepoPath, TreeFile>) -> io::Result<()> {
    if !files.values().all(valid_entry) {
        return Ok(());
    }
    crate::fs::create_parent(path)?;
    let tmp = crate::fs::sibling_temp(path, "tmp");
    let result = (|| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(render(files).as_bytes())?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Python's `ensure_ascii`: every non-ASCII character as `\uXXXX` (surrogate pairs above BMP).
fn ascii_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> BTreeMap<RepoPath, TreeFile> {
        let mut m = BTreeMap::new();
        m.insert(
            RepoPath::new("model.safetensors").unwrap(),
            TreeFile {
                size: 135,
                blob_id: "1".repeat(40),
                lfs_sha256: Some("2".repeat(64)),
                lfs_size: Some(1000),
                xet_hash: None,
            },
        );
        m.insert(
            RepoPath::new("é.txt").unwrap(),
            TreeFile {
                size: 3,
                blob_id: "3".repeat(40),
                lfs_sha256: None,
                lfs_size: None,
                xet_hash: None,
            },
        );
        m
    }

    #[test]
    fn renders_like_python() {
        let text = render(&listing());
        let expected = format!(
            "{{\n \"format_version\": 1,\n \"files\": {{\n  \"model.safetensors\": {{\n   \"size\": 135,\n   \"blob_id\": \"{}\",\n   \"lfs_sha256\": \"{}\",\n   \"lfs_size\": 1000\n  }},\n  \"\\u00e9.txt\": {{\n   \"size\": 3,\n   \"blob_id\": \"{}\"\n  }}\n }}\n}}",
            "1".repeat(40),
            "2".repeat(64),
            "3".repeat(40)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn round_trip_and_rejects() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trees/x.json");
        write(&p, &listing()).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read(&p).unwrap(), listing());
        fs::write(&p, r#"{"format_version": 2, "files": {}}"#).unwrap();
        assert!(read(&p).is_none());
        fs::write(
            &p,
            r#"{"format_version": 1, "files": {"../x": {"size": 1, "blob_id": "ab"}}}"#,
        )
        .unwrap();
        assert!(read(&p).is_none());
        let redacted = format!(
            r#"{{"format_version": 1, "files": {{"a": {{"size": 1, "blob_id": "ab", "xet_hash": "{}"}}}}}}"#,
            "*".repeat(64)
        );
        fs::write(&p, redacted).unwrap();
        assert!(read(&p).is_none());
    }
}
