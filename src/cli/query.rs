//! `skein query` flags.

use std::time::Duration;

use clap::Args;

use super::*;
use crate::actors::store_peer::PeerConfig;
use crate::actors::RegistryConfig;
use crate::promql::EngineConfig;
use crate::querier::QuerierConfig;
use crate::query::{DedupFunc, HedgeMode, QueryConfig, RouteConfig};
use crate::store::ClientConfig;

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub grpc_client: GrpcClientArgs,

    #[command(flatten)]
    pub web: WebArgs,

    /// Networks (CIDR, or one IP address) a gossiped member's Store API
    /// address must be in; members outside are listed with the reason and
    /// never dialled. Static --endpoint flags are not restricted. Empty:
    /// any address. Repeatable or comma-separated.
    #[arg(long = "cluster.allowed-endpoints", env = "SKEIN_CLUSTER_ALLOWED_ENDPOINTS",
          value_delimiter = ',', value_parser = parse_network)]
    pub allowed_endpoints: Vec<ipnet::IpNet>,

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

    /// Extra requests (hedges and fallbacks) as a share of primary requests
    /// over the last 10 s, per group and per querier: `10%`, `0.1`, or
    /// `none`. Fallbacks count but are never refused.
    #[arg(
        long = "query.hedge-budget",
        env = "SKEIN_QUERY_HEDGE_BUDGET",
        default_value = "10%"
    )]
    pub hedge_budget: crate::query::budget::BudgetRatio,

    /// Extra requests allowed in any 10 s window however few the primary
    /// requests, so a quiet querier still hedges.
    #[arg(
        long = "query.hedge-budget-burst",
        env = "SKEIN_QUERY_HEDGE_BUDGET_BURST",
        default_value_t = 5
    )]
    pub hedge_budget_burst: u32,

    /// Least time between two probes of a demoted member by this querier.
    #[arg(long = "query.probe-interval", env = "SKEIN_QUERY_PROBE_INTERVAL",
          default_value = "1s", value_parser = parse_positive_duration)]
    pub probe_interval: Duration,

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

    /// Threads the series of one large selector are spread over (helpers
    /// are shared by all queries; a busy querier runs them inline); 0: as
    /// many as the machine has cores, 1: one thread per query as
    /// Prometheus does.
    #[arg(
        long = "query.eval-threads",
        env = "SKEIN_QUERY_EVAL_THREADS",
        default_value_t = 0
    )]
    pub eval_threads: usize,

    /// Most bytes of series data (labels and compressed chunks) one query
    /// may fetch from the stores before it is evaluated; 0 for no limit.
    #[arg(long = "query.max-fetched-bytes", env = "SKEIN_QUERY_MAX_FETCHED_BYTES",
          default_value_t = 1 << 30)]
    pub max_fetched_bytes: usize,

    /// PromQL queries evaluated at once; more wait for a slot.
    #[arg(long = "query.max-concurrent", env = "SKEIN_QUERY_MAX_CONCURRENT",
          default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent: u32,

    /// Series and label requests answered at once, apart from PromQL's
    /// slots; more wait for a slot within --query.timeout.
    #[arg(long = "query.max-concurrent-metadata", env = "SKEIN_QUERY_MAX_CONCURRENT_METADATA",
          default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_metadata: u32,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl QueryArgs {
    pub fn into_config(self) -> anyhow::Result<QuerierConfig> {
        crate::promql::set_eval_threads(self.eval_threads);
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
        let grpc_client_tls = self.grpc_client.options()?;
        Ok(QuerierConfig {
            web: self.web.paths()?,
            grpc_client_tls,
            allowed_endpoints: self.allowed_endpoints,
            grpc_limits: self.listen.grpc_limits(),
            security: self.listen.security()?,
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
                local: vec![],
            },
            query: QueryConfig {
                route: RouteConfig {
                    hedge: self.hedge,
                    response_timeout: self.response_timeout,
                    hedge_min_delay: self.hedge_min_delay,
                    hedge_max_delay: self.hedge_max_delay,
                    hedge_quantile: 0.9,
                    budget: crate::query::budget::BudgetConfig {
                        ratio: self.hedge_budget.0,
                        burst: self.hedge_budget_burst,
                    },
                    querier_budget: Default::default(),
                    probe_interval: self.probe_interval,
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
                max_fetched_bytes: self.max_fetched_bytes,
                timeout: self.query_timeout,
                max_concurrent: self.max_concurrent as usize,
                max_concurrent_metadata: self.max_concurrent_metadata as usize,
            },
        })
    }
}
