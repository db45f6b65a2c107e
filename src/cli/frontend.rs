//! `skein frontend` flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::*;
use crate::frontend::api::Settings;
use crate::frontend::downstream::HedgeConfig;
use crate::frontend::{FrontendConfig, MemcachedConfig};

#[derive(Debug, Args)]
pub struct FrontendArgs {
    /// Address the HTTP server (the Prometheus HTTP API, the UI, health,
    /// metrics) listens on.
    #[arg(
        long = "http-address",
        env = "SKEIN_HTTP_ADDRESS",
        default_value = "0.0.0.0:10902"
    )]
    pub http_address: String,

    /// Prometheus web configuration file for the HTTP server: TLS, basic
    /// auth, headers; reloaded on change.
    #[arg(long = "http.config", env = "SKEIN_HTTP_CONFIG")]
    pub http_config: Option<PathBuf>,

    #[command(flatten)]
    pub web: WebArgs,

    /// Base URL of a querier's HTTP API (e.g. http://10.0.0.1:10902), as
    /// well as (or instead of) the queriers gossip finds; repeatable:
    /// requests go to the cheapest querier and are hedged to another.
    #[arg(
        long = "query-frontend.downstream-url",
        env = "SKEIN_QUERY_FRONTEND_DOWNSTREAM_URL",
        value_delimiter = ','
    )]
    pub downstream: Vec<String>,

    /// Longest one request to a querier may take.
    #[arg(long = "query-frontend.downstream-timeout", env = "SKEIN_QUERY_FRONTEND_DOWNSTREAM_TIMEOUT",
          default_value = "2m", value_parser = parse_positive_duration)]
    pub downstream_timeout: Duration,

    /// Range queries are split at multiples of this interval (UTC) and
    /// the pieces asked in parallel and cached apart; 0 disables splitting.
    #[arg(long = "query-range.split-interval", env = "SKEIN_QUERY_RANGE_SPLIT_INTERVAL",
          default_value = "24h", value_parser = parse_duration)]
    pub split_interval: Duration,

    /// Move each range query's start and end back to a multiple of its
    /// step (answers change a little; more of them are shared).
    #[arg(long = "query-range.align-range-with-step", env = "SKEIN_QUERY_RANGE_ALIGN_RANGE_WITH_STEP",
          default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub align_range_with_step: bool,

    /// Steps this recent are always asked afresh, never cached.
    #[arg(long = "query-range.max-freshness", env = "SKEIN_QUERY_RANGE_MAX_FRESHNESS",
          default_value = "10m", value_parser = parse_duration)]
    pub max_freshness: Duration,

    /// Most sub-queries of all range queries at once.
    #[arg(long = "query-range.max-query-parallelism", env = "SKEIN_QUERY_RANGE_MAX_QUERY_PARALLELISM",
          default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallelism: u32,

    /// Bytes the in-memory results cache may hold (e.g. 256MB); 0
    /// disables it.
    #[arg(long = "query-range.response-cache-max-size", env = "SKEIN_QUERY_RANGE_RESPONSE_CACHE_MAX_SIZE",
          default_value = "256MB", value_parser = parse_bytes)]
    pub cache_bytes: usize,

    /// memcached servers (host:port) of a results cache several frontends
    /// share, behind each one's own; repeatable. Each frontend takes only
    /// entries no change of data it has seen can alter.
    #[arg(
        long = "query-range.memcached-addresses",
        env = "SKEIN_QUERY_RANGE_MEMCACHED_ADDRESSES",
        value_delimiter = ','
    )]
    pub memcached_addresses: Vec<String>,

    /// Longest a memcached request may take (past it: a miss).
    #[arg(long = "query-range.memcached-timeout", env = "SKEIN_QUERY_RANGE_MEMCACHED_TIMEOUT",
          default_value = "200ms", value_parser = parse_positive_duration)]
    pub memcached_timeout: Duration,

    /// How long memcached keeps an entry.
    #[arg(long = "query-range.memcached-expiration", env = "SKEIN_QUERY_RANGE_MEMCACHED_EXPIRATION",
          default_value = "24h", value_parser = parse_positive_duration)]
    pub memcached_expiration: Duration,

    /// Hedging of requests to queriers: adaptive (a second querier after
    /// the hedge quantile of recent answer times) or off.
    #[arg(long = "query-frontend.hedge", env = "SKEIN_QUERY_FRONTEND_HEDGE",
          default_value_t = true, action = clap::ArgAction::Set)]
    pub hedge: bool,

    #[arg(long = "query-frontend.hedge-min-delay", env = "SKEIN_QUERY_FRONTEND_HEDGE_MIN_DELAY",
          default_value = "20ms", value_parser = parse_duration)]
    pub hedge_min_delay: Duration,

    #[arg(long = "query-frontend.hedge-max-delay", env = "SKEIN_QUERY_FRONTEND_HEDGE_MAX_DELAY",
          default_value = "2s", value_parser = parse_positive_duration)]
    pub hedge_max_delay: Duration,

    /// Hedges as a share of first requests to queriers over the last 10 s:
    /// `10%`, `0.1`, or `none`. Retries after a failed querier count but are
    /// never refused.
    #[arg(
        long = "query-frontend.hedge-budget",
        env = "SKEIN_QUERY_FRONTEND_HEDGE_BUDGET",
        default_value = "10%"
    )]
    pub hedge_budget: crate::query::budget::BudgetRatio,

    /// Hedges allowed in any 10 s window however few the first requests.
    #[arg(
        long = "query-frontend.hedge-budget-burst",
        env = "SKEIN_QUERY_FRONTEND_HEDGE_BUDGET_BURST",
        default_value_t = 5
    )]
    pub hedge_budget_burst: u32,

    /// The queriers' --query.lookback-delta: how far before a step its
    /// answer reads, for dropping exactly the cached answers a change of
    /// data can alter.
    #[arg(long = "query.lookback-delta", env = "SKEIN_QUERY_LOOKBACK_DELTA",
          default_value = "5m", value_parser = parse_positive_duration)]
    pub lookback_delta: Duration,

    /// After gossip shows a change of data (a store joined or left, a
    /// gateway loaded or dropped blocks), answers it can alter are not
    /// cached for this long: the queriers take a new store in after its
    /// first health check.
    #[arg(long = "query-frontend.change-settle-time", env = "SKEIN_QUERY_FRONTEND_CHANGE_SETTLE_TIME",
          default_value = "15s", value_parser = parse_duration)]
    pub change_settle_time: Duration,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Log range queries slower than this (0: none).
    #[arg(long = "query-frontend.log-queries-longer-than", env = "SKEIN_QUERY_FRONTEND_LOG_QUERIES_LONGER_THAN",
          default_value = "0s", value_parser = parse_duration)]
    pub log_queries_longer_than: Duration,
}

impl FrontendArgs {
    pub fn into_config(self) -> anyhow::Result<FrontendConfig> {
        for u in &self.downstream {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && reqwest::Url::parse(u).is_ok();
            if !ok {
                anyhow::bail!(
                    "invalid --query-frontend.downstream-url {u:?}: expected a URL such as http://10.0.0.1:10902"
                );
            }
        }
        if self.downstream.is_empty() && self.cluster.disable {
            anyhow::bail!(
                "no querier to send queries to: give --query-frontend.downstream-url, or let gossip find them (without --cluster.disable)"
            );
        }
        if self.hedge_min_delay > self.hedge_max_delay {
            anyhow::bail!(
                "--query-frontend.hedge-min-delay is above --query-frontend.hedge-max-delay"
            );
        }
        Ok(FrontendConfig {
            http_address: self.http_address,
            http_config: self.http_config,
            web: self.web.paths()?,
            downstream: self.downstream,
            cluster: self.cluster.to_config(),
            hedge: HedgeConfig {
                enabled: self.hedge,
                quantile: 0.9,
                min_delay: self.hedge_min_delay,
                max_delay: self.hedge_max_delay,
                budget: crate::query::budget::BudgetConfig {
                    ratio: self.hedge_budget.0,
                    burst: self.hedge_budget_burst,
                },
            },
            downstream_timeout: self.downstream_timeout,
            cache_bytes: self.cache_bytes,
            memcached: (!self.memcached_addresses.is_empty()).then_some(MemcachedConfig {
                addresses: self.memcached_addresses,
                timeout: self.memcached_timeout,
                expiration: self.memcached_expiration,
            }),
            settings: Settings {
                split_interval: self.split_interval,
                align_range_with_step: self.align_range_with_step,
                max_freshness: self.max_freshness,
                max_parallelism: self.max_parallelism as usize,
                log_queries_longer_than: self.log_queries_longer_than,
                lookback_delta: self.lookback_delta,
                change_settle_time: self.change_settle_time,
            },
        })
    }
}
