//! The parts of Prometheus' HTTP API the sidecar reads: readiness, the
//! loaded configuration (for external labels), the retention flag (for the
//! oldest data) and label names and values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::client::{PromClientConfig, PromHttp};
use crate::model::{Labels, Matcher};
use crate::store::StoreError;

#[derive(Clone)]
pub struct PromApi {
    base: String,
    http: PromHttp,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ConfigData {
    yaml: String,
}

#[derive(Deserialize, Default)]
struct PromConfig {
    #[serde(default)]
    global: Global,
    #[serde(default)]
    storage: Storage,
}

#[derive(Deserialize, Default)]
struct Storage {
    #[serde(default)]
    tsdb: TsdbSettings,
}

#[derive(Deserialize, Default)]
struct TsdbSettings {
    #[serde(default)]
    out_of_order_time_window: Option<String>,
}

/// What the sidecar takes from Prometheus' loaded configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromSettings {
    /// `global.external_labels`.
    pub external_labels: Labels,
    /// `storage.tsdb.out_of_order_time_window`: how far behind its newest
    /// sample Prometheus still takes samples (zero: none).
    pub out_of_order_window: Duration,
}

#[derive(Deserialize, Default)]
struct Global {
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
}

fn parse_settings(yaml: &str) -> Result<PromSettings, String> {
    let parsed: PromConfig =
        serde_yaml_ng::from_str(yaml).map_err(|e| format!("unreadable configuration: {e}"))?;
    let external_labels = Labels::from_pairs(parsed.global.external_labels)
        .map_err(|e| format!("external labels: {e}"))?;
    let out_of_order_window = match parsed.storage.tsdb.out_of_order_time_window {
        None => Duration::ZERO,
        Some(w) => parse_prom_duration(&w).ok_or_else(|| {
            format!("storage.tsdb.out_of_order_time_window {w:?}: not a duration")
        })?,
    };
    Ok(PromSettings {
        external_labels,
        out_of_order_window,
    })
}

/// Prometheus' duration syntax (`15d`, `1y2w`, `90m`); `None` when invalid.
pub fn parse_prom_duration(s: &str) -> Option<Duration> {
    crate::model::time::parse_prom_duration(s)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(Duration::from_nanos)
}

impl PromApi {
    /// A client for the Prometheus at `base`, without credentials.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, StoreError> {
        let cfg = PromClientConfig::plain(base)
            .map_err(|e| StoreError::InvalidArgument(format!("{e:#}")))?;
        Self::with_client(&cfg, timeout)
    }

    /// A client for the Prometheus `cfg` describes.
    pub fn with_client(cfg: &PromClientConfig, timeout: Duration) -> Result<Self, StoreError> {
        let http = PromHttp::new(cfg, timeout, None)
            .map_err(|e| StoreError::InvalidArgument(format!("{e:#}")))?;
        Ok(Self {
            base: cfg.url.clone(),
            http,
            timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            peer: self.base.clone(),
            message: message.to_string(),
        }
    }

    /// Whether Prometheus answers `/-/ready`.
    pub async fn ready(&self) -> bool {
        matches!(
            self.http.request(reqwest::Method::GET, &format!("{}/-/ready", self.base)).timeout(self.timeout).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, StoreError> {
        let resp = self
            .http
            .request(reqwest::Method::GET, &format!("{}{path}", self.base))
            .query(query)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.unavailable(e))?;
        let env: Envelope<T> = serde_json::from_slice(&body).map_err(|e| {
            let text: String = String::from_utf8_lossy(&body).chars().take(256).collect();
            StoreError::protocol(
                &self.base,
                format!("{path} answered {status} with an unreadable body ({e}): {text}"),
            )
        })?;
        match (env.status.as_str(), env.data) {
            ("success", Some(d)) => Ok(d),
            // `null` data where the type allows it (an `Option`).
            ("success", None) => serde_json::from_str::<T>("null").map_err(|_| {
                StoreError::protocol(&self.base, format!("{path} answered success without data"))
            }),
            _ => {
                let e = env.error.unwrap_or_else(|| format!("status {status}"));
                Err(if status.is_server_error() {
                    self.unavailable(format!("{path}: {e}"))
                } else {
                    StoreError::protocol(&self.base, format!("{path}: {e}"))
                })
            }
        }
    }

    /// `global.external_labels` of the loaded configuration.
    pub async fn external_labels(&self) -> Result<Labels, StoreError> {
        Ok(self.settings().await?.external_labels)
    }

    /// External labels and the out-of-order window of the loaded
    /// configuration.
    pub async fn settings(&self) -> Result<PromSettings, StoreError> {
        let cfg: ConfigData = self.get("/api/v1/status/config", &[]).await?;
        parse_settings(&cfg.yaml).map_err(|e| StoreError::protocol(&self.base, e))
    }

    /// How far back Prometheus keeps data (`--storage.tsdb.retention.time`).
    pub async fn retention(&self) -> Result<Option<Duration>, StoreError> {
        let flags: BTreeMap<String, String> = self.get("/api/v1/status/flags", &[]).await?;
        Ok(flags
            .get("storage.tsdb.retention.time")
            .and_then(|v| parse_prom_duration(v))
            .filter(|d| !d.is_zero()))
    }

    /// `--storage.tsdb.min-block-duration` and `max-block-duration`: equal
    /// when Prometheus does not compact its blocks.
    pub async fn block_durations(
        &self,
    ) -> Result<(Option<Duration>, Option<Duration>), StoreError> {
        let flags: BTreeMap<String, String> = self.get("/api/v1/status/flags", &[]).await?;
        let get = |k: &str| flags.get(k).and_then(|v| parse_prom_duration(v));
        Ok((
            get("storage.tsdb.min-block-duration"),
            get("storage.tsdb.max-block-duration"),
        ))
    }

    fn range_query(matchers: &[Matcher], start: i64, end: i64) -> Vec<(String, String)> {
        let mut q = time_params(start, end);
        if !matchers.is_empty() {
            let sel: Vec<String> = matchers.iter().map(ToString::to_string).collect();
            q.push(("match[]".to_string(), format!("{{{}}}", sel.join(","))));
        }
        q
    }

    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.get("/api/v1/labels", &Self::range_query(matchers, start, end))
            .await
    }

    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StoreError> {
        let path = format!("/api/v1/label/{}/values", urlencode(name));
        self.get(&path, &Self::range_query(matchers, start, end))
            .await
    }
}

/// One entry of Prometheus' `/api/v1/metadata`.
#[derive(Debug, Deserialize)]
struct PromMeta {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    help: String,
    #[serde(default)]
    unit: String,
}

impl PromApi {
    /// `/api/v1/metadata`: every metric's metadata, or `metric`'s; at most
    /// `limit` metrics when not negative.
    pub async fn metadata(
        &self,
        metric: &str,
        limit: i64,
    ) -> Result<std::collections::BTreeMap<String, Vec<crate::store::Meta>>, StoreError> {
        let mut q = Vec::new();
        if !metric.is_empty() {
            q.push(("metric".to_string(), metric.to_string()));
        }
        if limit >= 0 {
            q.push(("limit".to_string(), limit.to_string()));
        }
        let raw: std::collections::BTreeMap<String, Vec<PromMeta>> =
            self.get("/api/v1/metadata", &q).await?;
        Ok(raw
            .into_iter()
            .map(|(name, metas)| {
                let metas = metas
                    .into_iter()
                    .map(|m| crate::store::Meta {
                        kind: m.kind,
                        help: m.help,
                        unit: m.unit,
                    })
                    .collect();
                (name, metas)
            })
            .collect())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromExemplarData {
    #[serde(default)]
    series_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    exemplars: Vec<PromExemplar>,
}

#[derive(Debug, Deserialize)]
struct PromExemplar {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    value: String,
    /// Seconds, milliseconds in the fraction.
    timestamp: f64,
}

impl PromApi {
    /// `/api/v1/query_exemplars` for `query` over `[start, end]` (ms), with
    /// `external` labels added to every series' labels (they win over its
    /// own), not to the exemplars'.
    pub async fn exemplars(
        &self,
        query: &str,
        start: i64,
        end: i64,
        external: &Labels,
    ) -> Result<crate::storeapi::exemplars::ExemplarsResponse, StoreError> {
        use crate::storeapi::exemplars::{Exemplar, ExemplarSeries, ExemplarsResponse};
        let mut q = vec![("query".to_string(), query.to_string())];
        q.extend(time_params(start, end));
        let raw: Option<Vec<PromExemplarData>> = self.get("/api/v1/query_exemplars", &q).await?;
        let labels = |m: std::collections::BTreeMap<String, String>| {
            Labels::from_pairs(m).map_err(|e| StoreError::protocol(&self.base, e))
        };
        let mut out = ExemplarsResponse::default();
        let mut count = 0usize;
        for d in raw.unwrap_or_default() {
            count += d.exemplars.len();
            if count > crate::store::MAX_EXEMPLARS {
                return Err(StoreError::protocol(
                    &self.base,
                    format!("more than {} exemplars", crate::store::MAX_EXEMPLARS),
                ));
            }
            let exemplars = d
                .exemplars
                .into_iter()
                .map(|e| {
                    let value = e.value.parse::<f64>().map_err(|_| {
                        StoreError::protocol(
                            &self.base,
                            format!("exemplar value {:?} is not a number", e.value),
                        )
                    })?;
                    Ok(Exemplar {
                        labels: labels(e.labels)?,
                        value,
                        ts: (e.timestamp * 1000.0).round() as i64,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            out.series.push(ExemplarSeries {
                series_labels: labels(d.series_labels)?.merged_with(external),
                exemplars,
            });
        }
        Ok(out)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromActiveTarget {
    #[serde(default)]
    discovered_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    scrape_pool: String,
    #[serde(default)]
    scrape_url: String,
    #[serde(default)]
    global_url: String,
    #[serde(default)]
    last_error: String,
    #[serde(default)]
    last_scrape: String,
    #[serde(default)]
    last_scrape_duration: f64,
    #[serde(default)]
    health: String,
    #[serde(default)]
    scrape_interval: String,
    #[serde(default)]
    scrape_timeout: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromDroppedTarget {
    #[serde(default)]
    discovered_labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromTargets {
    #[serde(default)]
    active_targets: Vec<PromActiveTarget>,
    #[serde(default)]
    dropped_targets: Vec<PromDroppedTarget>,
}

impl PromApi {
    /// `/api/v1/targets`, with `external` labels added to every target's
    /// labels (they win over a target's own of the same name).
    pub async fn targets(
        &self,
        state: crate::storeapi::targets::TargetState,
        external: &Labels,
    ) -> Result<crate::storeapi::targets::TargetsResponse, StoreError> {
        use crate::storeapi::targets::{
            ActiveTarget, DroppedTarget, TargetHealth, TargetState, TargetsResponse,
        };
        let mut q = Vec::new();
        match state {
            TargetState::Active => q.push(("state".to_string(), "active".to_string())),
            TargetState::Dropped => q.push(("state".to_string(), "dropped".to_string())),
            TargetState::Any => {}
        }
        let raw: PromTargets = self.get("/api/v1/targets", &q).await?;
        let labels = |m: std::collections::BTreeMap<String, String>| -> Result<Labels, StoreError> {
            let mut l = Labels::from_pairs(m).map_err(|e| StoreError::protocol(&self.base, e))?;
            for e in external.iter() {
                l = l.with(&e.name, &e.value);
            }
            Ok(l)
        };
        let mut out = TargetsResponse::default();
        for t in raw.active_targets {
            out.active.push(ActiveTarget {
                discovered_labels: labels(t.discovered_labels)?,
                labels: labels(t.labels)?,
                scrape_pool: t.scrape_pool,
                scrape_url: t.scrape_url,
                global_url: t.global_url,
                last_error: t.last_error,
                last_scrape: humantime::parse_rfc3339_weak(&t.last_scrape).ok(),
                last_scrape_duration: t.last_scrape_duration,
                health: TargetHealth::parse(&t.health),
                scrape_interval: t.scrape_interval,
                scrape_timeout: t.scrape_timeout,
            });
        }
        for t in raw.dropped_targets {
            out.dropped.push(DroppedTarget {
                discovered_labels: labels(t.discovered_labels)?,
            });
        }
        Ok(out)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromAlert {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    active_at: Option<String>,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromRule {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    health: String,
    #[serde(default)]
    last_error: String,
    #[serde(default)]
    evaluation_time: f64,
    #[serde(default)]
    last_evaluation: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    duration: f64,
    #[serde(default)]
    keep_firing_for: f64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    alerts: Vec<PromAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    rules: Vec<PromRule>,
    #[serde(default)]
    interval: f64,
    #[serde(default)]
    limit: i64,
    #[serde(default)]
    evaluation_time: f64,
    #[serde(default)]
    last_evaluation: String,
}

#[derive(Debug, Deserialize)]
struct PromGroups {
    #[serde(default)]
    groups: Vec<PromGroup>,
}

impl PromApi {
    /// `/api/v1/rules` (`type` when not all), with `external` labels added
    /// to every rule's labels (they win over its own), not to its alerts'.
    pub async fn rules(
        &self,
        kind: crate::storeapi::rules::RuleType,
        external: &Labels,
    ) -> Result<crate::storeapi::rules::RulesResponse, StoreError> {
        use crate::storeapi::rules::{
            AlertInstance, AlertState, Rule, RuleCommon, RuleGroup, RuleType, RulesResponse,
        };
        let mut q = Vec::new();
        match kind {
            RuleType::Alert => q.push(("type".to_string(), "alert".to_string())),
            RuleType::Record => q.push(("type".to_string(), "record".to_string())),
            RuleType::All => {}
        }
        let raw: PromGroups = self.get("/api/v1/rules", &q).await?;
        let set = |m: std::collections::BTreeMap<String, String>| -> Result<Labels, StoreError> {
            Labels::from_pairs(m).map_err(|e| StoreError::protocol(&self.base, e))
        };
        let time = |s: &str| humantime::parse_rfc3339_weak(s).ok();
        let mut out = RulesResponse::default();
        for g in raw.groups {
            let mut rules = Vec::with_capacity(g.rules.len());
            for r in g.rules {
                let mut labels = set(r.labels)?;
                for e in external.iter() {
                    labels = labels.with(&e.name, &e.value);
                }
                let common = RuleCommon {
                    name: r.name,
                    query: r.query,
                    labels,
                    health: r.health,
                    last_error: r.last_error,
                    evaluation_time: r.evaluation_time,
                    last_evaluation: time(&r.last_evaluation),
                };
                rules.push(match r.kind.as_str() {
                    "recording" => Rule::Recording(common),
                    "alerting" => Rule::Alerting {
                        common,
                        state: AlertState::parse(&r.state),
                        duration: r.duration,
                        keep_firing_for: r.keep_firing_for,
                        annotations: set(r.annotations)?,
                        alerts: r
                            .alerts
                            .into_iter()
                            .map(|a| {
                                Ok(AlertInstance {
                                    labels: set(a.labels)?,
                                    annotations: set(a.annotations)?,
                                    state: AlertState::parse(&a.state),
                                    active_at: a.active_at.as_deref().and_then(time),
                                    value: a.value,
                                })
                            })
                            .collect::<Result<_, StoreError>>()?,
                    },
                    other => {
                        return Err(StoreError::protocol(
                            &self.base,
                            format!("/api/v1/rules: unknown rule type {other:?}"),
                        ))
                    }
                });
            }
            out.groups.push(RuleGroup {
                name: g.name,
                file: g.file,
                rules,
                interval: g.interval,
                evaluation_time: g.evaluation_time,
                last_evaluation: time(&g.last_evaluation),
                limit: g.limit,
            });
        }
        Ok(out)
    }
}

/// `start` and `end` (ms) as Prometheus' API takes them, seconds with the
/// milliseconds. A time outside years 1 to 9999 (an open end: `i64::MIN`,
/// `i64::MAX`) is left out, and Prometheus reads from its first sample or
/// to its last: it answers such far times with nothing at all.
fn time_params(start: i64, end: i64) -> Vec<(String, String)> {
    const YEAR_1_MS: i64 = -62_135_596_800_000;
    const YEAR_9999_MS: i64 = 253_402_300_799_000;
    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let mut q = Vec::with_capacity(2);
    if start > YEAR_1_MS {
        q.push(("start".to_string(), seconds(start)));
    }
    if end < YEAR_9999_MS {
        q.push(("end".to_string(), seconds(end)));
    }
    q
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ends_are_left_to_prometheus() {
        let q = time_params(i64::MIN, i64::MAX);
        assert!(q.is_empty(), "{q:?}");
        let q = time_params(1_700_000_000_123, i64::MAX);
        assert_eq!(q, vec![("start".to_string(), "1700000000.123".to_string())]);
        let q = time_params(-5, 2_000);
        assert_eq!(
            q,
            vec![
                ("start".to_string(), "-0.005".to_string()),
                ("end".to_string(), "2.000".to_string())
            ]
        );
    }

    #[test]
    fn prometheus_durations() {
        assert_eq!(
            parse_prom_duration("15d"),
            Some(Duration::from_secs(15 * 86_400))
        );
        assert_eq!(
            parse_prom_duration("1y2w"),
            Some(Duration::from_secs((365 + 14) * 86_400))
        );
        assert_eq!(parse_prom_duration("90m"), Some(Duration::from_secs(5_400)));
        assert_eq!(
            parse_prom_duration("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_prom_duration("15"), None);
        assert_eq!(parse_prom_duration("d"), None);
        assert_eq!(parse_prom_duration("1x"), None);
    }

    #[test]
    fn external_labels_from_config_yaml() {
        let yaml = "global:\n  scrape_interval: 15s\n  external_labels:\n    replica: a\n    region: \"eu-1\"\nscrape_configs: []\n";
        let cfg: PromConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let l = Labels::from_pairs(cfg.global.external_labels).unwrap();
        assert_eq!(l.to_string(), r#"{region="eu-1", replica="a"}"#);
        let none: PromConfig = serde_yaml_ng::from_str("global:\n  scrape_interval: 1m\n").unwrap();
        assert!(none.global.external_labels.is_empty());
    }

    #[test]
    fn out_of_order_window_from_config_yaml() {
        let yaml = "global:\n  external_labels:\n    replica: a\nstorage:\n  tsdb:\n    out_of_order_time_window: 30m\n";
        let s = parse_settings(yaml).unwrap();
        assert_eq!(s.out_of_order_window, Duration::from_secs(1_800));
        assert_eq!(s.external_labels.get("replica"), Some("a"));
        let s = parse_settings("global:\n  external_labels:\n    replica: a\n").unwrap();
        assert_eq!(s.out_of_order_window, Duration::ZERO);
        let bad = "storage:\n  tsdb:\n    out_of_order_time_window: soon\n";
        assert!(parse_settings(bad).unwrap_err().contains("soon"));
    }
}
