//! Peak memory of one large query: `sum by (job) (rate(x[5m]))` over
//! 100,000 series for 6 h, on Prometheus 2.42 and on a querier over a
//! sidecar that reads the same blocks from Prometheus' data directory.
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! query_memory`. Knobs: `SKEIN_BENCH_SERIES` (100000), `SKEIN_BENCH_STEP`
//! (seconds, 60: at 30 s Prometheus 2.42 refuses the query with its default
//! `--query.max-samples`, as it holds the rate of every series at every
//! step before summing), `SKEIN_BENCH_RUNS` (3). Each process is fresh; the peak
//! is the kernel's high-water mark of its resident memory (VmHWM) after
//! the runs, next to its resident memory before the first.

use std::time::{Duration, Instant};

use skein::model::{Labels, Sample};
use skein::tsdb::writer::write_blocks;
use skein_cluster_tests::promql_diff::{compare, parse_answer};
use skein_cluster_tests::promql_setup::{
    range, start_prometheus_on_blocks, start_querier, store_healthy,
};
use skein_cluster_tests::{
    env_usize, metric_at, peak_rss_kib, require_binary, rss_kib, use_release_binary, wait_for,
    Process,
};

const H: i64 = 3_600_000;
const T0: i64 = 1_735_689_600_000;
const SCRAPE: i64 = 30_000;
const QUERY: &str = "sum by (job) (rate(bench_mem_requests_total[5m]))";

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> anyhow::Result<()> {
    use_release_binary()?;
    let Some(prometheus) = require_binary("prometheus") else {
        return Ok(());
    };
    let n = env_usize("SKEIN_BENCH_SERIES", 100_000);
    let step = env_usize("SKEIN_BENCH_STEP", 60) as i64 * 1000;
    let runs = env_usize("SKEIN_BENCH_RUNS", 3).max(1);
    let span = 6 * H;
    let dir = tempfile::Builder::new().prefix("skein-mem-").tempdir()?;
    let data = dir.path().join("prom").join("data");
    std::fs::create_dir_all(&data)?;

    let t = Instant::now();
    let points = (span / SCRAPE) as usize;
    let series = (0..n).map(|i| {
        let job = format!("job{}", i % 10);
        let inst = format!("10.{}.{}.{}:9100", i / 65_536, (i / 256) % 256, i % 256);
        let labels = Labels::from_pairs([
            ("__name__", "bench_mem_requests_total"),
            ("instance", inst.as_str()),
            ("job", job.as_str()),
        ])
        .expect("valid labels");
        let rate = 1.0 + (i % 17) as f64;
        let samples = (0..points).map(move |k| Sample {
            t: T0 + k as i64 * SCRAPE,
            v: (k as f64 * rate * 30.0).floor(),
        });
        (labels, samples)
    });
    let metas = write_blocks(&data, series, 2 * H, &Labels::empty())?;
    let samples: u64 = metas.iter().map(|m| m.stats.num_samples).sum();
    eprintln!(
        "wrote {} blocks, {n} series, {samples} samples in {:.1?}",
        metas.len(),
        t.elapsed()
    );

    let addr = "127.0.35.1:9090";
    let mut prom = start_prometheus_on_blocks(&prometheus, &dir.path().join("prom"), addr)?;
    let prom_addr: std::net::SocketAddr = addr.parse()?;
    let tsdb = data.to_string_lossy().to_string();
    let sidecar = Process::start(
        "sidecar",
        &[
            "sidecar",
            "--prometheus.url",
            &format!("http://{addr}"),
            "--prometheus.refresh-interval",
            "1s",
            "--tsdb.path",
            &tsdb,
            "--grpc-address",
            "127.0.35.2:0",
            "--http-address",
            "127.0.35.2:0",
            "--cluster.disable",
        ],
    )?;
    wait_for(
        "the sidecar to read the blocks from disk",
        Duration::from_secs(120),
        || metric_at(sidecar.http, "skein_sidecar_disk_blocks") >= metas.len() as f64,
    )?;
    let querier = start_querier(
        "127.0.35.3",
        &sidecar.grpc.to_string(),
        &["--query.replica-label", "replica"],
    )?;
    let grpc = sidecar.grpc.to_string();
    wait_for(
        "the querier to see the sidecar",
        Duration::from_secs(60),
        || store_healthy(querier.http, &grpc, true),
    )?;

    let (start, end) = (T0 + 10 * 60_000, T0 + span - 1);
    let timeout = Duration::from_secs(300);
    let before = [
        rss_kib(prom.0.id()),
        rss_kib(querier.pid()),
        rss_kib(sidecar.pid()),
    ];
    let (mut prom_ms, mut skein_ms) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let t = Instant::now();
        let want = range(prom_addr, QUERY, start, end, step, timeout)?;
        prom_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let got = range(querier.http, QUERY, start, end, step, timeout)?;
        skein_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(want.status == 200, "prometheus: {}", want.text());
        anyhow::ensure!(got.status == 200, "skein: {}", got.text());
        if run == 0 {
            let d = compare(
                &parse_answer(want.status, &want.body),
                &parse_answer(got.status, &got.body),
                false,
                ("prometheus", "skein"),
                5,
            );
            anyhow::ensure!(d.is_empty(), "answers differ: {d:#?}");
        }
    }
    let peak = [
        peak_rss_kib(prom.0.id()),
        peak_rss_kib(querier.pid()),
        peak_rss_kib(sidecar.pid()),
    ];
    prom_ms.sort_by(f64::total_cmp);
    skein_ms.sort_by(f64::total_cmp);
    let steps = (end - start) / step + 1;
    println!();
    println!(
        "{QUERY}: {n} series, {samples} samples over 6h, {steps} steps of {} s; {runs} runs each; answers equal",
        step / 1000
    );
    println!();
    println!("| process | RSS before (MiB) | peak RSS (MiB) | median time (ms) |");
    println!("|---|---|---|---|");
    println!(
        "| Prometheus 2.42 | {:.0} | {:.0} | {:.0} |",
        mib(before[0]),
        mib(peak[0]),
        prom_ms[prom_ms.len() / 2]
    );
    println!(
        "| skein querier | {:.0} | {:.0} | {:.0} |",
        mib(before[1]),
        mib(peak[1]),
        skein_ms[skein_ms.len() / 2]
    );
    println!(
        "| skein sidecar (blocks from disk) | {:.0} | {:.0} | |",
        mib(before[2]),
        mib(peak[2])
    );
    println!();
    println!(
        "querier peak / Prometheus peak: {:.2}; querier + sidecar peaks / Prometheus peak: {:.2}",
        peak[1] as f64 / peak[0].max(1) as f64,
        (peak[1] + peak[2]) as f64 / peak[0].max(1) as f64
    );
    prom.kill();
    Ok(())
}
