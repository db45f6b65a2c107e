//! `skein synthetic` flags.

use std::time::Duration;

use clap::Args;

use super::*;
pub use crate::model::time::parse_time;
use crate::model::Labels;
use crate::store::PeerType;
use crate::synthetic::{GeneratorConfig, SyntheticConfig};

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

    /// A file holding a duration (`500ms`) every Series answer waits before
    /// its first frame, re-read every 100 ms; Info and label calls stay
    /// fast. Simulates a slow store that passes its health checks.
    #[arg(long = "series-delay-file", env = "SKEIN_SYNTHETIC_SERIES_DELAY_FILE")]
    pub series_delay_file: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub cluster: ClusterArgs,
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
            grpc_limits: self.listen.grpc_limits(),
            security: self.listen.security()?,
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
            series_delay_file: self.series_delay_file,
        })
    }
}
