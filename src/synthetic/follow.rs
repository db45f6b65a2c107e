//! A synthetic store whose window slides with the clock, as a live source's
//! does: every scrape interval the window is generated anew up to now.
//! Values are a pure function of seed, series and time slot, so samples that
//! stay inside the window keep their values from one generation to the next.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{build_store, SyntheticConfig};
use crate::model::time::now_ms;
use crate::store::{
    LabelsRequest, LabelsResponse, MemStore, SeriesRequest, SeriesStream, Store, StoreError,
    StoreInfo,
};

/// The current generation of a following synthetic store. Each request
/// takes the generation current when it starts and reads it to the end.
pub struct FollowingStore {
    current: RwLock<Arc<MemStore>>,
}

impl FollowingStore {
    pub fn new(first: MemStore) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
        }
    }

    fn get(&self) -> Arc<MemStore> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, next: MemStore) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }
}

#[async_trait]
impl Store for FollowingStore {
    /// A live source has no upper time bound: samples keep arriving.
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        let mut info = self.get().info().await?;
        info.max_time = i64::MAX;
        Ok(info)
    }

    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        self.get().series(req).await
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.get().label_names(req).await
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.get().label_values(req).await
    }
}

/// Regenerates `store` every scrape interval with its window ending now,
/// until `shutdown`. Generation runs on the blocking pool.
pub fn spawn_follow_task(
    store: Arc<FollowingStore>,
    cfg: SyntheticConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let window = cfg.generator.end_ms - cfg.generator.start_ms;
    let every = Duration::from_millis(cfg.generator.interval_ms.max(1) as u64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut next = cfg.clone();
            next.generator.end_ms = now_ms();
            next.generator.start_ms = next.generator.end_ms.saturating_sub(window);
            match tokio::task::spawn_blocking(move || build_store(&next)).await {
                Ok(Ok(generated)) => store.replace(generated),
                Ok(Err(e)) => {
                    warn!(error = %format!("{e:#}"), "regenerating synthetic series failed")
                }
                Err(e) => warn!(error = %e, "regenerating synthetic series failed"),
            }
        }
    })
}
