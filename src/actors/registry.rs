//! `StoreRegistry`: owns the store peers and groups. It learns peers from
//! gossip (membership changes) and from static `--endpoint` flags, groups
//! them by what their health checks report, and publishes the result as a
//! [`Topology`] snapshot whenever it changes; the query path plans on the
//! latest snapshot without asking the actor.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::runtime::Handle;
use tracing::{info, warn};

use super::metrics::{GROUPS, PEERS};
use super::store_peer::{
    PeerChanged, PeerConfig, PeerSnapshot, PeerSource, StopPeer, StorePeer, UpdateAdvert,
};
use crate::cluster::MembershipChange;
use crate::model::time::{MAX_TIME, MIN_TIME};
use crate::model::Matcher;
use crate::query::policy::{GroupLatency, Health, PeerStats};
use crate::query::topology::{effective_peer_type, GroupKey};
pub use crate::query::topology::{GroupTarget, MemberTarget, Selection, Topology};
use crate::store::{ClientConfig, PeerType, RemoteStore, Store};

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub peer: PeerConfig,
    pub client: ClientConfig,
    /// `--endpoint`: used while healthy.
    pub endpoints: Vec<String>,
    /// `--endpoint-strict`: always in the active set, with the last good Info.
    pub strict_endpoints: Vec<String>,
    /// `--endpoint-group`: endpoints given together, which the operator
    /// says hold identical data: one STORE group (QUERY for queriers),
    /// used while healthy like `--endpoint`.
    pub endpoint_groups: Vec<Vec<String>>,
    /// A static, non-strict endpoint failing this long is dropped from the
    /// listing (it is still checked and comes back when healthy).
    pub unhealthy_timeout: Duration,
    /// This node's own Store API address, never used as a store.
    pub self_grpc: Option<SocketAddr>,
    /// Stores in this process, asked without gRPC, each under a name that
    /// stands for its endpoint; used like `--endpoint`.
    pub local: Vec<LocalStore>,
}

/// A store in the querier's own process, reached by a direct call.
#[derive(Clone)]
pub struct LocalStore {
    pub name: String,
    pub store: Arc<dyn Store>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("name", &self.name)
            .finish()
    }
}

impl RegistryConfig {
    pub fn for_test() -> Self {
        Self {
            peer: PeerConfig {
                health_interval: Duration::from_millis(200),
                health_timeout: Duration::from_secs(1),
            },
            client: ClientConfig {
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(5),
                keepalive: Duration::from_secs(5),
                tls: None,
            },
            endpoints: vec![],
            strict_endpoints: vec![],
            endpoint_groups: vec![],
            unhealthy_timeout: Duration::from_secs(5 * 60),
            self_grpc: None,
            local: vec![],
        }
    }
}

/// Which groups can hold series matching `matchers` in `[min_time, max_time]`,
/// from the current topology (for tests and views; queries read the
/// snapshot themselves).
#[derive(Message)]
#[rtype(result = "Selection")]
pub struct Select {
    pub matchers: Vec<Matcher>,
    pub min_time: i64,
    pub max_time: i64,
}

/// A receiver of every [`Topology`] the registry publishes, starting with
/// the current one. It never misses the latest state: a reader that falls
/// behind skips straight to it.
#[derive(Message)]
#[rtype(result = "tokio::sync::watch::Receiver<Arc<Topology>>")]
pub struct SubscribeTopology;

#[derive(Debug, Clone)]
pub struct GroupView {
    pub key: GroupKey,
    pub peer_type: PeerType,
    pub members: Vec<PeerSnapshot>,
}

#[derive(Debug, Clone, Default)]
pub struct RegistrySnapshot {
    pub groups: Vec<GroupView>,
    /// Every health check of every known peer ran at least once.
    pub first_round_done: bool,
}

#[derive(Message)]
#[rtype(result = "RegistrySnapshot")]
pub struct GetRegistry;

struct PeerEntry {
    addr: Addr<StorePeer>,
    client: Arc<dyn Store>,
    stats: Arc<PeerStats>,
    snapshot: PeerSnapshot,
    group: Option<GroupKey>,
    peer_type: PeerType,
    /// A static, non-strict peer unhealthy for longer than the timeout.
    hidden: bool,
    /// When a gossiped peer vanished from gossip without saying it was
    /// leaving: it stays, failing, until --store.unhealthy-timeout.
    died: Option<std::time::Instant>,
    /// The group id `--endpoint-group` gives it.
    group_override: Option<String>,
}

/// [`peer_meta`], with what `--endpoint-group` says of the peer: its group
/// id, and that its members are alike (a SOURCE is then a STORE).
fn entry_meta(e: &PeerEntry) -> (GroupKey, PeerType, i64, i64) {
    let (key, peer_type, min, max) = peer_meta(&e.snapshot);
    match &e.group_override {
        Some(id) => (
            GroupKey::new(key.label_sets, id.clone()),
            match peer_type {
                PeerType::Source => PeerType::Store,
                t => t,
            },
            min,
            max,
        ),
        None => (key, peer_type, min, max),
    }
}

/// The group id of an `--endpoint-group`: its members, sorted.
pub fn endpoint_group_id(members: &[String]) -> String {
    let mut m: Vec<&str> = members.iter().map(|s| s.trim()).collect();
    m.sort_unstable();
    m.dedup();
    format!("endpoint-group:{}", m.join(","))
}

struct GroupEntry {
    key: Arc<GroupKey>,
    latency: Arc<GroupLatency>,
    budget: Arc<crate::query::budget::HedgeWindow>,
    members: Vec<String>,
}

pub struct StoreRegistry {
    cfg: RegistryConfig,
    rt: Handle,
    peers: BTreeMap<String, PeerEntry>,
    groups: BTreeMap<GroupKey, GroupEntry>,
    /// Gossip node name to the endpoint it announced.
    gossip_nodes: HashMap<Arc<str>, String>,
    /// The query path's view, replaced whole on every change.
    topology: tokio::sync::watch::Sender<Arc<Topology>>,
    /// Groups whose members disagree on their peer type, warned about once.
    mixed: BTreeSet<GroupKey>,
}

/// The group key, peer type and time range a peer's data falls under: its
/// last good Info, else its gossip advert, else (a strict endpoint never
/// reached) everything, so that queries count it as failed. The time range
/// also covers the advert's: a gateway gossips a new range as soon as a
/// sync changes it, before the next Info shows it, and pruning on the
/// older range would skip a block that just landed.
fn peer_meta(s: &PeerSnapshot) -> (GroupKey, PeerType, i64, i64) {
    if let Some(i) = &s.info {
        let (min, max) = match &s.advert {
            Some(a) => (i.min_time.min(a.min_time), i.max_time.max(a.max_time)),
            None => (i.min_time, i.max_time),
        };
        (
            GroupKey::new(i.label_sets.clone(), i.store_group_id.clone()),
            i.peer_type,
            min,
            max,
        )
    } else if let Some(a) = &s.advert {
        (
            GroupKey::new(a.label_sets.clone(), a.store_group_id.clone()),
            a.peer_type,
            a.min_time,
            a.max_time,
        )
    } else {
        (
            GroupKey::new(vec![], String::new()),
            PeerType::Source,
            MIN_TIME,
            MAX_TIME,
        )
    }
}

pub use crate::query::topology::labels_compatible;

impl StoreRegistry {
    pub fn new(cfg: RegistryConfig, rt: Handle) -> Self {
        Self {
            cfg,
            rt,
            peers: BTreeMap::new(),
            groups: BTreeMap::new(),
            gossip_nodes: HashMap::new(),
            topology: tokio::sync::watch::Sender::new(Arc::new(Topology::default())),
            mixed: BTreeSet::new(),
        }
    }

    /// A receiver of every topology this registry will publish.
    pub fn topology(&self) -> tokio::sync::watch::Receiver<Arc<Topology>> {
        self.topology.subscribe()
    }

    fn add_peer(
        &mut self,
        endpoint: &str,
        source: PeerSource,
        advert: Option<crate::cluster::NodeAdvert>,
        ctx: &mut Context<Self>,
    ) {
        let client: Arc<dyn Store> = {
            // The client's connection must live on the main runtime.
            let _guard = self.rt.enter();
            match RemoteStore::connect_lazy(endpoint, &self.cfg.client) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    warn!(endpoint, error = %e, "cannot use store endpoint");
                    return;
                }
            }
        };
        self.add_peer_with(endpoint, client, source, advert, ctx);
    }

    /// Adds a peer reached through `client`.
    fn add_peer_with(
        &mut self,
        endpoint: &str,
        client: Arc<dyn Store>,
        source: PeerSource,
        advert: Option<crate::cluster::NodeAdvert>,
        ctx: &mut Context<Self>,
    ) {
        let stats = Arc::new(PeerStats::default());
        let snapshot = PeerSnapshot::unchecked(endpoint.to_string(), source, advert);
        let actor = StorePeer::new(
            self.cfg.peer.clone(),
            self.rt.clone(),
            client.clone(),
            stats.clone(),
            snapshot.clone(),
            ctx.address().recipient(),
        );
        info!(
            endpoint,
            source = snapshot.source.as_str(),
            "store peer added"
        );
        let entry = PeerEntry {
            addr: actor.start(),
            client,
            stats,
            snapshot,
            group: None,
            peer_type: PeerType::Source,
            hidden: false,
            died: None,
            group_override: None,
        };
        self.peers.insert(endpoint.to_string(), entry);
        self.regroup(endpoint, ctx);
    }

    fn remove_peer(&mut self, endpoint: &str) {
        let Some(entry) = self.peers.remove(endpoint) else {
            return;
        };
        entry.addr.do_send(StopPeer);
        if let Some(key) = entry.group {
            self.leave_group(&key, endpoint);
        }
        info!(endpoint, "store peer removed");
        self.update_gauges();
        self.publish();
    }

    fn leave_group(&mut self, key: &GroupKey, endpoint: &str) {
        if let Some(g) = self.groups.get_mut(key) {
            g.members.retain(|m| m != endpoint);
            if g.members.is_empty() {
                self.groups.remove(key);
                self.mixed.remove(key);
            }
        }
    }

    /// Puts a peer into the group its current metadata names.
    fn regroup(&mut self, endpoint: &str, _ctx: &mut Context<Self>) {
        let Some(entry) = self.peers.get_mut(endpoint) else {
            return;
        };
        let (key, peer_type, _, _) = entry_meta(entry);
        entry.peer_type = peer_type;
        let old = entry.group.replace(key.clone());
        if let Some(old) = old.filter(|o| *o != key) {
            info!(endpoint, from = %old, to = %key, "store peer changed group");
            self.leave_group(&old, endpoint);
        }
        let group = self.groups.entry(key.clone()).or_insert_with(|| {
            info!(group = %key, "store group created");
            GroupEntry {
                key: Arc::new(key.clone()),
                latency: Arc::new(GroupLatency::default()),
                budget: Arc::default(),
                members: Vec::new(),
            }
        });
        if !group.members.iter().any(|m| m == endpoint) {
            group.members.push(endpoint.to_string());
        }
        self.update_gauges();
        self.publish();
    }

    /// Publishes the topology: every group with its members in the active
    /// set, each member with what routing reads of it.
    fn publish(&mut self) {
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut newly_mixed = Vec::new();
        for (key, g) in &self.groups {
            let mut members = Vec::with_capacity(g.members.len());
            let mut types = Vec::with_capacity(g.members.len());
            for endpoint in &g.members {
                let Some(e) = self.peers.get(endpoint) else {
                    continue;
                };
                if e.hidden || !self.active(e) {
                    continue;
                }
                let (_, peer_type, min_time, max_time) = entry_meta(e);
                types.push(peer_type);
                members.push(Arc::new(MemberTarget {
                    endpoint: endpoint.clone(),
                    client: e.client.clone(),
                    stats: e.stats.clone(),
                    health: e.snapshot.health,
                    strict: e.snapshot.source.is_strict(),
                    min_time,
                    max_time,
                    supports_without_replica_labels: e
                        .snapshot
                        .info
                        .as_ref()
                        .is_some_and(|i| i.supports_without_replica_labels),
                    ready: e.snapshot.advert.as_ref().is_none_or(|a| a.ready),
                    complete: e.snapshot.advert.as_ref().is_none_or(|a| !a.incomplete),
                }));
            }
            if members.is_empty() {
                continue;
            }
            let peer_type = effective_peer_type(types.iter().copied());
            if types.iter().any(|t| *t != peer_type) && !self.mixed.contains(key) {
                warn!(group = %key, "members report different peer types; asking all of them");
                newly_mixed.push(key.clone());
            }
            groups.push(GroupTarget {
                key: g.key.clone(),
                peer_type,
                latency: g.latency.clone(),
                budget: g.budget.clone(),
                members,
            });
        }
        self.mixed.extend(newly_mixed);
        self.topology.send_replace(Arc::new(Topology { groups }));
    }

    fn update_gauges(&self) {
        let mut peers: HashMap<(&'static str, &'static str), f64> = HashMap::new();
        for e in self.peers.values() {
            *peers
                .entry((e.peer_type.as_str(), e.snapshot.health.as_str()))
                .or_default() += 1.0;
        }
        let mut groups: HashMap<&'static str, f64> = HashMap::new();
        for g in self.groups.values() {
            let t = effective_peer_type(
                g.members
                    .iter()
                    .filter_map(|m| self.peers.get(m).map(|e| e.peer_type)),
            );
            *groups.entry(t.as_str()).or_default() += 1.0;
        }
        for t in [PeerType::Store, PeerType::Source, PeerType::Query] {
            for h in [Health::Unknown, Health::Healthy, Health::Unhealthy] {
                let n = peers.get(&(t.as_str(), h.as_str())).copied().unwrap_or(0.0);
                metrics::gauge!(PEERS, "peer_type" => t.as_str(), "health" => h.as_str()).set(n);
            }
            let n = groups.get(t.as_str()).copied().unwrap_or(0.0);
            metrics::gauge!(GROUPS, "peer_type" => t.as_str()).set(n);
        }
    }

    /// Whether a peer takes part in queries now.
    fn active(&self, e: &PeerEntry) -> bool {
        match &e.snapshot.source {
            PeerSource::Static { strict: true } => true,
            PeerSource::Static { strict: false } => e.snapshot.health == Health::Healthy,
            // Alive in gossip: asked, and reported when it fails.
            PeerSource::Gossip { .. } => true,
        }
    }

    fn is_self(&self, endpoint: &str) -> bool {
        match (self.cfg.self_grpc, endpoint.parse::<SocketAddr>()) {
            (Some(me), Ok(addr)) => me == addr,
            _ => false,
        }
    }
}

impl Actor for StoreRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        let statics: Vec<(String, bool)> = self
            .cfg
            .strict_endpoints
            .iter()
            .map(|e| (e.clone(), true))
            .chain(self.cfg.endpoints.iter().map(|e| (e.clone(), false)))
            .collect();
        for (endpoint, strict) in statics {
            if self.peers.contains_key(&endpoint) || self.is_self(&endpoint) {
                continue;
            }
            self.add_peer(&endpoint, PeerSource::Static { strict }, None, ctx);
        }
        for local in self.cfg.local.clone() {
            if !self.peers.contains_key(&local.name) {
                let source = PeerSource::Static { strict: false };
                self.add_peer_with(&local.name, local.store, source, None, ctx);
            }
        }
        for members in self.cfg.endpoint_groups.clone() {
            let id = endpoint_group_id(&members);
            for endpoint in members.iter().map(|m| m.trim()) {
                if self.is_self(endpoint) {
                    continue;
                }
                if !self.peers.contains_key(endpoint) {
                    self.add_peer(endpoint, PeerSource::Static { strict: false }, None, ctx);
                }
                if let Some(e) = self.peers.get_mut(endpoint) {
                    e.group_override = Some(id.clone());
                }
                self.regroup(endpoint, ctx);
            }
        }
    }
}

impl Handler<MembershipChange> for StoreRegistry {
    type Result = ();

    fn handle(&mut self, msg: MembershipChange, ctx: &mut Self::Context) {
        match msg {
            MembershipChange::Joined(m) | MembershipChange::Updated(m) => {
                // Queriers in one cluster see the same stores; asking each
                // other would count data twice. Stack them with --endpoint.
                if m.is_self || m.advert.peer_type == PeerType::Query {
                    return;
                }
                let endpoint = m.advert.grpc_address.to_string();
                if self.is_self(&endpoint) {
                    return;
                }
                if let Some(old) = self.gossip_nodes.insert(m.node.clone(), endpoint.clone()) {
                    if old != endpoint
                        && matches!(
                            self.peers.get(&old).map(|e| &e.snapshot.source),
                            Some(PeerSource::Gossip { .. })
                        )
                    {
                        self.remove_peer(&old);
                    }
                }
                match self.peers.get_mut(&endpoint) {
                    Some(e) => {
                        if e.died.take().is_some() {
                            info!(endpoint, node = %m.node, "member that died is back in gossip");
                        }
                        e.addr.do_send(UpdateAdvert(m.advert))
                    }
                    None => self.add_peer(
                        &endpoint,
                        PeerSource::Gossip {
                            node: m.node.clone(),
                        },
                        Some(m.advert),
                        ctx,
                    ),
                }
            }
            MembershipChange::Left(m) => {
                let Some(endpoint) = self.gossip_nodes.remove(&m.node) else {
                    return;
                };
                // Static endpoints stay: they were configured, not gossiped.
                let Some(entry) = self
                    .peers
                    .get_mut(&endpoint)
                    .filter(|e| matches!(e.snapshot.source, PeerSource::Gossip { .. }))
                else {
                    return;
                };
                if m.advert.leaving {
                    info!(endpoint, node = %m.node, "member left; forgetting its store");
                    self.remove_peer(&endpoint);
                    return;
                }
                // Gone without a word: its data is missing, and answers
                // must say so until the operator's timeout has passed.
                let timeout = self.cfg.unhealthy_timeout;
                warn!(endpoint, node = %m.node, ?timeout,
                      "member died (gone from gossip without leaving); its store stays, failing, for --store.unhealthy-timeout");
                let died = std::time::Instant::now();
                entry.died = Some(died);
                ctx.run_later(timeout, move |act, _| {
                    let still_dead = act
                        .peers
                        .get(&endpoint)
                        .is_some_and(|e| e.died == Some(died));
                    if still_dead {
                        info!(endpoint, "member that died stayed away for --store.unhealthy-timeout; forgetting its store");
                        act.remove_peer(&endpoint);
                    }
                });
            }
        }
    }
}

impl Handler<PeerChanged> for StoreRegistry {
    type Result = ();

    fn handle(&mut self, msg: PeerChanged, ctx: &mut Self::Context) {
        let endpoint = msg.0.endpoint.clone();
        let timeout = self.cfg.unhealthy_timeout;
        let Some(entry) = self.peers.get_mut(&endpoint) else {
            return;
        };
        // Keep the source the registry knows (a gossip peer can also be a
        // configured endpoint).
        let source = entry.snapshot.source.clone();
        entry.snapshot = msg.0;
        entry.snapshot.source = source;
        let hidden = matches!(entry.snapshot.source, PeerSource::Static { strict: false })
            && entry
                .snapshot
                .unhealthy_since
                .is_some_and(|since| since.elapsed() >= timeout);
        if hidden && !entry.hidden {
            warn!(endpoint, ?timeout, "endpoint unhealthy for longer than --store.unhealthy-timeout; hiding it until it recovers");
        }
        entry.hidden = hidden;
        self.regroup(&endpoint, ctx);
    }
}

impl Handler<Select> for StoreRegistry {
    type Result = MessageResult<Select>;

    fn handle(&mut self, msg: Select, _ctx: &mut Self::Context) -> Self::Result {
        let topology = self.topology.borrow().clone();
        MessageResult(topology.select(&msg.matchers, msg.min_time, msg.max_time))
    }
}

impl Handler<SubscribeTopology> for StoreRegistry {
    type Result = MessageResult<SubscribeTopology>;

    fn handle(&mut self, _msg: SubscribeTopology, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.topology.subscribe())
    }
}

impl Handler<GetRegistry> for StoreRegistry {
    type Result = MessageResult<GetRegistry>;

    fn handle(&mut self, _msg: GetRegistry, _ctx: &mut Self::Context) -> Self::Result {
        let mut groups = Vec::new();
        for (key, g) in &self.groups {
            let mut members = Vec::new();
            let mut types = Vec::new();
            for endpoint in &g.members {
                if let Some(e) = self.peers.get(endpoint).filter(|e| !e.hidden) {
                    let mut s = e.snapshot.clone();
                    s.latency = e.stats.latency();
                    s.in_flight = e.stats.in_flight();
                    (s.answers, s.last_answer) = e.stats.answers();
                    s.requests = e.stats.requests();
                    s.probes = e.stats.probes();
                    s.demoted = e.stats.demoted();
                    s.shared = e.stats.merged();
                    members.push(s);
                    types.push(e.peer_type);
                }
            }
            if !members.is_empty() {
                groups.push(GroupView {
                    key: key.clone(),
                    peer_type: effective_peer_type(types),
                    members,
                });
            }
        }
        let first_round_done = self
            .peers
            .values()
            .all(|e| e.hidden || e.snapshot.checks > 0);
        MessageResult(RegistrySnapshot {
            groups,
            first_round_done,
        })
    }
}
