//! A store that holds its series in memory, sorted by labels.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    validate_range, LabelsRequest, LabelsResponse, SeriesFrame, SeriesRequest, SeriesStream, Store,
    StoreError, StoreInfo,
};
use crate::model::matcher::matches_all;
use crate::model::Series;

#[derive(Clone)]
pub struct MemStore {
    info: StoreInfo,
    series: Arc<[Series]>,
}

impl MemStore {
    /// A store over `series`, which must have distinct label sets. Series
    /// are sorted here; chunks must already be sorted by time.
    pub fn new(info: StoreInfo, mut series: Vec<Series>) -> Result<Self, StoreError> {
        series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        if let Some(dup) = series.windows(2).find(|w| w[0].labels == w[1].labels) {
            return Err(StoreError::InvalidArgument(format!(
                "series {} appears twice",
                dup[0].labels
            )));
        }
        Ok(Self {
            info,
            series: series.into(),
        })
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The time range the chunks cover, or `None` without data.
    pub fn data_range(&self) -> Option<(i64, i64)> {
        let chunks = self.series.iter().flat_map(|s| s.chunks.iter());
        chunks.fold(None, |acc, c| match acc {
            None => Some((c.min_time, c.max_time)),
            Some((lo, hi)) => Some((lo.min(c.min_time), hi.max(c.max_time))),
        })
    }

    fn selected<'a>(&'a self, req: &'a LabelsRequest) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| {
            matches_all(&req.matchers, &s.labels)
                && s.chunks.iter().any(|c| c.overlaps(req.start, req.end))
        })
    }
}

/// Walks the series in `order` (all of them, sorted, when `None`), yielding
/// those the request selects, cut to the chunks that overlap its range and
/// without the labels in `strip`.
struct Selection {
    series: Arc<[Series]>,
    order: Option<Vec<usize>>,
    strip: Vec<String>,
    next: usize,
    sent: usize,
    req: SeriesRequest,
}

impl Iterator for Selection {
    type Item = Result<SeriesFrame, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.req.limit > 0 && self.sent >= self.req.limit {
            return None;
        }
        loop {
            let idx = match &self.order {
                None => self.next,
                Some(o) => *o.get(self.next)?,
            };
            let s = self.series.get(idx)?;
            self.next += 1;
            if !matches_all(&self.req.matchers, &s.labels) {
                continue;
            }
            let (mint, maxt) = (self.req.min_time, self.req.max_time);
            if !s.chunks.iter().any(|c| c.overlaps(mint, maxt)) {
                continue;
            }
            let chunks = if self.req.skip_chunks {
                Vec::new()
            } else {
                s.chunks
                    .iter()
                    .filter(|c| c.overlaps(mint, maxt))
                    .cloned()
                    .collect()
            };
            self.sent += 1;
            let labels = if self.strip.is_empty() {
                s.labels.clone()
            } else {
                s.labels.without(&self.strip)
            };
            return Some(Ok(SeriesFrame::Series(Series { labels, chunks })));
        }
    }
}

#[async_trait]
impl Store for MemStore {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        Ok(self.info.clone())
    }

    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        validate_range(req.min_time, req.max_time)?;
        // Only external labels are replica labels; others stay.
        let strip: Vec<String> = req
            .without_replica_labels
            .iter()
            .filter(|n| self.info.label_sets.iter().any(|l| l.get(n).is_some()))
            .cloned()
            .collect();
        let order = (!strip.is_empty()).then(|| {
            let mut keyed: Vec<(crate::model::Labels, usize)> = self
                .series
                .iter()
                .enumerate()
                .filter(|(_, s)| matches_all(&req.matchers, &s.labels))
                .map(|(i, s)| (s.labels.without(&strip), i))
                .collect();
            keyed.sort();
            keyed.into_iter().map(|(_, i)| i).collect()
        });
        let selection = Selection {
            series: self.series.clone(),
            order,
            strip,
            next: 0,
            sent: 0,
            req,
        };
        Ok(Box::pin(futures::stream::iter(selection)))
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        validate_range(req.start, req.end)?;
        let mut names = BTreeSet::new();
        for s in self.selected(&req) {
            for l in &s.labels {
                if !names.contains(l.name.as_str()) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(LabelsResponse {
            values: limited(names, req.limit),
            warnings: Vec::new(),
        })
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        validate_range(req.start, req.end)?;
        let mut values = BTreeSet::new();
        for s in self.selected(&req) {
            if let Some(v) = s.labels.get(&req.name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(LabelsResponse {
            values: limited(values, req.limit),
            warnings: Vec::new(),
        })
    }
}

fn limited(set: BTreeSet<String>, limit: usize) -> Vec<String> {
    let take = if limit == 0 { usize::MAX } else { limit };
    set.into_iter().take(take).collect()
}
