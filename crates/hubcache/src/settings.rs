//! Settings resolved from the environment exactly as huggingface_hub resolves them.
//!
//! This is the only module that reads environment variables. [`Settings::from_env`] reads them
//! once; [`Settings::from_lookup`] takes any lookup function so the rules are unit-tested without
//! touching the process environment. The rest of the library takes these plain values.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default Hub endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// A Hub access token; never printed (Debug and Display are redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Cleans a raw token as Python does (drop CR/LF, trim); empty → none.
    pub fn parse(raw: &str) -> Option<Token> {
        let cleaned: String = raw.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let cleaned = cleaned.trim();
        if cleaned.is_empty() {
            None
        } else {
            Some(Token(cleaned.to_string()))
        }
    }

    /// The secret value, for building the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the token came from (shown by `hubcache env`; the token itself never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// No token found.
    None,
    /// `HF_TOKEN`.
    HfToken,
    /// `HUGGING_FACE_HUB_TOKEN` (legacy).
    HuggingFaceHubToken,
    /// The token file at this path.
    File(PathBuf),
    /// Given explicitly (command line or API).
    Explicit,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::None => f.write_str("none"),
            TokenSource::HfToken => f.write_str("HF_TOKEN"),
            TokenSource::HuggingFaceHubToken => f.write_str("HUGGING_FACE_HUB_TOKEN"),
            TokenSource::File(p) => write!(f, "file {}", p.display()),
            TokenSource::Explicit => f.write_str("explicit"),
        }
    }
}

/// Proxy settings from `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// Proxy for `http://` URLs.
    pub http: Option<String>,
    /// Proxy for `https://` URLs.
    pub https: Option<String>,
    /// Proxy for any scheme when the specific one is unset.
    pub all: Option<String>,
    /// Comma-separated hosts that bypass the proxy.
    pub no_proxy: Option<String>,
}

/// Everything the library needs from the environment, resolved once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HF_HOME`.
    pub hf_home: PathBuf,
    /// The hub cache folder (`HF_HUB_CACHE`).
    pub cache_dir: PathBuf,
    /// Endpoint without trailing slash.
    pub endpoint: String,
    /// Offline mode (`HF_HUB_OFFLINE`, else `TRANSFORMERS_OFFLINE`).
    pub offline: bool,
    /// The token to send by default (already honours `HF_HUB_DISABLE_IMPLICIT_TOKEN`).
    pub token: Option<Token>,
    /// Where a token was found, even if implicit use is disabled.
    pub token_source: TokenSource,
    /// `HF_HUB_DISABLE_IMPLICIT_TOKEN`.
    pub disable_implicit_token: bool,
    /// Path of the token file (`HF_TOKEN_PATH` or `$HF_HOME/token`).
    pub token_path: PathBuf,
    /// Metadata (HEAD) timeout, `HF_HUB_ETAG_TIMEOUT`.
    pub etag_timeout: Duration,
    /// Per-read timeout of file transfers, `HF_HUB_DOWNLOAD_TIMEOUT`.
    pub download_timeout: Duration,
    /// `HF_HUB_DISABLE_PROGRESS_BARS`: unset → None, else forced off (true) or on (false).
    pub disable_progress_bars: Option<bool>,
    /// `HF_HUB_DISABLE_SYMLINKS`.
    pub disable_symlinks: bool,
    /// `HF_HUB_DISABLE_SHARED_BLOBS` or `HF_HUB_DISABLE_XET`: never link from the shared blob store.
    pub disable_shared_blobs: bool,
    /// Proxies from the usual variables.
    pub proxies: Proxies,
    /// `HUBCACHE_LOCK_TIMEOUT` (seconds): how long to wait for another process's download lock.
    pub lock_timeout: Option<Duration>,
    /// `HUBCACHE_DISABLE_FLOCK`: never flock (for file systems where it hangs or lies).
    pub disable_flock: bool,
    /// `HUBCACHE_MAX_CONNECTIONS`: most connections per large file (1: one stream per file).
    pub max_connections: Option<usize>,
    /// `HUBCACHE_CONNECTION_BUDGET`: most content connections at once, all files together.
    pub connection_budget: Option<usize>,
    /// `HUBCACHE_VERBOSE`: log how transfers run (connections, parts, retries) on stderr.
    pub verbose: bool,
}

/// Python's `_is_true`: upper-cased value in {1, ON, YES, TRUE}; no trimming.
pub fn is_true(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.to_uppercase()).as_deref(),
        Some("1" | "ON" | "YES" | "TRUE")
    )
}

impl Settings {
    /// Reads the process environment (the only place hubcache does).
    pub fn from_env() -> Settings {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let token_file_reader = |p: &Path| std::fs::read_to_string(p).ok();
        Settings::from_lookup(|k| std::env::var(k).ok(), home.as_deref(), token_file_reader)
    }

    /// Resolves settings from a variable lookup, the home folder and a token-file reader.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
        read_token_file: impl Fn(&Path) -> Option<String>,
    ) -> Settings {
        let non_empty = |k: &str| var(k).filter(|v| !v.is_empty());
        let expand = |raw: &str| expand_path(raw, home, &var);
        let hf_home = match non_empty("HF_HOME") {
            Some(v) => expand(&v),
            None => match non_empty("XDG_CACHE_HOME") {
                Some(x) => expand(&format!("{x}/huggingface")),
                None => expand("~/.cache/huggingface"),
            },
        };
        let cache_dir = match non_empty("HF_HUB_CACHE").or_else(|| non_empty("HUGGINGFACE_HUB_CACHE")) {
            Some(v) => expand(&v),
            None => hf_home.join("hub"),
        };
        let token_path = match non_empty("HF_TOKEN_PATH") {
            Some(v) => expand(&v),
            None => hf_home.join("token"),
        };
        // The `or` quirk: a non-empty HF_HUB_OFFLINE (even "0") hides TRANSFORMERS_OFFLINE.
        let offline = is_true(
            non_empty("HF_HUB_OFFLINE")
                .or_else(|| var("TRANSFORMERS_OFFLINE"))
                .as_deref(),
        );
        let endpoint = non_empty("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let (found, token_source) = if let Some(t) = var("HF_TOKEN").as_deref().and_then(Token::parse) {
            (Some(t), TokenSource::HfToken)
        } else if let Some(t) = var("HUGGING_FACE_HUB_TOKEN").as_deref().and_then(Token::parse) {
            (Some(t), TokenSource::HuggingFaceHubToken)
        } else if let Some(t) = read_token_file(&token_path).as_deref().and_then(Token::parse) {
            (Some(t), TokenSource::File(token_path.clone()))
        } else {
            (None, TokenSource::None)
        };
        let disable_implicit_token = is_true(var("HF_HUB_DISABLE_IMPLICIT_TOKEN").as_deref());
        let token = if disable_implicit_token { None } else { found };
        let timeout = |k: &str| {
            let secs = var(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|s| *s > 0)
                .unwrap_or(DEFAULT_TIMEOUT_SECS);
            Duration::from_secs(secs)
        };
        let either = |upper: &str| {
            var(upper)
                .or_else(|| var(&upper.to_lowercase()))
                .filter(|v| !v.is_empty())
        };
        Settings {
            hf_home,
            cache_dir,
            endpoint,
            offline,
            token,
            token_source,
            disable_implicit_token,
            token_path,
            etag_timeout: timeout("HF_HUB_ETAG_TIMEOUT"),
            download_timeout: timeout("HF_HUB_DOWNLOAD_TIMEOUT"),
            disable_progress_bars: var("HF_HUB_DISABLE_PROGRESS_BARS").map(|v| is_true(Some(&v))),
            disable_symlinks: is_true(var("HF_HUB_DISABLE_SYMLINKS").as_deref()),
            disable_shared_blobs: is_true(var("HF_HUB_DISABLE_SHARED_BLOBS").as_deref())
                || is_true(var("HF_HUB_DISABLE_XET").as_deref()),
            lock_timeout: var("HUBCACHE_LOCK_TIMEOUT")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            disable_flock: is_true(var("HUBCACHE_DISABLE_FLOCK").as_deref()),
            max_connections: var("HUBCACHE_MAX_CONNECTIONS")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0),
            connection_budget: var("HUBCACHE_CONNECTION_BUDGET")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0),
            verbose: is_true(var("HUBCACHE_VERBOSE").as_deref()),
            proxies: Proxies {
                http: either("HTTP_PROXY"),
                https: either("HTTPS_PROXY"),
                all: either("ALL_PROXY"),
                no_proxy: either("NO_PROXY"),
            },
        }
    }
}

/// `expanduser` then `expandvars`, as Python applies them to cache paths.
fn expand_path(raw: &str, home: Option<&Path>, var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    let user_expanded = match (raw.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{}", home.display(), rest)
        }
        _ => raw.to_string(),
    };
    PathBuf::from(expand_vars(&user_expanded, var))
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` replaced when set, left as is otherwise.
fn expand_vars(s: &str, var: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (name.is_empty(), var(name)) {
            (false, Some(value)) => {
                out.push_str(&value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        settings_with_file(vars, None)
    }

    fn settings_with_file(vars: &[(&str, &str)], file: Option<&str>) -> Settings {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let file = file.map(str::to_string);
        Settings::from_lookup(
            |k| map.get(k).cloned(),
            Some(Path::new("/home/u")),
            move |_| file.clone(),
        )
    }

    #[test]
    fn cache_dir_precedence() {
        assert_eq!(settings(&[]).cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(
            settings(&[("XDG_CACHE_HOME", "/x")]).cache_dir,
            PathBuf::from("/x/huggingface/hub")
        );
        assert_eq!(
            settings(&[("XDG_CACHE_HOME", "/x"), ("HF_HOME", "~/hf")]).cache_dir,
            PathBuf::from("/home/u/hf/hub")
        );
        assert_eq!(
            settings(&[("HUGGINGFACE_HUB_CACHE", "/legacy"), ("HF_HOME", "/h")]).cache_dir,
            PathBuf::from("/legacy")
        );
        assert_eq!(
            settings(&[("HUGGINGFACE_HUB_CACHE", "/legacy"), ("HF_HUB_CACHE", "/new")]).cache_dir,
            PathBuf::from("/new")
        );
        assert_eq!(
            settings(&[("HF_HUB_CACHE", "$ROOT/c/${SUB}/$UNSET"), ("ROOT", "/r"), ("SUB", "s")]).cache_dir,
            PathBuf::from("/r/c/s/$UNSET")
        );
        assert_eq!(settings(&[("HF_HOME", "/h")]).token_path, PathBuf::from("/h/token"));
        assert_eq!(
            settings(&[("HF_TOKEN_PATH", "~/t")]).token_path,
            PathBuf::from("/home/u/t")
        );
    }

    #[test]
    fn offline_or_quirk() {
        assert!(!settings(&[]).offline);
        for v in ["1", "on", "Yes", "TRUE"] {
            assert!(settings(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
        }
        assert!(!settings(&[("HF_HUB_OFFLINE", " 1")]).offline);
        assert!(settings(&[("TRANSFORMERS_OFFLINE", "1")]).offline);
        // A non-empty HF_HUB_OFFLINE, even "0", hides TRANSFORMERS_OFFLINE.
        assert!(!settings(&[("HF_HUB_OFFLINE", "0"), ("TRANSFORMERS_OFFLINE", "1")]).offline);
        assert!(settings(&[("HF_HUB_OFFLINE", ""), ("TRANSFORMERS_OFFLINE", "1")]).offline);
    }

    #[test]
    fn endpoint_and_timeouts() {
        let s = settings(&[]);
        assert_eq!(s.endpoint, "https://huggingface.co");
        assert_eq!(s.etag_timeout, Duration::from_secs(10));
        let s = settings(&[
            ("HF_ENDPOINT", "http://127.0.0.1:8080/"),
            ("HF_HUB_ETAG_TIMEOUT", "3"),
            ("HF_HUB_DOWNLOAD_TIMEOUT", "0"),
        ]);
        assert_eq!(s.endpoint, "http://127.0.0.1:8080");
        assert_eq!(s.etag_timeout, Duration::from_secs(3));
        assert_eq!(s.download_timeout, Duration::from_secs(10));
    }

    #[test]
    fn token_order_and_redaction() {
        let s = settings_with_file(
            &[("HF_TOKEN", " a\r\nb "), ("HUGGING_FACE_HUB_TOKEN", "legacy")],
            Some("file"),
        );
        assert_eq!(s.token.as_ref().map(Token::expose), Some("ab"));
        assert_eq!(s.token_source, TokenSource::HfToken);
        assert_eq!(format!("{:?}", s.token), "Some(Token(<redacted>))");
        let s = settings_with_file(&[("HUGGING_FACE_HUB_TOKEN", "legacy")], Some("file"));
        assert_eq!(s.token.as_ref().map(Token::expose), Some("legacy"));
        let s = settings_with_file(&[("HF_TOKEN", "  ")], Some("file\n"));
        assert_eq!(s.token.as_ref().map(Token::expose), Some("file"));
        assert!(matches!(s.token_source, TokenSource::File(_)));
        let s = settings_with_file(&[("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")], Some("file"));
        assert!(s.token.is_none());
        assert!(matches!(s.token_source, TokenSource::File(_)));
        assert!(settings(&[]).token.is_none());
    }

    #[test]
    fn progress_symlinks_proxies() {
        assert_eq!(settings(&[]).disable_progress_bars, None);
        assert_eq!(
            settings(&[("HF_HUB_DISABLE_PROGRESS_BARS", "1")]).disable_progress_bars,
            Some(true)
        );
        assert_eq!(
            settings(&[("HF_HUB_DISABLE_PROGRESS_BARS", "0")]).disable_progress_bars,
            Some(false)
        );
        assert!(settings(&[("HF_HUB_DISABLE_SYMLINKS", "true")]).disable_symlinks);
        assert!(settings(&[("HF_HUB_DISABLE_SHARED_BLOBS", "1")]).disable_shared_blobs);
        assert!(settings(&[("HF_HUB_DISABLE_XET", "yes")]).disable_shared_blobs);
        assert!(!settings(&[]).disable_shared_blobs);
        assert_eq!(
            settings(&[("HUBCACHE_LOCK_TIMEOUT", "90")]).lock_timeout,
            Some(Duration::from_secs(90))
        );
        assert_eq!(settings(&[]).lock_timeout, None);
        assert!(settings(&[("HUBCACHE_DISABLE_FLOCK", "1")]).disable_flock);
        let s = settings(&[("https_proxy", "http://p:3128"), ("NO_PROXY", "localhost")]);
        assert_eq!(s.proxies.https.as_deref(), Some("http://p:3128"));
        assert_eq!(s.proxies.no_proxy.as_deref(), Some("localhost"));
    }
}
