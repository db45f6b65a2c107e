//! `skein sidecar` flags.

use std::time::Duration;

use clap::Args;

use super::*;

#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// Base URL of the Prometheus to serve.
    #[arg(
        long = "prometheus.url",
        env = "SKEIN_PROMETHEUS_URL",
        default_value = "http://localhost:9090"
    )]
    pub prometheus_url: String,

    /// HTTP client settings for Prometheus, inline YAML in Thanos' format:
    /// basic_auth (username, password, password_file), bearer_token,
    /// bearer_token_file, proxy_url, tls_config (ca_file, cert_file,
    /// key_file, server_name, insecure_skip_verify).
    #[arg(long = "prometheus.http-client", env = "SKEIN_PROMETHEUS_HTTP_CLIENT")]
    pub http_client: Option<String>,

    /// --prometheus.http-client, read from a file.
    #[arg(
        long = "prometheus.http-client-file",
        env = "SKEIN_PROMETHEUS_HTTP_CLIENT_FILE"
    )]
    pub http_client_file: Option<std::path::PathBuf>,

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
    /// completed blocks to upload and to answer queries from.
    #[arg(
        long = "tsdb.path",
        env = "SKEIN_TSDB_PATH",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub tsdb_path: std::path::PathBuf,

    /// Answer queries over completed blocks from the blocks in --tsdb.path
    /// (each checked against Prometheus before use) and ask Prometheus
    /// only for the newest data; false: everything over remote read.
    #[arg(long = "tsdb.read-blocks", env = "SKEIN_TSDB_READ_BLOCKS",
          default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub read_blocks: bool,

    /// Memory for chunks read from blocks on disk (e.g. 64MB, 1GiB; 0: no
    /// cache), so that queries asked again (dashboards) skip the reads.
    #[arg(long = "tsdb.chunk-cache-size", env = "SKEIN_TSDB_CHUNK_CACHE_SIZE",
          default_value = "64MB", value_parser = parse_bytes)]
    pub chunk_cache_size: usize,

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
        let prometheus = crate::sidecar::client::PromClientConfig::parse(
            &self.prometheus_url,
            self.http_client.as_deref(),
            self.http_client_file.as_deref(),
        )?;
        Ok(crate::sidecar::SidecarConfig {
            prometheus,
            grpc_limits: self.listen.grpc_limits(),
            security: self.listen.security()?,
            grpc_address: self.listen.grpc_address,
            http_address: self.listen.http_address,
            cluster: self.cluster.to_config(),
            refresh_interval: self.refresh_interval,
            prometheus_timeout: self.prometheus_timeout,
            read_blocks: self.read_blocks.then(|| self.tsdb_path.clone()),
            chunk_cache_bytes: self.chunk_cache_size,
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
