//! A TSDB block read by `crate::tsdb` as one of the gateway's blocks.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::store::{BlockInfo, BlockSeries};
use crate::model::time::{MAX_TIME, MIN_TIME};
use crate::model::{Labels, Matcher};
use crate::store::{SeriesFrame, SeriesStream, StoreError};
use crate::tsdb::{Block, TsdbError};

pub struct TsdbBlock {
    block: Arc<Block>,
    info: BlockInfo,
}

impl TsdbBlock {
    pub fn new(block: Block) -> Result<Self, StoreError> {
        let meta = block.meta();
        let labels = Labels::from_pairs(meta.external_labels()).map_err(|e| {
            StoreError::Internal(format!("block {}: bad external labels: {e}", meta.ulid))
        })?;
        let info = BlockInfo {
            ulid: meta.ulid.clone(),
            min_time: meta.min_time,
            // meta.json's max is exclusive; a block with min = max
            // (i64::MIN included) must not wrap.
            max_time: meta.max_time.saturating_sub(1),
            labels,
            resolution: meta.resolution(),
        };
        Ok(Self {
            block: Arc::new(block),
            info,
        })
    }
}

/// Corrupt data is an internal error of this store (another member of the
/// group may have a good copy); anything else is the bucket being
/// unavailable.
pub(crate) fn store_error(block: &str, e: TsdbError) -> StoreError {
    if e.is_corruption() {
        metrics::counter!(super::sync::BLOCK_CORRUPTION_ERRORS_TOTAL).increment(1);
        tracing::warn!(block, error = %e, "request failed on damaged block data");
        StoreError::Internal(format!("block {block}: {e}"))
    } else {
        StoreError::Unavailable {
            peer: format!("block {block}"),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl BlockSeries for TsdbBlock {
    fn info(&self) -> &BlockInfo {
        &self.info
    }

    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> Result<SeriesStream, StoreError> {
        let ulid = self.info.ulid.clone();
        let s = self.block.series_owned(matchers, mint, maxt, skip_chunks);
        Ok(Box::pin(s.map(move |r| {
            r.map(|s| SeriesFrame::Series(s.into_series()))
                .map_err(|e| store_error(&ulid, e))
        })))
    }

    async fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StoreError> {
        if matchers.is_empty() {
            return Ok(self.block.label_names());
        }
        let mut names = BTreeSet::new();
        let mut s = self.block.series(matchers, MIN_TIME, MAX_TIME, true);
        while let Some(r) = s.next().await {
            let s = r.map_err(|e| store_error(&self.info.ulid, e))?;
            for l in s.labels.iter() {
                if !names.contains(&l.name) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StoreError> {
        if matchers.is_empty() {
            return Ok(self.block.label_values(name));
        }
        let mut values = BTreeSet::new();
        let mut s = self.block.series(matchers, MIN_TIME, MAX_TIME, true);
        while let Some(r) = s.next().await {
            let s = r.map_err(|e| store_error(&self.info.ulid, e))?;
            if let Some(v) = s.labels.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}
