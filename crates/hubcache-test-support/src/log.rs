//! Request log.

/// Which origin of the fake hub received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The Hub origin ([`crate::FakeHub::url`]).
    Hub,
    /// The CDN origin serving LFS objects ([`crate::FakeHub::cdn_url`]).
    Cdn,
}

/// One request as received by the fake hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Origin that received the request.
    pub origin: Origin,
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Raw request path, still percent-encoded.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// `Range` header, if any.
    pub range: Option<String>,
    /// `Authorization` header, if any.
    pub authorization: Option<String>,
    /// `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// Final response status (0 while the request is still being answered).
    pub status: u16,
}

impl LoggedRequest {
    /// Whether this is a GET that transferred file bytes: a resolve GET answered 200/206, or a CDN GET answered 200/206.
    pub fn is_content_get(&self) -> bool {
        self.method.eq_ignore_ascii_case("GET")
            && matches!(self.status, 200 | 206)
            && match self.origin {
                Origin::Cdn => true,
                Origin::Hub => !self.path.starts_with("/api/") && self.path.contains("/resolve/"),
            }
    }

    /// The bytes a closed `Range: bytes=a-b` asked for, as `[a, b + 1)`; `None` for no range or
    /// any other form.
    pub fn byte_range(&self) -> Option<(u64, u64)> {
        let spec = self.range.as_deref()?.strip_prefix("bytes=")?;
        let (a, b) = spec.split_once('-')?;
        Some((a.parse().ok()?, b.parse::<u64>().ok()?.checked_add(1)?))
    }
}

/// Log storage; entries get an id so their status can be filled in when the answer is known.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    next_id: u64,
    entries: Vec<(u64, LoggedRequest)>,
}

impl RequestLog {
    /// Appends an entry (arrival order) and returns its id.
    pub fn start(&mut self, entry: LoggedRequest) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push((id, entry));
        id
    }

    /// Records the final status of entry `id` (ignored if the log was cleared meanwhile).
    pub fn finish(&mut self, id: u64, status: u16) {
        if let Some((_, entry)) = self.entries.iter_mut().rev().find(|(i, _)| *i == id) {
            entry.status = status;
        }
    }

    /// A copy of all entries.
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        self.entries.iter().map(|(_, e)| e.clone()).collect()
    }

    /// Removes all entries.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_byte_ranges_are_half_open() {
        let get = |range: Option<&str>| LoggedRequest {
            origin: Origin::Cdn,
            method: "GET".into(),
            path: "/lfs/x".into(),
            query: None,
            range: range.map(str::to_owned),
            authorization: None,
            user_agent: None,
            status: 206,
        };
        assert_eq!(get(Some("bytes=2-4")).byte_range(), Some((2, 5)));
        assert_eq!(get(Some("bytes=2-")).byte_range(), None);
        assert_eq!(get(Some("bytes=-3")).byte_range(), None);
        assert_eq!(get(None).byte_range(), None);
    }
}
