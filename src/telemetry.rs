//! Logs (tracing) and the process-wide metrics recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `key=value` fields on one line.
    Logfmt,
    /// One JSON object a line.
    Json,
}

/// Installs the global tracing subscriber. `level` is a level (`info`) or a
/// filter directive (`info,skein::store=debug`).
pub fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid --log.level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Logfmt => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// Latency buckets in seconds, from 1 ms to 1 minute.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// The process-wide metrics handle, installing the recorder on first use.
/// Every component of a process shares it, tests included.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed already; the handle
        // then renders nothing, which tests notice.
        let _ = metrics::set_global_recorder(recorder);
        crate::api::metrics::describe();
        crate::store::metrics::describe();
        crate::cluster::metrics::describe();
        crate::actors::metrics::describe();
        crate::query::metrics::describe();
        crate::promql::metrics_names::describe();
        crate::tsdb::cache::describe();
        crate::api::set_exposition(render);
        handle
    })
}

fn render() -> String {
    metrics().render()
}
