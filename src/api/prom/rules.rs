//! `/api/v1/rules` and `/api/v1/alerts` across the cluster: the rule groups
//! of every store that evaluates rules (sidecars: their Prometheus'), an HA
//! pair's collapsed into one (see [`RulesResponse::dedup`]), written as
//! Prometheus writes them.

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::params::Params;
use super::*;
use crate::model::Labels;
use crate::storeapi::rules::{
    AlertInstance, Rule, RuleFilter, RuleType, RulesRequest, RulesResponse,
};
use crate::storeapi::targets::format_rfc3339;

fn labels_json(l: &Labels) -> Value {
    l.iter()
        .map(|x| (x.name.to_string(), Value::from(x.value.to_string())))
        .collect::<Map<_, _>>()
        .into()
}

/// A float as Go's JSON writes it: whole numbers without a fraction.
pub(super) fn go_number(v: f64) -> Value {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

fn time_json(t: Option<std::time::SystemTime>) -> Value {
    Value::from(t.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), format_rfc3339))
}

fn alert_json(a: &AlertInstance) -> Value {
    let mut o = json!({
        "labels": labels_json(&a.labels),
        "annotations": labels_json(&a.annotations),
        "state": a.state.as_str(),
    });
    if let (Some(t), Some(m)) = (a.active_at, o.as_object_mut()) {
        m.insert("activeAt".into(), time_json(Some(t)));
    }
    if let Some(m) = o.as_object_mut() {
        m.insert("value".into(), Value::from(a.value.clone()));
    }
    o
}

fn rule_json(r: &Rule) -> Value {
    let c = r.common();
    let mut o = match r {
        Rule::Alerting {
            state,
            duration,
            keep_firing_for,
            annotations,
            alerts,
            ..
        } => {
            let mut o = json!({
                "state": state.as_str(),
                "name": c.name,
                "query": c.query,
                "duration": go_number(*duration),
                "labels": labels_json(&c.labels),
                "annotations": labels_json(annotations),
                "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
                "health": c.health,
            });
            if *keep_firing_for > 0.0 {
                if let Some(m) = o.as_object_mut() {
                    m.insert("keepFiringFor".into(), go_number(*keep_firing_for));
                }
            }
            o
        }
        Rule::Recording(_) => {
            let mut o = json!({ "name": c.name, "query": c.query });
            if let (false, Some(m)) = (c.labels.is_empty(), o.as_object_mut()) {
                m.insert("labels".into(), labels_json(&c.labels));
            }
            if let Some(m) = o.as_object_mut() {
                m.insert("health".into(), Value::from(c.health.clone()));
            }
            o
        }
    };
    if let Some(m) = o.as_object_mut() {
        if !c.last_error.is_empty() {
            m.insert("lastError".into(), Value::from(c.last_error.clone()));
        }
        m.insert("evaluationTime".into(), go_number(c.evaluation_time));
        m.insert("lastEvaluation".into(), time_json(c.last_evaluation));
        let kind = match r {
            Rule::Alerting { .. } => "alerting",
            Rule::Recording(_) => "recording",
        };
        m.insert("type".into(), Value::from(kind));
    }
    o
}

/// The cluster's rule groups of `kind`, collapsed.
async fn collect(api: &PromApi, p: &Params, kind: RuleType) -> Result<RulesResponse, ApiError> {
    let opts = api.options(p)?;
    let req = RulesRequest {
        kind,
        partial_response: crate::store::PartialResponse::allowed(opts.partial_response),
        hops: 0,
        deadline: Some(std::time::Instant::now() + api.engine.config().timeout),
    };
    let mut resp = api
        .metadata(async { api.querier.rules(req).await.map_err(ApiError::from) })
        .await?;
    let replicas: &[String] = if opts.dedup {
        &opts.replica_labels
    } else {
        &[]
    };
    resp.dedup(replicas);
    let strings = |name: &str| -> Vec<String> {
        p.all(name)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let filter = RuleFilter {
        groups: strings("rule_group[]"),
        files: strings("file[]"),
        names: strings("rule_name[]"),
        matchers: matcher_sets(p).map_err(|e| ApiError::invalid_param("match[]", e))?,
    };
    resp.filter(&filter);
    Ok(resp)
}

/// `/api/v1/rules`: `type` (`alert`, `record`, or empty for both).
pub(super) async fn rules(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    let kind = match p.get("type").to_ascii_lowercase().as_str() {
        "" => RuleType::All,
        "alert" => RuleType::Alert,
        "record" => RuleType::Record,
        other => {
            return Err(ApiError::invalid_param(
                "type",
                format!("not supported value {}", go_quote(other)),
            ))
        }
    };
    let resp = collect(&api, &p, kind).await?;
    let groups: Vec<Value> = resp
        .groups
        .iter()
        .map(|g| {
            json!({
                "name": g.name,
                "file": g.file,
                "rules": g.rules.iter().map(rule_json).collect::<Vec<_>>(),
                "interval": go_number(g.interval),
                "limit": g.limit,
                "evaluationTime": go_number(g.evaluation_time),
                "lastEvaluation": time_json(g.last_evaluation),
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "groups": groups }))
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(success(&body, &resp.warnings))
}

/// `/api/v1/alerts`: every alert of every alerting rule.
pub(super) async fn alerts(State(api): State<PromApi>, p: Params) -> Result<Response, ApiError> {
    let resp = collect(&api, &p, RuleType::Alert).await?;
    let alerts: Vec<Value> = resp.alerts().map(alert_json).collect();
    let body = serde_json::to_vec(&json!({ "alerts": alerts }))
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(success(&body, &resp.warnings))
}
