//! The results cache several frontends share, in memcached, behind each
//! frontend's own. An entry holds one window's extent, the time it was
//! made and its key in full (a hash collision is a miss). Gossip reaches
//! every frontend but memcached cannot be searched by what an answer
//! depends on, so each frontend keeps a log of the changes of data it saw
//! and takes an entry only when it was made after this frontend started
//! following the cluster and no change it saw since can alter it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::cache::{Extent, Key};
use super::changes::Change;
use super::matrix::SeriesData;
use super::memcached::Memcached;
use super::scope::Scope;
use crate::model::time::now_ms;
use crate::model::Labels;

pub const SHARED_HITS_TOTAL: &str = "skein_frontend_shared_cache_hits_total";
pub const SHARED_ERRORS_TOTAL: &str = "skein_frontend_shared_cache_errors_total";

/// Changes kept to judge entries by; past it the oldest go and entries
/// older than them are no longer taken.
const MAX_LOGGED: usize = 10_000;
/// Clocks of frontends may differ this much.
const SKEW_MS: i64 = 5_000;

/// A series as stored: labels, then points (ms, value text).
type StoredSeries = (BTreeMap<String, String>, Vec<(i64, String)>);

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The key in full.
    k: String,
    /// When it was made (ms since the epoch).
    c: i64,
    s: i64,
    e: i64,
    d: Vec<StoredSeries>,
}

pub struct SharedCache {
    mc: Memcached,
    log: Mutex<Log>,
}

struct Log {
    changes: VecDeque<(i64, Change)>,
    /// Entries made before this are not taken.
    floor_ms: i64,
}

fn full_key(k: &Key) -> String {
    format!("{}@{}", k.query, k.window)
}

fn memcached_key(full: &str) -> String {
    let d = Md5::digest(full.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("skein-fe-{hex}")
}

impl SharedCache {
    /// `trust_after_ms`: entries made before it are not taken (the
    /// frontend's start plus the time gossip needs to show it the cluster).
    pub fn new(mc: Memcached, trust_after_ms: i64) -> Self {
        Self {
            mc,
            log: Mutex::new(Log {
                changes: VecDeque::new(),
                floor_ms: trust_after_ms,
            }),
        }
    }

    /// A change of data seen now.
    pub fn note(&self, c: &Change) {
        if let Ok(mut log) = self.log.lock() {
            log.changes.push_back((now_ms(), c.clone()));
            while log.changes.len() > MAX_LOGGED {
                if let Some((at, _)) = log.changes.pop_front() {
                    log.floor_ms = log.floor_ms.max(at);
                }
            }
        }
    }

    fn trusted(&self, made_ms: i64, scope: &Scope, start: i64, end: i64) -> bool {
        self.log.lock().is_ok_and(|log| {
            made_ms > log.floor_ms
                && !log.changes.iter().any(|(at, c)| {
                    *at >= made_ms - SKEW_MS
                        && scope.affected(&c.label_sets, c.min, c.max, start, end)
                })
        })
    }

    /// The window's extent from memcached, if there is one this frontend
    /// can trust for `scope`.
    pub async fn get(&self, key: &Key, scope: &Arc<Scope>) -> Option<Extent> {
        let full = full_key(key);
        let raw = match self.mc.get(&memcached_key(&full)).await {
            Ok(r) => r?,
            Err(e) => {
                metrics::counter!(SHARED_ERRORS_TOTAL, "op" => "get").increment(1);
                tracing::debug!(error = %e, "shared cache");
                return None;
            }
        };
        let entry: Entry = serde_json::from_slice(&raw).ok()?;
        if entry.k != full || !self.trusted(entry.c, scope, entry.s, entry.e) {
            return None;
        }
        let series = entry
            .d
            .into_iter()
            .map(|(l, p)| {
                Some(SeriesData {
                    labels: Labels::from_pairs(l).ok()?,
                    points: p
                        .into_iter()
                        .map(|(t, v)| (t, v.into_boxed_str()))
                        .collect(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        metrics::counter!(SHARED_HITS_TOTAL).increment(1);
        Some(Extent::new(entry.s, entry.e, series, scope.clone()))
    }

    /// Stores the window's extent, in the background.
    pub fn put(self: &Arc<Self>, key: &Key, extent: &Extent) {
        let full = full_key(key);
        let entry = Entry {
            k: full.clone(),
            c: now_ms(),
            s: extent.start,
            e: extent.end,
            d: extent
                .series
                .iter()
                .map(|s| {
                    (
                        s.labels
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect(),
                        s.points.iter().map(|(t, v)| (*t, v.to_string())).collect(),
                    )
                })
                .collect(),
        };
        let Ok(bytes) = serde_json::to_vec(&entry) else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.mc.set(&memcached_key(&full), &bytes).await {
                metrics::counter!(SHARED_ERRORS_TOTAL, "op" => "set").increment(1);
                tracing::debug!(error = %e, "shared cache");
            }
        });
    }
}
