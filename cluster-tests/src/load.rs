//! A steady query load for fault tests: threads ask one query again and
//! again, and every answer that is not the expected one (an error, a
//! failed status, a warning, other data) counts as a failure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::get_json;

pub struct Load {
    path: String,
    /// The `data` every answer must hold.
    want: serde_json::Value,
    latencies: Mutex<Vec<f64>>,
    failures: Mutex<Vec<String>>,
}

/// What a phase of load measured.
#[derive(Debug)]
pub struct Phase {
    pub queries: usize,
    pub failures: Vec<String>,
    pub p99_ms: f64,
}

impl Load {
    pub fn new(path: &str, want: serde_json::Value) -> Self {
        Self {
            path: path.to_string(),
            want,
            latencies: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sends the query once to `querier` and records the outcome.
    pub fn query(&self, querier: SocketAddr) {
        let started = Instant::now();
        let r = get_json(querier, &self.path);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let failure = match r {
            Ok(v) if v["status"] == "success" && v["warnings"].is_null() => {
                (v["data"] != self.want).then(|| format!("{querier}: wrong answer: {v}"))
            }
            Ok(v) => Some(format!("{querier}: {v}")),
            Err(e) => Some(format!("{querier}: {e:#}")),
        };
        self.latencies.lock().unwrap().push(ms);
        if let Some(f) = failure {
            self.failures.lock().unwrap().push(f);
        }
    }

    /// What was recorded since the last call, printed as
    /// `<name>: N queries, F failed, p99 X ms`.
    pub fn take(&self, name: &str) -> Phase {
        let mut l = std::mem::take(&mut *self.latencies.lock().unwrap());
        l.sort_by(|a, b| a.total_cmp(b));
        let p99_ms = l
            .get((l.len() * 99 / 100).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        println!(
            "{name}: {} queries, {} failed, p99 {p99_ms:.1} ms",
            l.len(),
            failures.len()
        );
        Phase {
            queries: l.len(),
            failures,
            p99_ms,
        }
    }
}

/// Clears a "keep running" flag when dropped, so load threads of a
/// `std::thread::scope` stop even when an assertion in the scope panics (the
/// scope waits for its threads; without this the test would hang until the
/// runner kills it, and its processes with it would never be cleaned up).
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A dashboard's range queries over the synthetic stores' metrics.
pub const DASHBOARD_QUERIES: [&str; 4] = [
    "sum by (instance) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total{code=\"500\"}[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "max by (instance) (http_requests_total)",
];

/// What [`dashboard`] measured: answered queries' times (sorted) and the
/// failures (errors, failed statuses, answers with warnings).
pub struct Dashboard {
    pub times: Vec<std::time::Duration>,
    pub failed: usize,
}

impl Dashboard {
    /// The `q` quantile of the answered queries' times.
    pub fn at(&self, q: f64) -> std::time::Duration {
        let i = ((self.times.len() as f64 * q) as usize).min(self.times.len().saturating_sub(1));
        self.times.get(i).copied().unwrap_or_default()
    }
}

/// `threads` clients asking `queries` in turn as range queries over the
/// last `span_secs` up to now at `step` for `secs` seconds.
pub fn dashboard(
    addr: SocketAddr,
    queries: &[&str],
    threads: usize,
    secs: u64,
    span_secs: u64,
) -> Dashboard {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let queries: Arc<Vec<String>> = Arc::new(queries.iter().map(|q| q.to_string()).collect());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, failed, queries) = (stop.clone(), failed.clone(), queries.clone());
            std::thread::spawn(move || {
                let mut times = Vec::new();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let (start, end) = ((now - span_secs).to_string(), now.to_string());
                    let body = crate::promql_setup::form(&[
                        ("query", &queries[i % queries.len()]),
                        ("start", &start),
                        ("end", &end),
                        ("step", "60"),
                    ]);
                    let t0 = Instant::now();
                    match crate::http_request(
                        addr,
                        "POST",
                        "/api/v1/query_range",
                        Some(("application/x-www-form-urlencoded", body.as_bytes())),
                        Duration::from_secs(60),
                    ) {
                        Ok((200, b)) if !String::from_utf8_lossy(&b).contains("\"warnings\"") => {
                            times.push(t0.elapsed())
                        }
                        other => {
                            eprintln!("failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
                times
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut times: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect();
    times.sort();
    Dashboard {
        times,
        failed: failed.load(Ordering::Relaxed),
    }
}
