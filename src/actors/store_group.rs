//! Store groups: peers with identical external label sets and identical
//! store group id (the empty id and the empty label set are ordinary
//! values). The group's peer type decides how queries use it: STORE and
//! QUERY members hold the same data and are interchangeable; SOURCE members
//! each hold their own copy and must all be asked. The registry keeps the
//! groups; what routing needs of one is its key, its peer type and its
//! latency histogram.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::Labels;
use crate::store::PeerType;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Sorted.
    pub label_sets: Vec<Labels>,
    pub store_group_id: String,
}

impl GroupKey {
    pub fn new(mut label_sets: Vec<Labels>, store_group_id: String) -> Self {
        label_sets.sort();
        label_sets.dedup();
        Self {
            label_sets,
            store_group_id,
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sets: Vec<String> = self.label_sets.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", sets.join(","))?;
        if !self.store_group_id.is_empty() {
            write!(f, "/{}", self.store_group_id)?;
        }
        Ok(())
    }
}

/// The strategy of a group whose members report `types`: when members
/// disagree, SOURCE wins, because asking every member never loses data.
pub fn effective_peer_type(types: impl IntoIterator<Item = PeerType>) -> PeerType {
    let mut out: Option<PeerType> = None;
    for t in types {
        out = Some(match (out, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            _ => PeerType::Source,
        });
    }
    out.unwrap_or(PeerType::Source)
}

/// Time-to-first-frame of a group's members, as a decaying histogram with
/// power-of-two buckets from 64 µs; the adaptive hedge waits for a quantile
/// of it before asking a second member. Shared lock-free with the query
/// path.
#[derive(Debug)]
pub struct GroupLatency {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    observations: AtomicU64,
}

const LATENCY_BUCKETS: usize = 24;
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
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        // Bucket i holds latencies below 64 µs * 2^i.
        let i = (64 - (us >> 6).leading_zeros()) as usize;
        i.min(LATENCY_BUCKETS - 1)
    }

    fn upper(i: usize) -> Duration {
        Duration::from_micros(64u64 << i)
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
    fn mixed_types_ask_everyone() {
        assert_eq!(
            effective_peer_type([PeerType::Store, PeerType::Store]),
            PeerType::Store
        );
        assert_eq!(
            effective_peer_type([PeerType::Store, PeerType::Source]),
            PeerType::Source
        );
        assert_eq!(effective_peer_type([]), PeerType::Source);
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

    #[test]
    fn keys_ignore_label_set_order() {
        let a = Labels::from_pairs([("a", "1")]).unwrap();
        let b = Labels::from_pairs([("b", "2")]).unwrap();
        assert_eq!(
            GroupKey::new(vec![a.clone(), b.clone()], "x".into()),
            GroupKey::new(vec![b, a], "x".into())
        );
        assert_ne!(
            GroupKey::new(vec![], "".into()),
            GroupKey::new(vec![], "x".into())
        );
    }
}
