//! A large Series answer through `skein sidecar`: 100k series in a real
//! Prometheus 2.42 (blocks built with promtool), read once by a remote-read
//! client straight from Prometheus and once through the sidecar's Store API.
//! Prints throughput for both and the sidecar's peak memory.
//!
//!     cargo bench --bench sidecar
//!
//! Needs `prometheus` and `promtool` on PATH. SKEIN_BENCH_SERIES overrides
//! the series count.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use skein::model::{MatchOp, Matcher};
use skein::query::merge::decode_series;
use skein::sidecar::remote_read::RemoteRead;
use skein::store::{ClientConfig, RemoteStore, SeriesFrame, SeriesRequest, Store};

const START: i64 = 1_700_000_000_000;
const SAMPLES: i64 = 12;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} not ready");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let series: usize = std::env::var("SKEIN_BENCH_SERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.om");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
        writeln!(f, "# TYPE skein_bench gauge").expect("write");
        let mut line = String::new();
        for i in 0..SAMPLES {
            for s in 0..series {
                line.clear();
                let _ = writeln!(
                    line,
                    "skein_bench{{series=\"{s}\",shard=\"{}\"}} {} {}",
                    s % 16,
                    (s as i64 + i) as f64,
                    (START + i * 15_000) / 1000
                );
                f.write_all(line.as_bytes()).expect("write");
            }
        }
        writeln!(f, "# EOF").expect("write");
    }
    let data = dir.path().join("data");
    let t = Instant::now();
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("built blocks in {:?}", t.elapsed());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1h\n  external_labels:\n    replica: a\n",
    )
    .expect("config");
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let _prom = Kill(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--storage.tsdb.retention.time=100y")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    wait_ready(&format!("http://{prom_addr}/-/ready")).await;
    let grpc = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let sidecar = Kill(
        Command::new(env!("CARGO_BIN_EXE_skein"))
            .args([
                "sidecar",
                "--prometheus.url",
                &format!("http://{prom_addr}"),
                "--grpc-address",
                &grpc,
                "--http-address",
                &http,
                "--cluster.disable",
                "--log.level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sidecar"),
    );
    wait_ready(&format!("http://{http}/-/ready")).await;
    let pid = sidecar.0.id();
    let idle = peak_rss_kib(pid);
    let matchers = vec![Matcher::new(MatchOp::Equal, "__name__", "skein_bench").expect("matcher")];
    let (mint, maxt) = (START - 1, START + SAMPLES * 15_000);

    let mut rows = Vec::new();
    for round in 0..2 {
        // Straight from Prometheus.
        let rr = RemoteRead::new(&format!("http://{prom_addr}"), Duration::from_secs(10))
            .expect("client");
        let t = Instant::now();
        let mut s = std::pin::pin!(rr.read(&matchers, mint, maxt, None).await.expect("read"));
        let (mut n, mut samples, mut buf) = (0usize, 0usize, Vec::new());
        while let Some(x) = s.next().await {
            let x = x.expect("series");
            buf.clear();
            decode_series(&x.chunks, &mut buf).expect("decode");
            samples += buf.len();
            n += 1;
        }
        let direct = (t.elapsed(), n, samples);

        // Through the sidecar's Store API.
        let client = RemoteStore::connect_lazy(&grpc, &ClientConfig::default()).expect("client");
        let t = Instant::now();
        let mut s = client
            .series(SeriesRequest::new(mint, maxt, matchers.clone()))
            .await
            .expect("series");
        let (mut n, mut samples) = (0usize, 0usize);
        while let Some(f) = s.next().await {
            if let SeriesFrame::Series(x) = f.expect("frame") {
                buf.clear();
                decode_series(&x.chunks, &mut buf).expect("decode");
                samples += buf.len();
                n += 1;
            }
        }
        let via = (t.elapsed(), n, samples);
        if round == 1 {
            rows.push(("remote read, direct", direct));
            rows.push(("through skein sidecar", via));
        }
    }
    let peak = peak_rss_kib(pid);
    println!("{series} series x {SAMPLES} samples, one Series request, second of two rounds\n");
    println!("| path | series | samples | seconds | M samples/s | series/s |");
    println!("|---|---|---|---|---|---|");
    for (name, (took, n, samples)) in &rows {
        println!(
            "| {name} | {n} | {samples} | {:.2} | {:.2} | {:.0} |",
            took.as_secs_f64(),
            *samples as f64 / took.as_secs_f64() / 1e6,
            *n as f64 / took.as_secs_f64()
        );
    }
    println!(
        "\nsidecar peak RSS: {:.1} MiB (idle {:.1} MiB)",
        peak as f64 / 1024.0,
        idle as f64 / 1024.0
    );
}
