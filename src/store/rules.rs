//! `thanos.Rules` on both sides: the server answers from any [`Store`]
//! (one rule group a frame; a store without rules answers
//! `Unimplemented`), the client reads a peer's stream into one
//! [`RulesResponse`].

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::server::StoreService;
use super::services::{frames, partial_from_pb, partial_to_pb, Frames};
use super::targets::{set_from_pb, set_to_pb, time_from_pb, time_to_pb};
use super::{PartialResponse, StoreError};
use crate::proto::thanos as pb;
use crate::storeapi::rules::{
    AlertInstance, AlertState, Rule, RuleCommon, RuleGroup, RuleType, RulesRequest, RulesResponse,
};
use pb::rules_response::Result as Frame;

/// Most rules read from one peer.
const MAX_RULES: usize = 1_000_000;

pub(crate) fn request_to_pb(r: &RulesRequest) -> pb::RulesRequest {
    pb::RulesRequest {
        r#type: match r.kind {
            RuleType::All => pb::rules_request::Type::All,
            RuleType::Alert => pb::rules_request::Type::Alert,
            RuleType::Record => pb::rules_request::Type::Record,
        } as i32,
        partial_response_strategy: partial_to_pb(r.partial_response),
        ..Default::default()
    }
}

pub(crate) fn request_from_pb(r: pb::RulesRequest) -> Result<RulesRequest, StoreError> {
    let kind = match pb::rules_request::Type::try_from(r.r#type) {
        Ok(pb::rules_request::Type::All) => RuleType::All,
        Ok(pb::rules_request::Type::Alert) => RuleType::Alert,
        Ok(pb::rules_request::Type::Record) => RuleType::Record,
        Err(_) => {
            return Err(StoreError::InvalidArgument(format!(
                "unknown rule type {}",
                r.r#type
            )))
        }
    };
    let partial_response = partial_from_pb(r.partial_response_strategy)?;
    Ok(RulesRequest {
        kind,
        partial_response,
        hops: 0,
        deadline: None,
    })
}

fn state_to_pb(s: AlertState) -> i32 {
    let s = match s {
        AlertState::Unknown => pb::AlertState::Unknown,
        AlertState::Inactive => pb::AlertState::Inactive,
        AlertState::Pending => pb::AlertState::Pending,
        AlertState::Firing => pb::AlertState::Firing,
    };
    s as i32
}

fn state_from_pb(s: i32) -> AlertState {
    match pb::AlertState::try_from(s) {
        Ok(pb::AlertState::Inactive) => AlertState::Inactive,
        Ok(pb::AlertState::Pending) => AlertState::Pending,
        Ok(pb::AlertState::Firing) => AlertState::Firing,
        _ => AlertState::Unknown,
    }
}

fn rule_to_pb(r: Rule) -> pb::Rule {
    use pb::rule::Result as R;
    pb::Rule {
        result: Some(match r {
            Rule::Recording(c) => R::Recording(pb::RecordingRule {
                name: c.name,
                query: c.query,
                labels: set_to_pb(&c.labels),
                health: c.health,
                last_error: c.last_error,
                evaluation_duration_seconds: c.evaluation_time,
                last_evaluation: time_to_pb(c.last_evaluation),
            }),
            Rule::Alerting {
                common: c,
                state,
                duration,
                keep_firing_for,
                annotations,
                alerts,
            } => R::Alert(pb::Alert {
                state: state_to_pb(state),
                name: c.name,
                query: c.query,
                duration_seconds: duration,
                labels: set_to_pb(&c.labels),
                annotations: set_to_pb(&annotations),
                alerts: alerts
                    .into_iter()
                    .map(|a| pb::AlertInstance {
                        labels: set_to_pb(&a.labels),
                        annotations: set_to_pb(&a.annotations),
                        state: state_to_pb(a.state),
                        active_at: time_to_pb(a.active_at),
                        value: a.value,
                        partial_response_strategy: partial_to_pb(PartialResponse::Abort),
                    })
                    .collect(),
                health: c.health,
                last_error: c.last_error,
                evaluation_duration_seconds: c.evaluation_time,
                last_evaluation: time_to_pb(c.last_evaluation),
                keep_firing_for_seconds: keep_firing_for,
            }),
        }),
    }
}

fn rule_from_pb(r: pb::Rule, peer: &str) -> Result<Rule, StoreError> {
    use pb::rule::Result as R;
    Ok(match r.result {
        Some(R::Recording(x)) => Rule::Recording(RuleCommon {
            name: x.name,
            query: x.query,
            labels: set_from_pb(x.labels, peer)?,
            health: x.health,
            last_error: x.last_error,
            evaluation_time: x.evaluation_duration_seconds,
            last_evaluation: time_from_pb(x.last_evaluation),
        }),
        Some(R::Alert(x)) => Rule::Alerting {
            common: RuleCommon {
                name: x.name,
                query: x.query,
                labels: set_from_pb(x.labels, peer)?,
                health: x.health,
                last_error: x.last_error,
                evaluation_time: x.evaluation_duration_seconds,
                last_evaluation: time_from_pb(x.last_evaluation),
            },
            state: state_from_pb(x.state),
            duration: x.duration_seconds,
            keep_firing_for: x.keep_firing_for_seconds,
            annotations: set_from_pb(x.annotations, peer)?,
            alerts: x
                .alerts
                .into_iter()
                .map(|a| {
                    Ok(AlertInstance {
                        labels: set_from_pb(a.labels, peer)?,
                        annotations: set_from_pb(a.annotations, peer)?,
                        state: state_from_pb(a.state),
                        active_at: time_from_pb(a.active_at),
                        value: a.value,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        },
        None => return Err(StoreError::protocol(peer, "rule without content")),
    })
}

fn response_to_pb(r: RulesResponse) -> Vec<pb::RulesResponse> {
    let mut frames: Vec<pb::RulesResponse> = r
        .warnings
        .into_iter()
        .map(|w| pb::RulesResponse {
            result: Some(Frame::Warning(w)),
        })
        .collect();
    for g in r.groups {
        frames.push(pb::RulesResponse {
            result: Some(Frame::Group(pb::RuleGroup {
                name: g.name,
                file: g.file,
                rules: g.rules.into_iter().map(rule_to_pb).collect(),
                interval: g.interval,
                evaluation_duration_seconds: g.evaluation_time,
                last_evaluation: time_to_pb(g.last_evaluation),
                partial_response_strategy: partial_to_pb(PartialResponse::Abort),
                limit: g.limit,
            })),
        });
    }
    frames
}

/// Reads a peer's frames into one answer.
pub(crate) async fn read_stream(
    mut stream: tonic::Streaming<pb::RulesResponse>,
    peer: &str,
) -> Result<RulesResponse, StoreError> {
    let mut out = RulesResponse::default();
    let mut rules = 0usize;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|s| StoreError::from_status(peer, &s))?;
        match frame.result {
            Some(Frame::Warning(w)) => out.warnings.push(w),
            Some(Frame::Group(g)) => {
                rules += g.rules.len().max(1);
                if rules > MAX_RULES {
                    return Err(StoreError::protocol(
                        peer,
                        format!("more than {MAX_RULES} rules"),
                    ));
                }
                out.groups.push(RuleGroup {
                    name: g.name,
                    file: g.file,
                    rules: g
                        .rules
                        .into_iter()
                        .map(|r| rule_from_pb(r, peer))
                        .collect::<Result<_, _>>()?,
                    interval: g.interval,
                    evaluation_time: g.evaluation_duration_seconds,
                    last_evaluation: time_from_pb(g.last_evaluation),
                    limit: g.limit,
                });
            }
            None => return Err(StoreError::protocol(peer, "rules frame without content")),
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl pb::rules_server::Rules for StoreService {
    type RulesStream = Frames<pb::RulesResponse>;

    async fn rules(
        &self,
        request: Request<pb::RulesRequest>,
    ) -> Result<Response<Self::RulesStream>, Status> {
        let result = self
            .serve_call(
                "rules",
                request,
                |p, hops, deadline| {
                    Ok(RulesRequest {
                        hops,
                        deadline,
                        ..request_from_pb(p)?
                    })
                },
                |store, r| async move { store.rules(r).await },
            )
            .await?;
        Ok(frames(response_to_pb(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn rules_round_trip() {
        let alerting = Rule::Alerting {
            common: RuleCommon {
                name: "A".into(),
                query: "up == 0".into(),
                labels: Labels::from_pairs([("severity", "page")]).unwrap(),
                health: "ok".into(),
                last_error: String::new(),
                evaluation_time: 0.25,
                last_evaluation: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(9)),
            },
            state: AlertState::Firing,
            duration: 60.0,
            keep_firing_for: 0.0,
            annotations: Labels::from_pairs([("summary", "s")]).unwrap(),
            alerts: vec![AlertInstance {
                labels: Labels::from_pairs([("job", "x")]).unwrap(),
                annotations: Labels::empty(),
                state: AlertState::Firing,
                active_at: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(5)),
                value: "1e+00".into(),
            }],
        };
        let back = rule_from_pb(rule_to_pb(alerting.clone()), "p").unwrap();
        assert_eq!(back, alerting);
        let r = RulesRequest {
            kind: RuleType::Alert,
            partial_response: PartialResponse::Warn,
            hops: 0,
            deadline: None,
        };
        assert_eq!(request_from_pb(request_to_pb(&r)).unwrap(), r);
    }
}
