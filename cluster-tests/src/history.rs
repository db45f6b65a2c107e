//! Building blocks for tests of long-term layouts: TSDB blocks made by
//! promtool, put in a bucket with the `thanos` section a sidecar would have
//! written, and the matrices of range queries compared sample by sample.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context};
use serde_json::Value;

use crate::promql_setup::{copy_dir, range};
use crate::Process;

/// Copies every block under `tsdb` into `bucket`, its `meta.json` given
/// the external labels and source a sidecar records on upload. Returns the
/// block ids.
pub fn ship_blocks(
    tsdb: &Path,
    bucket: &Path,
    external_labels: &[(&str, &str)],
) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(bucket)?;
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(tsdb)? {
        let path = entry?.path();
        let meta_path = path.join("meta.json");
        if !meta_path.is_file() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("block name"))?
            .to_string();
        let to = bucket.join(&name);
        copy_dir(&path, &to)?;
        let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path)?)
            .with_context(|| format!("{}", meta_path.display()))?;
        let labels: serde_json::Map<String, Value> = external_labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        meta["thanos"] = serde_json::json!({
            "labels": labels,
            "downsample": {"resolution": 0},
            "source": "sidecar",
        });
        std::fs::write(to.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
        ids.push(name);
    }
    ids.sort();
    Ok(ids)
}

/// Starts `skein store` on `ip` over the FILESYSTEM bucket at `bucket`,
/// outside gossip, with `extra` flags.
pub fn start_store(
    ip: &str,
    bucket: &Path,
    data_dir: &Path,
    extra: &[&str],
) -> anyhow::Result<Process> {
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let listen = format!("{ip}:0");
    let data_dir = data_dir.to_str().ok_or_else(|| anyhow!("data dir"))?;
    let mut args = vec![
        "store",
        "--objstore.config",
        &objstore,
        "--data-dir",
        data_dir,
        "--grpc-address",
        &listen,
        "--http-address",
        &listen,
        "--cluster.disable",
    ];
    args.extend_from_slice(extra);
    Process::start("store", &args)
}

/// Starts `skein sidecar` on `ip` in front of the Prometheus at `prom`,
/// outside gossip.
pub fn start_sidecar(name: &str, ip: &str, prom: SocketAddr) -> anyhow::Result<Process> {
    let listen = format!("{ip}:0");
    Process::start(
        name,
        &[
            "sidecar",
            "--prometheus.url",
            &format!("http://{prom}"),
            "--prometheus.refresh-interval",
            "1s",
            "--grpc-address",
            &listen,
            "--http-address",
            &listen,
            "--cluster.disable",
        ],
    )
}

/// A range query's answer: samples per series, the series named by their
/// labels in JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    pub series: BTreeMap<String, Vec<(i64, f64)>>,
    pub warnings: Vec<String>,
}

impl Matrix {
    pub fn samples(&self) -> usize {
        self.series.values().map(Vec::len).sum()
    }
}

/// `query_range` on `addr` from `start_ms` to `end_ms` every `step_ms`,
/// with extra URL parameters, parsed; a status other than success is an
/// error.
pub fn query_matrix(
    addr: SocketAddr,
    query: &str,
    (start_ms, end_ms, step_ms): (i64, i64, i64),
    extra: &str,
) -> anyhow::Result<Matrix> {
    let answer = if extra.is_empty() {
        range(
            addr,
            query,
            start_ms,
            end_ms,
            step_ms,
            Duration::from_secs(60),
        )?
    } else {
        let path = format!(
            "/api/v1/query_range?{}&{extra}",
            crate::promql_setup::form(&[
                ("query", query),
                ("start", &crate::openmetrics::format_ts(start_ms)),
                ("end", &crate::openmetrics::format_ts(end_ms)),
                ("step", &crate::openmetrics::format_ts(step_ms)),
            ])
        );
        let (status, body) =
            crate::http_request(addr, "GET", &path, None, Duration::from_secs(60))?;
        crate::promql_setup::Answer { status, body }
    };
    ensure!(
        answer.status == 200,
        "{query} on {addr}: HTTP {}: {}",
        answer.status,
        answer.text()
    );
    let v: Value = serde_json::from_slice(&answer.body)?;
    ensure!(v["status"] == "success", "{query} on {addr}: {v}");
    let mut m = Matrix::default();
    if let Some(w) = v["warnings"].as_array() {
        m.warnings = w.iter().map(|w| w.to_string()).collect();
    }
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let key = s["metric"].to_string();
        let mut points = Vec::new();
        for p in s["values"].as_array().into_iter().flatten() {
            let t = p[0].as_f64().ok_or_else(|| anyhow!("bad time in {p}"))?;
            let val = p[1]
                .as_str()
                .ok_or_else(|| anyhow!("bad value in {p}"))
                .and_then(|s| crate::promql_diff::parse_value(s).map_err(|e| anyhow!(e)))?;
            points.push(((t * 1000.0).round() as i64, val));
        }
        m.series.insert(key, points);
    }
    Ok(m)
}

/// Describes the first difference between two matrices (within
/// [`crate::promql_diff::same_value`]), or None when they are equal.
pub fn first_difference(a: &Matrix, b: &Matrix) -> Option<String> {
    let keys_a: Vec<&String> = a.series.keys().collect();
    let keys_b: Vec<&String> = b.series.keys().collect();
    if keys_a != keys_b {
        return Some(format!("series differ: {keys_a:?} vs {keys_b:?}"));
    }
    for (k, pa) in &a.series {
        let pb = &b.series[k];
        for (i, (x, y)) in pa.iter().zip(pb).enumerate() {
            if x.0 != y.0 || !crate::promql_diff::same_value(x.1, y.1) {
                return Some(format!("{k} point {i}: {x:?} vs {y:?}"));
            }
        }
        if pa.len() != pb.len() {
            return Some(format!("{k}: {} points vs {}", pa.len(), pb.len()));
        }
    }
    None
}
