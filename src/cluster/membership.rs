//! The `Membership` actor: turns chitchat's live-node snapshots into a
//! stream of changes over members, and replays the current set to every new
//! subscriber. A node becomes a member when it first says it is ready; it
//! stays one (with `ready: false` in its advert) while it is alive but not
//! ready, and leaves when gossip declares it dead or gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use chitchat::{ChitchatId, NodeState};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tracing::{debug, info, warn};

use super::keys::{check_node_size, AdvertError, NodeAdvert};
use super::metrics::{INVALID_ADVERTS_TOTAL, MEMBERS};
use crate::store::PeerType;

/// A ready member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: Arc<str>,
    pub generation: u64,
    pub gossip_address: std::net::SocketAddr,
    pub advert: NodeAdvert,
    pub is_self: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum MembershipChange {
    Joined(Member),
    Updated(Member),
    Left(Member),
}

/// Subscribes to changes; the current members arrive first as `Joined`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MembershipChange>);

/// The component name of `skein frontend` nodes: listed, never dialled.
pub const FRONTEND_COMPONENT: &str = "frontend";

/// A live node as this node sees it, ready or not.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub node: String,
    pub generation: u64,
    pub gossip_address: String,
    pub is_self: bool,
    pub ready: bool,
    pub peer_type: Option<&'static str>,
    pub component: Option<String>,
    pub grpc_address: Option<String>,
    pub http_address: Option<String>,
    pub labels: Vec<BTreeMap<String, String>>,
    pub store_group_id: Option<String>,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub version: Option<String>,
    /// Why the node's advert was rejected, if it was.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MembershipSnapshot {
    /// Whether this node has heard from another node (or has no seeds).
    pub joined: bool,
    pub nodes: Vec<NodeView>,
    pub members: Vec<Member>,
}

#[derive(Message)]
#[rtype(result = "MembershipSnapshot")]
pub struct GetMembership;

pub struct Membership {
    self_id: ChitchatId,
    expects_peers: bool,
    live: Option<watch::Receiver<BTreeMap<ChitchatId, NodeState>>>,
    members: BTreeMap<Arc<str>, Member>,
    nodes: Vec<NodeView>,
    joined: bool,
    subscribers: Vec<Recipient<MembershipChange>>,
    /// Last rejection per node incarnation, so each is logged once.
    rejected: HashMap<ChitchatId, AdvertError>,
    /// Warnings about other nodes' state, bounded in rate.
    log_budget: LogBudget,
    /// Networks a member's Store API address must be in; empty: any.
    allowed_endpoints: Vec<ipnet::IpNet>,
}

/// Most nodes taken into the membership; nodes past it (in node name
/// order) are left out, counted and warned about.
pub const MAX_MEMBERS: usize = 4096;

/// At most `PER_MINUTE` warnings a minute about what other nodes gossip, so
/// that a flood of bad nodes cannot flood the log; the rest are counted and
/// reported with the next warning let through.
struct LogBudget {
    window_start: std::time::Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    const PER_MINUTE: u32 = 20;

    fn new() -> Self {
        Self {
            window_start: std::time::Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether a warning may be logged now; with it, how many were held
    /// back since the last one.
    fn take(&mut self) -> Option<u64> {
        if self.window_start.elapsed() >= std::time::Duration::from_secs(60) {
            self.window_start = std::time::Instant::now();
            self.used = 0;
        }
        if self.used < Self::PER_MINUTE {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl Membership {
    pub fn new(
        self_id: ChitchatId,
        expects_peers: bool,
        live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    ) -> Self {
        Self {
            self_id,
            expects_peers,
            live: Some(live),
            members: BTreeMap::new(),
            nodes: Vec::new(),
            joined: !expects_peers,
            subscribers: Vec::new(),
            rejected: HashMap::new(),
            log_budget: LogBudget::new(),
            allowed_endpoints: Vec::new(),
        }
    }

    /// Only members whose Store API address is in one of `nets` are taken
    /// (and so ever dialled); the others are listed with the reason.
    pub fn with_allowed_endpoints(mut self, nets: Vec<ipnet::IpNet>) -> Self {
        self.allowed_endpoints = nets;
        self
    }

    fn check_endpoint(&self, advert: &NodeAdvert) -> Result<(), AdvertError> {
        let ip = advert.grpc_address.ip();
        if self.allowed_endpoints.is_empty()
            || self.allowed_endpoints.iter().any(|n| n.contains(&ip))
        {
            Ok(())
        } else {
            Err(AdvertError::NotAllowed(advert.grpc_address))
        }
    }

    /// Sends a change to every subscriber. `do_send` queues past the
    /// mailbox bound, so a subscriber that falls behind gets every change
    /// late rather than lose one: a lost `Left` would keep a store that is
    /// gone, a lost `Joined` would hide one. Changes are few (one per node
    /// event), so the queue stays small.
    fn publish(&mut self, change: MembershipChange) {
        self.subscribers.retain(|s| {
            if !s.connected() {
                return false;
            }
            s.do_send(change.clone());
            true
        });
    }

    fn apply(&mut self, live: &BTreeMap<ChitchatId, NodeState>) {
        if live.keys().any(|id| *id != self.self_id) {
            if !self.joined {
                info!(members = live.len(), "gossip joined the cluster");
            }
            self.joined = true;
        }
        // The newest incarnation of each node wins: a restarted node
        // replaces its old self before the failure detector buries it.
        let mut newest: BTreeMap<Arc<str>, (&ChitchatId, &NodeState)> = BTreeMap::new();
        for (id, state) in live {
            match newest.get(&id.node_id) {
                Some((seen, _)) if seen.generation_id >= id.generation_id => {}
                _ => {
                    newest.insert(id.node_id.clone(), (id, state));
                }
            }
        }
        if newest.len() > MAX_MEMBERS {
            let dropped = newest.len() - MAX_MEMBERS;
            if let Some(held_back) = self.log_budget.take() {
                warn!(
                    nodes = newest.len(),
                    max = MAX_MEMBERS,
                    dropped,
                    held_back,
                    "more nodes gossip than a cluster may have; the last ones by name are ignored"
                );
            }
            // This node is never the one left out.
            let mut kept: BTreeMap<Arc<str>, (&ChitchatId, &NodeState)> = newest
                .iter()
                .filter(|(_, (id, _))| **id != self.self_id)
                .take(MAX_MEMBERS - 1)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            if let Some((k, v)) = newest.iter().find(|(_, (id, _))| **id == self.self_id) {
                kept.insert(k.clone(), *v);
            }
            newest = kept;
        }
        let mut nodes = Vec::with_capacity(newest.len());
        let mut ready: BTreeMap<Arc<str>, Member> = BTreeMap::new();
        let mut counts: HashMap<(&'static str, &'static str), f64> = HashMap::new();
        for (id, state) in newest.values() {
            let is_self = *id == &self.self_id;
            let parsed = check_node_size(state.key_values())
                .and_then(|()| NodeAdvert::from_lookup(|k| state.get(k)))
                .and_then(|a| {
                    if !is_self {
                        self.check_endpoint(&a)?;
                    }
                    Ok(a)
                });
            match parsed {
                Ok(advert) => {
                    self.rejected.remove(*id);
                    let state_label = if advert.ready { "ready" } else { "not_ready" };
                    *counts
                        .entry((advert.peer_type.as_str(), state_label))
                        .or_default() += 1.0;
                    nodes.push(view(id, is_self, Some(&advert), None));
                    // A frontend gossips to find the queriers; it has no
                    // Store API and is never a member.
                    if advert.component == FRONTEND_COMPONENT {
                        continue;
                    }
                    // A member that was ready and is alive but no longer
                    // ready (its Prometheus went down, it is stopping) stays
                    // a member, marked not ready: queries must report its
                    // missing data instead of silently skipping it.
                    let was_member = self.members.contains_key(&id.node_id);
                    if advert.ready || was_member {
                        ready.insert(
                            id.node_id.clone(),
                            Member {
                                node: id.node_id.clone(),
                                generation: id.generation_id,
                                gossip_address: id.gossip_advertise_addr,
                                advert,
                                is_self,
                            },
                        );
                    }
                }
                Err(e) => {
                    *counts.entry(("unknown", "invalid")).or_default() += 1.0;
                    if self.rejected.get(*id) != Some(&e) {
                        if let Some(held_back) = self.log_budget.take() {
                            let name: String = id.node_id.chars().take(128).collect();
                            warn!(node = %name, gossip = %id.gossip_advertise_addr, error = %e, held_back,
                                  "ignoring member with an invalid advert");
                        }
                        metrics::counter!(INVALID_ADVERTS_TOTAL).increment(1);
                        self.rejected.insert((*id).clone(), e.clone());
                    }
                    nodes.push(view(id, is_self, None, Some(e.to_string())));
                }
            }
        }
        self.rejected.retain(|id, _| live.contains_key(id));
        for peer_type in [PeerType::Store, PeerType::Source, PeerType::Query] {
            for state in ["ready", "not_ready"] {
                let n = counts
                    .get(&(peer_type.as_str(), state))
                    .copied()
                    .unwrap_or(0.0);
                metrics::gauge!(MEMBERS, "peer_type" => peer_type.as_str(), "state" => state)
                    .set(n);
            }
        }
        let invalid = counts.get(&("unknown", "invalid")).copied().unwrap_or(0.0);
        metrics::gauge!(MEMBERS, "peer_type" => "unknown", "state" => "invalid").set(invalid);

        let old = std::mem::take(&mut self.members);
        for (node, member) in &ready {
            match old.get(node) {
                None => {
                    debug!(node = %node, "member joined");
                    self.publish(MembershipChange::Joined(member.clone()));
                }
                Some(prev) if prev != member => {
                    debug!(node = %node, "member updated");
                    self.publish(MembershipChange::Updated(member.clone()));
                }
                Some(_) => {}
            }
        }
        for (node, member) in old {
            if !ready.contains_key(&node) {
                debug!(node = %node, "member left");
                self.publish(MembershipChange::Left(member));
            }
        }
        self.members = ready;
        self.nodes = nodes;
    }
}

fn view(id: &ChitchatId, is_self: bool, a: Option<&NodeAdvert>, error: Option<String>) -> NodeView {
    NodeView {
        node: id.node_id.to_string(),
        generation: id.generation_id,
        gossip_address: id.gossip_advertise_addr.to_string(),
        is_self,
        ready: a.is_some_and(|a| a.ready),
        peer_type: a.map(|a| a.peer_type.as_str()),
        component: a.map(|a| a.component.clone()),
        grpc_address: a.map(|a| a.grpc_address.to_string()),
        http_address: a.map(|a| a.http_address.to_string()),
        labels: a
            .map(|a| {
                a.label_sets
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default(),
        store_group_id: a.map(|a| a.store_group_id.clone()),
        min_time: a.map(|a| a.min_time),
        max_time: a.map(|a| a.max_time),
        version: a.map(|a| a.version.clone()),
        error,
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        if let Some(live) = self.live.take() {
            ctx.add_stream(WatchStream::new(live));
        }
        if !self.expects_peers {
            debug!("no seeds configured: this node starts its own cluster");
        }
    }
}

impl StreamHandler<BTreeMap<ChitchatId, NodeState>> for Membership {
    fn handle(&mut self, live: BTreeMap<ChitchatId, NodeState>, _ctx: &mut Self::Context) {
        self.apply(&live);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        debug!("gossip stopped; membership keeps its last view");
    }
}

impl Handler<Subscribe> for Membership {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        for member in self.members.values() {
            msg.0.do_send(MembershipChange::Joined(member.clone()));
        }
        self.subscribers.push(msg.0);
    }
}

impl Handler<GetMembership> for Membership {
    type Result = MessageResult<GetMembership>;

    fn handle(&mut self, _msg: GetMembership, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(MembershipSnapshot {
            joined: self.joined,
            nodes: self.nodes.clone(),
            members: self.members.values().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// A subscriber with room for one message in its mailbox, which takes
    /// its time over each, and keeps the member set it was told of.
    struct Slow(Arc<Mutex<BTreeMap<Arc<str>, NodeAdvert>>>);

    impl Actor for Slow {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Self::Context) {
            ctx.set_mailbox_capacity(1);
        }
    }

    impl Handler<MembershipChange> for Slow {
        type Result = ();
        fn handle(&mut self, msg: MembershipChange, _ctx: &mut Self::Context) {
            std::thread::sleep(Duration::from_millis(1));
            let Ok(mut view) = self.0.lock() else {
                return;
            };
            match msg {
                MembershipChange::Joined(m) | MembershipChange::Updated(m) => {
                    view.insert(m.node, m.advert);
                }
                MembershipChange::Left(m) => {
                    view.remove(&m.node);
                }
            }
        }
    }

    fn node(i: u16) -> (ChitchatId, NodeState) {
        let id = ChitchatId::new(format!("node-{i}"), 1, ([127, 0, 0, 1], 20_000 + i).into());
        let advert = NodeAdvert {
            version: "0".into(),
            peer_type: PeerType::Store,
            component: "store".into(),
            label_sets: vec![],
            store_group_id: String::new(),
            grpc_address: ([127, 0, 0, 1], 30_000 + i).into(),
            http_address: ([127, 0, 0, 1], 40_000 + i).into(),
            min_time: 0,
            max_time: i64::from(i),
            ready: true,
            leaving: false,
            incomplete: false,
        };
        let mut state = NodeState::for_test();
        for (k, v) in advert.to_pairs() {
            state.set(k, v);
        }
        (id, state)
    }

    fn membership() -> Membership {
        let (_tx, rx) = watch::channel(BTreeMap::new());
        // Last by name among the test's nodes.
        let self_id = ChitchatId::new("zz-me", 1, ([127, 0, 0, 1], 10_900).into());
        Membership::new(self_id, false, rx)
    }

    #[test]
    fn oversized_node_states_are_ignored() {
        let mut m = membership();
        let (big_id, mut big) = node(1);
        big.set(
            crate::cluster::keys::LABELS,
            format!("[{{\"a\":\"{}\"}}]", "x".repeat(100_000)),
        );
        let (many_id, mut many) = node(2);
        for i in 0..100 {
            many.set(format!("extra.{i}"), "v");
        }
        let live: BTreeMap<ChitchatId, NodeState> = [node(0), (big_id, big), (many_id, many)]
            .into_iter()
            .collect();
        m.apply(&live);
        let members: Vec<&str> = m.members.keys().map(|k| &**k).collect();
        assert_eq!(members, ["node-0"]);
        let errors: Vec<String> = m.nodes.iter().filter_map(|n| n.error.clone()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e.contains("too large")), "{errors:?}");
    }

    #[test]
    fn members_outside_the_allowed_networks_are_refused() {
        let mut m = membership().with_allowed_endpoints(vec!["10.0.0.0/8".parse().unwrap()]);
        let (inside_id, mut inside) = node(1);
        inside.set(crate::cluster::keys::GRPC_ADDRESS, "10.1.2.3:10901");
        let live: BTreeMap<ChitchatId, NodeState> =
            [node(0), (inside_id, inside)].into_iter().collect();
        m.apply(&live);
        let members: Vec<&str> = m.members.keys().map(|k| &**k).collect();
        assert_eq!(members, ["node-1"]);
        let errors: Vec<String> = m.nodes.iter().filter_map(|n| n.error.clone()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("127.0.0.1:30000") && errors[0].contains("allowed-endpoints"));
    }

    #[test]
    fn members_are_capped_and_this_node_is_kept() {
        let mut m = membership();
        let mut live: BTreeMap<ChitchatId, NodeState> =
            (0..(MAX_MEMBERS + 50) as u16).map(node).collect();
        // This node's own state, last by name.
        let (_, mut me) = node(9);
        me.set(crate::cluster::keys::STORE_GROUP_ID, "me");
        live.insert(m.self_id.clone(), me);
        m.apply(&live);
        assert_eq!(m.members.len(), MAX_MEMBERS);
        assert!(m.members.contains_key("zz-me"));
    }

    #[test]
    fn a_subscriber_that_falls_behind_misses_no_change() {
        let (tx, rx) = watch::channel(BTreeMap::new());
        let view = Arc::new(Mutex::new(BTreeMap::new()));
        let v = view.clone();
        let self_id = ChitchatId::new("me", 1, ([127, 0, 0, 1], 10_900).into());
        let (system, _membership) = crate::actors::system::ActorSystem::start(move || {
            let m = Membership::new(self_id, false, rx).start();
            m.do_send(Subscribe(Slow(v).start().recipient()));
            m
        })
        .unwrap();
        // Fifty nodes join in one gossip round, then the odd ones leave:
        // far more changes at once than the subscriber's mailbox holds.
        let all: BTreeMap<ChitchatId, NodeState> = (0..50).map(node).collect();
        tx.send_replace(all);
        std::thread::sleep(Duration::from_millis(50));
        let even: BTreeMap<ChitchatId, NodeState> = (0..50).step_by(2).map(node).collect();
        tx.send_replace(even);
        let deadline = Instant::now() + Duration::from_secs(10);
        let want: Vec<String> = (0..50).step_by(2).map(|i| format!("node-{i}")).collect();
        loop {
            let got: Vec<String> = view
                .lock()
                .map(|v| v.keys().map(|k| k.to_string()).collect())
                .unwrap_or_default();
            let mut want = want.clone();
            want.sort();
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the subscriber sees {} members: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        system.stop();
    }
}
