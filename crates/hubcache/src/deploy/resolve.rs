//! `hubcache lock`: resolve a manifest to commits and exact files; compare a lock with its
//! manifest.

use std::collections::BTreeMap;

use super::lockfile::{LockedFile, LockedRepo, Lockfile};
use super::manifest::{Manifest, ManifestRepo};
use super::DeployError;
use crate::download::patterns::Filter;
use crate::repo::{CommitHash, Repo, Revision};
use crate::Hub;

/// Which pins `lock` may move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Keep existing pins whose manifest entry did not change.
    None,
    /// Re-resolve every repo.
    All,
    /// Re-resolve this repo only.
    Repo(Repo),
}

/// A pin that moved (or appeared, or went away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `org/name@revision`.
    pub what: String,
    /// Commit before (none for a new entry).
    pub from: Option<String>,
    /// Commit after (none for a removed entry).
    pub to: Option<String>,
}

/// Problems that make `lock` out of date for `manifest` (pure; no network).
pub fn check(manifest: &Manifest, lock: &Lockfile) -> Vec<String> {
    let mut problems = Vec::new();
    for m in &manifest.repos {
        match lock.repos.iter().find(|l| l.repo == m.repo && l.revision == m.revision) {
            None => problems.push(format!("{} @{} is not locked", m.repo, m.revision)),
            Some(l) if l.spec != m.spec() => {
                problems.push(format!("{} @{} changed in the manifest", m.repo, m.revision))
            }
            Some(_) => {}
        }
    }
    for l in &lock.repos {
        if !manifest
            .repos
            .iter()
            .any(|m| m.repo == l.repo && m.revision == l.revision)
        {
            problems.push(format!(
                "{} @{} is locked but no longer in the manifest",
                l.repo, l.revision
            ));
        }
    }
    problems
}

async fn resolve_one(hub: &Hub, m: &ManifestRepo) -> Result<LockedRepo, DeployError> {
    let commit = match &m.revision {
        Revision::Commit(c) => c.clone(),
        Revision::Ref(name) => {
            let sha = hub
                .client()
                .revision_commit(&m.repo, name)
                .await
                .map_err(|source| crate::Error::Hub {
                    repo: m.repo.to_string(),
                    revision: name.clone(),
                    what: "revision".into(),
                    source,
                })?;
            CommitHash::new(&sha).map_err(|_| crate::Error::BadResponse {
                what: "commit hash (sha)",
                detail: sha.escape_debug().to_string(),
            })?
        }
    };
    let listing = hub.commit_listing(&m.repo, &commit).await?;
    let filter = Filter::new(&m.include, &m.exclude);
    let files = listing
        .into_iter()
        .filter(|(p, _)| filter.keeps(p.as_str()))
        .map(|(path, f)| LockedFile {
            size: f.content_size(),
            blob: f.etag().to_string(),
            path,
        })
        .collect();
    Ok(LockedRepo {
        repo: m.repo.clone(),
        revision: m.revision.clone(),
        spec: m.spec(),
        commit,
        files,
    })
}

/// Resolves the manifest against the Hub, keeping unchanged pins unless asked to upgrade.
pub async fn lock(
    hub: &Hub,
    manifest: &Manifest,
    previous: Option<&Lockfile>,
    upgrade: &Upgrade,
) -> Result<(Lockfile, Vec<Change>), DeployError> {
    let old: BTreeMap<(Repo, String), &LockedRepo> = previous
        .map(|p| {
            p.repos
                .iter()
                .map(|r| ((r.repo.clone(), r.revision.to_string()), r))
                .collect()
        })
        .unwrap_or_default();
    let mut repos = Vec::new();
    let mut changes = Vec::new();
    for m in &manifest.repos {
        let key = (m.repo.clone(), m.revision.to_string());
        let keep = old.get(&key).filter(|o| {
            o.spec == m.spec()
                && match upgrade {
                    Upgrade::None => true,
                    Upgrade::All => false,
                    Upgrade::Repo(r) => *r != m.repo,
                }
        });
        let entry = match keep {
            Some(o) => (*o).clone(),
            None => resolve_one(hub, m).await?,
        };
        let before = old.get(&key).map(|o| o.commit.to_string());
        if before.as_deref() != Some(entry.commit.as_str()) {
            changes.push(Change {
                what: format!("{}@{}", m.repo, m.revision),
                from: before,
                to: Some(entry.commit.to_string()),
            });
        }
        repos.push(entry);
    }
    for ((repo, rev), o) in &old {
        if !manifest
            .repos
            .iter()
            .any(|m| &m.repo == repo && m.revision.as_str() == rev)
        {
            changes.push(Change {
                what: format!("{repo}@{rev}"),
                from: Some(o.commit.to_string()),
                to: None,
            });
        }
    }
    let mut lock = Lockfile { repos };
    lock.normalize();
    Ok((lock, changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn check_finds_every_mismatch() {
        let manifest = Manifest::parse(
            "[[repo]]\nid = \"o/a\"\n[[repo]]\nid = \"o/b\"\ninclude = [\"*.json\"]\n",
            Path::new("m"),
        )
        .unwrap();
        let locked = |m: &ManifestRepo, spec: String| LockedRepo {
            repo: m.repo.clone(),
            revision: m.revision.clone(),
            spec,
            commit: CommitHash::new(&"a".repeat(40)).unwrap(),
            files: vec![],
        };
        let good = Lockfile {
            repos: manifest.repos.iter().map(|m| locked(m, m.spec())).collect(),
        };
        assert!(check(&manifest, &good).is_empty());
        let mut edited = good.clone();
        edited.repos[1].spec = "old".into();
        assert_eq!(check(&manifest, &edited).len(), 1);
        let mut missing = good.clone();
        missing.repos.pop();
        assert_eq!(check(&manifest, &missing).len(), 1);
        let small = Manifest::parse("[[repo]]\nid = \"o/a\"\n", Path::new("m")).unwrap();
        assert_eq!(check(&small, &good).len(), 1, "extra locked repo");
    }
}
