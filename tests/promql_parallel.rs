//! Large selectors are split across threads (`--query.eval-threads`); the
//! answers must be those of one thread, bit for bit, for every function
//! that runs per series, and errors must stay the same.

use skein::model::{Chunk, Labels, Sample, Series, STALE_NAN_BITS};
use skein::promql::{parallel_parts, set_eval_threads, Engine, EngineConfig};

#[path = "support/mem_engine.rs"]
mod mem_engine;
use mem_engine::{engine_with, opts};

const S: i64 = 1000;
const SERIES: usize = 240;
/// Samples per series: 15 s apart, about 25 chunks.
const POINTS: usize = 3_000;

fn mix(a: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

fn data() -> Vec<Series> {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut out = Vec::new();
    for s in 0..SERIES {
        let mut samples = Vec::with_capacity(POINTS);
        let mut v = 0.0;
        for i in 0..POINTS {
            let r = mix((s * POINTS + i) as u64);
            // Gaps, a stale marker now and then, counter resets.
            if r % 97 == 0 {
                continue;
            }
            let t = i as i64 * 15 * S + (r % 3) as i64;
            if r % 211 == 0 {
                samples.push(Sample { t, v: stale });
                continue;
            }
            if r % 400 == 1 {
                v = 0.0;
            }
            v += (r % 1000) as f64 / 7.0;
            samples.push(Sample { t, v });
        }
        let job = ["api", "web", "db"][s % 3];
        let inst = format!("i{s:03}");
        let le = ["0.1", "0.5", "1", "+Inf"][s % 4];
        let labels = Labels::from_pairs([
            ("__name__", "m_total"),
            ("job", job),
            ("instance", inst.as_str()),
            ("le", le),
        ])
        .unwrap();
        out.push(Series {
            labels,
            chunks: Chunk::encode_xor(&samples, 120).unwrap(),
        });
    }
    out
}

fn engine() -> Engine {
    engine_with(data(), EngineConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_on_several_threads_equal_one_thread() {
    let e = engine();
    let end = POINTS as i64 * 15 * S;
    let queries = [
        "m_total",
        "timestamp(m_total)",
        "rate(m_total[5m])",
        "increase(m_total[1h])",
        "irate(m_total[2m])",
        "delta(m_total[10m])",
        "deriv(m_total[15m])",
        "predict_linear(m_total[30m], 600)",
        "holt_winters(m_total[20m], 0.3, 0.6)",
        "resets(m_total[1h])",
        "changes(m_total[30m])",
        "avg_over_time(m_total[10m])",
        "stddev_over_time(m_total[10m])",
        "quantile_over_time(0.9, m_total[10m])",
        "last_over_time(m_total[5m])",
        "count_over_time(m_total[7m])",
        "sum by (job) (rate(m_total[5m]))",
        "histogram_quantile(0.9, sum by (le, job) (rate(m_total[5m])))",
        "topk(3, rate(m_total[5m]))",
        // Same output label set from several series: an error either way.
        "rate({__name__=~\"m_.*\"}[5m]) or label_replace(rate(m_total[5m]), \"instance\", \"x\", \"\", \"\")",
        "sum_over_time(m_total[5m]) / on (instance) group_left count_over_time(m_total[5m])",
    ];
    let cases = [
        (end / 2, end / 2, 0),
        (0, end, 60 * S),
        (end / 3, end / 3 + 3_600 * S, 37 * S),
    ];
    for q in queries {
        for &(start, stop, step) in &cases {
            set_eval_threads(1);
            let before = parallel_parts();
            let one = e.range(q, start, stop, step, opts()).await;
            assert_eq!(parallel_parts(), before, "one thread asked, {q}");
            set_eval_threads(4);
            let many = e.range(q, start, stop, step, opts()).await;
            let (one, many) = (format!("{:?}", one), format!("{:?}", many));
            assert!(
                one == many,
                "{q} [{start}, {stop}, {step}]: one thread and four differ\n one: {}\nmany: {}",
                &one[..one.len().min(400)],
                &many[..many.len().min(400)]
            );
        }
    }
    assert!(
        parallel_parts() > 0,
        "no query was split across threads: the test data is too small"
    );
}

/// Aggregations over a selector or a range function of one are folded as
/// the series are evaluated, batch by batch; `* 1` makes the same query go
/// the general way (the whole input first). Both must agree exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_aggregation_equals_the_general_path() {
    let e = engine();
    let end = POINTS as i64 * 15 * S;
    let pairs = [
        ("sum(m_total)", "sum(m_total * 1)"),
        (
            "sum by (job) (rate(m_total[5m]))",
            "sum by (job) (rate(m_total[5m]) * 1)",
        ),
        (
            "avg without (instance) (increase(m_total[1h]))",
            "avg without (instance) (increase(m_total[1h]) * 1)",
        ),
        (
            "max by (le) (deriv(m_total[10m]))",
            "max by (le) (deriv(m_total[10m]) * 1)",
        ),
        ("min(irate(m_total[2m]))", "min(irate(m_total[2m]) * 1)"),
        (
            "count by (job) (changes(m_total[30m]))",
            "count by (job) (changes(m_total[30m]) * 1)",
        ),
        (
            "stddev by (job) (avg_over_time(m_total[10m]))",
            "stddev by (job) (avg_over_time(m_total[10m]) * 1)",
        ),
        (
            "stdvar(last_over_time(m_total[5m]))",
            "stdvar(last_over_time(m_total[5m]) * 1)",
        ),
        (
            "group by (le) (quantile_over_time(0.5, m_total[10m]))",
            "group by (le) (quantile_over_time(0.5, m_total[10m]) * 1)",
        ),
        (
            "sum by (job) (holt_winters(m_total[20m], 0.3, 0.6))",
            "sum by (job) (holt_winters(m_total[20m], 0.3, 0.6) * 1)",
        ),
    ];
    for threads in [1, 4] {
        set_eval_threads(threads);
        for (streamed, general) in pairs {
            for (start, stop, step) in [(end / 2, end / 2, 0), (0, end, 60 * S)] {
                let a = format!("{:?}", e.range(streamed, start, stop, step, opts()).await);
                let b = format!("{:?}", e.range(general, start, stop, step, opts()).await);
                assert!(
                    a == b,
                    "{streamed} ({threads} threads, [{start}, {stop}, {step}]):\n{}\n{}",
                    &a[..a.len().min(400)],
                    &b[..b.len().min(400)]
                );
                assert!(a.starts_with("Ok("), "{streamed}: {a}");
            }
        }
    }
}
