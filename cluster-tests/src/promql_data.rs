//! The data PromQL is compared on: deterministic series with fixed
//! timestamps from 2025-01-01T00:00:00Z, written as OpenMetrics.
//!
//! The differential set is small and full of edge cases (counter resets,
//! series that stop or start mid-way, gaps longer than the lookback, NaN and
//! infinities, broken histograms, label values with quotes and newlines).
//! The benchmark set is larger and regular.

use std::f64::consts::PI;
use std::io::BufWriter;
use std::path::Path;

use crate::openmetrics::{grid, mix, unit, Dataset, OpenMetricsWriter};

/// 2025-01-01T00:00:00Z in milliseconds.
pub const T0: i64 = 1_735_689_600_000;
const S: i64 = 1000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
/// The differential data covers [T0, T0 + DIFF_SPAN].
pub const DIFF_SPAN: i64 = 3 * H;
/// The benchmark data covers [T0, T0 + BENCH_SPAN].
pub const BENCH_SPAN: i64 = 6 * H;

type Points = Vec<(i64, f64)>;

fn round_to(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// A counter sampled on `times`: `inc(k)` is added at sample k (k > 0);
/// `reset(k)` restarts it from zero before adding.
fn counter(
    times: impl Iterator<Item = i64>,
    start: f64,
    mut inc: impl FnMut(usize) -> f64,
    mut reset: impl FnMut(usize, i64) -> bool,
) -> Points {
    let mut v = start;
    times
        .enumerate()
        .map(|(k, t)| {
            if k > 0 {
                if reset(k, t) {
                    v = 0.0;
                }
                v += inc(k);
            }
            (t, v)
        })
        .collect()
}

/// Writes the differential dataset to `path`.
pub fn write_diff_dataset(path: &Path) -> anyhow::Result<Dataset> {
    let file = std::fs::File::create(path)?;
    let mut w = OpenMetricsWriter::new(BufWriter::new(file));
    let end = T0 + DIFF_SPAN;

    // Request counters: 36 series, 15s, each at its own millisecond phase;
    // some reset once, one resets twice in a row, one never moves, one
    // stops at 2h.
    w.family(
        "http_requests_total",
        "counter",
        "Requests by job, instance, method and code.",
    )?;
    let mut i = 0u64;
    for job in ["api", "web"] {
        for instance in ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.7:9090"] {
            for method in ["GET", "POST"] {
                for code in ["200", "404", "500"] {
                    let phase = (i as i64 * 1373) % (15 * S);
                    let last = if i == 35 { T0 + 2 * H } else { end };
                    let frozen = job == "web" && method == "POST" && code == "404";
                    let id = i;
                    let pts = counter(
                        grid(T0 + phase, last, 15 * S),
                        (unit(id, 0) * 1000.0).floor(),
                        |k| {
                            if frozen {
                                return 0.0;
                            }
                            let u = unit(id, k as u64);
                            match code {
                                "200" => (u * 20.0).floor(),
                                "404" => (u * 3.0).floor(),
                                _ => f64::from(u8::from(u < 0.1)),
                            }
                        },
                        |k, _| {
                            (id % 7 == 3 && k == 240 + id as usize * 5)
                                || (id % 11 == 5 && (k == 300 || k == 305))
                        },
                    );
                    w.series(
                        "http_requests_total",
                        &[
                            ("job", job),
                            ("instance", instance),
                            ("method", method),
                            ("code", code),
                        ],
                        &pts,
                    )?;
                    i += 1;
                }
            }
        }
    }

    // CPU seconds: 30 series, 30s, fractional; node-c restarts at 1h30m.
    w.family("node_cpu_seconds_total", "counter", "CPU time by mode.")?;
    let mut i = 100u64;
    for instance in ["node-a:9100", "node-b:9100", "node-c:9100"] {
        for cpu in ["0", "1"] {
            for (m, mode) in ["idle", "iowait", "system", "user", "steal"]
                .iter()
                .enumerate()
            {
                let phase = (i as i64 * 2711) % (30 * S);
                let share = [0.7, 0.03, 0.08, 0.18, 0.01][m];
                let id = i;
                let restart = instance == "node-c:9100";
                let pts = counter(
                    grid(T0 + phase, end, 30 * S),
                    round_to(unit(id, 0) * 5000.0, 2),
                    |k| round_to(30.0 * share * (0.5 + unit(id, k as u64)), 2),
                    |_, t| restart && t > T0 + 90 * M && t <= T0 + 90 * M + 30 * S,
                );
                w.series(
                    "node_cpu_seconds_total",
                    &[
                        ("job", "node"),
                        ("instance", instance),
                        ("cpu", cpu),
                        ("mode", mode),
                    ],
                    &pts,
                )?;
                i += 1;
            }
        }
    }

    // Temperatures: positive, negative and crossing zero; one decimal.
    w.family("node_temperature_celsius", "gauge", "Sensor temperature.")?;
    for (n, instance) in ["node-a:9100", "node-b:9100", "node-c:9100"]
        .iter()
        .enumerate()
    {
        for (sensor, base, amp) in [
            ("cpu", 55.0, 10.0),
            ("ambient", 21.0, 3.0),
            ("freezer", -5.0, 12.0),
        ] {
            let pts: Points = grid(T0 + n as i64 * 5 * S, end, 15 * S)
                .map(|t| {
                    let x = (t - T0) as f64 / (40.0 * M as f64) * 2.0 * PI + n as f64;
                    (t, round_to(base + amp * x.sin(), 1))
                })
                .collect();
            w.series(
                "node_temperature_celsius",
                &[("job", "node"), ("instance", instance), ("sensor", sensor)],
                &pts,
            )?;
        }
    }

    // Queue lengths: integers, often zero; timestamps on the minute grid.
    w.family("queue_length", "gauge", "Items waiting.")?;
    let mut i = 200u64;
    for job in ["api", "web"] {
        for queue in ["high", "low", "dead_letter"] {
            let id = i;
            let pts: Points = grid(T0, end, 30 * S)
                .enumerate()
                .map(|(k, t)| {
                    let u = unit(id, k as u64);
                    let v = if queue == "dead_letter" || u < 0.3 {
                        0.0
                    } else {
                        (u * 50.0).floor()
                    };
                    (t, v)
                })
                .collect();
            w.series("queue_length", &[("job", job), ("queue", queue)], &pts)?;
            i += 1;
        }
    }

    // NaN, infinities, zero, negative, tiny and huge values.
    w.family(
        "special_values",
        "gauge",
        "Values PromQL must carry through.",
    )?;
    type Kind = (&'static str, fn(usize) -> f64);
    let kinds: [Kind; 8] = [
        ("nan", |_| f64::NAN),
        ("pos_inf", |k| {
            if k % 10 == 3 {
                f64::INFINITY
            } else {
                k as f64
            }
        }),
        ("neg_inf", |k| {
            if k % 10 == 7 {
                f64::NEG_INFINITY
            } else {
                -(k as f64)
            }
        }),
        ("mixed", |k| {
            [1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -2.5][k % 6]
        }),
        ("zero", |_| 0.0),
        ("negative", |k| -round_to(unit(300, k as u64) * 100.0, 2)),
        ("tiny", |k| (k % 7 + 1) as f64 * 1e-20),
        ("huge", |k| (k % 5 + 1) as f64 * 1e300),
    ];
    for (kind, f) in kinds {
        let pts: Points = grid(T0, end, 15 * S)
            .enumerate()
            .map(|(k, t)| (t, f(k)))
            .collect();
        w.series("special_values", &[("kind", kind)], &pts)?;
    }

    // A histogram with four label sets: one starts at 30m, one resets at
    // 1h40m.
    w.family(
        "http_request_duration_seconds",
        "histogram",
        "Request latency.",
    )?;
    let les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
    let bounds = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, f64::INFINITY];
    for (n, (job, handler, scale)) in [
        ("api", "/users", 0.2),
        ("api", "/orders", 0.8),
        ("web", "/", 0.05),
        ("web", "/static", 0.02),
    ]
    .into_iter()
    .enumerate()
    {
        let first = if handler == "/orders" {
            T0 + 30 * M
        } else {
            T0
        };
        let times: Vec<i64> = grid(first + n as i64 * 3 * S + 250, end, 15 * S).collect();
        let mut counts = vec![0f64; les.len()];
        let mut sum = 0.0;
        let mut rows: Vec<(i64, Vec<f64>, f64)> = Vec::new();
        for (k, &t) in times.iter().enumerate() {
            if handler == "/static" && t > T0 + 100 * M && t <= T0 + 100 * M + 15 * S {
                counts.iter_mut().for_each(|c| *c = 0.0);
                sum = 0.0;
            }
            let id = 400 + n as u64;
            let observations = (unit(id, k as u64) * 20.0).floor() as u64;
            for o in 0..observations {
                let u = unit(id * 1000 + k as u64, o).max(1e-9);
                let x = -u.ln() * scale;
                sum += x;
                for (b, bound) in bounds.iter().enumerate() {
                    if x <= *bound {
                        counts[b] += 1.0;
                    }
                }
            }
            rows.push((t, counts.clone(), round_to(sum, 6)));
        }
        for (b, le) in les.iter().enumerate() {
            let pts: Points = rows.iter().map(|(t, c, _)| (*t, c[b])).collect();
            w.series(
                "http_request_duration_seconds_bucket",
                &[("job", job), ("handler", handler), ("le", le)],
                &pts,
            )?;
        }
        let pts: Points = rows.iter().map(|(t, _, s)| (*t, *s)).collect();
        w.series(
            "http_request_duration_seconds_sum",
            &[("job", job), ("handler", handler)],
            &pts,
        )?;
        let pts: Points = rows
            .iter()
            .map(|(t, c, _)| (*t, c[les.len() - 1]))
            .collect();
        w.series(
            "http_request_duration_seconds_count",
            &[("job", job), ("handler", handler)],
            &pts,
        )?;
    }

    // Histograms histogram_quantile must cope with: buckets that are not
    // monotonic, no +Inf bucket, only the +Inf bucket.
    w.family(
        "rpc_latency_seconds",
        "histogram",
        "RPC latency, partly broken.",
    )?;
    let rpc_les = ["0.1", "1", "10", "+Inf"];
    for service in ["ok", "nonmono", "noinf", "onlyinf"] {
        for (b, le) in rpc_les.iter().enumerate() {
            let keep = match service {
                "noinf" => *le != "+Inf",
                "onlyinf" => *le == "+Inf",
                _ => true,
            };
            if !keep {
                continue;
            }
            let pts: Points = grid(T0, end, 30 * S)
                .enumerate()
                .map(|(k, t)| {
                    let k = k as f64;
                    let mut v = k * [2.0, 5.0, 9.0, 10.0][b];
                    if service == "nonmono" && b == 1 {
                        v = k * 7.0 + 3.0; // more than the 10s bucket
                    }
                    (t, v)
                })
                .collect();
            w.series(
                "rpc_latency_seconds_bucket",
                &[("service", service), ("le", le)],
                &pts,
            )?;
        }
    }
    let pts: Points = grid(T0, end, 30 * S)
        .enumerate()
        .map(|(k, t)| (t, k as f64 * 10.0))
        .collect();
    w.series("rpc_latency_seconds_count", &[("service", "ok")], &pts)?;
    let pts: Points = grid(T0, end, 30 * S)
        .enumerate()
        .map(|(k, t)| (t, round_to(k as f64 * 4.321, 3)))
        .collect();
    w.series("rpc_latency_seconds_sum", &[("service", "ok")], &pts)?;

    // Histograms whose quantile ranks land on a bucket's count, with an
    // empty bucket above it (the same count at le=0.5 and le=1): there the
    // bucket search (count >= rank) and the last bits of rate and of the
    // rank decide between 0.5 and the top of the histogram. `pow2` has
    // counts in ratios 1:2:2:4 (rank 0.5 * count(+Inf) equals count(le=0.5)
    // exactly); `tenths` 1:3:3:10, so rank 0.3 * count(+Inf) meets it only
    // up to the last bits; `bursty` moves by 1-5 base units a scrape, at a
    // jittered millisecond, with the ratios of `pow2`.
    w.family(
        "boundary_seconds",
        "histogram",
        "Latency with quantile ranks on bucket boundaries.",
    )?;
    let boundary_les = ["0.1", "0.5", "1", "+Inf"];
    for (si, service) in ["pow2", "tenths", "bursty"].into_iter().enumerate() {
        let ratios: [f64; 4] = match service {
            "tenths" => [1.0, 3.0, 3.0, 10.0],
            _ => [1.0, 2.0, 2.0, 4.0],
        };
        let times: Vec<i64> = if service == "bursty" {
            grid(T0, end, 15 * S)
                .enumerate()
                .map(|(k, t)| t + (mix(si as u64, k as u64) % 997) as i64)
                .collect()
        } else {
            grid(T0 + 250, end, 15 * S).collect()
        };
        let mut base = 0.0;
        let bases: Vec<f64> = (0..times.len())
            .map(|k| {
                base += if service == "bursty" {
                    1.0 + (mix(si as u64 + 7, k as u64) % 5) as f64
                } else {
                    1.0
                };
                base
            })
            .collect();
        for (b, le) in boundary_les.iter().enumerate() {
            let pts: Points = times
                .iter()
                .zip(&bases)
                .map(|(&t, &u)| (t, u * ratios[b]))
                .collect();
            w.series(
                "boundary_seconds_bucket",
                &[("service", service), ("le", le)],
                &pts,
            )?;
        }
    }

    // Values counted into a label that is also a grouping label
    // (`count_values("job", ...)` by or without `job`), with values that
    // change over time, and two histograms that differ only in name.
    w.family("deploy_version", "gauge", "Version deployed.")?;
    for (job, instance, group, before, after) in [
        ("api", "a", "g1", 3.0, 3.0),
        ("api", "b", "g1", 3.0, 4.0),
        ("web", "a", "g1", 3.0, 3.0),
        ("web", "c", "g2", 4.0, 5.0),
    ] {
        let pts: Points = grid(T0, end, 30 * S)
            .map(|t| (t, if t < T0 + 90 * M { before } else { after }))
            .collect();
        w.series(
            "deploy_version",
            &[("job", job), ("instance", instance), ("group", group)],
            &pts,
        )?;
    }
    for twin in ["twin_a_seconds", "twin_b_seconds"] {
        w.family(twin, "histogram", "Latency, measured twice.")?;
        let scale = if twin == "twin_a_seconds" { 1.0 } else { 3.0 };
        for (le, ratio) in [("0.1", 1.0), ("1", 4.0), ("+Inf", 5.0)] {
            let pts: Points = grid(T0, end, 30 * S)
                .enumerate()
                .map(|(k, t)| (t, (k as f64 + 1.0) * ratio * scale))
                .collect();
            w.series(
                &format!("{twin}_bucket"),
                &[("service", "api"), ("le", le)],
                &pts,
            )?;
        }
    }

    // Tasks that stop: at 1h exactly, at 1h30m07.5s, at 2h25m (so a query
    // at 2h30m sees its last sample exactly one lookback back), 2m before
    // the end, and one that runs to the end.
    w.family("batch_task_progress", "gauge", "Fraction done.")?;
    for (task, step, last) in [
        ("t1", 15 * S, T0 + H),
        ("t2", 15 * S, T0 + 90 * M + 7500),
        ("t3", M, T0 + 145 * M),
        ("t4", 15 * S, end),
        ("t5", 15 * S, end - 2 * M),
    ] {
        let first = if task == "t2" { T0 + 7500 } else { T0 };
        let pts: Points = grid(first, last, step)
            .map(|t| (t, round_to((t - T0) as f64 / (last - T0) as f64, 4)))
            .collect();
        w.series("batch_task_progress", &[("task", task)], &pts)?;
    }

    // Series that start late: at 1h, and at 2h30m exactly.
    w.family("late_metric", "gauge", "Appears late.")?;
    for (id, first) in [("a", T0 + H), ("b", T0 + 150 * M)] {
        let pts: Points = grid(first, end, 15 * S)
            .enumerate()
            .map(|(k, t)| (t, (k % 13) as f64 + 0.5))
            .collect();
        w.series("late_metric", &[("id", id)], &pts)?;
    }
    w.family("late_requests", "counter", "A counter that appears late.")?;
    let pts = counter(
        grid(T0 + H + 4 * S, end, 15 * S),
        100.0,
        |k| (unit(500, k as u64) * 10.0).floor(),
        |_, _| false,
    );
    w.series("late_requests_total", &[("job", "api")], &pts)?;

    // Gaps longer than the lookback, and one of exactly five minutes.
    w.family("gappy_gauge", "gauge", "Has holes.")?;
    let pts: Points = grid(T0, end, 15 * S)
        .filter(|t| *t <= T0 + 40 * M || *t >= T0 + 55 * M)
        .enumerate()
        .map(|(k, t)| (t, (k % 17) as f64))
        .collect();
    w.series("gappy_gauge", &[("id", "a")], &pts)?;
    let pts: Points = grid(T0, end, M)
        .filter(|t| {
            let m = (t - T0) / M;
            !(61..=65).contains(&m) && !(121..=124).contains(&m)
        })
        .enumerate()
        .map(|(k, t)| (t, (k % 9) as f64 * 1.25))
        .collect();
    w.series("gappy_gauge", &[("id", "b")], &pts)?;
    w.series(
        "gappy_gauge",
        &[("id", "c")],
        &[(T0 + 10 * M, 3.0), (T0 + 2 * H, 7.0)],
    )?;
    w.family("gappy_requests", "counter", "A counter with a 20m hole.")?;
    let pts = counter(
        grid(T0, end, 15 * S).filter(|t| *t <= T0 + 70 * M || *t >= T0 + 90 * M),
        0.0,
        |k| 1.0 + (k % 3) as f64,
        |_, _| false,
    );
    w.series("gappy_requests_total", &[("job", "web")], &pts)?;

    // Label values for label_replace and label_join.
    w.family("service_info", "gauge", "Service metadata.")?;
    for (service, version, pod, namespace) in [
        (
            "checkout-eu-west-1",
            "v1.2.3",
            "checkout-7f9c6d-x2abc",
            "prod",
        ),
        ("cart-us-east-2", "v1.10.0", "cart-55d4b-qq9zt", "prod"),
        ("search", "2.0.0-rc.1", "search-0", "staging"),
        ("legacy_api-ap-south-1", "v0.9", "legacy-1", "staging"),
    ] {
        let pts: Points = grid(T0, end, M).map(|t| (t, 1.0)).collect();
        w.series(
            "service_info",
            &[
                ("service", service),
                ("version", version),
                ("pod", pod),
                ("namespace", namespace),
            ],
            &pts,
        )?;
    }

    // up: mostly 1; one web instance down from 1h to 1h20m, node-c while
    // it restarts.
    w.family("up", "gauge", "Target health.")?;
    let mut i = 600u64;
    for (job, instances) in [
        ("api", ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.7:9090"]),
        ("web", ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.1.7:9090"]),
        ("node", ["node-a:9100", "node-b:9100", "node-c:9100"]),
    ] {
        for instance in instances {
            let phase = (i as i64 * 977) % (15 * S);
            let pts: Points = grid(T0 + phase, end, 15 * S)
                .map(|t| {
                    let down = (job == "web"
                        && instance == "10.0.1.7:9090"
                        && (T0 + H..T0 + 80 * M).contains(&t))
                        || (instance == "node-c:9100" && (T0 + 88 * M..T0 + 90 * M).contains(&t));
                    (t, if down { 0.0 } else { 1.0 })
                })
                .collect();
            w.series("up", &[("job", job), ("instance", instance)], &pts)?;
            i += 1;
        }
    }

    // Two counter families with the same label sets: dropping the name
    // makes them collide.
    for (family, base) in [("app_requests", 50.0), ("app_errors", 2.0)] {
        w.family(family, "counter", "Per app.")?;
        for (n, app) in ["frontend", "backend"].iter().enumerate() {
            let id = 700 + n as u64 + base as u64;
            let pts = counter(
                grid(T0, end, 30 * S),
                0.0,
                |k| (unit(id, k as u64) * base).floor(),
                |_, _| false,
            );
            w.series(&format!("{family}_total"), &[("app", app)], &pts)?;
        }
    }

    // Joins: node_info (one per instance, plus one instance with no CPU
    // data), instance_owner, and instance_owner_dup with two owners for
    // one instance.
    w.family("node_info", "gauge", "Node metadata.")?;
    for (instance, kernel) in [
        ("node-a:9100", "6.1.0"),
        ("node-b:9100", "5.15.0"),
        ("node-c:9100", "6.1.0"),
        ("node-d:9100", "6.6.0"),
    ] {
        let pts: Points = grid(T0, end, M).map(|t| (t, 1.0)).collect();
        w.series(
            "node_info",
            &[
                ("job", "node"),
                ("instance", instance),
                ("os", "linux"),
                ("kernel", kernel),
            ],
            &pts,
        )?;
    }
    for (family, owners) in [
        (
            "instance_owner",
            &[
                ("10.0.0.1:8080", "payments"),
                ("10.0.0.2:8080", "search"),
                ("10.0.1.7:9090", "payments"),
            ][..],
        ),
        (
            "instance_owner_dup",
            &[("10.0.0.1:8080", "payments"), ("10.0.0.1:8080", "infra")][..],
        ),
    ] {
        w.family(family, "gauge", "Who owns an instance.")?;
        for (instance, team) in owners {
            let pts: Points = grid(T0, end, M).map(|t| (t, 1.0)).collect();
            w.series(family, &[("instance", instance), ("team", team)], &pts)?;
        }
    }

    // Big integers.
    w.family("disk_free_bytes", "gauge", "Free space.")?;
    for (n, instance) in ["node-a:9100", "node-b:9100", "node-c:9100"]
        .iter()
        .enumerate()
    {
        for (d, device) in ["sda", "sdb", "nvme0n1"].iter().enumerate() {
            let start = 5e11 + (n * 3 + d) as f64 * 1.37e10;
            let pts: Points = grid(T0 + 20 * S, end, M)
                .enumerate()
                .map(|(k, t)| (t, start - (k as f64 * 1_048_576.0 * (d + 1) as f64)))
                .collect();
            w.series(
                "disk_free_bytes",
                &[("instance", instance), ("device", device)],
                &pts,
            )?;
        }
    }

    // Label values that need escaping in selectors and JSON.
    w.family("weird_labels", "gauge", "Hard label values.")?;
    for (n, (path, msg)) in [
        ("/a\"b\\c", "line1\nline2"),
        ("/héllo/✓", "unicode"),
        ("/{x}", "a=b,c"),
    ]
    .into_iter()
    .enumerate()
    {
        let pts: Points = grid(T0, end, M).map(|t| (t, n as f64 + 1.0)).collect();
        w.series("weird_labels", &[("path", path), ("msg", msg)], &pts)?;
    }

    // Versions as values, for count_values.
    w.family("build_version", "gauge", "Running version.")?;
    for (instance, v) in [
        ("10.0.0.1:8080", 1.5),
        ("10.0.0.2:8080", 2.0),
        ("10.0.1.7:9090", 2.0),
        ("node-a:9100", 1e6),
    ] {
        let pts: Points = grid(T0, end, M)
            .map(|t| (t, if t >= T0 + 2 * H && v == 1.5 { 2.0 } else { v }))
            .collect();
        w.series("build_version", &[("instance", instance)], &pts)?;
    }

    Ok(w.finish()?)
}

/// Writes the benchmark dataset: `instances` instances, each with 20
/// request counters (4 methods x 5 codes), 8 CPU counters and a histogram
/// of 10 buckets in 2 jobs, plus one info series, every 30s over 6h.
pub fn write_bench_dataset(path: &Path, instances: usize) -> anyhow::Result<Dataset> {
    let file = std::fs::File::create(path)?;
    let mut w = OpenMetricsWriter::new(BufWriter::with_capacity(1 << 20, file));
    let end = T0 + BENCH_SPAN;
    let names: Vec<String> = (0..instances)
        .map(|n| format!("host-{n:03}:9100"))
        .collect();
    let job = |n: usize| ["api", "web", "db", "cache"][n % 4];

    w.family("bench_requests", "counter", "Requests.")?;
    for (n, instance) in names.iter().enumerate() {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            for code in ["200", "201", "404", "500", "503"] {
                let id = mix(
                    n as u64,
                    u64::from(method.as_bytes()[0]) * 1000
                        + code.len() as u64
                        + u64::from(code.as_bytes()[2]),
                );
                let pts = counter(
                    grid(T0 + (id % 30_000) as i64, end, 30 * S),
                    0.0,
                    |k| (unit(id, k as u64) * 10.0).floor(),
                    |k, _| k == 500 && id % 10 == 0,
                );
                w.series(
                    "bench_requests_total",
                    &[
                        ("job", job(n)),
                        ("instance", instance),
                        ("method", method),
                        ("code", code),
                    ],
                    &pts,
                )?;
            }
        }
    }

    w.family("bench_cpu_seconds", "counter", "CPU time.")?;
    for (n, instance) in names.iter().enumerate() {
        for mode in [
            "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
        ] {
            let id = mix(
                n as u64 + 10_000,
                u64::from(mode.as_bytes()[0]) + mode.len() as u64,
            );
            let pts = counter(
                grid(T0 + (id % 30_000) as i64, end, 30 * S),
                0.0,
                |k| round_to(unit(id, k as u64) * 3.0, 2),
                |_, _| false,
            );
            w.series(
                "bench_cpu_seconds_total",
                &[("job", job(n)), ("instance", instance), ("mode", mode)],
                &pts,
            )?;
        }
    }

    w.family("bench_latency_seconds", "histogram", "Latency.")?;
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    let bounds = [
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        f64::INFINITY,
    ];
    for (n, instance) in names.iter().enumerate() {
        for handler in ["/a", "/b"] {
            let id = mix(n as u64 + 20_000, handler.as_bytes()[1] as u64);
            let times: Vec<i64> = grid(T0 + (id % 30_000) as i64, end, 30 * S).collect();
            let mut counts = vec![0f64; les.len()];
            let mut rows = Vec::with_capacity(times.len());
            for (k, &t) in times.iter().enumerate() {
                for o in 0..(unit(id, k as u64) * 8.0) as u64 {
                    let x = -unit(id ^ k as u64, o).max(1e-9).ln() * 0.1;
                    for (b, bound) in bounds.iter().enumerate() {
                        if x <= *bound {
                            counts[b] += 1.0;
                        }
                    }
                }
                rows.push((t, counts.clone()));
            }
            for (b, le) in les.iter().enumerate() {
                let pts: Points = rows.iter().map(|(t, c)| (*t, c[b])).collect();
                w.series(
                    "bench_latency_seconds_bucket",
                    &[
                        ("job", job(n)),
                        ("instance", instance),
                        ("handler", handler),
                        ("le", le),
                    ],
                    &pts,
                )?;
            }
        }
    }

    w.family("bench_instance_info", "gauge", "Instance metadata.")?;
    for (n, instance) in names.iter().enumerate() {
        let pts: Points = grid(T0, end, 30 * S).map(|t| (t, 1.0)).collect();
        w.series(
            "bench_instance_info",
            &[
                ("instance", instance),
                ("zone", ["a", "b", "c"][n % 3]),
                ("team", ["red", "blue"][n % 2]),
            ],
            &pts,
        )?;
    }
    Ok(w.finish()?)
}
