//! The history of a Prometheus HA pair in one bucket: each replica's blocks
//! carry its own external label (`replica="a"` / `"b"`), the replicas'
//! timestamps are up to a second apart as real scrapes are, and each
//! replica has a gap the other fills. A querier deduplicating over one
//! store gateway on that bucket must answer exactly what a querier
//! deduplicating the live pair (two Prometheus 2.42 with sidecars, on the
//! same samples) answers, and match a Prometheus holding the gap-free
//! series: the same number of samples in every window (never the union of
//! both replicas), the same rates, increases and resets. Loopback range
//! 127.0.21.x.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use skein_cluster_tests::history::{
    first_difference, query_matrix, ship_blocks, start_sidecar, start_store, Matrix,
};
use skein_cluster_tests::openmetrics::{mix, Dataset, OpenMetricsWriter};
use skein_cluster_tests::promql_setup::{
    import_openmetrics, start_prometheus_on_blocks_labelled, start_querier, store_healthy,
};
use skein_cluster_tests::{require_binary, wait_for, Process};

/// A 2 h boundary, so promtool cuts blocks at T0 + 2h.
const T0: i64 = 1_699_999_200_000;
const SPAN: i64 = 4 * 3_600_000;
const SCRAPE: i64 = 15_000;
const MINUTE: i64 = 60_000;
const SERIES: u64 = 8;
/// Where each replica has no samples; b's gap spans the block boundary.
const GAP_A: (i64, i64) = (T0 + 40 * MINUTE, T0 + 55 * MINUTE);
const GAP_B: (i64, i64) = (T0 + 115 * MINUTE, T0 + 126 * MINUTE);
/// Every counter restarts here on both replicas.
const RESET: i64 = T0 + 170 * MINUTE;

#[derive(Clone, Copy, PartialEq)]
enum Replica {
    A,
    B,
    /// Replica a's timestamps without a gap: the reference.
    GapFree,
}

/// A counter that grows linearly with time, so any replica's samples give
/// the same rate, and restarts at RESET.
fn counter(i: u64, t: i64) -> f64 {
    let since = if t < RESET { t - T0 } else { t - RESET };
    (i + 1) as f64 * since as f64 / 1000.0
}

fn gauge(i: u64, t: i64) -> f64 {
    20.0 + 5.0 * ((t - T0) as f64 / 600_000.0 + i as f64).sin()
}

fn write(path: &Path, replica: Replica) -> anyhow::Result<Dataset> {
    let mut w = OpenMetricsWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?));
    let times = |i: u64| -> Vec<i64> {
        (0..SPAN / SCRAPE)
            .filter_map(|k| {
                let slot = T0 + k * SCRAPE;
                let t = match replica {
                    // a scrapes 1-40 ms after the slot, b 300-1200 ms: never
                    // on a window's edge, so every 10m window holds 40.
                    Replica::A | Replica::GapFree => slot + 1 + (mix(i, k as u64) % 40) as i64,
                    Replica::B => slot + 300 + (mix(i + 1000, k as u64) % 900) as i64,
                };
                let in_gap = |(from, to): (i64, i64)| t >= from && t < to;
                let missing = match replica {
                    Replica::A => in_gap(GAP_A),
                    Replica::B => in_gap(GAP_B),
                    Replica::GapFree => false,
                };
                (!missing).then_some(t)
            })
            .collect()
    };
    w.family("ha_requests", "counter", "requests served")?;
    for i in 0..SERIES {
        let inst = format!("host-{i}");
        let points: Vec<(i64, f64)> = times(i).into_iter().map(|t| (t, counter(i, t))).collect();
        w.series(
            "ha_requests_total",
            &[("instance", &inst), ("job", "ha")],
            &points,
        )?;
    }
    w.family("ha_temperature", "gauge", "a temperature")?;
    for i in 0..SERIES {
        let inst = format!("host-{i}");
        let points: Vec<(i64, f64)> = times(i).into_iter().map(|t| (t, gauge(i, t))).collect();
        w.series(
            "ha_temperature",
            &[("instance", &inst), ("job", "ha")],
            &points,
        )?;
    }
    Ok(w.finish()?)
}

/// Whether the window (t - range, t] comes near a gap of either replica,
/// where penalty deduplication waits up to two scrape intervals before it
/// switches replicas.
fn near_gap(t: i64, range: i64) -> bool {
    [GAP_A, GAP_B]
        .iter()
        .any(|&(from, to)| t - range < to + 2 * SCRAPE && t >= from - SCRAPE)
}

const START: i64 = T0 + 30 * MINUTE;
const END: i64 = T0 + SPAN - MINUTE;
const STEP: i64 = MINUTE;

#[test]
fn ha_pair_history_in_one_bucket_is_deduplicated_like_the_live_pair() {
    let (Some(prometheus), Some(promtool)) =
        (require_binary("prometheus"), require_binary("promtool"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let mut proms = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for (n, replica, labels) in [
        (1u8, Replica::GapFree, &[("replica", "a")]),
        (2, Replica::A, &[("replica", "a")]),
        (3, Replica::B, &[("replica", "b")]),
    ] {
        let home = dir.path().join(format!("prom-{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let om = home.join("data.om");
        let dataset = write(&om, replica).unwrap();
        import_openmetrics(&promtool, &om, &home.join("data"), dataset).unwrap();
        if replica != Replica::GapFree {
            let blocks = ship_blocks(&home.join("data"), &bucket, labels).unwrap();
            assert!(blocks.len() >= 2, "{blocks:?}");
        }
        let addr = format!("127.0.21.{n}:9090");
        proms.push(start_prometheus_on_blocks_labelled(&prometheus, &home, &addr, labels).unwrap());
        addrs.push(addr.parse().unwrap());
    }
    let reference = addrs[0];

    let sidecars: Vec<Process> = [(4, addrs[1]), (5, addrs[2])]
        .iter()
        .map(|&(n, prom)| start_sidecar(&format!("sidecar-{n}"), &format!("127.0.21.{n}"), prom))
        .collect::<Result<_, _>>()
        .unwrap();
    let live_endpoints: Vec<String> = sidecars.iter().map(|s| s.grpc.to_string()).collect();
    let live = start_querier(
        "127.0.21.6",
        &live_endpoints.join(","),
        &["--query.replica-label", "replica"],
    )
    .unwrap();
    let store = start_store("127.0.21.7", &bucket, &dir.path().join("store"), &[]).unwrap();
    let history = start_querier(
        "127.0.21.8",
        &store.grpc.to_string(),
        &["--query.replica-label", "replica"],
    )
    .unwrap();
    for (q, endpoints) in [
        (&live, live_endpoints.clone()),
        (&history, vec![store.grpc.to_string()]),
    ] {
        for e in &endpoints {
            let http = q.http;
            wait_for("stores healthy", Duration::from_secs(60), || {
                store_healthy(http, e, false)
            })
            .unwrap();
        }
    }

    let window = (START, END, STEP);
    let counters = "ha_requests_total";
    let queries: [(&str, i64); 6] = [
        ("count_over_time(ha_requests_total[10m])", 10 * MINUTE),
        ("rate(ha_requests_total[5m])", 5 * MINUTE),
        ("increase(ha_requests_total[10m])", 10 * MINUTE),
        ("resets(ha_requests_total[30m])", 30 * MINUTE),
        ("ha_temperature", 5 * MINUTE),
        ("count_over_time(ha_temperature[10m])", 10 * MINUTE),
    ];
    for (q, range) in queries {
        let from_history = query_matrix(history.http, q, window, "").unwrap();
        let from_live = query_matrix(live.http, q, window, "").unwrap();
        assert!(
            from_history.warnings.is_empty(),
            "{q}: {:?}",
            from_history.warnings
        );
        assert_eq!(from_history.series.len(), SERIES as usize, "{q}");
        if let Some(d) = first_difference(&from_history, &from_live) {
            panic!("{q}: history and live pair differ: {d}");
        }
        // Values compare with the reference only where replicas sample at
        // the same instants (counts, resets) or the values are linear in
        // time (counters).
        if q.starts_with("ha_temperature") {
            continue;
        }
        let want = query_matrix(reference, q, window, "").unwrap();
        compare_with_reference(q, range, &from_history, &want);
        eprintln!(
            "{q}: {} points equal the live pair's and Prometheus' on the gap-free series",
            from_history.samples()
        );
    }

    // Without deduplication each replica is its own series, with its label.
    let q = format!("count_over_time({counters}[10m])");
    let raw = query_matrix(history.http, &q, window, "dedup=false").unwrap();
    assert_eq!(
        raw.series.len(),
        2 * SERIES as usize,
        "{:?}",
        raw.series.keys()
    );
    for (k, points) in &raw.series {
        assert!(
            k.contains("\"replica\":\"a\"") || k.contains("\"replica\":\"b\""),
            "{k}"
        );
        for &(t, c) in points {
            if !near_gap(t, 10 * MINUTE) {
                assert_eq!(c, 40.0, "{k} at {t}");
            }
        }
    }
    drop(proms);
}

fn compare_with_reference(q: &str, range: i64, got: &Matrix, want: &Matrix) {
    assert_eq!(
        got.series.keys().collect::<Vec<_>>(),
        want.series.keys().collect::<Vec<_>>(),
        "{q}: series"
    );
    let is_count = q.starts_with("count_over_time");
    let mut compared = 0;
    for (k, w) in &want.series {
        let g = &got.series[k];
        assert_eq!(g.len(), w.len(), "{q} {k}: steps");
        for (&(tg, vg), &(tw, vw)) in g.iter().zip(w) {
            assert_eq!(tg, tw, "{q} {k}");
            if near_gap(tg, range) {
                // Filled from the other replica, less what the switch skips.
                if is_count {
                    assert!(
                        vg <= vw && vg >= vw - 3.0,
                        "{q} {k} at {tg}: {vg} samples where the gap-free series has {vw}"
                    );
                }
                continue;
            }
            let close = if is_count || q.starts_with("resets") {
                vg == vw
            } else {
                (vg - vw).abs() <= 1e-6 * vw.abs().max(1.0)
            };
            assert!(
                close,
                "{q} {k} at {tg}: {vg} where Prometheus on the gap-free series gives {vw}"
            );
            compared += 1;
        }
    }
    assert!(compared > 100, "{q}: only {compared} points compared");
}
