//! HTTP handling for both origins: routing, Hub semantics, fault application and body streaming.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};

use crate::faults::{take_fault, Fault, FaultRule, RequestClass};
use crate::log::{LoggedRequest, Origin, RequestLog};
use crate::model::{Commit, HubState, Repo, RepoKind, StoredFile};
use crate::util::{eval_range, hex, is_true, percent_decode, query_get, query_pairs, RangeOutcome};

/// Size of the slices a content body is streamed in.
const CHUNK: usize = 1024 * 1024;

const X_REPO_COMMIT: HeaderName = HeaderName::from_static("x-repo-commit");
const X_ERROR_CODE: HeaderName = HeaderName::from_static("x-error-code");
const X_ERROR_MESSAGE: HeaderName = HeaderName::from_static("x-error-message");
const X_LINKED_ETAG: HeaderName = HeaderName::from_static("x-linked-etag");
const X_LINKED_SIZE: HeaderName = HeaderName::from_static("x-linked-size");

/// State shared by the handle and both servers.
pub(crate) struct Shared {
    /// Repos, refs, LFS objects, settings.
    pub state: Mutex<HubState>,
    /// Fault rules in injection order.
    pub faults: Mutex<Vec<FaultRule>>,
    /// Request log.
    pub log: Mutex<RequestLog>,
    /// Hub origin URL, no trailing slash.
    pub hub_url: String,
    /// CDN origin URL, no trailing slash.
    pub cdn_url: String,
    /// Network shape (rate caps, latency).
    pub wan: Mutex<crate::wan::Wan>,
    /// CDN connections accepted so far (the index of the bimodal draw).
    pub cdn_connections: std::sync::atomic::AtomicU64,
    /// Requests being answered now (both origins, until the handler returns its response).
    pub in_flight: std::sync::atomic::AtomicU64,
    /// Most requests answered at once since the log was last cleared.
    pub peak_in_flight: std::sync::atomic::AtomicU64,
    /// When the shared CDN link ([`crate::wan::Wan::link_rate`]) is free again.
    pub link_free: Mutex<tokio::time::Instant>,
    /// CDN bodies streaming on the shared link now.
    pub link_streams: std::sync::atomic::AtomicU64,
}

/// Paces a body on the link every CDN body shares; counted in [`Shared::link_streams`] while
/// it lives.
struct Pace {
    shared: Arc<Shared>,
    rate: u64,
    collapse: Option<(u64, u64)>,
}

impl Pace {
    fn new(shared: Arc<Shared>, rate: u64, collapse: Option<(u64, u64)>) -> Pace {
        shared.link_streams.fetch_add(1, Ordering::SeqCst);
        Pace { shared, rate, collapse }
    }

    /// Waits for `len` bytes' turn on the link (a turn less than a millisecond away is taken
    /// at once: the timer's granularity must not slow a lone stream).
    async fn take(&self, len: usize) {
        let streams = self.shared.link_streams.load(Ordering::SeqCst);
        let rate = match self.collapse {
            Some((above, collapsed)) if streams > above => collapsed,
            _ => self.rate,
        };
        let now = tokio::time::Instant::now();
        let start = {
            let mut free = self.shared.link_free.lock().expect("link mutex");
            let start = (*free).max(now);
            *free = start + Duration::from_secs_f64(len as f64 / rate.max(1) as f64);
            start
        };
        if start > now + Duration::from_millis(1) {
            tokio::time::sleep_until(start).await;
        }
    }
}

impl Drop for Pace {
    fn drop(&mut self) {
        self.shared.link_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Bytes a paced body sends per turn on the shared link.
const PACED_CHUNK: usize = 64 << 10;

/// Counts a request as in flight while it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Per-origin handler state.
#[derive(Clone)]
pub(crate) struct Ctx {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Which origin this router serves.
    pub origin: Origin,
}

/// The router for one origin: a single fallback handler.
pub(crate) fn router(ctx: Ctx) -> Router {
    Router::new().fallback(handle).with_state(ctx)
}

type Headers = Vec<(HeaderName, HeaderValue)>;

/// A complete non-content answer.
struct Reply {
    status: StatusCode,
    headers: Headers,
    body: Bytes,
}

/// A content answer (file bytes); status, length and range are decided when rendering.
struct Content {
    headers: Headers,
    data: Bytes,
}

enum Plan {
    Reply(Reply),
    Content(Content),
}

/// Header value from arbitrary text; characters not allowed in header values become `?`.
fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        let cleaned: String = s
            .chars()
            .map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' })
            .collect();
        HeaderValue::from_str(&cleaned).unwrap_or(HeaderValue::from_static("?"))
    })
}

fn quoted(s: &str) -> HeaderValue {
    hv(&format!("\"{s}\""))
}

impl Reply {
    fn json(status: StatusCode, value: &Value) -> Reply {
        Reply {
            status,
            headers: vec![(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(value.to_string()),
        }
    }

    fn error(status: StatusCode, code: Option<&str>, message: &str) -> Reply {
        let mut reply = Reply::json(status, &json!({ "error": message }));
        if let Some(code) = code {
            reply.headers.push((X_ERROR_CODE, hv(code)));
        }
        reply.headers.push((X_ERROR_MESSAGE, hv(message)));
        reply
    }

    fn not_found() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, None, "Not Found")
    }

    fn repo_not_found() -> Reply {
        Reply::error(StatusCode::UNAUTHORIZED, Some("RepoNotFound"), "Repository not found")
    }

    fn revision_not_found(rev: &str) -> Reply {
        Reply::error(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        )
    }

    fn entry_not_found(commit: &str) -> Reply {
        Reply::error(StatusCode::NOT_FOUND, Some("EntryNotFound"), "Entry not found").with(X_REPO_COMMIT, hv(commit))
    }

    fn bad_request(message: &str) -> Reply {
        Reply::error(StatusCode::BAD_REQUEST, Some("BadRequest"), message)
    }

    fn redirect(status: StatusCode, location: &str) -> Reply {
        Reply {
            status,
            headers: vec![(header::LOCATION, hv(location))],
            body: Bytes::new(),
        }
    }

    fn with(mut self, name: HeaderName, value: HeaderValue) -> Reply {
        self.headers.push((name, value));
        self
    }

    fn into_response(self, is_head: bool) -> Response {
        let body = if is_head { Body::empty() } else { Body::from(self.body) };
        build(self.status, self.headers, body)
    }
}

fn build(status: StatusCode, headers: Headers, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers {
        map.append(name, value);
    }
    response
}

fn header_string(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The single handler of both origins.
async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let range = header_string(req.headers(), header::RANGE);
    let authorization = header_string(req.headers(), header::AUTHORIZATION);
    let user_agent = header_string(req.headers(), header::USER_AGENT);
    drop(req);
    let _in_flight = InFlight::enter(&ctx.shared);
    let latency = ctx.shared.wan.lock().expect("wan mutex").latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let log_id = ctx.shared.log.lock().expect("log mutex").start(LoggedRequest {
        origin: ctx.origin,
        method: method.as_str().to_owned(),
        path: path.clone(),
        query: query.clone(),
        range: range.clone(),
        authorization: authorization.clone(),
        user_agent,
        status: 0,
    });

    let plan = {
        let state = ctx.shared.state.lock().expect("state mutex");
        match ctx.origin {
            Origin::Hub => plan_hub(
                &state,
                &ctx.shared,
                &method,
                &path,
                query.as_deref(),
                authorization.as_deref(),
            ),
            Origin::Cdn => plan_cdn(&state, &method, &path),
        }
    };
    let class = match (&plan, &method) {
        (Plan::Content(_), &Method::GET) => RequestClass::Content {
            has_range: range.is_some(),
        },
        _ => RequestClass::Other,
    };
    let mut fault = {
        let mut rules = ctx.shared.faults.lock().expect("faults mutex");
        take_fault(&mut rules, method.as_str(), &path, class)
    };
    if let Some(Fault::Delay { millis }) = fault {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        fault = None;
    }
    let is_head = method == Method::HEAD;
    let self_url = with_query(path.clone(), query.as_deref());
    let response = match fault {
        Some(Fault::RedirectLoop) => Reply::redirect(StatusCode::FOUND, &self_url).into_response(is_head),
        Some(Fault::RedirectTo { location }) => Reply::redirect(StatusCode::FOUND, &location).into_response(is_head),
        Some(Fault::RedirectChain { hops }) if hop_of(query.as_deref()) < hops => {
            let next = hop_of(query.as_deref()) + 1;
            let mut pairs: Vec<String> = query
                .as_deref()
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("hop="))
                .map(str::to_owned)
                .collect();
            pairs.push(format!("hop={next}"));
            Reply::redirect(StatusCode::FOUND, &format!("{path}?{}", pairs.join("&"))).into_response(is_head)
        }
        Some(Fault::HugeListing { entries }) => huge_listing(entries),
        Some(Fault::SelfLink) => {
            let mut response = render(plan, None, is_head, range.as_deref(), None);
            let link = format!("<{}{self_url}>; rel=\"next\"", ctx.shared.hub_url);
            response.headers_mut().insert(header::LINK, hv(&link));
            response
        }
        Some(Fault::ManyHeaders { count }) => {
            let mut response = render(plan, None, is_head, range.as_deref(), None);
            let map = response.headers_mut();
            for i in 0..count {
                if let Ok(name) = HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()) {
                    map.append(name, HeaderValue::from_static("x"));
                }
            }
            response
        }
        Some(Fault::Status { status, retry_after }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut reply = Reply::json(
                status,
                &json!({ "error": format!("injected fault: status {}", status.as_u16()) }),
            );
            if let Some(secs) = retry_after {
                reply.headers.push((header::RETRY_AFTER, hv(&secs.to_string())));
            }
            reply.into_response(is_head)
        }
        fault => {
            let wan = *ctx.shared.wan.lock().expect("wan mutex");
            let pace = match (ctx.origin, wan.link_rate) {
                (Origin::Cdn, Some(rate)) if !is_head => {
                    Some(Pace::new(Arc::clone(&ctx.shared), rate, wan.link_collapse))
                }
                _ => None,
            };
            render(plan, fault, is_head, range.as_deref(), pace)
        }
    };
    ctx.shared
        .log
        .lock()
        .expect("log mutex")
        .finish(log_id, response.status().as_u16());
    response
}

/// The `hop` query parameter (0 when absent).
fn hop_of(query: Option<&str>) -> u32 {
    query_get(&query_pairs(query), "hop")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A streamed JSON array of `entries` tiny tree entries, generated while it is sent.
fn huge_listing(entries: u64) -> Response {
    const PER_CHUNK: u64 = 10_000;
    let stream = futures_util::stream::unfold(0u64, move |done| async move {
        if done > entries {
            return None;
        }
        let mut chunk = String::new();
        if done == 0 {
            chunk.push('[');
        }
        let end = (done + PER_CHUNK).min(entries);
        for i in done..end {
            if i > 0 {
                chunk.push(',');
            }
            chunk.push_str(&format!("{{\"type\":\"file\",\"path\":\"f/{i:09}\",\"size\":1}}"));
        }
        if end == entries {
            chunk.push(']');
        }
        Some((
            Ok::<Bytes, io::Error>(Bytes::from(chunk)),
            if end == entries { entries + 1 } else { end },
        ))
    });
    build(
        StatusCode::OK,
        vec![(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        Body::from_stream(stream),
    )
}

/// Turns a plan into a response, applying range handling and body faults.
fn render(plan: Plan, fault: Option<Fault>, is_head: bool, range: Option<&str>, pace: Option<Pace>) -> Response {
    let content = match plan {
        Plan::Reply(reply) => {
            return match fault {
                Some(Fault::Drip { millis }) if !is_head => {
                    let mut headers = reply.headers;
                    headers.push((header::CONTENT_LENGTH, hv(&reply.body.len().to_string())));
                    build(
                        reply.status,
                        headers,
                        stream_body(reply.body, Some(Fault::Drip { millis }), None),
                    )
                }
                _ => reply.into_response(is_head),
            }
        }
        Plan::Content(content) => content,
    };
    let total = content.data.len() as u64;
    let mut headers = content.headers;
    if matches!(fault, Some(Fault::NoAcceptRanges)) {
        headers.retain(|(name, _)| name != header::ACCEPT_RANGES);
    }
    if is_head {
        headers.push((header::CONTENT_LENGTH, hv(&total.to_string())));
        return build(StatusCode::OK, headers, Body::empty());
    }
    let outcome = if matches!(fault, Some(Fault::IgnoreRange | Fault::ShortIgnoringRange { .. })) {
        RangeOutcome::Full
    } else {
        eval_range(range, total)
    };
    let (status, start, end) = match outcome {
        RangeOutcome::Full => (StatusCode::OK, 0, total),
        RangeOutcome::Partial(a, b) => {
            let announced_total = match &fault {
                Some(Fault::WrongTotal { total }) => *total,
                _ => total,
            };
            headers.push((header::CONTENT_RANGE, hv(&format!("bytes {a}-{b}/{announced_total}"))));
            (StatusCode::PARTIAL_CONTENT, a, b + 1)
        }
        RangeOutcome::Unsatisfiable => {
            return Reply::error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                None,
                "Requested Range Not Satisfiable",
            )
            .with(header::CONTENT_RANGE, hv(&format!("bytes */{total}")))
            .into_response(false);
        }
    };
    let data = content.data.slice(start as usize..end as usize);
    let announced = match &fault {
        Some(Fault::ContentLength { announce })
        | Some(Fault::ShortIgnoringRange {
            announce: Some(announce),
            ..
        }) => *announce,
        _ => data.len() as u64,
    };
    headers.push((header::CONTENT_LENGTH, hv(&announced.to_string())));
    build(status, headers, stream_body(data, fault, pace))
}

/// What happens after the bytes that are sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Done,
    Abort,
    Stall,
}

struct BodyState {
    data: Bytes,
    pos: usize,
    limit: usize,
    ending: Ending,
    flip_at: Option<usize>,
    ended: bool,
    drip: Option<Duration>,
    pace: Option<Pace>,
}

/// Streams `data` in zero-copy slices, applying a body fault if any, paced on the shared link
/// when `pace` is set.
fn stream_body(data: Bytes, fault: Option<Fault>, pace: Option<Pace>) -> Body {
    let len = data.len();
    let clamp = |after: u64| usize::try_from(after).unwrap_or(usize::MAX).min(len);
    let (limit, ending) = match fault {
        Some(Fault::TruncateBody { after }) => (clamp(after), Ending::Abort),
        Some(Fault::Stall { after }) => (clamp(after), Ending::Stall),
        Some(Fault::ShortIgnoringRange { after, .. }) => (clamp(after), Ending::Abort),
        Some(Fault::ContentLength { .. }) => (len, Ending::Abort),
        _ => (len, Ending::Done),
    };
    let drip = match fault {
        Some(Fault::Drip { millis }) => Some(Duration::from_millis(millis)),
        _ => None,
    };
    let flip_at = (fault == Some(Fault::WrongBytes) && len > 0).then_some(len / 2);
    let state = BodyState {
        data,
        pos: 0,
        limit,
        ending,
        flip_at,
        ended: false,
        drip,
        pace,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.pos < st.limit {
            let step = match (st.drip, &st.pace) {
                (Some(pause), _) => {
                    tokio::time::sleep(pause).await;
                    1
                }
                (None, Some(pace)) => {
                    let step = PACED_CHUNK.min(st.limit - st.pos);
                    pace.take(step).await;
                    step
                }
                (None, None) => CHUNK,
            };
            let stop = (st.pos + step).min(st.limit);
            let mut chunk = st.data.slice(st.pos..stop);
            if let Some(i) = st.flip_at.filter(|i| (st.pos..stop).contains(i)) {
                let mut copy = chunk.to_vec();
                copy[i - st.pos] ^= 0xff;
                chunk = Bytes::from(copy);
            }
            st.pos = stop;
            return Some((Ok::<Bytes, io::Error>(chunk), st));
        }
        if st.ended {
            return None;
        }
        st.ended = true;
        match st.ending {
            Ending::Done => None,
            Ending::Abort => {
                // Give hyper a moment to flush what was sent before the connection is torn down.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "injected fault: truncated body",
                    )),
                    st,
                ))
            }
            Ending::Stall => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Some((Err(io::Error::other("injected fault: stall ended")), st))
            }
        }
    });
    Body::from_stream(stream)
}

// ---------------------------------------------------------------------------------------------------------------
// CDN origin

fn plan_cdn(state: &HubState, method: &Method, path: &str) -> Plan {
    let Some(sha) = path.strip_prefix("/lfs/") else {
        return Plan::Reply(Reply::not_found());
    };
    if method != Method::GET && method != Method::HEAD {
        return Plan::Reply(method_not_allowed());
    }
    match state.lfs_objects.get(sha) {
        Some(data) => Plan::Content(Content {
            headers: vec![
                (header::ETAG, quoted(sha)),
                (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
            ],
            data: data.clone(),
        }),
        None => Plan::Reply(Reply::not_found()),
    }
}

fn method_not_allowed() -> Reply {
    Reply::error(StatusCode::METHOD_NOT_ALLOWED, None, "Method Not Allowed")
}

// ---------------------------------------------------------------------------------------------------------------
// Hub origin

fn plan_hub(
    state: &HubState,
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    auth: Option<&str>,
) -> Plan {
    let trimmed = path.trim_start_matches('/');
    if let Some(api_path) = trimmed.strip_prefix("api/") {
        let mut segs = api_path.split('/');
        let kind = segs.next().and_then(RepoKind::from_api_segment);
        let Some(kind) = kind else {
            return Plan::Reply(Reply::not_found());
        };
        if method != Method::GET && method != Method::HEAD {
            return Plan::Reply(method_not_allowed());
        }
        let segs: Vec<&str> = segs.collect();
        return Plan::Reply(api(state, shared, kind, &segs, path, query, auth));
    }
    let (kind, rest) = if let Some(rest) = trimmed.strip_prefix("datasets/") {
        (RepoKind::Dataset, rest)
    } else if let Some(rest) = trimmed.strip_prefix("spaces/") {
        (RepoKind::Space, rest)
    } else {
        (RepoKind::Model, trimmed)
    };
    let segs: Vec<&str> = rest.split('/').collect();
    if !segs.contains(&"resolve") {
        return Plan::Reply(Reply::not_found());
    }
    if method != Method::GET && method != Method::HEAD {
        return Plan::Reply(method_not_allowed());
    }
    resolve(state, shared, kind, &segs, query, auth)
}

/// A candidate interpretation of the path: repo id made of the first `n` segments.
struct Located<T> {
    id: String,
    n: usize,
    parsed: T,
}

enum Access<'a> {
    Ok(&'a Repo),
    Denied(Reply),
}

/// Picks the interpretation whose repo exists (else one that was renamed, else the first) and checks access.
fn locate<'a, T>(
    state: &'a HubState,
    kind: RepoKind,
    segs: &[&str],
    shape: impl Fn(usize) -> Option<T>,
    location_for: impl Fn(&str, usize) -> String,
    auth: Option<&str>,
) -> Option<(Located<T>, Access<'a>)> {
    let mut candidates: Vec<Located<T>> = Vec::new();
    for n in [2usize, 1] {
        if segs.len() < n || segs[..n].iter().any(|s| s.is_empty()) {
            continue;
        }
        if let Some(parsed) = shape(n) {
            candidates.push(Located {
                id: segs[..n].join("/"),
                n,
                parsed,
            });
        }
    }
    let key = |c: &Located<T>| (kind, c.id.clone());
    let pick = candidates
        .iter()
        .position(|c| state.repos.contains_key(&key(c)))
        .or_else(|| candidates.iter().position(|c| state.renames.contains_key(&key(c))))
        .unwrap_or(0);
    if pick >= candidates.len() {
        return None;
    }
    let located = candidates.swap_remove(pick);
    let access = match state.repos.get(&key(&located)) {
        Some(repo) => {
            if !authorized(repo, auth) {
                Access::Denied(Reply::repo_not_found())
            } else if repo.gated {
                let message = format!(
                    "Access to {} {} is restricted. You must have access to it and be authenticated to access it. Please log in.",
                    kind.noun(),
                    repo.id
                );
                Access::Denied(Reply::error(StatusCode::FORBIDDEN, Some("GatedRepo"), &message))
            } else {
                Access::Ok(repo)
            }
        }
        None => match state.renames.get(&key(&located)) {
            Some(new_id) => Access::Denied(Reply::redirect(
                StatusCode::TEMPORARY_REDIRECT,
                &location_for(new_id, located.n),
            )),
            None => Access::Denied(Reply::repo_not_found()),
        },
    };
    Some((located, access))
}

fn authorized(repo: &Repo, auth: Option<&str>) -> bool {
    let Some(token) = &repo.private_token else {
        return true;
    };
    let given = auth.and_then(|a| {
        let a = a.trim();
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
            .map(str::trim)
    });
    given == Some(token.as_str())
}

fn with_query(path: String, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// `/{prefix}{repo_id}/resolve/{revision}/{path}`
fn resolve(
    state: &HubState,
    shared: &Shared,
    kind: RepoKind,
    segs: &[&str],
    query: Option<&str>,
    auth: Option<&str>,
) -> Plan {
    // parsed = (raw revision, raw file path)
    let shape = |n: usize| -> Option<(String, String)> {
        if segs.len() < n + 3 || segs[n] != "resolve" {
            return None;
        }
        // Tolerate an unencoded `refs/pr/N` / `refs/convert/X` revision.
        if segs[n + 1] == "refs" && segs.len() >= n + 5 {
            return Some((segs[n + 1..n + 4].join("/"), segs[n + 4..].join("/")));
        }
        Some((segs[n + 1].to_owned(), segs[n + 2..].join("/")))
    };
    let location_for = |new_id: &str, n: usize| {
        with_query(
            format!("/{}{}/{}", kind.url_prefix(), new_id, segs[n..].join("/")),
            query,
        )
    };
    let Some((located, access)) = locate(state, kind, segs, shape, location_for, auth) else {
        return Plan::Reply(Reply::not_found());
    };
    let repo = match access {
        Access::Ok(repo) => repo,
        Access::Denied(reply) => return Plan::Reply(reply),
    };
    let (raw_rev, raw_file) = located.parsed;
    let (Some(rev), Some(file)) = (percent_decode(&raw_rev, false), percent_decode(&raw_file, false)) else {
        return Plan::Reply(Reply::bad_request("Invalid percent-encoding"));
    };
    let Some(commit) = repo.resolve(&rev) else {
        return Plan::Reply(Reply::revision_not_found(&rev));
    };
    let Some(stored) = commit.files.get(&file) else {
        return Plan::Reply(Reply::entry_not_found(&commit.id));
    };
    match &stored.lfs {
        None => Plan::Content(Content {
            headers: vec![
                (header::ETAG, quoted(&stored.oid)),
                (X_REPO_COMMIT, hv(&commit.id)),
                (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
            ],
            data: stored.content.clone(),
        }),
        Some(lfs) => {
            let mut sig = Sha1::new();
            sig.update(commit.id.as_bytes());
            sig.update(file.as_bytes());
            let location = format!(
                "{}/lfs/{}?sig={}",
                shared.cdn_url,
                lfs.sha256,
                &hex(&sig.finalize())[..16]
            );
            let mut reply = Reply::redirect(StatusCode::FOUND, &location)
                .with(X_LINKED_ETAG, quoted(&lfs.sha256))
                .with(X_LINKED_SIZE, hv(&stored.size().to_string()))
                .with(X_REPO_COMMIT, hv(&commit.id))
                .with(header::ETAG, quoted(&stored.oid))
                .with(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            if state.xet_headers {
                reply = reply
                    .with(
                        HeaderName::from_static("x-xet-hash"),
                        hv(&crate::fake_xet_hash(&stored.content)),
                    )
                    .with(
                        HeaderName::from_static("x-xet-refresh-route"),
                        hv(&format!("/api/models/{}/xet-read-token/{}", repo.id, commit.id)),
                    );
            }
            Plan::Reply(reply)
        }
    }
}

/// What an API path asks for.
enum ApiCall {
    /// Repo info at a raw revision (`None` = main).
    Info(Option<String>),
    /// Tree listing at raw revision and raw sub-path.
    Tree(String, String),
}

/// `/api/{models|datasets|spaces}/{repo_id}[/revision/{rev}|/tree/{rev}[/{path}]]`
fn api(
    state: &HubState,
    shared: &Shared,
    kind: RepoKind,
    segs: &[&str],
    path: &str,
    query: Option<&str>,
    auth: Option<&str>,
) -> Reply {
    let shape = |n: usize| -> Option<ApiCall> {
        if segs.len() == n {
            return Some(ApiCall::Info(None));
        }
        match segs[n] {
            "revision" if segs.len() > n + 1 => Some(ApiCall::Info(Some(segs[n + 1..].join("/")))),
            "tree" if segs.len() > n + 1 => Some(ApiCall::Tree(segs[n + 1].to_owned(), segs[n + 2..].join("/"))),
            _ => None,
        }
    };
    let location_for = |new_id: &str, n: usize| {
        let mut p = format!("/api/{}/{}", kind.api_segment(), new_id);
        for s in &segs[n..] {
            p.push('/');
            p.push_str(s);
        }
        with_query(p, query)
    };
    let Some((located, access)) = locate(state, kind, segs, shape, location_for, auth) else {
        return Reply::not_found();
    };
    let repo = match access {
        Access::Ok(repo) => repo,
        Access::Denied(reply) => return reply,
    };
    let pairs = query_pairs(query);
    match located.parsed {
        ApiCall::Info(raw_rev) => {
            let rev = match raw_rev {
                Some(raw) => match percent_decode(&raw, false) {
                    Some(rev) => rev,
                    None => return Reply::bad_request("Invalid percent-encoding"),
                },
                None => "main".to_owned(),
            };
            let Some(commit) = repo.resolve(&rev) else {
                return Reply::revision_not_found(&rev);
            };
            let blobs = is_true(query_get(&pairs, "blobs"));
            Reply::json(StatusCode::OK, &repo_info(kind, repo, &commit, blobs))
        }
        ApiCall::Tree(raw_rev, raw_path) => {
            let (Some(rev), Some(sub)) = (percent_decode(&raw_rev, false), percent_decode(&raw_path, false)) else {
                return Reply::bad_request("Invalid percent-encoding");
            };
            let Some(commit) = repo.resolve(&rev) else {
                return Reply::revision_not_found(&rev);
            };
            tree(state, shared, &commit, sub.trim_matches('/'), path, query, &pairs)
        }
    }
}

fn fake_object_id(kind: RepoKind, id: &str) -> String {
    let mut h = Sha1::new();
    h.update(kind.api_segment().as_bytes());
    h.update(b"/");
    h.update(id.as_bytes());
    hex(&h.finalize())[..24].to_owned()
}

fn repo_info(kind: RepoKind, repo: &Repo, commit: &Commit, blobs: bool) -> Value {
    let siblings: Vec<Value> = commit
        .files
        .iter()
        .map(|(path, file)| {
            let mut entry = json!({ "rfilename": path });
            if blobs {
                entry["size"] = json!(file.size());
                entry["blobId"] = json!(file.oid);
                if let Some(lfs) = &file.lfs {
                    entry["lfs"] = json!({
                        "size": file.size(),
                        "sha256": lfs.sha256,
                        "pointerSize": lfs.pointer_size,
                    });
                }
            }
            entry
        })
        .collect();
    let mut info = json!({
        "_id": fake_object_id(kind, &repo.id),
        "id": repo.id,
        "sha": commit.id,
        "private": repo.private_token.is_some(),
        "gated": false,
        "disabled": false,
        "lastModified": "2026-01-01T00:00:00.000Z",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "tags": [],
        "siblings": siblings,
    });
    if kind == RepoKind::Model {
        info["modelId"] = json!(repo.id);
    }
    if let Some((author, _)) = repo.id.split_once('/') {
        info["author"] = json!(author);
    }
    info
}

fn file_entry(path: &str, file: &StoredFile) -> Value {
    let mut entry = json!({
        "type": "file",
        "oid": file.oid,
        "size": file.size(),
        "path": path,
    });
    if let Some(lfs) = &file.lfs {
        entry["lfs"] = json!({
            "oid": lfs.sha256,
            "size": file.size(),
            "pointerSize": lfs.pointer_size,
        });
    }
    entry
}

fn dir_entry(commit: &Commit, path: &str) -> Value {
    let mut h = Sha1::new();
    h.update(b"tree ");
    h.update(commit.id.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    json!({
        "type": "directory",
        "oid": hex(&h.finalize()),
        "size": 0,
        "path": path,
    })
}

/// Tree listing of `sub` ("" = root), paginated.
fn tree(
    state: &HubState,
    shared: &Shared,
    commit: &Commit,
    sub: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    pairs: &[(String, String)],
) -> Reply {
    let recursive = is_true(query_get(pairs, "recursive"));
    let prefix = if sub.is_empty() {
        String::new()
    } else {
        format!("{sub}/")
    };
    // path → Some(file) or None (directory); BTreeMap keeps them sorted by path.
    let mut entries: BTreeMap<String, Option<&StoredFile>> = BTreeMap::new();
    let mut found = sub.is_empty();
    for (path, file) in commit.files.range(prefix.clone()..) {
        let Some(rel) = path.strip_prefix(prefix.as_str()) else {
            break;
        };
        found = true;
        if recursive {
            for (i, _) in rel.match_indices('/') {
                entries.insert(format!("{prefix}{}", &rel[..i]), None);
            }
            entries.insert(path.clone(), Some(file));
        } else {
            match rel.split_once('/') {
                Some((dir, _)) => {
                    entries.insert(format!("{prefix}{dir}"), None);
                }
                None => {
                    entries.insert(path.clone(), Some(file));
                }
            }
        }
    }
    if !found {
        return Reply::entry_not_found(&commit.id);
    }
    let page_size = state.tree_page_size.max(1);
    let offset = match query_get(pairs, "cursor") {
        Some(c) => match c.parse::<usize>() {
            Ok(offset) => offset,
            Err(_) => return Reply::bad_request("Invalid cursor"),
        },
        None => 0,
    };
    let page: Vec<Value> = entries
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|(path, file)| match file {
            Some(file) => file_entry(path, file),
            None => dir_entry(commit, path),
        })
        .collect();
    let mut reply = Reply::json(StatusCode::OK, &Value::Array(page));
    let next = offset.saturating_add(page_size);
    if next < entries.len() {
        // Keep the caller's raw parameters (minus the old cursor) so the next page is the same listing.
        let mut query: Vec<String> = raw_query
            .unwrap_or("")
            .split('&')
            .filter(|part| !part.is_empty() && part.split('=').next() != Some("cursor"))
            .map(str::to_owned)
            .collect();
        if query_get(pairs, "recursive").is_none() {
            query.insert(0, "recursive=false".to_owned());
        }
        query.push(format!("cursor={next}"));
        let link = format!("<{}{}?{}>; rel=\"next\"", shared.hub_url, raw_path, query.join("&"));
        reply.headers.push((header::LINK, hv(&link)));
    }
    reply
}
