//! Request paths → typed routes (pure). Every name is decoded, then validated with the same
//! rules the client uses, so `..`, absolute paths, NUL and backslashes never reach the disk.

use hubcache::{NameError, Repo, RepoId, RepoPath, RepoType, Revision};
use percent_encoding::percent_decode_str;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `HEAD`/`GET /{prefix}{repo}/resolve/{revision}/{path}`.
    Resolve {
        /// Repo.
        repo: Repo,
        /// Revision.
        revision: Revision,
        /// File.
        path: RepoPath,
    },
    /// `GET /api/{type}s/{repo}[/revision/{revision}]`.
    RepoInfo {
        /// Repo.
        repo: Repo,
        /// Revision (default `main`).
        revision: Revision,
    },
    /// `GET /api/{type}s/{repo}/tree/{revision}[/{path}]`.
    Tree {
        /// Repo.
        repo: Repo,
        /// Revision.
        revision: Revision,
        /// Folder to list (root when `None`).
        path: Option<RepoPath>,
    },
    /// `POST /api/{type}s/{repo}/paths-info/{revision}`.
    PathsInfo {
        /// Repo.
        repo: Repo,
        /// Revision.
        revision: Revision,
    },
}

/// Why a path is not a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not an endpoint we serve.
    NotFound,
    /// An endpoint, but a name in it is invalid (traversal, NUL, …).
    Invalid(String),
}

impl From<NameError> for RouteError {
    fn from(e: NameError) -> Self {
        RouteError::Invalid(e.to_string())
    }
}

fn decode(segment: &str) -> Result<String, RouteError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| RouteError::Invalid("percent-encoding is not valid UTF-8".into()))
}

fn repo_from(kind: RepoType, parts: &[&str]) -> Result<Repo, RouteError> {
    let decoded: Vec<String> = parts.iter().map(|p| decode(p)).collect::<Result<_, _>>()?;
    Ok(Repo::new(RepoId::new(&decoded.join("/"))?, kind))
}

/// Splits `/{prefix}{repo}/resolve/...` into repo type and the rest.
fn split_kind(segments: &[&str]) -> (RepoType, usize) {
    match segments.first() {
        Some(&"datasets") if segments.len() > 3 => (RepoType::Dataset, 1),
        Some(&"spaces") if segments.len() > 3 => (RepoType::Space, 1),
        _ => (RepoType::Model, 0),
    }
}

/// Parses a raw (still percent-encoded) request path.
pub fn parse(method: &str, raw_path: &str) -> Result<Route, RouteError> {
    let trimmed = raw_path.strip_prefix('/').ok_or(RouteError::NotFound)?;
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.first() == Some(&"api") {
        return parse_api(method, &segments[1..]);
    }
    if !matches!(method, "GET" | "HEAD") {
        return Err(RouteError::NotFound);
    }
    let (kind, skip) = split_kind(&segments);
    let rest = &segments[skip..];
    // The repo id is one or two segments; "resolve" follows it.
    let at = rest
        .iter()
        .take(3)
        .position(|s| *s == "resolve")
        .ok_or(RouteError::NotFound)?;
    if at == 0 || rest.len() < at + 3 {
        return Err(RouteError::NotFound);
    }
    let repo = repo_from(kind, &rest[..at])?;
    let revision = Revision::new(&decode(rest[at + 1])?)?;
    let path_parts: Vec<String> = rest[at + 2..].iter().map(|s| decode(s)).collect::<Result<_, _>>()?;
    let path = RepoPath::new(&path_parts.join("/"))?;
    Ok(Route::Resolve { repo, revision, path })
}

fn parse_api(method: &str, segments: &[&str]) -> Result<Route, RouteError> {
    let kind = match segments.first() {
        Some(&"models") => RepoType::Model,
        Some(&"datasets") => RepoType::Dataset,
        Some(&"spaces") => RepoType::Space,
        _ => return Err(RouteError::NotFound),
    };
    let rest = &segments[1..];
    // Find the verb after a one- or two-segment repo id.
    let verb_at = rest
        .iter()
        .take(3)
        .position(|s| matches!(*s, "revision" | "tree" | "paths-info"))
        .filter(|at| *at > 0);
    let Some(at) = verb_at else {
        if method == "GET" && (1..=2).contains(&rest.len()) && rest.iter().all(|s| !s.is_empty()) {
            return Ok(Route::RepoInfo {
                repo: repo_from(kind, rest)?,
                revision: Revision::main(),
            });
        }
        return Err(RouteError::NotFound);
    };
    let repo = repo_from(kind, &rest[..at])?;
    let after = &rest[at + 1..];
    let revision = match after.first() {
        Some(r) if !r.is_empty() => Revision::new(&decode(r)?)?,
        _ => return Err(RouteError::NotFound),
    };
    match (rest[at], method) {
        ("revision", "GET") if after.len() == 1 => Ok(Route::RepoInfo { repo, revision }),
        ("tree", "GET") => {
            let sub: Vec<String> = after[1..]
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| decode(s))
                .collect::<Result<_, _>>()?;
            let path = if sub.is_empty() {
                None
            } else {
                Some(RepoPath::new(&sub.join("/"))?)
            };
            Ok(Route::Tree { repo, revision, path })
        }
        ("paths-info", "POST") if after.len() == 1 => Ok(Route::PathsInfo { repo, revision }),
        _ => Err(RouteError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(p: &str) -> Result<Route, RouteError> {
        parse("GET", p)
    }

    #[test]
    fn resolve_routes() {
        let r = resolve("/org/m/resolve/main/config.json").unwrap();
        assert_eq!(
            r,
            Route::Resolve {
                repo: Repo::model("org/m").unwrap(),
                revision: Revision::main(),
                path: RepoPath::new("config.json").unwrap()
            }
        );
        let Route::Resolve { repo, revision, path } =
            resolve("/datasets/o/d/resolve/refs%2Fpr%2F1/a/b%20c.txt").unwrap()
        else {
            panic!()
        };
        assert_eq!(repo.repo_type, RepoType::Dataset);
        assert_eq!(revision.as_str(), "refs/pr/1");
        assert_eq!(path.as_str(), "a/b c.txt");
        let Route::Resolve { repo, .. } = resolve("/gpt2/resolve/main/config.json").unwrap() else {
            panic!()
        };
        assert_eq!(repo.id.as_str(), "gpt2");
        assert_eq!(resolve("/org/m/blob/main/x"), Err(RouteError::NotFound));
    }

    #[test]
    fn traversal_in_every_segment_is_invalid() {
        for p in [
            "/org/m/resolve/main/..%2F..%2Fetc%2Fpasswd",
            "/org/m/resolve/main/../../etc/passwd",
            "/org/m/resolve/main/a/%2e%2e/b",
            "/org/m/resolve/..%2F..%2Fx/config.json",
            "/org/m/resolve/main/%2Fetc%2Fpasswd",
            "/org/m/resolve/main/a%00b",
            "/org/m/resolve/main/a%5Cb",
            "/..%2F..%2Fetc/m/resolve/main/a",
            "/org/..%2Fm/resolve/main/a",
            "/api/models/org/m/tree/main/..%2F..",
            "/api/models/org/m/revision/..%2F..%2Frefs",
        ] {
            assert!(
                matches!(parse("GET", p), Err(RouteError::Invalid(_)) | Err(RouteError::NotFound)),
                "{p}"
            );
        }
    }

    #[test]
    fn api_routes() {
        assert!(matches!(parse("GET", "/api/models/org/m"), Ok(Route::RepoInfo { .. })));
        assert!(matches!(parse("GET", "/api/models/gpt2"), Ok(Route::RepoInfo { .. })));
        let Ok(Route::RepoInfo { revision, .. }) = parse("GET", "/api/datasets/o/d/revision/v1.0") else {
            panic!()
        };
        assert_eq!(revision.as_str(), "v1.0");
        let Ok(Route::Tree { path, .. }) = parse("GET", "/api/models/o/m/tree/main/sub%2Fdir") else {
            panic!()
        };
        assert_eq!(path.unwrap().as_str(), "sub/dir");
        let Ok(Route::Tree { path, .. }) = parse("GET", "/api/models/o/m/tree/main") else {
            panic!()
        };
        assert!(path.is_none());
        assert!(matches!(
            parse("POST", "/api/models/o/m/paths-info/main"),
            Ok(Route::PathsInfo { .. })
        ));
        assert_eq!(parse("GET", "/api/agent-harnesses"), Err(RouteError::NotFound));
        assert_eq!(parse("DELETE", "/org/m/resolve/main/x"), Err(RouteError::NotFound));
    }
}
