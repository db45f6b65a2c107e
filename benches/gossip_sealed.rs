//! What sealing costs gossip, over real UDP on loopback: N nodes joined
//! through three seeds, first unsealed, then sealed with a keyring
//! (`--cluster.secret-file`). For each: gossip rounds until the cluster
//! forms and until a changed key reaches every node, gossip payload bytes
//! (chitchat's packets before sealing) sent per node and second in steady
//! state, and the process's CPU time per node and second. Prints a table.
//!
//!     cargo bench --bench gossip_sealed
//!
//! SKEIN_BENCH_SIZES=20,100 and SKEIN_BENCH_STEADY_SECS=5 override the node
//! counts and the steady-state measurement.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chitchat::transport::{Transport, UdpTransport};
use chitchat::{ChitchatId, NodeState};
use std::collections::BTreeMap;
use tokio::sync::watch;

use skein::cluster::{Cluster, ClusterConfig, MeteredTransport, NodeAdvert, SealedTransport};
use skein::store::PeerType;

const INTERVAL: Duration = Duration::from_millis(200);

fn addr(port_base: u16, i: usize) -> SocketAddr {
    ([127, 0, 0, 1], port_base + i as u16).into()
}

fn advert(a: SocketAddr, i: usize) -> NodeAdvert {
    NodeAdvert {
        version: "bench".into(),
        peer_type: PeerType::Store,
        component: "synthetic".into(),
        label_sets: vec![skein::model::Labels::from_pairs([
            ("cluster", "bench"),
            ("replica", &format!("r{i}")),
        ])
        .unwrap()],
        store_group_id: format!("g{i}"),
        grpc_address: a,
        http_address: a,
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

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn sent_bytes() -> f64 {
    skein::telemetry::metrics()
        .render()
        .lines()
        .find(|l| l.starts_with("skein_cluster_gossip_bytes_total{direction=\"sent\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

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

async fn run(n: usize, port_base: u16, transport: &dyn Transport, steady: Duration) -> Vec<String> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let a = addr(port_base, i);
        let seeds = (0..3.min(i))
            .map(|s| addr(port_base, s).to_string())
            .collect();
        let mut cfg = ClusterConfig::for_test(a, seeds);
        cfg.gossip_interval = INTERVAL;
        cfg.name = "bench".into();
        let cluster = Cluster::join_with(&cfg, &advert(a, i), transport)
            .await
            .expect("join");
        let live = cluster.live_nodes().await;
        nodes.push(Node { cluster, live });
    }
    let formed = rounds_until(600, || nodes.iter().all(|x| x.live.borrow().len() == n)).await;
    let changed = &nodes[n / 2];
    let mut a = advert(addr(port_base, n / 2), n / 2);
    a.max_time = 42;
    changed.cluster.set_advert(&a).await;
    let id = changed.cluster.self_id().clone();
    let update = rounds_until(300, || {
        nodes.iter().all(|x| {
            x.live
                .borrow()
                .get(&id)
                .and_then(|s| s.get(skein::cluster::keys::MAX_TIME))
                == Some("42")
        })
    })
    .await;
    let (bytes0, cpu0, t0) = (sent_bytes(), cpu_seconds(), Instant::now());
    tokio::time::sleep(steady).await;
    let secs = t0.elapsed().as_secs_f64();
    let bytes = (sent_bytes() - bytes0) / secs / n as f64;
    let cpu = (cpu_seconds() - cpu0) / secs / n as f64;
    for x in &nodes {
        x.cluster.abort();
    }
    let f = |r: Option<f64>| r.map_or("not reached".into(), |r| format!("{r:.1}"));
    vec![
        f(formed),
        f(update),
        format!("{bytes:.0}"),
        format!("{:.2}", cpu * 1000.0),
    ]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SKEIN_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![20, 100]);
    let steady = Duration::from_secs(
        std::env::var("SKEIN_BENCH_STEADY_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("keys");
    std::fs::write(&key_file, skein::cluster::keyring::generate_key()).expect("key file");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    skein::telemetry::metrics();
    println!("| nodes | gossip | rounds to form | rounds for an update | payload bytes per node per s | CPU ms per node per s |");
    println!("|---|---|---|---|---|---|");
    for (k, n) in sizes.iter().enumerate() {
        let plain = MeteredTransport(UdpTransport);
        let port = 32_000 + (k as u16) * 1_000;
        let row = rt.block_on(run(*n, port, &plain, steady));
        println!("| {n} | unsealed | {} |", row.join(" | "));
        let keyring = rt
            .block_on(async { skein::cluster::load_keyring(&key_file) })
            .expect("keyring");
        let sealed = MeteredTransport(SealedTransport {
            keyring: Arc::clone(&keyring),
        });
        let row = rt.block_on(run(*n, port + 500, &sealed, steady));
        println!("| {n} | sealed | {} |", row.join(" | "));
    }
}
