//! A remote store over gRPC: implements [`Store`] by calling a peer's
//! `thanos.Store` and `thanos.info.Info` services.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::server::MAX_MESSAGE_BYTES;
use super::{
    LabelsRequest, LabelsResponse, SeriesFrame, SeriesRequest, SeriesStream, Store, StoreError,
    StoreInfo,
};
use crate::proto::thanos::info::info_client::InfoClient;
use crate::proto::thanos::store_client::StoreClient;
use crate::proto::{self, thanos as pb};
use crate::security::reload::Reloading;
use crate::security::tls::Connector;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Deadline for unary calls (Info, label names and values).
    pub request_timeout: Duration,
    /// TCP and HTTP/2 keepalive, so a dead peer is noticed between requests.
    pub keepalive: Duration,
    /// TLS to every store (`--grpc-client-tls-*`); plaintext when `None`.
    pub tls: Option<ClientTls>,
}

/// The Store API client's TLS: the configuration (reloaded from disk when
/// its files change) and the name servers' certificates must carry (the
/// host dialled when `None`).
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: Arc<Reloading<rustls::ClientConfig>>,
    pub server_name: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// The services beside Series a peer's Info says it offers, one bit each;
/// `KNOWN` once an Info answer said (a peer with only the older
/// `Store.Info` is asked for everything).
mod offers {
    pub const KNOWN: u8 = 1;
    pub const RULES: u8 = 2;
    pub const METADATA: u8 = 4;
    pub const TARGETS: u8 = 8;
    pub const EXEMPLARS: u8 = 16;
}

/// Series per frame asked of stores (`response_batch_size`).
pub const RESPONSE_BATCH_SIZE: i64 = 64;

/// A peer's Store API. Cheap to clone; clones share one HTTP/2 connection.
#[derive(Clone)]
pub struct RemoteStore {
    addr: String,
    store: StoreClient<Channel>,
    info: InfoClient<Channel>,
    metadata: crate::proto::thanos::metadata_client::MetadataClient<Channel>,
    targets: crate::proto::thanos::targets_client::TargetsClient<Channel>,
    rules: crate::proto::thanos::rules_client::RulesClient<Channel>,
    exemplars: crate::proto::thanos::exemplars_client::ExemplarsClient<Channel>,
    /// What the last Info answer offered ([`offers`]), shared by clones.
    offers: Arc<AtomicU8>,
    request_timeout: Duration,
}

impl RemoteStore {
    /// `Unsupported` without a call when the peer's Info said it does not
    /// offer the service.
    fn offered(&self, bit: u8, what: &str) -> Result<(), StoreError> {
        let known = self.offers.load(Ordering::Relaxed);
        if known & offers::KNOWN != 0 && known & bit == 0 {
            return Err(StoreError::Unsupported(what.to_string()));
        }
        Ok(())
    }

    /// A client for `addr` (`host:port`). It connects on first use and
    /// reconnects by itself after failures.
    pub fn connect_lazy(addr: &str, cfg: &ClientConfig) -> Result<Self, StoreError> {
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| StoreError::InvalidArgument(format!("bad store address {addr:?}: {e}")))?
            .connect_timeout(cfg.connect_timeout)
            .tcp_keepalive(Some(cfg.keepalive))
            .http2_keep_alive_interval(cfg.keepalive)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let channel = match &cfg.tls {
            None => endpoint.connect_lazy(),
            Some(tls) => {
                let connector = Connector::new(
                    tls.config.clone(),
                    tls.server_name.as_deref(),
                    cfg.keepalive,
                )
                .map_err(|e| StoreError::InvalidArgument(format!("{e:#}")))?;
                endpoint.connect_with_connector_lazy(connector)
            }
        };
        Ok(Self {
            addr: addr.to_string(),
            store: StoreClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            info: InfoClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            metadata: crate::proto::thanos::metadata_client::MetadataClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            targets: crate::proto::thanos::targets_client::TargetsClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            rules: crate::proto::thanos::rules_client::RulesClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            exemplars: crate::proto::thanos::exemplars_client::ExemplarsClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            offers: Arc::new(AtomicU8::new(0)),
            request_timeout: cfg.request_timeout,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A unary request, bounded by `--store.request-timeout` and by the
    /// caller's deadline when it has one.
    fn unary<T>(
        &self,
        msg: T,
        hops: u32,
        deadline: Option<std::time::Instant>,
    ) -> tonic::Request<T> {
        let mut req = with_hops(tonic::Request::new(msg), hops);
        let left = deadline.map_or(self.request_timeout, |d| {
            self.request_timeout.min(time_left(d))
        });
        req.set_timeout(left);
        req
    }

    fn err(&self, status: &tonic::Status) -> StoreError {
        StoreError::from_status(&self.addr, status)
    }
}

/// The time left until `deadline`, at least a millisecond (`grpc-timeout`
/// cannot say zero; a request sent that late fails at once at the peer).
fn time_left(deadline: std::time::Instant) -> std::time::Duration {
    deadline
        .saturating_duration_since(std::time::Instant::now())
        .max(std::time::Duration::from_millis(1))
}

fn with_hops<T>(mut req: tonic::Request<T>, hops: u32) -> tonic::Request<T> {
    if hops > 0 {
        if let Ok(v) = hops.to_string().parse() {
            req.metadata_mut().insert(super::HOPS_METADATA, v);
        }
    }
    req
}

/// A peer's Series answer as frames of whole series. The Store API lets a
/// store send one series over several consecutive frames (a large series,
/// split by time) and several series in one batch frame; both become one
/// frame per series here, so merge, resume and deduplication never see a
/// series twice. Memory: the series being joined.
fn joined_frames(mut stream: tonic::Streaming<pb::SeriesResponse>, peer: String) -> SeriesStream {
    use pb::series_response::Result as Frame;
    Box::pin(async_stream::try_stream! {
        let mut pending: Option<crate::model::Series> = None;
        loop {
            let item = stream.next().await;
            let series: Vec<pb::Series> = match item {
                None => break,
                Some(Err(status)) => Err(StoreError::from_status(&peer, &status))?,
                Some(Ok(pb::SeriesResponse { result: Some(Frame::Series(s)) })) => vec![s],
                Some(Ok(pb::SeriesResponse { result: Some(Frame::Batch(b)) })) => b.series,
                Some(Ok(pb::SeriesResponse { result: Some(Frame::Warning(w)) })) => {
                    yield SeriesFrame::Warning(w);
                    continue;
                }
                // Hints are implementation-specific and carry no data.
                Some(Ok(pb::SeriesResponse { result: Some(Frame::Hints(_)) })) => continue,
                Some(Ok(pb::SeriesResponse { result: None })) => Err(StoreError::protocol(
                    &peer,
                    "series response frame without content",
                ))?,
            };
            for s in series {
                let s = proto::series_from_pb(s, &peer)?;
                match pending.as_mut() {
                    Some(p) if p.labels == s.labels => p.chunks.extend(s.chunks),
                    _ => {
                        if let Some(done) = pending.replace(s) {
                            yield SeriesFrame::Series(done);
                        }
                    }
                }
            }
        }
        if let Some(done) = pending {
            yield SeriesFrame::Series(done);
        }
    })
}

fn labels_response(values: Vec<String>, warnings: Vec<String>) -> LabelsResponse {
    LabelsResponse { values, warnings }
}

#[async_trait]
impl Store for RemoteStore {
    /// Asks `thanos.info.Info` first, as current Thanos components do, and
    /// falls back to `thanos.Store/Info` for peers that predate it.
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        let mut client = self.info.clone();
        match client
            .info(self.unary(pb::info::InfoRequest {}, 0, None))
            .await
        {
            Ok(resp) => {
                let r = resp.into_inner();
                let mut bits = offers::KNOWN;
                for (offered, bit) in [
                    (r.rules.is_some(), offers::RULES),
                    (r.metric_metadata.is_some(), offers::METADATA),
                    (r.targets.is_some(), offers::TARGETS),
                    (r.exemplars.is_some(), offers::EXEMPLARS),
                ] {
                    if offered {
                        bits |= bit;
                    }
                }
                self.offers.store(bits, Ordering::Relaxed);
                proto::info_from_info_pb(r, &self.addr)
            }
            Err(status) if status.code() == Code::Unimplemented => {
                let mut client = self.store.clone();
                let resp = client
                    .info(self.unary(pb::InfoRequest {}, 0, None))
                    .await
                    .map_err(|s| self.err(&s))?;
                proto::info_from_store_pb(resp.into_inner(), &self.addr)
            }
            Err(status) => Err(self.err(&status)),
        }
    }

    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        let mut client = self.store.clone();
        let mut wire = pb::SeriesRequest::from(&req);
        // Several series to a frame from stores that can (skein, newer
        // Thanos); others ignore the field and send one per frame.
        wire.response_batch_size = RESPONSE_BATCH_SIZE;
        let mut request = with_hops(tonic::Request::new(wire), req.hops);
        // The peer stops working on the answer when the caller stops
        // waiting for it.
        if let Some(d) = req.deadline {
            request.set_timeout(time_left(d));
        }
        let stream = client
            .series(request)
            .await
            .map_err(|s| self.err(&s))?
            .into_inner();
        Ok(joined_frames(stream, self.addr.clone()))
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        let mut client = self.store.clone();
        let resp = client
            .label_names(self.unary(pb::LabelNamesRequest::from(&req), req.hops, req.deadline))
            .await
            .map_err(|s| self.err(&s))?
            .into_inner();
        Ok(labels_response(resp.names, resp.warnings))
    }

    async fn metric_metadata(
        &self,
        req: super::MetadataRequest,
    ) -> Result<super::MetadataResponse, StoreError> {
        self.offered(offers::METADATA, "metric metadata")?;
        let mut client = self.metadata.clone();
        let wire = super::metadata::request_to_pb(&req);
        let stream = client
            .metric_metadata(self.unary(wire, req.hops, req.deadline))
            .await
            .map_err(|s| self.err(&s))?
            .into_inner();
        super::metadata::read_stream(stream, &self.addr).await
    }

    async fn rules(
        &self,
        req: crate::storeapi::rules::RulesRequest,
    ) -> Result<crate::storeapi::rules::RulesResponse, StoreError> {
        self.offered(offers::RULES, "rules")?;
        let mut client = self.rules.clone();
        let wire = super::rules::request_to_pb(&req);
        let stream = client
            .rules(self.unary(wire, req.hops, req.deadline))
            .await
            .map_err(|s| self.err(&s))?
            .into_inner();
        super::rules::read_stream(stream, &self.addr).await
    }

    async fn exemplars(
        &self,
        req: crate::storeapi::exemplars::ExemplarsRequest,
    ) -> Result<crate::storeapi::exemplars::ExemplarsResponse, StoreError> {
        self.offered(offers::EXEMPLARS, "exemplars")?;
        let mut client = self.exemplars.clone();
        let wire = super::exemplars::request_to_pb(&req);
        let stream = client
            .exemplars(self.unary(wire, req.hops, req.deadline))
            .await
            .map_err(|s| self.err(&s))?
            .into_inner();
        super::exemplars::read_stream(stream, &self.addr).await
    }

    async fn targets(
        &self,
        req: crate::storeapi::targets::TargetsRequest,
    ) -> Result<crate::storeapi::targets::TargetsResponse, StoreError> {
        self.offered(offers::TARGETS, "scrape targets")?;
        let mut client = self.targets.clone();
        let wire = super::targets::request_to_pb(&req);
        let stream = client
            .targets(self.unary(wire, req.hops, req.deadline))
            .await
            .map_err(|s| self.err(&s))?
            .into_inner();
        super::targets::read_stream(stream, &self.addr).await
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        let mut client = self.store.clone();
        let resp = client
            .label_values(self.unary(pb::LabelValuesRequest::from(&req), req.hops, req.deadline))
            .await
            .map_err(|s| self.err(&s))?
            .into_inner();
        Ok(labels_response(resp.values, resp.warnings))
    }
}
