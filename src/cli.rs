//! Command-line flags. Every flag can also be set through the environment
//! variable named in its help; flag names follow Thanos where the concept
//! is the same.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::actors::store_peer::PeerConfig;
use crate::actors::RegistryConfig;
use crate::cluster::ClusterConfig;
use crate::model::time::now_ms;
pub use crate::model::time::{parse_time, parse_time_at};
use crate::model::Labels;
use crate::promql::EngineConfig;
use crate::querier::QuerierConfig;
use crate::query::{DedupFunc, HedgeMode, QueryConfig, RouteConfig};
use crate::store::ClientConfig;
use crate::store::PeerType;
use crate::synthetic::{GeneratorConfig, SyntheticConfig};
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "skein", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log level or filter directive (e.g. `info`, `debug,h2=info`).
    #[arg(
        long = "log.level",
        env = "SKEIN_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub log_level: String,

    /// Log line format.
    #[arg(
        long = "log.format",
        env = "SKEIN_LOG_FORMAT",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a querier: joins the cluster, tracks every store's health and
    /// groups, and serves the cluster views over HTTP.
    Query(QueryArgs),
    /// Serve a Prometheus over the Store API (remote read) and announce it
    /// in the cluster as a SOURCE.
    Sidecar(SidecarArgs),
    /// Serve generated series (counters, gauges, histograms) over the Store
    /// API from memory.
    Synthetic(SyntheticArgs),
    /// Serve the Prometheus TSDB blocks of an object-storage bucket over the
    /// Store API, announced as a STORE; gateways on one bucket form a group.
    Store(StoreArgs),
    /// Start a whole local cluster on 127.0.0.x: three queriers, a pair of
    /// live replicas, store gateways over a bucket of generated history
    /// (and a real Prometheus pair when one is on the PATH).
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the bucket, index headers and logs; must be new or
    /// empty, and is kept. Without it a temporary directory is used and
    /// removed at the end.
    #[arg(long = "work-dir", env = "SKEIN_DEMO_WORK_DIR")]
    pub work_dir: Option<std::path::PathBuf>,

    /// How far back the bucket's generated history reaches (at least 4h).
    #[arg(long = "history", env = "SKEIN_DEMO_HISTORY", default_value = "24h",
          value_parser = parse_positive_duration)]
    pub history: Duration,

    /// Simulated targets; each exposes 11 series.
    #[arg(long = "targets", env = "SKEIN_DEMO_TARGETS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub targets: u32,

    /// Whether to run a real Prometheus pair: `auto` when a `prometheus`
    /// binary is on the PATH, `off` never.
    #[arg(
        long = "prometheus",
        env = "SKEIN_DEMO_PROMETHEUS",
        value_enum,
        default_value = "auto"
    )]
    pub prometheus: DemoPrometheus,

    /// How long to wait for every process to be up.
    #[arg(long = "startup-timeout", env = "SKEIN_DEMO_STARTUP_TIMEOUT",
          default_value = "90s", value_parser = parse_positive_duration)]
    pub startup_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoPrometheus {
    Auto,
    Off,
}

impl DemoArgs {
    pub fn into_config(self) -> anyhow::Result<crate::demo::DemoConfig> {
        Ok(crate::demo::DemoConfig {
            work_dir: self.work_dir,
            history: self.history,
            targets: self.targets,
            prometheus: self.prometheus == DemoPrometheus::Auto,
            startup_timeout: self.startup_timeout,
        })
    }
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub objstore: crate::objstore::ObjstoreArgs,

    /// Local directory for index headers (built once per block, so a
    /// restart reads no index again).
    #[arg(long = "data-dir", env = "SKEIN_DATA_DIR", default_value = "./data")]
    pub data_dir: std::path::PathBuf,

    /// How often the bucket is listed for new and deleted blocks.
    #[arg(long = "sync-block-duration", env = "SKEIN_SYNC_BLOCK_DURATION",
          default_value = "3m", value_parser = parse_positive_duration)]
    pub sync_interval: Duration,

    /// Serve only data after this time: RFC 3339, or a duration relative to
    /// now such as -2w (moves with the clock).
    #[arg(long = "min-time", env = "SKEIN_MIN_TIME", allow_hyphen_values = true,
          value_parser = crate::storegw::parse_time_bound)]
    pub min_time: Option<crate::storegw::TimeBound>,

    /// Serve only data before this time; same forms as --min-time.
    #[arg(long = "max-time", env = "SKEIN_MAX_TIME", allow_hyphen_values = true,
          value_parser = crate::storegw::parse_time_bound)]
    pub max_time: Option<crate::storegw::TimeBound>,

    /// Relabel rules (Prometheus' relabel_config, YAML) applied to each
    /// block's external labels plus __block_id: only blocks left with a
    /// label are served, e.g. a hashmod over __block_id to shard a bucket.
    #[arg(
        long = "selector.relabel-config",
        env = "SKEIN_SELECTOR_RELABEL_CONFIG",
        conflicts_with = "selector_relabel_config_file",
        allow_hyphen_values = true
    )]
    pub selector_relabel_config: Option<String>,

    /// --selector.relabel-config, read from this file.
    #[arg(
        long = "selector.relabel-config-file",
        env = "SKEIN_SELECTOR_RELABEL_CONFIG_FILE"
    )]
    pub selector_relabel_config_file: Option<std::path::PathBuf>,

    /// Store group id, for operators who know which gateways hold the same
    /// data. Default: the bucket plus --min-time/--max-time, so gateways
    /// that split a bucket by time are separate groups.
    #[arg(long = "store-group-id", env = "SKEIN_STORE_GROUP_ID")]
    pub store_group_id: Option<String>,

    /// Memory for postings lists and series entries read from indexes,
    /// e.g. 250MB or 1GiB; 0 disables the cache.
    #[arg(long = "index-cache-size", env = "SKEIN_INDEX_CACHE_SIZE",
          default_value = "250MB", value_parser = parse_bytes)]
    pub index_cache_size: usize,

    /// Most series one Series request may return; a request over it fails
    /// with a clear error instead of loading them. 0: no limit.
    #[arg(
        long = "store.series-limit",
        env = "SKEIN_STORE_SERIES_LIMIT",
        default_value_t = 0
    )]
    pub series_limit: usize,

    /// Most samples one Series request may return (counted from the
    /// chunks sent); a request over it fails with a clear error. 0: no limit.
    #[arg(
        long = "store.series-sample-limit",
        env = "SKEIN_STORE_SERIES_SAMPLE_LIMIT",
        default_value_t = 0
    )]
    pub sample_limit: u64,

    /// Series requests answered at once; the others wait their turn.
    #[arg(long = "store.series-max-concurrency", env = "SKEIN_STORE_SERIES_MAX_CONCURRENCY",
          default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub series_concurrency: u32,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// Base URL of the Prometheus to serve.
    #[arg(
        long = "prometheus.url",
        env = "SKEIN_PROMETHEUS_URL",
        default_value = "http://localhost:9090"
    )]
    pub prometheus_url: String,

    /// How often Prometheus' readiness, external labels and retention are
    /// read again.
    #[arg(long = "prometheus.refresh-interval", env = "SKEIN_PROMETHEUS_REFRESH_INTERVAL",
          default_value = "30s", value_parser = parse_positive_duration)]
    pub refresh_interval: Duration,

    /// Deadline for Prometheus' HTTP API and for connecting to it.
    #[arg(long = "prometheus.timeout", env = "SKEIN_PROMETHEUS_TIMEOUT",
          default_value = "10s", value_parser = parse_positive_duration)]
    pub prometheus_timeout: Duration,

    /// Bucket that completed Prometheus blocks are uploaded to. Without it
    /// the sidecar only serves Prometheus.
    #[command(flatten)]
    pub objstore: crate::objstore::ObjstoreArgs,

    /// Prometheus' data directory (its --storage.tsdb.path), read for
    /// completed blocks to upload.
    #[arg(
        long = "tsdb.path",
        env = "SKEIN_TSDB_PATH",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub tsdb_path: std::path::PathBuf,

    /// Also upload blocks Prometheus compacted itself (level > 1). Only
    /// for a Prometheus whose level-1 blocks were never uploaded: otherwise
    /// the bucket holds the same samples twice.
    #[arg(
        long = "shipper.upload-compacted",
        env = "SKEIN_SHIPPER_UPLOAD_COMPACTED"
    )]
    pub upload_compacted: bool,

    /// How often the tsdb directory is checked for blocks to upload.
    #[arg(long = "shipper.interval", env = "SKEIN_SHIPPER_INTERVAL",
          default_value = "30s", value_parser = parse_positive_duration)]
    pub shipper_interval: Duration,

    /// Store group id, for operators who know better than the external
    /// labels which sidecars hold the same data. Default: none, so the
    /// group is the external label set.
    #[arg(long = "store-group-id", env = "SKEIN_STORE_GROUP_ID")]
    pub store_group_id: Option<String>,

    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl SidecarArgs {
    pub fn into_config(self) -> anyhow::Result<crate::sidecar::SidecarConfig> {
        let url = self.prometheus_url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("invalid --prometheus.url {url:?}: expected http://host:port");
        }
        Ok(crate::sidecar::SidecarConfig {
            prometheus_url: url,
            grpc_address: self.listen.grpc_address,
            http_address: self.listen.http_address,
            cluster: self.cluster.to_config(),
            refresh_interval: self.refresh_interval,
            prometheus_timeout: self.prometheus_timeout,
            shipper: match self.objstore.load()? {
                Some(bucket) => Some(crate::sidecar::ShipperConfig {
                    bucket,
                    tsdb_path: self.tsdb_path,
                    upload_compacted: self.upload_compacted,
                    interval: self.shipper_interval,
                }),
                None => None,
            },
            store_group_id: self.store_group_id.unwrap_or_default(),
        })
    }
}

/// The addresses every component listens on.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address the Store API (gRPC) listens on; advertised in gossip (an
    /// unspecified IP is replaced by the node's advertise IP).
    #[arg(
        long = "grpc-address",
        env = "SKEIN_GRPC_ADDRESS",
        default_value = "0.0.0.0:10901"
    )]
    pub grpc_address: String,

    /// Address the HTTP server (health, readiness, metrics, APIs) listens on.
    #[arg(
        long = "http-address",
        env = "SKEIN_HTTP_ADDRESS",
        default_value = "0.0.0.0:10902"
    )]
    pub http_address: String,
}

/// Gossip flags, shared by every component.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Do not gossip: the node is reachable through --endpoint only.
    #[arg(long = "cluster.disable", env = "SKEIN_CLUSTER_DISABLE")]
    pub disable: bool,

    /// UDP address gossip listens on.
    #[arg(
        long = "cluster.listen-address",
        env = "SKEIN_CLUSTER_LISTEN_ADDRESS",
        default_value = "0.0.0.0:10900"
    )]
    pub listen_address: SocketAddr,

    /// Address other nodes use to reach this one. Defaults to the listen
    /// address, or, when that is 0.0.0.0, to the local address that routes to
    /// the first seed.
    #[arg(
        long = "cluster.advertise-address",
        env = "SKEIN_CLUSTER_ADVERTISE_ADDRESS"
    )]
    pub advertise_address: Option<SocketAddr>,

    /// Seed `host:port` to join through; repeatable or comma-separated.
    /// Names are resolved again periodically (a headless service works).
    #[arg(
        long = "cluster.peers",
        env = "SKEIN_CLUSTER_PEERS",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,

    /// Cluster name; nodes of another cluster are ignored.
    #[arg(
        long = "cluster.name",
        env = "SKEIN_CLUSTER_NAME",
        default_value = "skein"
    )]
    pub name: String,

    /// Unique node name; defaults to the advertise address.
    #[arg(long = "cluster.node-name", env = "SKEIN_CLUSTER_NODE_NAME")]
    pub node_name: Option<String>,

    /// Time between gossip rounds.
    #[arg(long = "cluster.gossip-interval", env = "SKEIN_CLUSTER_GOSSIP_INTERVAL",
          default_value = "1s", value_parser = parse_positive_duration)]
    pub gossip_interval: Duration,

    /// Failure-detector threshold (phi accrual): higher waits longer before
    /// declaring a silent node dead.
    #[arg(long = "cluster.phi-threshold", env = "SKEIN_CLUSTER_PHI_THRESHOLD",
          default_value_t = 8.0, value_parser = parse_phi)]
    pub phi_threshold: f64,

    /// How long a dead node's state is remembered.
    #[arg(long = "cluster.dead-node-grace-period", env = "SKEIN_CLUSTER_DEAD_NODE_GRACE_PERIOD",
          default_value = "1h", value_parser = parse_positive_duration)]
    pub dead_node_grace_period: Duration,
}

impl ClusterArgs {
    /// `None` when gossip is disabled.
    pub fn to_config(&self) -> Option<ClusterConfig> {
        (!self.disable).then(|| ClusterConfig {
            listen_address: self.listen_address,
            advertise_address: self.advertise_address,
            peers: self.peers.clone(),
            name: self.name.clone(),
            node_name: self.node_name.clone(),
            gossip_interval: self.gossip_interval,
            phi_threshold: self.phi_threshold,
            dead_node_grace_period: self.dead_node_grace_period,
        })
    }
}

fn parse_phi(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub listen: ListenArgs,

    /// A Store API endpoint that does not gossip (e.g. a Thanos sidecar),
    /// used while healthy; repeatable.
    #[arg(long = "endpoint", env = "SKEIN_ENDPOINT", value_delimiter = ',')]
    pub endpoints: Vec<String>,

    /// A Store API endpoint that stays in the active set while down, so
    /// queries that need it fail or are marked partial; repeatable.
    #[arg(
        long = "endpoint-strict",
        env = "SKEIN_ENDPOINT_STRICT",
        value_delimiter = ','
    )]
    pub strict_endpoints: Vec<String>,

    /// Store API endpoints that hold identical data (Thanos gateways of one
    /// bucket and time range, say), given together as host:port,host:port:
    /// one STORE group, asked one member at a time and hedged, each member
    /// used while healthy; repeatable.
    #[arg(
        long = "endpoint-group",
        env = "SKEIN_ENDPOINT_GROUP",
        value_delimiter = ';'
    )]
    pub endpoint_groups: Vec<String>,

    /// A static, non-strict endpoint failing this long is dropped from the
    /// listing until it recovers; a gossip member that died without
    /// leaving stays in queries, failing, this long.
    #[arg(long = "store.unhealthy-timeout", env = "SKEIN_STORE_UNHEALTHY_TIMEOUT",
          default_value = "5m", value_parser = parse_positive_duration)]
    pub unhealthy_timeout: Duration,

    /// Time between Info health checks of each store.
    #[arg(long = "store.health-check-interval", env = "SKEIN_STORE_HEALTH_CHECK_INTERVAL",
          default_value = "5s", value_parser = parse_positive_duration)]
    pub health_check_interval: Duration,

    /// Deadline of one health check.
    #[arg(long = "store.health-check-timeout", env = "SKEIN_STORE_HEALTH_CHECK_TIMEOUT",
          default_value = "5s", value_parser = parse_positive_duration)]
    pub health_check_timeout: Duration,

    /// Longest wait for any one frame of a store's answer; a store that
    /// stalls longer counts as failed and its group moves on. 0 disables.
    #[arg(long = "store.response-timeout", env = "SKEIN_STORE_RESPONSE_TIMEOUT",
          default_value = "30s", value_parser = parse_duration)]
    pub response_timeout: Duration,

    /// Label that tells replicas apart, removed when deduplicating;
    /// repeatable.
    #[arg(
        long = "query.replica-label",
        env = "SKEIN_QUERY_REPLICA_LABEL",
        value_delimiter = ','
    )]
    pub replica_labels: Vec<String>,

    /// How STORE and QUERY groups are hedged: race (two members at once),
    /// adaptive (a second member after the group's p90 latency), off.
    #[arg(
        long = "query.hedge",
        env = "SKEIN_QUERY_HEDGE",
        default_value = "adaptive"
    )]
    pub hedge: HedgeMode,

    /// Bounds of the adaptive hedge delay.
    #[arg(long = "query.hedge-min-delay", env = "SKEIN_QUERY_HEDGE_MIN_DELAY",
          default_value = "5ms", value_parser = parse_duration)]
    pub hedge_min_delay: Duration,

    #[arg(long = "query.hedge-max-delay", env = "SKEIN_QUERY_HEDGE_MAX_DELAY",
          default_value = "1s", value_parser = parse_positive_duration)]
    pub hedge_max_delay: Duration,

    /// Answer with the data at hand and a warning when stores fail (true),
    /// or fail the request (false). Requests may override it.
    #[arg(long = "query.partial-response", env = "SKEIN_QUERY_PARTIAL_RESPONSE",
          default_value_t = true, action = clap::ArgAction::Set)]
    pub partial_response: bool,

    /// Let queries without `max_source_resolution` read downsampled blocks
    /// (as "auto" does): range queries up to a fifth of their step,
    /// instant queries up to `--query.instant.default.max_source_resolution`.
    #[arg(long = "query.auto-downsampling", env = "SKEIN_QUERY_AUTO_DOWNSAMPLING",
          default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub auto_downsampling: bool,

    /// The coarsest downsampled data an instant query reads under
    /// `--query.auto-downsampling` or `max_source_resolution=auto`.
    #[arg(long = "query.instant.default.max_source_resolution",
          env = "SKEIN_QUERY_INSTANT_DEFAULT_MAX_SOURCE_RESOLUTION",
          default_value = "0s", value_parser = parse_duration)]
    pub instant_max_source_resolution: Duration,

    /// Deduplication of replicas: penalty (follow one replica, switch across
    /// gaps) or chain (union of samples).
    #[arg(
        long = "deduplication.func",
        env = "SKEIN_DEDUPLICATION_FUNC",
        default_value = "penalty"
    )]
    pub dedup_func: DedupFunc,

    /// How far back PromQL looks for a series' latest sample.
    #[arg(long = "query.lookback-delta", env = "SKEIN_QUERY_LOOKBACK_DELTA",
          default_value = "5m", value_parser = parse_positive_duration)]
    pub lookback_delta: Duration,

    /// Longest a PromQL query may run; a request's `timeout` parameter can
    /// only shorten it.
    #[arg(long = "query.timeout", env = "SKEIN_QUERY_TIMEOUT",
          default_value = "2m", value_parser = parse_positive_duration)]
    pub query_timeout: Duration,

    /// Most samples one query may hold in memory at once; 0 for no limit.
    #[arg(
        long = "query.max-samples",
        env = "SKEIN_QUERY_MAX_SAMPLES",
        default_value_t = 50_000_000
    )]
    pub max_samples: usize,

    /// PromQL queries evaluated at once; more wait for a slot.
    #[arg(long = "query.max-concurrent", env = "SKEIN_QUERY_MAX_CONCURRENT",
          default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent: u32,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl QueryArgs {
    pub fn into_config(self) -> anyhow::Result<QuerierConfig> {
        for e in self.endpoints.iter().chain(&self.strict_endpoints) {
            if e.trim().is_empty() || e.contains('/') {
                anyhow::bail!("invalid --endpoint {e:?}: expected host:port");
            }
        }
        let mut endpoint_groups = Vec::new();
        for g in &self.endpoint_groups {
            let members: Vec<String> = g.split(',').map(|m| m.trim().to_string()).collect();
            if members.len() < 2 || members.iter().any(|m| m.is_empty() || m.contains('/')) {
                anyhow::bail!(
                    "invalid --endpoint-group {g:?}: expected two or more host:port, comma-separated"
                );
            }
            endpoint_groups.push(members);
        }
        let lookback_delta_ms = i64::try_from(self.lookback_delta.as_millis())
            .map_err(|_| anyhow::anyhow!("--query.lookback-delta is too large"))?;
        Ok(QuerierConfig {
            http_address: self.listen.http_address,
            grpc_address: self.listen.grpc_address,
            cluster: self.cluster.to_config(),
            registry: RegistryConfig {
                peer: PeerConfig {
                    health_interval: self.health_check_interval,
                    health_timeout: self.health_check_timeout,
                },
                client: ClientConfig::default(),
                endpoints: self.endpoints,
                strict_endpoints: self.strict_endpoints,
                endpoint_groups,
                unhealthy_timeout: self.unhealthy_timeout,
                self_grpc: None,
            },
            query: QueryConfig {
                route: RouteConfig {
                    hedge: self.hedge,
                    response_timeout: self.response_timeout,
                    hedge_min_delay: self.hedge_min_delay,
                    hedge_max_delay: self.hedge_max_delay,
                    hedge_quantile: 0.9,
                },
                replica_labels: self.replica_labels,
                dedup_func: self.dedup_func,
                partial_response: self.partial_response,
                auto_downsampling: self.auto_downsampling,
                instant_max_source_resolution_ms: self.instant_max_source_resolution.as_millis()
                    as i64,
            },
            engine: EngineConfig {
                lookback_delta_ms,
                max_samples: self.max_samples,
                timeout: self.query_timeout,
                max_concurrent: self.max_concurrent as usize,
            },
        })
    }
}

#[derive(Debug, Args)]
pub struct SyntheticArgs {
    #[command(flatten)]
    pub listen: ListenArgs,

    /// External label `name=value` added to every series; repeatable.
    #[arg(long = "label", env = "SKEIN_LABEL", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// How queriers treat this store's group: store, source or query.
    #[arg(long = "peer-type", env = "SKEIN_PEER_TYPE", default_value = "source")]
    pub peer_type: PeerType,

    /// Group id; stores with equal labels and group id hold the same data.
    #[arg(
        long = "store-group-id",
        env = "SKEIN_STORE_GROUP_ID",
        default_value = ""
    )]
    pub store_group_id: String,

    /// Seed of the generated values; equal seeds give equal data.
    #[arg(long = "seed", env = "SKEIN_SYNTHETIC_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Simulated targets; each exposes 11 series.
    #[arg(long = "targets", env = "SKEIN_SYNTHETIC_TARGETS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub targets: u32,

    /// Time between two samples of a series.
    #[arg(long = "scrape-interval", env = "SKEIN_SYNTHETIC_SCRAPE_INTERVAL",
          default_value = "15s", value_parser = parse_positive_duration)]
    pub scrape_interval: Duration,

    /// How much history to generate, ending at --end.
    #[arg(long = "window", env = "SKEIN_SYNTHETIC_WINDOW", default_value = "6h",
          value_parser = parse_positive_duration)]
    pub window: Duration,

    /// End of the generated data: `now`, RFC 3339, Unix seconds, or relative
    /// to now (`-1h`).
    #[arg(long = "end", env = "SKEIN_SYNTHETIC_END", default_value = "now",
          value_parser = parse_time, allow_hyphen_values = true)]
    pub end: i64,

    /// A range without samples, `FROM..TO` (times as for --end), as a
    /// replica that was down would leave; repeatable.
    #[arg(long = "gap", env = "SKEIN_SYNTHETIC_GAP", value_parser = parse_gap,
          allow_hyphen_values = true)]
    pub gaps: Vec<(i64, i64)>,

    /// Slide the window with the clock: regenerate it up to now every
    /// scrape interval, as a live source whose samples keep arriving.
    #[arg(long = "follow", env = "SKEIN_SYNTHETIC_FOLLOW")]
    pub follow: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl StoreArgs {
    pub fn into_config(self) -> anyhow::Result<crate::storegw::StoreConfig> {
        use crate::storegw::TimeBound;
        let bucket = self.objstore.require()?;
        let selector_text = match (
            &self.selector_relabel_config,
            &self.selector_relabel_config_file,
        ) {
            (Some(text), _) => text.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read --selector.relabel-config-file {}: {e}",
                    path.display()
                )
            })?,
            (None, None) => String::new(),
        };
        let selector = crate::storegw::Selector::parse(&selector_text)
            .map_err(|e| anyhow::anyhow!("invalid --selector.relabel-config: {e}"))?;
        Ok(crate::storegw::StoreConfig {
            gateway: crate::storegw::role::GatewayConfig {
                grpc_address: self.listen.grpc_address,
                http_address: self.listen.http_address,
                cluster: self.cluster.to_config(),
                sync_interval: self.sync_interval,
                min_time: self.min_time.unwrap_or(TimeBound::At(i64::MIN)),
                max_time: self.max_time.unwrap_or(TimeBound::At(i64::MAX)),
                limits: crate::storegw::GatewayLimits {
                    series: self.series_limit,
                    samples: self.sample_limit,
                    concurrency: self.series_concurrency as usize,
                },
            },
            bucket,
            data_dir: self.data_dir,
            index_cache_bytes: self.index_cache_size,
            store_group_id: self.store_group_id.filter(|g| !g.is_empty()),
            selector,
        })
    }
}

impl SyntheticArgs {
    pub fn into_config(self) -> anyhow::Result<SyntheticConfig> {
        let external_labels =
            Labels::from_pairs(self.labels).map_err(|e| anyhow::anyhow!("invalid --label: {e}"))?;
        let interval_ms = i64::try_from(self.scrape_interval.as_millis())
            .map_err(|_| anyhow::anyhow!("--scrape-interval is too large"))?;
        if interval_ms == 0 {
            anyhow::bail!("--scrape-interval must be at least 1ms");
        }
        let window_ms = i64::try_from(self.window.as_millis())
            .map_err(|_| anyhow::anyhow!("--window is too large"))?;
        Ok(SyntheticConfig {
            grpc_address: self.listen.grpc_address,
            http_address: self.listen.http_address,
            cluster: self.cluster.to_config(),
            peer_type: self.peer_type,
            store_group_id: self.store_group_id,
            generator: GeneratorConfig {
                seed: self.seed,
                targets: self.targets as usize,
                interval_ms,
                start_ms: self.end.saturating_sub(window_ms),
                end_ms: self.end,
                gaps: self.gaps,
                external_labels,
            },
            follow: self.follow,
        })
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name=value`, with a Prometheus label name.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got {s:?}"))?;
    let value = value.trim_matches('"');
    if !is_label_name(name) {
        return Err(format!("{name:?} is not a valid label name"));
    }
    if value.is_empty() {
        return Err(format!("label {name:?} has an empty value"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A duration such as `15s`, `5m`, `1h30m`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(d)
}

/// A size in bytes: `250MB`, `1GiB`, `512KiB`, or a plain number.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: want e.g. 250MB"))?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?} (B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > usize::MAX as f64 {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(v as usize)
}

/// `FROM..TO`, each a time as [`parse_time`] reads it.
pub fn parse_gap(s: &str) -> Result<(i64, i64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected FROM..TO, got {s:?}"))?;
    let now = now_ms();
    let (from, to) = (parse_time_at(a, now)?, parse_time_at(b, now)?);
    if from >= to {
        return Err(format!("gap {s:?} ends before it starts"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time_at("now", now), Ok(now));
        assert_eq!(parse_time_at("-1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_time_at("+90s", now), Ok(now + 90_000));
        assert_eq!(parse_time_at("1700000000.5", now), Ok(1_700_000_000_500));
        assert_eq!(parse_time_at("-1.5", now), Ok(-1_500));
        assert_eq!(
            parse_time_at("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000)
        );
        assert!(parse_time_at("yesterday", now).is_err());
        assert!(parse_time_at("1e300", now).is_err());
    }

    #[test]
    fn labels_and_gaps() {
        assert_eq!(parse_label("replica=a"), Ok(("replica".into(), "a".into())));
        assert_eq!(parse_label("r=\"b\""), Ok(("r".into(), "b".into())));
        assert!(parse_label("1x=a").is_err());
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("x=").is_err());
        assert!(parse_gap("-10m..-5m").is_ok());
        assert!(parse_gap("-5m..-10m").is_err());
        assert!(parse_gap("-5m").is_err());
    }

    #[test]
    fn query_engine_flags() {
        let parse = |args: &[&str]| -> Result<EngineConfig, clap::Error> {
            let mut all = vec!["skein", "query"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all)?.command {
                Command::Query(q) => Ok(q.into_config().unwrap().engine),
                _ => panic!("parsed another command"),
            }
        };
        let d = parse(&[]).unwrap();
        assert_eq!(d.lookback_delta_ms, 300_000);
        assert_eq!(d.timeout, Duration::from_secs(120));
        assert_eq!((d.max_samples, d.max_concurrent), (50_000_000, 20));
        let c = parse(&[
            "--query.lookback-delta=1m30s",
            "--query.timeout=10s",
            "--query.max-samples=0",
            "--query.max-concurrent=4",
        ])
        .unwrap();
        assert_eq!(c.lookback_delta_ms, 90_000);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!((c.max_samples, c.max_concurrent), (0, 4));
        for bad in [
            "--query.lookback-delta=0s",
            "--query.timeout=soon",
            "--query.max-samples=-1",
            "--query.max-concurrent=0",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_parse_and_reject() {
        let cli = Cli::try_parse_from([
            "skein",
            "synthetic",
            "--label",
            "replica=a",
            "--peer-type",
            "store",
            "--gap",
            "-2h..-1h",
            "--end",
            "1700000000",
            "--window",
            "1h",
        ])
        .unwrap();
        let Command::Synthetic(args) = cli.command else {
            panic!("parsed another command")
        };
        let cfg = args.into_config().unwrap();
        assert_eq!(cfg.peer_type, PeerType::Store);
        assert_eq!(cfg.generator.end_ms, 1_700_000_000_000);
        assert_eq!(cfg.generator.start_ms, 1_700_000_000_000 - 3_600_000);
        for bad in [
            vec!["skein", "synthetic", "--peer-type", "bogus"],
            vec!["skein", "synthetic", "--scrape-interval", "0s"],
            vec!["skein", "synthetic", "--targets", "0"],
            vec!["skein", "synthetic", "--window", "soon"],
            vec!["skein", "--log.format", "xml", "synthetic"],
            vec!["skein", "nonexistent"],
        ] {
            let err = Cli::try_parse_from(&bad).unwrap_err().to_string();
            assert!(err.contains("error"), "{bad:?}: {err}");
        }
    }
}
