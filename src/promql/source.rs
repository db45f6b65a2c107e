//! Where the engine gets series: the querier (merged, deduplicated) or, in
//! tests, any [`Store`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::query::{Querier, SeriesOptions};
use crate::store::{SeriesRequest, SeriesStream, Store, StoreError};

/// Series for a selector, sorted by labels, one entry per label set.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    async fn select(
        &self,
        req: SeriesRequest,
        opts: &SeriesOptions,
    ) -> Result<SeriesStream, StoreError>;
}

#[async_trait]
impl Source for Querier {
    async fn select(
        &self,
        req: SeriesRequest,
        opts: &SeriesOptions,
    ) -> Result<SeriesStream, StoreError> {
        self.series_with(req, opts.clone()).await
    }
}

/// A single store as a source (no deduplication).
pub struct StoreSource(pub Arc<dyn Store>);

#[async_trait]
impl Source for StoreSource {
    async fn select(
        &self,
        req: SeriesRequest,
        _opts: &SeriesOptions,
    ) -> Result<SeriesStream, StoreError> {
        self.0.series(req).await
    }
}
