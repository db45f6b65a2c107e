//! The querier's side of the shared view (see [`crate::query::view`]):
//! every half second it merges its own record of each member with those
//! its peer queriers gossip, demotes and readmits members, and every few
//! seconds it publishes its own records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chitchat::{ChitchatId, NodeState};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cluster::keys::COMPONENT;
use crate::cluster::KeyWriter;
use crate::query::metrics::{
    DEMOTED_MEMBERS, DEMOTIONS_TOTAL, READMISSIONS_TOTAL, SHARED_VIEW_BYTES, SHARED_VIEW_PEERS,
};
use crate::query::topology::Topology;
use crate::query::view::{self, Counts, Merged, PeerRecords};
use crate::store::PeerType;

const TICK: Duration = Duration::from_millis(500);
/// How often this querier's own records are rewritten in gossip, at most.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

pub struct SharedView {
    /// Gossip, when the querier joined a cluster: without it, the view is
    /// this querier's own records alone.
    pub gossip: Option<Gossip>,
    pub topology: watch::Receiver<Arc<Topology>>,
}

pub struct Gossip {
    pub keys: KeyWriter,
    pub live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    pub self_node: String,
}

impl SharedView {
    pub fn spawn(self, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut state = State::default();
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Some(g) = &self.gossip {
                    state.read_peers(&g.live, &g.self_node);
                }
                let topology = self.topology.borrow().clone();
                state.merge(&topology);
                let Some(g) = &self.gossip else {
                    continue;
                };
                if state
                    .published_at
                    .is_none_or(|t| t.elapsed() >= PUBLISH_EVERY)
                {
                    state.published_at = Some(Instant::now());
                    let value = own_records(&topology);
                    metrics::gauge!(SHARED_VIEW_BYTES).set(value.len() as f64);
                    if value != state.published {
                        g.keys.set(view::KEY, &value).await;
                        state.published = value;
                    }
                }
            }
        });
    }
}

#[derive(Default)]
struct State {
    /// Peer queriers' records by node name.
    peers: HashMap<String, PeerRecords>,
    /// Peers whose records are malformed (warned about once per value).
    bad: HashMap<String, String>,
    published: String,
    published_at: Option<Instant>,
}

impl State {
    fn read_peers(
        &mut self,
        live: &watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
        self_node: &str,
    ) {
        let nodes = live.borrow();
        let mut present = Vec::new();
        for (id, state) in nodes.iter() {
            let node: &str = &id.node_id;
            if node == self_node || state.get(COMPONENT) != Some("query") {
                continue;
            }
            let Some(raw) = state.get(view::KEY) else {
                continue;
            };
            present.push(node.to_string());
            if self.peers.get(node).is_some_and(|p| p.raw == raw) {
                continue;
            }
            match view::decode(raw) {
                Some(records) => {
                    self.bad.remove(node);
                    self.peers.insert(
                        node.to_string(),
                        PeerRecords {
                            raw: raw.to_string(),
                            changed: Instant::now(),
                            records,
                        },
                    );
                }
                None => {
                    self.peers.remove(node);
                    if self.bad.get(node).map(String::as_str) != Some(raw) {
                        warn!(
                            node,
                            key = view::KEY,
                            "ignoring a peer's malformed routing records"
                        );
                        self.bad.insert(node.to_string(), raw.to_string());
                    }
                }
            }
        }
        self.peers.retain(|n, _| present.contains(n));
        metrics::gauge!(SHARED_VIEW_PEERS).set(self.peers.len() as f64);
    }

    /// Merges every member's records and demotes or readmits members.
    fn merge(&self, topology: &Topology) {
        let now = Instant::now();
        let mut demoted_now = 0usize;
        for g in &topology.groups {
            let merged: Vec<Merged> = g
                .members
                .iter()
                .map(|m| {
                    let mut counts = m.stats.record.counts();
                    let mut peers = 0;
                    for p in self.peers.values() {
                        if let Some(c) = p.faded(&m.endpoint, now) {
                            counts.add(&c, 1.0);
                            peers += 1;
                        }
                    }
                    Merged { counts, peers }
                })
                .collect();
            let verdict = if g.peer_type == PeerType::Source || g.members.len() < 2 {
                vec![false; g.members.len()]
            } else {
                let counts: Vec<&Counts> = merged.iter().map(|m| &m.counts).collect();
                view::demoted(&counts)
            };
            for ((m, merged), demote) in g.members.iter().zip(merged).zip(verdict) {
                let was = m.stats.set_demoted(demote);
                if demote {
                    demoted_now += 1;
                }
                if demote && !was {
                    metrics::counter!(DEMOTIONS_TOTAL).increment(1);
                    info!(
                        member = %m.endpoint,
                        group = %g.key,
                        median = ?merged.counts.median(),
                        failure_share = ?merged.counts.failure_share(),
                        views = merged.peers + 1,
                        "member demoted: far slower than its group or failing"
                    );
                } else if !demote && was {
                    metrics::counter!(READMISSIONS_TOTAL).increment(1);
                    info!(member = %m.endpoint, group = %g.key, "member readmitted");
                }
                m.stats.set_merged(merged);
            }
        }
        metrics::gauge!(DEMOTED_MEMBERS).set(demoted_now as f64);
    }
}

/// This querier's own records of every member it knows, encoded.
fn own_records(topology: &Topology) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut records: Vec<(String, Counts)> = Vec::new();
    for g in &topology.groups {
        for m in &g.members {
            if seen.insert(m.endpoint.as_str()) {
                records.push((m.endpoint.clone(), m.stats.record.counts()));
            }
        }
    }
    view::encode(&mut records)
}
