//! promtool 2.42 as a client of a querier's Prometheus HTTP API, over a
//! SOURCE pair of real processes joined by gossip: it reads series and
//! label values (deduplicated across the replicas) and reports the API's
//! errors. Skipped without promtool unless SKEIN_REQUIRE_PROMETHEUS=1.

use std::process::Command;
use std::time::Duration;

use skein_cluster_tests::{healthy_members, require_binary, start_node, wait_for, Process};

fn synthetic(ip: &str, seed: &str, replica: &str) -> Process {
    start_node(
        &format!("synthetic-{replica}"),
        "synthetic",
        ip,
        Some(seed),
        &[
            "--targets",
            "2",
            // Data up to now: promtool looks no further back than 9999h.
            "--window",
            "1h",
            "--label",
            &format!("replica={replica}"),
        ],
    )
    .unwrap()
}

/// `promtool query <args>` against `url`: exit success, stdout, stderr.
fn promtool(bin: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin).arg("query").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn promtool_reads_series_and_labels_from_a_querier() {
    let Some(bin) = require_binary("promtool") else {
        return;
    };
    let seed = "127.0.6.1:10900";
    let q = start_node(
        "query",
        "query",
        "127.0.6.1",
        None,
        &[
            "--store.health-check-interval",
            "500ms",
            "--query.replica-label",
            "replica",
        ],
    )
    .unwrap();
    let _a = synthetic("127.0.6.11", seed, "a");
    let _b = synthetic("127.0.6.12", seed, "b");
    wait_for("both replicas healthy", Duration::from_secs(30), || {
        healthy_members(q.http) == Some((2, 2))
    })
    .unwrap();
    let url = format!("http://{}", q.http);

    let (ok, out, err) = promtool(
        &bin,
        &["series", &url, r#"--match=http_requests_total{code="500"}"#],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            r#"{__name__="http_requests_total", code="500", instance="target-0000", job="synthetic"}"#,
            r#"{__name__="http_requests_total", code="500", instance="target-0001", job="synthetic"}"#,
        ]
    );

    let (ok, out, err) = promtool(&bin, &["labels", &url, "instance"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["target-0000", "target-0001"]
    );

    let (ok, out, err) = promtool(
        &bin,
        &[
            "labels",
            &url,
            "__name__",
            "--match=process_cpu_usage_ratio",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "process_cpu_usage_ratio");

    // An API error reaches the user with its type and message.
    let (ok, _, err) = promtool(&bin, &["series", &url, "--match={"]);
    assert!(!ok);
    assert!(
        err.contains(r#"bad_data: invalid parameter "match[]""#),
        "{err}"
    );
}
