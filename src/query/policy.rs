//! What routing knows of members and groups, shared lock-free between the
//! actors that check health and the requests that route: a member's health,
//! its requests in flight and latency estimate, and a group's latency
//! histogram for the adaptive hedge delay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::{PARTIAL_RESPONSES_TOTAL, STORE_ERRORS_TOTAL};
use crate::store::{PartialResponse, StoreError};

/// What a member's error means for the request, decided in this one place
/// for Series and label calls, groups and SOURCE members alike.
#[derive(Debug)]
pub enum OnError {
    /// Another member would give the same answer (a limit, a bad request):
    /// the request ends with this error, naming the store, whatever the
    /// partial-response strategy.
    End(StoreError),
    /// The member is unavailable, slow or broke the protocol: ask the next
    /// one; this describes the failure, naming the member, for the warning
    /// or error given if no member answers.
    Next(String),
}

/// Classifies a member's error (and counts it).
pub fn on_member_error(endpoint: &str, e: StoreError) -> OnError {
    metrics::counter!(STORE_ERRORS_TOTAL, "code" => e.code().as_str()).increment(1);
    if !e.is_retryable() {
        let named = |msg: String| format!("store {endpoint}: {msg}");
        return OnError::End(match e {
            StoreError::LimitExceeded(msg) => StoreError::LimitExceeded(named(msg)),
            StoreError::InvalidArgument(msg) => StoreError::InvalidArgument(named(msg)),
            StoreError::Matcher(e) => StoreError::InvalidArgument(named(e.to_string())),
            // Errors from a peer name it already.
            other => other,
        });
    }
    let e = e.to_string();
    OnError::Next(if e.contains(endpoint) {
        e
    } else {
        format!("{endpoint}: {e}")
    })
}

/// Data that is missing from an answer (a group no member answered for, a
/// SOURCE member that failed): a warning that says so under
/// `PartialResponse::Warn`, the request's error under `Abort`.
pub fn on_missing(
    policy: PartialResponse,
    peer: &str,
    message: String,
) -> Result<String, StoreError> {
    match policy {
        PartialResponse::Warn => {
            metrics::counter!(PARTIAL_RESPONSES_TOTAL, "kind" => "warning").increment(1);
            Ok(message)
        }
        PartialResponse::Abort => {
            metrics::counter!(PARTIAL_RESPONSES_TOTAL, "kind" => "error").increment(1);
            Err(StoreError::Unavailable {
                peer: peer.to_string(),
                message,
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not checked yet.
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Numbers the query path updates on every request, shared without
/// messages: requests in flight and a latency estimate.
#[derive(Debug, Default)]
pub struct PeerStats {
    in_flight: AtomicU64,
    /// Exponentially weighted moving average, in microseconds, as of
    /// `updated_us`.
    latency_ewma_us: AtomicU64,
    /// When the average last took a sample, in microseconds since
    /// [`stats_epoch`].
    updated_us: AtomicU64,
    /// Series requests of queries this peer answered, and when it last
    /// did (ms since the Unix epoch; 0: never).
    answers: AtomicU64,
    last_answer_ms: AtomicU64,
    /// Requests of queries sent to the peer (probes included), and probes.
    requests: AtomicU64,
    probes: AtomicU64,
    /// This querier's own record of the peer's answers and failures, the
    /// part of the shared view it publishes.
    pub record: super::view::MemberRecord,
    /// Demoted by the shared view (see [`super::view`]).
    demoted: std::sync::atomic::AtomicBool,
    /// When the last probe of the demoted peer was sent (µs since
    /// [`stats_epoch`]), and whether one is out.
    last_probe_us: AtomicU64,
    probing: std::sync::atomic::AtomicBool,
    /// The merged view as of the last update, for the cluster pages.
    merged: std::sync::Mutex<Option<super::view::Merged>>,
}

/// How fast a latency estimate fades while no sample comes in: it halves
/// every this many microseconds. A peer that lost hedges (each counted with
/// a penalty) and is then left alone becomes cheap again within seconds, so
/// a request finds out whether it recovered; a peer that keeps answering
/// keeps its estimate current.
const LATENCY_HALF_LIFE_US: f64 = 1_000_000.0;

/// The process-wide origin of [`PeerStats`] timestamps.
fn stats_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    u64::try_from(stats_epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl PeerStats {
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency estimate now: the average, faded by the time since its
    /// last sample.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.decayed_us(now_us()))
    }

    fn decayed_us(&self, now: u64) -> u64 {
        let ewma = self.latency_ewma_us.load(Ordering::Relaxed);
        let age = now.saturating_sub(self.updated_us.load(Ordering::Relaxed));
        if ewma == 0 || age == 0 {
            return ewma;
        }
        (ewma as f64 * (-(age as f64) / LATENCY_HALF_LIFE_US).exp2()) as u64
    }

    /// Counts a request in flight until the guard is dropped, so canceled
    /// requests are counted out too. A request dropped before the peer
    /// answered is recorded as `elapsed + unanswered_penalty`: the peer was
    /// at least that slow, and the penalty steers routing away from a peer
    /// that keeps losing hedges until health checks bring its estimate down.
    pub fn begin(self: &Arc<Self>, unanswered_penalty: Duration) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: self.clone(),
            start: Instant::now(),
            answered: false,
            penalty: unanswered_penalty,
            race: None,
        }
    }

    /// Notes that the peer started answering a query's request.
    pub fn answered_query(&self) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_answer_ms.store(now, Ordering::Relaxed);
    }

    /// Queries' requests the peer answered, and when it last did.
    pub fn answers(&self) -> (u64, Option<std::time::SystemTime>) {
        let last = self.last_answer_ms.load(Ordering::Relaxed);
        (
            self.answers.load(Ordering::Relaxed),
            (last > 0).then(|| std::time::UNIX_EPOCH + Duration::from_millis(last)),
        )
    }

    /// Requests of queries sent to the peer.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Probes sent to the peer while it was demoted.
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    pub fn demoted(&self) -> bool {
        self.demoted.load(Ordering::Relaxed)
    }

    /// Sets the shared view's verdict; returns the previous one.
    pub fn set_demoted(&self, demoted: bool) -> bool {
        self.demoted.swap(demoted, Ordering::Relaxed)
    }

    /// Claims the next probe of a demoted peer: at most one out at a time,
    /// and at most one per `interval`. Release it with [`Self::probe_done`].
    pub fn claim_probe(&self, interval: Duration) -> bool {
        let now = now_us();
        let last = self.last_probe_us.load(Ordering::Relaxed);
        let interval = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < interval {
            return false;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.last_probe_us.store(now.max(1), Ordering::Relaxed);
        self.probes.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn probe_done(&self) {
        self.probing.store(false, Ordering::Release);
    }

    pub fn set_merged(&self, m: super::view::Merged) {
        *self.merged.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
    }

    /// The merged view as of its last update.
    pub fn merged(&self) -> Option<super::view::Merged> {
        self.merged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Routing cost: the latency estimate scaled by the requests in flight.
    pub fn cost(&self) -> u128 {
        let latency = self.decayed_us(now_us()).max(1);
        u128::from(latency) * u128::from(self.in_flight() + 1)
    }

    /// Forgets the estimate: what was learnt before no longer describes the
    /// peer (it was unreachable and is back). Until the next sample sets it
    /// afresh, the peer costs least, so the next request finds out.
    pub fn reset_latency(&self) {
        self.latency_ewma_us.store(0, Ordering::Relaxed);
        self.updated_us.store(now_us(), Ordering::Relaxed);
    }

    /// Folds a sample into the (faded) average with weight 1/8. The two
    /// fields are updated one after the other; a racing reader sees one
    /// estimate or the other, which routing tolerates.
    pub fn observe_latency(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let now = now_us();
        let old = self.decayed_us(now);
        let new = if old == 0 {
            sample.max(1)
        } else {
            old - old / 8 + sample / 8
        };
        self.latency_ewma_us.store(new, Ordering::Relaxed);
        self.updated_us.store(now, Ordering::Relaxed);
    }
}

/// The requests one call sends to members of a group (primary, hedges,
/// fallbacks): how long the first answer took, so that the requests
/// canceled because of it know whether they lost a fair race or were
/// overtaken while stuck.
#[derive(Debug, Default)]
pub struct Race {
    /// µs the first answer took, plus one; 0 while none came.
    first_answer_us: AtomicU64,
}

impl Race {
    fn answered(&self, took: Duration) {
        let us = u64::try_from(took.as_micros())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let _ = self
            .first_answer_us
            .compare_exchange(0, us, Ordering::AcqRel, Ordering::Relaxed);
    }

    fn first_answer(&self) -> Option<Duration> {
        match self.first_answer_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(Duration::from_micros(us - 1)),
        }
    }
}

/// Whether a request canceled after `waited` was clearly slower than the
/// answer that won in `won`: twice as slow and at least 10 ms more. A hedge
/// sent later that lost, or one of two requests sent at once in race mode,
/// is not: losing says nothing against its member.
fn overtaken(waited: Duration, won: Duration) -> bool {
    waited > won * 2 && waited > won + Duration::from_millis(10)
}

/// A request in flight to a peer; see [`PeerStats::begin`].
pub struct InFlight {
    stats: Arc<PeerStats>,
    start: Instant,
    answered: bool,
    penalty: Duration,
    race: Option<Arc<Race>>,
}

impl InFlight {
    /// Makes the request one of a call's requests: when it is canceled
    /// because another answered first, it counts against its member only
    /// if that answer overtook it ([`overtaken`]).
    pub fn in_race(mut self, race: Option<Arc<Race>>) -> Self {
        self.race = race;
        self
    }

    /// Records that the peer started answering; returns how long it took.
    pub fn answered(&mut self) -> Duration {
        let took = self.answered_unused();
        if let Some(r) = &self.race {
            r.answered(took);
        }
        took
    }

    /// Records an answer that does not end the call (a querier's own 5xx
    /// error, after which the next one is asked): the requests still out
    /// are not judged against it.
    pub fn answered_unused(&mut self) -> Duration {
        let took = self.start.elapsed();
        self.answered = true;
        self.stats.observe_latency(took);
        self.stats.record.answered(took);
        took
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.answered {
            return;
        }
        let waited = self.start.elapsed();
        if let Some(won) = self.race.as_ref().and_then(|r| r.first_answer()) {
            if !overtaken(waited, won) {
                return;
            }
        }
        // Failed, stuck while another member answered, or dropped with its
        // query: the peer was at least this slow.
        self.stats.observe_latency(waited + self.penalty);
        self.stats.record.failed();
    }
}

/// Time-to-first-frame of a group's members, as a decaying histogram with
/// two buckets per doubling from 64 µs (each bound √2 times the last); the
/// adaptive hedge waits for a quantile of it before asking a second member,
/// and its median is the time the group is expected to answer in. Shared
/// lock-free with the query path.
#[derive(Debug)]
pub struct GroupLatency {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    observations: AtomicU64,
}

const LATENCY_BUCKETS: usize = 48;
/// After this many observations all counts are halved, so the histogram
/// follows changes within a few thousand requests.
const DECAY_EVERY: u64 = 2048;

impl Default for GroupLatency {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            observations: AtomicU64::new(0),
        }
    }
}

impl GroupLatency {
    fn bucket(d: Duration) -> usize {
        // Bucket 0 holds latencies below 64 µs, bucket i > 0 those in
        // [64 µs * √2^(i-1), 64 µs * √2^i).
        let us = d.as_secs_f64() * 1e6;
        if us < 64.0 {
            return 0;
        }
        let i = ((us / 64.0).log2() * 2.0).floor() as usize + 1;
        i.min(LATENCY_BUCKETS - 1)
    }

    fn bounds(i: usize) -> (f64, f64) {
        let upper = 64e-6 * 2f64.powf(i as f64 / 2.0);
        let lower = if i == 0 {
            0.0
        } else {
            upper / std::f64::consts::SQRT_2
        };
        (lower, upper)
    }

    fn upper(i: usize) -> Duration {
        Duration::from_secs_f64(Self::bounds(i).1)
    }

    pub fn observe(&self, d: Duration) {
        self.buckets[Self::bucket(d)].fetch_add(1, Ordering::Relaxed);
        let n = self.observations.fetch_add(1, Ordering::Relaxed) + 1;
        if n % DECAY_EVERY == 0 {
            for b in &self.buckets {
                let v = b.load(Ordering::Relaxed);
                b.store(v / 2, Ordering::Relaxed);
            }
        }
    }

    /// Quantile `q`, interpolated within its bucket, or `None` with fewer
    /// than `min_count` observations.
    pub fn quantile_interpolated(&self, q: f64, min_count: u64) -> Option<Duration> {
        let counts: Vec<f64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed) as f64)
            .collect();
        super::view::quantile_within(&counts, q, min_count as f64, Self::bounds)
    }

    /// The upper bound of the bucket holding quantile `q`, or `None` with
    /// fewer than `min_count` observations.
    pub fn quantile(&self, q: f64, min_count: u64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total < min_count.max(1) {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper(i));
            }
        }
        Some(Self::upper(LATENCY_BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_samples_and_fade_when_idle() {
        let s = PeerStats::default();
        assert_eq!(s.latency(), Duration::ZERO);
        s.observe_latency(Duration::from_millis(8));
        let first = s.latency();
        assert!(first <= Duration::from_millis(8) && first > Duration::from_millis(7));
        s.observe_latency(Duration::from_millis(16));
        assert!(s.latency() > first);
        // A penalty raises it; without samples it halves every second.
        s.observe_latency(Duration::from_secs(1) + Duration::from_millis(8));
        let at = now_us();
        let now = s.decayed_us(at);
        assert!(now > 100_000, "{now}");
        let later = s.decayed_us(at + 2 * LATENCY_HALF_LIFE_US as u64);
        assert!(
            later * 4 <= now + 4 && later * 4 + 4 >= now,
            "{now} {later}"
        );
        // A reset forgets it; the next sample sets it.
        s.reset_latency();
        assert_eq!(s.cost(), 1);
        s.observe_latency(Duration::from_millis(3));
        assert!(s.latency() <= Duration::from_millis(3));
    }

    #[test]
    fn only_requests_overtaken_while_stuck_count_against_their_member() {
        let began = |stats: &Arc<PeerStats>, ago_ms: u64, race: &Arc<Race>| {
            let mut f = stats
                .begin(Duration::from_secs(1))
                .in_race(Some(race.clone()));
            f.start = Instant::now() - Duration::from_millis(ago_ms);
            f
        };
        let fast = Arc::new(PeerStats::default());
        let hedged = Arc::new(PeerStats::default());
        let stuck = Arc::new(PeerStats::default());
        let race = Arc::new(Race::default());
        let slow = began(&stuck, 300, &race);
        let mut winner = began(&fast, 20, &race);
        let late = began(&hedged, 5, &race);
        winner.answered();
        drop((winner, late, slow));
        let c = |s: &PeerStats| (s.record.counts().requests, s.record.counts().failures);
        assert_eq!(c(&fast), (1.0, 0.0));
        // A hedge sent after the winner lost fairly: no record, no penalty.
        assert_eq!(c(&hedged), (0.0, 0.0));
        assert_eq!(hedged.latency(), Duration::ZERO);
        // The primary overtaken after 300 ms counts as failed and slow.
        assert_eq!(c(&stuck), (1.0, 1.0));
        assert!(stuck.latency() > Duration::from_secs(1));
        // Two asked at once (race mode): the loser is barely slower.
        let race = Arc::new(Race::default());
        let mut a = began(&fast, 30, &race);
        let b = began(&hedged, 30, &race);
        a.answered();
        drop((a, b));
        assert_eq!(c(&hedged), (0.0, 0.0));
        // Without an answer in the call, a dropped request is a failure.
        drop(began(&hedged, 1, &Arc::new(Race::default())));
        assert_eq!(c(&hedged), (1.0, 1.0));
    }

    #[test]
    fn latency_buckets_hold_their_samples() {
        for us in [
            1u64, 63, 64, 65, 90, 91, 128, 1_000, 300_000, 1_500_000, 10_000_000,
        ] {
            let d = Duration::from_micros(us);
            let (lo, hi) = GroupLatency::bounds(GroupLatency::bucket(d));
            let s = d.as_secs_f64();
            assert!(lo <= s && s < hi * 1.000_001, "{us} us in [{lo}, {hi})");
        }
        // A median of 300 ms samples comes out within the half-octave.
        let l = GroupLatency::default();
        for _ in 0..5 {
            l.observe(Duration::from_millis(300));
        }
        let m = l.quantile_interpolated(0.5, 3).unwrap();
        assert!(
            m > Duration::from_millis(262) && m < Duration::from_millis(371),
            "{m:?}"
        );
    }

    #[test]
    fn latency_quantiles() {
        let l = GroupLatency::default();
        assert_eq!(l.quantile(0.9, 10), None);
        for _ in 0..90 {
            l.observe(Duration::from_millis(2));
        }
        for _ in 0..10 {
            l.observe(Duration::from_millis(500));
        }
        let p50 = l.quantile(0.5, 10).unwrap();
        assert!(
            p50 >= Duration::from_millis(2) && p50 <= Duration::from_millis(5),
            "{p50:?}"
        );
        let p99 = l.quantile(0.99, 10).unwrap();
        assert!(p99 >= Duration::from_millis(500), "{p99:?}");
    }
}
