//! The Prometheus HTTP API (v1) of a querier, so Grafana, promtool and
//! other Prometheus clients can point at it: queries go to the PromQL
//! [`Engine`], series and label lookups to the [`Querier`].
//!
//! Behaviour follows Prometheus 2.42 where a client can notice it: the
//! parameters (GET query or urlencoded POST body, repeatable `match[]`),
//! their checks and error messages, the JSON shapes and number formats, and
//! the status codes of each `errorType`. Thanos' `dedup`,
//! `partial_response` and `replicaLabels[]` are honoured too. Answers that
//! carry warnings (partial data) and errors are sent with
//! `Cache-Control: no-store`, so no cache keeps them.

pub mod json;
pub mod params;
mod parse_query;
mod query;
mod rules;
mod series;
mod status;
mod tsdb_status;

use query::*;
use series::*;
use status::*;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ErrorCode;
use crate::model::Matcher;
use crate::promql::{Engine, PromqlError, QueryOutput};
use crate::query::{Querier, SeriesOptions};
use crate::store::{LabelsRequest, PartialResponse, Store, StoreError};
use params::{go_quote, parse_bool, parse_duration, parse_selector, parse_time, Params};

/// Prometheus' message for an empty query, position included.
const NO_EXPRESSION: &str = "1:1: parse error: no expression found in input";
/// Prometheus' bound on the points of one series in a range query.
const MAX_POINTS: i128 = 11_000;
const TOO_MANY_POINTS: &str = "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)";
/// The warning when `limit` cut an answer short (as later Prometheus
/// versions word it).
const TRUNCATED: &str = "results truncated due to limit";
/// Results larger than this (estimated JSON bytes) are encoded off the
/// async workers.
const ENCODE_INLINE_MAX: usize = 256 * 1024;

/// The Prometheus API version skein's HTTP API matches; see
/// [`buildinfo`].
pub const PROMETHEUS_API_VERSION: &str = "2.42.0";

/// An API error: its code picks the HTTP status and `errorType`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadData, message)
    }

    /// `invalid parameter "name": why`, as Prometheus words it.
    pub fn invalid_param(name: &str, why: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {}: {why}", go_quote(name)))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<PromqlError> for ApiError {
    fn from(e: PromqlError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error_type = self.code.error_type(), error = %self.message, "API request failed");
        }
        let body = json::error_body(self.code.error_type(), &self.message);
        json_response(status, body, true)
    }
}

fn json_response(status: StatusCode, body: Vec<u8>, no_store: bool) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if no_store {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A success envelope around data that is already JSON.
fn success(data: &[u8], warnings: &[String]) -> Response {
    let mut out = json::begin_success(data.len() + 32);
    out.extend_from_slice(data);
    json::end_success(&mut out, warnings);
    json_response(StatusCode::OK, out, !warnings.is_empty())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Parameters from the URL query and, for a urlencoded POST, the body.
impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(str::to_owned);
        let body = if req.method() == Method::POST && is_form(req.headers()) {
            let bytes = Bytes::from_request(req, state).await.map_err(|e| {
                ApiError::bad_data(format!("error parsing form values: {}", e.body_text()))
            })?;
            Some(bytes)
        } else {
            None
        };
        Ok(Params::new(query.as_deref(), body.as_deref()))
    }
}

/// The API's state: the engine for queries, the querier for series and
/// labels, and what the status endpoints report.
#[derive(Clone)]
pub struct PromApi {
    engine: Engine,
    querier: Querier,
    /// Series and label requests answered at once.
    metadata_gate: Arc<tokio::sync::Semaphore>,
    flags: Arc<BTreeMap<String, String>>,
    started: SystemTime,
}

impl PromApi {
    pub fn new(engine: Engine, querier: Querier) -> Self {
        let metadata_gate = Arc::new(tokio::sync::Semaphore::new(
            engine.config().max_concurrent_metadata.max(1),
        ));
        Self {
            engine,
            querier,
            metadata_gate,
            flags: Arc::new(BTreeMap::new()),
            started: SystemTime::now(),
        }
    }

    /// The flags `/api/v1/status/flags` reports, by name without dashes.
    pub fn with_flags(mut self, flags: BTreeMap<String, String>) -> Self {
        self.flags = Arc::new(flags);
        self
    }

    /// Every endpoint under `/api/v1`, and a Prometheus-style 404 for
    /// unknown paths (the only fallback of the querier's router).
    pub fn router(self) -> Router {
        Router::new()
            .route("/api/v1/query", get(query).post(query))
            .route("/api/v1/query_range", get(query_range).post(query_range))
            .route("/api/v1/series", get(series).post(series))
            .route("/api/v1/labels", get(label_names).post(label_names))
            .route(
                "/api/v1/label/{name}/values",
                get(label_values).post(label_values),
            )
            .route(
                "/api/v1/query_exemplars",
                get(query_exemplars).post(query_exemplars),
            )
            .route("/api/v1/format_query", get(format_query).post(format_query))
            .route(
                "/api/v1/parse_query",
                get(parse_query::parse_query).post(parse_query::parse_query),
            )
            .route("/api/v1/metadata", get(metadata))
            .route("/api/v1/targets", get(targets))
            .route("/api/v1/rules", get(rules::rules))
            .route("/api/v1/alerts", get(rules::alerts))
            .route("/api/v1/status/buildinfo", get(buildinfo))
            .route("/api/v1/status/tsdb", get(tsdb_status::tsdb_status))
            .route("/api/v1/status/flags", get(flags))
            .route("/api/v1/status/runtimeinfo", get(runtimeinfo))
            .fallback(not_found)
            .with_state(self)
    }

    /// Thanos' per-request options over the querier's defaults.
    fn options(&self, p: &Params) -> Result<SeriesOptions, ApiError> {
        let flag = |name: &str| match p.get(name) {
            "" => Ok(None),
            s => parse_bool(s).map(Some).ok_or_else(|| {
                ApiError::invalid_param(
                    name,
                    format!("cannot parse {} to a valid boolean", go_quote(s)),
                )
            }),
        };
        let dedup = flag("dedup")?;
        let partial = flag("partial_response")?;
        let replicas: Vec<String> = p
            .all("replicaLabels[]")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let mut opts = self.querier.options(dedup, Some(replicas), partial);
        // `lookback_delta`: a duration, or seconds; 0 or absent for the
        // querier's --query.lookback-delta.
        opts.lookback_ms = match p.get("lookback_delta") {
            "" => None,
            s => {
                let ns =
                    parse_duration(s).map_err(|e| ApiError::invalid_param("lookback_delta", e))?;
                if ns < 0 {
                    return Err(ApiError::invalid_param(
                        "lookback_delta",
                        "lookback delta must not be negative",
                    ));
                }
                Some(ns / 1_000_000)
            }
        };
        Ok(opts)
    }

    /// `max_source_resolution` (a duration, or `auto`), in milliseconds:
    /// the coarsest downsampled data the query may read. `auto`, or no
    /// parameter under `--query.auto-downsampling`, is `auto_ms`.
    fn max_source_resolution(&self, p: &Params, auto_ms: i64) -> Result<i64, ApiError> {
        const NAME: &str = "max_source_resolution";
        let cfg = self.querier.config();
        match p.get(NAME) {
            "" if cfg.auto_downsampling => Ok(auto_ms),
            "" => Ok(0),
            "auto" => Ok(auto_ms),
            v => {
                let ns = parse_duration(v).map_err(|e| ApiError::invalid_param(NAME, e))?;
                if ns < 0 {
                    return Err(ApiError::invalid_param(
                        NAME,
                        "negative max_source_resolution is not accepted. Try a positive integer",
                    ));
                }
                Ok(ns / 1_000_000)
            }
        }
    }

    /// How long a query may run: `timeout` when given, never longer than
    /// `--query.timeout`.
    fn deadline(&self, p: &Params) -> Result<Duration, ApiError> {
        let max = self.engine.config().timeout;
        match p.get("timeout") {
            "" => Ok(max),
            s => {
                let ns = parse_duration(s).map_err(|e| ApiError::invalid_param("timeout", e))?;
                Ok(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)).min(max))
            }
        }
    }

    /// Runs a query within `limit`, with Prometheus' timeout errors.
    async fn evaluate(
        &self,
        limit: Duration,
        query: impl std::future::Future<Output = Result<QueryOutput, PromqlError>>,
    ) -> Result<QueryOutput, PromqlError> {
        if limit.is_zero() {
            return Err(PromqlError {
                code: ErrorCode::Timeout,
                message: "query timed out in query queue".into(),
            });
        }
        match tokio::time::timeout(limit, query).await {
            Ok(r) => r,
            Err(_) => Err(PromqlError {
                code: ErrorCode::Timeout,
                message: "query timed out in expression evaluation".into(),
            }),
        }
    }

    /// Runs a series or label request in a slot of its own family
    /// (`--query.max-concurrent-metadata`) and within `--query.timeout`.
    async fn metadata<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let cfg = self.engine.config();
        let deadline = tokio::time::Instant::now() + cfg.timeout;
        let _permit = tokio::time::timeout_at(deadline, self.metadata_gate.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::Timeout,
                    format!(
                        "request timed out waiting for a free slot: {} series and label requests are being answered (--query.max-concurrent-metadata)",
                        cfg.max_concurrent_metadata
                    ),
                )
            })?
            .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the querier is shutting down"))?;
        let timed_out = |detail: Option<&str>| {
            ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "request timed out after {} (--query.timeout){}",
                    crate::model::time::format_duration(
                        i64::try_from(cfg.timeout.as_millis()).unwrap_or(i64::MAX)
                    ),
                    detail.map(|d| format!(": {d}")).unwrap_or_default()
                ),
            )
        };
        match tokio::time::timeout_at(deadline, work).await {
            Err(_) => Err(timed_out(None)),
            // The stores saw the same deadline pass a moment before this
            // timer: one error, whichever noticed first.
            Ok(Err(e))
                if e.code == ErrorCode::Timeout && tokio::time::Instant::now() >= deadline =>
            {
                Err(timed_out(Some(&e.message)))
            }
            Ok(r) => r,
        }
    }

    /// Refuses an answer that has grown past `--query.max-fetched-bytes`.
    fn check_answer_size(&self, bytes: usize) -> Result<(), ApiError> {
        let limit = self.engine.config().max_fetched_bytes;
        if limit > 0 && bytes > limit {
            return Err(ApiError::new(
                ErrorCode::Execution,
                format!(
                    "the answer is larger than {limit} bytes (--query.max-fetched-bytes); narrow it with match[], start and end, or limit"
                ),
            ));
        }
        Ok(())
    }

    /// Label names (`name` empty) or the values of `name`, over the union
    /// of the matcher sets, sorted, at most `limit` (0: all).
    async fn labels(
        &self,
        name: &str,
        (start, end): (i64, i64),
        sets: Vec<Vec<Matcher>>,
        opts: &SeriesOptions,
        limit: usize,
    ) -> Result<(Vec<String>, Vec<String>), ApiError> {
        // With deduplication, replica labels are not part of any series the
        // series endpoint returns, so they are left out here too, as Thanos
        // does.
        let hidden: &[String] = if opts.dedup {
            &opts.replica_labels
        } else {
            &[]
        };
        if start > end || hidden.iter().any(|h| h == name) {
            return Ok((Vec::new(), Vec::new()));
        }
        let sets = if sets.is_empty() { vec![vec![]] } else { sets };
        let partial_response = PartialResponse::allowed(opts.partial_response);
        // One more than the limit tells whether the answer was cut.
        let store_limit = if limit == 0 {
            0
        } else {
            limit.saturating_add(1 + hidden.len())
        };
        let calls = sets.into_iter().map(|matchers| {
            let req = LabelsRequest {
                name: name.to_string(),
                start,
                end,
                matchers,
                partial_response,
                limit: store_limit,
                hops: 0,
                deadline: Some(std::time::Instant::now() + self.engine.config().timeout),
                without_replica_labels: Vec::new(),
            };
            async move {
                if name.is_empty() {
                    self.querier.label_names(req).await
                } else {
                    self.querier.label_values(req).await
                }
            }
        });
        let mut values = BTreeSet::new();
        let mut warnings = Vec::new();
        let mut bytes = 0usize;
        for r in futures::future::try_join_all(calls).await? {
            bytes = r
                .values
                .iter()
                .fold(bytes, |b, v| b.saturating_add(v.len() + 3));
            self.check_answer_size(bytes)?;
            values.extend(r.values);
            warnings.extend(r.warnings);
        }
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| !(name.is_empty() && hidden.contains(v)))
            .collect();
        if limit > 0 && values.len() > limit {
            values.truncate(limit);
            warnings.push(TRUNCATED.into());
        }
        Ok((values, warnings))
    }
}

/// A time parameter read as Prometheus' `parseTimeParam` reads it.
fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        "" => Ok(default),
        s => parse_time(s).map_err(|e| {
            ApiError::invalid_param(name, format!("Invalid time value for '{name}': {e}"))
        }),
    }
}

/// `limit`: a count, 0 or absent for no limit.
fn limit_param(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        "" => Ok(0),
        s => s.parse().map_err(|_| {
            ApiError::invalid_param(
                "limit",
                format!("cannot parse {} to a valid limit", go_quote(s)),
            )
        }),
    }
}

/// Every `match[]`, parsed; errors are the bare parser message.
fn matcher_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, String> {
    p.all("match[]").map(parse_selector).collect()
}

/// A PromQL parser error in Prometheus' words where they are known.
fn parse_error(e: &str) -> String {
    if e == "no expression found in input" {
        NO_EXPRESSION.to_string()
    } else {
        format!("parse error: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    async fn body(r: Response) -> (StatusCode, Option<String>, String) {
        let status = r.status();
        let cache = r
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, cache, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn error_shapes_and_statuses() {
        let cases = [
            (
                ApiError::invalid_param("time", r#"cannot parse "x" to a valid timestamp"#),
                400,
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": cannot parse \"x\" to a valid timestamp"}"#,
            ),
            (
                ApiError::new(ErrorCode::Execution, "many-to-many matching not allowed"),
                422,
                r#"{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}"#,
            ),
            (
                ApiError::new(
                    ErrorCode::Timeout,
                    "query timed out in expression evaluation",
                ),
                503,
                r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#,
            ),
            (
                ApiError::new(ErrorCode::Canceled, "query was canceled"),
                503,
                r#"{"status":"error","errorType":"canceled","error":"query was canceled"}"#,
            ),
            (
                ApiError::new(ErrorCode::Unavailable, "store a: down"),
                503,
                r#"{"status":"error","errorType":"unavailable","error":"store a: down"}"#,
            ),
            (
                ApiError::new(ErrorCode::Internal, "bug"),
                500,
                r#"{"status":"error","errorType":"internal","error":"bug"}"#,
            ),
        ];
        for (err, status, want) in cases {
            let (got_status, cache, got) = body(err.into_response()).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(got, want);
            assert_eq!(cache.as_deref(), Some("no-store"));
        }
    }

    #[tokio::test]
    async fn store_and_engine_errors_keep_their_code() {
        let e: ApiError = StoreError::Unavailable {
            peer: "p".into(),
            message: "gone".into(),
        }
        .into();
        assert_eq!(e.code, ErrorCode::Unavailable);
        let e: ApiError = PromqlError::execution("x").into();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Execution, "x"));
    }

    #[tokio::test]
    async fn success_shapes_and_cache_control() {
        let (status, cache, b) = body(success(b"[]", &[])).await;
        assert_eq!(
            (status.as_u16(), cache, b.as_str()),
            (200, None, r#"{"status":"success","data":[]}"#)
        );
        let (_, cache, b) = body(labels_response(&["a".into()], &["partial".into()])).await;
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert_eq!(
            b,
            r#"{"status":"success","data":["a"],"warnings":["partial"]}"#
        );
        let (_, _, b) = body(buildinfo().await).await;
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["data"]["version"], PROMETHEUS_API_VERSION);
        assert_eq!(v["data"]["applicationVersion"], env!("CARGO_PKG_VERSION"));
        for field in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
            assert!(v["data"][field].is_string(), "{field}");
        }
    }

    #[tokio::test]
    async fn query_results_are_encoded_with_warnings() {
        use crate::promql::{Value, VectorSample};
        let out = QueryOutput {
            value: Value::Vector(vec![VectorSample {
                labels: Labels::from_pairs([("a", "b")]).unwrap(),
                t_ms: 1_000,
                v: 2.0,
            }]),
            warnings: vec!["store x failed".into()],
        };
        let (status, cache, b) = body(query_response(out, None).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert_eq!(
            b,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"2"]}]},"warnings":["store x failed"]}"#
        );
        // A result big enough to be encoded on the blocking pool.
        let big = QueryOutput {
            value: Value::Matrix(vec![crate::promql::RangeSeries {
                labels: Labels::empty(),
                points: (0..20_000).map(|i| (i * 1000, i as f64)).collect(),
            }]),
            warnings: vec![],
        };
        let (status, cache, b) = body(query_response(big, None).await).await;
        assert_eq!((status, cache), (StatusCode::OK, None));
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["data"]["result"][0]["values"][19_999][1], "19999");
    }

    #[test]
    fn label_names_syntax() {
        assert!(is_label_name("job") && is_label_name("_x1") && is_label_name("__name__"));
        assert!(!is_label_name("1x") && !is_label_name("") && !is_label_name("a-b"));
    }
}
