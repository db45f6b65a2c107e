//! The gRPC adapter: serves any [`Store`] as Thanos' `thanos.Store` and
//! `thanos.info.Info` services.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, instrument};

use super::metrics::{RequestTimer, CHUNKS_SENT_TOTAL, SERIES_SENT_TOTAL};
use super::{LabelsRequest, LabelsResponse, SeriesFrame, SeriesRequest, Store, StoreError};
use crate::proto::thanos::info::info_server::{Info, InfoServer};
use crate::proto::thanos::store_server::StoreServer;
use crate::proto::{self, thanos as pb};

/// Largest message the server accepts or sends; single series frames and
/// label lists stay far below it.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

#[derive(Clone)]
pub struct StoreService {
    store: Arc<dyn Store>,
}

impl StoreService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn info_checked(&self) -> Result<super::StoreInfo, Status> {
        let mut timer = RequestTimer::start("info");
        let r = self.store.info().await;
        timer.finish(r.as_ref().map(|_| ()).map_err(StoreError::code));
        r.map_err(Status::from)
    }
}

/// The hop count a caller sent; absent or unreadable counts as 0.
fn hops<T>(request: &Request<T>) -> u32 {
    request
        .metadata()
        .get(super::HOPS_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::SeriesResponse, Status>> + Send>>;

fn frame(result: pb::series_response::Result) -> pb::SeriesResponse {
    pb::SeriesResponse {
        result: Some(result),
    }
}

#[tonic::async_trait]
impl pb::store_server::Store for StoreService {
    async fn info(
        &self,
        _request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let info = self.info_checked().await?;
        Ok(Response::new(proto::info_to_store_pb(&info)))
    }

    type SeriesStream = FrameStream;

    #[instrument(skip_all, fields(rpc = "series"))]
    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let mut timer = RequestTimer::start("series");
        let hops = hops(&request);
        let req = match SeriesRequest::try_from(request.into_inner()) {
            Ok(r) => SeriesRequest { hops, ..r },
            Err(e) => {
                timer.finish(Err(e.code()));
                return Err(e.into());
            }
        };
        debug!(
            mint = req.min_time,
            maxt = req.max_time,
            matchers = req.matchers.len(),
            "series"
        );
        let mut inner = match self.store.series(req).await {
            Ok(s) => s,
            Err(e) => {
                timer.finish(Err(e.code()));
                return Err(e.into());
            }
        };
        let out = async_stream::stream! {
            let mut timer = timer;
            let (mut series, mut chunks) = (0u64, 0u64);
            while let Some(item) = inner.next().await {
                match item {
                    Ok(SeriesFrame::Series(s)) => {
                        series += 1;
                        chunks += s.chunks.len() as u64;
                        yield Ok(frame(pb::series_response::Result::Series(proto::series_to_pb(s))));
                    }
                    Ok(SeriesFrame::Warning(w)) => {
                        yield Ok(frame(pb::series_response::Result::Warning(w)));
                    }
                    Err(e) => {
                        timer.finish(Err(e.code()));
                        yield Err(Status::from(e));
                        break;
                    }
                }
            }
            metrics::counter!(SERIES_SENT_TOTAL).increment(series);
            metrics::counter!(CHUNKS_SENT_TOTAL).increment(chunks);
            if timer.is_open() {
                timer.finish(Ok(()));
            }
        };
        Ok(Response::new(Box::pin(out)))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let resp = answer_labels("label_names", request, |req| async move {
            let strip = req.without_replica_labels.clone();
            let mut resp = self.store.label_names(req).await?;
            resp.values.retain(|n| !strip.contains(n));
            Ok(resp)
        })
        .await?;
        Ok(Response::new(pb::LabelNamesResponse {
            names: resp.values,
            warnings: resp.warnings,
            hints: None,
        }))
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        let resp = answer_labels("label_values", request, |req| async move {
            if req.name.is_empty() {
                return Err(StoreError::InvalidArgument("label name is empty".into()));
            }
            // A replica label the caller deduplicates on has no values in
            // its answer.
            if req.without_replica_labels.contains(&req.name) {
                return Ok(LabelsResponse::default());
            }
            self.store.label_values(req).await
        })
        .await?;
        Ok(Response::new(pb::LabelValuesResponse {
            values: resp.values,
            warnings: resp.warnings,
            hints: None,
        }))
    }
}

/// Converts a label request, runs `call` on it and times the whole, so
/// that label names and label values share one path.
async fn answer_labels<M, F, Fut>(
    op: &'static str,
    request: Request<M>,
    call: F,
) -> Result<LabelsResponse, Status>
where
    M: TryInto<LabelsRequest, Error = StoreError>,
    F: FnOnce(LabelsRequest) -> Fut,
    Fut: std::future::Future<Output = Result<LabelsResponse, StoreError>>,
{
    let mut timer = RequestTimer::start(op);
    let hops = hops(&request);
    let result = match request.into_inner().try_into() {
        Ok(req) => call(LabelsRequest { hops, ..req }).await,
        Err(e) => Err(e),
    };
    timer.finish(result.as_ref().map(|_| ()).map_err(StoreError::code));
    Ok(result?)
}

#[tonic::async_trait]
impl Info for StoreService {
    async fn info(
        &self,
        _request: Request<pb::info::InfoRequest>,
    ) -> Result<Response<pb::info::InfoResponse>, Status> {
        let info = self.info_checked().await?;
        Ok(Response::new(proto::info_to_info_pb(&info)))
    }
}

/// Serves `store` on `listener` until `shutdown` is canceled, then drains
/// the requests in flight.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let svc = StoreService::new(store);
    let server = tonic::transport::Server::builder()
        .add_service(
            StoreServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(InfoServer::new(svc))
        // Small answers must not wait for delayed ACKs.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.clone().cancelled_owned(),
        );
    crate::shutdown::drain_bounded("gRPC", server, &shutdown).await
}
