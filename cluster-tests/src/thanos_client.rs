//! A client of Thanos' services beside Series (Info, Metadata, Targets,
//! Rules, Exemplars), its messages written out from Thanos' field tables
//! (pkg/{info/infopb,metadata/metadatapb,targets/targetspb,rules/rulespb,
//! exemplars/exemplarspb}/rpc.proto, docs/thanos-services.md), not from
//! skein's protos: what a Thanos querier reads from a skein node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use tonic::codegen::http::uri::PathAndQuery;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ZLabelSet {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
}

impl ZLabelSet {
    fn map(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }
}

fn labels(s: &Option<ZLabelSet>) -> BTreeMap<String, String> {
    s.as_ref().map(ZLabelSet::map).unwrap_or_default()
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadataRequest {
    #[prost(string, tag = "1")]
    pub metric: String,
    #[prost(int32, tag = "2")]
    pub limit: i32,
    #[prost(int32, tag = "3")]
    pub partial_response_strategy: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadataResponse {
    #[prost(oneof = "MetadataFrame", tags = "1, 2")]
    pub result: Option<MetadataFrame>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetadataFrame {
    #[prost(message, tag = "1")]
    Metadata(MetricMetadata),
    #[prost(string, tag = "2")]
    Warning(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(map = "string, message", tag = "1")]
    pub metadata: HashMap<String, MetricMetadataEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadataEntry {
    #[prost(message, repeated, tag = "2")]
    pub metas: Vec<Meta>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Meta {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub help: String,
    #[prost(string, tag = "3")]
    pub unit: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoRequest {}

/// thanos.info.InfoResponse: only what is checked here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoResponse {
    #[prost(string, tag = "2")]
    pub component_type: String,
    #[prost(message, optional, tag = "5")]
    pub metric_metadata: Option<Empty>,
    #[prost(message, optional, tag = "6")]
    pub targets: Option<Empty>,
    #[prost(message, optional, tag = "4")]
    pub rules: Option<Empty>,
    #[prost(message, optional, tag = "7")]
    pub exemplars: Option<Empty>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TargetsRequest {
    #[prost(int32, tag = "1")]
    pub state: i32,
    #[prost(int32, tag = "2")]
    pub partial_response_strategy: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TargetsResponse {
    #[prost(oneof = "TargetsFrame", tags = "1, 2")]
    pub result: Option<TargetsFrame>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TargetsFrame {
    #[prost(message, tag = "1")]
    Targets(TargetDiscovery),
    #[prost(string, tag = "2")]
    Warning(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TargetDiscovery {
    #[prost(message, repeated, tag = "1")]
    pub active_targets: Vec<ActiveTarget>,
    #[prost(message, repeated, tag = "2")]
    pub dropped_targets: Vec<DroppedTarget>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ActiveTarget {
    #[prost(message, optional, tag = "1")]
    pub discovered_labels: Option<ZLabelSet>,
    #[prost(message, optional, tag = "2")]
    pub labels: Option<ZLabelSet>,
    #[prost(string, tag = "3")]
    pub scrape_pool: String,
    #[prost(string, tag = "4")]
    pub scrape_url: String,
    #[prost(string, tag = "5")]
    pub global_url: String,
    #[prost(string, tag = "6")]
    pub last_error: String,
    #[prost(message, optional, tag = "7")]
    pub last_scrape: Option<prost_types::Timestamp>,
    #[prost(double, tag = "8")]
    pub last_scrape_duration: f64,
    /// DOWN = 0, UP = 1, UNKNOWN = 2.
    #[prost(int32, tag = "9")]
    pub health: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DroppedTarget {
    #[prost(message, optional, tag = "1")]
    pub discovered_labels: Option<ZLabelSet>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RulesRequest {
    /// ALL = 0, ALERT = 1, RECORD = 2.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(int32, tag = "2")]
    pub partial_response_strategy: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RulesResponse {
    #[prost(oneof = "RulesFrame", tags = "1, 2")]
    pub result: Option<RulesFrame>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RulesFrame {
    #[prost(message, tag = "1")]
    Group(RuleGroup),
    #[prost(string, tag = "2")]
    Warning(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RuleGroup {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub file: String,
    #[prost(message, repeated, tag = "3")]
    pub rules: Vec<Rule>,
    #[prost(double, tag = "4")]
    pub interval: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Rule {
    #[prost(oneof = "RuleKind", tags = "1, 2")]
    pub result: Option<RuleKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RuleKind {
    #[prost(message, tag = "1")]
    Recording(RecordingRule),
    #[prost(message, tag = "2")]
    Alert(Alert),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordingRule {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub query: String,
    #[prost(message, optional, tag = "3")]
    pub labels: Option<ZLabelSet>,
    #[prost(string, tag = "4")]
    pub health: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Alert {
    /// UNKNOWN = 0, INACTIVE = 1, PENDING = 2, FIRING = 3.
    #[prost(int32, tag = "1")]
    pub state: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub query: String,
    #[prost(double, tag = "4")]
    pub duration_seconds: f64,
    #[prost(message, optional, tag = "5")]
    pub labels: Option<ZLabelSet>,
    #[prost(message, optional, tag = "6")]
    pub annotations: Option<ZLabelSet>,
    #[prost(message, repeated, tag = "7")]
    pub alerts: Vec<AlertInstance>,
    #[prost(string, tag = "8")]
    pub health: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AlertInstance {
    #[prost(message, optional, tag = "1")]
    pub labels: Option<ZLabelSet>,
    #[prost(message, optional, tag = "2")]
    pub annotations: Option<ZLabelSet>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(message, optional, tag = "4")]
    pub active_at: Option<prost_types::Timestamp>,
    #[prost(string, tag = "5")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExemplarsRequest {
    #[prost(string, tag = "1")]
    pub query: String,
    /// Milliseconds.
    #[prost(int64, tag = "2")]
    pub start: i64,
    #[prost(int64, tag = "3")]
    pub end: i64,
    #[prost(int32, tag = "4")]
    pub partial_response_strategy: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExemplarsResponse {
    #[prost(oneof = "ExemplarsFrame", tags = "1, 2")]
    pub result: Option<ExemplarsFrame>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ExemplarsFrame {
    #[prost(message, tag = "1")]
    Data(ExemplarData),
    #[prost(string, tag = "2")]
    Warning(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExemplarData {
    #[prost(message, optional, tag = "1")]
    pub series_labels: Option<ZLabelSet>,
    #[prost(message, repeated, tag = "2")]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, optional, tag = "1")]
    pub labels: Option<ZLabelSet>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub ts: i64,
}

async fn grpc(addr: SocketAddr) -> anyhow::Result<tonic::client::Grpc<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut g = tonic::client::Grpc::new(channel);
    g.ready().await?;
    Ok(g)
}

/// A server-streaming call's frames.
async fn frames<Req, Resp>(
    addr: SocketAddr,
    path: &'static str,
    req: Req,
) -> anyhow::Result<Vec<Resp>>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut g = grpc(addr).await?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let mut stream = g
        .server_streaming(
            tonic::Request::new(req),
            PathAndQuery::from_static(path),
            codec,
        )
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(frame) = stream.message().await? {
        out.push(frame);
    }
    Ok(out)
}

/// What Info says a node offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offers {
    pub component: String,
    pub metric_metadata: bool,
    pub targets: bool,
    pub rules: bool,
    pub exemplars: bool,
}

/// `/thanos.info.Info/Info`: the component and the services it offers.
pub async fn info(addr: SocketAddr) -> anyhow::Result<Offers> {
    let mut g = grpc(addr).await?;
    let path = PathAndQuery::from_static("/thanos.info.Info/Info");
    let codec = tonic_prost::ProstCodec::<InfoRequest, InfoResponse>::default();
    let r = g
        .unary(tonic::Request::new(InfoRequest {}), path, codec)
        .await?
        .into_inner();
    Ok(Offers {
        component: r.component_type,
        metric_metadata: r.metric_metadata.is_some(),
        targets: r.targets.is_some(),
        rules: r.rules.is_some(),
        exemplars: r.exemplars.is_some(),
    })
}

/// Metric -> its (type, help, unit) entries.
pub type Metadata = BTreeMap<String, BTreeSet<(String, String, String)>>;

/// `/thanos.Metadata/MetricMetadata` with every entry; a warning frame is
/// an error.
pub async fn metadata(addr: SocketAddr) -> anyhow::Result<Metadata> {
    let req = MetricMetadataRequest {
        metric: String::new(),
        limit: -1,
        partial_response_strategy: 0,
    };
    let mut out = Metadata::new();
    for frame in
        frames::<_, MetricMetadataResponse>(addr, "/thanos.Metadata/MetricMetadata", req).await?
    {
        match frame.result {
            Some(MetadataFrame::Metadata(m)) => {
                for (name, entry) in m.metadata {
                    let set = out.entry(name).or_default();
                    for meta in entry.metas {
                        set.insert((meta.r#type, meta.help, meta.unit));
                    }
                }
            }
            Some(MetadataFrame::Warning(w)) => anyhow::bail!("warning: {w}"),
            None => anyhow::bail!("an empty frame"),
        }
    }
    Ok(out)
}

/// `/thanos.Targets/Targets` (all states): each active target as (scrape
/// URL, labels, health), sorted, and the dropped targets' count.
pub async fn targets(
    addr: SocketAddr,
) -> anyhow::Result<(Vec<(String, BTreeMap<String, String>, i32)>, usize)> {
    let req = TargetsRequest {
        state: 0,
        partial_response_strategy: 0,
    };
    let (mut active, mut dropped) = (Vec::new(), 0);
    for frame in frames::<_, TargetsResponse>(addr, "/thanos.Targets/Targets", req).await? {
        match frame.result {
            Some(TargetsFrame::Targets(d)) => {
                for t in d.active_targets {
                    active.push((t.scrape_url.clone(), labels(&t.labels), t.health));
                }
                dropped += d.dropped_targets.len();
            }
            Some(TargetsFrame::Warning(w)) => anyhow::bail!("warning: {w}"),
            None => anyhow::bail!("an empty frame"),
        }
    }
    active.sort();
    Ok((active, dropped))
}

/// `/thanos.Rules/Rules` (all types): each rule as "group | kind name
/// query labels | alert states", sorted.
pub async fn rules(addr: SocketAddr) -> anyhow::Result<Vec<String>> {
    let req = RulesRequest {
        r#type: 0,
        partial_response_strategy: 0,
    };
    let mut out = Vec::new();
    for frame in frames::<_, RulesResponse>(addr, "/thanos.Rules/Rules", req).await? {
        match frame.result {
            Some(RulesFrame::Group(g)) => {
                for r in g.rules {
                    out.push(match r.result {
                        Some(RuleKind::Recording(r)) => format!(
                            "{} | recording {} {} {:?}",
                            g.name,
                            r.name,
                            r.query,
                            labels(&r.labels)
                        ),
                        Some(RuleKind::Alert(a)) => {
                            let mut states: Vec<i32> = a.alerts.iter().map(|i| i.state).collect();
                            states.sort();
                            format!(
                                "{} | alerting {} {} {:?} for {}s state {} | {:?}",
                                g.name,
                                a.name,
                                a.query,
                                labels(&a.labels),
                                a.duration_seconds,
                                a.state,
                                states
                            )
                        }
                        None => anyhow::bail!("a rule without content"),
                    });
                }
            }
            Some(RulesFrame::Warning(w)) => anyhow::bail!("warning: {w}"),
            None => anyhow::bail!("an empty frame"),
        }
    }
    out.sort();
    Ok(out)
}

/// Series labels -> its exemplars as (ms, labels, value), each sorted.
pub type Exemplars =
    BTreeMap<BTreeMap<String, String>, Vec<(i64, BTreeMap<String, String>, String)>>;

/// `/thanos.Exemplars/Exemplars` for `query` over `[start, end]` (ms).
pub async fn exemplars(
    addr: SocketAddr,
    query: &str,
    start: i64,
    end: i64,
) -> anyhow::Result<Exemplars> {
    let req = ExemplarsRequest {
        query: query.to_string(),
        start,
        end,
        partial_response_strategy: 0,
    };
    let mut out = Exemplars::new();
    for frame in frames::<_, ExemplarsResponse>(addr, "/thanos.Exemplars/Exemplars", req).await? {
        match frame.result {
            Some(ExemplarsFrame::Data(d)) => {
                let list = out.entry(labels(&d.series_labels)).or_default();
                for e in d.exemplars {
                    list.push((e.ts, labels(&e.labels), e.value.to_string()));
                }
                list.sort();
            }
            Some(ExemplarsFrame::Warning(w)) => anyhow::bail!("warning: {w}"),
            None => anyhow::bail!("an empty frame"),
        }
    }
    Ok(out)
}
