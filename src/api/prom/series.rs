//! `/api/v1/series`, label names and label values, answered by the
//! querier and streamed as they arrive.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;

use super::params::{go_quote, Params};
use crate::model::time::{MAX_TIME, MIN_TIME};
use crate::series::merge::MergedFrame;
use crate::store::SeriesRequest;

use super::*;

/// `/api/v1/series`: label sets of the series any `match[]` selects,
/// sorted, each once. The selectors' sorted streams are merged and written
/// as they arrive; only the JSON is held, so that a failure half-way can
/// still answer with an error status.
pub(super) async fn series(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    api.metadata(series_inner(&api, p)).await
}

async fn series_inner(api: &PromApi, p: Params) -> Result<Response, ApiError> {
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
        req.deadline = Some(std::time::Instant::now() + api.engine.config().timeout);
        req.limit = if limit == 0 {
            0
        } else {
            limit.saturating_add(1)
        };
        api.querier.series_with(req, opts.clone())
    });
    let streams = futures::future::try_join_all(requests).await?;
    // The matcher sets' sorted answers, merged: each label set once.
    let mut merged = std::pin::pin!(crate::series::merge::merge(streams));
    let mut warnings = Vec::new();
    let mut out = json::begin_success(4096);
    out.push(b'[');
    let mut written = 0;
    while let Some(frame) = merged.next().await {
        let labels = match frame? {
            MergedFrame::Warning(w) => {
                warnings.push(w);
                continue;
            }
            MergedFrame::Series(g) => g.labels,
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
        api.check_answer_size(out.len())?;
    }
    out.push(b']');
    json::end_success(&mut out, &warnings);
    Ok(json_response(StatusCode::OK, out, !warnings.is_empty()))
}

/// `/api/v1/labels`: label names of the series `match[]` selects (all
/// series without it).
pub(super) async fn label_names(
    State(api): State<PromApi>,
    p: Params,
) -> Result<Response, ApiError> {
    api.metadata(label_names_inner(&api, p)).await
}

async fn label_names_inner(api: &PromApi, p: Params) -> Result<Response, ApiError> {
    let start = time_param(&p, "start", MIN_TIME)?;
    let end = time_param(&p, "end", MAX_TIME)?;
    let sets = matcher_sets(&p).map_err(ApiError::bad_data)?;
    let opts = api.options(&p)?;
    let limit = limit_param(&p)?;
    let (names, warnings) = api.labels("", (start, end), sets, &opts, limit).await?;
    Ok(labels_response(&names, &warnings))
}

/// Prometheus' label name syntax.
pub(super) fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `/api/v1/label/{name}/values`.
pub(super) async fn label_values(
    State(api): State<PromApi>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    api.metadata(label_values_inner(&api, name, p)).await
}

async fn label_values_inner(api: &PromApi, name: String, p: Params) -> Result<Response, ApiError> {
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

pub(super) fn labels_response(values: &[String], warnings: &[String]) -> Response {
    let mut out = json::begin_success(values.iter().map(|v| v.len() + 3).sum::<usize>() + 64);
    json::write_str_array(&mut out, values.iter().map(String::as_str));
    json::end_success(&mut out, warnings);
    json_response(StatusCode::OK, out, !warnings.is_empty())
}
