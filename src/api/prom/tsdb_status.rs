//! `/api/v1/status/tsdb` across the cluster: the cardinality statistics a
//! Prometheus gives of its head block, counted over the series the stores
//! hold for the last two hours (what a head holds), replicas deduplicated.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;

use super::params::Params;
use super::*;
use crate::model::matcher::MatchOp;
use crate::store::{SeriesFrame, SeriesRequest};

/// The window counted: a Prometheus head's usual span.
const WINDOW_MS: i64 = 2 * 3600 * 1000;

/// Most distinct label pairs counted; past it the statistics stop with a
/// warning rather than hold the cluster's whole index in memory.
const MAX_PAIRS: usize = 5_000_000;

/// Series and label statistics, built one series at a time.
#[derive(Default)]
pub(super) struct Cardinality {
    series: u64,
    /// Label name -> value -> series with that pair.
    pairs: HashMap<String, HashMap<String, u64>>,
    pair_count: usize,
}

impl Cardinality {
    /// Counts one series; false when the pair limit was reached.
    pub(super) fn add(&mut self, labels: &crate::model::Labels) -> bool {
        self.series += 1;
        for l in labels.iter() {
            let values = match self.pairs.get_mut(l.name.as_str()) {
                Some(v) => v,
                None => self.pairs.entry(l.name.clone()).or_default(),
            };
            match values.get_mut(l.value.as_str()) {
                Some(n) => *n += 1,
                None => {
                    values.insert(l.value.clone(), 1);
                    self.pair_count += 1;
                }
            }
        }
        self.pair_count <= MAX_PAIRS
    }

    /// The statistics as Prometheus 2.42 writes them, `limit` entries per
    /// list: largest first, ties by name.
    pub(super) fn to_json(&self, limit: usize, min_time: i64, max_time: i64) -> serde_json::Value {
        fn top(mut v: Vec<(String, u64)>, limit: usize) -> serde_json::Value {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(limit);
            v.into_iter()
                .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
                .collect::<Vec<_>>()
                .into()
        }
        let names = self
            .pairs
            .get(crate::model::labels::METRIC_NAME)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        let value_counts = self
            .pairs
            .iter()
            .map(|(n, vs)| (n.clone(), vs.len() as u64))
            .collect();
        // The bytes of each name's distinct values.
        let value_bytes = self
            .pairs
            .iter()
            .map(|(n, vs)| (n.clone(), vs.keys().map(|v| v.len() as u64).sum()))
            .collect();
        // Of every pair only the largest `limit` are written out.
        let mut pairs: Vec<(&str, &str, u64)> = self
            .pairs
            .iter()
            .flat_map(|(n, vs)| vs.iter().map(move |(v, c)| (n.as_str(), v.as_str(), *c)))
            .collect();
        pairs.sort_unstable_by(|a, b| b.2.cmp(&a.2).then_with(|| (a.0, a.1).cmp(&(b.0, b.1))));
        pairs.truncate(limit);
        let pair_counts = pairs
            .into_iter()
            .map(|(n, v, c)| (format!("{n}={v}"), c))
            .collect();
        let (min_time, max_time) = if self.series == 0 {
            (i64::MAX, i64::MIN)
        } else {
            (min_time, max_time)
        };
        serde_json::json!({
            "headStats": {
                "numSeries": self.series,
                "numLabelPairs": self.pair_count,
                "chunkCount": 0,
                "minTime": min_time,
                "maxTime": max_time,
            },
            "seriesCountByMetricName": top(names, limit),
            "labelValueCountByLabelName": top(value_counts, limit),
            "memoryInBytesByLabelName": top(value_bytes, limit),
            "seriesCountByLabelValuePair": top(pair_counts, limit),
        })
    }
}

/// `/api/v1/status/tsdb`: `limit` (entries per list, default 10), and the
/// query options (`dedup`, `partial_response`, `replicaLabels[]`).
pub(super) async fn tsdb_status(
    State(api): State<PromApi>,
    p: Params,
) -> Result<Response, ApiError> {
    api.metadata(inner(&api, p)).await
}

async fn inner(api: &PromApi, p: Params) -> Result<Response, ApiError> {
    let limit = match p.get("limit") {
        "" => 10,
        s => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(ApiError::bad_data("limit must be a positive number")),
        },
    };
    let opts = api.options(&p)?;
    let max_time = crate::model::time::now_ms();
    let min_time = max_time - WINDOW_MS;
    let all = crate::model::Matcher::new(MatchOp::Regex, crate::model::labels::METRIC_NAME, ".+")
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let mut req = SeriesRequest::new(min_time, max_time, vec![all]);
    req.skip_chunks = true;
    req.deadline = Some(std::time::Instant::now() + api.engine.config().timeout);
    let mut stream = api.querier.series_with(req, opts).await?;
    let mut stats = Cardinality::default();
    let mut warnings = vec![
        "counted over the series the stores hold for the last 2h, replicas deduplicated; chunkCount is not counted".to_string(),
    ];
    while let Some(frame) = stream.next().await {
        match frame? {
            SeriesFrame::Warning(w) => warnings.push(w),
            SeriesFrame::Series(s) => {
                if !stats.add(&s.labels) {
                    warnings.push(format!(
                        "stopped counting after {MAX_PAIRS} distinct label pairs; the statistics cover part of the series"
                    ));
                    break;
                }
            }
        }
    }
    let body = serde_json::to_vec(&stats.to_json(limit, min_time, max_time))
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let mut out = json::begin_success(body.len() + 256);
    out.extend_from_slice(&body);
    json::end_success(&mut out, &warnings);
    Ok(json_response(StatusCode::OK, out, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn counts_as_prometheus_lists_them() {
        let mut c = Cardinality::default();
        for (name, job, inst) in [
            ("up", "a", "1"),
            ("up", "a", "2"),
            ("up", "bb", "3"),
            ("x", "a", "1"),
        ] {
            let l =
                Labels::from_pairs([("__name__", name), ("instance", inst), ("job", job)]).unwrap();
            assert!(c.add(&l));
        }
        let j = c.to_json(2, 10, 20);
        assert_eq!(j["headStats"]["numSeries"], 4);
        // __name__: up, x; instance: 1, 2, 3; job: a, bb.
        assert_eq!(j["headStats"]["numLabelPairs"], 7);
        assert_eq!(
            j["seriesCountByMetricName"],
            serde_json::json!([{"name": "up", "value": 3}, {"name": "x", "value": 1}])
        );
        assert_eq!(
            j["labelValueCountByLabelName"],
            serde_json::json!([{"name": "instance", "value": 3}, {"name": "__name__", "value": 2}])
        );
        // Distinct values' bytes: instance 3, job 3, __name__ 3.
        assert_eq!(
            j["memoryInBytesByLabelName"][0],
            serde_json::json!({"name": "__name__", "value": 3})
        );
        assert_eq!(
            j["seriesCountByLabelValuePair"],
            serde_json::json!([{"name": "__name__=up", "value": 3}, {"name": "job=a", "value": 3}])
        );
        let empty = Cardinality::default().to_json(10, 10, 20);
        assert_eq!(empty["headStats"]["minTime"], i64::MAX);
    }
}
