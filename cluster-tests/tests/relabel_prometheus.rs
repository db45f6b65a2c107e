//! skein's relabelling (used by `--selector.relabel-config` to shard a
//! bucket) against Prometheus 2.42's own: Prometheus relabels a list of
//! scrape targets with hashmod, replace and keep rules, and the labels it
//! reports for each target in `/api/v1/targets` must be the ones skein's
//! rules give for the same input. Loopback 127.0.25.1.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use skein::model::relabel::{parse_rules, process};
use skein_cluster_tests::{die_with_parent, get_json, require_binary, wait_for, Spawned};

const RULES: &str = "\
- action: hashmod
  source_labels: [__address__]
  target_label: shard
  modulus: 7
- source_labels: [__address__, shard]
  separator: '@'
  regex: 'host-([0-9]+)\\.example:9100@(.*)'
  target_label: where
  replacement: 'h${1}-s$2'
- action: keep
  source_labels: [shard]
  regex: '[0-4]'
";

#[test]
fn relabelling_matches_prometheus() {
    let Some(prometheus) = require_binary("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<String> = (0..60).map(|i| format!("host-{i}.example:9100")).collect();
    let indented: String = RULES.lines().map(|l| format!("      {l}\n")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: shards\n    static_configs:\n      - targets: [{}]\n    relabel_configs:\n{indented}",
        targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let mut cmd = Command::new(prometheus);
    die_with_parent(&mut cmd);
    let child = cmd
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.25.1:9090")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prom = Spawned(child);
    let addr = "127.0.25.1:9090".parse().unwrap();
    let mut answer = serde_json::Value::Null;
    wait_for(
        "prometheus lists its targets",
        Duration::from_secs(60),
        || match get_json(addr, "/api/v1/targets?state=any") {
            Ok(v) => {
                let n = v["data"]["activeTargets"].as_array().map_or(0, Vec::len)
                    + v["data"]["droppedTargets"].as_array().map_or(0, Vec::len);
                answer = v;
                n == targets.len()
            }
            Err(_) => false,
        },
    )
    .unwrap();

    // Prometheus' view: the kept targets with their labels.
    let mut want: BTreeMap<String, (String, String)> = BTreeMap::new();
    for t in answer["data"]["activeTargets"].as_array().unwrap() {
        let address = t["discoveredLabels"]["__address__"].as_str().unwrap();
        let shard = t["labels"]["shard"].as_str().unwrap_or("").to_string();
        let place = t["labels"]["where"].as_str().unwrap_or("").to_string();
        want.insert(address.to_string(), (shard, place));
    }
    assert!(
        !want.is_empty() && want.len() < targets.len(),
        "some targets kept, some dropped: {} of {}",
        want.len(),
        targets.len()
    );

    let rules = parse_rules(RULES).unwrap();
    let mut got = BTreeMap::new();
    for t in &targets {
        let input = vec![
            ("__address__".to_string(), t.clone()),
            ("job".to_string(), "shards".to_string()),
        ];
        if let Some(out) = process(&rules, &input) {
            let get = |n: &str| {
                out.iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            got.insert(t.clone(), (get("shard"), get("where")));
        }
    }
    assert_eq!(got, want);
    eprintln!(
        "{} of {} targets kept, shards and replacements equal Prometheus'",
        want.len(),
        targets.len()
    );
}
