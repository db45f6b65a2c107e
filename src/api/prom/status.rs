//! Endpoints that report on the server (build and runtime information,
//! flags), and exemplars, metric metadata and scrape targets across the
//! cluster.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::params::Params;
use crate::model::time::{MAX_TIME, MIN_TIME};

use super::*;

/// `/api/v1/query_exemplars`: `query`, `start` and `end` (Prometheus'
/// times; absent for all time), the exemplars of the series the query's
/// selectors match, from every store that keeps them (sidecars: their
/// Prometheus'); a pair's replicas joined when deduplicating.
pub(super) async fn query_exemplars(
    State(api): State<PromApi>,
    p: Params,
) -> Result<Response, ApiError> {
    use crate::storeapi::exemplars::ExemplarsRequest;
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    let query = p.get("query");
    crate::promql::depth::parse_expr(query).map_err(|e| ApiError::bad_data(parse_error(&e)))?;
    let selectors = crate::promql::exemplar_selectors(query)?;
    if selectors.is_empty() {
        return Ok(success(b"[]", &[]));
    }
    let opts = api.options(&p)?;
    let req = ExemplarsRequest {
        query: query.to_string(),
        start,
        end,
        partial_response: crate::store::PartialResponse::allowed(opts.partial_response),
        hops: 0,
        deadline: Some(std::time::Instant::now() + api.engine.config().timeout),
    };
    let mut resp = api
        .metadata(async { api.querier.exemplars(req).await.map_err(ApiError::from) })
        .await?;
    resp.dedup(if opts.dedup {
        &opts.replica_labels
    } else {
        &[]
    });
    let mut out = Vec::with_capacity(64 + resp.exemplar_count() * 64);
    out.push(b'[');
    for (i, s) in resp.series.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"seriesLabels\":");
        json::write_labels(&mut out, &s.series_labels);
        out.extend_from_slice(b",\"exemplars\":[");
        for (j, e) in s.exemplars.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"labels\":");
            json::write_labels(&mut out, &e.labels);
            out.extend_from_slice(b",\"value\":");
            json::write_sample_value(&mut out, e.value);
            out.extend_from_slice(b",\"timestamp\":");
            json::write_sample_time(&mut out, e.ts);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    Ok(success(&out, &resp.warnings))
}

/// `/api/v1/format_query`: the query, pretty-printed as Prometheus does.
pub(super) async fn format_query(p: Params) -> Result<Response, ApiError> {
    let expr = crate::promql::depth::parse_expr(p.get("query"))
        .map_err(|e| ApiError::invalid_param("query", parse_error(&e)))?;
    let mut out = Vec::new();
    json::write_str(&mut out, &expr.prettify());
    Ok(success(&out, &[]))
}

/// `/api/v1/metadata`: `metric` (one metric, or all), `limit` (at most
/// that many metrics; negative or absent: all), `limit_per_metric`, from
/// every store that
/// keeps metadata (sidecars: their Prometheus' targets), merged.
pub(super) async fn metadata(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    let limit = match p.get("limit") {
        "" => -1,
        s => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad_data("limit must be a number"))?,
    };
    // `limit_per_metric` (newer Prometheus): at most that many entries of
    // each metric; 0 or absent for all.
    let per_metric = match p.get("limit_per_metric") {
        "" => 0,
        s => s
            .parse::<usize>()
            .map_err(|_| ApiError::bad_data("limit_per_metric must be a number"))?,
    };
    let opts = api.options(&p)?;
    let mut req = crate::store::MetadataRequest::all();
    req.metric = p.get("metric").to_string();
    req.limit = limit;
    req.partial_response = crate::store::PartialResponse::allowed(opts.partial_response);
    req.deadline = Some(std::time::Instant::now() + api.engine.config().timeout);
    let resp = api
        .metadata(async {
            api.querier
                .metric_metadata(req)
                .await
                .map_err(ApiError::from)
        })
        .await?;
    let mut resp = resp;
    if per_metric > 0 {
        for metas in resp.metadata.values_mut() {
            metas.truncate(per_metric);
        }
    }
    let body = serde_json::to_vec(&resp.metadata)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(success(&body, &resp.warnings))
}

/// `/api/v1/targets`: `state` (`active`, `dropped`, `any` or empty; another
/// value wants neither, as Prometheus reads it), `scrapePool`, from every
/// store that
/// scrapes (sidecars: their Prometheus'), the replicas' views of one target
/// collapsed into one when deduplicating.
pub(super) async fn targets(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    use crate::storeapi::targets::{TargetState, TargetsRequest};
    let state = p.get("state").to_ascii_lowercase();
    let (active, dropped) = match state.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        _ => (false, false),
    };
    let opts = api.options(&p)?;
    let req = TargetsRequest {
        state: TargetState::from_param(&state),
        partial_response: crate::store::PartialResponse::allowed(opts.partial_response),
        hops: 0,
        deadline: Some(std::time::Instant::now() + api.engine.config().timeout),
    };
    let mut resp = if active || dropped {
        api.metadata(async { api.querier.targets(req).await.map_err(ApiError::from) })
            .await?
    } else {
        Default::default()
    };
    if opts.dedup {
        resp.dedup(&opts.replica_labels);
    } else {
        resp.dedup(&[]);
    }
    // `scrapePool`: one pool's targets (a dropped target's pool is the job
    // it was discovered for).
    let pool = p.get("scrapePool");
    if !pool.is_empty() {
        resp.active.retain(|t| t.scrape_pool == pool);
        resp.dropped
            .retain(|t| t.discovered_labels.get("job") == Some(pool));
    }
    let labels = |l: &crate::model::Labels| -> serde_json::Value {
        l.iter()
            .map(|x| {
                (
                    x.name.to_string(),
                    serde_json::Value::from(x.value.to_string()),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let active_json: Vec<serde_json::Value> = resp
        .active
        .iter()
        .filter(|_| active)
        .map(|t| {
            serde_json::json!({
                "discoveredLabels": labels(&t.discovered_labels),
                "labels": labels(&t.labels),
                "scrapePool": t.scrape_pool,
                "scrapeUrl": t.scrape_url,
                "globalUrl": t.global_url,
                "lastError": t.last_error,
                "lastScrape": t.last_scrape.map_or_else(
                    || "0001-01-01T00:00:00Z".to_string(),
                    crate::storeapi::targets::format_rfc3339,
                ),
                "lastScrapeDuration": super::rules::go_number(t.last_scrape_duration),
                "health": t.health.as_str(),
                "scrapeInterval": t.scrape_interval,
                "scrapeTimeout": t.scrape_timeout,
            })
        })
        .collect();
    let dropped_json: Vec<serde_json::Value> = resp
        .dropped
        .iter()
        .filter(|_| dropped)
        .map(|t| serde_json::json!({ "discoveredLabels": labels(&t.discovered_labels) }))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "activeTargets": active_json,
        "droppedTargets": dropped_json,
    }))
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(success(&body, &resp.warnings))
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
pub(super) async fn buildinfo() -> Response {
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
pub(super) async fn flags(State(api): State<PromApi>) -> Response {
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
pub(super) async fn runtimeinfo(State(api): State<PromApi>) -> Response {
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
pub(super) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}
