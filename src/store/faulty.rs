//! A store wrapper that injects faults — delays, stalls, failures — and
//! counts Series calls. Tests, benchmarks and fault drills use it to show
//! how the query path copes with a slow or broken store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use super::{
    LabelsRequest, LabelsResponse, SeriesRequest, SeriesStream, Store, StoreError, StoreInfo,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Wait this long before answering Series.
    Delay(Duration),
    /// Send this many series, then hang.
    StallAfter(usize),
    /// Fail Series at once.
    Fail,
    /// Send this many series, then fail.
    FailAfter(usize),
}

pub struct FaultyStore<S> {
    inner: S,
    fault: Fault,
    calls: Arc<AtomicU64>,
}

impl<S: Store> FaultyStore<S> {
    pub fn new(inner: S, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Series calls so far, shared so it can be read after the store moved.
    pub fn calls(&self) -> Arc<AtomicU64> {
        self.calls.clone()
    }
}

#[async_trait]
impl<S: Store> Store for FaultyStore<S> {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        self.inner.info().await
    }

    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.fault {
            Fault::None => self.inner.series(req).await,
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                self.inner.series(req).await
            }
            Fault::Fail => Err(StoreError::Unavailable {
                peer: "faulty".into(),
                message: "injected failure".into(),
            }),
            Fault::StallAfter(n) => {
                let inner = self.inner.series(req).await?;
                Ok(Box::pin(inner.take(n).chain(futures::stream::pending())))
            }
            Fault::FailAfter(n) => {
                let inner = self.inner.series(req).await?;
                Ok(Box::pin(inner.take(n).chain(futures::stream::once(
                    async { Err(StoreError::Internal("injected mid-stream failure".into())) },
                ))))
            }
        }
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.inner.label_names(req).await
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.inner.label_values(req).await
    }
}
