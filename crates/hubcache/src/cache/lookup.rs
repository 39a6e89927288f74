//! Read-only cache queries (`try_to_load_from_cache`): no network, no writes.

use std::fs;
use std::path::PathBuf;

use super::layout::{CacheLayout, RepoLayout};
use crate::repo::{CommitHash, Repo, RepoPath, Revision};

/// What the cache knows about one file at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLookup {
    /// The file is cached here.
    Hit(PathBuf),
    /// The cache recorded that the file does not exist at that commit (`.no_exist`).
    KnownMissing,
    /// The cache does not know.
    Miss,
}

/// Reads `refs/<name>` and returns the commit it holds, trimmed and validated.
pub fn read_ref(repo: &RepoLayout, name: &str) -> Option<CommitHash> {
    let raw = fs::read_to_string(repo.ref_file(name)).ok()?;
    CommitHash::new(raw.trim()).ok()
}

/// The commit a revision stands for, from the revision itself or its ref.
pub fn resolve_commit(repo: &RepoLayout, revision: &Revision) -> Option<CommitHash> {
    match revision {
        Revision::Commit(c) => Some(c.clone()),
        Revision::Ref(name) => read_ref(repo, name),
    }
}

/// `try_to_load_from_cache`: ref → commit, `.no_exist` before snapshots, never another revision.
pub fn try_to_load_from_cache(cache: &CacheLayout, repo: &Repo, revision: &Revision, path: &RepoPath) -> CacheLookup {
    let layout = cache.repo(repo);
    if !layout.root().is_dir() {
        return CacheLookup::Miss;
    }
    let Some(commit) = resolve_commit(&layout, revision) else {
        return CacheLookup::Miss;
    };
    if crate::fs::is_file(&layout.no_exist_marker(&commit, path)) {
        return CacheLookup::KnownMissing;
    }
    let file = layout.snapshot_file(&commit, path);
    if crate::fs::is_file(&file) {
        CacheLookup::Hit(file)
    } else {
        CacheLookup::Miss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::RepoId;
    use crate::repo::RepoType;

    #[test]
    fn lookup_rules() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheLayout::new(dir.path());
        let repo = Repo::new(RepoId::new("org/m").unwrap(), RepoType::Model);
        let layout = cache.repo(&repo);
        let commit = CommitHash::new(&"c".repeat(40)).unwrap();
        let cfg = RepoPath::new("config.json").unwrap();
        let missing = RepoPath::new("missing.json").unwrap();
        let main = Revision::main();
        assert_eq!(try_to_load_from_cache(&cache, &repo, &main, &cfg), CacheLookup::Miss);

        fs::create_dir_all(layout.snapshot_dir(&commit)).unwrap();
        fs::create_dir_all(layout.blobs_dir()).unwrap();
        fs::write(layout.blob("e"), b"{}").unwrap();
        std::os::unix::fs::symlink("../../blobs/e", layout.snapshot_file(&commit, &cfg)).unwrap();
        // No ref yet: a branch name is not a snapshot.
        assert_eq!(try_to_load_from_cache(&cache, &repo, &main, &cfg), CacheLookup::Miss);
        let by_commit = Revision::Commit(commit.clone());
        assert_eq!(
            try_to_load_from_cache(&cache, &repo, &by_commit, &cfg),
            CacheLookup::Hit(layout.snapshot_file(&commit, &cfg))
        );
        fs::create_dir_all(layout.ref_file("x").parent().unwrap()).unwrap();
        fs::write(layout.ref_file("main"), format!("{commit}\n")).unwrap();
        assert!(matches!(
            try_to_load_from_cache(&cache, &repo, &main, &cfg),
            CacheLookup::Hit(_)
        ));
        assert_eq!(
            try_to_load_from_cache(&cache, &repo, &main, &missing),
            CacheLookup::Miss
        );
        let marker = layout.no_exist_marker(&commit, &missing);
        fs::create_dir_all(marker.parent().unwrap()).unwrap();
        fs::write(&marker, b"").unwrap();
        assert_eq!(
            try_to_load_from_cache(&cache, &repo, &main, &missing),
            CacheLookup::KnownMissing
        );
        // A broken symlink is not a hit.
        fs::remove_file(layout.blob("e")).unwrap();
        assert_eq!(try_to_load_from_cache(&cache, &repo, &main, &cfg), CacheLookup::Miss);
        // A ref holding garbage is ignored.
        fs::write(layout.ref_file("main"), "../../etc").unwrap();
        assert_eq!(try_to_load_from_cache(&cache, &repo, &main, &cfg), CacheLookup::Miss);
    }
}
