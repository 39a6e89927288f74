//! Pure planning of ranged transfers: which files get parts, how the bytes still missing are cut
//! into parts, how many connections run ([`Ramp`]), when a slow connection is replaced
//! ([`should_recycle`]) and which running part an idle connection takes half of
//! ([`pick_split`]). Also the set of byte ranges a file holds ([`RangeSet`]) and its on-disk
//! record (untrusted: the final hash covers every byte).
//!
//! Defaults (from `hubcache-bench --wan`, see the README): parts of up to 16 MiB keep the
//! 20 ms per-request latency of the CDN-shaped bench under 5 % of a part at 40 MB/s per
//! connection; they shrink to 4 MiB towards the end of the file ([`next_part`]) so the hash is
//! not left with a long stretch that arrived out of order. The first connection alone is
//! measured for a moment ([`PROBE_BYTES`], [`PROBE_TIME`]): on a fast link one connection is
//! kept (more only cost CPU), on a capped one [`START_CONNECTIONS`] start, judged against that
//! first rate after [`GROW_WINDOW`], and the [`Ramp`] doubles them while the rate follows, up
//! to [`DEFAULT_MAX_CONNECTIONS`]. On 2 cores at 40 MB/s per connection 24 connections are CPU
//! bound (receive, page-cache writes and sha256 share the cores); 32 gained nothing and cost
//! about 15 MiB more.

/// Most connections per file unless `--max-connections` / `HUBCACHE_MAX_CONNECTIONS` say
/// otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 24;
/// Connections a ranged transfer starts with on a link where one connection is slow (the
/// [`Ramp`] adds more while the rate rises).
pub const START_CONNECTIONS: usize = 8;
/// The first connection alone receives this many bytes (or for [`PROBE_TIME`]) before the
/// others start: its rate tells a per-connection cap from a fast link. It is measured after
/// its first [`PROBE_SKIP`] bytes (a new connection's first reads are slow on any link).
pub const PROBE_BYTES: u64 = 2 << 20;
/// Bytes the first connection receives before its rate is measured.
pub const PROBE_SKIP: u64 = 512 << 10;
/// Longest the first connection is measured alone, once it has received [`PROBE_SKIP`] (or
/// this long after its answer's head, on a slow link).
pub const PROBE_TIME: std::time::Duration = std::time::Duration::from_millis(50);
/// A first connection at least this fast (bytes/s) means the link is not what limits the
/// transfer (loopback, a LAN mirror): one connection, more only if the [`Ramp`] finds they help.
pub const FAST_LINK: f64 = 300e6;
/// Files with at least this many bytes still to fetch are fetched in parts.
pub const DEFAULT_RANGED_MIN: u64 = 32 << 20;
/// Largest part the missing bytes are cut into (parts shrink towards the end: [`next_part`]).
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// Smallest part a hole is cut into ([`next_part`]; the last parts of a file).
pub const MIN_PART: u64 = 4 << 20;
/// Smallest range an idle connection takes over from a running part.
pub const MIN_SPLIT: u64 = 2 << 20;
/// Bytes a request must have received before its rate is compared with the others'.
pub const RECYCLE_AFTER: u64 = 2 << 20;
/// A connection slower than this fraction of the fastest one is replaced.
pub const SLOW_FRACTION: f64 = 0.4;

/// How a ranged transfer is shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangedConfig {
    /// Most connections per file (1: never ranged).
    pub max_connections: usize,
    /// Least bytes still to fetch for a ranged transfer.
    pub min_size: u64,
    /// Largest part (parts shrink towards the end of the file: [`next_part`]).
    pub part_size: u64,
    /// A first connection at least this fast (bytes/s) keeps the transfer on one connection
    /// ([`FAST_LINK`]; infinite: always start several).
    pub fast_link: f64,
}

impl Default for RangedConfig {
    fn default() -> Self {
        RangedConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_size: DEFAULT_RANGED_MIN,
            part_size: DEFAULT_PART_SIZE,
            fast_link: FAST_LINK,
        }
    }
}

impl RangedConfig {
    /// Whether a file of `size` bytes, `missing` of them still to fetch, is fetched in parts.
    pub fn use_ranged(&self, size: Option<u64>, missing: u64) -> bool {
        self.max_connections > 1 && size.is_some() && missing >= self.min_size.max(1)
    }

    /// Connections to start with.
    pub fn start_connections(&self) -> usize {
        START_CONNECTIONS.min(self.max_connections).max(1)
    }

    /// Connections to start with after the first one alone received at `probe_rate` bytes/s.
    pub fn start_after_probe(&self, probe_rate: f64) -> usize {
        if probe_rate >= self.fast_link {
            1
        } else {
            self.start_connections()
        }
    }
}

/// Sorted, disjoint, non-adjacent half-open byte ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Adds `[start, end)`, merging with neighbours.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        // First range that ends at or after `start` (it may touch or overlap).
        let i = self.ranges.partition_point(|&(_, re)| re < s);
        let mut j = i;
        while j < self.ranges.len() && self.ranges[j].0 <= e {
            s = s.min(self.ranges[j].0);
            e = e.max(self.ranges[j].1);
            j += 1;
        }
        self.ranges.splice(i..j, [(s, e)]);
    }

    /// Where the run of held bytes that contains `at` ends (`at` itself if `at` is not held).
    pub fn contiguous_from(&self, at: u64) -> u64 {
        let i = self.ranges.partition_point(|&(_, e)| e <= at);
        match self.ranges.get(i) {
            Some(&(s, e)) if s <= at => e,
            _ => at,
        }
    }

    /// Bytes held.
    pub fn covered(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// The holes of a file of `size` bytes.
    pub fn missing(&self, size: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.ranges {
            if s >= size {
                break;
            }
            if s > at {
                out.push((at, s));
            }
            at = at.max(e);
        }
        if at < size {
            out.push((at, size));
        }
        out
    }

    /// The record written beside a parts file: a header naming the size, one `start-end` line
    /// per range.
    pub fn encode(&self, size: u64) -> String {
        let mut s = format!("hubcache-parts 1\nsize {size}\n");
        for (a, b) in &self.ranges {
            s.push_str(&format!("{a}-{b}\n"));
        }
        s
    }

    /// Parses a record for a file of `size` bytes; `None` unless it is well-formed, for this
    /// size, and its ranges are in order and within the file. Still untrusted: the bytes are
    /// checked by the final hash.
    pub fn decode(text: &str, size: u64) -> Option<RangeSet> {
        let mut lines = text.lines();
        if lines.next()? != "hubcache-parts 1" {
            return None;
        }
        let recorded: u64 = lines.next()?.strip_prefix("size ")?.parse().ok()?;
        if recorded != size {
            return None;
        }
        let mut set = RangeSet::new();
        let mut last_end = 0;
        for line in lines {
            let (a, b) = line.split_once('-')?;
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if a < last_end || a >= b || b > size {
                return None;
            }
            last_end = b;
            set.insert(a, b);
        }
        Some(set)
    }
}

/// Bytes the next part takes from the front of a queued hole of `hole` bytes, when `queued`
/// bytes are queued in all and `connections` run (guided scheduling): half of one
/// connection's share of what is queued, between [`MIN_PART`] and `max_part`. Parts shrink
/// towards the end of the file, so the last ones finish close together and the hash is not
/// left with a long stretch that arrived out of order. One connection takes the whole hole
/// (as few GETs as there are holes); a remainder smaller than half a [`MIN_PART`] is not
/// left behind.
pub fn next_part(hole: u64, queued: u64, connections: usize, max_part: u64) -> u64 {
    if connections <= 1 {
        return hole;
    }
    let max_part = max_part.max(1);
    let min_part = MIN_PART.min(max_part);
    let share = queued / (2 * connections as u64);
    let take = share.clamp(min_part, max_part);
    if hole.saturating_sub(take) < min_part / 2 {
        hole
    } else {
        take
    }
}

/// A running part as [`pick_split`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartView {
    /// Next byte it will receive.
    pub pos: u64,
    /// End of its range (exclusive).
    pub end: u64,
    /// Its rate so far in bytes per second (0: not measured yet).
    pub rate: f64,
}

/// The running part an idle connection should take a share of, and where to cut it: the part
/// that will take longest to finish, cut so both sides finish together if the new connection is
/// as fast as the fastest one seen (`expected_rate`). `None` when no part has at least
/// `2 ×` [`MIN_SPLIT`] left, or the share would be smaller than [`MIN_SPLIT`].
pub fn pick_split(parts: &[PartView], expected_rate: f64) -> Option<(usize, u64)> {
    let time_left = |p: &PartView| {
        let left = p.end.saturating_sub(p.pos) as f64;
        if p.rate > 0.0 {
            left / p.rate
        } else {
            // Not measured yet: as slow as can be, but ordered by size.
            f64::MAX / 2.0 + left
        }
    };
    let (i, p) = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.end.saturating_sub(p.pos) >= 2 * MIN_SPLIT)
        .max_by(|a, b| time_left(a.1).total_cmp(&time_left(b.1)))?;
    let left = p.end - p.pos;
    let keep_fraction = if p.rate > 0.0 && expected_rate > 0.0 {
        p.rate / (p.rate + expected_rate)
    } else {
        0.5
    };
    let keep = ((left as f64 * keep_fraction) as u64).clamp(MIN_SPLIT.min(left), left - MIN_SPLIT);
    Some((i, p.pos + keep))
}

/// Whether a connection receiving at `rate` (after `received` bytes of its request) should be
/// dropped for a new one, when a good connection of the file gets `typical` ([`typical_rate`]):
/// on a CDN, a new connection often lands on a faster edge. Connections slowed alike (a shared
/// bottleneck, the CPU) are never recycled.
pub fn should_recycle(rate: f64, received: u64, typical: f64, recycles_left: u32) -> bool {
    recycles_left > 0 && received >= RECYCLE_AFTER && typical > 0.0 && rate < typical * SLOW_FRACTION
}

/// Running parts measured before a typical rate is judged.
const TYPICAL_MIN_PARTS: usize = 4;

/// What a good connection gets now: the upper quartile of the measured rates (0: fewer than
/// four measured). The upper quartile, not the median: when most edges are slow, the median is
/// a slow one.
pub fn typical_rate(rates: &[f64]) -> f64 {
    let mut measured: Vec<f64> = rates.iter().copied().filter(|r| *r > 0.0).collect();
    if measured.len() < TYPICAL_MIN_PARTS {
        return 0.0;
    }
    measured.sort_by(f64::total_cmp);
    measured[measured.len() * 3 / 4]
}

/// Below this share of idle CPU over a window, the machine's CPU is saturated.
pub const SATURATED_IDLE: f64 = 0.05;

/// The machine's CPU time from the first line of `/proc/stat`: (idle, total) in clock ticks
/// (idle counts iowait too).
pub fn parse_cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    // guest time is already counted in user time.
    let total: u64 = fields.iter().take(8).sum();
    Some((idle, total))
}

/// Whether the CPU was saturated between two [`parse_cpu_times`] readings: every core busy
/// (less than [`SATURATED_IDLE`] idle), so more connections cannot raise the rate.
pub fn cpu_saturated(before: (u64, u64), after: (u64, u64)) -> bool {
    let idle = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    total > 0.0 && idle / total < SATURATED_IDLE
}

/// How many recycles a file may make: enough to draw a new edge a few times per connection.
pub fn recycle_budget(max_connections: usize) -> u32 {
    u32::try_from(max_connections.saturating_mul(4)).unwrap_or(u32::MAX)
}

/// The connection count controller: starts small, grows while the aggregate rate rises, goes
/// back one step when a step did not pay (more connections cost CPU for nothing), and backs off
/// when the rate falls (a CDN node that collapses under many streams). Fed one aggregate rate
/// sample per window ([`Ramp::window`]), each taken while every wanted connection was receiving.
#[derive(Debug, Clone, PartialEq)]
pub struct Ramp {
    target: usize,
    /// The target before the last step (where a step that did not pay goes back to).
    previous: usize,
    min: usize,
    max: usize,
    /// Best sample at the current target (what a fall is judged against), the sum of its
    /// samples (a step is judged by their mean: one lucky burst must not buy connections), and
    /// the mean at the target before.
    best: f64,
    sum: f64,
    before: f64,
    /// Samples taken at the current target.
    samples: u32,
    /// Samples in a row below a fall.
    low: u32,
    /// No more growth (a plateau or a fall was seen).
    settled: bool,
    /// Windows are [`GROW_WINDOW`] while growing (connections capped one by one show it at
    /// once), else [`SETTLED_WINDOW`].
    quick: bool,
}

/// Samples taken at one target before it is judged, unless the first one already shows a
/// clear gain.
const SAMPLES_PER_STEP: u32 = 2;
/// A first sample this much above the rate before is judged at once.
const CLEAR_GAIN: f64 = 1.5;
/// A step that raised the rate by less than this factor is a plateau.
const GAIN: f64 = 1.15;
/// A rate below this fraction of the best is low; [`FALL_SAMPLES`] low samples in a row are a
/// fall (one slow window is noise: a busy CPU, a page-cache hiccup).
const FALL: f64 = 0.6;
/// Low samples in a row that make a fall.
const FALL_SAMPLES: u32 = 2;
/// A sample window while the ramp grows from a capped first connection: short, so the
/// connections a capped link needs are all running within a few tenths of a second.
pub const GROW_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);
/// A sample window otherwise: once settled (only falls are watched), and on a fast link, where
/// a second connection must show a gain over longer windows (less noise) to stay.
pub const SETTLED_WINDOW: std::time::Duration = std::time::Duration::from_millis(250);

impl Ramp {
    /// A controller starting at `start` connections, never above `max`.
    pub fn new(start: usize, max: usize) -> Ramp {
        let max = max.max(1);
        let start = start.clamp(1, max);
        Ramp {
            target: start,
            previous: start,
            min: start,
            max,
            best: 0.0,
            sum: 0.0,
            before: 0.0,
            samples: 0,
            low: 0,
            settled: start == max,
            quick: false,
        }
    }

    /// A controller starting at `start` connections after one connection alone received at
    /// `probe_rate` bytes/s: the first step is judged against that rate, so connections capped
    /// one by one (the rate grows with their number) double after one window.
    pub fn after_probe(start: usize, max: usize, probe_rate: f64) -> Ramp {
        let mut ramp = Ramp::new(start, max);
        if probe_rate > 0.0 && ramp.target > 1 {
            ramp.before = probe_rate;
            ramp.previous = 1;
            ramp.quick = true;
        }
        ramp
    }

    /// Connections wanted now.
    pub fn target(&self) -> usize {
        self.target
    }

    /// Whether the ramp has stopped growing.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// How long the next sample window lasts.
    pub fn window(&self) -> std::time::Duration {
        if self.quick && !self.settled {
            GROW_WINDOW
        } else {
            SETTLED_WINDOW
        }
    }

    /// Records the aggregate rate of the last window (bytes/s); returns the new target.
    pub fn sample(&mut self, rate: f64) -> usize {
        self.sample_at(rate, false)
    }

    /// As [`Ramp::sample`], knowing whether the machine's CPU was saturated over the window
    /// ([`cpu_saturated`]): then more connections cannot raise the rate, only cost CPU, and a
    /// step up is not taken (the ramp settles where it is).
    pub fn sample_at(&mut self, rate: f64, saturated: bool) -> usize {
        self.samples += 1;
        let reference = self.best.max(self.before);
        if reference > 0.0 && rate < reference * FALL && self.target > self.min {
            self.low += 1;
            if self.low >= FALL_SAMPLES {
                // Falling: back off by a quarter and stop growing.
                self.target = (self.target * 3 / 4).max(self.min);
                self.settled = true;
                self.best = rate;
                self.sum = 0.0;
                self.before = 0.0;
                self.samples = 0;
                self.low = 0;
                return self.target;
            }
        } else {
            self.low = 0;
        }
        self.best = self.best.max(rate);
        self.sum += rate;
        if self.settled {
            return self.target;
        }
        let mean = self.sum / f64::from(self.samples);
        let first_step = self.before == 0.0;
        let clear = !first_step && mean >= self.before * CLEAR_GAIN;
        if self.samples < SAMPLES_PER_STEP && !clear {
            return self.target;
        }
        if !first_step && mean < self.before * GAIN {
            // The last step did not pay: go back to where it started, and stay.
            self.target = self.previous;
            self.settled = true;
            return self.target;
        }
        if saturated {
            self.settled = true;
            return self.target;
        }
        self.before = mean;
        self.previous = self.target;
        self.target = (self.target * 2).min(self.max);
        self.settled = self.target == self.max;
        self.samples = 0;
        self.best = 0.0;
        self.sum = 0.0;
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_and_finds_holes() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(0, 5);
        assert_eq!(s.ranges(), &[(0, 5), (10, 20), (30, 40)]);
        assert_eq!(s.missing(50), vec![(5, 10), (20, 30), (40, 50)]);
        s.insert(20, 30);
        assert_eq!(s.ranges(), &[(0, 5), (10, 40)], "adjacent ranges merge");
        s.insert(3, 12);
        assert_eq!(s.ranges(), &[(0, 40)]);
        assert_eq!(s.contiguous_from(0), 40);
        assert_eq!(s.contiguous_from(40), 40);
        assert_eq!(s.contiguous_from(17), 40);
        assert_eq!(s.covered(), 40);
        s.insert(45, 45);
        assert_eq!(s.ranges(), &[(0, 40)], "empty ranges are ignored");
        assert_eq!(s.missing(40), vec![]);
        assert_eq!(RangeSet::new().missing(7), vec![(0, 7)]);
        assert_eq!(RangeSet::new().contiguous_from(0), 0);
    }

    #[test]
    fn record_round_trips_and_rejects_nonsense() {
        let mut s = RangeSet::new();
        s.insert(0, 100);
        s.insert(200, 300);
        let text = s.encode(1000);
        assert_eq!(RangeSet::decode(&text, 1000), Some(s.clone()));
        assert_eq!(RangeSet::decode(&text, 999), None, "another size");
        for bad in [
            "",
            "hubcache-parts 2\nsize 1000\n",
            "hubcache-parts 1\nsize 1000\n5-5\n",
            "hubcache-parts 1\nsize 1000\n0-1001\n",
            "hubcache-parts 1\nsize 1000\n50-60\n10-20\n",
            "hubcache-parts 1\nsize 1000\nx-y\n",
            "hubcache-parts 1\nsize x\n",
        ] {
            assert_eq!(RangeSet::decode(bad, 1000), None, "{bad:?}");
        }
        assert_eq!(RangeSet::decode("hubcache-parts 1\nsize 9\n", 9), Some(RangeSet::new()));
    }

    #[test]
    fn parts_shrink_towards_the_end() {
        let mib = 1u64 << 20;
        // Early on, 16 connections with 1 GiB queued: the largest part.
        assert_eq!(next_part(1024 * mib, 1024 * mib, 16, 16 * mib), 16 * mib);
        // Half of each connection's share of what is left.
        assert_eq!(next_part(1024 * mib, 256 * mib, 16, 16 * mib), 8 * mib);
        // Never below the smallest part, nor above the hole.
        assert_eq!(next_part(100 * mib, 40 * mib, 16, 16 * mib), MIN_PART);
        assert_eq!(next_part(3 * mib, 3 * mib, 16, 16 * mib), 3 * mib);
        // A sliver is not left behind.
        assert_eq!(next_part(MIN_PART + 1, 64 * mib, 16, 16 * mib), MIN_PART + 1);
        // One connection: the whole hole in one GET.
        assert_eq!(next_part(900 * mib, 900 * mib, 1, 16 * mib), 900 * mib);
        // Parts smaller than the smallest part when the largest is smaller still (tests).
        assert_eq!(next_part(12 * mib, 12 * mib, 4, mib), mib);
    }

    #[test]
    fn ranged_only_for_large_known_sizes() {
        let c = RangedConfig::default();
        assert!(c.use_ranged(Some(1 << 30), 1 << 30));
        assert!(!c.use_ranged(None, 1 << 30), "unknown size");
        assert!(!c.use_ranged(Some(1 << 30), 1 << 20), "little left to fetch");
        let one = RangedConfig {
            max_connections: 1,
            ..c
        };
        assert!(!one.use_ranged(Some(1 << 30), 1 << 30));
        assert_eq!(one.start_connections(), 1);
        assert_eq!(c.start_connections(), START_CONNECTIONS);
    }

    #[test]
    fn idle_connection_takes_from_the_slowest_part() {
        let mib = 1u64 << 20;
        let parts = [
            PartView {
                pos: 0,
                end: 16 * mib,
                rate: 60e6,
            },
            PartView {
                pos: 16 * mib,
                end: 32 * mib,
                rate: 8e6,
            },
            PartView {
                pos: 32 * mib,
                end: 33 * mib,
                rate: 1.0,
            },
        ];
        let (i, at) = pick_split(&parts, 60e6).unwrap();
        assert_eq!(i, 1, "the slow part, not the nearly done one");
        // The slow side keeps about 8/68 of what is left.
        let kept = at - 16 * mib;
        assert!(kept >= MIN_SPLIT && kept < 3 * mib, "{kept}");
        // Unmeasured rates split in half.
        let fresh = [PartView {
            pos: 0,
            end: 10 * mib,
            rate: 0.0,
        }];
        assert_eq!(pick_split(&fresh, 0.0), Some((0, 5 * mib)));
        // Too little left anywhere.
        let small = [PartView {
            pos: 0,
            end: 2 * MIN_SPLIT - 1,
            rate: 1.0,
        }];
        assert_eq!(pick_split(&small, 1e9), None);
        assert_eq!(pick_split(&[], 1e9), None);
    }

    #[test]
    fn the_typical_rate_is_the_upper_quartile() {
        assert_eq!(typical_rate(&[1.0, 2.0, 3.0]), 0.0, "too few measured");
        assert_eq!(
            typical_rate(&[0.0, 0.0, 5.0, 6.0, 7.0]),
            0.0,
            "unmeasured parts do not count"
        );
        // CloudFront: 11 slow edges, 5 fast ones: a good connection is a fast one.
        let mut edges = vec![8.7e6; 11];
        edges.extend([68e6; 5]);
        assert_eq!(typical_rate(&edges), 68e6);
        // A shared bottleneck slows them all alike: nobody is far below typical.
        let alike = [14e6, 15e6, 16e6, 17e6, 13e6, 15e6];
        let t = typical_rate(&alike);
        assert!(alike.iter().all(|r| !should_recycle(*r, RECYCLE_AFTER, t, 5)));
    }

    #[test]
    fn slow_connections_are_recycled_within_budget() {
        assert!(should_recycle(8.7e6, RECYCLE_AFTER, 68e6, 1));
        assert!(!should_recycle(8.7e6, RECYCLE_AFTER, 68e6, 0), "budget spent");
        assert!(!should_recycle(8.7e6, RECYCLE_AFTER - 1, 68e6, 5), "too early to tell");
        assert!(!should_recycle(40e6, RECYCLE_AFTER, 42e6, 5), "all alike");
        assert!(!should_recycle(1.0, RECYCLE_AFTER, 0.0, 5), "nothing to compare with");
        assert_eq!(recycle_budget(16), 64);
    }

    #[test]
    fn ramp_grows_while_the_rate_rises_then_settles() {
        let mut r = Ramp::new(4, 16);
        assert_eq!(r.target(), 4);
        // Per-connection caps: the rate doubles with the connections.
        assert_eq!(r.sample(100.0), 4, "warm-up sample");
        assert_eq!(r.sample(160.0), 8);
        assert_eq!(r.sample(300.0), 16, "a clear gain is judged on the first sample");
        assert_eq!(r.sample(640.0), 16, "at the maximum");
        assert_eq!(r.sample(650.0), 16);
        // A gain that is not clear at first waits for the second sample.
        let mut r = Ramp::new(4, 16);
        r.sample(100.0);
        assert_eq!(r.sample(100.0), 8);
        assert_eq!(r.sample(130.0), 8, "not clear yet");
        assert_eq!(r.sample(140.0), 16, "a mean gain of 35 %");
        // One lucky burst among flat samples does not buy connections.
        let mut r = Ramp::new(1, 16);
        r.sample(900.0);
        assert_eq!(r.sample(900.0), 2);
        r.sample(1100.0);
        assert_eq!(r.sample(850.0), 1, "a mean of 975 is no 15 % gain over 900");
    }

    #[test]
    fn ramp_goes_back_on_a_plateau_and_backs_off_on_a_fall() {
        // CPU-bound: more connections do not help, go back to 4 and stay.
        let mut r = Ramp::new(4, 16);
        r.sample(500.0);
        assert_eq!(r.sample(500.0), 8);
        r.sample(510.0);
        assert_eq!(r.sample(520.0), 4, "plateau: back to where the step started");
        assert_eq!(r.sample(530.0), 4);
        assert_eq!(r.sample(900.0), 4, "settled: no more growth");
        // From one connection on a fast link: one more does not pay, so one it is.
        let mut r = Ramp::new(1, 16);
        r.sample(1000.0);
        assert_eq!(r.sample(1000.0), 2);
        r.sample(1050.0);
        assert_eq!(r.sample(1050.0), 1);
        // A node that collapses under many streams: back off, never below the start.
        let mut r = Ramp::new(4, 64);
        r.sample(300.0);
        assert_eq!(r.sample(300.0), 8);
        r.sample(400.0);
        assert_eq!(r.sample(600.0), 16);
        assert_eq!(r.sample(100.0), 16, "one low sample is noise");
        assert_eq!(r.sample(100.0), 12, "a fall: back off a quarter");
        assert_eq!(r.sample(50.0), 12);
        assert_eq!(r.sample(40.0), 9);
        r.sample(20.0);
        assert_eq!(r.sample(20.0), 6);
        r.sample(5.0);
        assert_eq!(r.sample(5.0), 4);
        r.sample(1.0);
        assert_eq!(r.sample(1.0), 4, "never below the start");
        assert_eq!(r.sample(1000.0), 4, "settled: no more growth");
        assert_eq!(Ramp::new(8, 2).target(), 2);
        // A low sample between good ones is forgotten.
        let mut r = Ramp::new(16, 16);
        r.sample(600.0);
        r.sample(300.0);
        r.sample(600.0);
        assert_eq!(r.sample(300.0), 16, "two low samples, not in a row");
    }

    #[test]
    fn a_saturated_cpu_holds_the_ramp_where_it_is() {
        let mut r = Ramp::new(1, 24);
        r.sample_at(900e6, true);
        assert_eq!(r.sample_at(900e6, true), 1, "no second connection on a busy machine");
        assert_eq!(r.window(), SETTLED_WINDOW);
        assert_eq!(r.sample_at(2000e6, false), 1, "settled");
        // Capped connections grow until the CPU is the limit.
        let mut r = Ramp::after_probe(8, 32, 40e6);
        assert_eq!(r.sample_at(300e6, false), 16);
        assert_eq!(r.sample_at(600e6, true), 16);
        assert_eq!(r.window(), SETTLED_WINDOW);
    }

    #[test]
    fn cpu_times_come_from_proc_stat() {
        let stat = "cpu  361406 47610 64070 293915 1268 0 3432 765 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let (idle, total) = parse_cpu_times(stat).unwrap();
        assert_eq!(idle, 293915 + 1268);
        assert_eq!(total, 361406 + 47610 + 64070 + 293915 + 1268 + 3432 + 765);
        assert_eq!(parse_cpu_times("intr 1 2 3"), None);
        assert_eq!(parse_cpu_times("cpu  x y"), None);
        assert_eq!(parse_cpu_times(""), None);
        assert!(cpu_saturated((100, 1000), (102, 1200)), "1 % idle");
        assert!(!cpu_saturated((100, 1000), (150, 1200)), "25 % idle");
        assert!(!cpu_saturated((100, 1000), (100, 1000)), "no time passed");
    }

    #[test]
    fn after_the_probe_the_first_step_is_judged_against_one_connection() {
        // Capped connections: 8 get about 8 × the first one's rate, so 16 after one window.
        let mut r = Ramp::after_probe(8, 24, 40e6);
        assert_eq!(r.window(), GROW_WINDOW);
        assert_eq!(r.sample(300e6), 16, "a clear gain over one connection");
        assert_eq!(r.sample(620e6), 24, "and again");
        assert_eq!(r.window(), SETTLED_WINDOW, "at the maximum");
        // A link that one connection already fills: 8 do not pay, back to one.
        let mut r = Ramp::after_probe(8, 24, 200e6);
        assert_eq!(r.sample(210e6), 8, "not clear yet");
        assert_eq!(r.sample(205e6), 1, "no gain over one connection");
        // A fast link starts (and stays judged) as before, over longer windows.
        let r = Ramp::after_probe(1, 24, 900e6);
        assert_eq!(r, Ramp::new(1, 24));
        assert_eq!(r.window(), SETTLED_WINDOW);
    }

    #[test]
    fn the_first_connection_tells_a_capped_link_from_a_fast_one() {
        let c = RangedConfig::default();
        assert_eq!(c.start_after_probe(40e6), START_CONNECTIONS);
        assert_eq!(c.start_after_probe(8.7e6), START_CONNECTIONS);
        assert_eq!(c.start_after_probe(900e6), 1);
        let two = RangedConfig {
            max_connections: 2,
            ..c
        };
        assert_eq!(two.start_after_probe(40e6), 2);
        let never = RangedConfig {
            fast_link: f64::INFINITY,
            ..c
        };
        assert_eq!(never.start_after_probe(900e6), START_CONNECTIONS);
    }
}
