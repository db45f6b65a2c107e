//! Two store gateways on one bucket split by time (`--max-time=T` and
//! `--min-time=T`, T in the middle of a block), found by gossip: they hold
//! different data, so they form two groups, and a query across the split
//! asks both. Every answer equals Prometheus 2.42's on the same blocks,
//! every time it is asked; each gateway loads only the blocks inside its
//! bounds. Loopback range 127.0.22.x.

use std::net::SocketAddr;
use std::time::Duration;

use skein_cluster_tests::history::{first_difference, query_matrix, ship_blocks};
use skein_cluster_tests::openmetrics::{format_ts, unit, Dataset, OpenMetricsWriter};
use skein_cluster_tests::promql_setup::{import_openmetrics, start_prometheus_on_blocks};
use skein_cluster_tests::{get_json, http_get, require_binary, start_node, wait_for, Process};

const T0: i64 = 1_699_999_200_000;
const HOUR: i64 = 3_600_000;
const SPAN: i64 = 6 * HOUR;
const SCRAPE: i64 = 15_000;
const SERIES: usize = 300;
/// The split, in the middle of the block [T0+2h, T0+4h).
const SPLIT: i64 = T0 + 3 * HOUR;
const SEED: &str = "127.0.22.1:10900";

fn write(path: &std::path::Path) -> anyhow::Result<Dataset> {
    let mut w = OpenMetricsWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?));
    w.family("split_bytes", "counter", "bytes")?;
    for i in 0..SERIES {
        let inst = format!("host-{}", i % 30);
        let disk = format!("d{}", i / 30);
        let mut v = 0.0;
        let points: Vec<(i64, f64)> = (0..SPAN / SCRAPE)
            .map(|k| {
                v += (unit(i as u64, k as u64) * 1000.0).round();
                (T0 + k * SCRAPE + 1 + (i as i64 % 7), v)
            })
            .collect();
        w.series(
            "split_bytes_total",
            &[("instance", &inst), ("disk", &disk)],
            &points,
        )?;
    }
    Ok(w.finish()?)
}

/// A gateway's `skein_store_blocks_loaded`.
fn blocks_loaded(http: SocketAddr) -> Option<f64> {
    let (status, body) = http_get(http, "/metrics").ok()?;
    if status != 200 {
        return None;
    }
    body.lines()
        .find(|l| l.starts_with("skein_store_blocks_loaded "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[test]
fn gateways_split_by_time_answer_like_prometheus() {
    let (Some(prometheus), Some(promtool)) =
        (require_binary("prometheus"), require_binary("promtool"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("prom");
    std::fs::create_dir_all(&home).unwrap();
    let om = home.join("data.om");
    let dataset = write(&om).unwrap();
    import_openmetrics(&promtool, &om, &home.join("data"), dataset).unwrap();
    let bucket = dir.path().join("bucket");
    let blocks = ship_blocks(&home.join("data"), &bucket, &[]).unwrap();
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    let _prom = start_prometheus_on_blocks(&prometheus, &home, "127.0.22.9:9090").unwrap();
    let reference: SocketAddr = "127.0.22.9:9090".parse().unwrap();

    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let querier = start_node(
        "query",
        "query",
        "127.0.22.1",
        None,
        &["--store.health-check-interval", "500ms"],
    )
    .unwrap();
    let split = format_ts(SPLIT);
    let gateway = |n: u8, bound: &[&str]| -> Process {
        let data = dir.path().join(format!("store-{n}"));
        let mut args = vec![
            "--objstore.config",
            &objstore,
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(bound);
        start_node(
            &format!("store-{n}"),
            "store",
            &format!("127.0.22.{n}"),
            Some(SEED),
            &args,
        )
        .unwrap()
    };
    let old = gateway(2, &["--max-time", &split]);
    let new = gateway(3, &["--min-time", &split]);
    let http = querier.http;
    wait_for(
        "two gateways, healthy, in two groups",
        Duration::from_secs(60),
        || {
            let Ok(v) = get_json(http, "/api/v1/cluster") else {
                return false;
            };
            let Some(groups) = v["data"]["groups"].as_array() else {
                return false;
            };
            groups.len() == 2
                && groups.iter().all(|g| {
                    g["members"]
                        .as_array()
                        .is_some_and(|m| m.len() == 1 && m.iter().all(|m| m["health"] == "healthy"))
                })
        },
    )
    .unwrap();
    // Each loads the blocks its bounds touch: [0,2h) and [2h,4h) for the
    // old one, [2h,4h) and [4h,6h) for the new one.
    assert_eq!(blocks_loaded(old.http), Some(2.0));
    assert_eq!(blocks_loaded(new.http), Some(2.0));

    let end = T0 + SPAN - 60_000;
    let queries: [(&str, (i64, i64, i64)); 4] = [
        ("count_over_time(split_bytes_total[6h])", (end, end, 60_000)),
        (
            "rate(split_bytes_total[5m])",
            (T0 + 10 * 60_000, end, 5 * 60_000),
        ),
        (
            "sum by (disk) (increase(split_bytes_total[1h]))",
            (T0 + HOUR, end, 10 * 60_000),
        ),
        (
            "split_bytes_total",
            (SPLIT - 30 * 60_000, SPLIT + 30 * 60_000, 15_000),
        ),
    ];
    for (q, window) in queries {
        let want = query_matrix(reference, q, window, "").unwrap();
        assert!(!want.series.is_empty(), "{q}");
        // Asked several times: an answer from one gateway only would
        // differ from call to call.
        for attempt in 0..5 {
            let got = query_matrix(http, q, window, "").unwrap();
            assert!(got.warnings.is_empty(), "{q}: {:?}", got.warnings);
            if let Some(d) = first_difference(&got, &want) {
                panic!("{q} (attempt {attempt}): differs from Prometheus: {d}");
            }
        }
        eprintln!("{q}: {} points equal Prometheus'", want.samples());
    }
    let whole = skein_cluster_tests::history::query_matrix(
        http,
        "count_over_time(split_bytes_total[6h])",
        (end, end, 60_000),
        "",
    )
    .unwrap();
    let per_series = (SPAN / SCRAPE - 4) as f64;
    assert!(
        whole.series.values().all(|p| p[0].1 >= per_series),
        "every series has its samples from both sides of the split"
    );
}
