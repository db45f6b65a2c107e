//! Remote read against real Prometheus 2.42: blocks built with promtool are
//! served by a Prometheus process, and the streamed XOR chunks it returns
//! decode to exactly the samples that went in. Skipped without a
//! `prometheus` binary unless SKEIN_REQUIRE_PROMETHEUS=1 (CI sets it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use skein::model::{MatchOp, Matcher, Sample};
use skein::query::merge::decode_series;
use skein::sidecar::remote_read::RemoteRead;

fn binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn require(name: &str) -> Option<PathBuf> {
    match binary(name) {
        Some(p) => Some(p),
        None if std::env::var("SKEIN_REQUIRE_PROMETHEUS").as_deref() == Ok("1") => {
            panic!("{name} is not on PATH but SKEIN_REQUIRE_PROMETHEUS=1")
        }
        None => {
            eprintln!("skipping: {name} is not on PATH (apt-get install prometheus)");
            None
        }
    }
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const START: i64 = 1_700_000_000_000;

/// Three series of 2,000 samples each, at 15 s, with every value shape.
fn series() -> Vec<(String, Vec<Sample>)> {
    (0..3)
        .map(|k| {
            let samples = (0..2_000)
                .map(|i| Sample {
                    t: START + i * 15_000 + if k == 2 { (i % 7) - 3 } else { 0 },
                    v: match k {
                        0 => (i * 3) as f64,
                        1 => ((i as f64) / 17.0).sin(),
                        _ => {
                            if i % 50 == 0 {
                                f64::INFINITY
                            } else {
                                i as f64 * 0.25
                            }
                        }
                    },
                })
                .collect();
            (format!("skein_rr_test{{k=\"{k}\"}}"), samples)
        })
        .collect()
}

fn write_openmetrics(path: &Path, series: &[(String, Vec<Sample>)]) {
    let mut text = String::from("# TYPE skein_rr_test gauge\n");
    for (name, samples) in series {
        for s in samples {
            let v = if s.v.is_infinite() {
                "+Inf".to_string()
            } else {
                format!("{:?}", s.v)
            };
            let _ = writeln!(text, "{name} {v} {}.{:03}", s.t / 1000, s.t % 1000);
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(path, text).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chunks_from_real_prometheus_decode_to_the_input() {
    let (Some(prometheus), Some(promtool)) = (require("prometheus"), require("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("input.om");
    let want = series();
    write_openmetrics(&input, &want);
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _prom = Prometheus(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=100y")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/-/ready")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "prometheus did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let rr = RemoteRead::new(&base, Duration::from_secs(5)).unwrap();
    let matchers = [Matcher::new(MatchOp::Regex, "__name__", "skein_rr_.*").unwrap()];
    let got: Vec<_> = rr
        .read(&matchers, START - 60_000, START + 2_000 * 15_000, None)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(got.len(), 3);
    for (s, (_, samples)) in got.into_iter().zip(&want) {
        let s = s.unwrap();
        let mut v = Vec::new();
        decode_series(&s.chunks, &mut v).unwrap();
        assert_eq!(v.len(), samples.len(), "{}", s.labels);
        assert!(
            v.iter()
                .zip(samples)
                .all(|(a, b)| a.t == b.t && a.v.to_bits() == b.v.to_bits()),
            "{}: samples differ",
            s.labels
        );
    }

    // An HTTP error from the server is a clear error naming it.
    let wrong = RemoteRead::new(&format!("{base}/no/such/prefix"), Duration::from_secs(5)).unwrap();
    let err = wrong
        .read(&matchers, START, START + 1, None)
        .await
        .err()
        .expect("an error");
    assert!(
        err.to_string().contains(&addr) && err.to_string().contains("404"),
        "{err}"
    );
}
