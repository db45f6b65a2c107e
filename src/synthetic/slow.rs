//! `--series-delay-file`: a synthetic store whose Series answers wait a
//! while before their first frame, while Info and label calls stay fast, as
//! a store whose bucket is slow behaves while it passes every health check.
//! The file holds a duration (`500ms`, `2s`; empty or `0s` for none) and is
//! re-read at most every 100 ms, so a test can slow the store down and
//! speed it up again while it runs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::store::{
    LabelsRequest, LabelsResponse, SeriesRequest, SeriesStream, Store, StoreError, StoreInfo,
};

const REREAD: Duration = Duration::from_millis(100);

pub struct SlowSeries {
    inner: Arc<dyn Store>,
    file: PathBuf,
    /// When the file was last read, and the delay it said.
    cached: Mutex<Option<(Instant, Duration)>>,
}

impl SlowSeries {
    pub fn new(inner: Arc<dyn Store>, file: PathBuf) -> Self {
        Self {
            inner,
            file,
            cached: Mutex::new(None),
        }
    }

    async fn delay(&self) -> Duration {
        if let Some((at, d)) = *self.cached.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < REREAD {
                return d;
            }
        }
        // A missing or unreadable file means no delay; a bad value too, with
        // a warning (once per read).
        let d = match tokio::fs::read_to_string(&self.file).await {
            Ok(s) if s.trim().is_empty() => Duration::ZERO,
            Ok(s) => humantime::parse_duration(s.trim()).unwrap_or_else(|e| {
                tracing::warn!(file = %self.file.display(), error = %e, "ignoring --series-delay-file");
                Duration::ZERO
            }),
            Err(_) => Duration::ZERO,
        };
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), d));
        d
    }
}

#[async_trait]
impl Store for SlowSeries {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        self.inner.info().await
    }

    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        let d = self.delay().await;
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        self.inner.series(req).await
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.inner.label_names(req).await
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.inner.label_values(req).await
    }
}
