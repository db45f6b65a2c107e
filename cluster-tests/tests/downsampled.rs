//! A bucket as a Thanos compactor leaves it: every 2 h block of an HA pair
//! (`replica="a"` / `"b"`) also at 5m resolution, and the raw blocks of the
//! older half deleted (raw retention shorter than downsampled retention).
//! Through a querier deduplicating over one `skein store`:
//! - a raw query over the older half says, in a warning naming the block,
//!   that its data is held only downsampled; over the newer half it equals
//!   Prometheus 2.42 on the raw samples, with no warning;
//! - with `max_source_resolution=5m` (or `auto` and a coarse step) the whole
//!   span is read from the 5m blocks, and `max_over_time`, `min_over_time`,
//!   `sum_over_time` and `count_over_time` over whole windows equal
//!   Prometheus' answer on the raw samples exactly (counts are samples, not
//!   windows; the two replicas are deduplicated, never added up); `rate`
//!   and `increase` from the counter aggregate are close to it; `resets`
//!   and `changes`, which no aggregate can answer, read raw data only.
//!
//! Loopback range 127.0.27.x.

use std::path::Path;
use std::time::Duration;

use skein_cluster_tests::history::{query_matrix, ship_blocks, start_store, Matrix};
use skein_cluster_tests::openmetrics::{mix, unit, Dataset, OpenMetricsWriter};
use skein_cluster_tests::promql_setup::{
    import_openmetrics, start_prometheus_on_blocks, start_querier, store_healthy,
};
use skein_cluster_tests::{require_binary, wait_for};

/// A 2 h boundary (and so a 5 m one).
const T0: i64 = 1_699_999_200_000;
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;
const SPAN: i64 = 8 * HOUR;
const SCRAPE: i64 = 15_000;
const SERIES: u64 = 20;
const RES: i64 = 5 * MINUTE;
/// Raw blocks before this are deleted from the bucket.
const RAW_FROM: i64 = T0 + 4 * HOUR;
/// Counters of odd series restart here.
const RESET: i64 = T0 + 330 * MINUTE;

fn write(path: &Path) -> anyhow::Result<Dataset> {
    let mut w = OpenMetricsWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?));
    // 1-7 ms after the slot: no sample falls on a window's edge, so a
    // range ending on a 5m boundary holds whole windows.
    let times = |i: u64| {
        (0..SPAN / SCRAPE).map(move |k| T0 + k * SCRAPE + 1 + (mix(i, k as u64) % 7) as i64)
    };
    w.family("ds_temperature", "gauge", "a gauge")?;
    for i in 0..SERIES {
        let points: Vec<(i64, f64)> = times(i)
            .map(|t| {
                let v = 20.0 + 10.0 * ((t - T0) as f64 / 1_800_000.0 + i as f64).sin();
                (t, (v * 100.0).round() / 100.0 + unit(i, t as u64))
            })
            .collect();
        w.series("ds_temperature", &[("sensor", &format!("s{i}"))], &points)?;
    }
    w.family("ds_bytes", "counter", "a counter")?;
    for i in 0..SERIES {
        let mut v = 0.0;
        let points: Vec<(i64, f64)> = times(i)
            .map(|t| {
                if i % 2 == 1 && (RESET..RESET + SCRAPE).contains(&t) {
                    v = 0.0;
                }
                v += 500.0 + (unit(i + 100, t as u64) * 100.0).round();
                (t, v)
            })
            .collect();
        w.series("ds_bytes_total", &[("sensor", &format!("s{i}"))], &points)?;
    }
    Ok(w.finish()?)
}

/// Writes the 5m copy of every raw block in `bucket`, then deletes the raw
/// blocks that end at or before RAW_FROM. Returns the 5m blocks' ids.
fn compact(bucket: &Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut raw = Vec::new();
    for e in std::fs::read_dir(bucket).unwrap() {
        let path = e.unwrap().path();
        if path.join("meta.json").is_file() {
            raw.push(path);
        }
    }
    let mut downsampled = Vec::new();
    for path in raw {
        let meta = rt
            .block_on(skein::tsdb::downsample::downsample_block(
                &path, bucket, RES,
            ))
            .unwrap();
        assert_eq!(meta.resolution(), RES);
        downsampled.push(meta.ulid);
        let raw_meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.join("meta.json")).unwrap()).unwrap();
        if raw_meta["maxTime"].as_i64().unwrap() <= RAW_FROM {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    downsampled
}

#[test]
fn downsampled_history_answers_like_prometheus_on_raw_data() {
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
    let bucket = dir.path().join("bucket");
    // The same samples from both replicas of a pair, each its own blocks
    // (promtool names them anew); replica a's TSDB is the reference's.
    for replica in ["b", "a"] {
        let tsdb = home.join("data");
        if tsdb.exists() {
            std::fs::remove_dir_all(&tsdb).unwrap();
        }
        import_openmetrics(&promtool, &om, &tsdb, dataset).unwrap();
        let blocks = ship_blocks(&tsdb, &bucket, &[("replica", replica)]).unwrap();
        assert_eq!(blocks.len(), 4, "{blocks:?}");
    }
    let downsampled = compact(&bucket);
    assert_eq!(downsampled.len(), 8);
    let _prom = start_prometheus_on_blocks(&prometheus, &home, "127.0.27.9:9090").unwrap();
    let reference = "127.0.27.9:9090".parse().unwrap();

    let store = start_store("127.0.27.2", &bucket, &dir.path().join("store"), &[]).unwrap();
    let querier = start_querier(
        "127.0.27.1",
        &store.grpc.to_string(),
        &["--query.replica-label", "replica"],
    )
    .unwrap();
    let http = querier.http;
    let grpc = store.grpc.to_string();
    wait_for("the gateway healthy", Duration::from_secs(60), || {
        store_healthy(http, &grpc, false)
    })
    .unwrap();

    // Raw, over the older half: the 5m blocks are named, not silently
    // absent.
    let old = (T0 + HOUR, RAW_FROM - RES, RES);
    let got = query_matrix(http, "max_over_time(ds_temperature[1h])", old, "").unwrap();
    assert!(!got.warnings.is_empty(), "no warning for the raw-less half");
    assert!(
        got.warnings.iter().any(|w| w.contains("resolution")
            && w.contains("raw data only")
            && downsampled.iter().any(|b| w.contains(b.as_str()))),
        "{:?}",
        got.warnings
    );
    // Raw, over the newer half: Prometheus' answer, nothing to say.
    let new = (RAW_FROM + HOUR, T0 + SPAN, RES);
    for q in [
        "max_over_time(ds_temperature[1h])",
        "rate(ds_bytes_total[5m])",
        "count_over_time(ds_temperature[10m])",
    ] {
        let got = query_matrix(http, q, new, "").unwrap();
        let want = query_matrix(reference, q, new, "").unwrap();
        assert!(got.warnings.is_empty(), "{q}: {:?}", got.warnings);
        compare(q, &got, &want, 0.0);
    }

    // Up to 5m, over the whole span: every window is read from the 5m
    // blocks (the coarsest allowed, which cover it all).
    let whole = (T0 + HOUR, T0 + SPAN, RES);
    for q in [
        "max_over_time(ds_temperature[1h])",
        "min_over_time(ds_temperature[30m])",
        "sum_over_time(ds_temperature[1h])",
        "count_over_time(ds_temperature[1h])",
        "sum by () (count_over_time(ds_bytes_total[20m]))",
    ] {
        let got = query_matrix(http, q, whole, "max_source_resolution=5m").unwrap();
        let want = query_matrix(reference, q, whole, "").unwrap();
        assert!(got.warnings.is_empty(), "{q}: {:?}", got.warnings);
        compare(q, &got, &want, 0.0);
    }
    // `resets` and `changes` read raw data whatever is allowed (the
    // aggregates cannot answer them): exact where raw blocks remain, a
    // warning where they do not.
    for q in ["resets(ds_bytes_total[1h])", "changes(ds_temperature[30m])"] {
        let got = query_matrix(http, q, new, "max_source_resolution=1h").unwrap();
        let want = query_matrix(reference, q, new, "").unwrap();
        assert!(
            want.series.values().flatten().any(|p| p.1 > 0.0),
            "{q}: nothing to count"
        );
        assert!(got.warnings.is_empty(), "{q}: {:?}", got.warnings);
        compare(q, &got, &want, 0.0);
        let got = query_matrix(http, q, old, "max_source_resolution=1h").unwrap();
        assert!(
            got.warnings.iter().any(|w| w.contains("raw data only")),
            "{q}: {:?}",
            got.warnings
        );
    }

    // `auto` with a 1h step reads up to 12m: the 5m blocks.
    let hourly = (T0 + 2 * HOUR, T0 + SPAN, HOUR);
    let q = "max_over_time(ds_temperature[2h])";
    let got = query_matrix(http, q, hourly, "max_source_resolution=auto").unwrap();
    let want = query_matrix(reference, q, hourly, "").unwrap();
    assert!(got.warnings.is_empty(), "{q}: {:?}", got.warnings);
    compare(q, &got, &want, 0.0);

    // From the counter aggregate: one point every 5m instead of every 15s,
    // so the extrapolation to the range's edges differs. Ranges that hold
    // no block boundary are within 1%; where a range holds one, the boundary's extra
    // point (a chunk's first raw sample, kept so resets across chunks are
    // seen) shortens the average interval and with it the extrapolation, as
    // in Thanos, by up to about a tenth of a 30m increase. Resets are
    // carried (the odd series restart).
    for q in ["rate(ds_bytes_total[1h])", "increase(ds_bytes_total[30m])"] {
        let got = query_matrix(http, q, whole, "max_source_resolution=5m").unwrap();
        let want = query_matrix(reference, q, whole, "").unwrap();
        assert!(got.warnings.is_empty(), "{q}: {:?}", got.warnings);
        let p95 = compare(q, &got, &want, 0.12);
        assert!(
            p95 <= 0.01,
            "{q}: 95th percentile relative difference {p95}"
        );
    }
    drop(store);
}

/// `got` has the series and steps of `want`, each value within `rel` of
/// Prometheus' (exactly, up to float noise, when 0). Returns the median
/// relative difference.
fn compare(q: &str, got: &Matrix, want: &Matrix, rel: f64) -> f64 {
    assert_eq!(
        got.series.keys().collect::<Vec<_>>(),
        want.series.keys().collect::<Vec<_>>(),
        "{q}: series"
    );
    assert!(!want.series.is_empty(), "{q}: Prometheus has no series");
    let mut errors = Vec::with_capacity(want.samples());
    for (k, w) in &want.series {
        let g = &got.series[k];
        let steps = |m: &[(i64, f64)]| m.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(steps(g), steps(w), "{q} {k}: steps");
        for (&(t, vg), &(_, vw)) in g.iter().zip(w) {
            let err = (vg - vw).abs() / vw.abs().max(1.0);
            errors.push(err);
            assert!(
                err <= rel.max(1e-9),
                "{q} {k} at {t}: {vg} where Prometheus on the raw samples gives {vw}"
            );
        }
    }
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    eprintln!(
        "{q}: {} points, relative difference median {median:.2e}, largest {:.2e}",
        errors.len(),
        errors.last().copied().unwrap_or(0.0)
    );
    median
}
