//! Data changes seen in gossip, for the results cache: a store that joins
//! (or restarts, or becomes ready), one whose labels or time range change,
//! one that leaves, and the block changes a gateway announces at each sync
//! (`skein.data_changes`: its latest changes, each numbered). Each becomes
//! a (label sets, time range) change for
//! [`super::cache::ResultsCache::invalidate`].

use std::collections::HashMap;

use crate::cluster::keys::{parse_data_changes, NodeAdvert};
use crate::model::Labels;

/// One change of data.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub label_sets: Vec<Labels>,
    pub min: i64,
    pub max: i64,
}

pub const CHANGES_TOTAL: &str = "skein_frontend_data_changes_total";

#[derive(Debug, Clone)]
struct Seen {
    generation: u64,
    label_sets: Vec<Labels>,
    min: i64,
    max: i64,
    ready: bool,
    /// The highest data-change number applied.
    seq: u64,
}

/// What the frontend knows of each store node, to tell what changed.
#[derive(Debug, Default)]
pub struct Tracker {
    nodes: HashMap<String, Seen>,
}

/// One node as gossip shows it now.
pub struct NodeNow<'a> {
    pub node: &'a str,
    pub generation: u64,
    pub advert: NodeAdvert,
    pub data_changes: Option<&'a str>,
}

impl Tracker {
    /// Compares the nodes gossip shows now with what was seen; the changes
    /// of data that follow. Queriers and frontends hold no data of their
    /// own and are left out.
    pub fn update<'a>(&mut self, now: impl IntoIterator<Item = NodeNow<'a>>) -> Vec<Change> {
        let mut out = Vec::new();
        let mut present: HashMap<String, ()> = HashMap::new();
        for n in now {
            let a = &n.advert;
            if a.component == "query"
                || a.component == crate::cluster::membership::FRONTEND_COMPONENT
            {
                continue;
            }
            present.insert(n.node.to_string(), ());
            let all = Change {
                label_sets: a.label_sets.clone(),
                min: a.min_time,
                max: a.max_time,
            };
            let listed = n.data_changes.and_then(parse_data_changes);
            let top = listed
                .as_ref()
                .and_then(|l| l.iter().map(|c| c.0).max())
                .unwrap_or(0);
            let seen = self.nodes.get(n.node);
            match seen {
                // A node new to this frontend, restarted, or just ready:
                // all of its data is news.
                None => out.push(all),
                Some(s) if s.generation != n.generation || (!s.ready && a.ready) => out.push(all),
                Some(s) => {
                    if s.label_sets != a.label_sets || s.min != a.min_time || s.max != a.max_time {
                        let mut sets = s.label_sets.clone();
                        sets.extend(a.label_sets.iter().cloned());
                        out.push(Change {
                            label_sets: sets,
                            min: s.min.min(a.min_time),
                            max: s.max.max(a.max_time),
                        });
                    }
                    if let Some(list) = &listed {
                        let oldest = list.iter().map(|c| c.0).min().unwrap_or(0);
                        if top > s.seq && oldest > s.seq + 1 {
                            // More changes than the key holds: all of it.
                            out.push(all.clone());
                        } else {
                            for (seq, min, max, labels) in list {
                                if *seq > s.seq {
                                    out.push(Change {
                                        label_sets: vec![labels.clone()],
                                        min: *min,
                                        max: *max,
                                    });
                                }
                            }
                        }
                    }
                }
            }
            self.nodes.insert(
                n.node.to_string(),
                Seen {
                    generation: n.generation,
                    label_sets: a.label_sets.clone(),
                    min: a.min_time,
                    max: a.max_time,
                    ready: a.ready,
                    seq: top.max(seen.map_or(0, |s| s.seq)),
                },
            );
        }
        // Nodes gone: their data left the answers.
        self.nodes.retain(|node, s| {
            let keep = present.contains_key(node);
            if !keep {
                out.push(Change {
                    label_sets: s.label_sets.clone(),
                    min: s.min,
                    max: s.max,
                });
            }
            keep
        });
        metrics::counter!(CHANGES_TOTAL).increment(out.len() as u64);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::keys::format_data_changes;
    use crate::store::PeerType;

    fn advert(region: &str, min: i64, max: i64) -> NodeAdvert {
        NodeAdvert {
            version: "0".into(),
            peer_type: PeerType::Store,
            component: "store".into(),
            label_sets: vec![Labels::from_pairs([("region", region)]).unwrap()],
            store_group_id: String::new(),
            grpc_address: "127.0.0.1:1".parse().unwrap(),
            http_address: "127.0.0.1:2".parse().unwrap(),
            min_time: min,
            max_time: max,
            ready: true,
            leaving: false,
            incomplete: false,
        }
    }

    fn now<'a>(node: &'a str, a: NodeAdvert, changes: Option<&'a str>) -> NodeNow<'a> {
        NodeNow {
            node,
            generation: 1,
            advert: a,
            data_changes: changes,
        }
    }

    #[test]
    fn joins_range_changes_block_changes_and_leaves_are_changes() {
        let mut t = Tracker::default();
        assert_eq!(
            t.update([now("a", advert("eu", 0, 100), None)]).len(),
            1,
            "joined"
        );
        assert!(
            t.update([now("a", advert("eu", 0, 100), None)]).is_empty(),
            "nothing new"
        );
        let c = t.update([now("a", advert("eu", -50, 100), None)]);
        assert_eq!((c[0].min, c[0].max), (-50, 100), "older data");
        let eu = Labels::from_pairs([("region", "eu")]).unwrap();
        let v = format_data_changes(&[(1, 10, 20, eu.clone()), (2, 30, 40, eu.clone())]);
        let c = t.update([now("a", advert("eu", -50, 100), Some(&v))]);
        assert_eq!(c.len(), 2, "both block changes: {c:?}");
        let v = format_data_changes(&[(2, 30, 40, eu.clone()), (3, 50, 60, eu.clone())]);
        let c = t.update([now("a", advert("eu", -50, 100), Some(&v))]);
        assert_eq!((c.len(), c[0].min), (1, 50), "only the new one");
        let v = format_data_changes(&[(9, 1, 2, eu.clone())]);
        let c = t.update([now("a", advert("eu", -50, 100), Some(&v))]);
        assert_eq!((c[0].min, c[0].max), (-50, 100), "missed some: everything");
        let c = t.update([now(
            "q",
            NodeAdvert {
                component: "query".into(),
                ..advert("eu", 0, 1)
            },
            None,
        )]);
        assert_eq!(c.len(), 1, "a left; queriers do not count");
        assert_eq!(c[0].max, 100);
        assert!(parse_data_changes("{bad").is_none());
    }
}
