//! The PromQL engine over an in-memory store, with results worked out by
//! hand. The differential suite (cluster-tests/tests/promql_diff.rs)
//! compares against real Prometheus; these pin the rules it relies on.

use skein::error::ErrorCode;
use skein::model::{Chunk, Labels, Sample, Series, STALE_NAN_BITS};
use skein::promql::{Engine, EngineConfig, Value};

#[path = "support/mem_engine.rs"]
mod mem_engine;
use mem_engine::{engine_with, opts};

const S: i64 = 1000;

fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
    let samples: Vec<Sample> = points
        .iter()
        .map(|&(t, v)| Sample { t: t * S, v })
        .collect();
    Series {
        labels: Labels::from_pairs(labels.iter().copied()).unwrap(),
        chunks: Chunk::encode_xor(&samples, 120).unwrap(),
    }
}

/// Every 15 s from 0 to `end` seconds.
fn every15(end: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..=end / 15).map(|i| (i * 15, f(i * 15))).collect()
}

fn engine() -> Engine {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut stopped = every15(60, |t| (t / 15 + 1) as f64);
    stopped.push((75, stale));
    engine_with(
        vec![
            series(
                &[("__name__", "reqs"), ("job", "api"), ("code", "200")],
                &every15(600, |t| (t / 15) as f64),
            ),
            series(
                &[("__name__", "reqs"), ("job", "api"), ("code", "500")],
                // Resets to 0 at 300 s.
                &every15(600, |t| ((t % 300) / 15) as f64 * 2.0),
            ),
            series(
                &[("__name__", "reqs"), ("job", "web"), ("code", "200")],
                &every15(600, |_| 7.0),
            ),
            series(&[("__name__", "stopped")], &stopped),
            series(&[("__name__", "ends")], &every15(60, |_| 1.0)),
            series(
                &[("__name__", "info"), ("job", "api"), ("team", "a")],
                &every15(600, |_| 1.0),
            ),
            series(
                &[("__name__", "lat_bucket"), ("le", "0.1")],
                &every15(600, |_| 10.0),
            ),
            series(
                &[("__name__", "lat_bucket"), ("le", "1")],
                &every15(600, |_| 20.0),
            ),
            series(
                &[("__name__", "lat_bucket"), ("le", "+Inf")],
                &every15(600, |_| 20.0),
            ),
        ],
        EngineConfig::default(),
    )
}

async fn instant(e: &Engine, q: &str, t: i64) -> Vec<(String, f64)> {
    match e.instant(q, t * S, opts()).await.unwrap().value {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> =
                v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Value::Scalar { v, .. } => vec![("scalar".into(), v)],
        other => panic!("{q}: unexpected {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0) || (a.is_nan() && b.is_nan())
}

fn assert_values(q: &str, got: &[(String, f64)], want: &[(&str, f64)]) {
    assert_eq!(got.len(), want.len(), "{q}: got {got:?}");
    for ((gl, gv), (wl, wv)) in got.iter().zip(want) {
        assert_eq!(gl, wl, "{q}");
        assert!(close(*gv, *wv), "{q}: {gl} = {gv}, want {wv}");
    }
}

#[tokio::test]
async fn selectors_follow_lookback_and_staleness() {
    let e = engine();
    assert_values(
        "stopped",
        &instant(&e, "stopped", 70).await,
        &[(r#"{__name__="stopped"}"#, 5.0)],
    );
    // The staleness marker at 75 s ends the series at once.
    assert!(instant(&e, "stopped", 80).await.is_empty());
    // Without a marker, the last sample is seen for five minutes.
    assert_eq!(instant(&e, "ends", 360).await.len(), 1);
    assert!(instant(&e, "ends", 361).await.is_empty());
    // ... or for as long as the query's lookback_delta says.
    let with_lookback = |ms: i64| {
        let mut o = opts();
        o.lookback_ms = Some(ms);
        o
    };
    let n = |v: Value| match v {
        Value::Vector(v) => v.len(),
        other => panic!("unexpected {other:?}"),
    };
    let q = e.instant("ends", 361 * S, with_lookback(600_000)).await;
    assert_eq!(n(q.unwrap().value), 1);
    let q = e.instant("ends", 100 * S, with_lookback(10_000)).await;
    assert_eq!(n(q.unwrap().value), 0);
    assert_values(
        "offset",
        &instant(&e, r#"reqs{code="200",job="api"} offset 1m"#, 600).await,
        &[(r#"{__name__="reqs", code="200", job="api"}"#, 36.0)],
    );
    assert_values(
        "@",
        &instant(&e, r#"reqs{code="200",job="api"} @ 150"#, 600).await,
        &[(r#"{__name__="reqs", code="200", job="api"}"#, 10.0)],
    );
}

#[tokio::test]
async fn rates_extrapolate_and_handle_resets() {
    let e = engine();
    // 1 per 15 s, window fully covered: 4 per minute.
    assert_values(
        "rate",
        &instant(&e, r#"rate(reqs{code="200",job="api"}[1m])"#, 600).await,
        &[(r#"{code="200", job="api"}"#, 4.0 / 60.0)],
    );
    // The reset at 300 s does not count as a drop.
    assert_values(
        "increase",
        &instant(&e, r#"increase(reqs{code="500"}[1m])"#, 330).await,
        // 36 -> 38, reset, 0 -> 2 -> 4.
        &[(r#"{code="500", job="api"}"#, 6.0)],
    );
    assert_values(
        "resets",
        &instant(&e, r#"resets(reqs{code="500"}[10m])"#, 600).await,
        &[(r#"{code="500", job="api"}"#, 2.0)],
    );
    assert_values(
        "last_over_time keeps the name",
        &instant(&e, r#"last_over_time(reqs{job="web"}[1m])"#, 600).await,
        &[(r#"{__name__="reqs", code="200", job="web"}"#, 7.0)],
    );
}

#[tokio::test]
async fn aggregations_and_matching() {
    let e = engine();
    assert_values(
        "sum by",
        &instant(&e, "sum by (job) (reqs)", 600).await,
        &[(r#"{job="api"}"#, 40.0 + 0.0), (r#"{job="web"}"#, 7.0)],
    );
    assert_values(
        "count without",
        &instant(&e, "count without (code) (reqs)", 600).await,
        &[(r#"{job="api"}"#, 2.0), (r#"{job="web"}"#, 1.0)],
    );
    assert_values(
        "topk",
        &instant(&e, "topk(1, reqs)", 600).await,
        &[(r#"{__name__="reqs", code="200", job="api"}"#, 40.0)],
    );
    assert_values(
        "group_left",
        &instant(&e, "reqs * on (job) group_left (team) info", 600).await,
        &[
            (r#"{code="200", job="api", team="a"}"#, 40.0),
            (r#"{code="500", job="api", team="a"}"#, 0.0),
        ],
    );
    assert_values(
        "unless",
        &instant(&e, "reqs unless on (job) info", 600).await,
        &[(r#"{__name__="reqs", code="200", job="web"}"#, 7.0)],
    );
    assert_values(
        "bool",
        &instant(&e, r#"reqs{job="web"} > bool 5"#, 600).await,
        &[(r#"{code="200", job="web"}"#, 1.0)],
    );
    assert_values(
        "absent",
        &instant(&e, r#"absent(nothing{job="x", a=~"b"})"#, 600).await,
        &[(r#"{job="x"}"#, 1.0)],
    );
    assert_values(
        "histogram_quantile",
        &instant(&e, "histogram_quantile(0.75, lat_bucket)", 600).await,
        &[("{}", 0.55)],
    );
    assert_values(
        "subquery",
        &instant(
            &e,
            r#"max_over_time(reqs{code="200",job="api"}[2m:30s])"#,
            600,
        )
        .await,
        &[(r#"{code="200", job="api"}"#, 40.0)],
    );
    assert_values(
        "scalar",
        &instant(&e, "2 ^ 3 + 1", 0).await,
        &[("scalar", 9.0)],
    );
}

#[tokio::test]
async fn range_queries_return_sorted_matrices() {
    let e = engine();
    let out = e
        .range("sum by (code) (reqs)", 0, 600 * S, 60 * S, opts())
        .await
        .unwrap();
    let Value::Matrix(m) = out.value else {
        panic!("not a matrix")
    };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].labels.to_string(), r#"{code="200"}"#);
    assert_eq!(m[0].points.len(), 11);
    assert_eq!(m[0].points[10], (600 * S, 47.0));
    let out = e.range("time()", 0, 120 * S, 60 * S, opts()).await.unwrap();
    let Value::Matrix(m) = out.value else {
        panic!("not a matrix")
    };
    assert_eq!(
        m[0].points,
        vec![(0, 0.0), (60 * S, 60.0), (120 * S, 120.0)]
    );
}

#[tokio::test]
async fn errors_have_prometheus_types() {
    let e = engine();
    for (q, code) in [
        ("sum(", ErrorCode::BadData),
        ("nope(reqs)", ErrorCode::BadData),
        ("rate(reqs[5x])", ErrorCode::BadData),
        (r#"{__name__=~".*"}"#, ErrorCode::BadData),
        ("reqs + on (job) reqs", ErrorCode::Execution),
    ] {
        let err = e.instant(q, 600 * S, opts()).await.unwrap_err();
        assert_eq!(err.code, code, "{q}: {err}");
    }
    let err = e
        .range(r#""text""#, 0, 60 * S, 15 * S, opts())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadData);

    let small = engine_with(
        vec![series(&[("__name__", "x")], &every15(600, |t| t as f64))],
        EngineConfig {
            max_samples: 10,
            ..EngineConfig::default()
        },
    );
    let err = small
        .range("x", 0, 600 * S, 15 * S, opts())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Execution);
    assert!(err.message.contains("too many samples"), "{err}");
}

/// A step of 1 ms over a year: about 3e10 steps, each a sample in memory.
/// The engine once allocated them all and the process died; it must refuse
/// the query as Prometheus does, naming the limit.
#[tokio::test]
async fn grids_larger_than_max_samples_are_refused_before_allocation() {
    let e = engine();
    for q in [
        "max_over_time(vector(1)[1y:1ms])",
        "sum_over_time(vector(time())[52w:1ms])",
        "count_over_time(reqs[1y:1ms])",
        "max_over_time(max_over_time(vector(pi())[1d:1s])[1y:1ms])",
    ] {
        let err = e.instant(q, 600 * S, opts()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Execution, "{q}: {err:?}");
        assert!(
            err.message.contains("too many samples") && err.message.contains("--query.max-samples"),
            "{q}: {}",
            err.message
        );
    }
    // A range query's own grid is bounded the same way.
    let err = e
        .range("time()", 0, 1_000_000_000_000, 1, opts())
        .await
        .unwrap_err();
    assert!(err.message.contains("too many samples"), "{}", err.message);
    // Within the limit the same shape answers: 2.42's windows hold both
    // ends, so 601 steps.
    let small = instant(&e, "count_over_time(vector(1)[10m:1s])", 600).await;
    assert_values("small subquery", &small, &[("{}", 601.0)]);
}

/// 100 KB of parentheses once overflowed the stack and ended the process.
#[tokio::test]
async fn deeply_nested_queries_are_refused() {
    let e = engine();
    let parens = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
    let plus = format!("1{}", "+1".repeat(50_000));
    let calls = format!("{}vector(1){}", "abs(".repeat(20_000), ")".repeat(20_000));
    for q in [parens, plus, calls] {
        let err = e.instant(&q, 600 * S, opts()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::BadData, "{err:?}");
        assert!(err.message.contains("nests too deeply"), "{}", err.message);
    }
}

/// Queries just inside the depth limit are answered, and rightly, on the
/// runtime's ordinary threads.
#[tokio::test]
async fn queries_at_the_depth_limit_are_answered() {
    use skein::promql::depth::{depth_bound, MAX_DEPTH};
    let e = engine();
    let n = MAX_DEPTH - 3;
    let cases = [
        (format!("{}vector(2){}", "(".repeat(n), ")".repeat(n)), 2.0),
        (format!("vector(0){}", " + 1".repeat(n)), n as f64),
        (
            format!("{}vector(-3){}", "abs(".repeat(n), ")".repeat(n)),
            3.0,
        ),
        (
            format!("{}vector(5){}", "sum(".repeat(n / 2), ")".repeat(n / 2)),
            5.0,
        ),
        (
            format!(
                "{}reqs{{code=\"200\", job=\"api\"}}{}",
                "max_over_time((".repeat(n / 4),
                ")[1m:30s])".repeat(n / 4)
            ),
            40.0,
        ),
    ];
    for (q, want) in cases {
        assert!(depth_bound(&q) <= MAX_DEPTH, "{}", depth_bound(&q));
        let got = instant(&e, &q, 600).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(close(got[0].1, want), "{} != {want}", got[0].1);
    }
}

/// Times and durations near the ends of the i64 range are answered or
/// refused, never wrapped into a wrong window or a panic.
#[tokio::test]
async fn extreme_times_and_durations_do_not_wrap() {
    let e = engine();
    for (q, t) in [
        ("reqs", i64::MAX),
        ("reqs", i64::MIN),
        ("rate(reqs[300000000y])", 600 * S),
        ("reqs offset 292y", i64::MIN + 1),
        ("reqs offset -292y", i64::MAX - 1),
        ("max_over_time(reqs[5m:1m] offset -292y)", i64::MAX - 1),
        ("count_over_time(reqs[5m] @ 9223372036854)", 600 * S),
    ] {
        match e.instant(q, t, opts()).await {
            Ok(out) => match out.value {
                Value::Vector(v) => assert!(v.iter().all(|s| s.v.is_finite()), "{q} at {t}: {v:?}"),
                other => panic!("{q}: {other:?}"),
            },
            Err(err) => assert_ne!(err.code, ErrorCode::Internal, "{q}: {err:?}"),
        }
    }
    // A range across all of i64 time with a step that keeps the points few.
    match e
        .range(
            "vector(1)",
            i64::MIN + 1,
            i64::MAX - 1,
            i64::MAX / 4,
            opts(),
        )
        .await
    {
        Ok(out) => assert!(matches!(out.value, Value::Matrix(_))),
        Err(err) => assert_ne!(err.code, ErrorCode::Internal, "{err:?}"),
    }
    // Nothing was ever stored that far out: the answers there are empty.
    let got = e.instant("reqs", i64::MAX, opts()).await.unwrap();
    assert!(matches!(got.value, Value::Vector(ref v) if v.is_empty()));
}

/// What a query fetches is counted as it arrives and refused past
/// `--query.max-fetched-bytes`, before anything is decoded.
#[tokio::test]
async fn fetched_bytes_are_bounded() {
    let data = (0..50)
        .map(|i| {
            let name = format!("s{i}");
            series(
                &[("__name__", "x"), ("i", &name)],
                &every15(600, |t| t as f64),
            )
        })
        .collect::<Vec<_>>();
    let limited = |max_fetched_bytes| {
        engine_with(
            data.clone(),
            EngineConfig {
                max_fetched_bytes,
                ..EngineConfig::default()
            },
        )
    };
    let err = limited(2_000)
        .instant("count(x)", 600 * S, opts())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Execution);
    assert!(
        err.message.contains("--query.max-fetched-bytes"),
        "{}",
        err.message
    );
    // A selector that matches little stays under it.
    let one = limited(2_000)
        .instant("x{i=\"s3\"}", 600 * S, opts())
        .await
        .unwrap();
    assert!(matches!(one.value, Value::Vector(ref v) if v.len() == 1));
    for unlimited in [0, 1 << 30] {
        let all = instant(&limited(unlimited), "count(x)", 600).await;
        assert_values("count(x)", &all, &[("{}", 50.0)]);
    }
}

/// Grouping as Prometheus groups: `count_values` writes the value label
/// before grouping (so it can replace a grouping label), and
/// `histogram_quantile` tells metrics apart by name though its output
/// drops the name (two names, one label set: an error, not a merged
/// quantile).
#[tokio::test]
async fn value_labels_and_names_group_as_in_prometheus() {
    let flat = |v: f64| every15(600, move |_| v);
    let e = engine_with(
        vec![
            series(
                &[("__name__", "v"), ("job", "api"), ("instance", "a")],
                &flat(3.0),
            ),
            series(
                &[("__name__", "v"), ("job", "api"), ("instance", "b")],
                &flat(3.0),
            ),
            series(
                &[("__name__", "v"), ("job", "web"), ("instance", "a")],
                &flat(3.0),
            ),
            series(
                &[("__name__", "v"), ("job", "web"), ("instance", "c")],
                &flat(4.0),
            ),
            series(&[("__name__", "ta_bucket"), ("le", "1")], &flat(2.0)),
            series(&[("__name__", "ta_bucket"), ("le", "+Inf")], &flat(4.0)),
            series(&[("__name__", "tb_bucket"), ("le", "1")], &flat(1.0)),
            series(&[("__name__", "tb_bucket"), ("le", "+Inf")], &flat(4.0)),
        ],
        EngineConfig::default(),
    );
    for q in [
        r#"count_values without (instance) ("job", v)"#,
        r#"count_values by (job) ("job", v)"#,
    ] {
        assert_values(
            q,
            &instant(&e, q, 600).await,
            &[(r#"{job="3"}"#, 3.0), (r#"{job="4"}"#, 1.0)],
        );
    }
    let q = r#"count_values without (job) ("job", v)"#;
    assert_values(
        q,
        &instant(&e, q, 600).await,
        &[
            (r#"{instance="a"}"#, 2.0),
            (r#"{instance="b"}"#, 1.0),
            (r#"{instance="c"}"#, 1.0),
        ],
    );
    let q = r#"count_values("value", v)"#;
    assert_values(
        q,
        &instant(&e, q, 600).await,
        &[(r#"{value="3"}"#, 3.0), (r#"{value="4"}"#, 1.0)],
    );
    let twins = r#"histogram_quantile(0.5, {__name__=~"t(a|b)_bucket"})"#;
    let err = e.instant(twins, 600 * S, opts()).await.unwrap_err();
    assert!(err.message.contains("same labelset"), "{}", err.message);
    // One name: a quantile.
    assert_values(
        "one name",
        &instant(&e, "histogram_quantile(0.5, ta_bucket)", 600).await,
        &[("{}", 1.0)],
    );
}
