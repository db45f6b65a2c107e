//! The store gateway on the PromQL bench dataset (blocks written by
//! promtool 2.42), next to Prometheus 2.42 serving the same blocks:
//!
//! 1. series + sample fetch throughput: every series of a selector with all
//!    its chunks, from `skein store` over the Store API and from Prometheus
//!    over remote read (streamed XOR chunks, its fastest raw path), runs
//!    alternating; medians and their ratio;
//! 2. start-up with 100 blocks in the bucket, with an empty `--data-dir`
//!    (index headers built from the bucket) and again with the headers it
//!    cached;
//! 3. resident memory per loaded block (100 blocks vs an empty bucket).
//!
//! `cargo build --release && cargo bench -p skein-cluster-tests --bench
//! store_gateway` (the release build, or `SKEIN_BIN`). Knobs: `SKEIN_BENCH_RUNS`
//! (default 10), `SKEIN_BENCH_INSTANCES` (default 100, 49 series each),
//! `SKEIN_BENCH_BLOCKS` (default 100).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skein::model::{MatchOp, Matcher};
use skein::sidecar::remote_read::RemoteRead;
use skein::store::{ClientConfig, RemoteStore, SeriesFrame, SeriesRequest, Store};
use skein_cluster_tests::promql_data::write_bench_dataset;
use skein_cluster_tests::promql_setup::{PromqlCluster, Target};
use skein_cluster_tests::{env_usize, http_get, require_binary, rss_kib, wait_for, Process};

/// Samples in an XOR chunk: its first two bytes, big endian.
fn chunk_samples(data: &[u8]) -> u64 {
    match data {
        [a, b, ..] => u64::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    }
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Fetched {
    series: u64,
    chunks: u64,
    samples: u64,
}

async fn from_gateway(store: &RemoteStore, matchers: &[Matcher]) -> Fetched {
    let mut f = Fetched::default();
    let req = SeriesRequest::new(i64::MIN, i64::MAX, matchers.to_vec());
    let mut s = store.series(req).await.expect("gateway series");
    while let Some(frame) = s.next().await {
        match frame.expect("gateway frame") {
            SeriesFrame::Series(series) => {
                f.series += 1;
                f.chunks += series.chunks.len() as u64;
                f.samples += series
                    .chunks
                    .iter()
                    .map(|c| chunk_samples(&c.data))
                    .sum::<u64>();
            }
            SeriesFrame::Warning(w) => panic!("gateway warning: {w}"),
        }
    }
    f
}

async fn from_prometheus(rr: &RemoteRead, matchers: &[Matcher]) -> Fetched {
    let mut f = Fetched::default();
    let s = rr
        .read(matchers, 0, i64::MAX / 2, None)
        .await
        .expect("remote read");
    let mut s = std::pin::pin!(s);
    while let Some(series) = s.next().await {
        let series = series.expect("remote read frame");
        f.series += 1;
        f.chunks += series.chunks.len() as u64;
        f.samples += series
            .chunks
            .iter()
            .map(|c| chunk_samples(&c.data))
            .sum::<u64>();
    }
    f
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Starts a gateway on `bucket` and returns it once ready, with the time
/// from spawn to `/-/ready`.
fn start_gateway(bucket: &Path, data_dir: &Path, ip: &str, extra: &[&str]) -> (Process, Duration) {
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let listen = format!("{ip}:0");
    let t = Instant::now();
    let mut args = vec![
        "store",
        "--objstore.config",
        &objstore,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--grpc-address",
        &listen,
        "--http-address",
        &listen,
        "--cluster.disable",
    ];
    args.extend_from_slice(extra);
    let p = Process::start("gateway", &args).expect("gateway start");
    let http = p.http;
    wait_for("gateway ready", Duration::from_secs(300), || {
        http_get(http, "/-/ready").is_ok_and(|(s, _)| s == 200)
    })
    .expect("gateway ready");
    (p, t.elapsed())
}

/// `n` copies of `block` under new ULIDs (files hard-linked).
fn fill_bucket(block: &Path, bucket: &Path, n: usize) {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(block.join("meta.json")).unwrap()).unwrap();
    let ulid = meta["ulid"].as_str().unwrap().to_string();
    const B32: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    for i in 0..n {
        let suffix: String = [i / 1024 % 32, i / 32 % 32, i % 32]
            .iter()
            .map(|d| B32[*d] as char)
            .collect();
        let new = format!("{}{suffix}", &ulid[..23]);
        let dst = bucket.join(&new);
        std::fs::create_dir_all(dst.join("chunks")).unwrap();
        std::fs::hard_link(block.join("index"), dst.join("index")).unwrap();
        for e in std::fs::read_dir(block.join("chunks")).unwrap() {
            let e = e.unwrap();
            std::fs::hard_link(e.path(), dst.join("chunks").join(e.file_name())).unwrap();
        }
        let mut m = meta.clone();
        m["ulid"] = new.clone().into();
        // One after the other in time, so that time bounds can split them
        // (only the index header is read for the memory figures).
        let (lo, hi) = (
            meta["minTime"].as_i64().unwrap(),
            meta["maxTime"].as_i64().unwrap(),
        );
        let shift = i as i64 * (hi - lo);
        m["minTime"] = (lo + shift).into();
        m["maxTime"] = (hi + shift).into();
        m["compaction"]["sources"] = serde_json::json!([new]);
        std::fs::write(dst.join("meta.json"), m.to_string()).unwrap();
    }
}

/// One block of `series` series (a pod-like label unique per series, two
/// samples each), written by promtool.
fn wide_block(promtool: &Path, dir: &Path, series: usize) -> std::path::PathBuf {
    use std::io::Write;
    let om = dir.join("wide.om");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&om).unwrap());
    writeln!(w, "# TYPE wide_gauge gauge").unwrap();
    for i in 0..series {
        for t in [1_700_000_000u64, 1_700_000_060] {
            writeln!(
                w,
                "wide_gauge{{namespace=\"ns-{}\",pod=\"pod-{i:07}\",node=\"node-{}\"}} {} {t}",
                i % 50,
                i % 300,
                i % 97
            )
            .unwrap();
        }
    }
    writeln!(w, "# EOF").unwrap();
    drop(w);
    let out = dir.join("wide");
    let o = std::process::Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(&om)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(om).unwrap();
    std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("meta.json").is_file())
        .expect("promtool wrote a block")
}

fn main() {
    if let Err(e) = skein_cluster_tests::use_release_binary() {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    let (Some(prometheus), Some(promtool)) =
        (require_binary("prometheus"), require_binary("promtool"))
    else {
        return;
    };
    let runs = env_usize("SKEIN_BENCH_RUNS", 10);
    let instances = env_usize("SKEIN_BENCH_INSTANCES", 100);
    let nblocks = env_usize("SKEIN_BENCH_BLOCKS", 100);
    let cluster = PromqlCluster::start(
        &prometheus,
        &promtool,
        ("127.0.5", 30),
        Target::Store,
        |p| write_bench_dataset(p, instances),
    )
    .expect("setup");
    let gateway_addr: SocketAddr = cluster.store_grpc()[0];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. Fetch throughput.
    let _enter = rt.enter();
    let gateway =
        RemoteStore::connect_lazy(&gateway_addr.to_string(), &ClientConfig::default()).unwrap();
    let rr = RemoteRead::new(
        &format!("http://{}", cluster.prometheus),
        Duration::from_secs(120),
    )
    .unwrap();
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    let selectors: Vec<(&str, Vec<Matcher>)> = vec![
        (
            "every series",
            vec![m(MatchOp::Regex, "__name__", "bench_.+")],
        ),
        (
            "one metric, one job",
            vec![
                m(MatchOp::Equal, "__name__", "bench_requests_total"),
                m(MatchOp::Equal, "job", "api"),
            ],
        ),
        (
            "regex on instance",
            vec![
                m(MatchOp::Equal, "__name__", "bench_cpu_seconds_total"),
                m(MatchOp::Regex, "instance", "host-01.*"),
            ],
        ),
    ];
    println!("\n## Series + sample fetch, {runs} runs each, alternating\n");
    println!("| selector | series | samples | Prometheus p50 (ms) | gateway p50 (ms) | gateway M samples/s | ratio gateway/Prometheus |");
    println!("|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (name, matchers) in &selectors {
        // Warm both (page cache, index cache), and check they agree.
        let (g, p) = rt.block_on(async {
            (
                from_gateway(&gateway, matchers).await,
                from_prometheus(&rr, matchers).await,
            )
        });
        assert_eq!(
            (g.series, g.samples),
            (p.series, p.samples),
            "{name}: gateway and Prometheus disagree"
        );
        let (mut tg, mut tp) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            rt.block_on(async {
                let t = Instant::now();
                from_prometheus(&rr, matchers).await;
                tp.push(t.elapsed());
                let t = Instant::now();
                from_gateway(&gateway, matchers).await;
                tg.push(t.elapsed());
            });
        }
        let (mg, mp) = (median(tg), median(tp));
        let ratio = mg.as_secs_f64() / mp.as_secs_f64();
        ratios.push(ratio);
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            g.series,
            g.samples,
            mp.as_secs_f64() * 1e3,
            mg.as_secs_f64() * 1e3,
            g.samples as f64 / mg.as_secs_f64() / 1e6,
            ratio
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!("\nmedian ratio: {:.2}", ratios[ratios.len() / 2]);

    // 2. and 3. Start-up and memory with many blocks: copies of one
    // high-cardinality block (the bench dataset's indexes are small).
    let work = tempfile::tempdir().unwrap();
    let block = wide_block(
        &promtool,
        work.path(),
        env_usize("SKEIN_BENCH_WIDE_SERIES", 100_000),
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(block.join("meta.json")).unwrap()).unwrap();
    let index_bytes = std::fs::metadata(block.join("index")).unwrap().len();
    let many = work.path().join("many");
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fill_bucket(&block, &many, nblocks);

    let (idle, _) = start_gateway(&empty, &work.path().join("d0"), "127.0.5.41", &[]);
    std::thread::sleep(Duration::from_millis(500));
    let base_rss = rss_kib(idle.pid());
    drop(idle);
    let data_dir = work.path().join("d1");
    let (cold, cold_t) = start_gateway(&many, &data_dir, "127.0.5.42", &[]);
    std::thread::sleep(Duration::from_millis(500));
    let loaded_rss = rss_kib(cold.pid());
    drop(cold);
    let (warm, warm_t) = start_gateway(&many, &data_dir, "127.0.5.43", &[]);
    let warm_rss = rss_kib(warm.pid());
    drop(warm);
    // A gateway bounded to the first half of the blocks' time (a time
    // split): it loads, and holds, only those.
    let (lo, hi) = (
        meta["minTime"].as_i64().unwrap(),
        meta["maxTime"].as_i64().unwrap(),
    );
    let half = lo + (nblocks / 2) as i64 * (hi - lo) - 1;
    let bound = format!("{}.{:03}", half / 1000, half % 1000);
    let (split, _) = start_gateway(&many, &data_dir, "127.0.5.44", &["--max-time", &bound]);
    let split_rss = rss_kib(split.pid());
    drop(split);
    let header_bytes: u64 = std::fs::read_dir(data_dir.join("index-headers"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "\n## {nblocks} blocks of {} series / {} samples each (index {:.1} MiB each)\n",
        meta["stats"]["numSeries"],
        meta["stats"]["numSamples"],
        index_bytes as f64 / 1048576.0
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| start-up to ready, empty --data-dir (headers built) | {:.2} s |",
        cold_t.as_secs_f64()
    );
    println!(
        "| start-up to ready, cached index headers | {:.2} s |",
        warm_t.as_secs_f64()
    );
    println!(
        "| index headers on disk | {:.1} KiB per block ({:.1}% of the index) |",
        header_bytes as f64 / nblocks as f64 / 1024.0,
        header_bytes as f64 / nblocks as f64 / index_bytes as f64 * 100.0
    );
    println!(
        "| RSS: empty bucket / {nblocks} blocks built / {nblocks} blocks from cache | {:.1} / {:.1} / {:.1} MiB |",
        base_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0,
        warm_rss as f64 / 1024.0
    );
    println!(
        "| RSS: --max-time at half the blocks' time (from cache) | {:.1} MiB |",
        split_rss as f64 / 1024.0
    );
    println!(
        "| resident memory per loaded block (from cache) | {:.1} KiB |",
        warm_rss.saturating_sub(base_rss) as f64 / nblocks as f64
    );
}
