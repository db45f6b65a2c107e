//! The long-term path with a running Prometheus 2.42: it writes a block
//! every 10 s, `skein sidecar` uploads each one to a filesystem bucket and
//! `skein store` serves the bucket. Over the time range of the uploaded
//! blocks, a querier in front of the gateway alone, and one in front of
//! gateway and sidecar together, return exactly the samples Prometheus
//! returns itself. Loopback range 127.0.13.x.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use skein_cluster_tests::{
    get_json, healthy_members, require_binary, start_node, start_prometheus_with, wait_for,
};

/// ULID-named directories of the bucket with a meta.json, parsed.
fn uploaded(bucket: &Path) -> Vec<Value> {
    let Ok(dir) = std::fs::read_dir(bucket) else {
        return vec![];
    };
    let mut metas: Vec<Value> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("meta.json")).ok())
        .filter_map(|d| serde_json::from_slice(&d).ok())
        .collect();
    metas.sort_by_key(|m| m["minTime"].as_i64());
    metas
}

/// The matrix of every raw sample in [min, max], sorted by series, with
/// `extra` labels added to each series.
fn raw_samples(addr: SocketAddr, min: i64, max: i64, extra: &[(&str, &str)]) -> Vec<Value> {
    let path = format!(
        "/api/v1/query?query=%7B__name__%3D~%22.%2B%22%7D%5B{}ms%5D&time={}.{:03}",
        max - min,
        max / 1000,
        max % 1000
    );
    let v = get_json(addr, &path).unwrap();
    assert_eq!(v["status"], "success", "{addr}: {v}");
    assert!(v["warnings"].is_null(), "{addr}: {v}");
    let mut series = v["data"]["result"].as_array().cloned().unwrap_or_default();
    for s in &mut series {
        for (k, val) in extra {
            s["metric"][*k] = Value::String(val.to_string());
        }
    }
    series.sort_by_key(|s| s["metric"].to_string());
    series
}

#[test]
fn sidecar_uploads_and_gateway_serves_prometheus_blocks() {
    let Some(prometheus) = require_binary("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let prom_addr: SocketAddr = "127.0.13.1:9090".parse().unwrap();
    let _prom = start_prometheus_with(
        &prometheus,
        &dir.path().join("prom"),
        &prom_addr.to_string(),
        "a",
        prom_addr,
        &[
            "--storage.tsdb.min-block-duration=10s",
            "--storage.tsdb.max-block-duration=10s",
        ],
    )
    .unwrap();
    let tsdb = dir.path().join("prom/data");
    let sidecar = start_node(
        "sidecar",
        "sidecar",
        "127.0.13.2",
        None,
        &[
            "--prometheus.url",
            &format!("http://{prom_addr}"),
            "--prometheus.refresh-interval",
            "1s",
            "--objstore.config",
            &objstore,
            "--tsdb.path",
            tsdb.to_str().unwrap(),
            "--shipper.interval",
            "1s",
        ],
    )
    .unwrap();
    let _store = start_node(
        "store",
        "store",
        "127.0.13.3",
        Some("127.0.13.2:10900"),
        &[
            "--objstore.config",
            &objstore,
            "--data-dir",
            dir.path().join("store").to_str().unwrap(),
            "--sync-block-duration",
            "1s",
        ],
    )
    .unwrap();
    // One querier sees only the gateway, the other both through gossip.
    let gateway_only = start_node(
        "query-gateway",
        "query",
        "127.0.13.4",
        None,
        &["--endpoint", &_store.grpc.to_string()],
    )
    .unwrap();
    let both = start_node(
        "query-all",
        "query",
        "127.0.13.5",
        Some("127.0.13.2:10900"),
        &["--store.health-check-interval", "500ms"],
    )
    .unwrap();

    wait_for("three uploaded blocks", Duration::from_secs(90), || {
        uploaded(&bucket).len() >= 3
    })
    .unwrap();
    let metas = uploaded(&bucket);
    for m in &metas {
        assert_eq!(m["thanos"]["labels"]["replica"], "a", "{m}");
        assert_eq!(m["thanos"]["source"], "sidecar", "{m}");
        assert_eq!(m["thanos"]["downsample"]["resolution"], 0, "{m}");
        let files: Vec<&str> = m["thanos"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["rel_path"].as_str())
            .collect();
        assert!(
            files.contains(&"index") && files.contains(&"chunks/000001"),
            "{m}"
        );
        let ulid = m["ulid"].as_str().unwrap();
        // Exactly Prometheus' files: every byte of index and chunks.
        for f in ["index", "chunks/000001"] {
            assert_eq!(
                std::fs::read(bucket.join(ulid).join(f)).unwrap(),
                std::fs::read(tsdb.join(ulid).join(f)).unwrap(),
                "{ulid}/{f}"
            );
        }
    }
    // The shipper records a block after uploading it: its record catches
    // up a moment after the bucket.
    wait_for(
        "the shipper's record of three uploads",
        Duration::from_secs(10),
        || {
            std::fs::read(tsdb.join("thanos.shipper.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["uploaded"].as_array().map(Vec::len))
                .is_some_and(|n| n >= 3)
        },
    )
    .unwrap();

    // Contiguous blocks: [first minTime, last maxTime) holds only block data.
    let min = metas[0]["minTime"].as_i64().unwrap();
    let max = metas.last().unwrap()["maxTime"].as_i64().unwrap() - 1;
    let want = raw_samples(prom_addr, min, max, &[("replica", "a")]);
    let samples: usize = want
        .iter()
        .map(|s| s["values"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(want.len() > 100 && samples > 1000, "{} series", want.len());

    // The gateway picks up a block at its next sync and the queriers learn
    // its new time range at their next health check: wait until both
    // queriers answer with every sample, and only then compare in detail.
    let complete = |addr: SocketAddr| {
        let got = raw_samples(addr, min, max, &[]);
        got.len() == want.len()
            && got
                .iter()
                .map(|s| s["values"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
                == samples
    };
    let waited = wait_for(
        "both queriers see every sample of the blocks",
        Duration::from_secs(30),
        || {
            healthy_members(both.http).is_some_and(|(_, h)| h == 2)
                && complete(gateway_only.http)
                && complete(both.http)
        },
    );
    // On a timeout, the comparison below shows what differs.
    if let Err(e) = waited {
        eprintln!("{e}");
    }
    for (name, q) in [
        ("gateway only", &gateway_only),
        ("gateway and sidecar", &both),
    ] {
        let got = raw_samples(q.http, min, max, &[]);
        assert_eq!(got.len(), want.len(), "{name}: series count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{name}: series differ");
        }
    }
    eprintln!(
        "{} blocks uploaded; {} series, {samples} samples over [{min}, {max}] equal Prometheus' through the gateway and through gateway + sidecar",
        metas.len(),
        want.len()
    );
    drop(sidecar);
}
