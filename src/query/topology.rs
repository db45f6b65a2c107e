//! The cluster as the query path sees it: an immutable snapshot of every
//! group that can answer and its members, which the registry publishes
//! whenever membership, health or a member's data changes. A query reads
//! the latest snapshot and plans on it in plain async code; it never waits
//! in an actor's mailbox. Latency estimates and in-flight counts are shared
//! counters the snapshot points to, so they stay live between snapshots.

use std::sync::Arc;

use std::fmt;

use super::policy::{GroupLatency, Health, PeerStats};
use crate::model::{Labels, Matcher};
use crate::store::{PeerType, Store};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Sorted.
    pub label_sets: Vec<Labels>,
    pub store_group_id: String,
}

impl GroupKey {
    pub fn new(mut label_sets: Vec<Labels>, store_group_id: String) -> Self {
        label_sets.sort();
        label_sets.dedup();
        Self {
            label_sets,
            store_group_id,
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sets: Vec<String> = self.label_sets.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", sets.join(","))?;
        if !self.store_group_id.is_empty() {
            write!(f, "/{}", self.store_group_id)?;
        }
        Ok(())
    }
}

/// The strategy of a group whose members report `types`: when members
/// disagree, SOURCE wins, because asking every member never loses data.
pub fn effective_peer_type(types: impl IntoIterator<Item = PeerType>) -> PeerType {
    let mut out: Option<PeerType> = None;
    for t in types {
        out = Some(match (out, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            _ => PeerType::Source,
        });
    }
    out.unwrap_or(PeerType::Source)
}

/// What the query path needs to call one member.
pub struct MemberTarget {
    pub endpoint: String,
    /// Its Store API: a gRPC client, or a store in this process.
    pub client: Arc<dyn Store>,
    pub stats: Arc<PeerStats>,
    pub health: Health,
    /// An `--endpoint-strict` member: in the active set whatever its health.
    pub strict: bool,
    pub min_time: i64,
    pub max_time: i64,
    /// Whether its Series honours `without_replica_labels`.
    pub supports_without_replica_labels: bool,
    /// False while its gossip advert says it is not ready (starting,
    /// stopping, or its source is down).
    pub ready: bool,
    /// False while its gossip advert says it lacks data it should hold.
    pub complete: bool,
}

/// A group the query must ask, with the members that can answer.
#[derive(Clone)]
pub struct GroupTarget {
    pub key: Arc<GroupKey>,
    pub peer_type: PeerType,
    pub latency: Arc<GroupLatency>,
    /// The group's primary and extra requests, for the hedge budget.
    pub budget: Arc<super::budget::HedgeWindow>,
    pub members: Vec<Arc<MemberTarget>>,
}

/// Every group with at least one member in the active set.
#[derive(Clone, Default)]
pub struct Topology {
    pub groups: Vec<GroupTarget>,
}

/// The groups a request asks, each with the members whose time range
/// meets the request's.
pub struct Selection {
    pub groups: Vec<GroupTarget>,
    /// Groups left out by external labels or time range.
    pub pruned: usize,
}

impl Topology {
    /// Which groups can hold series matching `matchers` in
    /// `[min_time, max_time]`: groups whose external labels rule the
    /// matchers out are pruned, and so are members whose time range lies
    /// outside (a group left with none is pruned).
    pub fn select(&self, matchers: &[Matcher], min_time: i64, max_time: i64) -> Selection {
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut pruned = 0;
        for g in &self.groups {
            if !labels_compatible(matchers, &g.key.label_sets) {
                pruned += 1;
                continue;
            }
            let members: Vec<Arc<MemberTarget>> = g
                .members
                .iter()
                .filter(|m| m.min_time <= max_time && m.max_time >= min_time)
                .cloned()
                .collect();
            if members.is_empty() {
                pruned += 1;
                continue;
            }
            groups.push(GroupTarget {
                key: g.key.clone(),
                peer_type: g.peer_type,
                latency: g.latency.clone(),
                budget: g.budget.clone(),
                members,
            });
        }
        Selection { groups, pruned }
    }
}

/// Whether any of a group's external label sets can satisfy the matchers: a
/// matcher on a label the set has must accept its value; a matcher on any
/// other label is left to the store.
pub fn labels_compatible(matchers: &[Matcher], sets: &[Labels]) -> bool {
    sets.is_empty()
        || sets.iter().any(|set| {
            matchers
                .iter()
                .all(|m| set.get(m.name()).is_none_or(|v| m.matches(v)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;

    #[test]
    fn mixed_types_ask_everyone() {
        assert_eq!(
            effective_peer_type([PeerType::Store, PeerType::Store]),
            PeerType::Store
        );
        assert_eq!(
            effective_peer_type([PeerType::Store, PeerType::Source]),
            PeerType::Source
        );
        assert_eq!(effective_peer_type([]), PeerType::Source);
    }

    #[test]
    fn keys_ignore_label_set_order() {
        let a = Labels::from_pairs([("a", "1")]).unwrap();
        let b = Labels::from_pairs([("b", "2")]).unwrap();
        assert_eq!(
            GroupKey::new(vec![a.clone(), b.clone()], "x".into()),
            GroupKey::new(vec![b, a], "x".into())
        );
        assert_ne!(
            GroupKey::new(vec![], "".into()),
            GroupKey::new(vec![], "x".into())
        );
    }

    #[test]
    fn external_labels_prune() {
        let eu = vec![Labels::from_pairs([("region", "eu"), ("replica", "a")]).unwrap()];
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert!(labels_compatible(&[m(MatchOp::Equal, "region", "eu")], &eu));
        assert!(!labels_compatible(
            &[m(MatchOp::Equal, "region", "us")],
            &eu
        ));
        assert!(labels_compatible(&[m(MatchOp::Equal, "job", "x")], &eu));
        assert!(!labels_compatible(
            &[m(MatchOp::NotRegex, "region", "e.*")],
            &eu
        ));
        assert!(labels_compatible(&[m(MatchOp::Equal, "region", "us")], &[]));
    }
}
