//! Keeps the served blocks in step with the bucket: every sync lists the
//! blocks, loads new ones, drops the ones that went away. A block that
//! fails to load is logged and skipped (and tried again at the next sync);
//! it never stops the others.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::store::{BlockSeries, GatewayStore};

/// Where blocks come from.
#[async_trait]
pub trait BlockLoader: Send + Sync + 'static {
    /// ULIDs of the blocks to serve: with a meta.json and not marked for
    /// deletion.
    async fn list(&self) -> anyhow::Result<Vec<String>>;

    /// Opens a block for serving.
    async fn load(&self, ulid: &str) -> anyhow::Result<Arc<dyn BlockSeries>>;
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub loaded: usize,
    pub dropped: usize,
    pub failed: Vec<String>,
    pub served: usize,
}

pub struct Syncer {
    loader: Arc<dyn BlockLoader>,
    store: Arc<GatewayStore>,
    loaded: HashMap<String, Arc<dyn BlockSeries>>,
}

impl Syncer {
    pub fn new(loader: Arc<dyn BlockLoader>, store: Arc<GatewayStore>) -> Self {
        Self {
            loader,
            store,
            loaded: HashMap::new(),
        }
    }

    /// One pass over the bucket. Fails only when the bucket cannot be
    /// listed; the served blocks are then left as they were.
    pub async fn sync(&mut self) -> anyhow::Result<SyncReport> {
        let started = Instant::now();
        let listed: HashSet<String> = self.loader.list().await?.into_iter().collect();
        let mut report = SyncReport::default();
        let before = self.loaded.len();
        self.loaded.retain(|ulid, _| listed.contains(ulid));
        report.dropped = before - self.loaded.len();
        let mut new: Vec<&String> = listed
            .iter()
            .filter(|u| !self.loaded.contains_key(*u))
            .collect();
        new.sort();
        for ulid in new {
            match self.loader.load(ulid).await {
                Ok(b) => {
                    self.loaded.insert(ulid.clone(), b);
                    report.loaded += 1;
                }
                Err(e) => {
                    warn!(block = %ulid, error = %format!("{e:#}"), "block skipped: cannot load it");
                    report.failed.push(ulid.clone());
                }
            }
        }
        report.served = self.loaded.len();
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
