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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;

use crate::error::ErrorCode;
use crate::model::time::{now_ms, MAX_TIME, MIN_TIME};
use crate::model::{Labels, Matcher};
use crate::promql::{Engine, PromqlError, QueryOutput};
use crate::query::{Querier, SeriesOptions};
use crate::store::{
    LabelsRequest, PartialResponse, SeriesFrame, SeriesRequest, SeriesStream, Store, StoreError,
};
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
    flags: Arc<BTreeMap<String, String>>,
    started: SystemTime,
}

impl PromApi {
    pub fn new(engine: Engine, querier: Querier) -> Self {
        Self {
            engine,
            querier,
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
            .route("/api/v1/metadata", get(metadata))
            .route("/api/v1/rules", get(rules))
            .route("/api/v1/alerts", get(alerts))
            .route("/api/v1/status/buildinfo", get(buildinfo))
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
        Ok(self.querier.options(dedup, Some(replicas), partial))
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
        let partial_response = if opts.partial_response {
            PartialResponse::Warn
        } else {
            PartialResponse::Abort
        };
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
        for r in futures::future::try_join_all(calls).await? {
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

/// A query's answer; large ones are encoded on the blocking pool.
async fn query_response(out: QueryOutput) -> Response {
    let hint = json::size_hint(&out.value);
    let encode = move || {
        let mut body = json::begin_success(hint);
        json::write_query_data(&mut body, &out.value);
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
async fn query(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    let time = time_param(&p, "time", now_ms())?;
    let limit = api.deadline(&p)?;
    let q = p.get("query");
    if q.trim().is_empty() {
        return Err(ApiError::invalid_param("query", NO_EXPRESSION));
    }
    let mut opts = api.options(&p)?;
    opts.max_resolution_ms =
        api.max_source_resolution(&p, api.querier.config().instant_max_source_resolution_ms)?;
    let out = api
        .evaluate(limit, api.engine.instant(q, time, opts))
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
    Ok(query_response(out).await)
}

/// `/api/v1/query_range`: `query`, `start`, `end`, `step`, `timeout`, with
/// Prometheus' checks in Prometheus' order.
async fn query_range(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
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
    // The engine counts in milliseconds; a finer step is one millisecond.
    let step_ms = (step_ns / 1_000_000).max(1);
    // Auto: at least five samples of the data per step.
    opts.max_resolution_ms = api.max_source_resolution(&p, step_ms / 5)?;
    let out = api
        .evaluate(limit, api.engine.range(q, start, end, step_ms, opts))
        .await?;
    Ok(query_response(out).await)
}

/// One series stream of the merge in `/api/v1/series`, with its next label
/// set.
struct Head {
    stream: SeriesStream,
    next: Option<Labels>,
    /// The stream ended; it must not be polled again.
    done: bool,
}

impl Head {
    /// Reads up to the next series, collecting warnings on the way.
    async fn advance(&mut self, warnings: &mut Vec<String>) -> Result<(), StoreError> {
        self.next = None;
        while let Some(frame) = self.stream.next().await {
            match frame? {
                SeriesFrame::Series(s) => {
                    self.next = Some(s.labels);
                    return Ok(());
                }
                SeriesFrame::Warning(w) => warnings.push(w),
            }
        }
        self.done = true;
        Ok(())
    }
}

/// `/api/v1/series`: label sets of the series any `match[]` selects,
/// sorted, each once. Each selector's sorted stream is merged and written
/// as it arrives; only the JSON is held, so that a failure half-way can
/// still answer with an error status.
async fn series(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    if p.all("match[]").next().is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let sets = matcher_sets(&p).map_err(|e| ApiError::invalid_param("match[]", e))?;
    let opts = api.options(&p)?;
    let limit = limit_param(&p)?;
    if start > end {
        return Ok(success(b"[]", &[]));
    }
    let requests = sets.into_iter().map(|matchers| {
        let mut req = SeriesRequest::new(start, end, matchers);
        req.skip_chunks = true;
        req.limit = if limit == 0 {
            0
        } else {
            limit.saturating_add(1)
        };
        api.querier.series_with(req, opts.clone())
    });
    let mut heads: Vec<Head> = futures::future::try_join_all(requests)
        .await?
        .into_iter()
        .map(|stream| Head {
            stream,
            next: None,
            done: false,
        })
        .collect();
    let mut warnings = Vec::new();
    for h in &mut heads {
        h.advance(&mut warnings).await?;
    }
    let mut out = json::begin_success(4096);
    out.push(b'[');
    let mut written = 0;
    loop {
        let smallest = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.next.as_ref().map(|l| (i, l)))
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i);
        let Some(labels) = smallest.and_then(|i| heads[i].next.take()) else {
            break;
        };
        if limit > 0 && written == limit {
            warnings.push(TRUNCATED.into());
            break;
        }
        if written > 0 {
            out.push(b',');
        }
        json::write_labels(&mut out, &labels);
        written += 1;
        // The stream just taken from, and every other one at the same
        // label set, move on.
        for h in &mut heads {
            if !h.done && (h.next.is_none() || h.next.as_ref() == Some(&labels)) {
                h.advance(&mut warnings).await?;
            }
        }
    }
    out.push(b']');
    json::end_success(&mut out, &warnings);
    Ok(json_response(StatusCode::OK, out, !warnings.is_empty()))
}

/// `/api/v1/labels`: label names of the series `match[]` selects (all
/// series without it).
async fn label_names(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let sets = matcher_sets(&p).map_err(ApiError::bad_data)?;
    let opts = api.options(&p)?;
    let limit = limit_param(&p)?;
    let (names, warnings) = api.labels("", (start, end), sets, &opts, limit).await?;
    Ok(labels_response(&names, &warnings))
}

/// Prometheus' label name syntax.
fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `/api/v1/label/{name}/values`.
async fn label_values(
    State(api): State<PromApi>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    if !is_label_name(&name) {
        return Err(ApiError::bad_data(format!(
            "invalid label name: {}",
            go_quote(&name)
        )));
    }
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let sets = matcher_sets(&p).map_err(ApiError::bad_data)?;
    let opts = api.options(&p)?;
    let limit = limit_param(&p)?;
    let (values, warnings) = api.labels(&name, (start, end), sets, &opts, limit).await?;
    Ok(labels_response(&values, &warnings))
}

fn labels_response(values: &[String], warnings: &[String]) -> Response {
    let mut out = json::begin_success(values.iter().map(|v| v.len() + 3).sum::<usize>() + 64);
    json::write_str_array(&mut out, values.iter().map(String::as_str));
    json::end_success(&mut out, warnings);
    json_response(StatusCode::OK, out, !warnings.is_empty())
}

/// `/api/v1/query_exemplars`: skein keeps no exemplars, so a valid request
/// gets an empty list.
async fn query_exemplars(p: Params) -> Result<Response, ApiError> {
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    promql_parser::parser::parse(p.get("query"))
        .map_err(|e| ApiError::bad_data(parse_error(&e)))?;
    Ok(success(b"[]", &[]))
}

/// `/api/v1/format_query`: the query, pretty-printed as Prometheus does.
async fn format_query(p: Params) -> Result<Response, ApiError> {
    let expr = promql_parser::parser::parse(p.get("query"))
        .map_err(|e| ApiError::invalid_param("query", parse_error(&e)))?;
    let mut out = Vec::new();
    json::write_str(&mut out, &expr.prettify());
    Ok(success(&out, &[]))
}

/// `/api/v1/metadata`: skein has no metadata store yet (the Store API does
/// not carry metric metadata), so the answer is an empty object, which
/// clients read as "no metadata known".
async fn metadata() -> Response {
    success(b"{}", &[])
}

/// `/api/v1/rules`: a querier evaluates no rules.
async fn rules() -> Response {
    success(br#"{"groups":[]}"#, &[])
}

/// `/api/v1/alerts`: a querier evaluates no rules, so it has no alerts.
async fn alerts() -> Response {
    success(br#"{"alerts":[]}"#, &[])
}

/// `/api/v1/status/buildinfo`.
///
/// `version` is the Prometheus version whose HTTP API skein implements,
/// not skein's own: Grafana reads buildinfo to tell the flavour (a
/// Prometheus when `features` is absent) and compares `version` with
/// Prometheus releases to decide which API features to use, so skein's
/// 0.x would make it fall back to pre-2.x behaviour. skein's own name and
/// version are in `application` and `applicationVersion`, fields Prometheus
/// lacks and Grafana only reads together with `features`. skein is not a Go
/// program, so the Go-specific fields are empty rather than made up.
async fn buildinfo() -> Response {
    let mut out = Vec::with_capacity(256);
    json::write_str_object(
        &mut out,
        [
            ("version", PROMETHEUS_API_VERSION),
            ("revision", ""),
            ("branch", ""),
            ("buildUser", ""),
            ("buildDate", ""),
            ("goVersion", ""),
            ("application", "skein"),
            ("applicationVersion", env!("CARGO_PKG_VERSION")),
        ],
    );
    success(&out, &[])
}

/// `/api/v1/status/flags`: the querier's flags that shape query answers.
async fn flags(State(api): State<PromApi>) -> Response {
    let mut out = Vec::with_capacity(512);
    json::write_str_object(
        &mut out,
        api.flags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    success(&out, &[])
}

/// `/api/v1/status/runtimeinfo`, in Prometheus' shape. Go's goroutines and
/// GOMAXPROCS are reported as the runtime's live tasks and worker threads;
/// skein has no configuration file to reload and no storage of its own.
async fn runtimeinfo(State(api): State<PromApi>) -> Response {
    let started = humantime::format_rfc3339_nanos(api.started).to_string();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(br#"{"startTime":"#);
    json::write_str(&mut out, &started);
    out.extend_from_slice(br#","CWD":"#);
    json::write_str(&mut out, &cwd);
    out.extend_from_slice(br#","reloadConfigSuccess":true,"lastConfigTime":"#);
    json::write_str(&mut out, &started);
    out.extend_from_slice(
        format!(
            r#","corruptionCount":0,"goroutineCount":{},"GOMAXPROCS":{},"GOGC":"","GODEBUG":"","storageRetention":""}}"#,
            metrics.num_alive_tasks(),
            metrics.num_workers()
        )
        .as_bytes(),
    );
    success(&out, &[])
}

/// Unknown paths, answered as Prometheus' Go server does.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (status, cache, b) = body(query_response(out).await).await;
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
        let (status, cache, b) = body(query_response(big).await).await;
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
