//! One Prometheus 2.42 loaded with a generated dataset, and the skein
//! querier that serves the same data through a sidecar, both answering the
//! Prometheus HTTP API.
//!
//! With `SKEIN_PROMQL_DIFF_TARGET=prometheus` the side under test is a
//! second Prometheus over a copy of the same blocks instead: that mode
//! checks the harness (data, requests, comparison), and must agree fully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};

use crate::openmetrics::{format_ts, Dataset};
use crate::{get_json, http_get, http_request, wait_for, Process, Spawned};

/// Environment variable that picks the side under test.
pub const TARGET_ENV: &str = "SKEIN_PROMQL_DIFF_TARGET";

/// What answers as "skein".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `skein query` in front of `skein sidecar` in front of the Prometheus,
    /// the sidecar reading Prometheus' completed blocks from its directory.
    Skein,
    /// A second Prometheus on a copy of the data (harness self-check).
    Prometheus,
    /// `skein query` in front of two `skein store` gateways serving a copy
    /// of Prometheus' blocks from a filesystem bucket.
    Store,
}

impl Target {
    /// From [`TARGET_ENV`]: unset, empty or `skein` means skein.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var(TARGET_ENV).as_deref() {
            Err(_) | Ok("") | Ok("skein") => Ok(Self::Skein),
            Ok("prometheus") => Ok(Self::Prometheus),
            Ok("store") => Ok(Self::Store),
            Ok(other) => bail!("{TARGET_ENV}={other}: expected skein, store or prometheus"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Skein => "skein",
            Self::Prometheus => "prometheus-copy",
            Self::Store => "skein-store",
        }
    }
}

/// What a PromQL bench runs on: Prometheus and promtool from `PATH` (None,
/// after a note, when either is missing) and the target from the
/// environment, with skein's release build unless `SKEIN_BIN` says
/// otherwise.
pub fn bench_setup() -> anyhow::Result<Option<(PathBuf, PathBuf, Target)>> {
    let (Some(prometheus), Some(promtool)) = (
        crate::require_binary("prometheus"),
        crate::require_binary("promtool"),
    ) else {
        return Ok(None);
    };
    let target = Target::from_env()?;
    if target != Target::Prometheus {
        crate::use_release_binary()?;
    }
    Ok(Some((prometheus, promtool, target)))
}

/// The running setup; everything stops and the directory goes away on drop.
pub struct PromqlCluster {
    pub dataset: Dataset,
    /// Prometheus' HTTP address (the reference).
    pub prometheus: SocketAddr,
    /// The HTTP address of the side under test.
    pub target: SocketAddr,
    pub target_kind: Target,
    // Dropped in this order: processes before their directory.
    querier: Option<Process>,
    sidecar: Option<Process>,
    stores: Vec<Process>,
    prometheus_copy: Option<Spawned>,
    prometheus_process: Spawned,
    dir: tempfile::TempDir,
}

impl PromqlCluster {
    /// Generates the data with `write_data` into an OpenMetrics file, turns
    /// it into TSDB blocks with promtool, and starts Prometheus on
    /// `{ip_prefix}.{host_base + 1}:9090`, then either skein (sidecar on
    /// `host_base + 2`, querier on `host_base + 3`) or a second Prometheus
    /// on `host_base + 4`, port 9090.
    pub fn start(
        prometheus_bin: &Path,
        promtool_bin: &Path,
        (ip_prefix, host_base): (&str, u8),
        target: Target,
        write_data: impl FnOnce(&Path) -> anyhow::Result<Dataset>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("skein-promql-").tempdir()?;
        let om = dir.path().join("data.om");
        let t = std::time::Instant::now();
        let dataset = write_data(&om)?;
        eprintln!(
            "generated {} series, {} samples in {:.1?}",
            dataset.series,
            dataset.samples,
            t.elapsed()
        );
        let data = dir.path().join("a");
        import_openmetrics(promtool_bin, &om, &data.join("data"), dataset)?;
        std::fs::remove_file(&om)?;

        let ip = |n: u8| format!("{ip_prefix}.{}", host_base + n);
        let addr = format!("{}:9090", ip(1));
        let prometheus_process = start_prometheus_on_blocks(prometheus_bin, &data, &addr)?;
        let prometheus: SocketAddr = addr.parse()?;
        check_loaded(prometheus, dataset, &data)?;

        let mut cluster = Self {
            dataset,
            prometheus,
            target: prometheus,
            target_kind: target,
            querier: None,
            sidecar: None,
            stores: Vec::new(),
            prometheus_copy: None,
            prometheus_process,
            dir,
        };
        match target {
            Target::Prometheus => {
                let copy = cluster.dir.path().join("b");
                copy_dir(&data.join("data"), &copy.join("data"))?;
                let addr = format!("{}:9090", ip(4));
                cluster.prometheus_copy =
                    Some(start_prometheus_on_blocks(prometheus_bin, &copy, &addr)?);
                cluster.target = addr.parse()?;
                check_loaded(cluster.target, dataset, &copy)?;
            }
            Target::Store => {
                // The same blocks, in a bucket: no WAL, no head.
                let bucket = cluster.dir.path().join("bucket");
                std::fs::create_dir_all(&bucket)?;
                for entry in std::fs::read_dir(data.join("data"))? {
                    let path = entry?.path();
                    if path.join("meta.json").is_file() {
                        if let Some(name) = path.file_name() {
                            copy_dir(&path, &bucket.join(name))?;
                        }
                    }
                }
                let objstore = format!(
                    "type: FILESYSTEM\nconfig:\n  directory: {}\n",
                    bucket.display()
                );
                let mut endpoints = Vec::new();
                for n in [5u8, 6] {
                    let listen = format!("{}:0", ip(n));
                    let data_dir = cluster.dir.path().join(format!("store-{n}"));
                    let data_dir = data_dir.to_string_lossy().to_string();
                    let store = Process::start(
                        &format!("store-{n}"),
                        &[
                            "store",
                            "--objstore.config",
                            &objstore,
                            "--data-dir",
                            &data_dir,
                            "--grpc-address",
                            &listen,
                            "--http-address",
                            &listen,
                            "--cluster.disable",
                        ],
                    )?;
                    endpoints.push(store.grpc.to_string());
                    cluster.stores.push(store);
                }
                let querier =
                    start_querier(&ip(3), &endpoints.join(","), &["--query.eval-threads", "4"])?;
                let http = querier.http;
                cluster.querier = Some(querier);
                cluster.target = http;
                for e in &endpoints {
                    wait_for(
                        "the querier to list the store gateway as healthy",
                        Duration::from_secs(60),
                        || store_healthy(http, e, false),
                    )?;
                }
            }
            Target::Skein => {
                let prom_url = format!("http://{addr}");
                let sidecar_ip = format!("{}:0", ip(2));
                // Completed blocks are read from Prometheus' directory.
                let tsdb = data.join("data").to_string_lossy().to_string();
                let sidecar = Process::start(
                    "sidecar",
                    &[
                        "sidecar",
                        "--tsdb.path",
                        &tsdb,
                        "--prometheus.url",
                        &prom_url,
                        "--prometheus.refresh-interval",
                        "1s",
                        "--grpc-address",
                        &sidecar_ip,
                        "--http-address",
                        &sidecar_ip,
                        "--cluster.disable",
                    ],
                )?;
                let sidecar_grpc = sidecar.grpc.to_string();
                let sidecar_http = sidecar.http;
                wait_for(
                    "the sidecar to read Prometheus' blocks from disk",
                    Duration::from_secs(60),
                    || crate::metric_at(sidecar_http, "skein_sidecar_disk_blocks") >= 1.0,
                )?;
                let querier = start_querier(
                    &ip(3),
                    &sidecar_grpc,
                    &[
                        "--query.replica-label",
                        "replica",
                        "--query.eval-threads",
                        "4",
                    ],
                )?;
                let http = querier.http;
                cluster.sidecar = Some(sidecar);
                cluster.querier = Some(querier);
                cluster.target = http;
                wait_for(
                    "the querier to list the sidecar as healthy",
                    Duration::from_secs(60),
                    || sidecar_healthy(http, &sidecar_grpc),
                )?;
            }
        }
        Ok(cluster)
    }

    /// gRPC addresses of the store gateways (Target::Store only).
    /// Process ids: the reference Prometheus, and every process of the
    /// side under test (querier, sidecar or gateways, or the copy).
    pub fn pids(&self) -> (u32, Vec<u32>) {
        let mut target: Vec<u32> = self
            .querier
            .iter()
            .chain(&self.sidecar)
            .chain(&self.stores)
            .map(Process::pid)
            .collect();
        target.extend(self.prometheus_copy.as_ref().map(|p| p.0.id()));
        (self.prometheus_process.0.id(), target)
    }

    pub fn store_grpc(&self) -> Vec<SocketAddr> {
        self.stores.iter().map(|s| s.grpc).collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether every process is still running.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        let mut dead = Vec::new();
        for p in [&mut self.querier, &mut self.sidecar].into_iter().flatten() {
            if !p.is_running() {
                dead.push(p.name().to_string());
            }
        }
        for p in &mut self.stores {
            if !p.is_running() {
                dead.push(p.name().to_string());
            }
        }
        for (name, p) in [
            ("prometheus", Some(&mut self.prometheus_process)),
            ("prometheus-copy", self.prometheus_copy.as_mut()),
        ] {
            if let Some(p) = p {
                if !matches!(p.0.try_wait(), Ok(None)) {
                    dead.push(name.to_string());
                }
            }
        }
        ensure!(
            dead.is_empty(),
            "exited during the run: {}",
            dead.join(", ")
        );
        Ok(())
    }
}

/// Runs promtool's OpenMetrics backfill and checks that the blocks hold
/// every generated sample (promtool drops some kinds of bad input silently).
pub fn import_openmetrics(
    promtool: &Path,
    file: &Path,
    out: &Path,
    dataset: Dataset,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let t = std::time::Instant::now();
    let o = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(file)
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .context("running promtool")?;
    ensure!(
        o.status.success(),
        "promtool create-blocks-from openmetrics failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let list = Command::new(promtool)
        .args(["tsdb", "list"])
        .arg(out)
        .output()
        .context("running promtool tsdb list")?;
    ensure!(list.status.success(), "promtool tsdb list failed");
    // Columns: ULID, min time, max time, duration, samples, chunks, series, size.
    let text = String::from_utf8_lossy(&list.stdout);
    let mut samples = 0usize;
    let mut blocks = 0;
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 8 {
            samples += cols[4]
                .parse::<usize>()
                .with_context(|| format!("promtool tsdb list: {line}"))?;
            blocks += 1;
        }
    }
    ensure!(
        samples == dataset.samples,
        "the blocks hold {samples} samples, {} were written:\n{text}",
        dataset.samples
    );
    eprintln!(
        "imported {samples} samples into {blocks} blocks in {:.1?}",
        t.elapsed()
    );
    Ok(())
}

/// Starts Prometheus on the TSDB in `dir/data` with only external labels
/// (`replica: a`), no scrapes, and retention long enough to keep old blocks.
pub fn start_prometheus_on_blocks(
    binary: &Path,
    dir: &Path,
    addr: &str,
) -> anyhow::Result<Spawned> {
    start_prometheus_on_blocks_labelled(binary, dir, addr, &[("replica", "a")])
}

/// [`start_prometheus_on_blocks`] with these external labels.
pub fn start_prometheus_on_blocks_labelled(
    binary: &Path,
    dir: &Path,
    addr: &str,
    external_labels: &[(&str, &str)],
) -> anyhow::Result<Spawned> {
    let config = dir.join("prometheus.yml");
    let mut yaml = String::from("global:\n  external_labels:\n");
    for (k, v) in external_labels {
        yaml.push_str(&format!("    {k}: {v:?}\n"));
    }
    std::fs::write(&config, yaml)?;
    let log = std::fs::File::create(dir.join("prometheus.log"))?;
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting prometheus")?;
    let mut p = Spawned(child);
    let sock: SocketAddr = addr.parse()?;
    let ready = wait_for("prometheus to be ready", Duration::from_secs(60), || {
        if !matches!(p.0.try_wait(), Ok(None)) {
            return true;
        }
        http_get(sock, "/-/ready").is_ok_and(|(s, _)| s == 200)
    });
    if ready.is_err() || !matches!(p.0.try_wait(), Ok(None)) {
        p.kill();
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        bail!(
            "prometheus on {addr} did not become ready; log tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(p)
}

/// Checks that the Prometheus at `addr` serves every generated series.
fn check_loaded(addr: SocketAddr, dataset: Dataset, dir: &Path) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/series?{}",
        form(&[
            ("match[]", "{__name__=~\".+\"}"),
            ("start", &format_ts(dataset.start_ms)),
            ("end", &format_ts(dataset.end_ms)),
        ])
    );
    let v = get_json(addr, &path)?;
    let n = v["data"].as_array().map_or(0, Vec::len);
    ensure!(
        n == dataset.series,
        "prometheus on {addr} serves {n} series, {} were written (data in {})",
        dataset.series,
        dir.display()
    );
    let mid = (dataset.start_ms + dataset.end_ms) / 2;
    let a = instant(
        addr,
        "count({__name__=~\".+\"})",
        mid,
        Duration::from_secs(10),
    )?;
    ensure!(a.status == 200, "count at mid-data: {}", a.text());
    let v: serde_json::Value = serde_json::from_slice(&a.body)?;
    let count: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("count at mid-data: {v}"))?;
    ensure!(count > 0.0, "no series at mid-data on {addr}");
    eprintln!("prometheus on {addr}: {n} series, {count} present at mid-data");
    Ok(())
}

/// Whether the querier's `/api/v1/stores` lists the sidecar as checked,
/// without error, carrying the external label.
/// A querier on `ip` asking the static `endpoints` (comma-separated).
pub fn start_querier(ip: &str, endpoints: &str, extra: &[&str]) -> anyhow::Result<Process> {
    let listen = format!("{ip}:0");
    let mut args = vec![
        "query",
        "--grpc-address",
        &listen,
        "--http-address",
        &listen,
        "--cluster.disable",
        "--endpoint",
        endpoints,
        "--store.health-check-interval",
        "500ms",
    ];
    args.extend_from_slice(extra);
    Process::start("query", &args)
}

fn sidecar_healthy(querier: SocketAddr, sidecar_grpc: &str) -> bool {
    store_healthy(querier, sidecar_grpc, true)
}

/// Whether the querier lists the store at `grpc` as checked and healthy
/// (and, with `replica_a`, carrying the replica label of the sidecar).
pub fn store_healthy(querier: SocketAddr, grpc: &str, replica_a: bool) -> bool {
    let Ok(v) = get_json(querier, "/api/v1/stores") else {
        return false;
    };
    let Some(types) = v["data"].as_object() else {
        return false;
    };
    types
        .values()
        .filter_map(|l| l.as_array())
        .flatten()
        .any(|s| {
            s["name"].as_str().is_some_and(|n| n.contains(grpc))
                && s["lastError"].is_null()
                && !s["lastCheck"].is_null()
                && (!replica_a
                    || s["labelSets"]
                        .as_array()
                        .is_some_and(|sets| sets.iter().any(|l| l["replica"] == "a")))
        })
}

pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A raw answer of the HTTP API.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text, cut to 300 characters.
    pub fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let mut out: String = s.chars().take(300).collect();
        if out.len() < s.len() {
            out.push_str("...");
        }
        out
    }
}

/// Percent-encodes a query string.
pub fn form(params: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /api/v1/query` at `time_ms`.
pub fn instant(
    addr: SocketAddr,
    query: &str,
    time_ms: i64,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let path = format!(
        "/api/v1/query?{}",
        form(&[("query", query), ("time", &format_ts(time_ms))])
    );
    let (status, body) = http_request(addr, "GET", &path, None, timeout)?;
    Ok(Answer { status, body })
}

/// `GET /api/v1/query_range` from `start_ms` to `end_ms` every `step_ms`.
pub fn range(
    addr: SocketAddr,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let path = format!(
        "/api/v1/query_range?{}",
        form(&[
            ("query", query),
            ("start", &format_ts(start_ms)),
            ("end", &format_ts(end_ms)),
            ("step", &format_ts(step_ms)),
        ])
    );
    let (status, body) = http_request(addr, "GET", &path, None, timeout)?;
    Ok(Answer { status, body })
}
