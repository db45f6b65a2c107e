//! Scrape targets (`thanos.Targets`, Prometheus' `/api/v1/targets`): what
//! each Prometheus scrapes and what its relabelling dropped, and how the
//! answers of an HA pair collapse into one list.

use std::time::SystemTime;

use super::PartialResponse;
use crate::model::Labels;

/// Which targets a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetState {
    #[default]
    Any,
    Active,
    Dropped,
}

impl TargetState {
    /// Prometheus' `state` parameter: `active`, `dropped`, or anything
    /// else (`any`, empty) for both.
    pub fn from_param(s: &str) -> Self {
        match s {
            "active" => TargetState::Active,
            "dropped" => TargetState::Dropped,
            _ => TargetState::Any,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetsRequest {
    pub state: TargetState,
    pub partial_response: PartialResponse,
    pub hops: u32,
    pub deadline: Option<std::time::Instant>,
}

/// A target's health as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetHealth {
    /// First: of two replicas' views of one target, "down" wins.
    Down,
    Up,
    Unknown,
}

impl TargetHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Down => "down",
            TargetHealth::Up => "up",
            TargetHealth::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "up" => TargetHealth::Up,
            "down" => TargetHealth::Down,
            _ => TargetHealth::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTarget {
    pub discovered_labels: Labels,
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub global_url: String,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    /// Seconds.
    pub last_scrape_duration: f64,
    pub health: TargetHealth,
    /// As Prometheus writes them (`15s`); empty when unknown.
    pub scrape_interval: String,
    pub scrape_timeout: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetsResponse {
    pub active: Vec<ActiveTarget>,
    pub dropped: Vec<DroppedTarget>,
    pub warnings: Vec<String>,
}

impl TargetsResponse {
    pub fn extend(&mut self, other: TargetsResponse) {
        self.active.extend(other.active);
        self.dropped.extend(other.dropped);
        self.warnings.extend(other.warnings);
    }

    /// Collapses the replicas' views of each target into one: the
    /// `replica_labels` are removed from its labels, and targets then equal
    /// in scrape pool, URL and labels are one, the "down" view winning over
    /// "up", the latest scrape breaking ties. Sorted by pool, URL, labels.
    pub fn dedup(&mut self, replica_labels: &[String]) {
        for t in &mut self.active {
            t.discovered_labels = t.discovered_labels.without(replica_labels);
            t.labels = t.labels.without(replica_labels);
        }
        self.active.sort_by(|a, b| {
            (
                &a.scrape_pool,
                &a.scrape_url,
                &a.labels,
                &a.discovered_labels,
            )
                .cmp(&(
                    &b.scrape_pool,
                    &b.scrape_url,
                    &b.labels,
                    &b.discovered_labels,
                ))
                .then(a.health.cmp(&b.health))
                .then(b.last_scrape.cmp(&a.last_scrape))
        });
        self.active.dedup_by(|later, first| {
            later.scrape_pool == first.scrape_pool
                && later.scrape_url == first.scrape_url
                && later.labels == first.labels
                && later.discovered_labels == first.discovered_labels
        });
        for t in &mut self.dropped {
            t.discovered_labels = t.discovered_labels.without(replica_labels);
        }
        self.dropped
            .sort_by(|a, b| a.discovered_labels.cmp(&b.discovered_labels));
        self.dropped
            .dedup_by(|a, b| a.discovered_labels == b.discovered_labels);
    }
}

/// A time as Go writes RFC 3339 with nanoseconds: UTC, the fraction
/// without trailing zeros (none when whole).
pub fn format_rfc3339(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_nanos(t).to_string();
    match s.split_once('.') {
        Some((whole, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{digits}Z")
            }
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(replica: &str, health: TargetHealth, scraped: u64) -> ActiveTarget {
        let labels = Labels::from_pairs([("job", "x"), ("replica", replica)]).unwrap();
        ActiveTarget {
            discovered_labels: labels.clone(),
            labels,
            scrape_pool: "x".into(),
            scrape_url: "http://h:1/metrics".into(),
            global_url: String::new(),
            last_error: String::new(),
            last_scrape: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(scraped)),
            last_scrape_duration: 0.1,
            health,
            scrape_interval: "1s".into(),
            scrape_timeout: "1s".into(),
        }
    }

    #[test]
    fn replicas_collapse_and_down_wins() {
        let mut r = TargetsResponse {
            active: vec![
                target("a", TargetHealth::Up, 20),
                target("b", TargetHealth::Down, 10),
            ],
            ..Default::default()
        };
        r.dedup(&["replica".to_string()]);
        assert_eq!(r.active.len(), 1);
        assert_eq!(r.active[0].health, TargetHealth::Down);
        assert_eq!(r.active[0].labels.to_string(), r#"{job="x"}"#);
        let mut both_up = TargetsResponse {
            active: vec![
                target("a", TargetHealth::Up, 10),
                target("b", TargetHealth::Up, 20),
            ],
            ..Default::default()
        };
        both_up.dedup(&["replica".to_string()]);
        assert_eq!(
            both_up.active[0].last_scrape,
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(20))
        );
    }

    #[test]
    fn times_are_written_as_go_writes_them() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        assert_eq!(format_rfc3339(t), "1970-01-01T00:00:01.5Z");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2);
        assert_eq!(format_rfc3339(t), "1970-01-01T00:00:02Z");
    }
}
