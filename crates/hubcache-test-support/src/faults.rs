//! Fault injection rules.

/// A fault applied to one request instead of (or while producing) its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status (with `Retry-After` if given) and a JSON error body instead of the normal answer.
    Status {
        /// HTTP status code to answer.
        status: u16,
        /// Value of the `Retry-After` header, in seconds.
        retry_after: Option<u32>,
    },
    /// Send the headers with the full `Content-Length`, then `after` body bytes, then abort the connection.
    TruncateBody {
        /// Number of body bytes sent before the abort.
        after: u64,
    },
    /// Send `after` body bytes, then stall for an hour (client read timeouts must fire).
    Stall {
        /// Number of body bytes sent before the stall.
        after: u64,
    },
    /// Send a body of the right length with one byte in the middle flipped.
    WrongBytes,
    /// Answer 200 with the full body although a `Range` header is present.
    IgnoreRange,
    /// Answer normally (ranges honoured) but without an `Accept-Ranges` header.
    NoAcceptRanges,
    /// Answer a `Range` request with a 206 whose `Content-Range` announces this total size
    /// instead of the real one (the bytes are right).
    WrongTotal {
        /// The total announced.
        total: u64,
    },
    /// Wait this long, then answer normally.
    Delay {
        /// Delay in milliseconds.
        millis: u64,
    },
    /// Answer 302 with a `Location` naming the request itself (path and query).
    RedirectLoop,
    /// Answer 302 to the same path with `hop=<k+1>` in the query while the request's `hop` is
    /// below `hops`, then answer normally (a chain of `hops` redirects).
    RedirectChain {
        /// Length of the chain.
        hops: u32,
    },
    /// Answer 302 with this `Location` (e.g. `file:///etc/passwd`, `http://169.254.169.254/`).
    RedirectTo {
        /// The `Location` header value.
        location: String,
    },
    /// Answer normally plus this many extra headers (`x-filler-N`).
    ManyHeaders {
        /// Number of extra headers.
        count: usize,
    },
    /// Send the normal body with this `Content-Length` instead of the real one, then abort.
    ContentLength {
        /// The announced length.
        announce: u64,
    },
    /// Answer 200 with the whole file although a `Range` is present (or absent), announce
    /// `announce` bytes (the real length if `None`), send `after` bytes, then abort.
    ShortIgnoringRange {
        /// `Content-Length` to announce; `None` = the file's length.
        announce: Option<u64>,
        /// Body bytes sent before the abort.
        after: u64,
    },
    /// Send the body (file bytes or an API answer) one byte every `millis` milliseconds.
    Drip {
        /// Pause before each byte, in milliseconds.
        millis: u64,
    },
    /// Answer normally, with a `Link: rel="next"` header naming the request itself.
    SelfLink,
    /// Answer 200 with a streamed JSON array of `entries` tiny tree entries (about 40 bytes
    /// each, no `Content-Length`), generated as it is sent.
    HugeListing {
        /// Number of entries.
        entries: u64,
    },
}

/// How a request relates to body faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestClass {
    /// Not a content transfer (HEAD, redirect, API call, error).
    Other,
    /// A GET whose normal answer streams file bytes.
    Content {
        /// Whether the request carries a `Range` header.
        has_range: bool,
    },
}

impl Fault {
    /// Whether this fault can apply to a request of class `class`.
    pub(crate) fn applies_to(&self, class: RequestClass) -> bool {
        match self {
            Fault::Status { .. }
            | Fault::Delay { .. }
            | Fault::RedirectLoop
            | Fault::RedirectChain { .. }
            | Fault::RedirectTo { .. }
            | Fault::ManyHeaders { .. }
            | Fault::Drip { .. }
            | Fault::SelfLink
            | Fault::HugeListing { .. } => true,
            Fault::TruncateBody { .. }
            | Fault::Stall { .. }
            | Fault::WrongBytes
            | Fault::ContentLength { .. }
            | Fault::ShortIgnoringRange { .. }
            | Fault::NoAcceptRanges => matches!(class, RequestClass::Content { .. }),
            Fault::IgnoreRange | Fault::WrongTotal { .. } => matches!(class, RequestClass::Content { has_range: true }),
        }
    }
}

/// A fault rule: the first unspent matching rule applies to a request and its `times` is decremented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); `None` matches any method.
    pub method: Option<&'static str>,
    /// Substring that the raw (still percent-encoded) request path must contain, on either origin.
    pub path_contains: String,
    /// The fault to apply.
    pub fault: Fault,
    /// How many matching requests get the fault; then the rule is spent.
    pub times: usize,
}

impl FaultRule {
    /// A rule applying `fault` once, to any method, on paths containing `path_contains`.
    pub fn new(path_contains: impl Into<String>, fault: Fault) -> FaultRule {
        FaultRule {
            method: None,
            path_contains: path_contains.into(),
            fault,
            times: 1,
        }
    }

    /// Restricts the rule to one HTTP method (e.g. `"GET"`).
    pub fn on_method(mut self, method: &'static str) -> FaultRule {
        self.method = Some(method);
        self
    }

    /// Sets how many matching requests get the fault.
    pub fn repeat(mut self, times: usize) -> FaultRule {
        self.times = times;
        self
    }

    fn matches(&self, method: &str, path: &str, class: RequestClass) -> bool {
        self.times > 0
            && self.method.is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(self.path_contains.as_str())
            && self.fault.applies_to(class)
    }
}

/// Finds the first unspent matching rule, decrements it and returns its fault.
pub(crate) fn take_fault(rules: &mut [FaultRule], method: &str, path: &str, class: RequestClass) -> Option<Fault> {
    let rule = rules.iter_mut().find(|r| r.matches(method, path, class))?;
    rule.times -= 1;
    Some(rule.fault.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_and_spending() {
        let mut rules = vec![
            FaultRule::new("/lfs/", Fault::WrongBytes),
            FaultRule::new(
                "config",
                Fault::Status {
                    status: 500,
                    retry_after: None,
                },
            )
            .on_method("HEAD")
            .repeat(2),
            FaultRule::new("x", Fault::IgnoreRange),
        ];
        // Body faults do not apply to (nor get spent by) non-content requests.
        assert_eq!(take_fault(&mut rules, "HEAD", "/lfs/abc", RequestClass::Other), None);
        let content = RequestClass::Content { has_range: false };
        assert_eq!(
            take_fault(&mut rules, "GET", "/lfs/abc", content),
            Some(Fault::WrongBytes)
        );
        assert_eq!(take_fault(&mut rules, "GET", "/lfs/abc", content), None);
        assert_eq!(
            take_fault(&mut rules, "GET", "/r/resolve/main/config.json", content),
            None
        );
        for _ in 0..2 {
            assert!(matches!(
                take_fault(&mut rules, "head", "/r/resolve/main/config.json", RequestClass::Other),
                Some(Fault::Status { status: 500, .. })
            ));
        }
        assert_eq!(
            take_fault(&mut rules, "HEAD", "/r/resolve/main/config.json", RequestClass::Other),
            None
        );
        assert_eq!(take_fault(&mut rules, "GET", "/x", content), None);
        assert_eq!(
            take_fault(&mut rules, "GET", "/x", RequestClass::Content { has_range: true }),
            Some(Fault::IgnoreRange)
        );
    }
}
