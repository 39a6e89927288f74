//! URL shapes of the Hub API and origin comparison (pure).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::repo::{Repo, RepoPath};

/// Python `quote(s, safe="")`: everything but `A-Za-z0-9_.-~` is encoded.
const QUOTE_ALL: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');
/// Python `quote(s)`: as above but `/` is kept.
const QUOTE_PATH: &AsciiSet = &QUOTE_ALL.remove(b'/');

/// `quote(revision, safe="")`.
pub fn encode_revision(revision: &str) -> String {
    utf8_percent_encode(revision, QUOTE_ALL).to_string()
}

/// `quote(path)` (slashes kept).
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, QUOTE_PATH).to_string()
}

/// `{endpoint}/{prefix}{repo_id}/resolve/{revision}/{path}`.
pub fn resolve_url(endpoint: &str, repo: &Repo, revision: &str, path: &RepoPath) -> String {
    format!(
        "{endpoint}/{}{}/resolve/{}/{}",
        repo.repo_type.url_prefix(),
        repo.id,
        encode_revision(revision),
        encode_path(path.as_str())
    )
}

/// `{endpoint}/api/{type}s/{repo_id}/revision/{revision}`.
pub fn revision_info_url(endpoint: &str, repo: &Repo, revision: &str) -> String {
    format!(
        "{endpoint}/api/{}/{}/revision/{}",
        repo.repo_type.plural(),
        repo.id,
        encode_revision(revision)
    )
}

/// `{endpoint}/api/{type}s/{repo_id}/tree/{revision}?recursive=true&expand=false`.
pub fn tree_url(endpoint: &str, repo: &Repo, revision: &str) -> String {
    format!(
        "{endpoint}/api/{}/{}/tree/{}?recursive=true&expand=false",
        repo.repo_type.plural(),
        repo.id,
        encode_revision(revision)
    )
}

/// Scheme, lower-cased host and port (default filled in) of an absolute URL.
pub fn origin(url: &str) -> Option<(String, String, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    let port = parsed.port_or_known_default()?;
    Some((parsed.scheme().to_string(), host, port))
}

/// Whether `target` may receive the Hub token: same origin as `endpoint`, or a Hub origin.
pub fn may_send_token(endpoint: &str, target: &str) -> bool {
    let Some(t) = origin(target) else { return false };
    if origin(endpoint).is_some_and(|e| e == t) {
        return true;
    }
    [
        "https://huggingface.co",
        "https://hf.co",
        "https://hub-ci.huggingface.co",
    ]
    .iter()
    .any(|hub| origin(hub).is_some_and(|h| h == t))
}

/// Resolves a `Location` header against the current URL (RFC 3986).
pub fn join(base: &str, location: &str) -> Option<String> {
    let base = reqwest::Url::parse(base).ok()?;
    base.join(location).ok().map(|u| u.to_string())
}

/// Removes credentials and the query string, for messages and logs.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{RepoId, RepoType};

    #[test]
    fn resolve_urls() {
        let repo = Repo::new(RepoId::new("user/r").unwrap(), RepoType::Model);
        let path = RepoPath::new("subfolder/to?/awful?filename%you:should,never.give").unwrap();
        assert_eq!(
            resolve_url("https://h", &repo, "main", &path),
            "https://h/user/r/resolve/main/subfolder/to%3F/awful%3Ffilename%25you%3Ashould%2Cnever.give"
        );
        let ds = Repo::new(RepoId::new("o/d").unwrap(), RepoType::Dataset);
        assert_eq!(
            resolve_url("https://h", &ds, "refs/pr/1", &RepoPath::new("a b.txt").unwrap()),
            "https://h/datasets/o/d/resolve/refs%2Fpr%2F1/a%20b.txt"
        );
        assert_eq!(
            revision_info_url("https://h", &ds, "v1"),
            "https://h/api/datasets/o/d/revision/v1"
        );
        assert_eq!(
            tree_url("https://h", &repo, "main"),
            "https://h/api/models/user/r/tree/main?recursive=true&expand=false"
        );
    }

    #[test]
    fn token_origins() {
        let ep = "http://127.0.0.1:8080";
        assert!(may_send_token(ep, "http://127.0.0.1:8080/x/resolve/main/a"));
        assert!(!may_send_token(ep, "http://127.0.0.1:9090/lfs/abc"));
        assert!(
            !may_send_token(ep, "https://127.0.0.1:8080/x"),
            "scheme is part of the origin"
        );
        assert!(may_send_token(ep, "https://huggingface.co/x"));
        assert!(may_send_token("https://huggingface.co", "https://HUGGINGFACE.CO:443/x"));
        assert!(!may_send_token("https://huggingface.co", "https://cdn-lfs.hf.co/x"));
        assert!(!may_send_token(ep, "not a url"));
    }

    #[test]
    fn joins_and_redaction() {
        assert_eq!(join("http://h/a/b?x=1", "/c/d").unwrap(), "http://h/c/d");
        assert_eq!(join("http://h/a/b", "c").unwrap(), "http://h/a/c");
        assert_eq!(join("http://h/a", "http://o/z?q").unwrap(), "http://o/z?q");
        assert_eq!(redact("https://u:p@cdn/x?sig=secret"), "https://cdn/x");
    }
}
