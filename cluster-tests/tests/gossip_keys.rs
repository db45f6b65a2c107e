//! Sealed gossip with real processes: nodes without the cluster's key (or
//! with another) are not heard and cannot change what anyone sees; forged,
//! replayed and old-key packets are dropped and counted; and a rolling
//! rotation of the key across three queriers and two stores, under query
//! load, fails no query.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skein::cluster::keyring::{generate_key, Keyring};
use skein_cluster_tests::{get_json, start_node, wait_for, Process};

fn fingerprint(key: &str) -> String {
    Keyring::parse(key).unwrap().fingerprints().remove(0)
}

fn key_file(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let p = dir.join(format!("{name}.keys"));
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn synthetic(name: &str, ip: &str, seed: &str, keys: Option<&Path>, extra: &[&str]) -> Process {
    let mut args = vec!["--targets", "2", "--window", "1h", "--label"];
    let label = format!("store={name}");
    args.push(&label);
    if let Some(k) = keys {
        args.extend(["--cluster.secret-file", k.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    start_node(name, "synthetic", ip, Some(seed), &args).unwrap()
}

fn querier(name: &str, ip: &str, seeds: Option<&str>, keys: Option<&Path>) -> Process {
    let mut args = vec!["--store.health-check-interval", "300ms"];
    if let Some(k) = keys {
        args.extend(["--cluster.secret-file", k.to_str().unwrap()]);
    }
    start_node(name, "query", ip, seeds, &args).unwrap()
}

/// `store` label values of the groups a querier sees, sorted.
fn stores_seen(q: &Process) -> Vec<String> {
    let Ok(v) = get_json(q.http, "/api/v1/cluster") else {
        return vec![];
    };
    let mut out: Vec<String> = v["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["labelSets"][0]["store"].as_str().map(String::from))
        .collect();
    out.sort();
    out
}

/// A counter's value on a node's /metrics (0 when absent).
fn metric(p: &Process, name_and_labels: &str) -> f64 {
    skein_cluster_tests::metric_at(p.http, name_and_labels)
}

fn dropped(p: &Process, reason: &str) -> f64 {
    metric(
        p,
        &format!("skein_cluster_gossip_packets_dropped_total{{reason=\"{reason}\"}}"),
    )
}

/// A socket posing as a seed: the node that lists it sends it sealed
/// packets, which a test can keep and send again.
fn capture(listen: &str) -> (UdpSocket, Vec<u8>) {
    let s = UdpSocket::bind(listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = s
        .recv_from(&mut buf)
        .expect("a packet from the node that seeds to us");
    buf.truncate(n);
    (s, buf)
}

fn gossip(ip: &str) -> SocketAddr {
    format!("{ip}:10900").parse().unwrap()
}

#[test]
fn nodes_without_the_key_are_not_heard_and_forged_packets_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k3) = (generate_key(), generate_key());
    let ring = key_file(dir.path(), "k1", &[&k1]);
    let other = key_file(dir.path(), "k3", &[&k3]);
    let seed = "127.0.32.1:10900";

    // The querier also seeds to a socket of ours, so we get its packets.
    let q = querier(
        "query",
        "127.0.32.1",
        Some("127.0.32.99:10900"),
        Some(&ring),
    );
    let (fake, packet) = capture("127.0.32.99:10900");
    let s1 = synthetic("s1", "127.0.32.11", seed, Some(&ring), &[]);
    // One without a key that copies s1's labels (its group) and node name
    // to take its place; one with another key; a querier with another key.
    let _rogue = synthetic(
        "s1",
        "127.0.32.21",
        seed,
        None,
        &["--cluster.node-name", "127.0.32.11:10900"],
    );
    let _wrong = synthetic("wrongkey", "127.0.32.22", seed, Some(&other), &[]);
    let q_wrong = querier("query-wrong", "127.0.32.23", Some(seed), Some(&other));

    wait_for(
        "the keyed store to be seen",
        Duration::from_secs(20),
        || stores_seen(&q) == ["s1"],
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stores_seen(&q), ["s1"], "a node without the key was heard");
    assert!(
        stores_seen(&q_wrong).iter().all(|s| s == "wrongkey"),
        "a querier with another key heard the cluster: {:?}",
        stores_seen(&q_wrong)
    );
    let v = get_json(q.http, "/api/v1/cluster").unwrap();
    let names: Vec<&str> = v["data"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["node"].as_str())
        .collect();
    assert!(!names.iter().any(|n| n.contains("127.0.32.2")), "{names:?}");
    let endpoints: Vec<&str> = v["data"]["groups"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["endpoint"].as_str())
        .collect();
    assert!(
        endpoints.len() == 1 && endpoints[0].starts_with("127.0.32.11:"),
        "s1's group: {endpoints:?}"
    );
    assert!(dropped(&q, "plaintext") > 0.0);
    assert!(dropped(&q, "auth") > 0.0);

    // Forgeries at the querier's gossip port.
    let before = (
        dropped(&q, "malformed"),
        dropped(&q, "auth"),
        dropped(&q, "plaintext"),
    );
    let target = gossip("127.0.32.1");
    let mut junk = vec![0xE5u8, 1];
    junk.extend((0..200u32).map(|i| (i * 7919 % 251) as u8));
    fake.send_to(&junk, target).unwrap(); // sealed-looking, no key opens it
    fake.send_to(&[0xE5, 1, 2], target).unwrap(); // too short
    fake.send_to(b"\x53\xb0 chitchat-looking plaintext", target)
        .unwrap();
    let mut flipped = packet.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    fake.send_to(&flipped, target).unwrap(); // a real packet, one bit changed
    wait_for("forgeries to be counted", Duration::from_secs(5), || {
        dropped(&q, "malformed") > before.0
            && dropped(&q, "auth") >= before.1 + 2.0
            && dropped(&q, "plaintext") > before.2
    })
    .unwrap();

    // A replayed packet: the first copy is news to s1, the second is not.
    let replays = dropped(&s1, "replay");
    let s1_gossip = gossip("127.0.32.11");
    fake.send_to(&packet, s1_gossip).unwrap();
    fake.send_to(&packet, s1_gossip).unwrap();
    wait_for("the replay to be counted", Duration::from_secs(5), || {
        dropped(&s1, "replay") > replays
    })
    .unwrap();
    assert_eq!(stores_seen(&q), ["s1"]);
}

#[test]
fn rolling_key_rotation_under_query_load_fails_no_query() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (generate_key(), generate_key());
    let names = ["q1", "q2", "q3", "s1", "s2"];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| key_file(dir.path(), n, &[&k1]))
        .collect();
    let seed = "127.0.32.31:10900";
    let q1 = querier(
        "q1",
        "127.0.32.31",
        Some("127.0.32.98:10900"),
        Some(&files[0]),
    );
    let (fake, old_key_packet) = capture("127.0.32.98:10900");
    let q2 = querier("q2", "127.0.32.32", Some(seed), Some(&files[1]));
    let q3 = querier("q3", "127.0.32.33", Some(seed), Some(&files[2]));
    let _s1 = synthetic("s1", "127.0.32.41", seed, Some(&files[3]), &[]);
    let _s2 = synthetic("s2", "127.0.32.42", seed, Some(&files[4]), &[]);
    let queriers = [q1, q2, q3];
    for q in &queriers {
        wait_for(
            "every querier to see both stores",
            Duration::from_secs(30),
            || stores_seen(q) == ["s1", "s2"],
        )
        .unwrap();
    }

    // Load: every querier in turn, each answer must be whole (2 stores x
    // 2 targets x 11 series) and carry no warning.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let addrs: Vec<SocketAddr> = queriers.iter().map(|q| q.http).collect();
    let load = {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        std::thread::spawn(move || {
            let path = "/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)";
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for a in &addrs {
                    match get_json(*a, path) {
                        Ok(v)
                            if v["data"]["result"][0]["value"][1] == "44"
                                && v.get("warnings").is_none() =>
                        {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(format!("{a}: {other:?}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            errors
        })
    };

    // Install, use, remove: each step on one node after another.
    let steps: [&[&str]; 3] = [&[&k1, &k2], &[&k2, &k1], &[&k2]];
    for lines in steps {
        for f in &files {
            std::fs::write(f, lines.join("\n") + "\n").unwrap();
            std::thread::sleep(Duration::from_millis(700));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let errors = load.join().unwrap();
    let (ok, bad) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        bad,
        0,
        "{bad} of {} queries failed: {:?}",
        ok + bad,
        &errors[..errors.len().min(5)]
    );
    assert!(ok > 100, "only {ok} queries ran");

    // Nobody seals with the old key any more, and a packet sealed with it
    // is refused.
    let old = format!(
        "skein_cluster_gossip_packets_opened_total{{key=\"{}\"}}",
        fingerprint(&k1)
    );
    let new = format!(
        "skein_cluster_gossip_packets_opened_total{{key=\"{}\"}}",
        fingerprint(&k2)
    );
    let q1 = &queriers[0];
    let (old_before, new_before) = (metric(q1, &old), metric(q1, &new));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        metric(q1, &old),
        old_before,
        "a node still seals with the removed key"
    );
    assert!(metric(q1, &new) > new_before);
    let auth = dropped(&queriers[1], "auth");
    fake.send_to(&old_key_packet, gossip("127.0.32.32"))
        .unwrap();
    wait_for(
        "the old key's packet to be refused",
        Duration::from_secs(5),
        || dropped(&queriers[1], "auth") > auth,
    )
    .unwrap();
    for q in &queriers {
        assert_eq!(stores_seen(q), ["s1", "s2"]);
    }
}

#[test]
fn members_outside_the_allowed_networks_are_never_dialled() {
    // Whoever can gossip (with the key or in an open cluster) could point
    // queriers at any address; the allowed networks bound where they dial.
    let seed = "127.0.32.61:10900";
    let q = start_node(
        "query",
        "query",
        "127.0.32.61",
        None,
        &[
            "--store.health-check-interval",
            "300ms",
            "--cluster.allowed-endpoints",
            "127.0.32.64/28,127.0.32.90",
        ],
    )
    .unwrap();
    let inside = synthetic("inside", "127.0.32.65", seed, None, &[]);
    let _single = synthetic("single", "127.0.32.90", seed, None, &[]);
    let outside = synthetic("outside", "127.0.32.81", seed, None, &[]);
    wait_for("the allowed stores", Duration::from_secs(20), || {
        stores_seen(&q) == ["inside", "single"]
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stores_seen(&q), ["inside", "single"]);
    let v = get_json(q.http, "/api/v1/cluster").unwrap();
    let refused: Vec<String> = v["data"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["error"].as_str().map(String::from))
        .collect();
    assert!(
        refused.len() == 1
            && refused[0].contains("127.0.32.81")
            && refused[0].contains("allowed-endpoints"),
        "{refused:?}"
    );
    // Not one Store API call reached the store outside (while the one
    // inside was checked).
    let info_calls = "skein_store_grpc_requests_total{rpc=\"info\",code=\"ok\"}";
    assert!(metric(&inside, info_calls) > 0.0, "no such metric line");
    assert_eq!(metric(&outside, info_calls), 0.0);
}
