//! Where the engine gets series: the trait it evaluates over, implemented
//! by the querier (merged, deduplicated) and, in tests, by any [`Store`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::chunk::aggr::AggrChoice;
use crate::series::merge::materialize_aggregates;
use crate::series::SeriesOptions;
use crate::store::{SeriesFrame, SeriesRequest, SeriesStream, Store, StoreError};

/// Series for a selector, sorted by labels, one entry per label set.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    async fn select(
        &self,
        req: SeriesRequest,
        opts: &SeriesOptions,
    ) -> Result<SeriesStream, StoreError>;
}

/// A single store as a source (no deduplication).
pub struct StoreSource(pub Arc<dyn Store>);

#[async_trait]
impl Source for StoreSource {
    async fn select(
        &self,
        req: SeriesRequest,
        opts: &SeriesOptions,
    ) -> Result<SeriesStream, StoreError> {
        use futures::StreamExt;
        let choice = AggrChoice::from_aggregates(&req.aggregates).weighed(opts.weigh_counts);
        let mut buf = Vec::new();
        let stream = self.0.series(req).await?;
        Ok(Box::pin(stream.map(move |frame| match frame? {
            SeriesFrame::Series(s) => {
                let mut parts = [s];
                materialize_aggregates(&mut parts, choice, &mut buf)?;
                let [s] = parts;
                Ok(SeriesFrame::Series(s))
            }
            w => Ok(w),
        })))
    }
}
