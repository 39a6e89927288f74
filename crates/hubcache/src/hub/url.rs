//! URL shapes of the Hub API and origin comparison (pure).

use std::net::{IpAddr, Ipv6Addr};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::RedirectRefusal;

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

/// Whether a redirect may lead to `target`: only `http` and `https`, and never to a link-local
/// address (169.254.0.0/16, fe80::/10, also IPv4-mapped) or a cloud metadata address
/// (`fd00:ec2::254`, `metadata.google.internal`), where a cloud VM's credentials live. The host
/// is only parsed, never resolved (a name that resolves to such an address is not caught);
/// loopback and private addresses stay allowed (local mirrors, tests).
pub fn check_redirect(target: &str) -> Result<(), RedirectRefusal> {
    let parsed = reqwest::Url::parse(target).map_err(|_| RedirectRefusal::Unparsable)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(RedirectRefusal::Scheme);
    }
    let host = parsed.host_str().ok_or(RedirectRefusal::Unparsable)?;
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<IpAddr>()
        .ok();
    let refused = match ip {
        Some(IpAddr::V4(v4)) => v4.is_link_local(),
        Some(IpAddr::V6(v6)) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
        None => host
            .trim_end_matches('.')
            .eq_ignore_ascii_case("metadata.google.internal"),
    };
    if refused {
        return Err(RedirectRefusal::LinkLocal);
    }
    Ok(())
}

/// A URL in the form used to compare pages (parsed and serialised again), or as it is.
pub fn normalize(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| url.to_string(), |u| u.to_string())
}

/// [`redact`] for a URL, or the text escaped when it is not one (for messages).
pub fn redact_or_escape(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(_) => redact(url),
        Err(_) => url.escape_debug().to_string(),
    }
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
    fn redirect_targets() {
        for ok in [
            "http://127.0.0.1:8080/lfs/x",
            "https://cdn-lfs.hf.co/x?sig=1",
            "http://[::1]:9/x",
            "http://10.0.0.1/x",
            "http://169.253.1.1/x",
        ] {
            assert_eq!(check_redirect(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("file:///etc/passwd", RedirectRefusal::Scheme),
            ("ftp://example.com/x", RedirectRefusal::Scheme),
            ("gopher://h/x", RedirectRefusal::Scheme),
            ("http://169.254.169.254/latest/meta-data/", RedirectRefusal::LinkLocal),
            ("http://2852039166/latest", RedirectRefusal::LinkLocal),
            ("http://0xa9.0xfe.0xa9.0xfe/", RedirectRefusal::LinkLocal),
            ("https://169.254.0.1:443/x", RedirectRefusal::LinkLocal),
            ("http://[fe80::1]/x", RedirectRefusal::LinkLocal),
            ("http://[febf::1]/x", RedirectRefusal::LinkLocal),
            ("http://[::ffff:169.254.169.254]/x", RedirectRefusal::LinkLocal),
            ("http://[fd00:ec2::254]/x", RedirectRefusal::LinkLocal),
            (
                "http://metadata.google.internal/computeMetadata/v1/",
                RedirectRefusal::LinkLocal,
            ),
            ("not a url", RedirectRefusal::Unparsable),
        ] {
            assert_eq!(check_redirect(bad), Err(why), "{bad}");
        }
        assert_eq!(
            normalize("HTTP://H:80/a?cursor=1"),
            normalize("http://h/a?cursor=1"),
            "pages compare after normalisation"
        );
        assert_eq!(redact_or_escape("http://u:p@h/x?q"), "http://h/x");
        assert_eq!(redact_or_escape("a\nb"), "a\\nb");
    }

    #[test]
    fn joins_and_redaction() {
        assert_eq!(join("http://h/a/b?x=1", "/c/d").unwrap(), "http://h/c/d");
        assert_eq!(join("http://h/a/b", "c").unwrap(), "http://h/a/c");
        assert_eq!(join("http://h/a", "http://o/z?q").unwrap(), "http://o/z?q");
        assert_eq!(redact("https://u:p@cdn/x?sig=secret"), "https://cdn/x");
    }
}
