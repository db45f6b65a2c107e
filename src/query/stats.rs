//! What one query cost the cluster, for the `stats` parameter of the
//! query APIs: stores asked, groups pruned, hedges and fallbacks, series,
//! chunks and samples received. The query's handler sets a collector for
//! its task; the routing code adds to it from that task and from the
//! fan-out's tasks (which carry it along). Nothing is counted when no one
//! asked.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::model::Series;

tokio::task_local! {
    static CURRENT: Arc<QueryStats>;
}

#[derive(Debug, Default)]
pub struct QueryStats {
    stores_asked: AtomicU64,
    groups_pruned: AtomicU64,
    hedges_sent: AtomicU64,
    hedges_won: AtomicU64,
    fallbacks: AtomicU64,
    extras_refused: AtomicU64,
    series: AtomicU64,
    chunks: AtomicU64,
    samples: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub stores_asked: u64,
    pub groups_pruned: u64,
    pub hedges_sent: u64,
    pub hedges_won: u64,
    pub fallbacks: u64,
    /// Hedges and fallbacks not sent: over the hedge budget, too close to
    /// the deadline, or to a demoted member.
    pub extras_refused: u64,
    pub series_fetched: u64,
    pub chunks_fetched: u64,
    pub samples_fetched: u64,
}

/// One of the counters [`add`] adds to.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    StoresAsked,
    GroupsPruned,
    HedgesSent,
    HedgesWon,
    Fallbacks,
    ExtrasRefused,
}

impl QueryStats {
    /// Runs `f` with this collector as its task's.
    pub async fn scope<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        CURRENT.scope(self.clone(), f).await
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            stores_asked: get(&self.stores_asked),
            groups_pruned: get(&self.groups_pruned),
            hedges_sent: get(&self.hedges_sent),
            hedges_won: get(&self.hedges_won),
            fallbacks: get(&self.fallbacks),
            extras_refused: get(&self.extras_refused),
            series_fetched: get(&self.series),
            chunks_fetched: get(&self.chunks),
            samples_fetched: get(&self.samples),
        }
    }
}

/// The current task's collector, to carry into a task it spawns.
pub fn current() -> Option<Arc<QueryStats>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `f` with `stats` (if any) as its task's collector.
pub async fn within<F: Future>(stats: Option<Arc<QueryStats>>, f: F) -> F::Output {
    match stats {
        Some(s) => CURRENT.scope(s, f).await,
        None => f.await,
    }
}

/// Adds `n` to a counter of the current task's collector, if it has one.
pub fn add(counter: Counter, n: u64) {
    let _ = CURRENT.try_with(|s| {
        let c = match counter {
            Counter::StoresAsked => &s.stores_asked,
            Counter::GroupsPruned => &s.groups_pruned,
            Counter::HedgesSent => &s.hedges_sent,
            Counter::HedgesWon => &s.hedges_won,
            Counter::Fallbacks => &s.fallbacks,
            Counter::ExtrasRefused => &s.extras_refused,
        };
        c.fetch_add(n, Ordering::Relaxed);
    });
}

/// Series received by one stream, counted locally and added to the
/// collector once, when the stream is dropped.
#[derive(Debug)]
pub struct Received {
    stats: Option<Arc<QueryStats>>,
    series: u64,
    chunks: u64,
    samples: u64,
}

impl Received {
    /// Counts for the current task's collector (nothing without one).
    pub fn here() -> Self {
        Self {
            stats: current(),
            series: 0,
            chunks: 0,
            samples: 0,
        }
    }

    #[inline]
    pub fn series(&mut self, s: &Series) {
        if self.stats.is_some() {
            self.series += 1;
            self.chunks += s.chunks.len() as u64;
            self.samples += s.chunks.iter().map(|c| c.num_samples()).sum::<u64>();
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if let Some(s) = &self.stats {
            s.series.fetch_add(self.series, Ordering::Relaxed);
            s.chunks.fetch_add(self.chunks, Ordering::Relaxed);
            s.samples.fetch_add(self.samples, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_reach_the_collector_of_the_task_and_of_tasks_it_carries_it_into() {
        let stats = Arc::new(QueryStats::default());
        stats
            .scope(async {
                add(Counter::StoresAsked, 2);
                let carried = current();
                tokio::spawn(within(carried, async { add(Counter::HedgesSent, 1) }))
                    .await
                    .unwrap();
                tokio::spawn(async { add(Counter::HedgesWon, 1) })
                    .await
                    .unwrap();
            })
            .await;
        add(Counter::Fallbacks, 1);
        let s = stats.snapshot();
        assert_eq!((s.stores_asked, s.hedges_sent), (2, 1));
        assert_eq!((s.hedges_won, s.fallbacks), (0, 0), "{s:?}");
    }
}
