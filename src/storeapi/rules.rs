//! Rule groups and alerts (`thanos.Rules`, Prometheus' `/api/v1/rules` and
//! `/api/v1/alerts`), and how the groups of an HA pair collapse into one.

use std::time::SystemTime;

use super::PartialResponse;
use crate::model::Labels;

/// Which rules a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleType {
    #[default]
    All,
    Alert,
    Record,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RulesRequest {
    pub kind: RuleType,
    pub partial_response: PartialResponse,
    pub hops: u32,
    pub deadline: Option<std::time::Instant>,
}

/// An alert's state; the order is the precedence of replicas' views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum AlertState {
    #[default]
    Unknown,
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Unknown => "unknown",
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "inactive" => AlertState::Inactive,
            "pending" => AlertState::Pending,
            "firing" => AlertState::Firing,
            _ => AlertState::Unknown,
        }
    }
}

/// One alert of an alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInstance {
    pub labels: Labels,
    pub annotations: Labels,
    pub state: AlertState,
    pub active_at: Option<SystemTime>,
    /// The sample value as Prometheus writes it.
    pub value: String,
}

/// What alerting and recording rules share.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleCommon {
    pub name: String,
    pub query: String,
    pub labels: Labels,
    pub health: String,
    pub last_error: String,
    /// Seconds.
    pub evaluation_time: f64,
    pub last_evaluation: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Recording(RuleCommon),
    Alerting {
        common: RuleCommon,
        state: AlertState,
        /// `for`, in seconds.
        duration: f64,
        keep_firing_for: f64,
        annotations: Labels,
        alerts: Vec<AlertInstance>,
    },
}

impl Rule {
    pub fn common(&self) -> &RuleCommon {
        match self {
            Rule::Recording(c) | Rule::Alerting { common: c, .. } => c,
        }
    }

    fn common_mut(&mut self) -> &mut RuleCommon {
        match self {
            Rule::Recording(c) | Rule::Alerting { common: c, .. } => c,
        }
    }

    /// What makes two replicas' rules one: kind, name, labels, query, and
    /// for alerts their `for`.
    fn identity(&self) -> (u8, &str, &Labels, &str, u64) {
        let c = self.common();
        match self {
            Rule::Alerting { duration, .. } => {
                (0, &c.name, &c.labels, &c.query, duration.to_bits())
            }
            Rule::Recording(_) => (1, &c.name, &c.labels, &c.query, 0),
        }
    }

    /// Of two views of one rule, which to keep: the alert in the higher
    /// state, then the later evaluation.
    fn precedence(&self) -> (AlertState, Option<SystemTime>) {
        let state = match self {
            Rule::Alerting { state, .. } => *state,
            Rule::Recording(_) => AlertState::Unknown,
        };
        (state, self.common().last_evaluation)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub file: String,
    pub rules: Vec<Rule>,
    /// Seconds.
    pub interval: f64,
    pub evaluation_time: f64,
    pub last_evaluation: Option<SystemTime>,
    pub limit: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesResponse {
    pub groups: Vec<RuleGroup>,
    pub warnings: Vec<String>,
}

/// Which rules a caller wants beside their kind (Prometheus' and Thanos'
/// `rule_group[]`, `file[]`, `rule_name[]`, `match[]`); empty lists keep
/// all.
#[derive(Debug, Clone, Default)]
pub struct RuleFilter {
    pub groups: Vec<String>,
    pub files: Vec<String>,
    pub names: Vec<String>,
    /// A rule is kept when its labels satisfy one of the sets.
    pub matchers: Vec<Vec<crate::model::Matcher>>,
}

impl RuleFilter {
    fn keeps_rule(&self, r: &Rule) -> bool {
        let c = r.common();
        (self.names.is_empty() || self.names.contains(&c.name))
            && (self.matchers.is_empty()
                || self
                    .matchers
                    .iter()
                    .any(|set| crate::model::matcher::matches_all(set, &c.labels)))
    }
}

impl RulesResponse {
    /// Keeps the groups and rules `f` wants; a group left without rules by
    /// a rule filter goes too.
    pub fn filter(&mut self, f: &RuleFilter) {
        let by_rule = !f.names.is_empty() || !f.matchers.is_empty();
        self.groups.retain_mut(|g| {
            if (!f.groups.is_empty() && !f.groups.contains(&g.name))
                || (!f.files.is_empty() && !f.files.contains(&g.file))
            {
                return false;
            }
            if by_rule {
                g.rules.retain(|r| f.keeps_rule(r));
                return !g.rules.is_empty();
            }
            true
        });
    }

    pub fn extend(&mut self, other: RulesResponse) {
        self.groups.extend(other.groups);
        self.warnings.extend(other.warnings);
    }

    /// Collapses the replicas' groups: groups of one file and name become
    /// one (sorted by file, then name); in each, the `replica_labels` come
    /// off the rules' labels (not off their alerts'), and rules then equal
    /// in kind, name, labels, query (and `for`) are one, the alert in the
    /// highest state, then the latest evaluation, kept.
    pub fn dedup(&mut self, replica_labels: &[String]) {
        let mut groups = std::mem::take(&mut self.groups);
        groups.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
        let mut out: Vec<RuleGroup> = Vec::new();
        for g in groups {
            match out.last_mut() {
                Some(last) if last.file == g.file && last.name == g.name => {
                    last.rules.extend(g.rules)
                }
                _ => out.push(g),
            }
        }
        for g in &mut out {
            for r in &mut g.rules {
                let c = r.common_mut();
                c.labels = c.labels.without(replica_labels);
            }
            g.rules.sort_by(|a, b| {
                a.identity()
                    .cmp(&b.identity())
                    .then_with(|| b.precedence().cmp(&a.precedence()))
            });
            g.rules
                .dedup_by(|later, first| later.identity() == first.identity());
        }
        self.groups = out;
    }

    /// Every alert of every alerting rule.
    pub fn alerts(&self) -> impl Iterator<Item = &AlertInstance> {
        self.groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter_map(|r| match r {
                Rule::Alerting { alerts, .. } => Some(alerts),
                Rule::Recording(_) => None,
            })
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerting(replica: &str, state: AlertState) -> Rule {
        Rule::Alerting {
            common: RuleCommon {
                name: "Up".into(),
                query: "up == 1".into(),
                labels: Labels::from_pairs([("replica", replica), ("severity", "page")]).unwrap(),
                health: "ok".into(),
                last_error: String::new(),
                evaluation_time: 0.0,
                last_evaluation: None,
            },
            state,
            duration: 0.0,
            keep_firing_for: 0.0,
            annotations: Labels::empty(),
            alerts: vec![],
        }
    }

    fn group(rules: Vec<Rule>) -> RuleGroup {
        RuleGroup {
            name: "g".into(),
            file: "f".into(),
            rules,
            interval: 1.0,
            evaluation_time: 0.0,
            last_evaluation: None,
            limit: 0,
        }
    }

    #[test]
    fn a_pairs_groups_and_rules_collapse_and_firing_wins() {
        let mut r = RulesResponse {
            groups: vec![
                group(vec![alerting("a", AlertState::Pending)]),
                group(vec![alerting("b", AlertState::Firing)]),
            ],
            warnings: vec![],
        };
        r.dedup(&["replica".to_string()]);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].rules.len(), 1);
        match &r.groups[0].rules[0] {
            Rule::Alerting { state, common, .. } => {
                assert_eq!(*state, AlertState::Firing);
                assert_eq!(common.labels.to_string(), r#"{severity="page"}"#);
            }
            other => panic!("{other:?}"),
        }
    }
}
