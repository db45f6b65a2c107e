//! Bad input, sent to real nodes while a steady PromQL load runs: a
//! querier and a store gateway in gossip (and a sidecar over a real
//! Prometheus when one is on the PATH). Every bad request gets its clear
//! error within its deadline, every node stays up, the load sees no failed
//! query, and no node's memory grows past a stated bound. Loopback range
//! 127.0.29.x.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use skein::proto::thanos as pb;
use skein::proto::thanos::store_client::StoreClient;
use skein_cluster_tests::history::start_sidecar;
use skein_cluster_tests::load::{Load, StopOnDrop};
use skein_cluster_tests::{
    get_json, healthy_members, http_request, require_binary, rss_kib, start_node, start_prometheus,
    wait_for, Process,
};

const SEED: &str = "127.0.29.1:10900";
const QUERY: &str = "/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)&time=1700003000";
/// Longest any bad request may take to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// Resident memory no node may pass (debug builds included).
const RSS_BOUND_KIB: u64 = 512 * 1024;

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out.into_bytes()
}

/// Sends one bad HTTP request; its status must be one of `want` and come
/// within [`ANSWER_WITHIN`], with a body naming `says` when given.
fn expect_http(
    querier: SocketAddr,
    what: &str,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    want: &[u16],
    says: Option<&str>,
) {
    let started = Instant::now();
    let body_ref = body
        .as_deref()
        .map(|b| ("application/x-www-form-urlencoded", b));
    let (status, answer) = http_request(querier, method, path, body_ref, ANSWER_WITHIN)
        .unwrap_or_else(|e| panic!("{what}: no answer: {e:#}"));
    let text = String::from_utf8_lossy(&answer);
    let short: String = text.chars().take(300).collect();
    assert!(want.contains(&status), "{what}: status {status}: {short}");
    assert!(
        started.elapsed() < ANSWER_WITHIN,
        "{what}: took {:?}",
        started.elapsed()
    );
    if let Some(s) = says {
        assert!(text.contains(s), "{what}: {short}");
    }
    println!("{what}: {status} in {:?}", started.elapsed());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn matcher(name: &str, value: &str, t: pb::label_matcher::Type) -> pb::LabelMatcher {
    pb::LabelMatcher {
        r#type: t as i32,
        name: name.into(),
        value: value.into(),
    }
}

/// Bad Store API requests to one node: each gets an error status, in time.
async fn bad_grpc(name: &str, grpc: SocketAddr) {
    let mut client = StoreClient::connect(format!("http://{grpc}"))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20);
    use pb::label_matcher::Type;
    let cases: Vec<(&str, pb::SeriesRequest)> = vec![
        (
            "unknown matcher type",
            pb::SeriesRequest {
                min_time: 0,
                max_time: i64::MAX,
                matchers: vec![pb::LabelMatcher {
                    r#type: 99,
                    name: "a".into(),
                    value: "b".into(),
                }],
                ..Default::default()
            },
        ),
        (
            "unknown partial response strategy",
            pb::SeriesRequest {
                min_time: 0,
                max_time: i64::MAX,
                matchers: vec![matcher("__name__", "x", Type::Eq)],
                partial_response_strategy: 42,
                ..Default::default()
            },
        ),
        (
            "bad regex",
            pb::SeriesRequest {
                min_time: 0,
                max_time: i64::MAX,
                matchers: vec![matcher("__name__", "(unclosed", Type::Re)],
                ..Default::default()
            },
        ),
        (
            "a regex of 200,000 braces",
            pb::SeriesRequest {
                min_time: 0,
                max_time: i64::MAX,
                matchers: vec![matcher("__name__", &"{".repeat(200_000), Type::Re)],
                ..Default::default()
            },
        ),
        (
            "a 20 MiB matcher value",
            pb::SeriesRequest {
                min_time: 0,
                max_time: i64::MAX,
                matchers: vec![matcher("__name__", &"x".repeat(20 << 20), Type::Eq)],
                ..Default::default()
            },
        ),
        (
            "times at the ends of i64",
            pb::SeriesRequest {
                min_time: i64::MAX,
                max_time: i64::MIN,
                matchers: vec![matcher("__name__", ".+", Type::Re)],
                ..Default::default()
            },
        ),
    ];
    for (what, req) in cases {
        let started = Instant::now();
        let mut r = tonic::Request::new(req);
        r.set_timeout(ANSWER_WITHIN);
        let outcome = match client.series(r).await {
            Err(status) => format!("{:?}", status.code()),
            Ok(stream) => {
                let mut stream = stream.into_inner();
                let mut last = "ended".to_string();
                while let Some(frame) = stream.next().await {
                    if let Err(status) = frame {
                        last = format!("{:?}", status.code());
                        break;
                    }
                }
                last
            }
        };
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "{name}: {what}: took {:?}",
            started.elapsed()
        );
        assert_ne!(
            outcome, "Unknown",
            "{name}: {what}: an error without a code"
        );
        println!("{name}: {what}: {outcome} in {:?}", started.elapsed());
    }
}

/// Bytes that are not HTTP/2 on the gRPC port, and a stream of garbage
/// frames after a valid preface.
fn garbage_tcp(grpc: SocketAddr) {
    for payload in [
        vec![0u8; 4096],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        {
            let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            v.extend((0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
            v
        },
    ] {
        if let Ok(mut c) = TcpStream::connect_timeout(&grpc, Duration::from_secs(5)) {
            let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = c.write_all(&payload);
        }
    }
}

/// A 12 MB form body: refused (the server may answer before it has read
/// the body, so the write may fail; the answer must still come).
fn oversized_body(querier: SocketAddr) {
    use std::io::Read;
    let started = Instant::now();
    let mut c = TcpStream::connect_timeout(&querier, Duration::from_secs(5)).unwrap();
    c.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    c.set_write_timeout(Some(ANSWER_WITHIN)).unwrap();
    let len = 12 << 20;
    let head = format!(
        "POST /api/v1/query HTTP/1.1\r\nHost: {querier}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\n\r\nquery="
    );
    let _ = c.write_all(head.as_bytes());
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0;
    while sent < len - 6 {
        if c.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        status == "413" || status == "400",
        "a 12 MB form body: {}",
        text.chars().take(200).collect::<String>()
    );
    assert!(started.elapsed() < ANSWER_WITHIN);
    println!("a 12 MB form body: {status} in {:?}", started.elapsed());
}

/// Garbage datagrams to a gossip port.
fn garbage_udp(gossip: &str) {
    let socket = UdpSocket::bind("127.0.29.9:0").unwrap();
    for i in 0..200u32 {
        let len = [1usize, 17, 512, 1400, 8192, 65_000][i as usize % 6];
        let payload: Vec<u8> = (0..len)
            .map(|j| ((j as u32).wrapping_mul(i.wrapping_add(7)) >> 3) as u8)
            .collect();
        let _ = socket.send_to(&payload, gossip);
    }
}

#[test]
fn bad_input_reaches_no_node() {
    let dir = tempfile::tempdir().unwrap();
    let objstore = skein_cluster_tests::fixture_bucket(dir.path()).unwrap();
    let mut querier = start_node(
        "query",
        "query",
        "127.0.29.1",
        None,
        &["--store.health-check-interval", "500ms"],
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut gateway = start_node(
        "store",
        "store",
        "127.0.29.2",
        Some(SEED),
        &[
            "--objstore.config",
            &objstore,
            "--data-dir",
            data.to_str().unwrap(),
            "--grpc.send-timeout",
            "2s",
            "--grpc.max-concurrent-requests",
            "8",
        ],
    )
    .unwrap();
    let http = querier.http;
    wait_for("the gateway healthy", Duration::from_secs(60), || {
        healthy_members(http) == Some((1, 1))
    })
    .unwrap();
    // A sidecar over a real Prometheus, outside gossip, for its Store API.
    let prometheus = require_binary("prometheus");
    let mut prom_and_sidecar: Option<(skein_cluster_tests::Spawned, Process)> =
        prometheus.map(|bin| {
            let prom =
                start_prometheus(&bin, &dir.path().join("prom"), "127.0.29.3:9090", "a", http)
                    .unwrap();
            let addr: SocketAddr = "127.0.29.3:9090".parse().unwrap();
            wait_for("Prometheus ready", Duration::from_secs(60), || {
                skein_cluster_tests::http_get(addr, "/-/ready").is_ok_and(|(s, _)| s == 200)
            })
            .unwrap();
            let sidecar = start_sidecar("sidecar", "127.0.29.4", addr).unwrap();
            (prom, sidecar)
        });

    let want = get_json(http, QUERY).unwrap();
    assert_eq!(want["status"], "success", "{want}");
    let load = Load::new(QUERY, want["data"].clone());
    let running = AtomicBool::new(true);
    let pids: Vec<(String, u32)> = [&querier, &gateway]
        .into_iter()
        .chain(prom_and_sidecar.as_ref().map(|(_, s)| s))
        .map(|p| (p.name().to_string(), p.pid()))
        .collect();
    let mut peak = vec![0u64; pids.len()];
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&running);
        for _ in 0..3 {
            s.spawn(|| {
                while running.load(Ordering::Relaxed) {
                    load.query(http);
                }
            });
        }
        let watch = s.spawn(|| {
            let mut peak = vec![0u64; pids.len()];
            while running.load(Ordering::Relaxed) {
                for (i, (_, pid)) in pids.iter().enumerate() {
                    peak[i] = peak[i].max(rss_kib(*pid));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });

        // The two requests that once ended a querier.
        expect_http(
            http,
            "a subquery of 3e10 steps",
            "GET",
            "/api/v1/query?query=max_over_time(vector(1)%5B1y%3A1ms%5D)",
            None,
            &[422],
            Some("--query.max-samples"),
        );
        let parens = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
        expect_http(
            http,
            "100 KB of nested parentheses",
            "POST",
            "/api/v1/query",
            Some(form(&[("query", &parens)])),
            &[400],
            Some("nests too deeply"),
        );
        // More of the same kind.
        let plus = format!("1{}", "+1".repeat(50_000));
        expect_http(
            http,
            "50,000 additions",
            "POST",
            "/api/v1/query",
            Some(form(&[("query", &plus)])),
            &[400],
            Some("nests too deeply"),
        );
        expect_http(
            http,
            "format_query of nested parentheses",
            "POST",
            "/api/v1/format_query",
            Some(form(&[("query", &parens)])),
            &[400],
            None,
        );
        expect_http(
            http,
            "offset NaN",
            "GET",
            "/api/v1/query?query=x%5B5m%5D%20offset%20NaN",
            None,
            &[400],
            None,
        );
        expect_http(
            http,
            "a time at the edge of i64",
            "GET",
            "/api/v1/query?query=up&time=-9223372036854774",
            None,
            &[200, 400],
            None,
        );
        expect_http(
            http,
            "a range of 11,002 points",
            "GET",
            "/api/v1/query_range?query=up&start=0&end=11001&step=1",
            None,
            &[400],
            Some("11,000"),
        );
        expect_http(
            http,
            "a regex of 100,000 braces",
            "POST",
            "/api/v1/series",
            Some(form(&[(
                "match[]",
                &format!("{{a=~\"{}\"}}", "{".repeat(100_000)),
            )])),
            &[200, 400],
            None,
        );
        oversized_body(http);
        expect_http(
            http,
            "a malformed query",
            "GET",
            "/api/v1/query?query=sum(%7B",
            None,
            &[400],
            Some("bad_data"),
        );

        // The Store API of the gateway, the querier and the sidecar.
        let rt = runtime();
        let mut grpc_nodes = vec![("store", gateway.grpc), ("query", querier.grpc)];
        if let Some((_, sidecar)) = &prom_and_sidecar {
            grpc_nodes.push(("sidecar", sidecar.grpc));
        }
        for (name, grpc) in &grpc_nodes {
            rt.block_on(bad_grpc(name, *grpc));
            garbage_tcp(*grpc);
        }
        // Callers that open Series streams on the gateway and never read:
        // more than its slots. They must not keep others out.
        let idle = rt.block_on(async {
            let mut idle = Vec::new();
            for _ in 0..20 {
                let mut c = StoreClient::connect(format!("http://{}", gateway.grpc))
                    .await
                    .unwrap();
                let req = pb::SeriesRequest {
                    min_time: 0,
                    max_time: i64::MAX,
                    matchers: vec![matcher("__name__", ".+", pb::label_matcher::Type::Re)],
                    ..Default::default()
                };
                if let Ok(s) = c.series(req).await {
                    idle.push((c, s.into_inner()));
                }
            }
            idle
        });
        // Gossip garbage.
        for port in ["127.0.29.1:10900", "127.0.29.2:10900"] {
            garbage_udp(port);
        }
        std::thread::sleep(Duration::from_secs(4));
        drop(idle);
        std::thread::sleep(Duration::from_secs(2));
        let phase = load.take("steady load while bad input was sent");
        running.store(false, Ordering::Relaxed);
        assert!(phase.queries > 0);
        assert!(
            phase.failures.is_empty(),
            "{} failed queries: {:?}",
            phase.failures.len(),
            &phase.failures[..phase.failures.len().min(3)]
        );
        peak = watch.join().unwrap();
    });
    for ((name, _), kib) in pids.iter().zip(&peak) {
        println!("{name}: peak RSS {} MiB", kib / 1024);
        assert!(*kib < RSS_BOUND_KIB, "{name}: peak RSS {kib} KiB");
    }
    assert!(querier.is_running(), "the querier died");
    assert!(gateway.is_running(), "the gateway died");
    if let Some((_, sidecar)) = prom_and_sidecar.as_mut() {
        assert!(sidecar.is_running(), "the sidecar died");
    }
    // Membership is what it was: gossip garbage changed nothing.
    assert_eq!(healthy_members(http), Some((1, 1)));
    // And the querier still answers right.
    assert_eq!(get_json(http, QUERY).unwrap()["data"], want["data"]);
}
