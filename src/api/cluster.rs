//! `/api/v1/stores` (in Thanos' shape) and `/api/v1/cluster`, built from the
//! actors' snapshots.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use actix::Addr;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::actors::registry::{GetRegistry, RegistrySnapshot};
use crate::actors::StoreRegistry;
use crate::cluster::membership::{GetMembership, MembershipSnapshot};
use crate::cluster::Membership;
use crate::model::Labels;

/// How long an API call waits for an actor before answering 503.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ClusterState {
    pub registry: Addr<StoreRegistry>,
    pub membership: Option<Addr<Membership>>,
    /// The gossip keys' state, read at each request.
    pub gossip_keys: Option<std::sync::Arc<dyn Fn() -> crate::cluster::GossipKeys + Send + Sync>>,
}

pub fn router(state: ClusterState) -> Router {
    Router::new()
        .route("/api/v1/stores", get(stores))
        .route("/api/v1/cluster", get(cluster))
        .with_state(state)
}

fn error(status: StatusCode, error_type: &str, message: String) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": error_type, "error": message})),
    )
        .into_response()
}

async fn registry_snapshot(state: &ClusterState) -> Result<RegistrySnapshot, Response> {
    match tokio::time::timeout(ACTOR_TIMEOUT, state.registry.send(GetRegistry)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("store registry: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "store registry did not answer".into(),
        )),
    }
}

async fn membership_snapshot(state: &ClusterState) -> Result<MembershipSnapshot, Response> {
    let Some(m) = &state.membership else {
        return Ok(MembershipSnapshot::default());
    };
    match tokio::time::timeout(ACTOR_TIMEOUT, m.send(GetMembership)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("membership: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "membership did not answer".into(),
        )),
    }
}

pub fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect(),
    )
}

fn time_json(t: Option<SystemTime>) -> Value {
    match t {
        Some(t) => Value::String(humantime::format_rfc3339_millis(t).to_string()),
        None => Value::Null,
    }
}

async fn stores(State(state): State<ClusterState>) -> Response {
    let snap = match registry_snapshot(&state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for g in &snap.groups {
        for m in &g.members {
            let (sets, min, max, component) = match (&m.info, &m.advert) {
                (Some(i), _) => (
                    i.label_sets.clone(),
                    i.min_time,
                    i.max_time,
                    i.component.clone(),
                ),
                (None, Some(a)) => (
                    a.label_sets.clone(),
                    a.min_time,
                    a.max_time,
                    a.component.clone(),
                ),
                (None, None) => (vec![], i64::MIN, i64::MAX, "unknown".into()),
            };
            by_type.entry(component).or_default().push(json!({
                "name": m.endpoint,
                "lastCheck": time_json(m.last_check),
                "lastError": m.last_error,
                "labelSets": sets.iter().map(labels_json).collect::<Vec<_>>(),
                "minTime": min,
                "maxTime": max,
            }));
        }
    }
    Json(json!({"status": "success", "data": by_type})).into_response()
}

/// A member's merged view: every querier's recent requests to it.
fn shared_json(m: &crate::query::view::Merged) -> Value {
    let c = &m.counts;
    let last_failure = (c.last_failure > 0)
        .then(|| std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.last_failure));
    json!({
        "views": m.peers + 1,
        "requests": c.requests,
        "failures": c.failures,
        "failureShare": c.failure_share(),
        "medianSeconds": c.median().map(|d| d.as_secs_f64()),
        "p90Seconds": crate::query::view::quantile(&c.buckets, 0.9, crate::query::view::MIN_REQUESTS)
            .map(|d| d.as_secs_f64()),
        "lastFailure": time_json(last_failure),
    })
}

async fn cluster(State(state): State<ClusterState>) -> Response {
    let (members, registry) = match (
        membership_snapshot(&state).await,
        registry_snapshot(&state).await,
    ) {
        (Ok(m), Ok(r)) => (m, r),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let groups: Vec<Value> = registry
        .groups
        .iter()
        .map(|g| {
            json!({
                "labelSets": g.key.label_sets.iter().map(labels_json).collect::<Vec<_>>(),
                "storeGroupId": g.key.store_group_id,
                "peerType": g.peer_type.as_str(),
                "members": g.members.iter().map(|m| {
                    let info = m.info.as_ref();
                    json!({
                        "endpoint": m.endpoint,
                        "source": m.source.as_str(),
                        "health": m.health.as_str(),
                        "lastCheck": time_json(m.last_check),
                        "lastSuccess": time_json(m.last_success),
                        "lastError": m.last_error,
                        "latencySeconds": m.latency.as_secs_f64(),
                        "inFlight": m.in_flight,
                        "minTime": info.map(|i| i.min_time),
                        "maxTime": info.map(|i| i.max_time),
                        // False while its gossip says it lacks data it
                        // should hold (asked after complete members).
                        "complete": m.advert.as_ref().is_none_or(|a| !a.incomplete),
                        "answers": m.answers,
                        "lastAnswer": time_json(m.last_answer),
                        "requests": m.requests,
                        "probes": m.probes,
                        "demoted": m.demoted,
                        "shared": m.shared.as_ref().map(shared_json),
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "status": "success",
        "data": {
            "joined": members.joined,
            "members": members.nodes,
            "groups": groups,
            "healthChecked": registry.first_round_done,
            "gossip": state.gossip_keys.as_ref().map(|k| k()),
        }
    }))
    .into_response()
}
