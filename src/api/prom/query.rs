//! `/api/v1/query` and `/api/v1/query_range`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::params::{parse_duration, parse_time, Params};
use crate::error::ErrorCode;
use crate::model::time::now_ms;
use crate::promql::QueryOutput;
use crate::query::stats::QueryStats;
use std::sync::Arc;
use std::time::Instant;

use super::*;

/// What the `stats` parameter asks for: counters of the query's work,
/// collected while it runs.
pub(super) struct Stats {
    collector: Arc<QueryStats>,
    started: Instant,
}

impl Stats {
    /// A collector when `stats` is set (Prometheus accepts any value, "all"
    /// being the documented one).
    fn asked(p: &Params) -> Option<Self> {
        (!p.get("stats").is_empty()).then(|| Self {
            collector: Arc::new(QueryStats::default()),
            started: Instant::now(),
        })
    }

    /// Prometheus' `stats` object (timings in seconds, samples) with
    /// skein's own counters under `skein`.
    fn json(&self) -> Vec<u8> {
        let secs = self.started.elapsed().as_secs_f64();
        let s = self.collector.snapshot();
        let v = serde_json::json!({
            "timings": {
                "evalTotalTime": secs,
                "execTotalTime": secs,
            },
            "samples": {
                "totalQueryableSamples": s.samples_fetched,
            },
            "skein": s,
        });
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

/// Runs `query` collecting `stats` when asked.
async fn with_stats<F: std::future::Future>(stats: &Option<Stats>, query: F) -> F::Output {
    match stats {
        Some(s) => s.collector.scope(query).await,
        None => query.await,
    }
}

/// A query's answer; large ones are encoded on the blocking pool.
pub(super) async fn query_response(out: QueryOutput, stats: Option<Stats>) -> Response {
    let hint = json::size_hint(&out.value);
    let stats = stats.map(|s| s.json());
    let encode = move || {
        let mut body = json::begin_success(hint);
        json::write_query_data(&mut body, &out.value);
        if let Some(stats) = stats {
            // Inside `data`, after the result.
            body.pop();
            body.extend_from_slice(br#","stats":"#);
            body.extend_from_slice(&stats);
            body.push(b'}');
        }
        json::end_success(&mut body, &out.warnings);
        (body, !out.warnings.is_empty())
    };
    let (body, warned) = if hint > ENCODE_INLINE_MAX {
        match tokio::task::spawn_blocking(encode).await {
            Ok(r) => r,
            Err(e) => {
                return ApiError::new(ErrorCode::Internal, format!("encoding the result: {e}"))
                    .into_response()
            }
        }
    } else {
        encode()
    };
    json_response(StatusCode::OK, body, warned)
}

/// `/api/v1/query`: `query`, `time` (default now), `timeout`.
pub(super) async fn query(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    let time = time_param(&p, "time", now_ms())?;
    let limit = api.deadline(&p)?;
    let q = p.get("query");
    if q.trim().is_empty() {
        return Err(ApiError::invalid_param("query", NO_EXPRESSION));
    }
    let mut opts = api.options(&p)?;
    opts.deadline = Some(std::time::Instant::now() + limit);
    opts.max_resolution_ms =
        api.max_source_resolution(&p, api.querier.config().instant_max_source_resolution_ms)?;
    let stats = Stats::asked(&p);
    let out = api
        .evaluate(limit, with_stats(&stats, api.engine.instant(q, time, opts)))
        .await
        .map_err(|e| {
            // Prometheus reports every error found before evaluation (the
            // only bad_data ones) against the parameter.
            if e.code == ErrorCode::BadData && !e.message.starts_with("invalid parameter") {
                ApiError::invalid_param("query", e.message)
            } else {
                e.into()
            }
        })?;
    Ok(query_response(out, stats).await)
}

/// `/api/v1/query_range`: `query`, `start`, `end`, `step`, `timeout`, with
/// Prometheus' checks in Prometheus' order.
pub(super) async fn query_range(
    State(api): State<PromApi>,
    p: Params,
) -> Result<Response, ApiError> {
    let start = parse_time(p.get("start")).map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time(p.get("end")).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_ns = parse_duration(p.get("step")).map_err(|e| ApiError::invalid_param("step", e))?;
    if step_ns <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let range_ns = (i128::from(end) - i128::from(start)) * 1_000_000;
    if range_ns / i128::from(step_ns) > MAX_POINTS {
        return Err(ApiError::bad_data(TOO_MANY_POINTS));
    }
    let limit = api.deadline(&p)?;
    let q = p.get("query");
    if q.trim().is_empty() {
        return Err(ApiError::bad_data(NO_EXPRESSION));
    }
    let mut opts = api.options(&p)?;
    opts.deadline = Some(std::time::Instant::now() + limit);
    // The engine counts in milliseconds; a finer step is one millisecond.
    let step_ms = (step_ns / 1_000_000).max(1);
    // Auto: at least five samples of the data per step.
    opts.max_resolution_ms = api.max_source_resolution(&p, step_ms / 5)?;
    let stats = Stats::asked(&p);
    let out = api
        .evaluate(
            limit,
            with_stats(&stats, api.engine.range(q, start, end, step_ms, opts)),
        )
        .await?;
    Ok(query_response(out, stats).await)
}
