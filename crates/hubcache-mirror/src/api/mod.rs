//! The Hub's JSON API shapes: repo info (`siblings`), tree listings (paginated with `Link`),
//! and `paths-info`. Each answer is built from [`Mirror::listing`](crate::server::Mirror).

mod paths_info;
mod repo_info;
mod tree;

use std::collections::{BTreeMap, BTreeSet};

use hubcache::cache::tree::TreeFile;
use hubcache::repo::lfs::lfs_pointer_size;
use hubcache::RepoPath;

pub(crate) use paths_info::paths_info;
pub(crate) use repo_info::repo_info;
pub(crate) use tree::tree;

/// The `lfs` object of a tree entry, for LFS files.
pub(crate) fn lfs_json(f: &TreeFile) -> Option<serde_json::Value> {
    f.lfs_sha256.as_ref().map(|sha| {
        serde_json::json!({
            "oid": sha,
            "size": f.content_size(),
            "pointerSize": lfs_pointer_size(sha, f.content_size()),
        })
    })
}

/// Files and the folders that contain them, sorted by path.
pub(crate) fn entries(listing: &BTreeMap<RepoPath, TreeFile>) -> Vec<(String, Option<&TreeFile>)> {
    let mut dirs = BTreeSet::new();
    for p in listing.keys() {
        let s = p.as_str();
        for (i, _) in s.match_indices('/') {
            dirs.insert(s[..i].to_string());
        }
    }
    let mut out: Vec<(String, Option<&TreeFile>)> = dirs.into_iter().map(|d| (d, None)).collect();
    out.extend(listing.iter().map(|(p, f)| (p.as_str().to_string(), Some(f))));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One tree entry: a file (with `lfs`) or a directory (with a stable made-up oid).
pub(crate) fn entry_json(path: &str, file: Option<&TreeFile>) -> serde_json::Value {
    match file {
        Some(f) => {
            let mut e = serde_json::json!({ "type": "file", "oid": f.blob_id, "size": f.content_size(), "path": path });
            if let Some(l) = lfs_json(f) {
                e["lfs"] = l;
            }
            e
        }
        None => {
            let oid = hubcache::digest::git_blob_sha1(format!("tree {path}").as_bytes());
            serde_json::json!({ "type": "directory", "oid": oid, "size": 0, "path": path })
        }
    }
}
