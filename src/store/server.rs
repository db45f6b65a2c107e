//! The gRPC adapter: serves any [`Store`] as Thanos' `thanos.Store` and
//! `thanos.info.Info` services.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, instrument};

use super::metrics::{RequestTimer, CHUNKS_SENT_TOTAL, SERIES_SENT_TOTAL, STREAMS_ABANDONED_TOTAL};
use super::{LabelsRequest, LabelsResponse, SeriesFrame, SeriesRequest, Store, StoreError};
use crate::proto::thanos::info::info_server::{Info, InfoServer};
use crate::proto::thanos::store_server::StoreServer;
use crate::proto::{self, thanos as pb};
use crate::security::reload::Reloading;

/// Largest message a client accepts or the server sends: one series frame
/// or one label list; large label lists stay below it.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Largest request the server accepts: matchers and hints only, though a
/// regular expression listing thousands of values can reach megabytes.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Frames of one Series answer converted ahead of the caller's reads.
const SEND_AHEAD: usize = 16;

/// How the Store API server protects itself from its callers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeLimits {
    /// `--grpc.max-concurrent-requests`: Series and label requests answered
    /// at once; the others wait, within their deadline. 0: no limit.
    pub max_concurrent: usize,
    /// `--grpc.send-timeout`: longest a Series answer waits for its caller
    /// to take the next frame. A caller that stops reading loses the stream
    /// and its slot. Zero: no limit.
    pub send_timeout: Duration,
    /// `--grpc.request-timeout`: longest a request may take when its
    /// caller's `grpc-timeout` is longer or absent. Zero: no limit.
    pub request_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_concurrent: 20,
            send_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Clone)]
pub struct StoreService {
    store: Arc<dyn Store>,
    limits: ServeLimits,
    gate: Option<Arc<Semaphore>>,
}

impl StoreService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_limits(store, ServeLimits::default())
    }

    pub fn with_limits(store: Arc<dyn Store>, limits: ServeLimits) -> Self {
        let gate =
            (limits.max_concurrent > 0).then(|| Arc::new(Semaphore::new(limits.max_concurrent)));
        Self {
            store,
            limits,
            gate,
        }
    }

    /// When a request must be answered by: the caller's `grpc-timeout` or
    /// the server's own bound, whichever comes first.
    /// The time the caller gives is recorded, by `rpc`.
    fn deadline<T>(&self, rpc: &'static str, request: &Request<T>) -> Option<Instant> {
        let caller = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        if let Some(c) = caller {
            super::metrics::caller_deadline(rpc, c);
        }
        let own = (!self.limits.request_timeout.is_zero()).then_some(self.limits.request_timeout);
        let d = match (caller, own) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(Instant::now() + d)
    }

    /// A slot among the requests answered at once, waited for until
    /// `deadline`.
    async fn slot(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<OwnedSemaphorePermit>, Status> {
        let Some(gate) = &self.gate else {
            return Ok(None);
        };
        let acquire = gate.clone().acquire_owned();
        let permit = match deadline {
            Some(d) => tokio::time::timeout_at(d, acquire).await.map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no free slot before the deadline: {} requests are being answered (--grpc.max-concurrent-requests)",
                    self.limits.max_concurrent
                ))
            })?,
            None => acquire.await,
        };
        permit
            .map(Some)
            .map_err(|_| Status::unavailable("the server is shutting down"))
    }

    /// Serves one call of a service beside Series: `decode` turns the wire
    /// request (with its hop count and deadline) into the store's, `call`
    /// asks the store within the deadline; timed as `rpc`.
    pub(crate) async fn serve_call<P, R, T, Fut>(
        &self,
        rpc: &'static str,
        request: Request<P>,
        decode: impl FnOnce(P, u32, Option<std::time::Instant>) -> Result<R, StoreError>,
        call: impl FnOnce(Arc<dyn Store>, R) -> Fut,
    ) -> Result<T, Status>
    where
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut timer = RequestTimer::start(rpc);
        let (hops, deadline) = (hops(&request), self.deadline(rpc, &request));
        let req = match decode(request.into_inner(), hops, deadline.map(Instant::into_std)) {
            Ok(r) => r,
            Err(e) => {
                timer.finish(Err(e.code()));
                return Err(e.into());
            }
        };
        let fut = call(self.store.clone(), req);
        let result = match deadline {
            Some(d) => tokio::time::timeout_at(d, fut).await.unwrap_or_else(|_| {
                Err(StoreError::Timeout {
                    peer: "this store".into(),
                    message: "the request's deadline passed before its answer was complete (grpc-timeout or --grpc.request-timeout)".into(),
                })
            }),
            None => fut.await,
        };
        timer.finish(result.as_ref().map(|_| ()).map_err(StoreError::code));
        Ok(result?)
    }

    async fn info_checked(&self) -> Result<super::StoreInfo, Status> {
        let mut timer = RequestTimer::start("info");
        let r = self.store.info().await;
        timer.finish(r.as_ref().map(|_| ()).map_err(StoreError::code));
        r.map_err(Status::from)
    }
}

/// A `grpc-timeout` header: up to 8 digits and a unit (`H`, `M`, `S`, `m`
/// for milliseconds, `u`, `n`).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
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

/// Hands one frame to the caller's queue; `Err(true)` when the caller took
/// nothing for `send_timeout`, `Err(false)` when it went away.
async fn send_frame(
    tx: &tokio::sync::mpsc::Sender<Result<pb::SeriesResponse, Status>>,
    item: Result<pb::SeriesResponse, Status>,
    send_timeout: Duration,
) -> Result<(), bool> {
    if send_timeout.is_zero() {
        tx.send(item).await.map_err(|_| false)
    } else {
        tx.send_timeout(item, send_timeout)
            .await
            .map_err(|e| matches!(e, tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)))
    }
}

/// Most series one batch frame carries, whatever the caller asks, and the
/// encoded size at which a batch is sent before it is full.
const MAX_BATCH_SERIES: usize = 1024;
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Series waiting to go out as one frame.
#[derive(Default)]
struct Batch {
    series: Vec<pb::Series>,
    bytes: usize,
}

impl Batch {
    fn take(&mut self) -> Option<pb::SeriesResponse> {
        if self.series.is_empty() {
            return None;
        }
        self.bytes = 0;
        let series = std::mem::take(&mut self.series);
        Some(frame(if series.len() == 1 {
            pb::series_response::Result::Series(series.into_iter().next()?)
        } else {
            pb::series_response::Result::Batch(pb::SeriesBatch { series })
        }))
    }
}

/// Sends a Series answer's frames to `tx` until the store's stream ends,
/// fails, the deadline passes, or the caller stops taking frames. With
/// `batch` above 1, series that are ready together go out together, up to
/// `batch` series (or 1 MiB) a frame; a series is never held back waiting
/// for the next one.
async fn send_series(
    mut inner: super::SeriesStream,
    tx: tokio::sync::mpsc::Sender<Result<pb::SeriesResponse, Status>>,
    mut timer: RequestTimer,
    _permit: Option<OwnedSemaphorePermit>,
    deadline: Option<Instant>,
    send_timeout: Duration,
    batch: usize,
) {
    use futures::FutureExt;
    let (mut series, mut chunks) = (0u64, 0u64);
    let mut pending = Batch::default();
    loop {
        let next = if !pending.series.is_empty() {
            // Take what is ready now; send the batch before waiting.
            match inner.next().now_or_never() {
                Some(n) => n,
                None => {
                    if !send_or_stop(&tx, pending.take().map(Ok), send_timeout, &mut timer).await {
                        break;
                    }
                    continue;
                }
            }
        } else {
            match deadline {
                Some(d) => match tokio::time::timeout_at(d, inner.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        timer.finish(Err(crate::error::ErrorCode::Timeout));
                        let _ = tx.try_send(Err(Status::deadline_exceeded(
                            "the request's deadline passed before its answer was complete (grpc-timeout or --grpc.request-timeout)",
                        )));
                        break;
                    }
                },
                None => inner.next().await,
            }
        };
        let item = match next {
            None => break,
            Some(Ok(SeriesFrame::Series(s))) => {
                series += 1;
                chunks += s.chunks.len() as u64;
                let s = proto::series_to_pb(s);
                if batch > 1 {
                    pending.bytes += prost::Message::encoded_len(&s);
                    pending.series.push(s);
                    if pending.series.len() < batch && pending.bytes < MAX_BATCH_BYTES {
                        continue;
                    }
                    match pending.take() {
                        Some(f) => Ok(f),
                        None => continue,
                    }
                } else {
                    Ok(frame(pb::series_response::Result::Series(s)))
                }
            }
            Some(Ok(SeriesFrame::Warning(w))) => {
                // Frames keep their order: series before the warning first.
                if !send_or_stop(&tx, pending.take().map(Ok), send_timeout, &mut timer).await {
                    break;
                }
                Ok(frame(pb::series_response::Result::Warning(w)))
            }
            Some(Err(e)) => {
                if !send_or_stop(&tx, pending.take().map(Ok), send_timeout, &mut timer).await {
                    break;
                }
                timer.finish(Err(e.code()));
                let _ = send_frame(&tx, Err(Status::from(e)), send_timeout).await;
                break;
            }
        };
        if !send_or_stop(&tx, Some(item), send_timeout, &mut timer).await {
            break;
        }
    }
    if timer.is_open() {
        // The stream ended: what is still batched goes out.
        let _ = send_or_stop(&tx, pending.take().map(Ok), send_timeout, &mut timer).await;
    }
    metrics::counter!(SERIES_SENT_TOTAL).increment(series);
    metrics::counter!(CHUNKS_SENT_TOTAL).increment(chunks);
    if timer.is_open() {
        timer.finish(Ok(()));
    }
}

/// Sends `item` (nothing when `None`); `false`, with the request's outcome
/// recorded, when the caller is gone or stopped reading.
async fn send_or_stop(
    tx: &tokio::sync::mpsc::Sender<Result<pb::SeriesResponse, Status>>,
    item: Option<Result<pb::SeriesResponse, Status>>,
    send_timeout: Duration,
    timer: &mut RequestTimer,
) -> bool {
    let Some(item) = item else {
        return true;
    };
    match send_frame(tx, item, send_timeout).await {
        Ok(()) => true,
        Err(timed_out) => {
            if timed_out {
                metrics::counter!(STREAMS_ABANDONED_TOTAL).increment(1);
                debug!(
                    ?send_timeout,
                    "caller stopped reading a Series answer; stream dropped"
                );
                timer.finish(Err(crate::error::ErrorCode::Timeout));
            } else {
                timer.finish(Err(crate::error::ErrorCode::Canceled));
            }
            false
        }
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
        let req_deadline = self.deadline("series", &request);
        let batch = usize::try_from(request.get_ref().response_batch_size)
            .unwrap_or(0)
            .clamp(1, MAX_BATCH_SERIES);
        let req = match SeriesRequest::try_from(request.into_inner()) {
            Ok(r) => SeriesRequest {
                hops,
                deadline: req_deadline.map(Instant::into_std),
                ..r
            },
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
        let deadline = req_deadline;
        let permit = match self.slot(deadline).await {
            Ok(p) => p,
            Err(status) => {
                timer.finish(Err(crate::error::ErrorCode::Timeout));
                return Err(status);
            }
        };
        let inner = match self.store.series(req).await {
            Ok(s) => s,
            Err(e) => {
                timer.finish(Err(e.code()));
                return Err(e.into());
            }
        };
        // The answer is produced by a task of its own and handed over a
        // short queue, so that a caller who stops reading is noticed: the
        // task gives up after `send_timeout`, which drops the store's
        // stream and frees the slot.
        let (tx, rx) = tokio::sync::mpsc::channel(SEND_AHEAD);
        tokio::spawn(send_series(
            inner,
            tx,
            timer,
            permit,
            deadline,
            self.limits.send_timeout,
            batch,
        ));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let resp = self
            .answer_labels("label_names", request, |req| async move {
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
        let resp = self
            .answer_labels("label_values", request, |req| async move {
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

impl StoreService {
    /// Converts a label request, runs `call` on it within the request's
    /// deadline and a slot, and times the whole, so that label names and
    /// label values share one path.
    async fn answer_labels<M, F, Fut>(
        &self,
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
        let deadline = self.deadline(op, &request);
        let req = match request.into_inner().try_into() {
            Ok(req) => LabelsRequest {
                hops,
                deadline: deadline.map(Instant::into_std),
                ..req
            },
            Err(e) => {
                timer.finish(Err(e.code()));
                return Err(e.into());
            }
        };
        let _permit = match self.slot(deadline).await {
            Ok(p) => p,
            Err(status) => {
                timer.finish(Err(crate::error::ErrorCode::Timeout));
                return Err(status);
            }
        };
        let result = match deadline {
            Some(d) => tokio::time::timeout_at(d, call(req)).await.unwrap_or_else(|_| {
                Err(StoreError::Timeout {
                    peer: "this store".into(),
                    message: "the request's deadline passed before its answer was complete (grpc-timeout or --grpc.request-timeout)".into(),
                })
            }),
            None => call(req).await,
        };
        timer.finish(result.as_ref().map(|_| ()).map_err(StoreError::code));
        Ok(result?)
    }
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
    serve_limited(listener, store, ServeLimits::default(), shutdown).await
}

/// [`serve`] with the given limits.
pub async fn serve_limited(
    listener: TcpListener,
    store: Arc<dyn Store>,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    serve_secured(listener, store, limits, None, shutdown).await
}

/// Streams a client may open and cancel before this server reads them,
/// per connection; past it the connection is closed (a flood of resets).
const MAX_PENDING_RESETS: usize = 1024;

/// [`serve`] with the given limits, over TLS when `tls` is given (each
/// connection takes the configuration current when it is accepted, so a
/// renewed certificate needs no restart).
pub async fn serve_secured(
    listener: TcpListener,
    store: Arc<dyn Store>,
    limits: ServeLimits,
    tls: Option<Arc<Reloading<rustls::ServerConfig>>>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let svc = StoreService::with_limits(store, limits);
    let router = tonic::transport::Server::builder()
        // Queriers cancel the requests they hedged; when this process was
        // stalled, hundreds may wait unread. h2's default (20) would then
        // close the connection and fail the requests still on it.
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .add_service(
            StoreServer::new(svc.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(InfoServer::new(svc.clone()))
        .add_service(
            crate::proto::thanos::metadata_server::MetadataServer::new(svc.clone())
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            crate::proto::thanos::targets_server::TargetsServer::new(svc.clone())
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            crate::proto::thanos::rules_server::RulesServer::new(svc.clone())
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            crate::proto::thanos::exemplars_server::ExemplarsServer::new(svc)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    let stop = shutdown.clone().cancelled_owned();
    match tls {
        Some(tls) => {
            let incoming = crate::security::tls::incoming(listener, tls, "grpc");
            let server = router.serve_with_incoming_shutdown(incoming, stop);
            crate::shutdown::drain_bounded("gRPC", server, &shutdown).await
        }
        None => {
            // Small answers must not wait for delayed ACKs.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let server = router.serve_with_incoming_shutdown(incoming, stop);
            crate::shutdown::drain_bounded("gRPC", server, &shutdown).await
        }
    }
}
