//! `hubcache.toml`: the human-written list of repos a deployment needs.
//!
//! ```toml
//! [[repo]]
//! id = "sentence-transformers/all-MiniLM-L6-v2"
//! type = "model"            # model (default), dataset or space
//! revision = "main"         # branch, tag, refs/pr/N or a commit (default main)
//! include = ["*.json", "*.safetensors"]
//! exclude = ["onnx/"]
//! ```

use std::path::Path;

use serde::Deserialize;

use super::DeployError;
use crate::repo::{Repo, RepoId, RepoType, Revision};

/// One repo of the manifest, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRepo {
    /// Repo and type.
    pub repo: Repo,
    /// Revision to pin.
    pub revision: Revision,
    /// Allow patterns (fnmatch; empty = everything).
    pub include: Vec<String>,
    /// Ignore patterns.
    pub exclude: Vec<String>,
}

impl ManifestRepo {
    /// A stable text of everything that decides what gets pinned; the lock records it so a
    /// manifest edit is detected without the network.
    pub fn spec(&self) -> String {
        format!(
            "{} {} @{} include={:?} exclude={:?}",
            self.repo.repo_type, self.repo.id, self.revision, self.include, self.exclude
        )
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Repos in file order.
    pub repos: Vec<ManifestRepo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    repo: Vec<RawRepo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    id: String,
    #[serde(rename = "type", default)]
    repo_type: Option<String>,
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

impl Manifest {
    /// Parses manifest text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest, DeployError> {
        let bad = |detail: String| DeployError::Manifest {
            path: origin.to_path_buf(),
            detail,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut repos = Vec::new();
        for r in raw.repo {
            let repo_type: RepoType = r
                .repo_type
                .as_deref()
                .unwrap_or("model")
                .parse()
                .map_err(|e: crate::NameError| bad(e.to_string()))?;
            let repo = Repo::new(RepoId::new(&r.id).map_err(|e| bad(e.to_string()))?, repo_type);
            let revision = Revision::new(r.revision.as_deref().unwrap_or("main")).map_err(|e| bad(e.to_string()))?;
            let entry = ManifestRepo {
                repo,
                revision,
                include: r.include,
                exclude: r.exclude,
            };
            if repos
                .iter()
                .any(|e: &ManifestRepo| e.repo == entry.repo && e.revision == entry.revision)
            {
                return Err(bad(format!("{} @{} is listed twice", entry.repo, entry.revision)));
            }
            repos.push(entry);
        }
        Ok(Manifest { repos })
    }

    /// Reads and parses a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, DeployError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeployError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        })?;
        Manifest::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let m = Manifest::parse(
            "[[repo]]\nid = \"org/m\"\ninclude = [\"*.json\"]\n\n[[repo]]\nid = \"org/d\"\ntype = \"dataset\"\nrevision = \"v1\"\n",
            Path::new("hubcache.toml"),
        )
        .unwrap();
        assert_eq!(m.repos.len(), 2);
        assert_eq!(m.repos[0].revision, Revision::main());
        assert_eq!(m.repos[1].repo.repo_type, RepoType::Dataset);
        assert_ne!(m.repos[0].spec(), m.repos[1].spec());
        for bad in [
            "[[repo]]\nid = \"../x\"\n",
            "[[repo]]\nid = \"o/m\"\nrevision = \"../main\"\n",
            "[[repo]]\nid = \"o/m\"\ntype = \"kernel\"\n",
            "[[repo]]\nid = \"o/m\"\nunknown = 1\n",
            "[[repo]]\nid = \"o/m\"\n[[repo]]\nid = \"o/m\"\n",
            "not toml",
        ] {
            let err = Manifest::parse(bad, Path::new("m.toml")).unwrap_err();
            assert!(err.to_string().contains("m.toml"), "{err}");
        }
    }
}
