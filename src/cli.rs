//! Command-line flags. Every flag can also be set through the environment
//! variable named in its help; flag names follow Thanos where the concept
//! is the same.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::model::time::now_ms;
use crate::model::Labels;
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
    /// Serve generated series (counters, gauges, histograms) over the Store
    /// API from memory.
    Synthetic(SyntheticArgs),
}

#[derive(Debug, Args)]
pub struct SyntheticArgs {
    /// Address the Store API (gRPC) listens on.
    #[arg(
        long = "grpc-address",
        env = "SKEIN_GRPC_ADDRESS",
        default_value = "0.0.0.0:10901"
    )]
    pub grpc_address: String,

    /// Address the HTTP server (health, readiness, metrics) listens on.
    #[arg(
        long = "http-address",
        env = "SKEIN_HTTP_ADDRESS",
        default_value = "0.0.0.0:10902"
    )]
    pub http_address: String,

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
            grpc_address: self.grpc_address,
            http_address: self.http_address,
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

/// A point in time in milliseconds: `now`, RFC 3339, Unix seconds (with an
/// optional fraction), or a signed duration relative to now (`-2h`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_at(s, now_ms())
}

pub fn parse_time_at(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
        if rest.starts_with(|c: char| c.is_ascii_digit()) && !rest.contains(['.', ':']) {
            if let Ok(d) = humantime::parse_duration(rest) {
                let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too far"))?;
                return Ok(if s.starts_with('-') {
                    now - ms
                } else {
                    now + ms
                });
            }
        }
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs.abs() < 9.2e15 {
            return Ok((secs * 1000.0).round() as i64);
        }
        return Err(format!("time {s:?} is out of range"));
    }
    match humantime::parse_rfc3339_weak(s) {
        Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too far")),
            Err(e) => i64::try_from(e.duration().as_millis())
                .map(|ms| -ms)
                .map_err(|_| format!("{s:?} is too far")),
        },
        Err(_) => Err(format!(
            "invalid time {s:?}: expected now, RFC 3339, Unix seconds or a relative duration like -1h"
        )),
    }
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
        let Command::Synthetic(args) = cli.command;
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
