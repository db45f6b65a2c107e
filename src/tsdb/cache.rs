//! The in-memory caches of a store gateway: the index cache
//! (`--index-cache-size`: postings lists and series entries by block) and
//! the chunk cache (`--store.chunk-cache-size`: chunks by block and
//! reference), each bounded in bytes, least recently used out first.
//! Lookups take a batch of keys under one lock, so a query touching
//! thousands of series locks a handful of times, not once per series.

use std::hash::Hash;
use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;

/// What is cached: a postings list (by its offset in the index) or a
/// series entry (by reference), of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKey {
    Postings {
        block: u128,
        offset: u64,
    },
    Series {
        block: u128,
        series: u64,
    },
    /// A chunk's encoding byte and data.
    Chunk {
        block: u128,
        chunk: u64,
    },
}

/// A cache id for a block, from its ULID.
pub fn block_id(ulid: &str) -> u128 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = |salt: u8| {
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one((salt, ulid))
    };
    (u128::from(h(1)) << 64) | u128::from(h(2))
}

impl CacheKey {
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }

    fn kind(&self) -> &'static str {
        match self {
            CacheKey::Postings { .. } => "postings",
            CacheKey::Series { .. } => "series",
            CacheKey::Chunk { .. } => "chunks",
        }
    }
}

struct Inner {
    lru: LruCache<CacheKey, Bytes>,
    used: usize,
}

pub struct IndexCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
    names: &'static Names,
}

/// The metric names of one cache.
struct Names {
    requests: &'static str,
    hits: &'static str,
    evictions: &'static str,
    bytes: &'static str,
}

static INDEX_NAMES: Names = Names {
    requests: CACHE_REQUESTS_TOTAL,
    hits: CACHE_HITS_TOTAL,
    evictions: CACHE_EVICTIONS_TOTAL,
    bytes: CACHE_BYTES,
};

static CHUNK_NAMES: Names = Names {
    requests: CHUNK_CACHE_REQUESTS_TOTAL,
    hits: CHUNK_CACHE_HITS_TOTAL,
    evictions: CHUNK_CACHE_EVICTIONS_TOTAL,
    bytes: CHUNK_CACHE_BYTES,
};

impl std::fmt::Debug for IndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

pub const CACHE_REQUESTS_TOTAL: &str = "skein_store_index_cache_requests_total";
pub const CACHE_HITS_TOTAL: &str = "skein_store_index_cache_hits_total";
pub const CACHE_EVICTIONS_TOTAL: &str = "skein_store_index_cache_evictions_total";
pub const CACHE_BYTES: &str = "skein_store_index_cache_bytes";
pub const CHUNK_CACHE_REQUESTS_TOTAL: &str = "skein_store_chunk_cache_requests_total";
pub const CHUNK_CACHE_HITS_TOTAL: &str = "skein_store_chunk_cache_hits_total";
pub const CHUNK_CACHE_EVICTIONS_TOTAL: &str = "skein_store_chunk_cache_evictions_total";
pub const CHUNK_CACHE_BYTES: &str = "skein_store_chunk_cache_bytes";

pub fn describe() {
    metrics::describe_counter!(
        CACHE_REQUESTS_TOTAL,
        "Index cache lookups, by item kind (postings, series)."
    );
    metrics::describe_counter!(CACHE_HITS_TOTAL, "Index cache lookups that found the item.");
    metrics::describe_counter!(
        CACHE_EVICTIONS_TOTAL,
        "Items dropped from the index cache to stay within --index-cache-size."
    );
    metrics::describe_gauge!(
        CACHE_BYTES,
        metrics::Unit::Bytes,
        "Bytes held by the index cache."
    );
    metrics::describe_counter!(CHUNK_CACHE_REQUESTS_TOTAL, "Chunk cache lookups.");
    metrics::describe_counter!(
        CHUNK_CACHE_HITS_TOTAL,
        "Chunk cache lookups that found the chunk."
    );
    metrics::describe_counter!(
        CHUNK_CACHE_EVICTIONS_TOTAL,
        "Chunks dropped from the chunk cache to stay within --store.chunk-cache-size."
    );
    metrics::describe_gauge!(
        CHUNK_CACHE_BYTES,
        metrics::Unit::Bytes,
        "Bytes held by the chunk cache."
    );
}

impl IndexCache {
    /// An index cache of at most `max_bytes` (0 disables it).
    pub fn new(max_bytes: usize) -> Self {
        Self::named(max_bytes, &INDEX_NAMES)
    }

    /// A chunk cache of at most `max_bytes` (0 disables it).
    pub fn for_chunks(max_bytes: usize) -> Self {
        Self::named(max_bytes, &CHUNK_NAMES)
    }

    fn named(max_bytes: usize, names: &'static Names) -> Self {
        Self {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                used: 0,
            }),
            max_bytes,
            names,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value of each key, in order.
    pub fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        if self.max_bytes == 0 || keys.is_empty() {
            return vec![None; keys.len()];
        }
        let out: Vec<Option<Bytes>> = {
            let mut g = self.lock();
            keys.iter().map(|k| g.lru.get(k).cloned()).collect()
        };
        let kind = keys[0].kind();
        let hits = out.iter().filter(|v| v.is_some()).count() as u64;
        metrics::counter!(self.names.requests, "kind" => kind).increment(keys.len() as u64);
        metrics::counter!(self.names.hits, "kind" => kind).increment(hits);
        out
    }

    pub fn get(&self, key: &CacheKey) -> Option<Bytes> {
        self.get_many(std::slice::from_ref(key)).pop().flatten()
    }

    /// Stores items, evicting the least recently used to stay in budget.
    /// An item bigger than a tenth of the budget is not kept.
    pub fn put_many(&self, items: impl IntoIterator<Item = (CacheKey, Bytes)>) {
        if self.max_bytes == 0 {
            return;
        }
        let mut evicted = 0u64;
        let used = {
            let mut g = self.lock();
            for (k, v) in items {
                let size = k.size() + v.len();
                if size > self.max_bytes / 10 {
                    continue;
                }
                if let Some(old) = g.lru.put(k, v) {
                    g.used -= k.size() + old.len();
                }
                g.used += size;
                while g.used > self.max_bytes {
                    match g.lru.pop_lru() {
                        Some((k, v)) => {
                            g.used -= k.size() + v.len();
                            evicted += 1;
                        }
                        None => break,
                    }
                }
            }
            g.used
        };
        if evicted > 0 {
            metrics::counter!(self.names.evictions).increment(evicted);
        }
        metrics::gauge!(self.names.bytes).set(used as f64);
    }

    pub fn used_bytes(&self) -> usize {
        self.lock().used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(series: u64) -> CacheKey {
        CacheKey::Series { block: 1, series }
    }

    #[test]
    fn stays_within_budget_and_evicts_least_recent() {
        let per = key(0).size() + 100;
        let cache = IndexCache::new(per * 10 + per / 2);
        cache.put_many((0..10).map(|i| (key(i), Bytes::from(vec![0u8; 100]))));
        assert_eq!(cache.used_bytes(), per * 10);
        // Touch 0, then add one more: 1 is the least recent and goes.
        assert!(cache.get(&key(0)).is_some());
        cache.put_many([(key(10), Bytes::from(vec![0u8; 100]))]);
        assert!(cache.used_bytes() <= per * 10 + per / 2);
        let got = cache.get_many(&[key(0), key(1), key(10)]);
        assert!(got[0].is_some() && got[1].is_none() && got[2].is_some());
        // Items too big for the cache are not kept; a zero budget keeps nothing.
        cache.put_many([(key(99), Bytes::from(vec![0u8; per * 2]))]);
        assert!(cache.get(&key(99)).is_none());
        let off = IndexCache::new(0);
        off.put_many([(key(1), Bytes::from_static(b"x"))]);
        assert!(off.get(&key(1)).is_none());
    }
}
