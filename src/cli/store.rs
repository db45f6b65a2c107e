//! `skein store` flags.

use std::time::Duration;

use clap::Args;

use super::*;

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

    /// Memory for chunks read from the bucket, so that dashboards asking
    /// for the same recent data again are answered without reading the
    /// bucket; e.g. 250MB or 1GiB; 0 disables the cache.
    #[arg(long = "store.chunk-cache-size", env = "SKEIN_STORE_CHUNK_CACHE_SIZE",
          default_value = "250MB", value_parser = parse_bytes)]
    pub chunk_cache_size: usize,

    /// Most series one Series request may return; a request over it fails
    /// with a clear error instead of loading them. 0: no limit.
    #[arg(
        long = "store.series-limit",
        alias = "store.limits.request-series",
        env = "SKEIN_STORE_SERIES_LIMIT",
        default_value_t = 1_000_000
    )]
    pub series_limit: usize,

    /// Most samples one Series request may return (counted from the
    /// chunks sent); a request over it fails with a clear error. 0: no limit.
    #[arg(
        long = "store.series-sample-limit",
        alias = "store.limits.request-samples",
        env = "SKEIN_STORE_SERIES_SAMPLE_LIMIT",
        default_value_t = 500_000_000
    )]
    pub sample_limit: u64,

    /// Series requests answered at once; the others wait their turn.
    #[arg(long = "store.series-max-concurrency", env = "SKEIN_STORE_SERIES_MAX_CONCURRENCY",
          default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub series_concurrency: u32,

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
                grpc_limits: self.listen.grpc_limits(),
                security: self.listen.security()?,
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
            chunk_cache_bytes: self.chunk_cache_size,
            store_group_id: self.store_group_id.filter(|g| !g.is_empty()),
            selector,
        })
    }
}
