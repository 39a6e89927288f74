//! What both APIs' `ApiError`s share: the request error type and the mapping from hubcache.

use std::fmt;

use hubcache::hub::HubError;

/// A failure talking to the Hub (status, connection, timeout, malformed answer); it carries
/// the typed hubcache error. Its `status()` answers as `reqwest::Error::status` does.
#[derive(Debug)]
pub struct RequestError {
    inner: hubcache::Error,
}

impl RequestError {
    /// The HTTP status the Hub answered with, if it answered with an error status.
    pub fn status(&self) -> Option<http::StatusCode> {
        status_of(&self.inner).and_then(|s| http::StatusCode::from_u16(s).ok())
    }

    /// Whether the request timed out (metadata, listing or a stalled transfer).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.inner.hub_error(),
            Some(HubError::Timeout { .. } | HubError::Deadline { .. } | HubError::TooSlow { .. })
        )
    }

    /// Whether the Hub could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self.inner.hub_error(), Some(HubError::Connect { .. }))
    }

    /// The typed hubcache error.
    pub fn hubcache_error(&self) -> &hubcache::Error {
        &self.inner
    }

    /// The typed hubcache error, owned.
    pub fn into_hubcache_error(self) -> hubcache::Error {
        self.inner
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", chain(&self.inner))?;
        // ureq's wording, which some callers search error strings for.
        if let Some(status) = status_of(&self.inner) {
            write!(f, " (status code {status})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

/// An error and its sources, `: `-separated.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

/// The HTTP status behind a hubcache error: the status the Hub's error code stands for.
pub(crate) fn status_of(e: &hubcache::Error) -> Option<u16> {
    Some(match e.hub_error()? {
        HubError::RepoNotFound { .. } | HubError::RevisionNotFound { .. } | HubError::EntryNotFound { .. } => 404,
        HubError::Unauthorized { .. } => 401,
        HubError::Gated { .. } | HubError::Disabled { .. } => 403,
        HubError::RateLimited { .. } => 429,
        HubError::Status { status, .. } => *status,
        _ => return None,
    })
}

/// How a hubcache error maps onto hf-hub's variants.
pub(crate) enum Mapped {
    Request(RequestError),
    Io(std::io::Error),
    Lock(std::path::PathBuf),
    Other(hubcache::Error),
}

pub(crate) fn map(e: hubcache::Error) -> Mapped {
    use hubcache::Error as E;
    match e {
        E::Lock(hubcache::lock::LockError::Timeout { path, .. }) => Mapped::Lock(path),
        E::Io { ref source, .. } | E::DiskFull { ref source, .. } => {
            // The hubcache error (with its path) stays inside, for `hubcache_error()`.
            Mapped::Io(std::io::Error::new(source.kind(), e))
        }
        E::Hub { .. } | E::Unreachable { .. } => Mapped::Request(RequestError { inner: e }),
        E::Transfer { .. } if e.hub_error().is_some() => Mapped::Request(RequestError { inner: e }),
        other => Mapped::Other(other),
    }
}

/// The hubcache error inside an I/O error built by [`map`].
pub(crate) fn inside_io(e: &std::io::Error) -> Option<&hubcache::Error> {
    e.get_ref()?.downcast_ref::<hubcache::Error>()
}

/// A setting hf-hub would take that hubcache refuses, with the reason.
#[derive(Debug)]
pub struct InvalidSetting {
    /// `endpoint`, `token` or `cache folder`.
    pub name: &'static str,
    /// Why it is refused (the value is named unless it is a secret).
    pub reason: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} is refused: {}", self.name, self.reason)
    }
}

impl std::error::Error for InvalidSetting {}

/// The methods both `ApiError`s add to hf-hub's: the HTTP status and the hubcache error.
macro_rules! api_error_common {
    ($ty:ident) => {
        impl $ty {
            /// The HTTP status the Hub answered with, when the failure was an error status.
            pub fn status(&self) -> Option<u16> {
                match self {
                    $ty::TooManyRetries(inner) => inner.status(),
                    _ => self.hubcache_error().and_then($crate::api::error::status_of),
                }
            }

            /// The typed hubcache error underneath, when hubcache produced this error.
            pub fn hubcache_error(&self) -> Option<&hubcache::Error> {
                match self {
                    $ty::RequestError(e) => Some(e.hubcache_error()),
                    $ty::Hubcache(e) => Some(e),
                    $ty::IoError(e) => $crate::api::error::inside_io(e),
                    $ty::TooManyRetries(inner) => inner.hubcache_error(),
                    _ => None,
                }
            }

            /// The Hub's answer or the cache says the repo, revision or file does not exist.
            pub fn is_not_found(&self) -> bool {
                self.hubcache_error().is_some_and(hubcache::Error::is_not_found)
            }

            /// The file is not cached and offline mode (`HF_HUB_OFFLINE`) is set.
            pub fn is_offline(&self) -> bool {
                self.hubcache_error().is_some_and(hubcache::Error::is_offline)
            }
        }

        impl From<hubcache::Error> for $ty {
            fn from(e: hubcache::Error) -> Self {
                match $crate::api::error::map(e) {
                    $crate::api::error::Mapped::Request(r) => $ty::request(r),
                    $crate::api::error::Mapped::Io(e) => $ty::IoError(e),
                    $crate::api::error::Mapped::Lock(p) => $ty::LockAcquisition(p),
                    $crate::api::error::Mapped::Other(e) => $ty::Hubcache(Box::new(e)),
                }
            }
        }

        impl From<hubcache::NameError> for $ty {
            fn from(e: hubcache::NameError) -> Self {
                $ty::Hubcache(Box::new(hubcache::Error::Name(e)))
            }
        }
    };
}
pub(crate) use api_error_common;
