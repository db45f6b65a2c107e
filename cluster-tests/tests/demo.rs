//! `skein demo`, as a new user runs it: one command brings up the whole
//! cluster, prints the query URL, answers deduplicated data that spans the
//! live replicas and the store gateways' history, and on Ctrl-C stops every
//! process and removes its work directory. Uses 127.0.0.x (the demo's own
//! addresses), and runs the Prometheus pair too when it is on the PATH.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use skein_cluster_tests::promql_setup::form;
use skein_cluster_tests::{get_json, http_get, require_binary, skein_bin, wait_for};

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A range query's result through the querier, checked to have succeeded
/// without warnings.
fn range(addr: SocketAddr, query: &str, back_s: u64, step: u64, extra: &str) -> Vec<Value> {
    let end = now_s();
    let (start, end_s, step_s) = (
        (end - back_s).to_string(),
        end.to_string(),
        step.to_string(),
    );
    let params = form(&[
        ("query", query),
        ("start", &start),
        ("end", &end_s),
        ("step", &step_s),
    ]);
    let path = format!("/api/v1/query_range?{params}{extra}");
    let v = get_json(addr, &path).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    assert!(v["warnings"].is_null(), "{query}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn points(series: &Value) -> usize {
    series["values"].as_array().map_or(0, Vec::len)
}

/// Stops the demo, and so every process it started, when the test ends
/// before its own Ctrl-C (a failed assertion): a demo left running would
/// hold the loopback ports of the next one.
struct StopDemo {
    pid: i32,
    armed: bool,
}

impl Drop for StopDemo {
    fn drop(&mut self) {
        if self.armed {
            // SAFETY: kill(2) with a pid this test started.
            unsafe { libc::kill(self.pid, libc::SIGINT) };
            std::thread::sleep(Duration::from_secs(10));
            // SAFETY: as above; a no-op once it has exited.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn demo_starts_answers_and_cleans_up() {
    let prometheus = require_binary("prometheus").is_some();
    let mut child = Command::new(skein_bin().unwrap())
        .args(["demo", "--history", "8h", "--targets", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = StopDemo {
        pid: child.id() as i32,
        armed: true,
    };
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("[demo] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let began = Instant::now();
    let mut out = Vec::new();
    while !out
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops the cluster"))
    {
        match rx.recv_timeout(Duration::from_secs(150).saturating_sub(began.elapsed())) {
            Ok(line) => out.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the demo did not come up: {out:#?}");
            }
        }
    }
    eprintln!("demo up after {:?}", began.elapsed());
    let work_dir = out
        .iter()
        .find_map(|l| l.trim().strip_prefix("work dir "))
        .and_then(|l| l.split(',').next())
        .map(std::path::PathBuf::from)
        .expect("work dir printed");
    assert!(work_dir.join("bucket").is_dir());
    assert!(
        out.iter().any(|l| l.trim() == "http://127.0.0.11:10902"),
        "query URL"
    );
    let q: SocketAddr = "127.0.0.11:10902".parse().unwrap();

    // Deduplicated: one series without the replica label and no hole where
    // replica b was down (40 to 25 minutes ago); without deduplication,
    // both replicas, b with fewer points.
    let sel = r#"http_requests_total{instance="target-0000",code="200"}"#;
    let dedup = range(q, sel, 3600, 60, "");
    assert_eq!(dedup.len(), 1, "{dedup:?}");
    assert!(dedup[0]["metric"]["replica"].is_null());
    assert_eq!(points(&dedup[0]), 61);
    let apart = range(q, sel, 3600, 60, "&dedup=false");
    assert_eq!(apart.len(), 2, "{apart:?}");
    let by_replica = |r: &str| {
        apart
            .iter()
            .find(|s| s["metric"]["replica"] == r)
            .map(points)
            .unwrap_or(0)
    };
    assert_eq!(by_replica("a"), 61);
    assert!(by_replica("b") < 55, "replica b shows its gap");

    // Live and history in one answer: every 30 minutes over 8 hours, no
    // hole between the blocks and the live window.
    let all = range(
        q,
        "sum(rate(http_requests_total[5m]))",
        8 * 3600 - 1800,
        1800,
        "",
    );
    assert_eq!(all.len(), 1);
    assert_eq!(points(&all[0]), 16, "{all:?}");
    // The oldest part only the store gateways hold.
    let stores = get_json(q, "/api/v1/stores").unwrap();
    let store_kinds: Vec<String> = stores["data"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert!(store_kinds.iter().any(|k| k == "store"), "{stores}");

    // Every node's exposition is clean for promtool, and the querier's
    // holds the latency histograms of its HTTP API, its store groups and
    // its PromQL engine after the queries above.
    let promtool = require_binary("promtool");
    for ip in ["127.0.0.11", "127.0.0.21", "127.0.0.31"] {
        let addr: SocketAddr = format!("{ip}:10902").parse().unwrap();
        let (status, text) = http_get(addr, "/metrics").unwrap();
        assert_eq!(status, 200);
        if ip == "127.0.0.11" {
            for family in [
                "skein_http_request_duration_seconds_bucket{handler=\"/api/v1/query_range\"",
                "skein_http_requests_total{handler=\"/api/v1/query_range\",code=\"200\"}",
                "skein_query_group_request_duration_seconds_bucket{group=",
                "skein_promql_query_duration_seconds_bucket{kind=\"range\"",
                "skein_cluster_members{",
                "skein_store_peers{",
            ] {
                assert!(text.contains(family), "{family} missing from {ip}");
            }
        }
        if let Some(promtool) = &promtool {
            let mut check = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            check
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = check.wait_with_output().unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && said.trim().is_empty(),
                "{ip}: {said}"
            );
        }
    }

    if prometheus {
        // The real pair scrapes every skein node (up is 1 for each);
        // deduplicated, one `up` series per node.
        wait_for(
            "Prometheus scraped the skein nodes",
            Duration::from_secs(60),
            || range(q, r#"up{job="skein"} == 1"#, 30, 15, "&dedup=false").len() == 20,
        )
        .unwrap();
        assert_eq!(range(q, r#"up{job="skein"}"#, 30, 15, "").len(), 10);
        // Its rules: the pair's one firing alert, once, as Grafana lists it.
        wait_for("the pair's alert", Duration::from_secs(60), || {
            get_json(q, "/api/v1/alerts").is_ok_and(|v| {
                v["data"]["alerts"].as_array().is_some_and(|a| {
                    a.len() == 1
                        && a[0]["labels"]["alertname"] == "SkeinNodesUp"
                        && a[0]["state"] == "firing"
                })
            })
        })
        .unwrap();
    }

    // Ctrl-C: every process stops and the work directory goes.
    guard.armed = false;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stopped.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("the demo did not stop within 40s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    eprintln!("demo stopped in {:?}", stopped.elapsed());
    assert!(!work_dir.exists(), "{} left behind", work_dir.display());
    for ip in ["127.0.0.11", "127.0.0.21", "127.0.0.31", "127.0.0.41"] {
        let a: SocketAddr = format!("{ip}:10902").parse().unwrap();
        assert!(
            TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_err(),
            "{a} still listening"
        );
    }
}
