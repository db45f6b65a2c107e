//! Differential tests of PromQL: Prometheus 2.42 holds a generated dataset
//! (imported with promtool), a sidecar serves it to a querier, and every
//! query of `promql/queries.txt` is asked of both at several instants and
//! as range queries. The querier must answer exactly as Prometheus does.
//!
//! `SKEIN_PROMQL_DIFF_TARGET=prometheus` puts a second Prometheus on a copy
//! of the data in the querier's place, to check the harness itself; that
//! mode must agree on every query.
//!
//! ```sh
//! cargo build && cargo nextest run -p skein-cluster-tests --test promql_diff --no-capture
//! ```
//!
//! The summary line (`promql diff: X/Y queries agree`) is printed either
//! way; a failure lists the differing queries and writes the whole report
//! to `target/tmp/promql_diff_report.txt`. `SKEIN_PROMQL_DIFF_DUMP=<file>`
//! writes what Prometheus answered to each query (for reviewing the query
//! set) and the promtool outputs to `<file>.promtool`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use skein_cluster_tests::openmetrics::format_ts;
use skein_cluster_tests::promql_data::{write_diff_dataset, DIFF_SPAN, T0};
use skein_cluster_tests::promql_diff::{
    classify, compare, fmt_t, ordered_by_value, parse_answer, parse_queries, same_value, Outcome,
};
use skein_cluster_tests::promql_setup::{instant, range, PromqlCluster, Target};
use skein_cluster_tests::require_binary;

const QUERIES: &str = include_str!("../promql/queries.txt");
const IP: &str = "127.0.4";
const WORKERS: usize = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Queries not started within this budget count as failed.
const BUDGET: Duration = Duration::from_secs(120);
const LINES_PER_QUERY: usize = 8;
/// Differing queries shown in the failure message; all are in the file.
const SHOWN_QUERIES: usize = 40;

const S: i64 = 1000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;

#[derive(Debug, Clone, Copy)]
enum Case {
    Instant(&'static str, i64),
    Range(&'static str, i64, i64, i64),
}

impl Case {
    fn describe(&self) -> String {
        match *self {
            Case::Instant(what, t) => format!("instant {} ({what})", fmt_t(t)),
            Case::Range(what, start, end, step) => format!(
                "range {}..{} step {}s ({what})",
                fmt_t(start),
                fmt_t(end),
                format_ts(step).trim_end_matches(".000")
            ),
        }
    }
}

/// Where each query is evaluated.
fn cases() -> Vec<Case> {
    let end = T0 + DIFF_SPAN;
    vec![
        Case::Instant("first sample", T0),
        Case::Instant("inside, off the grid", T0 + 45 * M + 3250),
        Case::Instant("inside, after some series stopped", T0 + 150 * M),
        Case::Instant("after the end, within lookback", end + 4 * M),
        Case::Instant("a day after the end", end + 24 * H),
        Case::Instant("before the data", T0 - H),
        Case::Range("whole data", T0 - 10 * M, end + 10 * M, M),
        Case::Range("ten minutes, 10 s steps", T0 + 95 * M, T0 + 105 * M, 10 * S),
        Case::Range(
            "unaligned start and step",
            T0 + 20 * M + 13_500,
            end + 7 * M,
            37 * S,
        ),
    ]
}

fn ask(addr: std::net::SocketAddr, query: &str, case: Case) -> Outcome {
    let answer = match case {
        Case::Instant(_, t) => instant(addr, query, t, REQUEST_TIMEOUT),
        Case::Range(_, start, end, step) => range(addr, query, start, end, step, REQUEST_TIMEOUT),
    };
    match answer {
        Ok(a) => parse_answer(a.status, &a.body),
        Err(e) => Outcome::Invalid(format!("request failed: {e:#}")),
    }
}

fn start(host_base: u8) -> Option<PromqlCluster> {
    start_with(host_base, Target::from_env().unwrap())
}

fn start_with(host_base: u8, target: Target) -> Option<PromqlCluster> {
    let prometheus = require_binary("prometheus")?;
    let promtool = require_binary("promtool")?;
    Some(
        PromqlCluster::start(
            &prometheus,
            &promtool,
            (IP, host_base),
            target,
            write_diff_dataset,
        )
        .unwrap(),
    )
}

#[test]
fn promql_answers_match_prometheus() {
    if let Some(cluster) = start(0) {
        diff(cluster, "promql_diff_report.txt");
    }
}

/// The same queries over the same blocks, served by two store gateways
/// from a filesystem bucket instead of by Prometheus through a sidecar.
#[test]
fn promql_answers_through_store_gateways_match_prometheus() {
    if let Some(cluster) = start_with(20, Target::Store) {
        diff(cluster, "promql_diff_store_report.txt");
    }
}

/// The same queries through `skein frontend` in front of the gateways'
/// querier, split at every hour of the data (and at odd minutes inside
/// it): first cold, then again from its cache.
#[test]
fn promql_answers_through_the_frontend_match_prometheus_split_and_cached() {
    let Some(mut cluster) = start_with(40, Target::Store) else {
        return;
    };
    let downstream = format!("http://{}", cluster.target);
    let fe = skein_cluster_tests::Process::start(
        "frontend",
        &[
            "frontend",
            "--http-address",
            &format!("{IP}.45:0"),
            "--query-frontend.downstream-url",
            &downstream,
            "--query-range.split-interval",
            "1h",
            "--query-range.max-freshness",
            "0s",
            "--cluster.disable",
        ],
    )
    .unwrap();
    skein_cluster_tests::wait_for("the frontend to be ready", Duration::from_secs(30), || {
        skein_cluster_tests::http_get(fe.http, "/-/ready").is_ok_and(|(s, _)| s == 200)
    })
    .unwrap();
    let hits = || skein_cluster_tests::metric_at(fe.http, "skein_frontend_cache_hits_total");
    let pieces = || skein_cluster_tests::metric_at(fe.http, "skein_frontend_split_queries_total");
    diff_at(
        &mut cluster,
        "promql_diff_frontend_cold.txt",
        fe.http,
        "skein-frontend",
    );
    let (cold_hits, cold_pieces) = (hits(), pieces());
    assert!(cold_pieces > 0.0, "range queries were split");
    diff_at(
        &mut cluster,
        "promql_diff_frontend_cached.txt",
        fe.http,
        "skein-frontend (cached)",
    );
    let warm_hits = hits() - cold_hits;
    let warm_pieces = pieces() - cold_pieces;
    println!("frontend: {cold_pieces} pieces cold ({cold_hits} from cache), {warm_pieces} warm ({warm_hits} from cache)");
    assert!(
        warm_hits >= warm_pieces * 0.9,
        "the second run came from the cache: {warm_hits} of {warm_pieces} pieces"
    );
}

fn diff(cluster: PromqlCluster, report_name: &str) {
    let mut cluster = cluster;
    let candidate = cluster.target;
    let target = cluster.target_kind.name();
    diff_at(&mut cluster, report_name, candidate, target);
}

/// [`diff`] with `candidate` answering in the target's place (the
/// frontend in front of the target's querier).
fn diff_at(
    cluster: &mut PromqlCluster,
    report_name: &str,
    candidate: std::net::SocketAddr,
    target: &str,
) {
    let queries = parse_queries(QUERIES);
    let cases = cases();
    let names = ("prometheus", target);
    let reference = cluster.prometheus;

    let jobs: Vec<(usize, usize)> = (0..queries.len())
        .flat_map(|q| (0..cases.len()).map(move |c| (q, c)))
        .collect();
    let results: Mutex<Vec<Option<(Outcome, Outcome)>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() || started.elapsed() > BUDGET {
                    break;
                }
                let (q, c) = jobs[i];
                let r = ask(reference, &queries[q], cases[c]);
                let t = ask(candidate, &queries[q], cases[c]);
                results.lock().unwrap()[i] = Some((r, t));
            });
        }
    });
    let elapsed = started.elapsed();
    let crashed = cluster.check_running().err();
    // The querier spreads large selectors over 4 threads: some of the
    // answers compared were made that way.
    // (Not through the frontend: its pieces are too small to be spread.)
    let parallel =
        (cluster.target_kind != Target::Prometheus && candidate == cluster.target).then(|| {
            skein_cluster_tests::metric_at(cluster.target, "skein_promql_parallel_parts_total")
        });
    let results = results.into_inner().unwrap();

    if let Some(path) = std::env::var_os("SKEIN_PROMQL_DIFF_DUMP") {
        dump_reference(std::path::Path::new(&path), &queries, &cases, &results);
    }

    // One block of lines per differing query.
    let mut blocks: Vec<String> = Vec::new();
    let (mut agreeing_queries, mut agreeing_evals, mut not_run) = (0, 0, 0);
    let (mut invalid_ref, mut invalid_target) = (0, 0);
    let mut reference_errors = 0;
    // Kind of disagreement -> (evaluations, first query).
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (q, query) in queries.iter().enumerate() {
        let ordered = ordered_by_value(query);
        let mut lines = Vec::new();
        let mut also = Vec::new();
        for (c, case) in cases.iter().enumerate() {
            let Some((r, t)) = &results[q * cases.len() + c] else {
                not_run += 1;
                kinds
                    .entry("not run (time budget spent)".into())
                    .or_insert((0, q))
                    .0 += 1;
                also.push(case.describe());
                continue;
            };
            if matches!(r, Outcome::Invalid(_)) {
                invalid_ref += 1;
            }
            if matches!(t, Outcome::Invalid(_)) {
                invalid_target += 1;
            }
            if matches!(r, Outcome::Error { .. }) {
                reference_errors += 1;
            }
            let ordered = ordered && matches!(case, Case::Instant(..));
            let diff = compare(r, t, ordered, names, LINES_PER_QUERY);
            if diff.is_empty() {
                agreeing_evals += 1;
                continue;
            }
            kinds.entry(classify(r, t, names)).or_insert((0, q)).0 += 1;
            // The first differing cases in full, the others by name.
            if lines.len() + diff.len() < LINES_PER_QUERY || lines.is_empty() {
                lines.push(format!("  {}:", case.describe()));
                lines.extend(diff.into_iter().map(|l| format!("    {l}")));
            } else {
                also.push(case.describe());
            }
        }
        if lines.is_empty() && also.is_empty() {
            agreeing_queries += 1;
            continue;
        }
        let mut block = format!("[{}] {query}\n", q + 1);
        for l in &lines {
            block.push_str(l);
            block.push('\n');
        }
        if !also.is_empty() {
            block.push_str(&format!("  also differs: {}\n", also.join("; ")));
        }
        blocks.push(block);
    }
    let mut report = String::new();
    if let Some(e) = &crashed {
        report.push_str(&format!("{e}\n"));
    }
    if !kinds.is_empty() {
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1 .0));
        report.push_str("kinds of disagreement (evaluations, first query):\n");
        for (kind, (n, q)) in kinds {
            report.push_str(&format!("  {n:>5}  {kind}  [{}] {}\n", q + 1, queries[q]));
        }
    }
    let evals = queries.len() * cases.len();
    let summary = format!(
        "promql diff: {agreeing_queries}/{} queries agree ({agreeing_evals}/{evals} evaluations; \
         prometheus vs {target}; {reference_errors} evaluations where prometheus errors; \
         {invalid_target} invalid answers from {target}, {invalid_ref} from prometheus; \
         {not_run} not run; {elapsed:.1?})",
        queries.len()
    );
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(report_name);
    let _ = std::fs::write(&file, format!("{}{report}{summary}\n", blocks.concat()));
    println!("{summary}");
    if agreeing_queries != queries.len() || crashed.is_some() {
        let shown = blocks.len().min(SHOWN_QUERIES);
        let more = if blocks.len() > shown {
            format!(
                "({} more differing queries in the report file)\n",
                blocks.len() - shown
            )
        } else {
            String::new()
        };
        panic!(
            "PromQL answers differ from Prometheus (full report in {}):\n{}{more}{report}{summary}",
            file.display(),
            blocks[..shown].concat()
        );
    }
    if let Some(parts) = parallel {
        println!("{parts} selector parts were evaluated on helper threads");
        assert!(
            parts > 0.0,
            "no selector was split across threads: the comparison did not cover that path"
        );
    }
}

/// Writes what Prometheus answered, one line a query with a short note per
/// case, so the query set can be reviewed: `v3` a vector of 3 series, `m2`
/// a matrix of 2, `s` a scalar, `str` a string, `E:type` an error. Queries
/// whose answers are empty or errors everywhere are listed first.
fn dump_reference(
    path: &std::path::Path,
    queries: &[String],
    cases: &[Case],
    results: &[Option<(Outcome, Outcome)>],
) {
    use skein_cluster_tests::promql_diff::Data;
    let mut lines = Vec::new();
    for (q, query) in queries.iter().enumerate() {
        let mut notes = Vec::new();
        let mut useful = false;
        for c in 0..cases.len() {
            let note = match &results[q * cases.len() + c] {
                None => "-".to_string(),
                Some((Outcome::Success { data, .. }, _)) => match data {
                    Data::Scalar(..) => {
                        useful = true;
                        "s".into()
                    }
                    Data::String(..) => {
                        useful = true;
                        "str".into()
                    }
                    Data::Vector(v) => {
                        useful |= !v.is_empty();
                        format!("v{}", v.len())
                    }
                    Data::Matrix(m) => {
                        useful |= !m.is_empty();
                        format!("m{}", m.len())
                    }
                },
                Some((Outcome::Error { error_type, .. }, _)) => format!("E:{error_type}"),
                Some((Outcome::Invalid(_), _)) => "invalid".into(),
            };
            notes.push(note);
        }
        lines.push((useful, format!("{:<40} {query}", notes.join(" "))));
    }
    lines.sort_by_key(|(useful, _)| *useful);
    let text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
    std::fs::write(path, text).expect("writing the dump");
}

/// Output of one promtool command, as compared.
#[derive(Debug)]
struct ToolOutput {
    success: bool,
    stdout: String,
    stderr: String,
    /// For a failed query, what promtool says failed before the message,
    /// e.g. `bad_data` in `query error: bad_data: parse error ...`.
    error_kind: String,
    /// Records of stdout: a line with `=>` starts one (a sample, or a
    /// series whose points follow on lines of their own); other lines are
    /// records by themselves unless they follow such a series.
    records: Vec<String>,
}

impl ToolOutput {
    /// Same exit status and the same records, where numbers may differ
    /// within the diff's tolerance (float sums depend on the order of
    /// addition).
    fn agrees_with(&self, other: &ToolOutput) -> bool {
        let same_token = |a: &str, b: &str| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => same_value(x, y),
            _ => a == b,
        };
        self.success == other.success
            && self.error_kind == other.error_kind
            && self.records.len() == other.records.len()
            && self.records.iter().zip(&other.records).all(|(a, b)| {
                let (ta, tb): (Vec<&str>, Vec<&str>) = (
                    a.split_whitespace().collect(),
                    b.split_whitespace().collect(),
                );
                ta.len() == tb.len() && ta.iter().zip(&tb).all(|(x, y)| same_token(x, y))
            })
    }
}

fn promtool(bin: &std::path::Path, args: &[String], sorted: bool) -> ToolOutput {
    let o = Command::new(bin)
        .args(args)
        .output()
        .expect("running promtool");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut records: Vec<String> = Vec::new();
    let mut in_series = false;
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        if line.contains("=>") {
            in_series = line.trim_end().ends_with("=>");
            records.push(line.to_string());
        } else if in_series {
            let last = records.last_mut().expect("a series record");
            last.push('\n');
            last.push_str(line);
        } else {
            records.push(line.to_string());
        }
    }
    if sorted {
        records.sort();
    }
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let error_kind = stderr
        .lines()
        .find_map(|l| l.strip_prefix("query error: "))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default()
        .to_string();
    ToolOutput {
        success: o.status.success(),
        stdout,
        stderr,
        error_kind,
        records,
    }
}

#[test]
fn promtool_queries_match_prometheus() {
    let Some(promtool_bin) = require_binary("promtool") else {
        return;
    };
    let Some(cluster) = start(10) else {
        return;
    };
    let secs = |ms: i64| format_ts(ms);
    let (t, start, end) = (T0 + 95 * M + 7500, T0 + 50 * M, T0 + 140 * M);
    let instant = |q: &str| {
        vec![
            "query".to_string(),
            "instant".into(),
            "{url}".into(),
            q.into(),
            format!("--time={}", secs(t)),
        ]
    };
    let range = |q: &str, step: &str| {
        vec![
            "query".to_string(),
            "range".into(),
            "{url}".into(),
            q.into(),
            format!("--start={}", secs(start)),
            format!("--end={}", secs(end)),
            format!("--step={step}"),
        ]
    };
    let window = [
        format!("--start={}", secs(start)),
        format!("--end={}", secs(end)),
    ];
    let labels = |name: &str, matches: &[&str]| {
        let mut a = vec![
            "query".to_string(),
            "labels".into(),
            "{url}".into(),
            name.into(),
        ];
        a.extend(window.iter().cloned());
        a.extend(matches.iter().map(|m| format!("--match={m}")));
        a
    };
    let series = |matches: &[&str]| {
        let mut a = vec!["query".to_string(), "series".into(), "{url}".into()];
        a.extend(window.iter().cloned());
        a.extend(matches.iter().map(|m| format!("--match={m}")));
        a
    };
    // (arguments, compare sorted lines)
    let commands: Vec<(Vec<String>, bool)> = vec![
        (instant("up"), true),
        (instant("up == 0"), true),
        (instant("sum by (job) (rate(http_requests_total[5m]))"), true),
        (instant("sort_desc(sum by (instance) (rate(http_requests_total[5m])))"), false),
        (instant("histogram_quantile(0.9, sum by (le, job) (rate(http_request_duration_seconds_bucket[10m])))"), true),
        (instant("scalar(sum(up))"), false),
        (instant("\"a string\""), false),
        (instant("http_requests_total{job=\"api\",code=\"500\"}[1m]"), true),
        (instant("special_values"), true),
        (instant("weird_labels"), true),
        (instant("nonexistent_metric"), false),
        (instant("rate(up)"), false),
        (instant("sum("), false),
        (range("sum by (job) (rate(http_requests_total[5m]))", "60s"), false),
        (range("batch_task_progress", "37s"), false),
        (range("special_values{kind=\"mixed\"} * 2", "5m"), false),
        (range("time()", "15m"), false),
        (range("http_requests_total[5m]", "1m"), false),
        (series(&["up"]), true),
        (series(&["{__name__=~\"node_.+\", instance=\"node-b:9100\"}", "queue_length"]), true),
        (series(&["weird_labels"]), true),
        (labels("job", &[]), false),
        (labels("__name__", &[]), false),
        (labels("instance", &["up{job=\"node\"}"]), false),
        (labels("replica", &[]), false),
    ];
    let prom_url = format!("http://{}", cluster.prometheus);
    let target_url = format!("http://{}", cluster.target);
    let target = cluster.target_kind.name();
    let mut report = String::new();
    let mut dump = String::new();
    let mut agree = 0;
    for (args, sorted) in &commands {
        let with = |url: &str| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if a == "{url}" {
                        url.to_string()
                    } else {
                        a.clone()
                    }
                })
                .collect()
        };
        let p = promtool(&promtool_bin, &with(&prom_url), *sorted);
        let s = promtool(&promtool_bin, &with(&target_url), *sorted);
        dump.push_str(&format!(
            "$ promtool {}\n{}\n[{}]\n",
            args.join(" "),
            p.stdout,
            if p.success { "ok" } else { "failed" }
        ));
        if p.agrees_with(&s) {
            agree += 1;
            continue;
        }
        let shown: Vec<String> = args
            .iter()
            .filter(|a| *a != "{url}")
            .map(|a| format!("'{a}'"))
            .collect();
        report.push_str(&format!("promtool {}\n", shown.join(" ")));
        for (name, o) in [("prometheus", &p), (target, &s)] {
            let mut out: Vec<&str> = o.stdout.lines().take(6).collect();
            out.extend(o.stderr.lines().take(2));
            if out.is_empty() {
                out.push("<no output>");
            }
            report.push_str(&format!(
                "  {name} ({}):\n    {}\n",
                if o.success { "ok" } else { "failed" },
                out.join("\n    ")
            ));
        }
    }
    if let Some(path) = std::env::var_os("SKEIN_PROMQL_DIFF_DUMP") {
        let mut path = std::path::PathBuf::from(path);
        path.as_mut_os_string().push(".promtool");
        std::fs::write(path, dump).expect("writing the dump");
    }
    let summary = format!(
        "promtool diff: {agree}/{} commands agree (prometheus vs {target})",
        commands.len()
    );
    println!("{summary}");
    assert!(agree == commands.len(), "{report}{summary}");
}
