//! Ranged transfers: the bytes a file still misses are fetched as `Range` GETs over several
//! connections at once, written at their offsets by the [`PartSink`] (which hashes the
//! contiguous prefix as it grows).
//!
//! - The first part is a probe: the other connections start only once its answer is a `206`
//!   with `Accept-Ranges: bytes`, the exact `Content-Range` asked for and the announced total.
//!   Any part answered otherwise (a `200` with the whole file, no or another `Content-Range`, a
//!   different total or length) ends the ranged transfer as [`Ranged::Fallback`]: nothing of
//!   that answer is written, and the caller fetches the file as one plain stream. Its first
//!   bytes are also timed ([`plan::PROBE_BYTES`] or [`plan::PROBE_TIME`]): a fast first
//!   connection keeps the transfer on one, a capped one starts several
//!   ([`plan::RangedConfig::start_after_probe`]).
//! - Each part is retried on its own from where it stopped, judged by a [`ResumeBudget`]; a
//!   part that receives less than [`MIN_BYTES_PER_WINDOW`] per read-timeout window is a stall,
//!   cancelled and asked again.
//! - A `403` on a part means the signed location expired: the resolve URL is asked again (at
//!   most once per location, [`MAX_REFRESHES`] per file) and the parts continue there.
//! - The number of connections follows a [`Ramp`]; an idle connection takes a share of the
//!   part that will finish last ([`pick_split`]); a connection far slower than a typical good one is
//!   dropped and its rest handed to a new one ([`should_recycle`]).
//!
//! Memory: each part gathers at most [`WRITE_CHUNK`] bytes before handing them to the writer,
//! whose queue is bounded: a few MiB per connection at most.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use reqwest::header::{ACCEPT_RANGES, CONTENT_RANGE};
use reqwest::Response;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::parts_sink::{PartSink, PartTx, PartsDone};
use super::plan::{self, pick_split, should_recycle, PartView, Ramp, RangeSet};
use super::stream::{Rate, MIN_BYTES_PER_WINDOW};
use super::TransferError;
use crate::hub::client::{transport_error, HubClient};
use crate::hub::error::HubError;
use crate::hub::retry::ResumeBudget;
use crate::hub::url;
use crate::progress::FileProgress;

/// Bytes a part gathers before one write.
const WRITE_CHUNK: usize = 128 << 10;
/// Most location refreshes (403 on a part) per file.
pub const MAX_REFRESHES: u32 = 8;
/// How often the coordinator reports progress and looks at the aggregate rate (the ramp's
/// windows are whole ticks: [`plan::GROW_WINDOW`], [`plan::SETTLED_WINDOW`]).
const TICK: Duration = Duration::from_millis(50);
/// How often the coordinator looks at the first connection while it is measured alone.
const PROBE_POLL: Duration = Duration::from_millis(5);

/// What a ranged transfer fetches.
#[derive(Debug, Clone, Copy)]
pub(super) struct RangedRequest<'a> {
    /// The download location (may be a signed URL that expires).
    pub location: &'a str,
    /// The resolve URL to ask again for a fresh location after a 403.
    pub resolve: Option<&'a str>,
    /// The etag (a refreshed location must still name it).
    pub etag: &'a str,
    /// The file size.
    pub size: u64,
}

/// How a ranged transfer ended, when it did not fail.
pub(super) enum Ranged {
    /// Every part arrived (the writer's result).
    Done(PartsDone),
    /// The server does not serve ranges as it should (why): fetch the file as one stream.
    /// Nothing of the refused answer was written.
    Fallback(String),
}

/// Why a part (and with it the transfer) stopped.
enum Stop {
    Fallback(String),
    Failed { error: HubError, attempts: u32 },
    Writer,
}

/// A part being fetched: the next byte and the end, moved under the lock by splits.
struct Part {
    state: Mutex<PartState>,
}

struct PartState {
    pos: u64,
    end: u64,
    /// Where the current request started, and when (for its rate).
    req_pos: u64,
    req_started: Instant,
}

impl Part {
    fn new(start: u64, end: u64) -> Arc<Part> {
        Arc::new(Part {
            state: Mutex::new(PartState {
                pos: start,
                end,
                req_pos: start,
                req_started: Instant::now(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PartState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn view(&self) -> PartView {
        let s = self.lock();
        let secs = s.req_started.elapsed().as_secs_f64();
        let got = s.pos - s.req_pos;
        PartView {
            pos: s.pos,
            end: s.end,
            rate: if secs > 0.05 && got > 0 { got as f64 / secs } else { 0.0 },
        }
    }
}

/// State shared by the parts of one transfer.
struct Shared<'a> {
    client: &'a HubClient,
    req: RangedRequest<'a>,
    /// The holes no connection has taken yet, in file order (parts are cut from the front).
    queue: Mutex<VecDeque<(u64, u64)>>,
    /// Largest part.
    max_part: u64,
    /// Connections parts are cut for before the first one is measured.
    start_connections: usize,
    /// The link is fast: one connection takes whole holes.
    single: AtomicBool,
    active: Mutex<Vec<Arc<Part>>>,
    /// Generation and URL of the download location.
    location: Mutex<(u64, String)>,
    refreshing: tokio::sync::Mutex<u32>,
    /// Bytes received (for progress and the rate).
    received: AtomicU64,
    /// Fastest rate of one request seen, bytes/s (f64 bits).
    fastest: AtomicU64,
    /// What a good connection gets now: the upper quartile of the running parts' rates,
    /// bytes/s (f64 bits; 0 until enough parts are measured).
    typical: AtomicU64,
    recycles_left: AtomicU32,
    /// A part answered as a ranged answer should: the other connections may start.
    confirmed: AtomicBool,
    running: AtomicUsize,
    /// Connections that have received bytes (a rate window opens only once every wanted one
    /// has: a new connection's handshake is not counted as a slow step).
    flowing: AtomicUsize,
    target: AtomicUsize,
    tx: PartTx,
    /// What the parts did since the coordinator last looked, for a verbose log.
    events: Mutex<Vec<String>>,
    /// When the transfer started (events say how long after).
    started: Instant,
    /// GETs sent.
    gets: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared<'_> {
    /// Notes `message` for the verbose log.
    fn event(&self, message: String) {
        let mut events = lock(&self.events);
        // Bounded: a transfer that retries endlessly must not grow this.
        if events.len() < 256 {
            events.push(format!("{:.2} s: {message}", self.started.elapsed().as_secs_f64()));
        }
    }

    fn location(&self) -> (u64, String) {
        lock(&self.location).clone()
    }

    fn fastest(&self) -> f64 {
        f64::from_bits(self.fastest.load(Ordering::Relaxed))
    }

    fn typical(&self) -> f64 {
        f64::from_bits(self.typical.load(Ordering::Relaxed))
    }

    /// Measures what a good connection gets now, from the running parts' rates.
    fn measure_typical(&self) {
        let rates: Vec<f64> = lock(&self.active).iter().map(|p| p.view().rate).collect();
        self.typical
            .store(plan::typical_rate(&rates).to_bits(), Ordering::Relaxed);
    }

    fn note_rate(&self, rate: f64) {
        let _ = self.fastest.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            (rate > f64::from_bits(bits)).then(|| rate.to_bits())
        });
    }

    /// Work for an idle connection: the next queued part, else a share of a running one.
    fn take_work(&self) -> Option<Arc<Part>> {
        let mut active = lock(&self.active);
        let mut queue = lock(&self.queue);
        if let Some((s, e)) = queue.pop_front() {
            let queued = e - s + queue.iter().map(|(a, b)| b - a).sum::<u64>();
            // Until the first connection is measured, parts are cut for the connections a
            // capped link starts with.
            let connections = match self.single.load(Ordering::Relaxed) {
                true => 1,
                false => self.target.load(Ordering::Relaxed).max(self.start_connections),
            };
            let end = s + plan::next_part(e - s, queued, connections, self.max_part);
            if end < e {
                queue.push_front((end, e));
            }
            let part = Part::new(s, end);
            active.push(Arc::clone(&part));
            return Some(part);
        }
        drop(queue);
        let views: Vec<PartView> = active.iter().map(|p| p.view()).collect();
        let (i, at) = pick_split(&views, self.fastest())?;
        let old_end = {
            let mut s = active[i].lock();
            // The part may have moved since its view was taken.
            if !(s.pos < at && at < s.end) {
                return None;
            }
            std::mem::replace(&mut s.end, at)
        };
        let part = Part::new(at, old_end);
        active.push(Arc::clone(&part));
        Some(part)
    }

    fn has_work(&self) -> bool {
        if !lock(&self.queue).is_empty() {
            return true;
        }
        lock(&self.active).iter().any(|p| {
            let v = p.view();
            v.end.saturating_sub(v.pos) >= 2 * plan::MIN_SPLIT
        })
    }

    /// Whether another running part is behind `part` (the hash follows the part furthest
    /// behind, so that one is the last to give up its connection).
    fn is_ahead(&self, part: &Arc<Part>) -> bool {
        let mine = part.lock().pos;
        lock(&self.active)
            .iter()
            .any(|p| !Arc::ptr_eq(p, part) && p.lock().pos < mine)
    }

    /// Ends `part` where it stands and queues its rest first; returns the rest.
    fn hand_back(&self, part: &Arc<Part>) -> (u64, u64) {
        let mut s = part.lock();
        let rest = (s.pos, s.end);
        s.end = s.pos;
        drop(s);
        if rest.0 < rest.1 {
            lock(&self.queue).push_front(rest);
        }
        rest
    }

    fn retire(&self, part: &Arc<Part>) {
        lock(&self.active).retain(|p| !Arc::ptr_eq(p, part));
    }

    /// Leaves voluntarily when more connections run than wanted.
    fn leave_if_surplus(&self) -> bool {
        let target = self.target.load(Ordering::Relaxed);
        self.running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| (r > target).then(|| r - 1))
            .is_ok()
    }

    /// After a 403 on location generation `seen`: a fresh location (asked once per
    /// generation). `Ok(false)` when none can be had.
    async fn refresh(&self, seen: u64) -> Result<bool, HubError> {
        let Some(resolve) = self.req.resolve else {
            return Ok(false);
        };
        let mut refreshes = self.refreshing.lock().await;
        if lock(&self.location).0 != seen {
            return Ok(true);
        }
        if *refreshes >= MAX_REFRESHES {
            return Ok(false);
        }
        *refreshes += 1;
        let Some(location) = self.client.refresh_location(resolve, self.req.etag).await? else {
            // The file changed on the Hub meanwhile: the 403 stands.
            return Ok(false);
        };
        *lock(&self.location) = (seen + 1, location);
        Ok(true)
    }
}

/// How one GET of a part ended, when it did not fail.
enum GetEnd {
    Done,
    /// Dropped as too slow; its rest is queued again.
    Recycled,
    /// Stopped because fewer connections are wanted; its rest is queued again.
    Left,
}

/// Why one GET of a part failed.
enum GetErr {
    Hub(HubError),
    Stop(Stop),
}

/// Fetches the holes of `held` into `sink`, reporting to `progress`.
pub(super) async fn fetch(
    client: &HubClient,
    req: RangedRequest<'_>,
    sink: PartSink,
    held: &RangeSet,
    progress: &mut dyn FileProgress,
) -> Result<Ranged, TransferError> {
    let cfg = client.config().ranged;
    let Some(tx) = sink.sender() else {
        return Err(sink.finish().await.err().unwrap_or_else(writer_stopped));
    };
    let sh = Shared {
        client,
        req,
        queue: Mutex::new(held.missing(req.size).into()),
        max_part: cfg.part_size,
        start_connections: cfg.start_connections(),
        single: AtomicBool::new(false),
        active: Mutex::new(Vec::new()),
        location: Mutex::new((0, req.location.to_string())),
        refreshing: tokio::sync::Mutex::new(0),
        received: AtomicU64::new(0),
        fastest: AtomicU64::new(0f64.to_bits()),
        typical: AtomicU64::new(0f64.to_bits()),
        recycles_left: AtomicU32::new(plan::recycle_budget(cfg.max_connections)),
        confirmed: AtomicBool::new(false),
        running: AtomicUsize::new(0),
        flowing: AtomicUsize::new(0),
        target: AtomicUsize::new(1),
        tx,
        events: Mutex::new(Vec::new()),
        started: Instant::now(),
        gets: AtomicU32::new(0),
    };
    let stop = coordinate(&sh, &cfg, progress).await;
    drop(sh);
    let done = sink.finish().await?;
    match stop {
        None => Ok(Ranged::Done(done)),
        Some(Stop::Fallback(why)) => Ok(Ranged::Fallback(why)),
        Some(Stop::Writer) => Err(writer_stopped()),
        Some(Stop::Failed { error, attempts }) if error.is_transient() && done.held > 0 => Err(TransferError::CutOff {
            attempts,
            received: done.held,
            kept: false,
            range_ignored: false,
            source: error,
        }),
        Some(Stop::Failed { error, .. }) => Err(error.into()),
    }
}

fn writer_stopped() -> TransferError {
    TransferError::Io {
        path: std::path::PathBuf::new(),
        source: std::io::Error::other("the parts writer stopped"),
    }
}

/// Runs the workers until every part is in or one stops the transfer: the first connection
/// alone until its answer is confirmed as a ranged one and its first bytes are measured, then as
/// many as the [`Ramp`] wants.
async fn coordinate(sh: &Shared<'_>, cfg: &plan::RangedConfig, progress: &mut dyn FileProgress) -> Option<Stop> {
    let mut ramp: Option<Ramp> = None;
    let mut confirmed_at: Option<Instant> = None;
    let mut probe_from: Option<(Instant, u64)> = None;
    let mut workers = FuturesUnordered::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reported = 0u64;
    let mut window: Option<Window> = None;
    let mut stop = None;
    loop {
        if ramp.is_none() && probe_from.is_none() && sh.confirmed.load(Ordering::Relaxed) {
            // The first bytes of a new connection are slow on any link: measured after
            // PROBE_SKIP of them (or PROBE_TIME, on a link that slow).
            let confirmed = *confirmed_at.get_or_insert_with(Instant::now);
            let now = sh.received.load(Ordering::Relaxed);
            if now >= plan::PROBE_SKIP || confirmed.elapsed() >= plan::PROBE_TIME || !sh.has_work() {
                probe_from = Some((Instant::now(), now));
            }
        }
        if let (None, Some((at, from))) = (&ramp, probe_from) {
            let now = sh.received.load(Ordering::Relaxed);
            let elapsed = at.elapsed();
            if now - from >= plan::PROBE_BYTES || elapsed >= plan::PROBE_TIME {
                let rate = (now - from) as f64 / elapsed.as_secs_f64().max(1e-3);
                let start = cfg.start_after_probe(rate);
                sh.event(format!(
                    "first connection at {}/s: {start} connection(s), up to {}",
                    crate::units::format_size(rate as u64),
                    cfg.max_connections
                ));
                // One connection on a fast link takes the rest in as few GETs as there are
                // holes (a second connection, if the ramp adds one, splits the running part).
                sh.single.store(start == 1, Ordering::Relaxed);
                ramp = Some(Ramp::after_probe(start, cfg.max_connections, rate));
            }
        }
        let wanted = ramp.as_ref().map_or(1, Ramp::target);
        sh.target.store(wanted, Ordering::Relaxed);
        while sh.running.load(Ordering::Relaxed) < wanted && sh.has_work() {
            // Each connection takes a permit of the client's budget: the first one waits for
            // it, the others are added only while permits are free (retried every tick).
            let permit = match sh.running.load(Ordering::Relaxed) {
                0 => sh.client.connection().await,
                _ => match sh.client.try_connection() {
                    Some(p) => Some(p),
                    None => break,
                },
            };
            sh.running.fetch_add(1, Ordering::Relaxed);
            workers.push(worker(sh, permit));
        }
        if workers.is_empty() {
            break;
        }
        // While the first connection is measured, look again soon.
        let probing = ramp.is_none();
        tokio::select! {
            ended = workers.next() => match ended {
                Some(Ok(())) => {}
                Some(Err(s)) => {
                    stop = Some(s);
                    break;
                }
                None => break,
            },
            _ = tokio::time::sleep(PROBE_POLL), if probing => {}
            _ = tick.tick() => {
                let now = sh.received.load(Ordering::Relaxed);
                progress.advance(now - reported);
                reported = now;
                sh.measure_typical();
                if let Some(ramp) = ramp.as_mut() {
                    judge(sh, ramp, &mut window, now);
                }
            }
        }
        for message in std::mem::take(&mut *lock(&sh.events)) {
            progress.detail(&message);
        }
    }
    // Cancels the parts still running (their unsent bytes are not recorded as held).
    drop(workers);
    if stop.is_none() {
        sh.event(format!(
            "every part received, in {} GET(s)",
            sh.gets.load(Ordering::Relaxed)
        ));
    }
    progress.advance(sh.received.load(Ordering::Relaxed) - reported);
    for message in std::mem::take(&mut *lock(&sh.events)) {
        progress.detail(&message);
    }
    if let Some(Stop::Fallback(why)) = &stop {
        progress.detail(&format!("one plain stream instead of parts: {why}"));
    }
    stop
}

/// A rate window under way: when it opened, the bytes received then and the machine's CPU
/// times then (where they can be read).
type Window = (Instant, u64, Option<(u64, u64)>);

/// The machine's CPU times (`/proc/stat`, Linux; a read of procfs, which never waits on a
/// disk), for telling a saturated CPU from a network limit.
fn cpu_times() -> Option<(u64, u64)> {
    plan::parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Feeds the ramp one rate sample per window. A window opens once every wanted connection is
/// running and has received bytes, and counts only while each of them has work: near the end
/// the rate falls because the parts run out, not because of the connections.
fn judge(sh: &Shared<'_>, ramp: &mut Ramp, window: &mut Option<Window>, now: u64) {
    let target = ramp.target();
    let running = sh.running.load(Ordering::Relaxed);
    let busy = running >= target && sh.has_work();
    if !busy {
        *window = None;
        return;
    }
    let Some((opened, from, cpu_from)) = *window else {
        if sh.flowing.load(Ordering::Relaxed) >= target {
            *window = Some((Instant::now(), now, cpu_times()));
        }
        return;
    };
    let secs = opened.elapsed().as_secs_f64();
    if secs < ramp.window().as_secs_f64() {
        return;
    }
    let rate = (now - from) as f64 / secs;
    let cpu = cpu_times();
    *window = Some((Instant::now(), now, cpu));
    let saturated = matches!((cpu_from, cpu), (Some(a), Some(b)) if plan::cpu_saturated(a, b));
    let settled = ramp.settled();
    if ramp.sample_at(rate, saturated) != target {
        sh.event(format!(
            "{}/s on {target} connection(s): now {}",
            crate::units::format_size(rate as u64),
            ramp.target()
        ));
        // The next window opens when the new number of connections is running.
        *window = None;
    } else if saturated && !settled && ramp.settled() {
        sh.event(format!(
            "{}/s on {target} connection(s), every core busy: no more connections",
            crate::units::format_size(rate as u64)
        ));
    }
}

/// One connection (holding `_permit` of the client's budget): takes parts until there are
/// none, or fewer connections are wanted.
async fn worker(sh: &Shared<'_>, _permit: Option<OwnedSemaphorePermit>) -> Result<(), Stop> {
    let mut flowing = false;
    let result = async {
        loop {
            if sh.leave_if_surplus() {
                return Ok(false);
            }
            let Some(part) = sh.take_work() else {
                return Ok(true);
            };
            let r = fetch_part(sh, &part, &mut flowing).await;
            sh.retire(&part);
            if r? {
                // Left mid-part as a surplus: `running` was already decremented.
                return Ok(false);
            }
        }
    }
    .await;
    if flowing {
        sh.flowing.fetch_sub(1, Ordering::Relaxed);
    }
    match result {
        // Left as a surplus: `running` was already decremented.
        Ok(false) => Ok(()),
        other => {
            sh.running.fetch_sub(1, Ordering::Relaxed);
            other.map(|_| ())
        }
    }
}

/// Fetches one part, retrying it on its own from where it stopped; `true` when its connection
/// left as a surplus (the rest of the part queued again). `flowing`: the connection has
/// received bytes (counted once in [`Shared::flowing`]).
async fn fetch_part(sh: &Shared<'_>, part: &Arc<Part>, flowing: &mut bool) -> Result<bool, Stop> {
    let mut budget = ResumeBudget::new(sh.client.config().transfer_retry(), part.lock().pos);
    loop {
        let (generation, location) = sh.location();
        let error = match get_part(sh, part, &location, flowing).await {
            Ok(GetEnd::Done | GetEnd::Recycled) => return Ok(false),
            Ok(GetEnd::Left) => return Ok(true),
            Err(GetErr::Stop(s)) => return Err(s),
            Err(GetErr::Hub(e)) => e,
        };
        if matches!(error, HubError::Status { status: 403, .. }) {
            match sh.refresh(generation).await {
                Ok(true) => {
                    sh.event("the download location expired (403): resolved the file again".into());
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    return Err(Stop::Failed {
                        error: e,
                        attempts: budget.attempts() + 1,
                    })
                }
            }
        }
        let held = part.lock().pos;
        match budget.after_failure(held, error.is_transient(), error.retry_after()) {
            Some(delay) => {
                let end = part.lock().end;
                sh.event(format!("part {held}-{end}: {error}; again in {delay:?}"));
                tokio::time::sleep(delay).await
            }
            None => {
                return Err(Stop::Failed {
                    error,
                    attempts: budget.attempts(),
                })
            }
        }
    }
}

/// Bytes of one part gathered before a write.
struct Gather<'t> {
    tx: &'t PartTx,
    at: u64,
    buf: Vec<u8>,
}

impl Gather<'_> {
    async fn push(&mut self, at: u64, chunk: Bytes) -> Result<(), GetErr> {
        if self.buf.is_empty() && chunk.len() >= WRITE_CHUNK / 4 {
            return self.send(at, chunk).await;
        }
        if self.buf.is_empty() {
            self.at = at;
            self.buf.reserve(WRITE_CHUNK);
        }
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), GetErr> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        self.send(self.at, data).await
    }

    async fn send(&self, at: u64, data: Bytes) -> Result<(), GetErr> {
        match self.tx.write(at, data).await {
            true => Ok(()),
            false => Err(GetErr::Stop(Stop::Writer)),
        }
    }
}

/// One GET of the rest of a part.
async fn get_part(sh: &Shared<'_>, part: &Arc<Part>, location: &str, flowing: &mut bool) -> Result<GetEnd, GetErr> {
    let (start, end) = {
        let mut s = part.lock();
        s.req_pos = s.pos;
        s.req_started = Instant::now();
        (s.pos, s.end)
    };
    if start >= end {
        return Ok(GetEnd::Done);
    }
    sh.gets.fetch_add(1, Ordering::Relaxed);
    let mut resp = sh.client.get_range(location, start, end).await.map_err(GetErr::Hub)?;
    if let Err(why) = check_ranged_answer(&resp, start, end, sh.req.size) {
        return Err(GetErr::Stop(Stop::Fallback(why)));
    }
    sh.confirmed.store(true, Ordering::Relaxed);
    let mut gather = Gather {
        tx: &sh.tx,
        at: start,
        buf: Vec::new(),
    };
    let result = receive(sh, part, &mut resp, &mut gather, location, flowing).await;
    // Every byte claimed reaches the writer, whatever ended the GET.
    gather.flush().await?;
    result
}

async fn receive(
    sh: &Shared<'_>,
    part: &Arc<Part>,
    resp: &mut Response,
    gather: &mut Gather<'_>,
    location: &str,
    flowing: &mut bool,
) -> Result<GetEnd, GetErr> {
    let mut unreported = 0u64;
    let result = receive_chunks(sh, part, resp, gather, location, &mut unreported, flowing).await;
    sh.received.fetch_add(unreported, Ordering::Relaxed);
    result
}

/// Bytes a part receives between two additions to the shared count (one contended atomic
/// per chunk costs on 2 cores; a paced connection delivers chunks of a few KiB).
const REPORT_EVERY: u64 = 256 << 10;
/// Bytes between two looks at whether this connection is too slow.
const RECYCLE_CHECK_EVERY: u64 = 1 << 20;

async fn receive_chunks(
    sh: &Shared<'_>,
    part: &Arc<Part>,
    resp: &mut Response,
    gather: &mut Gather<'_>,
    location: &str,
    unreported: &mut u64,
    flowing: &mut bool,
) -> Result<GetEnd, GetErr> {
    let window = sh.client.config().read_timeout;
    let (start, end) = {
        let s = part.lock();
        (s.pos, s.end)
    };
    let mut rate = Rate::new(window, Some(end), start);
    let started = Instant::now();
    let mut got = 0u64;
    let mut next_check = plan::RECYCLE_AFTER;
    // One timer for the whole GET, moved only when a stall window ends (not one per chunk).
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let stall = tokio::time::sleep_until(rate.deadline().unwrap_or(far));
    tokio::pin!(stall);
    loop {
        let chunk = tokio::select! {
            biased;
            chunk = resp.chunk() => chunk,
            () = &mut stall, if rate.deadline().is_some() => {
                match rate.window_ended(part.lock().pos) {
                    Ok(()) => {
                        stall.as_mut().reset(rate.deadline().unwrap_or(far));
                        continue;
                    }
                    Err(received) => {
                        return Err(GetErr::Hub(HubError::TooSlow {
                            url: url::redact(location),
                            received,
                            min: MIN_BYTES_PER_WINDOW,
                            window,
                        }))
                    }
                }
            }
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Ok(None) => {
                let s = part.lock();
                return match s.pos >= s.end {
                    true => Ok(GetEnd::Done),
                    false => Err(GetErr::Hub(HubError::Transfer {
                        url: url::redact(location),
                        detail: format!("the part ended at byte {} of {}", s.pos, s.end),
                    })),
                };
            }
            Err(e) => return Err(GetErr::Hub(transport_error(location, &e))),
        };
        // Claim what still belongs to this part (a split may have moved its end).
        let (at, take, finished) = {
            let mut s = part.lock();
            let take = (chunk.len() as u64).min(s.end.saturating_sub(s.pos));
            let at = s.pos;
            s.pos += take;
            (at, take, s.pos >= s.end)
        };
        if take > 0 {
            if !*flowing {
                *flowing = true;
                sh.flowing.fetch_add(1, Ordering::Relaxed);
            }
            let n = usize::try_from(take).unwrap_or(chunk.len());
            gather.push(at, chunk.slice(..n)).await?;
            rate.received(take);
            got += take;
            *unreported += take;
            if *unreported >= REPORT_EVERY {
                sh.received.fetch_add(std::mem::take(unreported), Ordering::Relaxed);
            }
        }
        if finished {
            return Ok(GetEnd::Done);
        }
        if got >= next_check {
            next_check = got + RECYCLE_CHECK_EVERY;
            // Fewer connections wanted (the ramp backed off): one ahead of the others stops now
            // rather than at the end of its part.
            if sh.running.load(Ordering::Relaxed) > sh.target.load(Ordering::Relaxed)
                && sh.is_ahead(part)
                && sh.leave_if_surplus()
            {
                let rest = sh.hand_back(part);
                sh.event(format!(
                    "fewer connections wanted: one left mid-part; bytes {}-{} go to another",
                    rest.0, rest.1
                ));
                return Ok(GetEnd::Left);
            }
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let my_rate = got as f64 / secs;
            sh.note_rate(my_rate);
            let left = sh.recycles_left.load(Ordering::Relaxed);
            let typical = sh.typical();
            if should_recycle(my_rate, got, typical, left)
                && sh
                    .recycles_left
                    .compare_exchange(left, left - 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                // Hand the rest to a new connection; this one is dropped with the answer.
                let rest = sh.hand_back(part);
                sh.event(format!(
                    "a connection at {}/s (typical {}/s) replaced; bytes {}-{} go to a new one",
                    crate::units::format_size(my_rate as u64),
                    crate::units::format_size(typical as u64),
                    rest.0,
                    rest.1
                ));
                return Ok(GetEnd::Recycled);
            }
        }
    }
}

/// Checks that an answer serves exactly `[start, end)` of a file of `size` bytes as a ranged
/// answer should; `Err` says why not (the transfer falls back to one plain stream).
fn check_ranged_answer(resp: &Response, start: u64, end: u64, size: u64) -> Result<(), String> {
    let status = resp.status().as_u16();
    if status != 206 {
        return Err(format!("the server answered a Range request with status {status}"));
    }
    let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
    if !header(ACCEPT_RANGES).is_some_and(|v| v.trim().eq_ignore_ascii_case("bytes")) {
        return Err("the server does not announce Accept-Ranges: bytes".into());
    }
    let range = header(CONTENT_RANGE).unwrap_or("");
    if super::parse_content_range(range) != Some((start, end - 1, Some(size))) {
        return Err(format!(
            "asked for bytes {start}-{} of {size}, the server answered Content-Range {:?}",
            end - 1,
            range
        ));
    }
    if resp.content_length().is_some_and(|n| n != end - start) {
        return Err("the Content-Length of a part does not match its range".into());
    }
    Ok(())
}
