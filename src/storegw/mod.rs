//! `skein store`: Prometheus TSDB blocks from an object-storage bucket,
//! served over the Store API as a STORE peer. Gateways on one bucket share
//! a store group and the querier hedges between them.

pub mod bounds;
pub mod bucket;

pub mod role;
pub mod store;
pub mod sync;
pub mod tsdb_block;

pub use bounds::{parse_time_bound, TimeBound};
pub use store::{BlockInfo, BlockSeries, GatewayLimits, GatewayStore, MissingBlock};
pub use sync::{BlockLoader, SyncReport, Syncer};

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::objstore::{Bucket, BucketConfig};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub gateway: role::GatewayConfig,
    pub bucket: BucketConfig,
    /// Index headers go under `<data_dir>/index-headers`.
    pub data_dir: PathBuf,
    /// `--index-cache-size`: bytes of postings and series kept in memory.
    pub index_cache_bytes: usize,
    /// Memory for chunks read from the bucket (`--store.chunk-cache-size`).
    pub chunk_cache_bytes: usize,
    /// `--store-group-id`: replaces the group id derived from the bucket
    /// and the time bounds.
    pub store_group_id: Option<String>,
    /// `--selector.relabel-config`: which blocks this gateway serves.
    pub selector: Selector,
}

/// Block selection by relabelling (`--selector.relabel-config`), with a
/// short digest of its text for the group id.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub rules: Vec<crate::model::relabel::Rule>,
    /// Hex digest of the rules as given (empty when there are none).
    pub digest: String,
}

impl Selector {
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let rules = crate::model::relabel::parse_rules(yaml)?;
        let digest = if rules.is_empty() {
            String::new()
        } else {
            // The text normalised through YAML, so that formatting alone
            // does not split a group.
            let v: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
            let canonical = serde_json::to_string(&v).map_err(|e| e.to_string())?;
            use md5::Digest;
            let d = md5::Md5::digest(canonical.as_bytes());
            d[..8].iter().map(|b| format!("{b:02x}")).collect()
        };
        Ok(Self { rules, digest })
    }
}

/// The store group of a gateway: everything that decides which blocks it
/// serves, so that only gateways holding the same data share a group (a
/// querier asks one member of a group). Gateways splitting a bucket by
/// time are separate groups, and a query across the split asks each.
pub fn group_id(
    bucket_id: &str,
    min_time: TimeBound,
    max_time: TimeBound,
    selector: &Selector,
) -> String {
    let mut id = bucket_id.to_string();
    if min_time != TimeBound::At(i64::MIN) {
        id.push_str(&format!(";min-time={min_time}"));
    }
    if max_time != TimeBound::At(i64::MAX) {
        id.push_str(&format!(";max-time={max_time}"));
    }
    if !selector.digest.is_empty() {
        id.push_str(&format!(";selector={}", selector.digest));
    }
    id
}

/// `skein store`: serves the bucket's blocks until `shutdown`.
pub async fn run(
    cfg: StoreConfig,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(role::Bound),
) -> anyhow::Result<()> {
    let bucket = Arc::new(Bucket::open(&cfg.bucket)?);
    let (min, max) = (cfg.gateway.min_time, cfg.gateway.max_time);
    let group_id = cfg
        .store_group_id
        .clone()
        .unwrap_or_else(|| group_id(bucket.id(), min, max, &cfg.selector));
    let cache = Arc::new(crate::tsdb::cache::IndexCache::new(cfg.index_cache_bytes));
    let chunk_cache = Arc::new(crate::tsdb::cache::IndexCache::for_chunks(
        cfg.chunk_cache_bytes,
    ));
    let loader = Arc::new(
        bucket::BucketLoader::new(bucket, cfg.data_dir.join("index-headers"))
            .with_bounds(min, max)
            .with_selector(cfg.selector.rules.clone())
            .with_index_cache(cache)
            .with_chunk_cache(chunk_cache),
    );
    role::run_with(cfg.gateway, loader, group_id, shutdown, on_bound).await
}
