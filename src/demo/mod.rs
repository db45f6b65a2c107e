//! `skein demo`: a whole local cluster on 127.0.0.x from one command. Three
//! queriers that find each other by gossip; a pair of live synthetic
//! replicas, one with a gap so that deduplication shows; a filesystem
//! bucket of generated TSDB blocks served by two store gateways in one
//! group; and, when a `prometheus` binary is on the PATH, a real Prometheus
//! HA pair with sidecars, scraping the demo's own nodes. Every node is a
//! process of its own, started from this binary; Ctrl-C stops them all and
//! removes what the demo wrote.

pub mod history;
pub mod layout;
pub mod process;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::model::time::now_ms;
use crate::model::Labels;
use crate::synthetic::GeneratorConfig;
use layout::{Layout, LayoutInput, NodeSpec, Role, REPLICA_LABEL};
use process::Running;

#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Where the bucket, index headers, Prometheus data and logs go; a new
    /// temporary directory, removed at the end, when `None`.
    pub work_dir: Option<PathBuf>,
    /// How far back the bucket's history reaches.
    pub history: Duration,
    /// Simulated targets of the synthetic series.
    pub targets: u32,
    /// Run a real Prometheus pair when one is on the PATH.
    pub prometheus: bool,
    /// How long to wait for the cluster to come up.
    pub startup_timeout: Duration,
}

/// Seed of all generated data: live replicas and history agree.
const SEED: u64 = 1;
const SCRAPE_INTERVAL_MS: i64 = 15_000;
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The work directory, removed on drop when the demo made it.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(requested: Option<&Path>) -> anyhow::Result<Self> {
        match requested {
            Some(dir) => {
                if dir.exists()
                    && std::fs::read_dir(dir)
                        .with_context(|| format!("reading --work-dir {}", dir.display()))?
                        .next()
                        .is_some()
                {
                    bail!(
                        "--work-dir {} is not empty: give a new or empty directory",
                        dir.display()
                    );
                }
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating --work-dir {}", dir.display()))?;
                Ok(Self {
                    path: std::fs::canonicalize(dir)?,
                    remove: false,
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!("skein-demo-{}", std::process::id()));
                if path.exists() {
                    std::fs::remove_dir_all(&path)
                        .with_context(|| format!("removing stale {}", path.display()))?;
                }
                std::fs::create_dir_all(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                Ok(Self { path, remove: true })
            }
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A `prometheus` executable on the PATH.
fn find_prometheus() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

/// Fails with a clear message when an address of the plan is taken or
/// cannot be bound at all.
async fn check_addresses(layout: &Layout) -> anyhow::Result<()> {
    for node in &layout.nodes {
        let mut tcp = vec![node.http()];
        tcp.extend(node.grpc());
        for addr in tcp {
            if let Err(e) = tokio::net::TcpListener::bind(addr).await {
                bail!(
                    "{} cannot listen on {addr}: {e} (is another demo running? the demo needs \
                     the 127.0.0.0/8 loopback addresses and ports 9090, 10900-10902 on them)",
                    node.name
                );
            }
        }
        if node.role != Role::Prometheus {
            let gossip = std::net::SocketAddr::new(node.http().ip(), layout::GOSSIP_PORT);
            if let Err(e) = tokio::net::UdpSocket::bind(gossip).await {
                bail!("{} cannot use UDP {gossip} for gossip: {e}", node.name);
            }
        }
    }
    Ok(())
}

fn progress(line: &str, done: bool) {
    let mut out = std::io::stdout();
    if out.is_terminal() {
        let _ = write!(out, "\r\x1b[2K{line}");
        if done {
            let _ = writeln!(out);
        }
    } else if done {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

async fn http_ok(client: &reqwest::Client, url: &str) -> bool {
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

/// Healthy Store API members a querier reports in `/api/v1/cluster`.
async fn healthy_members(client: &reqwest::Client, node: &NodeSpec) -> usize {
    let url = format!("http://{}/api/v1/cluster", node.http());
    let Ok(resp) = client.get(url).send().await else {
        return 0;
    };
    let Ok(body) = resp.bytes().await else {
        return 0;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return 0;
    };
    v["data"]["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .filter_map(|g| g["members"].as_array())
                .flatten()
                .filter(|m| m["health"] == "healthy")
                .count()
        })
        .unwrap_or(0)
}

/// Waits until every node is ready and every querier sees every store
/// member healthy.
async fn wait_until_up(
    layout: &Layout,
    running: &mut [Running],
    timeout: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let began = Instant::now();
    let want = layout.store_members();
    loop {
        let mut ready = 0;
        let mut waiting = vec![];
        for r in running.iter_mut() {
            if let Some(status) = r.check_exit() {
                bail!(
                    "{} exited during start-up ({status}); the end of {}:\n{}",
                    r.spec.name,
                    r.log.display(),
                    r.log_tail(15)
                );
            }
            let url = format!("http://{}{}", r.spec.http(), r.spec.ready_path());
            if http_ok(&client, &url).await {
                ready += 1;
            } else {
                waiting.push(r.spec.name.clone());
            }
        }
        let mut seen = usize::MAX;
        for q in layout.queriers() {
            seen = seen.min(healthy_members(&client, q).await);
        }
        if ready == running.len() && seen >= want {
            progress(
                &format!(
                    "{ready} processes ready; every querier sees {want} healthy store members \
                     ({:.1}s)",
                    began.elapsed().as_secs_f64()
                ),
                true,
            );
            return Ok(());
        }
        progress(
            &format!(
                "starting: {ready}/{} ready, queriers see {}/{want} store members",
                running.len(),
                seen.min(want)
            ),
            false,
        );
        if began.elapsed() > timeout {
            progress("", true);
            bail!(
                "the cluster did not come up within {timeout:?}; not ready: {}; logs are in {}",
                waiting.join(", "),
                running
                    .first()
                    .and_then(|r| r.log.parent())
                    .map_or_else(String::new, |p| p.display().to_string())
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => bail!("interrupted during start-up"),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// One query through the first querier, to show that the cluster answers
/// before telling the user to ask it.
async fn self_check(layout: &Layout) -> anyhow::Result<usize> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}/api/v1/query", layout.query_url());
    let body = client
        .get(url)
        .query(&[("query", "count by (instance) (http_requests_total)")])
        .send()
        .await?
        .bytes()
        .await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).context("the first query's answer is not JSON")?;
    if v["status"] != "success" {
        bail!("the first query failed: {v}");
    }
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

fn summary(
    layout: &Layout,
    running: &[Running],
    work_dir: &WorkDir,
    prometheus_note: &str,
) -> String {
    let url = layout.query_url();
    let mut s = String::new();
    s.push_str("\nskein demo is running:\n\n");
    s.push_str(&format!(
        "  {:<13} {:<8} {:<10} {:<18} {:<26} {}\n",
        "name", "pid", "role", "gRPC", "HTTP", "what"
    ));
    for r in running {
        let n = &r.spec;
        s.push_str(&format!(
            "  {:<13} {:<8} {:<10} {:<18} {:<26} {}\n",
            n.name,
            r.pid().map_or_else(|| "-".to_string(), |p| p.to_string()),
            n.role.as_str(),
            n.grpc().map_or_else(|| "-".to_string(), |a| a.to_string()),
            format!("http://{}", n.http()),
            n.about
        ));
    }
    s.push_str(&format!(
        "\n  work dir {}{} (logs in logs/)\n",
        work_dir.path.display(),
        if work_dir.remove {
            ", removed on exit"
        } else {
            ""
        }
    ));
    if !prometheus_note.is_empty() {
        s.push_str(&format!("  {prometheus_note}\n"));
    }
    s.push_str(&format!(
        "\nQuery URL (Prometheus-compatible; a Grafana Prometheus data source takes it as is):\n\n  {url}\n\nWeb UI (query and graph, the stores and groups, the cluster):\n\n  {url}/graph\n\nThe same API through the frontend (range queries split, cached, hedged):\n\n  http://{}:{}\n",
        layout::FRONTEND_IP,
        layout::HTTP_PORT
    ));
    s.push_str(&format!(
        r#"
Try:

  # Deduplicated: one series per target, and no hole although source-b was down
  # from 40 to 25 minutes ago
  curl -sG {url}/api/v1/query_range \
    --data-urlencode 'query=http_requests_total{{instance="target-0000",code="200"}}' \
    --data-urlencode "start=$(( $(date +%s) - 3600 ))" --data-urlencode "end=$(date +%s)" \
    --data-urlencode step=60

  # The same without deduplication: both replicas apart, source-b's gap shows
  curl -sG {url}/api/v1/query_range --data-urlencode dedup=false \
    --data-urlencode 'query=http_requests_total{{instance="target-0000",code="200"}}' \
    --data-urlencode "start=$(( $(date +%s) - 3600 ))" --data-urlencode "end=$(date +%s)" \
    --data-urlencode step=60

  # Live and historical data in one answer: the last day, its older part from the
  # store gateways' blocks, the last hours from the live replicas
  curl -sG {url}/api/v1/query_range \
    --data-urlencode 'query=sum(rate(http_requests_total[5m]))' \
    --data-urlencode "start=$(( $(date +%s) - 86400 ))" --data-urlencode "end=$(date +%s)" \
    --data-urlencode step=1800

  # What the querier knows of the cluster
  curl -s {url}/api/v1/stores

  # With the Prometheus pair: its rules and alerts, scrape targets and metric
  # metadata, each once for the pair
  curl -s {url}/api/v1/alerts
  curl -s {url}/api/v1/targets

Kill store-2 (kill -9 its pid) and queries go on answering from store-1.
Ctrl-C stops the cluster.
"#
    ));
    s
}

/// Runs the demo until `shutdown` is canceled.
pub async fn run(cfg: DemoConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    if cfg.history < Duration::from_secs(4 * 3600) {
        bail!("--history must be at least 4h, got {:?}", cfg.history);
    }
    let skein = std::env::current_exe().context("finding the skein binary")?;
    let prometheus = if cfg.prometheus {
        find_prometheus()
    } else {
        None
    };
    let prometheus_note = match (&prometheus, cfg.prometheus) {
        (Some(p), _) => format!("Prometheus HA pair from {}", p.display()),
        (None, true) => {
            "no prometheus on the PATH: install one to add a real Prometheus HA pair".to_string()
        }
        (None, false) => String::new(),
    };
    let work_dir = WorkDir::new(cfg.work_dir.as_deref())?;
    let layout = layout::layout(&LayoutInput {
        work_dir: &work_dir.path,
        targets: cfg.targets,
        prometheus: prometheus.as_deref(),
    });
    check_addresses(&layout).await?;

    // History: two-hour blocks from --history ago up to the last block
    // that ends an hour ago or earlier, so between one and three hours ago:
    // the live replicas' six hours overlap it for hours after the start.
    let now = now_ms();
    let history_ms = i64::try_from(cfg.history.as_millis()).unwrap_or(i64::MAX);
    let generator = GeneratorConfig {
        seed: SEED,
        targets: cfg.targets as usize,
        interval_ms: SCRAPE_INTERVAL_MS,
        start_ms: 0,
        end_ms: 0,
        gaps: vec![],
        external_labels: Labels::default(),
    };
    let ext = Labels::from_pairs([("cluster", "demo"), (REPLICA_LABEL, "a")])?;
    let bucket = layout::bucket_dir(&work_dir.path);
    let began = Instant::now();
    let (from, to) = (now - history_ms, now - 3_600_000);
    let written = tokio::task::spawn_blocking(move || {
        history::write_history(&bucket, &generator, &ext, from, to, |i, n| {
            progress(&format!("generating history: block {i}/{n}"), false)
        })
    })
    .await??;
    progress(
        &format!(
            "generated history: {} blocks of 2h, {} series, {} samples in {:.1}s",
            written.blocks,
            written.series,
            written.samples,
            began.elapsed().as_secs_f64()
        ),
        true,
    );

    for (path, text) in layout.prometheus_configs(&work_dir.path) {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let log_dir = work_dir.path.join("logs");
    std::fs::create_dir_all(&log_dir)?;
    let mut running = Vec::with_capacity(layout.nodes.len());
    let mut started = Ok(());
    for spec in &layout.nodes {
        match process::spawn(spec, &skein, &log_dir) {
            Ok(r) => running.push(r),
            Err(e) => {
                started = Err(e);
                break;
            }
        }
    }
    let up = match started {
        Ok(()) => wait_until_up(&layout, &mut running, cfg.startup_timeout, &shutdown).await,
        Err(e) => Err(e),
    };
    let result = match up {
        Ok(()) => match self_check(&layout).await {
            Ok(targets) => {
                println!(
                    "first query answered: {targets} targets of http_requests_total{}",
                    summary(&layout, &running, &work_dir, &prometheus_note)
                );
                watch(&mut running, &shutdown).await;
                Ok(())
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    println!("stopping {} processes...", running.len());
    stop_all(&mut running).await;
    if work_dir.remove {
        println!("stopped; removed {}", work_dir.path.display());
    } else {
        println!("stopped; kept {}", work_dir.path.display());
    }
    result
}

/// Reports processes that end while the demo runs, until `shutdown`.
async fn watch(running: &mut [Running], shutdown: &CancellationToken) {
    let mut reported = vec![false; running.len()];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        for (r, done) in running.iter_mut().zip(reported.iter_mut()) {
            if *done {
                continue;
            }
            if let Some(status) = r.check_exit() {
                *done = true;
                println!(
                    "{} ({}) exited: {status}; the others go on (log: {})",
                    r.spec.name,
                    r.spec.role.as_str(),
                    r.log.display()
                );
            }
        }
    }
}

/// Stops the queriers first, so clients see them go before their stores,
/// then everything else.
async fn stop_all(running: &mut [Running]) {
    for queriers_first in [true, false] {
        let batch = || |r: &&mut Running| (r.spec.role == Role::Querier) == queriers_first;
        for r in running.iter_mut().filter(batch()) {
            r.terminate();
        }
        for r in running.iter_mut().filter(batch()) {
            r.wait_or_kill(STOP_GRACE).await;
        }
    }
}
