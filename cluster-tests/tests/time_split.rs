//! Two store gateways that split one bucket, found by gossip: by time
//! (`--max-time=T` and `--min-time=T`, T in the middle of a block), and by
//! block (`--selector.relabel-config`, a hashmod over `__block_id`). They
//! hold different data, so they form two groups and a query asks both.
//! Every answer equals Prometheus 2.42's on the same blocks, every time it
//! is asked; each gateway loads only its share of the blocks. Loopback
//! ranges 127.0.22.x and 127.0.26.x.

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

/// A Prometheus on promtool's blocks of the dataset, the same blocks in a
/// bucket, and a querier on `{net}.1` for gateways to join by gossip.
struct Setup {
    dir: tempfile::TempDir,
    blocks: Vec<String>,
    objstore: String,
    reference: SocketAddr,
    querier: Process,
    net: String,
    _prom: skein_cluster_tests::Spawned,
}

impl Setup {
    fn start(net: &str) -> Option<Self> {
        let (Some(prometheus), Some(promtool)) =
            (require_binary("prometheus"), require_binary("promtool"))
        else {
            return None;
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
        let addr = format!("{net}.9:9090");
        let prom = start_prometheus_on_blocks(&prometheus, &home, &addr).unwrap();
        let objstore = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        );
        let querier = start_node(
            "query",
            "query",
            &format!("{net}.1"),
            None,
            &["--store.health-check-interval", "500ms"],
        )
        .unwrap();
        Some(Self {
            dir,
            blocks,
            objstore,
            reference: addr.parse().unwrap(),
            querier,
            net: net.to_string(),
            _prom: prom,
        })
    }

    fn gateway(&self, n: u8, flags: &[&str]) -> Process {
        let data = self.dir.path().join(format!("store-{n}"));
        let mut args = vec![
            "--objstore.config",
            &self.objstore,
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        start_node(
            &format!("store-{n}"),
            "store",
            &format!("{}.{n}", self.net),
            Some(&format!("{}.1:10900", self.net)),
            &args,
        )
        .unwrap()
    }

    /// Waits for two healthy gateways in two groups of one member each.
    fn wait_for_two_groups(&self) {
        let http = self.querier.http;
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
                        g["members"].as_array().is_some_and(|m| {
                            m.len() == 1 && m.iter().all(|m| m["health"] == "healthy")
                        })
                    })
            },
        )
        .unwrap();
    }

    /// Queries across the whole span, each asked five times of the querier,
    /// must equal Prometheus' answer.
    fn compare(&self) {
        let http = self.querier.http;
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
            let want = query_matrix(self.reference, q, window, "").unwrap();
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
        let whole = query_matrix(
            http,
            "count_over_time(split_bytes_total[6h])",
            (end, end, 60_000),
            "",
        )
        .unwrap();
        let per_series = (SPAN / SCRAPE - 4) as f64;
        assert!(
            whole.series.values().all(|p| p[0].1 >= per_series),
            "every series has its samples from every part of the bucket"
        );
    }
}

#[test]
fn gateways_split_by_time_answer_like_prometheus() {
    let Some(setup) = Setup::start("127.0.22") else {
        return;
    };
    let split = format_ts(SPLIT);
    let old = setup.gateway(2, &["--max-time", &split]);
    let new = setup.gateway(3, &["--min-time", &split]);
    setup.wait_for_two_groups();
    // Each loads the blocks its bounds touch: [0,2h) and [2h,4h) for the
    // old one, [2h,4h) and [4h,6h) for the new one.
    assert_eq!(blocks_loaded(old.http), Some(2.0));
    assert_eq!(blocks_loaded(new.http), Some(2.0));
    setup.compare();
}

#[test]
fn gateways_sharded_by_block_answer_like_prometheus() {
    let Some(setup) = Setup::start("127.0.26") else {
        return;
    };
    // promtool names blocks at random: pick a modulus that leaves blocks
    // on both sides of "hash == 0" (hashmod itself is checked against
    // Prometheus in relabel_prometheus.rs).
    let modulus = (2..20)
        .find(|m| {
            let zero = setup
                .blocks
                .iter()
                .filter(|b| skein::model::relabel::hashmod(b, *m) == 0)
                .count();
            zero > 0 && zero < setup.blocks.len()
        })
        .expect("a modulus that splits the blocks");
    let shard = |action: &str| {
        format!(
            "- action: hashmod\n  source_labels: [__block_id]\n  target_label: shard\n  modulus: {modulus}\n\
             - action: {action}\n  source_labels: [shard]\n  regex: \"0\"\n"
        )
    };
    let (keep, drop) = (shard("keep"), shard("drop"));
    let a = setup.gateway(2, &["--selector.relabel-config", &keep]);
    let b = setup.gateway(3, &["--selector.relabel-config", &drop]);
    setup.wait_for_two_groups();
    let (la, lb) = (blocks_loaded(a.http), blocks_loaded(b.http));
    let zero = setup
        .blocks
        .iter()
        .filter(|b| skein::model::relabel::hashmod(b, modulus) == 0)
        .count() as f64;
    assert_eq!(la, Some(zero));
    assert_eq!(lb, Some(setup.blocks.len() as f64 - zero));
    setup.compare();
}
