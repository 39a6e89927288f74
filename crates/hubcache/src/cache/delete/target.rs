//! What `cache rm` names: command-line targets, and their resolution to cached revisions
//! against a scan (a ref, a full commit or a unique commit prefix).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::cache::error::CacheError;
use crate::cache::scan::{CacheInfo, CachedRepoType, RepoInfo};

/// What `cache rm` was asked to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A 40-hex commit, in whichever repo has it.
    Commit(String),
    /// A whole repo (`org/name`, or `type/org/name`).
    Repo {
        /// Type from `--repo-type`.
        repo_type: CachedRepoType,
        /// The id as given.
        id: String,
    },
    /// One revision of a repo (`org/name@rev`: a ref, a commit or a unique commit prefix).
    Revision {
        /// Type from `--repo-type`.
        repo_type: CachedRepoType,
        /// The id as given.
        id: String,
        /// The revision as given.
        revision: String,
    },
}

impl Target {
    /// Parses a command-line target; `repo_type` applies to repo targets.
    pub fn parse(raw: &str, repo_type: CachedRepoType) -> Result<Target, CacheError> {
        let raw = raw.trim();
        let invalid = |reason: &str| CacheError::InvalidTarget {
            target: raw.to_string(),
            reason: reason.to_string(),
        };
        if raw.len() == 40 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Target::Commit(raw.to_ascii_lowercase()));
        }
        let (id, revision) = match raw.split_once('@') {
            Some((id, rev)) => (id, Some(rev)),
            None => (raw, None),
        };
        if id.is_empty() || id.starts_with('/') || id.ends_with('/') || id.contains("//") {
            return Err(invalid("expected ORG/NAME"));
        }
        if id.split('/').any(|s| s == ".." || s == ".") || id.contains(['\\', '\0']) {
            return Err(invalid("a repo id cannot contain `.`/`..` segments or backslashes"));
        }
        match revision {
            Some("") => Err(invalid("empty revision after `@`")),
            Some(rev) => Ok(Target::Revision {
                repo_type,
                id: id.to_string(),
                revision: rev.to_string(),
            }),
            None => Ok(Target::Repo {
                repo_type,
                id: id.to_string(),
            }),
        }
    }
}

/// One cached revision: its repo folder and commit.
pub type RevisionKey = (PathBuf, String);

/// The revisions some targets select, and the targets that matched nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// Revisions to delete.
    pub revisions: BTreeSet<RevisionKey>,
    /// Targets with no match (as given).
    pub missing: Vec<String>,
}

/// Finds a repo by type and id, or by a `type/org/name` id (Python's cache id) as a fallback.
fn find_repo<'a>(info: &'a CacheInfo, repo_type: CachedRepoType, id: &str) -> Option<&'a RepoInfo> {
    info.repo(repo_type, id).or_else(|| {
        let (t, rest) = id.split_once('/')?;
        info.repo(CachedRepoType::parse(t)?, rest)
    })
}

/// Resolves targets against a scan (pure).
pub fn resolve_targets(info: &CacheInfo, targets: &[(String, Target)]) -> Resolution {
    let mut res = Resolution::default();
    for (raw, target) in targets {
        let key = |r: &RepoInfo, c: &str| (r.repo_path.clone(), c.to_string());
        let found: Vec<RevisionKey> = match target {
            Target::Commit(c) => info
                .repos
                .iter()
                .flat_map(|r| r.revisions.iter().map(move |rev| (r, rev)))
                .filter(|(_, rev)| rev.commit_hash.eq_ignore_ascii_case(c))
                .map(|(r, rev)| key(r, &rev.commit_hash))
                .collect(),
            Target::Repo { repo_type, id } => find_repo(info, *repo_type, id)
                .map(|r| r.revisions.iter().map(|rev| key(r, &rev.commit_hash)).collect())
                .unwrap_or_default(),
            Target::Revision {
                repo_type,
                id,
                revision,
            } => find_repo(info, *repo_type, id)
                .and_then(|r| find_revision(r, revision).map(|c| key(r, &c)))
                .into_iter()
                .collect(),
        };
        if found.is_empty() {
            res.missing.push(raw.clone());
        }
        res.revisions.extend(found);
    }
    res
}

/// A ref name, a full commit (any case) or a unique commit prefix of at least 4 characters.
fn find_revision(repo: &RepoInfo, rev: &str) -> Option<String> {
    if let Some(r) = repo.revision(rev) {
        return Some(r.commit_hash.clone());
    }
    let lower = rev.to_ascii_lowercase();
    let hits: Vec<&str> = repo
        .revisions
        .iter()
        .map(|r| r.commit_hash.as_str())
        .filter(|c| (lower.len() >= 4 && c.starts_with(&lower)) || c.eq_ignore_ascii_case(rev))
        .collect();
    match hits.as_slice() {
        [one] => Some((*one).to_string()),
        _ => None,
    }
}

/// Every cached revision with one of these commits, in any repo (Python's bare-hash targets).
pub fn select_commits(info: &CacheInfo, commits: &BTreeSet<String>) -> BTreeSet<RevisionKey> {
    info.repos
        .iter()
        .flat_map(|r| r.revisions.iter().map(move |rev| (r, rev)))
        .filter(|(_, rev)| commits.contains(&rev.commit_hash))
        .map(|(r, rev)| (r.repo_path.clone(), rev.commit_hash.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::scan::scan;
    use crate::cache::testutil::{add_file, add_ref, two_revisions, C1, C2};
    use std::path::Path;

    #[test]
    fn targets_parse_and_resolve() {
        let dir = tempfile::tempdir().unwrap();
        two_revisions(dir.path());
        add_file(&dir.path().join("datasets--org--d"), C1, "x", "e5", b"x");
        add_ref(&dir.path().join("datasets--org--d"), "v1", C1);
        let info = scan(dir.path()).unwrap();
        let m = CachedRepoType::Model;
        let parse = |s: &str| (s.to_string(), Target::parse(s, m).unwrap());
        assert_eq!(Target::parse(&C1.to_uppercase(), m).unwrap(), Target::Commit(C1.into()));
        assert!(Target::parse("org/../x", m).is_err());
        assert!(Target::parse("org/m@", m).is_err());
        let m_path = info.repos[1].repo_path.clone();
        let d_path = info.repos[0].repo_path.clone();
        let keys = |p: &Path, cs: &[&str]| {
            cs.iter()
                .map(|c| (p.to_path_buf(), c.to_string()))
                .collect::<BTreeSet<_>>()
        };
        let r = resolve_targets(&info, &[parse("org/m@main")]);
        assert_eq!(r.revisions, keys(&m_path, &[C2]));
        let r = resolve_targets(&info, &[parse("ORG/M@1111")]);
        assert_eq!(r.revisions, keys(&m_path, &[C1]));
        let r = resolve_targets(&info, &[parse("org/m")]);
        assert_eq!(r.revisions, keys(&m_path, &[C1, C2]));
        let r = resolve_targets(&info, &[parse("dataset/org/d"), parse("org/d"), parse(&"a".repeat(40))]);
        assert_eq!(r.revisions, keys(&d_path, &[C1]));
        assert_eq!(r.missing, vec!["org/d".to_string(), "a".repeat(40)]);
        let ds = (
            "org/d@v1".to_string(),
            Target::parse("org/d@v1", CachedRepoType::Dataset).unwrap(),
        );
        assert_eq!(resolve_targets(&info, &[ds]).revisions, keys(&d_path, &[C1]));
        // A bare commit selects it in every repo that has it (Python's rule).
        let r = resolve_targets(&info, &[parse(C1)]);
        assert_eq!(r.revisions.len(), 2);
    }
}
