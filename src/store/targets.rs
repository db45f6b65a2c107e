//! `thanos.Targets` on both sides: the server answers from any [`Store`]
//! (a store that scrapes nothing answers `Unimplemented`), the client reads
//! a peer's stream into one [`TargetsResponse`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::server::StoreService;
use super::services::{frames, partial_from_pb, partial_to_pb, Frames};
use super::StoreError;
use crate::model::Labels;
use crate::proto::{self, thanos as pb};
use crate::storeapi::targets::{
    ActiveTarget, DroppedTarget, TargetHealth, TargetState, TargetsRequest, TargetsResponse,
};
use pb::targets_response::Result as Frame;

/// Most targets read from one peer.
const MAX_TARGETS: usize = 1_000_000;

pub(crate) fn request_to_pb(r: &TargetsRequest) -> pb::TargetsRequest {
    pb::TargetsRequest {
        state: match r.state {
            TargetState::Any => pb::targets_request::State::Any,
            TargetState::Active => pb::targets_request::State::Active,
            TargetState::Dropped => pb::targets_request::State::Dropped,
        } as i32,
        partial_response_strategy: partial_to_pb(r.partial_response),
    }
}

pub(crate) fn request_from_pb(r: pb::TargetsRequest) -> Result<TargetsRequest, StoreError> {
    let state = match pb::targets_request::State::try_from(r.state) {
        Ok(pb::targets_request::State::Any) => TargetState::Any,
        Ok(pb::targets_request::State::Active) => TargetState::Active,
        Ok(pb::targets_request::State::Dropped) => TargetState::Dropped,
        Err(_) => {
            return Err(StoreError::InvalidArgument(format!(
                "unknown target state {}",
                r.state
            )))
        }
    };
    let partial_response = partial_from_pb(r.partial_response_strategy)?;
    Ok(TargetsRequest {
        state,
        partial_response,
        hops: 0,
        deadline: None,
    })
}

pub(crate) fn set_to_pb(l: &Labels) -> Option<pb::ZLabelSet> {
    Some(pb::ZLabelSet {
        labels: proto::labels_to_pb(l),
    })
}

pub(crate) fn set_from_pb(s: Option<pb::ZLabelSet>, peer: &str) -> Result<Labels, StoreError> {
    proto::labels_from_pb(s.map(|s| s.labels).unwrap_or_default())
        .map_err(|e| StoreError::protocol(peer, e))
}

pub(crate) fn time_to_pb(t: Option<SystemTime>) -> Option<prost_types::Timestamp> {
    let d = t?.duration_since(UNIX_EPOCH).ok()?;
    Some(prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).ok()?,
        nanos: i32::try_from(d.subsec_nanos()).ok()?,
    })
}

pub(crate) fn time_from_pb(t: Option<prost_types::Timestamp>) -> Option<SystemTime> {
    let t = t?;
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    // Go's zero time (year 1) and the Unix epoch both mean "never".
    (secs > 0).then(|| UNIX_EPOCH + Duration::new(secs, nanos.min(999_999_999)))
}

fn response_to_pb(r: TargetsResponse) -> Vec<pb::TargetsResponse> {
    let active = r
        .active
        .into_iter()
        .map(|t| pb::ActiveTarget {
            discovered_labels: set_to_pb(&t.discovered_labels),
            labels: set_to_pb(&t.labels),
            scrape_pool: t.scrape_pool,
            scrape_url: t.scrape_url,
            global_url: t.global_url,
            last_error: t.last_error,
            last_scrape: time_to_pb(t.last_scrape),
            last_scrape_duration: t.last_scrape_duration,
            health: match t.health {
                TargetHealth::Down => pb::TargetHealth::Down,
                TargetHealth::Up => pb::TargetHealth::Up,
                TargetHealth::Unknown => pb::TargetHealth::Unknown,
            } as i32,
            scrape_interval: t.scrape_interval,
            scrape_timeout: t.scrape_timeout,
        })
        .collect();
    let dropped = r
        .dropped
        .into_iter()
        .map(|t| pb::DroppedTarget {
            discovered_labels: set_to_pb(&t.discovered_labels),
        })
        .collect();
    let mut frames: Vec<pb::TargetsResponse> = r
        .warnings
        .into_iter()
        .map(|w| pb::TargetsResponse {
            result: Some(Frame::Warning(w)),
        })
        .collect();
    frames.push(pb::TargetsResponse {
        result: Some(Frame::Targets(pb::TargetDiscovery {
            active_targets: active,
            dropped_targets: dropped,
        })),
    });
    frames
}

/// Reads a peer's frames into one answer.
pub(crate) async fn read_stream(
    mut stream: tonic::Streaming<pb::TargetsResponse>,
    peer: &str,
) -> Result<TargetsResponse, StoreError> {
    let mut out = TargetsResponse::default();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|s| StoreError::from_status(peer, &s))?;
        match frame.result {
            Some(Frame::Warning(w)) => out.warnings.push(w),
            Some(Frame::Targets(d)) => {
                if out.active.len()
                    + out.dropped.len()
                    + d.active_targets.len()
                    + d.dropped_targets.len()
                    > MAX_TARGETS
                {
                    return Err(StoreError::protocol(
                        peer,
                        format!("more than {MAX_TARGETS} targets"),
                    ));
                }
                for t in d.active_targets {
                    out.active.push(ActiveTarget {
                        discovered_labels: set_from_pb(t.discovered_labels, peer)?,
                        labels: set_from_pb(t.labels, peer)?,
                        scrape_pool: t.scrape_pool,
                        scrape_url: t.scrape_url,
                        global_url: t.global_url,
                        last_error: t.last_error,
                        last_scrape: time_from_pb(t.last_scrape),
                        last_scrape_duration: t.last_scrape_duration,
                        health: match pb::TargetHealth::try_from(t.health) {
                            Ok(pb::TargetHealth::Down) => TargetHealth::Down,
                            Ok(pb::TargetHealth::Up) => TargetHealth::Up,
                            _ => TargetHealth::Unknown,
                        },
                        scrape_interval: t.scrape_interval,
                        scrape_timeout: t.scrape_timeout,
                    });
                }
                for t in d.dropped_targets {
                    out.dropped.push(DroppedTarget {
                        discovered_labels: set_from_pb(t.discovered_labels, peer)?,
                    });
                }
            }
            None => return Err(StoreError::protocol(peer, "targets frame without content")),
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl pb::targets_server::Targets for StoreService {
    type TargetsStream = Frames<pb::TargetsResponse>;

    async fn targets(
        &self,
        request: Request<pb::TargetsRequest>,
    ) -> Result<Response<Self::TargetsStream>, Status> {
        let result = self
            .serve_call(
                "targets",
                request,
                |p, hops, deadline| {
                    Ok(TargetsRequest {
                        hops,
                        deadline,
                        ..request_from_pb(p)?
                    })
                },
                |store, r| async move { store.targets(r).await },
            )
            .await?;
        Ok(frames(response_to_pb(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PartialResponse;

    #[test]
    fn requests_and_times_round_trip() {
        let r = TargetsRequest {
            state: TargetState::Dropped,
            partial_response: PartialResponse::Abort,
            hops: 0,
            deadline: None,
        };
        assert_eq!(request_from_pb(request_to_pb(&r)).unwrap(), r);
        let bad = pb::TargetsRequest {
            state: 7,
            ..Default::default()
        };
        assert!(request_from_pb(bad).is_err());
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(time_from_pb(time_to_pb(Some(t))), Some(t));
        // Go's zero time is "never".
        let zero = prost_types::Timestamp {
            seconds: -62_135_596_800,
            nanos: 0,
        };
        assert_eq!(time_from_pb(Some(zero)), None);
    }
}
