//! What the queriers of a cluster know of each store member, shared by
//! gossip: each querier records its own requests to a member (a latency
//! histogram of answered requests, requests, failures, the last failure),
//! fading with a half-life of [`HALF_LIFE`]; it publishes that record for
//! every member it asked (key `skein.routing`, bounded in size, rewritten at
//! most every few seconds) and adds its peers' records to its own. From the
//! merged view a member that answers far slower than the rest of its group,
//! or fails most requests, is demoted by every querier alike: asked after
//! the others, never hedged to, and probed with a trickle of requests until
//! the view says it recovered.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Buckets of the latency histogram: bucket `i` holds latencies below
/// 64 µs * 2^i (the last one everything above).
pub const BUCKETS: usize = 24;

/// How fast a record fades: its counts halve every this long.
pub const HALF_LIFE: Duration = Duration::from_secs(20);

/// The gossip key of a querier's records.
pub const KEY: &str = "skein.routing";
/// Most members in one querier's published records, and most bytes.
pub const MAX_MEMBERS: usize = 128;
pub const MAX_BYTES: usize = 8 * 1024;

/// A member is demoted when its median latency is this many times the
/// best member's of its group, and at least [`DEMOTE_MIN_GAP`] more.
pub const DEMOTE_RATIO: f64 = 4.0;
pub const DEMOTE_MIN_GAP: Duration = Duration::from_millis(25);
/// ... or when it failed more than this share of at least
/// [`DEMOTE_MIN_FAILING_REQUESTS`] requests (a querier's first requests,
/// on connections still opening, can be slow by bad luck: a few are not
/// enough).
pub const DEMOTE_FAILURE_SHARE: f64 = 0.5;
pub const DEMOTE_MIN_FAILING_REQUESTS: f64 = 8.0;
/// Requests below which a record has no median or failure share.
pub const MIN_REQUESTS: f64 = 4.0;

/// Counts that fade: requests, failures, answered latencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub requests: f64,
    pub failures: f64,
    pub buckets: [f64; BUCKETS],
    /// Unix seconds of the last failure; 0: none known.
    pub last_failure: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            requests: 0.0,
            failures: 0.0,
            buckets: [0.0; BUCKETS],
            last_failure: 0,
        }
    }
}

fn fade(age: Duration) -> f64 {
    (-(age.as_secs_f64() / HALF_LIFE.as_secs_f64())).exp2()
}

pub fn bucket(d: Duration) -> usize {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    let i = (64 - (us >> 6).leading_zeros()) as usize;
    i.min(BUCKETS - 1)
}

fn bucket_bounds(i: usize) -> (f64, f64) {
    let upper = 64e-6 * (1u64 << i) as f64;
    let lower = if i == 0 { 0.0 } else { upper / 2.0 };
    (lower, upper)
}

/// Quantile `q` of power-of-two bucket counts, interpolated linearly within
/// its bucket; `None` below `min_count` observations.
pub fn quantile(counts: &[f64], q: f64, min_count: f64) -> Option<Duration> {
    quantile_within(counts, q, min_count, bucket_bounds)
}

/// Quantile `q` of bucket counts whose bucket `i` spans `bounds(i)`
/// (seconds), interpolated linearly within its bucket; `None` below
/// `min_count` observations.
pub fn quantile_within(
    counts: &[f64],
    q: f64,
    min_count: f64,
    bounds: impl Fn(usize) -> (f64, f64),
) -> Option<Duration> {
    let bucket_bounds = bounds;
    let total: f64 = counts.iter().sum();
    if total < min_count.max(f64::MIN_POSITIVE) {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut seen = 0.0;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0.0 && seen + c >= rank {
            let (lo, hi) = bucket_bounds(i);
            let within = ((rank - seen) / c).clamp(0.0, 1.0);
            return Some(Duration::from_secs_f64(lo + (hi - lo) * within));
        }
        seen += c;
    }
    Some(Duration::from_secs_f64(bucket_bounds(counts.len() - 1).1))
}

impl Counts {
    pub fn median(&self) -> Option<Duration> {
        quantile(&self.buckets, 0.5, MIN_REQUESTS)
    }

    pub fn failure_share(&self) -> Option<f64> {
        (self.requests >= MIN_REQUESTS).then(|| self.failures / self.requests)
    }

    /// Adds `other`, weighted.
    pub fn add(&mut self, other: &Counts, weight: f64) {
        self.requests += other.requests * weight;
        self.failures += other.failures * weight;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b * weight;
        }
        self.last_failure = self.last_failure.max(other.last_failure);
    }

    fn scale(&mut self, f: f64) {
        self.requests *= f;
        self.failures *= f;
        for b in &mut self.buckets {
            *b *= f;
        }
    }

    fn is_empty(&self) -> bool {
        self.requests < 0.5
    }
}

/// One querier's own record of one member, updated per request (not per
/// series), faded as it is read or written.
#[derive(Debug)]
pub struct MemberRecord {
    inner: Mutex<(Instant, Counts)>,
}

impl Default for MemberRecord {
    fn default() -> Self {
        Self {
            inner: Mutex::new((Instant::now(), Counts::default())),
        }
    }
}

impl MemberRecord {
    fn update(&self, f: impl FnOnce(&mut Counts)) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let age = now.saturating_duration_since(g.0);
        if age >= Duration::from_millis(100) {
            g.1.scale(fade(age));
            g.0 = now;
        }
        f(&mut g.1);
    }

    pub fn answered(&self, took: Duration) {
        self.update(|c| {
            c.requests += 1.0;
            c.buckets[bucket(took)] += 1.0;
        });
    }

    pub fn failed(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.update(|c| {
            c.requests += 1.0;
            c.failures += 1.0;
            c.last_failure = now;
        });
    }

    /// The record as of now.
    pub fn counts(&self) -> Counts {
        let mut out = Counts::default();
        self.update(|c| out = c.clone());
        out
    }
}

/// Encodes one querier's records: `endpoint requests failures last_failure
/// bucket:count,...` per member, `;` between members, busiest members first,
/// cut at [`MAX_MEMBERS`] and [`MAX_BYTES`].
pub fn encode(records: &mut [(String, Counts)]) -> String {
    records.sort_by(|a, b| b.1.requests.total_cmp(&a.1.requests));
    let mut out = String::new();
    for (endpoint, c) in records
        .iter()
        .filter(|(_, c)| !c.is_empty())
        .take(MAX_MEMBERS)
    {
        let mut entry = format!(
            "{endpoint} {} {} {} ",
            c.requests.round() as u64,
            c.failures.round() as u64,
            c.last_failure
        );
        let mut first = true;
        for (i, b) in c.buckets.iter().enumerate() {
            let n = b.round() as u64;
            if n > 0 {
                if !first {
                    entry.push(',');
                }
                first = false;
                entry.push_str(&format!("{i}:{n}"));
            }
        }
        if !first || c.failures >= 0.5 {
            if out.len() + entry.len() + 1 > MAX_BYTES {
                break;
            }
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(entry.trim_end());
        }
    }
    out
}

/// Decodes a peer's records; `None` when any part is malformed (the peer is
/// then left out until it publishes something valid).
pub fn decode(v: &str) -> Option<Vec<(String, Counts)>> {
    const MAX_COUNT: u64 = 1 << 40;
    if v.len() > MAX_BYTES {
        return None;
    }
    let mut out = Vec::new();
    for entry in v.split(';').filter(|e| !e.is_empty()) {
        if out.len() >= MAX_MEMBERS {
            return None;
        }
        let mut f = entry.split(' ');
        let endpoint = f.next()?.to_string();
        let requests: u64 = f.next()?.parse().ok()?;
        let failures: u64 = f.next()?.parse().ok()?;
        let last_failure: u64 = f.next()?.parse().ok()?;
        if endpoint.is_empty() || requests > MAX_COUNT || failures > requests {
            return None;
        }
        let mut c = Counts {
            requests: requests as f64,
            failures: failures as f64,
            last_failure,
            ..Counts::default()
        };
        if let Some(h) = f.next() {
            for pair in h.split(',').filter(|p| !p.is_empty()) {
                let (i, n) = pair.split_once(':')?;
                let i: usize = i.parse().ok()?;
                let n: u64 = n.parse().ok()?;
                if i >= BUCKETS || n > MAX_COUNT {
                    return None;
                }
                c.buckets[i] = n as f64;
            }
        }
        if f.next().is_some() {
            return None;
        }
        out.push((endpoint, c));
    }
    Some(out)
}

/// A peer querier's records as last received, and when they changed.
#[derive(Debug, Clone)]
pub struct PeerRecords {
    pub raw: String,
    pub changed: Instant,
    pub records: Vec<(String, Counts)>,
}

impl PeerRecords {
    /// The peer's counts for `endpoint`, faded by the time since they were
    /// published.
    pub fn faded(&self, endpoint: &str, now: Instant) -> Option<Counts> {
        let (_, c) = self.records.iter().find(|(e, _)| e == endpoint)?;
        let mut c = c.clone();
        c.scale(fade(now.saturating_duration_since(self.changed)));
        Some(c)
    }
}

/// The merged view of one member: its own record plus its peers'.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub counts: Counts,
    /// Peers whose records of this member were added.
    pub peers: usize,
}

/// Which of a group's members to demote, from their merged views: those
/// failing most requests, and those far slower than the best. Never all of
/// them: a group that is slow or failing as a whole is left as it is.
pub fn demoted(members: &[&Counts]) -> Vec<bool> {
    let failing: Vec<bool> = members
        .iter()
        .map(|c| {
            c.requests >= DEMOTE_MIN_FAILING_REQUESTS
                && c.failure_share().is_some_and(|s| s > DEMOTE_FAILURE_SHARE)
        })
        .collect();
    let best = members
        .iter()
        .zip(&failing)
        .filter(|(_, f)| !**f)
        .filter_map(|(c, _)| c.median())
        .min();
    let out: Vec<bool> = members
        .iter()
        .zip(&failing)
        .map(|(c, &f)| {
            f || match (c.median(), best) {
                (Some(m), Some(b)) => {
                    m.as_secs_f64() > b.as_secs_f64() * DEMOTE_RATIO && m > b + DEMOTE_MIN_GAP
                }
                _ => false,
            }
        })
        .collect();
    if out.iter().all(|d| *d) {
        return vec![false; out.len()];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(latency_ms: u64, n: usize, failures: usize) -> Counts {
        let mut c = Counts::default();
        for _ in 0..n {
            c.requests += 1.0;
            c.buckets[bucket(Duration::from_millis(latency_ms))] += 1.0;
        }
        c.requests += failures as f64;
        c.failures += failures as f64;
        c
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let mut recs = vec![
            ("10.0.0.1:10901".to_string(), counts(3, 40, 2)),
            ("10.0.0.2:10901".to_string(), counts(600, 10, 0)),
            ("idle:1".to_string(), Counts::default()),
        ];
        let v = encode(&mut recs);
        let back = decode(&v).unwrap();
        assert_eq!(back.len(), 2, "{v}");
        assert_eq!(back[0].0, "10.0.0.1:10901");
        assert_eq!(back[0].1.requests, 42.0);
        assert_eq!(back[0].1.failures, 2.0);
        assert_eq!(back[1].1.median(), recs[1].1.median());
        for bad in [
            "a 1 2 0",
            "a x 0 0",
            "a 1 0 0 99:1",
            "a 1 0 0 1:1 extra",
            "a 1 0 0 1-1",
            " 1 0 0",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(decode(""), Some(vec![]));
    }

    #[test]
    fn published_records_stay_bounded() {
        let mut recs: Vec<(String, Counts)> = (0..1000)
            .map(|i| {
                (
                    format!("store-{i:04}.example.internal:10901"),
                    counts(2, 5, 1),
                )
            })
            .collect();
        let v = encode(&mut recs);
        assert!(v.len() <= MAX_BYTES, "{}", v.len());
        let back = decode(&v).unwrap();
        assert!(
            back.len() <= MAX_MEMBERS && back.len() > 50,
            "{}",
            back.len()
        );
    }

    #[test]
    fn slow_or_failing_members_are_demoted_but_never_a_whole_group() {
        let fast = counts(3, 50, 0);
        let slow = counts(550, 20, 0);
        let stalled = counts(3, 1, 9);
        assert_eq!(demoted(&[&fast, &slow]), [false, true]);
        assert_eq!(demoted(&[&fast, &stalled]), [false, true]);
        // A few milliseconds apart: both stay.
        let a_bit_slower = counts(9, 50, 0);
        assert_eq!(demoted(&[&fast, &a_bit_slower]), [false, false]);
        // The whole group slow, or the whole group failing: nobody.
        let slow2 = counts(600, 20, 0);
        assert_eq!(demoted(&[&slow, &slow2]), [false, false]);
        assert_eq!(demoted(&[&stalled, &stalled]), [false, false]);
        // Too little known: nobody.
        let new = counts(900, 2, 0);
        assert_eq!(demoted(&[&fast, &new]), [false, false]);
        let unlucky_start = counts(3, 1, 3);
        assert_eq!(demoted(&[&fast, &unlucky_start]), [false, false]);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let c = counts(1500, 10, 0);
        let m = c.median().unwrap();
        // 1.5 s lies in the bucket [1.05 s, 2.1 s).
        assert!(
            m > Duration::from_millis(1000) && m < Duration::from_millis(2100),
            "{m:?}"
        );
        assert_eq!(quantile(&[0.0; 4], 0.5, 1.0), None);
    }

    #[test]
    fn peer_records_fade_with_age() {
        let p = PeerRecords {
            raw: String::new(),
            changed: Instant::now(),
            records: vec![("a:1".into(), counts(3, 100, 0))],
        };
        let later = p.changed + HALF_LIFE;
        let c = p.faded("a:1", later).unwrap();
        assert!((c.requests - 50.0).abs() < 0.01, "{}", c.requests);
        assert!(p.faded("b:1", later).is_none());
    }
}
