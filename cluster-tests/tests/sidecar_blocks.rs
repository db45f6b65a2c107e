//! A sidecar reading Prometheus' completed blocks from its data directory.
//!
//! A real Prometheus 2.42 holds a day of history in blocks made by promtool
//! and scrapes itself every second, so one series (its own `up`) lives
//! both in the blocks and in the head. Three sidecars front it:
//! - `disk` reads the blocks from Prometheus' data directory;
//! - `remote` has `--tsdb.read-blocks=false` and reads everything over
//!   remote read, Prometheus' own answer;
//! - `foreign` is pointed at the data directory of another Prometheus
//!   with the same series and other samples: its blocks must fail the
//!   check against Prometheus and never be served.
//!
//! About a minute after start Prometheus compacts the 2h blocks into
//! bigger ones and deletes them while the test keeps asking: every answer
//! of `disk` and `foreign` must hold exactly the samples of `remote`, and
//! PromQL through a querier over `disk` must answer as Prometheus does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skein::model::chunk::xor::decode_into;
use skein::model::time::now_ms;
use skein::model::{MatchOp, Matcher, Sample};
use skein::store::{ClientConfig, RemoteStore, SeriesFrame, SeriesRequest, Store};
use skein::tsdb::meta::{is_ulid, BlockMeta};
use skein_cluster_tests::openmetrics::OpenMetricsWriter;
use skein_cluster_tests::promql_diff::{compare, parse_answer};
use skein_cluster_tests::promql_setup::{import_openmetrics, range, start_querier};
use skein_cluster_tests::{http_get, require_binary, start_prometheus_with, wait_for, Process};

const H: i64 = 3_600_000;
const STEP: i64 = 15_000;

/// History from `start` to `end` every 15 s: the self-scrape's `up`, 20
/// counters with resets and 10 gauges. `salt` changes every value.
fn write_history(
    path: &Path,
    prom: &str,
    (start, end): (i64, i64),
    salt: f64,
) -> anyhow::Result<skein_cluster_tests::openmetrics::Dataset> {
    let f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = OpenMetricsWriter::new(f);
    let times: Vec<i64> = (0..)
        .map(|i| start + i * STEP)
        .take_while(|t| *t <= end)
        .collect();
    w.family("up", "gauge", "Scrape health.")?;
    let pts: Vec<(i64, f64)> = times.iter().map(|&t| (t, 1.0)).collect();
    w.series("up", &[("instance", prom), ("job", "skein")], &pts)?;
    w.family("skein_test_requests", "counter", "Requests.")?;
    for s in 0..20 {
        let inst = format!("i{s:02}");
        let mut v = 0.0;
        let pts: Vec<(i64, f64)> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                // A reset every 700 samples, at a different place per series.
                if (i + s * 37) % 700 == 0 {
                    v = 0.0;
                }
                v += ((i * 7 + s) % 13) as f64 + salt;
                (t, v)
            })
            .collect();
        w.series("skein_test_requests_total", &[("instance", &inst)], &pts)?;
    }
    w.family("skein_test_temperature", "gauge", "Temperature.")?;
    for s in 0..10 {
        let inst = format!("i{s:02}");
        let pts: Vec<(i64, f64)> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, 20.0 + ((i * 31 + s * 17) % 97) as f64 / 8.0 + salt))
            .collect();
        w.series("skein_test_temperature", &[("instance", &inst)], &pts)?;
    }
    Ok(w.finish()?)
}

type Answer = BTreeMap<String, Vec<(i64, u64)>>;

/// Every series of the test's metrics in `[mint, maxt]`, decoded.
async fn series(store: &RemoteStore, mint: i64, maxt: i64) -> Result<Answer, String> {
    let req = SeriesRequest::new(
        mint,
        maxt,
        vec![Matcher::new(MatchOp::Regex, "__name__", "up|skein_test_.*").unwrap()],
    );
    let mut out = Answer::new();
    let mut s = store.series(req).await.map_err(|e| e.to_string())?;
    let mut buf: Vec<Sample> = Vec::new();
    while let Some(f) = s.next().await {
        match f.map_err(|e| e.to_string())? {
            SeriesFrame::Series(x) => {
                let mut samples = Vec::new();
                for c in &x.chunks {
                    buf.clear();
                    decode_into(&c.data, &mut buf).map_err(|e| e.to_string())?;
                    samples.extend(
                        buf.iter()
                            .filter(|p| p.t >= mint && p.t <= maxt)
                            .map(|p| (p.t, p.v.to_bits())),
                    );
                }
                if out.insert(x.labels.to_string(), samples).is_some() {
                    return Err(format!("{} sent twice", x.labels));
                }
            }
            SeriesFrame::Warning(w) => return Err(format!("warning: {w}")),
        }
    }
    Ok(out)
}

fn diff(name: &str, want: &Answer, got: &Answer) -> Option<String> {
    if want == got {
        return None;
    }
    for (l, s) in want {
        match got.get(l) {
            None => return Some(format!("{name}: {l} missing")),
            Some(g) if g != s => {
                let first = s.iter().zip(g).position(|(a, b)| a != b);
                return Some(format!(
                    "{name}: {l}: {} samples, want {}; first difference at {first:?}",
                    g.len(),
                    s.len()
                ));
            }
            Some(_) => {}
        }
    }
    Some(format!(
        "{name}: extra series {:?}",
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .collect::<Vec<_>>()
    ))
}

fn metric(p: &Process, name_and_labels: &str) -> f64 {
    skein_cluster_tests::metric_at(p.http, name_and_labels)
}

/// ULIDs and compaction levels of the block directories in `dir`.
fn blocks_in(dir: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_ulid(&name) {
            continue;
        }
        if let Ok(text) = std::fs::read(e.path().join("meta.json")) {
            if let Ok(m) = BlockMeta::parse(&name, &text) {
                out.insert(name, m.compaction.level);
            }
        }
    }
    out
}

fn sidecar(name: &str, ip: &str, prom: &str, extra: &[&str]) -> Process {
    let listen = format!("{ip}:0");
    let url = format!("http://{prom}");
    let mut args = vec![
        "sidecar",
        "--prometheus.url",
        &url,
        "--prometheus.refresh-interval",
        "1s",
        "--grpc-address",
        &listen,
        "--http-address",
        &listen,
        "--cluster.disable",
    ];
    args.extend_from_slice(extra);
    Process::start(name, &args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_reads_blocks_from_disk_through_compaction() {
    let (Some(prometheus), Some(promtool)) =
        (require_binary("prometheus"), require_binary("promtool"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prom_addr = "127.0.34.1:9090";
    let prom: SocketAddr = prom_addr.parse().unwrap();
    // A day of history ending 4 h ago (so no block overlaps the head),
    // aligned to whole hours.
    let end = (now_ms() - 4 * H) / H * H;
    let start = end - 24 * H;
    let om = dir.path().join("history.om");
    let ds = write_history(&om, prom_addr, (start, end), 0.0).unwrap();
    let data = dir.path().join("prom").join("data");
    import_openmetrics(&promtool, &om, &data, ds).unwrap();
    // Another Prometheus' directory: same series, other samples.
    let other_om = dir.path().join("other.om");
    let other_ds = write_history(&other_om, prom_addr, (start, end), 0.5).unwrap();
    let other = dir.path().join("other");
    import_openmetrics(&promtool, &other_om, &other, other_ds).unwrap();
    let first_blocks = blocks_in(&data);
    assert!(first_blocks.len() >= 10, "{first_blocks:?}");

    let _prom = start_prometheus_with(
        &prometheus,
        &dir.path().join("prom"),
        prom_addr,
        "a",
        prom,
        &[
            "--storage.tsdb.retention.time=100y",
            "--log.level=warn",
            "--web.enable-admin-api",
        ],
    )
    .unwrap();
    wait_for("prometheus to be ready", Duration::from_secs(60), || {
        http_get(prom, "/-/ready").is_ok_and(|(s, _)| s == 200)
    })
    .unwrap();

    let data_arg = data.to_string_lossy().to_string();
    let other_arg = other.to_string_lossy().to_string();
    let disk = sidecar("disk", "127.0.34.2", prom_addr, &["--tsdb.path", &data_arg]);
    let remote = sidecar(
        "remote",
        "127.0.34.3",
        prom_addr,
        &["--tsdb.path", &data_arg, "--tsdb.read-blocks=false"],
    );
    let foreign = sidecar(
        "foreign",
        "127.0.34.4",
        prom_addr,
        &["--tsdb.path", &other_arg],
    );
    let querier = start_querier(
        "127.0.34.5",
        &disk.grpc.to_string(),
        &["--query.replica-label", "replica"],
    )
    .unwrap();

    wait_for(
        "the disk sidecar to serve blocks",
        Duration::from_secs(60),
        || metric(&disk, "skein_sidecar_disk_blocks") >= 10.0,
    )
    .unwrap();
    // The foreign sidecar has looked at every block (served or not): its
    // answers are compared first, its metrics at the end.
    wait_for(
        "the foreign sidecar to sync its directory",
        Duration::from_secs(60),
        || {
            metric(
                &foreign,
                "skein_sidecar_disk_blocks_rejected{reason=\"not_verified\"}",
            ) + metric(&foreign, "skein_sidecar_disk_blocks")
                >= 10.0
        },
    )
    .unwrap();
    let split = metric(&disk, "skein_sidecar_disk_split_timestamp_seconds");
    assert_eq!(
        (split * 1000.0).round() as i64,
        end + 1,
        "split at the end of the blocks"
    );

    let connect = |p: &Process| {
        RemoteStore::connect_lazy(&p.grpc.to_string(), &ClientConfig::default()).unwrap()
    };
    let (disk_api, remote_api, foreign_api) = (connect(&disk), connect(&remote), connect(&foreign));

    let queries = [
        "rate(skein_test_requests_total[5m])",
        "sum(increase(skein_test_requests_total[1h]))",
        "max_over_time(skein_test_temperature[30m])",
        "count_over_time(up[2h])",
        "resets(skein_test_requests_total[3h])",
    ];
    let began = Instant::now();
    let mut compacted_at: Option<Instant> = None;
    let mut rounds = 0;
    let mut promql_checks = 0;
    loop {
        let now = now_ms() - 3_000;
        // From before the history to now: blocks, the split, the head.
        let ranges = [
            (start - H, now),
            (start + 5 * H + 7_000, end - 3 * H),
            (end - H, now),
        ];
        for (mint, maxt) in ranges {
            // A range reaching into the head can see a scrape appended
            // between two reads (a loaded machine commits a scrape late):
            // such a difference must be gone when read again a moment
            // later; a wrong answer from disk stays.
            let mut tries = if maxt > end { 2 } else { 1 };
            loop {
                tries -= 1;
                let want = series(&remote_api, mint, maxt).await.unwrap();
                assert!(!want.is_empty());
                let got_disk = series(&disk_api, mint, maxt).await.unwrap();
                let got_foreign = series(&foreign_api, mint, maxt).await.unwrap();
                let d =
                    diff("disk", &want, &got_disk).or_else(|| diff("foreign", &want, &got_foreign));
                match d {
                    None => break,
                    Some(d) if tries == 0 => panic!("round {rounds}, [{mint}, {maxt}]: {d}"),
                    Some(d) => {
                        eprintln!("round {rounds}, [{mint}, {maxt}]: {d}; reading again");
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                }
            }
        }
        // PromQL over the history, through a querier on the disk sidecar,
        // against Prometheus itself.
        let q = queries[rounds % queries.len()];
        let (qs, qe) = (start + 2 * H, end);
        let want = range(prom, q, qs, qe, 60_000, Duration::from_secs(30)).unwrap();
        let got = range(querier.http, q, qs, qe, 60_000, Duration::from_secs(30)).unwrap();
        let d = compare(
            &parse_answer(want.status, &want.body),
            &parse_answer(got.status, &got.body),
            false,
            ("prometheus", "skein"),
            5,
        );
        assert!(d.is_empty(), "{q}: {d:#?}");
        promql_checks += 1;
        rounds += 1;

        let blocks = blocks_in(&data);
        if compacted_at.is_none()
            && blocks.values().any(|l| *l > 1)
            && blocks.len() < first_blocks.len()
        {
            eprintln!(
                "prometheus compacted: {} blocks, was {}",
                blocks.len(),
                first_blocks.len()
            );
            compacted_at = Some(Instant::now());
        }
        match compacted_at {
            // Some rounds after the compaction, once the sidecar serves
            // the new blocks.
            Some(at) if at.elapsed() > Duration::from_secs(10) => {
                let served = metric(&disk, "skein_sidecar_disk_blocks");
                if served as usize == blocks.len() {
                    break;
                }
            }
            _ => {}
        }
        assert!(
            began.elapsed() < Duration::from_secs(240),
            "no compaction by Prometheus seen (blocks now {blocks:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{rounds} rounds, {promql_checks} PromQL comparisons");
    assert!(
        metric(
            &disk,
            "skein_sidecar_series_requests_total{source=\"both\"}"
        ) > 0.0
    );
    assert!(
        metric(
            &disk,
            "skein_sidecar_series_requests_total{source=\"disk\"}"
        ) > 0.0
    );
    assert_eq!(metric(&remote, "skein_sidecar_disk_blocks"), 0.0);
    assert_eq!(metric(&foreign, "skein_sidecar_disk_blocks"), 0.0);
    assert!(
        metric(
            &foreign,
            "skein_sidecar_disk_blocks_rejected{reason=\"not_verified\"}"
        ) >= 5.0
    );
    assert!(
        metric(
            &foreign,
            "skein_sidecar_series_requests_total{source=\"disk\"}"
        ) == 0.0
    );
    // The compacted blocks are served with the same split.
    let split = metric(&disk, "skein_sidecar_disk_split_timestamp_seconds");
    assert_eq!((split * 1000.0).round() as i64, end + 1);

    // Series deleted through Prometheus' admin API: tombstones appear in
    // the blocks; the disk sidecar stops reading them and answers without
    // the deleted series, as Prometheus does.
    let (status, body) = skein_cluster_tests::http_request(
        prom,
        "POST",
        "/api/v1/admin/tsdb/delete_series?match[]=skein_test_temperature%7Binstance%3D%22i03%22%7D",
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    wait_for(
        "the tombstoned blocks to be left to remote read",
        Duration::from_secs(30),
        || {
            metric(
                &disk,
                "skein_sidecar_disk_blocks_rejected{reason=\"tombstones\"}",
            ) >= 1.0
        },
    )
    .unwrap();
    let now = now_ms() - 3_000;
    let want = series(&remote_api, start - H, now).await.unwrap();
    assert!(
        !want
            .keys()
            .any(|k| k.contains("skein_test_temperature") && k.contains("\"i03\"")),
        "prometheus still answers the deleted series"
    );
    let got = series(&disk_api, start - H, now).await.unwrap();
    if let Some(d) = diff("disk after deletion", &want, &got) {
        panic!("{d}");
    }
    let q = "count(skein_test_temperature)";
    let want = range(prom, q, start + 2 * H, end, 60_000, Duration::from_secs(30)).unwrap();
    let got = range(
        querier.http,
        q,
        start + 2 * H,
        end,
        60_000,
        Duration::from_secs(30),
    )
    .unwrap();
    let d = compare(
        &parse_answer(want.status, &want.body),
        &parse_answer(got.status, &got.body),
        false,
        ("prometheus", "skein"),
        5,
    );
    assert!(d.is_empty(), "{q} after deletion: {d:#?}");
}
