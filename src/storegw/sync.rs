//! Keeps the served blocks in step with the bucket: every sync lists the
//! blocks, loads new ones, drops the ones that went away. A block that
//! fails to load is logged and skipped (and tried again at the next sync);
//! it never stops the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::store::{BlockSeries, GatewayStore, MissingBlock};

/// Where blocks come from.
#[async_trait]
pub trait BlockLoader: Send + Sync + 'static {
    /// ULIDs of the blocks to serve: with a meta.json and not marked for
    /// deletion.
    async fn list(&self) -> anyhow::Result<Vec<String>>;

    /// Opens a block for serving; `None` for a block this gateway does not
    /// serve (outside its time bounds, or left out by its selector).
    async fn load(&self, ulid: &str) -> anyhow::Result<Option<Arc<dyn BlockSeries>>>;

    /// The time range of a block whose load failed after its meta.json
    /// was read (max exclusive); None when it was not.
    fn known_range(&self, _ulid: &str) -> Option<(i64, i64)> {
        None
    }
}

const BLOCKS_LOADED: &str = "skein_store_blocks_loaded";
const BLOCKS_FAILED: &str = "skein_store_blocks_failed";
const BLOCK_LOADS_TOTAL: &str = "skein_store_block_loads_total";
pub(crate) const BLOCK_CORRUPTION_ERRORS_TOTAL: &str = "skein_store_block_corruption_errors_total";

pub(crate) fn describe() {
    metrics::describe_gauge!(BLOCKS_LOADED, "Blocks served.");
    metrics::describe_gauge!(
        BLOCKS_FAILED,
        "Blocks of the bucket that failed to load at the last sync (retried at every sync)."
    );
    metrics::describe_counter!(
        BLOCK_LOADS_TOTAL,
        "Block load attempts, by result (ok, failed)."
    );
    metrics::describe_counter!(
        BLOCK_CORRUPTION_ERRORS_TOTAL,
        "Requests failed by damaged data of a served block (found when read)."
    );
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub loaded: usize,
    pub dropped: usize,
    pub failed: Vec<String>,
    pub served: usize,
    /// Blocks loaded or dropped by this pass: their external labels and
    /// time range (what answers they can change).
    pub changed: Vec<(crate::model::Labels, i64, i64)>,
}

pub struct Syncer {
    loader: Arc<dyn BlockLoader>,
    store: Arc<GatewayStore>,
    loaded: HashMap<String, Arc<dyn BlockSeries>>,
    /// Listed blocks whose last load failed, with the error.
    failures: BTreeMap<String, String>,
    /// Of those, the ones whose data queries must be warned is missing:
    /// all but a meta.json that cannot be parsed (not a block one can
    /// say anything about; counted and logged).
    missing: BTreeMap<String, MissingBlock>,
}

impl Syncer {
    pub fn new(loader: Arc<dyn BlockLoader>, store: Arc<GatewayStore>) -> Self {
        Self {
            loader,
            store,
            loaded: HashMap::new(),
            failures: BTreeMap::new(),
            missing: BTreeMap::new(),
        }
    }

    /// Blocks of the bucket that failed their last load, with the error.
    pub fn failures(&self) -> &BTreeMap<String, String> {
        &self.failures
    }

    /// One pass over the bucket. Fails only when the bucket cannot be
    /// listed; the served blocks are then left as they were.
    pub async fn sync(&mut self) -> anyhow::Result<SyncReport> {
        let started = Instant::now();
        let listed: HashSet<String> = self.loader.list().await?.into_iter().collect();
        let mut report = SyncReport::default();
        let before = self.loaded.len();
        let changed = &mut report.changed;
        self.loaded.retain(|ulid, b| {
            let keep = listed.contains(ulid);
            if !keep {
                let i = b.info();
                changed.push((i.labels.clone(), i.min_time, i.max_time));
            }
            keep
        });
        report.dropped = before - self.loaded.len();
        self.failures.retain(|ulid, _| listed.contains(ulid));
        self.missing.retain(|ulid, _| listed.contains(ulid));
        let mut new: Vec<&String> = listed
            .iter()
            .filter(|u| !self.loaded.contains_key(*u))
            .collect();
        new.sort();
        for ulid in new {
            match self.loader.load(ulid).await {
                Ok(None) => {
                    self.failures.remove(ulid);
                    self.missing.remove(ulid);
                }
                Ok(Some(b)) => {
                    metrics::counter!(BLOCK_LOADS_TOTAL, "result" => "ok").increment(1);
                    if self.failures.remove(ulid).is_some() {
                        info!(block = %ulid, "block loaded after failing before");
                    }
                    self.missing.remove(ulid);
                    let i = b.info();
                    report
                        .changed
                        .push((i.labels.clone(), i.min_time, i.max_time));
                    self.loaded.insert(ulid.clone(), b);
                    report.loaded += 1;
                }
                Err(e) => {
                    metrics::counter!(BLOCK_LOADS_TOTAL, "result" => "failed").increment(1);
                    let error = format!("{e:#}");
                    // Said once per cause, not at every retry.
                    if self.failures.get(ulid) == Some(&error) {
                        debug!(block = %ulid, %error, "block still cannot be loaded");
                    } else {
                        warn!(block = %ulid, %error, "block skipped: cannot load it (retried at every sync)");
                    }
                    let range = self.loader.known_range(ulid);
                    let bad_meta =
                        range.is_none() && e.downcast_ref::<crate::tsdb::TsdbError>().is_some();
                    if bad_meta {
                        self.missing.remove(ulid);
                    } else {
                        self.missing.insert(
                            ulid.clone(),
                            MissingBlock {
                                ulid: ulid.clone(),
                                range,
                                error: error.clone(),
                            },
                        );
                    }
                    self.failures.insert(ulid.clone(), error);
                    report.failed.push(ulid.clone());
                }
            }
        }
        report.served = self.loaded.len();
        metrics::gauge!(BLOCKS_LOADED).set(report.served as f64);
        metrics::gauge!(BLOCKS_FAILED).set(self.failures.len() as f64);
        self.store
            .set_missing(self.missing.values().cloned().collect());
        self.store
            .set_blocks(self.loaded.values().cloned().collect());
        if report.loaded + report.dropped > 0 || !report.failed.is_empty() {
            info!(
                loaded = report.loaded,
                dropped = report.dropped,
                failed = report.failed.len(),
                served = report.served,
                took = ?started.elapsed(),
                "blocks synced"
            );
        }
        Ok(report)
    }

    /// Syncs every `interval` until `shutdown`, calling `on_sync` after
    /// each pass that succeeded.
    pub async fn run(
        mut self,
        interval: Duration,
        shutdown: CancellationToken,
        mut on_sync: impl FnMut(&SyncReport) + Send,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.sync().await {
                Ok(r) => on_sync(&r),
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "cannot list the bucket; serving the blocks known so far")
                }
            }
        }
    }
}
