//! `thanos.Exemplars` on both sides: the server answers from any [`Store`]
//! (a store that keeps no exemplars answers `Unimplemented`), one series a
//! frame; the client reads a peer's stream into one [`ExemplarsResponse`].

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::server::StoreService;
use super::services::{frames, partial_from_pb, partial_to_pb, Frames};
use super::targets::{set_from_pb, set_to_pb};
use super::StoreError;
use crate::proto::thanos as pb;
use crate::storeapi::exemplars::{Exemplar, ExemplarSeries, ExemplarsRequest, ExemplarsResponse};
use pb::exemplars_response::Result as Frame;

/// Most exemplars read from one peer: a Prometheus keeps 100,000 by
/// default, ten times its largest setting seen in practice.
pub(crate) const MAX_EXEMPLARS: usize = 1_000_000;

pub(crate) fn request_to_pb(r: &ExemplarsRequest) -> pb::ExemplarsRequest {
    pb::ExemplarsRequest {
        query: r.query.clone(),
        start: r.start,
        end: r.end,
        partial_response_strategy: partial_to_pb(r.partial_response),
    }
}

pub(crate) fn request_from_pb(r: pb::ExemplarsRequest) -> Result<ExemplarsRequest, StoreError> {
    let partial_response = partial_from_pb(r.partial_response_strategy)?;
    crate::storeapi::validate_range(r.start, r.end)?;
    Ok(ExemplarsRequest {
        query: r.query,
        start: r.start,
        end: r.end,
        partial_response,
        hops: 0,
        deadline: None,
    })
}

fn response_to_pb(r: ExemplarsResponse) -> Vec<pb::ExemplarsResponse> {
    let mut frames: Vec<pb::ExemplarsResponse> = r
        .warnings
        .into_iter()
        .map(|w| pb::ExemplarsResponse {
            result: Some(Frame::Warning(w)),
        })
        .collect();
    frames.extend(r.series.into_iter().map(|s| {
        pb::ExemplarsResponse {
            result: Some(Frame::Data(pb::ExemplarData {
                series_labels: set_to_pb(&s.series_labels),
                exemplars: s
                    .exemplars
                    .into_iter()
                    .map(|e| pb::Exemplar {
                        labels: set_to_pb(&e.labels),
                        value: e.value,
                        ts: e.ts,
                    })
                    .collect(),
            })),
        }
    }));
    frames
}

/// Reads a peer's frames into one answer.
pub(crate) async fn read_stream(
    mut stream: tonic::Streaming<pb::ExemplarsResponse>,
    peer: &str,
) -> Result<ExemplarsResponse, StoreError> {
    let mut out = ExemplarsResponse::default();
    let mut count = 0usize;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|s| StoreError::from_status(peer, &s))?;
        match frame.result {
            Some(Frame::Warning(w)) => out.warnings.push(w),
            Some(Frame::Data(d)) => {
                count += d.exemplars.len().max(1);
                if count > MAX_EXEMPLARS {
                    return Err(StoreError::protocol(
                        peer,
                        format!("more than {MAX_EXEMPLARS} exemplars"),
                    ));
                }
                let exemplars = d
                    .exemplars
                    .into_iter()
                    .map(|e| {
                        Ok(Exemplar {
                            labels: set_from_pb(e.labels, peer)?,
                            value: e.value,
                            ts: e.ts,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?;
                out.series.push(ExemplarSeries {
                    series_labels: set_from_pb(d.series_labels, peer)?,
                    exemplars,
                });
            }
            None => {
                return Err(StoreError::protocol(
                    peer,
                    "exemplars frame without content",
                ))
            }
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl pb::exemplars_server::Exemplars for StoreService {
    type ExemplarsStream = Frames<pb::ExemplarsResponse>;

    async fn exemplars(
        &self,
        request: Request<pb::ExemplarsRequest>,
    ) -> Result<Response<Self::ExemplarsStream>, Status> {
        let result = self
            .serve_call(
                "exemplars",
                request,
                |p, hops, deadline| {
                    Ok(ExemplarsRequest {
                        hops,
                        deadline,
                        ..request_from_pb(p)?
                    })
                },
                |store, r| async move { store.exemplars(r).await },
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
    fn requests_round_trip_and_bad_ones_are_refused() {
        let r = ExemplarsRequest {
            query: "rate(x[5m])".into(),
            start: 1_000,
            end: 2_000,
            partial_response: PartialResponse::Abort,
            hops: 0,
            deadline: None,
        };
        assert_eq!(request_from_pb(request_to_pb(&r)).unwrap(), r);
        let backwards = pb::ExemplarsRequest {
            start: 5,
            end: 4,
            ..Default::default()
        };
        assert!(request_from_pb(backwards).is_err());
        let bad = pb::ExemplarsRequest {
            partial_response_strategy: 9,
            ..Default::default()
        };
        assert!(request_from_pb(bad).is_err());
    }
}
