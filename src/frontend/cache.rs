//! The results cache: for each query (its text and every parameter that
//! shapes its answer but time) and split window, the extent of steps it
//! holds, extended as overlapping or adjoining requests come. Bounded in
//! bytes, least recently used first out.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::matrix::{merge, slice, SeriesData};
use super::scope::Scope;
use crate::model::Labels;

/// Cache metrics.
pub const HITS_TOTAL: &str = "skein_frontend_cache_hits_total";
pub const MISSES_TOTAL: &str = "skein_frontend_cache_misses_total";
pub const BYTES: &str = "skein_frontend_cache_bytes";
pub const EVICTIONS_TOTAL: &str = "skein_frontend_cache_evictions_total";
pub const INVALIDATED_TOTAL: &str = "skein_frontend_cache_invalidated_total";

/// What a cache entry is for: the query and its window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub query: Arc<str>,
    pub window: i64,
}

/// Steps `start..=end` of one window's answer.
#[derive(Debug, Clone)]
pub struct Extent {
    pub start: i64,
    pub end: i64,
    pub series: Arc<Vec<SeriesData>>,
    /// What data the answer depends on.
    pub scope: Arc<Scope>,
    bytes: usize,
}

impl Extent {
    pub fn new(start: i64, end: i64, series: Vec<SeriesData>, scope: Arc<Scope>) -> Self {
        let bytes = series.iter().map(SeriesData::size).sum::<usize>() + 128;
        Self {
            start,
            end,
            series: Arc::new(series),
            scope,
            bytes,
        }
    }

    /// The answer for `start..=end`, when this extent covers it.
    pub fn answer(&self, start: i64, end: i64) -> Option<Vec<SeriesData>> {
        (self.start <= start && end <= self.end).then(|| slice(&self.series, start, end))
    }

    /// This extent and `other` as one, when they overlap or adjoin on the
    /// grid (`step` apart at most).
    pub fn join(&self, other: &Extent, step: i64) -> Option<Extent> {
        let apart = other.start > self.end.saturating_add(step)
            || self.start > other.end.saturating_add(step);
        if apart {
            return None;
        }
        Some(Extent::new(
            self.start.min(other.start),
            self.end.max(other.end),
            merge([self.series.to_vec(), other.series.to_vec()]),
            other.scope.clone(),
        ))
    }
}

pub struct ResultsCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

struct Inner {
    lru: LruCache<Key, Extent>,
    bytes: usize,
}

impl ResultsCache {
    /// A cache of at most `max_bytes` (0: caches nothing).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    pub fn get(&self, key: &Key) -> Option<Extent> {
        let mut g = self.inner.lock().ok()?;
        g.lru.get(key).cloned()
    }

    /// Stores `extent`, joined with what is cached for the key when they
    /// meet; evicts the least recently used entries beyond the budget.
    pub fn put(&self, key: Key, extent: Extent, step: i64) {
        if !self.enabled() || extent.bytes > self.max_bytes {
            return;
        }
        let Ok(mut g) = self.inner.lock() else { return };
        let extent = match g.lru.pop(&key) {
            Some(old) => {
                g.bytes -= old.bytes;
                old.join(&extent, step).unwrap_or(extent)
            }
            None => extent,
        };
        g.bytes += extent.bytes;
        g.lru.put(key, extent);
        let mut evicted = 0u64;
        while g.bytes > self.max_bytes {
            match g.lru.pop_lru() {
                Some((_, e)) => {
                    g.bytes -= e.bytes;
                    evicted += 1;
                }
                None => break,
            }
        }
        metrics::gauge!(BYTES).set(g.bytes as f64);
        if evicted > 0 {
            metrics::counter!(EVICTIONS_TOTAL).increment(evicted);
        }
    }

    /// Drops the answers a change of data can alter: data of a store with
    /// label sets `sets` between `min` and `max`. How many were dropped.
    pub fn invalidate(&self, sets: &[Labels], min: i64, max: i64) -> usize {
        let n = self.drop_where(|_, e| e.scope.affected(sets, min, max, e.start, e.end));
        metrics::counter!(INVALIDATED_TOTAL).increment(n as u64);
        n
    }

    /// Drops every entry `stale` says is stale; how many were dropped.
    pub fn drop_where(&self, mut stale: impl FnMut(&Key, &Extent) -> bool) -> usize {
        let Ok(mut g) = self.inner.lock() else {
            return 0;
        };
        let doomed: Vec<Key> = g
            .lru
            .iter()
            .filter(|(k, e)| stale(k, e))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            if let Some(e) = g.lru.pop(k) {
                g.bytes -= e.bytes;
            }
        }
        metrics::gauge!(BYTES).set(g.bytes as f64);
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[i64]) -> Vec<SeriesData> {
        vec![SeriesData {
            labels: Labels::from_pairs([("a", "1")]).unwrap(),
            points: points.iter().map(|t| (*t, "1".into())).collect(),
        }]
    }

    fn key(w: i64) -> Key {
        Key {
            query: "q".into(),
            window: w,
        }
    }

    #[test]
    fn adjoining_extents_join_and_answer_inside_them() {
        let c = ResultsCache::new(1 << 20);
        c.put(
            key(0),
            Extent::new(0, 20, series(&[0, 10, 20]), Arc::default()),
            10,
        );
        c.put(
            key(0),
            Extent::new(30, 40, series(&[30, 40]), Arc::default()),
            10,
        );
        let e = c.get(&key(0)).unwrap();
        assert_eq!((e.start, e.end), (0, 40));
        assert_eq!(e.answer(10, 30).unwrap(), series(&[10, 20, 30]));
        assert!(e.answer(10, 50).is_none());
        // A gap on the grid keeps the newer extent alone.
        c.put(
            key(0),
            Extent::new(70, 80, series(&[70, 80]), Arc::default()),
            10,
        );
        assert_eq!(c.get(&key(0)).unwrap().start, 70);
    }

    #[test]
    fn the_budget_evicts_the_least_recently_used() {
        let one = Extent::new(0, 20, series(&[0, 10, 20]), Arc::default()).bytes;
        let c = ResultsCache::new(one * 2 + 1);
        c.put(
            key(1),
            Extent::new(0, 20, series(&[0, 10, 20]), Arc::default()),
            10,
        );
        c.put(
            key(2),
            Extent::new(0, 20, series(&[0, 10, 20]), Arc::default()),
            10,
        );
        assert!(c.get(&key(1)).is_some());
        c.put(
            key(3),
            Extent::new(0, 20, series(&[0, 10, 20]), Arc::default()),
            10,
        );
        assert!(c.get(&key(2)).is_none(), "2 was used least recently");
        assert!(c.get(&key(1)).is_some() && c.get(&key(3)).is_some());
        assert_eq!(c.drop_where(|k, _| k.window == 1), 1);
        assert!(c.get(&key(1)).is_none());
    }
}
