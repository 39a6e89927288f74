//! Client access control: with a token file, every request needs
//! `Authorization: Bearer <one of the tokens>`. Tokens are compared in constant time and never
//! logged.

use axum::body::Body;
use axum::http::{header, HeaderMap, Response, StatusCode};

use crate::respond;

/// The tokens clients may present; no tokens means open access.
pub(crate) struct ClientAuth {
    tokens: Option<Vec<String>>,
}

impl ClientAuth {
    /// Access with these tokens (`None`: anyone).
    pub(crate) fn new(tokens: Option<Vec<String>>) -> Self {
        ClientAuth { tokens }
    }

    /// Ok, or the Hub-style 401 to send.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let Some(tokens) = &self.tokens else { return Ok(()) };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(t) if tokens.iter().any(|k| constant_time_eq(k.as_bytes(), t.as_bytes())) => Ok(()),
            Some(_) => Err(respond::hub_error(
                StatusCode::UNAUTHORIZED,
                None,
                "Invalid credentials in Authorization header",
                None,
            )),
            None => Err(respond::hub_error(
                StatusCode::UNAUTHORIZED,
                Some("RepoNotFound"),
                "Repository not found: this mirror requires a token (set HF_TOKEN)",
                None,
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn only_listed_bearer_tokens_pass() {
        let auth = ClientAuth::new(Some(vec!["hf_a".into(), "hf_b".into()]));
        assert!(auth.check(&with_auth("Bearer hf_b")).is_ok());
        assert!(auth.check(&with_auth("Bearer hf_c")).is_err());
        assert!(auth.check(&with_auth("hf_a")).is_err());
        assert!(auth.check(&HeaderMap::new()).is_err());
        assert!(ClientAuth::new(None).check(&HeaderMap::new()).is_ok());
        assert!(!constant_time_eq(b"ab", b"abc"));
    }
}
