//! Gossip membership and the store registry, in one process: chitchat's
//! in-memory transport carries gossip, real gRPC on loopback carries health
//! checks. Every wait is a predicate with a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use chitchat::transport::ChannelTransport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatId, FailureDetectorConfig, ProtocolVersion,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein::actors::registry::{GetRegistry, RegistrySnapshot, Select};
use skein::actors::system::ActorSystem;
use skein::actors::{Health, RegistryConfig, StoreRegistry};
use skein::cluster::membership::{GetMembership, MembershipSnapshot, Subscribe};
use skein::cluster::{Cluster, ClusterConfig, Membership, NodeAdvert};
use skein::model::{Labels, MatchOp, Matcher};
use skein::store::{MemStore, PeerType, StoreInfo};

async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

fn gossip_addr(n: u16) -> SocketAddr {
    ([127, 0, 0, 1], 20_000 + n).into()
}

fn cfg(n: u16, seeds: &[u16], name: &str) -> ClusterConfig {
    let mut c = ClusterConfig::for_test(
        gossip_addr(n),
        seeds.iter().map(|s| gossip_addr(*s).to_string()).collect(),
    );
    c.name = name.into();
    c
}

/// A store served over real gRPC and announced over in-memory gossip.
struct StoreNode {
    cluster: Cluster,
    advert: NodeAdvert,
    grpc: SocketAddr,
    stop: CancellationToken,
}

impl Drop for StoreNode {
    fn drop(&mut self) {
        self.cluster.abort();
        self.stop.cancel();
    }
}

async fn store_node(
    transport: &ChannelTransport,
    n: u16,
    seeds: &[u16],
    node_name: Option<&str>,
    peer_type: PeerType,
    labels: &[(&str, &str)],
    group: &str,
) -> StoreNode {
    let labels = Labels::from_pairs(labels.iter().copied()).unwrap();
    let info = StoreInfo {
        label_sets: vec![labels.clone()],
        min_time: 0,
        max_time: 1_000_000,
        peer_type,
        store_group_id: group.into(),
        component: peer_type.component().into(),
        supports_without_replica_labels: true,
    };
    let store = MemStore::new(info.clone(), vec![]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(skein::store::serve(listener, Arc::new(store), stop.clone()));
    let advert = NodeAdvert {
        version: "test".into(),
        peer_type,
        component: "synthetic".into(),
        label_sets: info.label_sets,
        store_group_id: group.into(),
        grpc_address: grpc,
        http_address: grpc,
        min_time: 0,
        max_time: 1_000_000,
        ready: true,
        leaving: false,
        incomplete: false,
    };
    let mut c = cfg(n, seeds, "test");
    c.node_name = node_name.map(str::to_string);
    let cluster = Cluster::join_with(&c, &advert, transport).await.unwrap();
    StoreNode {
        cluster,
        advert,
        grpc,
        stop,
    }
}

/// A querier's gossip node, membership and registry.
struct QueryNode {
    cluster: Cluster,
    membership: Addr<Membership>,
    registry: Addr<StoreRegistry>,
    _system: ActorSystem,
}

impl Drop for QueryNode {
    fn drop(&mut self) {
        self.cluster.abort();
    }
}

async fn query_node(
    transport: &ChannelTransport,
    n: u16,
    seeds: &[u16],
    registry: RegistryConfig,
) -> QueryNode {
    let advert = NodeAdvert {
        version: "test".into(),
        peer_type: PeerType::Query,
        component: "query".into(),
        label_sets: vec![],
        store_group_id: String::new(),
        grpc_address: ([127, 0, 0, 1], 1).into(),
        http_address: ([127, 0, 0, 1], 1).into(),
        min_time: i64::MIN,
        max_time: i64::MAX,
        ready: true,
        leaving: false,
        incomplete: false,
    };
    let cluster = Cluster::join_with(&cfg(n, seeds, "test"), &advert, transport)
        .await
        .unwrap();
    let live = cluster.live_nodes().await;
    let id = cluster.self_id().clone();
    let expects_peers = !seeds.is_empty();
    let rt = tokio::runtime::Handle::current();
    let (system, (membership, registry)) = ActorSystem::start(move || {
        let registry = StoreRegistry::new(registry, rt).start();
        let membership = Membership::new(id, expects_peers, live).start();
        membership.do_send(Subscribe(registry.clone().recipient()));
        (membership, registry)
    })
    .unwrap();
    QueryNode {
        cluster,
        membership,
        registry,
        _system: system,
    }
}

impl QueryNode {
    async fn members(&self) -> MembershipSnapshot {
        self.membership.send(GetMembership).await.unwrap()
    }
    async fn registry(&self) -> RegistrySnapshot {
        self.registry.send(GetRegistry).await.unwrap()
    }
    async fn group_sizes(&self) -> Vec<(String, PeerType, usize)> {
        self.registry()
            .await
            .groups
            .iter()
            .map(|g| (g.key.to_string(), g.peer_type, g.members.len()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_forms_from_one_seed_and_groups_stores() {
    let t = ChannelTransport::default();
    let q1 = query_node(&t, 1, &[], RegistryConfig::for_test()).await;
    let q2 = query_node(&t, 2, &[1], RegistryConfig::for_test()).await;
    let mut rc = RegistryConfig::for_test();
    rc.unhealthy_timeout = Duration::from_secs(4);
    let q3 = query_node(&t, 3, &[1], rc).await;
    let _a = store_node(
        &t,
        10,
        &[1],
        None,
        PeerType::Store,
        &[("region", "eu")],
        "bucket",
    )
    .await;
    let b = store_node(
        &t,
        11,
        &[1],
        None,
        PeerType::Store,
        &[("region", "eu")],
        "bucket",
    )
    .await;
    let _r1 = store_node(
        &t,
        12,
        &[1],
        None,
        PeerType::Source,
        &[("replica", "a")],
        "",
    )
    .await;
    let r2 = store_node(
        &t,
        13,
        &[1],
        None,
        PeerType::Source,
        &[("replica", "b")],
        "",
    )
    .await;

    for q in [&q1, &q2, &q3] {
        wait_for(
            "every node to see seven ready members",
            Duration::from_secs(10),
            || async { q.members().await.members.len() == 7 },
        )
        .await;
        wait_for(
            "three groups with healthy members",
            Duration::from_secs(10),
            || async {
                let r = q.registry().await;
                r.first_round_done
                    && r.groups.len() == 3
                    && r.groups
                        .iter()
                        .all(|g| g.members.iter().all(|m| m.health == Health::Healthy))
            },
        )
        .await;
    }
    let groups = q2.group_sizes().await;
    assert!(
        groups.contains(&(r#"[{region="eu"}]/bucket"#.to_string(), PeerType::Store, 2)),
        "{groups:?}"
    );
    assert!(groups.contains(&(r#"[{replica="a"}]"#.to_string(), PeerType::Source, 1)));

    // Selection prunes by external labels.
    let sel = q1
        .registry
        .send(Select {
            matchers: vec![Matcher::new(MatchOp::Equal, "region", "eu").unwrap()],
            min_time: 0,
            max_time: 10,
        })
        .await
        .unwrap();
    // The eu group, and the replica groups (they lack the label).
    assert_eq!(sel.groups.len(), 3);
    let sel = q1
        .registry
        .send(Select {
            matchers: vec![Matcher::new(MatchOp::Equal, "replica", "a").unwrap()],
            min_time: 0,
            max_time: 10,
        })
        .await
        .unwrap();
    assert_eq!((sel.groups.len(), sel.pruned), (2, 1));
    // ... and by time.
    let sel = q1
        .registry
        .send(Select {
            matchers: vec![],
            min_time: 2_000_000,
            max_time: 3_000_000,
        })
        .await
        .unwrap();
    assert!(sel.groups.is_empty());

    // A member that leaves cleanly is forgotten as soon as gossip has it
    // gone; one that dies stays in its group, failing, for the unhealthy
    // timeout (4 s here), so answers report its data missing meanwhile.
    let b_grpc = b.grpc.to_string();
    let r2_grpc = r2.grpc.to_string();
    let listed = |r: &RegistrySnapshot, ep: &str| {
        r.groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.endpoint == ep))
    };
    let died = Instant::now();
    drop(b);
    r2.cluster
        .leave(&r2.advert, Duration::from_millis(300))
        .await;
    wait_for(
        "the store that left to be forgotten",
        Duration::from_secs(10),
        || async { !listed(&q3.registry().await, &r2_grpc) },
    )
    .await;
    let r = q3.registry().await;
    if died.elapsed() < Duration::from_secs(4) {
        assert!(listed(&r, &b_grpc), "the dead store was forgotten at once");
    }
    let took = wait_for(
        "the dead store to leave its group",
        Duration::from_secs(15),
        || async { !listed(&q3.registry().await, &b_grpc) },
    )
    .await;
    assert!(
        died.elapsed() >= Duration::from_secs(4),
        "{:?}",
        died.elapsed()
    );
    eprintln!("dead store removed after {took:?}");
    assert!(q3.group_sizes().await.contains(&(
        r#"[{region="eu"}]/bucket"#.to_string(),
        PeerType::Store,
        1
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_replaces_its_old_incarnation() {
    let t = ChannelTransport::default();
    let q = query_node(&t, 1, &[], RegistryConfig::for_test()).await;
    let old = store_node(
        &t,
        10,
        &[1],
        Some("store-x"),
        PeerType::Store,
        &[("a", "1")],
        "g",
    )
    .await;
    wait_for("the store to join", Duration::from_secs(10), || async {
        q.members()
            .await
            .members
            .iter()
            .any(|m| &*m.node == "store-x")
    })
    .await;
    let old_generation = q
        .members()
        .await
        .members
        .iter()
        .find(|m| &*m.node == "store-x")
        .unwrap()
        .generation;
    let old_grpc = old.grpc.to_string();
    old.cluster.abort();
    // The restarted process: same node name, new generation, new port.
    let new = store_node(
        &t,
        11,
        &[1],
        Some("store-x"),
        PeerType::Store,
        &[("a", "1")],
        "g",
    )
    .await;
    let new_grpc = new.grpc.to_string();
    wait_for(
        "the new incarnation to replace the old",
        Duration::from_secs(10),
        || async {
            let m = q.members().await;
            let xs: Vec<_> = m.members.iter().filter(|m| &*m.node == "store-x").collect();
            xs.len() == 1 && xs[0].generation > old_generation
        },
    )
    .await;
    wait_for(
        "the registry to follow",
        Duration::from_secs(10),
        || async {
            let r = q.registry().await;
            let eps: Vec<_> = r
                .groups
                .iter()
                .flat_map(|g| g.members.iter().map(|m| m.endpoint.clone()))
                .collect();
            eps == vec![new_grpc.clone()]
        },
    )
    .await;
    assert_ne!(old_grpc, new_grpc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clusters_and_malformed_adverts_are_ignored() {
    let t = ChannelTransport::default();
    let q = query_node(&t, 1, &[], RegistryConfig::for_test()).await;
    let _good = store_node(&t, 10, &[1], None, PeerType::Source, &[("r", "a")], "").await;

    // A node of another cluster seeds itself with our querier.
    let advert = NodeAdvert {
        version: "test".into(),
        peer_type: PeerType::Store,
        component: "store".into(),
        label_sets: vec![],
        store_group_id: String::new(),
        grpc_address: ([127, 0, 0, 1], 9).into(),
        http_address: ([127, 0, 0, 1], 9).into(),
        min_time: 0,
        max_time: 1,
        ready: true,
        leaving: false,
        incomplete: false,
    };
    let stranger = Cluster::join_with(&cfg(20, &[1], "other"), &advert, &t)
        .await
        .unwrap();

    // A node of our cluster that gossips garbage in skein's keys.
    let garbage = spawn_chitchat(
        ChitchatConfig {
            chitchat_id: ChitchatId::new("garbage", 1, gossip_addr(21)),
            cluster_id: "test".into(),
            gossip_interval: Duration::from_millis(50),
            listen_addr: gossip_addr(21),
            seed_nodes: vec![gossip_addr(1).to_string()],
            failure_detector_config: FailureDetectorConfig::default(),
            marked_for_deletion_grace_period: Duration::from_secs(60),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V1,
        },
        vec![
            ("skein.peer_type".into(), "wizard".into()),
            ("skein.labels".into(), "{{{".into()),
            ("skein.ready".into(), "true".into()),
        ],
        &t,
    )
    .await
    .unwrap();

    wait_for(
        "the garbage node to be seen and rejected",
        Duration::from_secs(10),
        || async {
            q.members()
                .await
                .nodes
                .iter()
                .any(|n| n.node == "garbage" && n.error.is_some())
        },
    )
    .await;
    // Give the stranger the same time to sneak in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = q.members().await;
    assert!(m
        .nodes
        .iter()
        .all(|n| n.node != stranger.self_id().node_id.to_string()));
    assert_eq!(m.members.len(), 2, "querier and the good store only");
    let r = q.registry().await;
    assert_eq!(r.groups.len(), 1);
    garbage.abort();
    stranger.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_endpoint_that_is_down_stays_listed_and_selected() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let plain_dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut rc = RegistryConfig::for_test();
    rc.strict_endpoints = vec![dead.clone()];
    rc.endpoints = vec![plain_dead.clone()];
    rc.unhealthy_timeout = Duration::from_millis(300);
    let t = ChannelTransport::default();
    let q = query_node(&t, 1, &[], rc).await;
    wait_for(
        "the strict endpoint to be checked",
        Duration::from_secs(10),
        || async {
            q.registry().await.groups.iter().any(|g| {
                g.members.iter().any(|m| {
                    m.endpoint == dead && m.health == Health::Unhealthy && m.last_error.is_some()
                })
            })
        },
    )
    .await;
    // The plain endpoint disappears from the listing after the timeout; the
    // strict one stays.
    wait_for(
        "the non-strict endpoint to be hidden",
        Duration::from_secs(10),
        || async {
            let r = q.registry().await;
            r.groups
                .iter()
                .all(|g| g.members.iter().all(|m| m.endpoint != plain_dead))
        },
    )
    .await;
    let sel = q
        .registry
        .send(Select {
            matchers: vec![],
            min_time: 0,
            max_time: 10,
        })
        .await
        .unwrap();
    let eps: Vec<_> = sel
        .groups
        .iter()
        .flat_map(|g| {
            g.members
                .iter()
                .map(|m| (m.endpoint.clone(), m.health, m.strict))
        })
        .collect();
    assert_eq!(eps, vec![(dead.clone(), Health::Unhealthy, true)]);
}

/// A store over real gRPC that does not gossip.
async fn plain_store(labels: &[(&str, &str)], stop: &CancellationToken) -> String {
    let info = StoreInfo {
        label_sets: vec![Labels::from_pairs(labels.iter().copied()).unwrap()],
        min_time: 0,
        max_time: 1_000_000,
        // As a Thanos gateway answers: no skein peer type.
        peer_type: PeerType::Source,
        store_group_id: String::new(),
        component: "store".into(),
        supports_without_replica_labels: true,
    };
    let store = MemStore::new(info, vec![]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(skein::store::serve(listener, Arc::new(store), stop.clone()));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_group_is_one_store_group() {
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let a = plain_store(&[("bucket", "b1")], &stop).await;
    let b = plain_store(&[("bucket", "b1")], &stop).await;
    let c = plain_store(&[("bucket", "b1")], &stop).await;
    let mut rc = RegistryConfig::for_test();
    rc.endpoint_groups = vec![vec![b.clone(), a.clone()]];
    rc.endpoints = vec![c.clone()];
    let t = ChannelTransport::default();
    let q = query_node(&t, 30, &[], rc).await;
    wait_for("three healthy stores", Duration::from_secs(10), || async {
        let r = q.registry().await;
        r.groups
            .iter()
            .flat_map(|g| &g.members)
            .filter(|m| m.health == Health::Healthy)
            .count()
            == 3
    })
    .await;
    let mut groups = q.group_sizes().await;
    groups.sort();
    let mut pair = [a, b];
    pair.sort();
    assert_eq!(
        groups,
        vec![
            (r#"[{bucket="b1"}]"#.to_string(), PeerType::Source, 1),
            (
                format!(r#"[{{bucket="b1"}}]/endpoint-group:{}"#, pair.join(",")),
                PeerType::Store,
                2
            ),
        ]
    );
}
