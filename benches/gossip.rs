//! Gossip convergence, in gossip rounds, over chitchat's in-memory transport
//! with skein's gossip configuration: N nodes joined through three seeds,
//! with and without 30% message loss. Prints a table.
//!
//!     cargo bench --bench gossip
//!
//! SKEIN_BENCH_SIZES=10,50 and SKEIN_BENCH_SOAK_SECS=60 override the node
//! counts and the length of the false-death soak.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chitchat::transport::{ChannelTransport, Transport, TransportExt};
use chitchat::{ChitchatId, NodeState};
use tokio::sync::watch;

use skein::cluster::{Cluster, ClusterConfig, NodeAdvert};
use skein::store::PeerType;

const INTERVAL: Duration = Duration::from_millis(100);

fn addr(i: usize) -> SocketAddr {
    ([127, 0, 0, 1], 30_000 + i as u16).into()
}

fn advert(i: usize) -> NodeAdvert {
    NodeAdvert {
        version: "bench".into(),
        peer_type: PeerType::Store,
        component: "synthetic".into(),
        label_sets: vec![],
        store_group_id: format!("g{i}"),
        grpc_address: addr(i),
        http_address: addr(i),
        min_time: 0,
        max_time: 1,
        ready: true,
        leaving: false,
        incomplete: false,
    }
}

struct Node {
    cluster: Cluster,
    live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
}

async fn start(i: usize, transport: &dyn Transport) -> Node {
    let seeds = (0..3.min(i)).map(|s| addr(s).to_string()).collect();
    let mut cfg = ClusterConfig::for_test(addr(i), seeds);
    cfg.gossip_interval = INTERVAL;
    cfg.name = "bench".into();
    let cluster = Cluster::join_with(&cfg, &advert(i), transport)
        .await
        .expect("join");
    let live = cluster.live_nodes().await;
    Node { cluster, live }
}

/// Polls `done` every 10 ms; returns elapsed gossip rounds, or None after
/// `limit` rounds.
async fn rounds_until(limit: u32, mut done: impl FnMut() -> bool) -> Option<f64> {
    let start = Instant::now();
    while start.elapsed() < INTERVAL * limit {
        if done() {
            return Some(start.elapsed().as_secs_f64() / INTERVAL.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn sees(node: &Node, id: &ChitchatId) -> bool {
    node.live.borrow().contains_key(id)
}

fn value_seen(node: &Node, id: &ChitchatId, key: &str, want: &str) -> bool {
    node.live.borrow().get(id).and_then(|s| s.get(key)) == Some(want)
}

fn fmt(r: Option<f64>) -> String {
    r.map_or("not reached".into(), |r| format!("{r:.1}"))
}

async fn run(n: usize, loss: f64, soak: Duration) -> Vec<String> {
    let base = ChannelTransport::with_mtu(65_507);
    let transport: Box<dyn Transport> = if loss > 0.0 {
        base.clone().drop_message(loss)
    } else {
        Box::new(base.clone())
    };
    let mut nodes = Vec::with_capacity(n + 1);
    for i in 0..n {
        nodes.push(start(i, transport.as_ref()).await);
    }
    let ids: Vec<ChitchatId> = nodes.iter().map(|x| x.cluster.self_id().clone()).collect();
    let formed = rounds_until(600, || nodes.iter().all(|x| x.live.borrow().len() == n)).await;

    // A new node: rounds until every node sees it.
    let newcomer = start(n, transport.as_ref()).await;
    let new_id = newcomer.cluster.self_id().clone();
    nodes.push(newcomer);
    let join = rounds_until(300, || nodes.iter().all(|x| sees(x, &new_id))).await;

    // A key change on one node: rounds until every node has the new value.
    let changed = &nodes[n / 2];
    let mut a = advert(n / 2);
    a.max_time = 42;
    changed.cluster.set_advert(&a).await;
    let changed_id = changed.cluster.self_id().clone();
    let update = rounds_until(300, || {
        nodes
            .iter()
            .all(|x| value_seen(x, &changed_id, skein::cluster::keys::MAX_TIME, "42"))
    })
    .await;

    // False deaths: nobody alive may drop out of anybody's view.
    let mut false_deaths = 0u64;
    let soak_start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let all: Vec<ChitchatId> = nodes.iter().map(|x| x.cluster.self_id().clone()).collect();
    while soak_start.elapsed() < soak {
        tick.tick().await;
        for x in &nodes {
            let live = x.live.borrow();
            false_deaths += all.iter().filter(|id| !live.contains_key(id)).count() as u64;
        }
    }

    // A crash: rounds until nobody sees the node any more.
    let victim = nodes.remove(1);
    let victim_id = victim.cluster.self_id().clone();
    victim.cluster.abort();
    drop(victim);
    let crash = rounds_until(600, || nodes.iter().all(|x| !sees(x, &victim_id))).await;

    for x in &nodes {
        x.cluster.abort();
    }
    let _ = ids;
    vec![
        n.to_string(),
        format!("{:.0}%", loss * 100.0),
        fmt(formed),
        fmt(join),
        fmt(update),
        fmt(crash),
        if soak.is_zero() {
            "-".into()
        } else {
            format!("{false_deaths} in {}s", soak.as_secs())
        },
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; this binary takes no other arguments.
    let sizes: Vec<usize> = std::env::var("SKEIN_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 50, 100]);
    let soak_secs: u64 = std::env::var("SKEIN_BENCH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("gossip interval {INTERVAL:?}; rounds = elapsed / interval; seeds: 3\n");
    println!("| nodes | loss | cluster formed | new node seen by all | key change seen by all | crash detected by all | false deaths (soak) |");
    println!("|---|---|---|---|---|---|---|");
    for &n in &sizes {
        for loss in [0.0, 0.3] {
            // The soak runs where it matters most: the largest cluster, lossy.
            let soak = if loss > 0.0 && n == *sizes.iter().max().unwrap_or(&n) {
                Duration::from_secs(soak_secs)
            } else {
                Duration::ZERO
            };
            let row = run(n, loss, soak).await;
            println!("| {} |", row.join(" | "));
        }
    }
}
