//! `skein demo` flags.

use std::time::Duration;

use clap::Args;

use super::*;

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
