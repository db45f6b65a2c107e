//! `PrometheusStore`: a Prometheus served as a Store API. External labels
//! come from Prometheus' own configuration and are added to every series
//! (a series' own label wins); matchers on them are answered here and never
//! sent to Prometheus.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use super::blocks::{DiskBlocks, SERIES_REQUESTS_TOTAL};
use super::prom_api::PromApi;
use super::remote_read::RemoteRead;
use crate::model::time::MAX_TIME;
use crate::model::{Labels, MatchOp, Matcher};
use crate::proto::prometheus as prom;
use crate::series::combine;
use crate::series::dedup::DedupFunc;
use crate::series::merge::{merge, MergedFrame};
use crate::store::external::with_external_labels_tracked;
use crate::store::{
    LabelsRequest, LabelsResponse, MetadataRequest, MetadataResponse, PeerType, SeriesFrame,
    SeriesRequest, SeriesStream, Store, StoreError, StoreInfo,
};

/// What the sidecar currently knows about its Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromState {
    pub ready: bool,
    pub external_labels: Labels,
    pub min_time: i64,
    /// `storage.tsdb.out_of_order_time_window` in milliseconds: samples
    /// this far behind the newest may still arrive, so that part of time
    /// is always asked of Prometheus.
    pub out_of_order_window_ms: i64,
    pub last_error: Option<String>,
}

#[derive(Clone)]
pub struct PrometheusStore {
    rr: RemoteRead,
    api: PromApi,
    state: Arc<RwLock<PromState>>,
    group_id: String,
    /// Completed blocks read from Prometheus' data directory.
    disk: Option<Arc<DiskBlocks>>,
    /// Whether Prometheus' series carry labels named like its external
    /// labels (answers are then sorted by stretches, see `normalize`).
    label_clashes: Arc<std::sync::atomic::AtomicBool>,
}

impl PrometheusStore {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let cfg = super::client::PromClientConfig::plain(url)
            .map_err(|e| StoreError::InvalidArgument(format!("{e:#}")))?;
        Self::with_client(&cfg, timeout)
    }

    /// A store over the Prometheus `cfg` describes (URL, credentials, TLS).
    pub fn with_client(
        cfg: &super::client::PromClientConfig,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            rr: RemoteRead::with_client(cfg, timeout)?,
            api: PromApi::with_client(cfg, timeout)?,
            state: Arc::new(RwLock::new(PromState::default())),
            group_id: String::new(),
            disk: None,
            label_clashes: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    /// The store group id it reports (`--store-group-id`; empty: none).
    pub fn with_group_id(mut self, id: String) -> Self {
        self.group_id = id;
        self
    }

    /// Reads Prometheus' completed blocks from `dir` (its
    /// `--storage.tsdb.path`) once they are checked; see [`super::blocks`].
    pub fn with_disk_blocks(
        mut self,
        dir: impl Into<std::path::PathBuf>,
        chunk_cache_bytes: usize,
    ) -> Self {
        self.disk = Some(Arc::new(
            DiskBlocks::new(dir, self.rr.clone()).with_chunk_cache(chunk_cache_bytes),
        ));
        self
    }

    pub fn disk(&self) -> Option<&Arc<DiskBlocks>> {
        self.disk.as_ref()
    }

    pub fn api(&self) -> &PromApi {
        &self.api
    }

    pub fn state(&self) -> PromState {
        self.state.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set_state(&self, s: PromState) {
        if let Ok(mut g) = self.state.write() {
            *g = s;
        }
    }

    fn ready_state(&self) -> Result<PromState, StoreError> {
        let s = self.state();
        if !s.ready {
            return Err(StoreError::Unavailable {
                peer: self.api.base().to_string(),
                message: format!(
                    "prometheus is not ready{}",
                    s.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            });
        }
        Ok(s)
    }
}

/// The series of the blocks on disk and of remote read as one sorted
/// stream: a series both hold gets the chunks of both, where they overlap
/// (the out-of-order window) merged with one sample per timestamp.
fn joined(disk: SeriesStream, remote: SeriesStream) -> SeriesStream {
    let merged = merge(vec![disk, remote]);
    Box::pin(async_stream::try_stream! {
        let mut merged = std::pin::pin!(merged);
        let (mut buffers, mut out) = (Vec::new(), Vec::new());
        while let Some(frame) = merged.next().await {
            match frame? {
                MergedFrame::Warning(w) => yield SeriesFrame::Warning(w),
                MergedFrame::Series(g) => yield SeriesFrame::Series(
                    combine(g, false, DedupFunc::Penalty, false, &mut buffers, &mut out)?,
                ),
            }
        }
    })
}

/// Splits matchers into those Prometheus evaluates and a verdict on the
/// external labels: `None` when an external label contradicts a matcher.
fn split_matchers(matchers: &[Matcher], ext: &Labels) -> Option<Vec<Matcher>> {
    let mut rest = Vec::new();
    for m in matchers {
        match ext.get(m.name()) {
            Some(v) if !m.matches(v) => return None,
            Some(_) => {}
            None => rest.push(m.clone()),
        }
    }
    if rest.iter().all(Matcher::matches_empty) {
        // Prometheus wants one matcher that selects something.
        rest.push(Matcher::new(MatchOp::Regex, "__name__", ".+").ok()?);
    }
    Some(rest)
}

#[async_trait]
impl Store for PrometheusStore {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        let s = self.ready_state()?;
        Ok(StoreInfo {
            label_sets: vec![s.external_labels],
            min_time: s.min_time,
            max_time: MAX_TIME,
            peer_type: PeerType::Source,
            store_group_id: self.group_id.clone(),
            component: "sidecar".into(),
            supports_without_replica_labels: true,
        })
    }

    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        crate::store::validate_range(req.min_time, req.max_time)?;
        let s = self.ready_state()?;
        let Some(matchers) = split_matchers(&req.matchers, &s.external_labels) else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let mut hints =
            (req.step_ms != 0 || req.range_ms != 0 || !req.func.is_empty()).then(|| {
                prom::ReadHints {
                    step_ms: req.step_ms,
                    func: req.func.clone(),
                    start_ms: req.min_time,
                    end_ms: req.max_time,
                    range_ms: req.range_ms,
                    ..Default::default()
                }
            });
        // Only external labels are replica labels; others stay.
        let strip: Vec<String> = req
            .without_replica_labels
            .iter()
            .filter(|n| s.external_labels.get(n).is_some())
            .cloned()
            .collect();
        let skip_chunks = req.skip_chunks;
        let limit = if req.limit == 0 {
            usize::MAX
        } else {
            req.limit
        };

        // Completed blocks before the split come from disk; from the split
        // on (less the out-of-order window) Prometheus answers.
        let view = self.disk.as_ref().map(|d| d.view());
        let mut from_disk = None;
        let mut remote_from = req.min_time;
        if let Some(v) = view.as_ref().filter(|v| v.split > req.min_time) {
            if let Some(store) = &v.store {
                let mut disk_req = SeriesRequest::new(
                    req.min_time,
                    req.max_time.min(v.split - 1),
                    matchers.clone(),
                );
                disk_req.skip_chunks = skip_chunks;
                let frames = store.series(disk_req).await?;
                from_disk = Some(with_external_labels_tracked(
                    frames,
                    s.external_labels.clone(),
                    strip.clone(),
                    false,
                    self.label_clashes.clone(),
                ));
                remote_from = v.split.saturating_sub(s.out_of_order_window_ms);
            }
        }
        let remote = if from_disk.is_none() || req.max_time >= remote_from {
            let remote_from = remote_from.max(req.min_time);
            if let Some(h) = hints.as_mut() {
                h.start_ms = remote_from;
            }
            let series = self
                .rr
                .read(&matchers, remote_from, req.max_time, hints)
                .await?;
            let frames: SeriesStream = Box::pin(series.map(move |r| {
                r.map(|mut s| {
                    if skip_chunks {
                        s.chunks.clear();
                    }
                    SeriesFrame::Series(s)
                })
            }));
            Some(with_external_labels_tracked(
                frames,
                s.external_labels.clone(),
                strip,
                true,
                self.label_clashes.clone(),
            ))
        } else {
            None
        };
        let (source, frames): (&str, SeriesStream) = match (from_disk, remote) {
            (Some(d), None) => ("disk", d),
            (None, Some(r)) => ("remote_read", r),
            (Some(d), Some(r)) => ("both", joined(d, r)),
            (None, None) => ("remote_read", Box::pin(futures::stream::empty())),
        };
        metrics::counter!(SERIES_REQUESTS_TOTAL, "source" => source).increment(1);
        Ok(Box::pin(frames.take(limit)))
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        let s = self.ready_state()?;
        let Some(matchers) = split_matchers(&req.matchers, &s.external_labels) else {
            return Ok(LabelsResponse::default());
        };
        let mut names = self.api.label_names(&matchers, req.start, req.end).await?;
        names.extend(s.external_labels.iter().map(|l| l.name.clone()));
        names.sort();
        names.dedup();
        if req.limit > 0 {
            names.truncate(req.limit);
        }
        Ok(LabelsResponse {
            values: names,
            warnings: vec![],
        })
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        let s = self.ready_state()?;
        let Some(matchers) = split_matchers(&req.matchers, &s.external_labels) else {
            return Ok(LabelsResponse::default());
        };
        let mut values = match s.external_labels.get(&req.name) {
            Some(v) => vec![v.to_string()],
            None => {
                self.api
                    .label_values(&req.name, &matchers, req.start, req.end)
                    .await?
            }
        };
        if req.limit > 0 {
            values.truncate(req.limit);
        }
        Ok(LabelsResponse {
            values,
            warnings: vec![],
        })
    }

    /// Prometheus' rule groups, with the external labels on every rule.
    async fn rules(
        &self,
        req: crate::storeapi::rules::RulesRequest,
    ) -> Result<crate::storeapi::rules::RulesResponse, StoreError> {
        let s = self.ready_state()?;
        self.api.rules(req.kind, &s.external_labels).await
    }

    /// Prometheus' exemplars, with the external labels on their series:
    /// the query's matchers on external label names are checked against
    /// this Prometheus' values and taken off (its own series do not carry
    /// them); a query none of whose selectors fits gets an empty answer.
    async fn exemplars(
        &self,
        req: crate::storeapi::exemplars::ExemplarsRequest,
    ) -> Result<crate::storeapi::exemplars::ExemplarsResponse, StoreError> {
        use crate::storeapi::exemplars::{fit_selectors, selectors_query, ExemplarsResponse};
        let s = self.ready_state()?;
        let selectors = crate::promql::exemplar_selectors(&req.query)
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let touches_external = selectors
            .iter()
            .flatten()
            .any(|m| s.external_labels.get(m.name()).is_some());
        let query = if touches_external {
            match fit_selectors(&selectors, &s.external_labels)
                .map_err(StoreError::InvalidArgument)?
            {
                Some(fitted) => selectors_query(&fitted),
                None => return Ok(ExemplarsResponse::default()),
            }
        } else {
            req.query.clone()
        };
        self.api
            .exemplars(&query, req.start, req.end, &s.external_labels)
            .await
    }

    /// Prometheus' targets, with the external labels.
    async fn targets(
        &self,
        req: crate::storeapi::targets::TargetsRequest,
    ) -> Result<crate::storeapi::targets::TargetsResponse, StoreError> {
        let s = self.ready_state()?;
        self.api.targets(req.state, &s.external_labels).await
    }

    /// Prometheus' own metadata, from its targets' scrapes.
    async fn metric_metadata(&self, req: MetadataRequest) -> Result<MetadataResponse, StoreError> {
        self.ready_state()?;
        let mut out = MetadataResponse {
            metadata: self.api.metadata(&req.metric, req.limit).await?,
            warnings: vec![],
        };
        out.truncate(req.limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Series;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[tokio::test]
    async fn external_labels_keep_the_order() {
        // {a=1} < {a=1, b=2}, but with replica=r added: {a,b,replica} < {a,replica}.
        let input: Vec<Labels> = vec![
            l(&[("a", "1")]),
            l(&[("a", "1"), ("b", "2")]),
            l(&[("a", "1"), ("b", "3")]),
            l(&[("a", "2")]),
            l(&[("a", "2"), ("z", "1")]),
        ];
        let frames: Vec<Result<SeriesFrame, StoreError>> = input
            .iter()
            .map(|labels| {
                Ok(SeriesFrame::Series(Series {
                    labels: labels.clone(),
                    chunks: vec![],
                }))
            })
            .collect();
        let out: Vec<Labels> = crate::store::external::with_external_labels(
            Box::pin(futures::stream::iter(frames)),
            l(&[("replica", "r")]),
            vec![],
        )
        .map(|f| match f.unwrap() {
            SeriesFrame::Series(s) => s.labels,
            SeriesFrame::Warning(_) => unreachable!(),
        })
        .collect()
        .await;
        assert_eq!(out.len(), 5);
        assert!(out.windows(2).all(|w| w[0] < w[1]), "{out:?}");
        assert!(out.iter().all(|x| x.get("replica") == Some("r")));

        // The same series as Prometheus sends them (external label added,
        // in its order) with the replica label stripped again.
        let with_ext: Vec<Result<SeriesFrame, StoreError>> = input
            .iter()
            .map(|labels| {
                let labels = l(&[("replica", "r")]).merged_with(labels);
                Ok(SeriesFrame::Series(Series {
                    labels,
                    chunks: vec![],
                }))
            })
            .collect();
        let out: Vec<Labels> = crate::store::external::with_external_labels(
            Box::pin(futures::stream::iter(with_ext)),
            l(&[("replica", "r")]),
            vec!["replica".into()],
        )
        .map(|f| match f.unwrap() {
            SeriesFrame::Series(s) => s.labels,
            SeriesFrame::Warning(_) => unreachable!(),
        })
        .collect()
        .await;
        assert_eq!(out, input);
    }

    #[test]
    fn matchers_on_external_labels_are_answered_here() {
        let ext = l(&[("replica", "a")]);
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert!(split_matchers(&[m(MatchOp::Equal, "replica", "b")], &ext).is_none());
        let rest = split_matchers(
            &[
                m(MatchOp::Equal, "replica", "a"),
                m(MatchOp::Equal, "job", "x"),
            ],
            &ext,
        )
        .unwrap();
        assert_eq!(rest, vec![m(MatchOp::Equal, "job", "x")]);
        // Nothing left that selects: ask for every series.
        let rest = split_matchers(&[m(MatchOp::Regex, "replica", "a|b")], &ext).unwrap();
        assert_eq!(rest[0].name(), "__name__");
    }
}
