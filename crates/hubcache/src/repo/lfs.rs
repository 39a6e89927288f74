//! The Hub's LFS rules (pure): which files a repo stores in LFS, and the pointer file git keeps
//! for them. `cache add-folder` and the mirror both publish listings with these rules, so a
//! folder imported here lists exactly as the Hub would list it after an upload.

use crate::digest::{git_blob_sha1, DigestKind};

/// Files at least this large are stored as LFS objects, as on the Hub.
pub const LFS_THRESHOLD: u64 = 10 * 1024 * 1024;

/// Extensions the Hub's default `.gitattributes` stores in LFS whatever their size.
pub const LFS_EXTENSIONS: &[&str] = &[
    "7z",
    "arrow",
    "bin",
    "bz2",
    "ckpt",
    "ftz",
    "gguf",
    "gz",
    "h5",
    "joblib",
    "mlmodel",
    "model",
    "msgpack",
    "npy",
    "npz",
    "onnx",
    "ot",
    "parquet",
    "pb",
    "pickle",
    "pkl",
    "pt",
    "pth",
    "rar",
    "safetensors",
    "tar",
    "tflite",
    "tgz",
    "wasm",
    "xz",
    "zip",
    "zst",
];

/// Whether the Hub would store this file in LFS.
pub fn is_lfs(path: &str, size: u64) -> bool {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    size >= LFS_THRESHOLD || ext.is_some_and(|e| LFS_EXTENSIONS.contains(&e.as_str()))
}

/// The digest the Hub names a file's blob by under these rules: sha256 for LFS files, git blob
/// sha1 otherwise (how a copied snapshot file, which has no blob name, is identified).
pub fn blob_digest_kind(path: &str, size: u64) -> DigestKind {
    if is_lfs(path, size) {
        DigestKind::Sha256
    } else {
        DigestKind::GitSha1
    }
}

/// The LFS pointer file git stores for content with this sha256 and size.
pub fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// Git blob id of that pointer file.
pub fn lfs_pointer_oid(sha256: &str, size: u64) -> String {
    git_blob_sha1(lfs_pointer(sha256, size).as_bytes())
}

/// Size of that pointer file.
pub fn lfs_pointer_size(sha256: &str, size: u64) -> u64 {
    lfs_pointer(sha256, size).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_pointer() {
        assert!(is_lfs("model.safetensors", 10));
        assert!(is_lfs("x/pytorch_model.BIN", 10));
        assert!(is_lfs("big.json", LFS_THRESHOLD));
        assert!(!is_lfs("config.json", 100));
        assert!(!is_lfs("noext", 100));
        let sha = "a".repeat(64);
        assert_eq!(lfs_pointer_size(&sha, 1000), 125 + 4);
        assert!(lfs_pointer(&sha, 7).ends_with("size 7\n"));
        assert_eq!(lfs_pointer_oid(&sha, 7), git_blob_sha1(lfs_pointer(&sha, 7).as_bytes()));
    }
}
