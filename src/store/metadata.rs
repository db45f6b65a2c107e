//! `thanos.Metadata` on both sides: the server answers from any [`Store`]
//! (a store without metadata answers `Unimplemented`), the client reads a
//! peer's stream into one [`MetadataResponse`].

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::server::StoreService;
use super::services::{frames, partial_from_pb, partial_to_pb, Frames};
use super::{Meta, MetadataRequest, MetadataResponse, StoreError};
use crate::proto::thanos as pb;
use pb::metric_metadata_response::Result as Frame;

/// Most metadata entries read from one peer: far more than any target set
/// describes, far less than would burden the querier.
const MAX_ENTRIES: usize = 1_000_000;

pub(crate) fn request_to_pb(r: &MetadataRequest) -> pb::MetricMetadataRequest {
    pb::MetricMetadataRequest {
        metric: r.metric.clone(),
        limit: i32::try_from(r.limit.max(-1)).unwrap_or(i32::MAX),
        partial_response_strategy: partial_to_pb(r.partial_response),
    }
}

pub(crate) fn request_from_pb(r: pb::MetricMetadataRequest) -> Result<MetadataRequest, StoreError> {
    let partial_response = partial_from_pb(r.partial_response_strategy)?;
    Ok(MetadataRequest {
        metric: r.metric,
        // As Thanos reads it: negative for all, 0 for none.
        limit: i64::from(r.limit),
        partial_response,
        hops: 0,
        deadline: None,
    })
}

fn response_to_pb(r: MetadataResponse) -> Vec<pb::MetricMetadataResponse> {
    let metadata = r
        .metadata
        .into_iter()
        .map(|(name, metas)| {
            let metas = metas
                .into_iter()
                .map(|m| pb::Meta {
                    r#type: m.kind,
                    help: m.help,
                    unit: m.unit,
                })
                .collect();
            (name, pb::MetricMetadataEntry { metas })
        })
        .collect();
    let mut frames: Vec<pb::MetricMetadataResponse> = r
        .warnings
        .into_iter()
        .map(|w| pb::MetricMetadataResponse {
            result: Some(Frame::Warning(w)),
        })
        .collect();
    frames.push(pb::MetricMetadataResponse {
        result: Some(Frame::Metadata(pb::MetricMetadata { metadata })),
    });
    frames
}

/// Reads a peer's frames into one answer.
pub(crate) async fn read_stream(
    mut stream: tonic::Streaming<pb::MetricMetadataResponse>,
    peer: &str,
) -> Result<MetadataResponse, StoreError> {
    let mut out = MetadataResponse::default();
    let mut entries = 0usize;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|s| StoreError::from_status(peer, &s))?;
        match frame.result {
            Some(Frame::Warning(w)) => out.warnings.push(w),
            Some(Frame::Metadata(m)) => {
                let mut part = MetadataResponse::default();
                for (name, entry) in m.metadata {
                    entries += entry.metas.len().max(1);
                    if entries > MAX_ENTRIES {
                        return Err(StoreError::protocol(
                            peer,
                            format!("more than {MAX_ENTRIES} metric metadata entries"),
                        ));
                    }
                    let metas = entry
                        .metas
                        .into_iter()
                        .map(|m| Meta {
                            kind: m.r#type,
                            help: m.help,
                            unit: m.unit,
                        })
                        .collect();
                    part.metadata.insert(name, metas);
                }
                out.merge(part);
            }
            None => {
                return Err(StoreError::protocol(
                    peer,
                    "metric metadata frame without content",
                ))
            }
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl pb::metadata_server::Metadata for StoreService {
    type MetricMetadataStream = Frames<pb::MetricMetadataResponse>;

    async fn metric_metadata(
        &self,
        request: Request<pb::MetricMetadataRequest>,
    ) -> Result<Response<Self::MetricMetadataStream>, Status> {
        let result = self
            .serve_call(
                "metric_metadata",
                request,
                |p, hops, deadline| {
                    Ok(MetadataRequest {
                        hops,
                        deadline,
                        ..request_from_pb(p)?
                    })
                },
                |store, r| async move { store.metric_metadata(r).await },
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
    fn requests_round_trip_and_limits_mean_the_same() {
        let mut r = MetadataRequest::all();
        r.metric = "up".into();
        r.limit = 7;
        r.partial_response = PartialResponse::Abort;
        let back = request_from_pb(request_to_pb(&r)).unwrap();
        assert_eq!(back, r);
        let all = request_from_pb(request_to_pb(&MetadataRequest::all())).unwrap();
        assert_eq!(all.limit, -1);
        let zero = request_from_pb(pb::MetricMetadataRequest::default()).unwrap();
        assert_eq!(zero.limit, 0);
        let bad = pb::MetricMetadataRequest {
            partial_response_strategy: 9,
            ..Default::default()
        };
        assert!(request_from_pb(bad).is_err());
    }
}
