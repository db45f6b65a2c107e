//! Transport security with real processes and independent clients: stores
//! and a querier over mutual TLS (a querier without a client certificate
//! and a plaintext client refused), curl, promtool 2.42 and a real
//! Prometheus 2.42 (scraping /metrics) against a querier's HTTP API over
//! TLS with basic auth, and a raw gRPC call from curl (OpenSSL) to a
//! store's Store API. Prometheus and promtool parts are skipped without
//! them unless SKEIN_REQUIRE_PROMETHEUS=1.

#[path = "../../tests/support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pki::{Leaf, Pki};
use skein_cluster_tests::{
    die_with_parent, get_json, require_binary, start_node, wait_for, Process, Spawned,
};

const USER: &str = "alice";
const PASSWORD: &str = "through-the-looking-glass";

/// `curl -s <args>`: exit code, stdout.
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Status code of an HTTPS GET with curl, or the curl exit code (negated)
/// when no HTTP answer came.
fn https_status(ca: &Path, url: &str, user: Option<&str>) -> i32 {
    let ca = ca.to_str().unwrap();
    let mut args = vec!["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}"];
    if let Some(u) = user {
        args.extend(["-u", u]);
    }
    args.push(url);
    let (code, out) = curl(&args);
    if code != 0 {
        return -code;
    }
    out.trim().parse().unwrap_or(-1000)
}

fn web_config(dir: &Path, leaf: &Leaf) -> std::path::PathBuf {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let p = dir.join("web.yml");
    std::fs::write(
        &p,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  {USER}: {hash}\n",
            leaf.cert.display(),
            leaf.key.display()
        ),
    )
    .unwrap();
    p
}

fn store(ip: &str, seed: &str, leaf: &Leaf, client_ca: &Path) -> Process {
    start_node(
        "synthetic",
        "synthetic",
        ip,
        Some(seed),
        &[
            "--targets",
            "3",
            "--window",
            "1h",
            "--grpc-server-tls-cert",
            leaf.cert.to_str().unwrap(),
            "--grpc-server-tls-key",
            leaf.key.to_str().unwrap(),
            "--grpc-server-tls-client-ca",
            client_ca.to_str().unwrap(),
        ],
    )
    .unwrap()
}

/// Healthy store members a querier's cluster view shows (plain HTTP).
fn healthy(http: SocketAddr) -> usize {
    let Ok(v) = get_json(http, "/api/v1/cluster") else {
        return 0;
    };
    v["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["members"].as_array())
        .flatten()
        .filter(|m| m["health"] == "healthy")
        .count()
}

#[test]
fn mutual_tls_between_querier_and_stores_and_https_with_basic_auth_for_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::new(dir.path(), "cluster");
    let other = Pki::new(dir.path(), "other");
    let store_leaf = ca.issue("store", &["127.0.31.11"]);
    let querier_leaf = ca.issue("querier", &["127.0.31.1", "localhost"]);
    let stranger = other.issue("stranger", &["127.0.31.2"]);
    let web = web_config(dir.path(), &querier_leaf);
    let seed = "127.0.31.1:10900";

    let q = start_node(
        "query",
        "query",
        "127.0.31.1",
        None,
        &[
            "--store.health-check-interval",
            "300ms",
            "--grpc-client-tls-secure",
            "--grpc-client-tls-ca",
            ca.ca().to_str().unwrap(),
            "--grpc-client-tls-cert",
            querier_leaf.cert.to_str().unwrap(),
            "--grpc-client-tls-key",
            querier_leaf.key.to_str().unwrap(),
            "--http.config",
            web.to_str().unwrap(),
        ],
    )
    .unwrap();
    // A second querier whose client certificate is from another CA, and a
    // third that dials in plaintext: both gossip, neither may read.
    let q_stranger = start_node(
        "query-stranger",
        "query",
        "127.0.31.2",
        Some(seed),
        &[
            "--store.health-check-interval",
            "300ms",
            "--grpc-client-tls-secure",
            "--grpc-client-tls-ca",
            ca.ca().to_str().unwrap(),
            "--grpc-client-tls-cert",
            stranger.cert.to_str().unwrap(),
            "--grpc-client-tls-key",
            stranger.key.to_str().unwrap(),
        ],
    )
    .unwrap();
    let q_plain = start_node(
        "query-plain",
        "query",
        "127.0.31.3",
        Some(seed),
        &["--store.health-check-interval", "300ms"],
    )
    .unwrap();
    let s = store("127.0.31.11", seed, &store_leaf, &ca.ca());
    // A store whose certificate another CA signed: it gossips like the
    // others, but the querier cannot verify it and never uses it.
    let impostor_leaf = other.issue("impostor", &["127.0.31.12"]);
    let _impostor = store("127.0.31.12", seed, &impostor_leaf, &ca.ca());

    let base = format!("https://127.0.31.1:{}", q.http.port());
    let cap = ca.ca();
    let creds = format!("{USER}:{PASSWORD}");
    // The querier reaches the store over mutual TLS.
    // Synthetic series: 11 per target.
    let query = format!("{base}/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)");
    wait_for(
        "the store to answer over mTLS",
        Duration::from_secs(30),
        || {
            let (code, out) = curl(&["--cacert", cap.to_str().unwrap(), "-u", &creds, &query]);
            code == 0 && out.contains("\"status\":\"success\"") && out.contains("\"33\"")
        },
    )
    .unwrap();

    // Clients without credentials, with wrong ones, and in plaintext.
    assert_eq!(https_status(&cap, &query, None), 401);
    assert_eq!(https_status(&cap, &query, Some("alice:wrong")), 401);
    assert_eq!(
        https_status(&cap, &query, Some("mallory:through-the-looking-glass")),
        401
    );
    assert_eq!(https_status(&cap, &format!("{base}/-/healthy"), None), 401);
    assert_eq!(
        https_status(&cap, &format!("{base}/metrics"), Some(&creds)),
        200
    );
    let plain = format!("http://127.0.31.1:{}/api/v1/query?query=up", q.http.port());
    let (code, out) = curl(&["-o", "-", "-w", "%{http_code}", &plain]);
    assert!(
        code != 0 || !out.contains("200"),
        "plaintext HTTP got an answer: {out}"
    );
    // A client that does not trust the querier's CA refuses it.
    assert!(https_status(&other.ca(), &query, Some(&creds)) < 0);
    // The configured header is on answers.
    let (_, head) = curl(&[
        "--cacert",
        cap.to_str().unwrap(),
        "-u",
        &creds,
        "-D",
        "-",
        "-o",
        "/dev/null",
        &query,
    ]);
    assert!(
        head.to_ascii_lowercase().contains("x-frame-options: deny"),
        "{head}"
    );

    // The impostor never became healthy: answers above counted 33 series,
    // one store's worth.
    let members = curl(&[
        "--cacert",
        cap.to_str().unwrap(),
        "-u",
        &creds,
        &format!("{base}/api/v1/cluster"),
    ])
    .1;
    let v: serde_json::Value = serde_json::from_str(&members).unwrap();
    let health: Vec<(String, String)> = v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["members"].as_array().unwrap().clone())
        .map(|m| {
            (
                m["endpoint"].as_str().unwrap_or("").to_string(),
                m["health"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        health
            .iter()
            .any(|(e, h)| e.starts_with("127.0.31.12:") && h != "healthy"),
        "{health:?}"
    );
    assert!(
        health
            .iter()
            .any(|(e, h)| e.starts_with("127.0.31.11:") && h == "healthy"),
        "{health:?}"
    );

    // The store refuses the stranger's certificate and the plaintext querier.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        healthy(q_stranger.http),
        0,
        "a querier with another CA's certificate reached the store"
    );
    assert_eq!(
        healthy(q_plain.http),
        0,
        "a plaintext querier reached the store"
    );
    let v = get_json(
        q_plain.http,
        "/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)",
    )
    .unwrap();
    assert!(
        v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) || v.get("warnings").is_some(),
        "a plaintext querier answered without a warning: {v}"
    );

    // A raw gRPC call from curl (OpenSSL, HTTP/2): Info with a client
    // certificate is answered; without one the handshake fails.
    let grpc = format!(
        "https://127.0.31.11:{}/thanos.info.Info/Info",
        s.grpc.port()
    );
    let empty = dir.path().join("empty-request");
    std::fs::write(&empty, [0u8; 5]).unwrap();
    let body = format!("@{}", empty.display());
    let common = [
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        &body,
        "--cacert",
    ];
    let mut with_cert: Vec<&str> = common.to_vec();
    with_cert.extend([
        cap.to_str().unwrap(),
        "--cert",
        querier_leaf.cert.to_str().unwrap(),
        "--key",
        querier_leaf.key.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{content_type} %{size_download}",
        &grpc,
    ]);
    let (code, out) = curl(&with_cert);
    assert_eq!(code, 0, "gRPC over mTLS from curl failed: {out}");
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"200"), "{out}");
    assert_eq!(parts.get(1), Some(&"application/grpc"), "{out}");
    assert!(
        parts
            .get(2)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            > 5,
        "{out}"
    );
    let mut without: Vec<&str> = common.to_vec();
    without.extend([
        cap.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &grpc,
    ]);
    let (code, out) = curl(&without);
    assert!(
        code != 0 || out.trim() != "200",
        "gRPC without a client certificate was answered"
    );

    // promtool 2.42 over TLS with basic auth (credentials in the URL, the
    // CA through SSL_CERT_FILE, as Go reads it).
    if let Some(promtool) = require_binary("promtool") {
        let run = |url: &str| {
            Command::new(&promtool)
                .args(["query", "instant", url, "count({__name__=~\".+\"})"])
                .env("SSL_CERT_FILE", &cap)
                .output()
                .unwrap()
        };
        let ok = run(&format!("https://{creds}@127.0.31.1:{}", q.http.port()));
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(
            String::from_utf8_lossy(&ok.stdout).contains("=> 33"),
            "{}",
            String::from_utf8_lossy(&ok.stdout)
        );
        let denied = run(&format!("https://127.0.31.1:{}", q.http.port()));
        assert!(
            !denied.status.success(),
            "promtool without credentials got an answer"
        );
    }

    // A real Prometheus scrapes the querier's /metrics over TLS with
    // basic auth.
    if let Some(prometheus) = require_binary("prometheus") {
        let pdir = dir.path().join("prometheus");
        std::fs::create_dir_all(&pdir).unwrap();
        let cfg = pdir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: skein\n    scheme: https\n    \
                 tls_config:\n      ca_file: {}\n    basic_auth:\n      username: {USER}\n      password: {PASSWORD}\n    \
                 static_configs:\n      - targets: ['127.0.31.1:{}']\n  - job_name: skein-no-auth\n    scheme: https\n    \
                 tls_config:\n      ca_file: {}\n    static_configs:\n      - targets: ['127.0.31.1:{}']\n",
                cap.display(),
                q.http.port(),
                cap.display(),
                q.http.port()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(prometheus);
        die_with_parent(&mut cmd);
        let _p = Spawned(
            cmd.arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    pdir.join("data").display()
                ))
                .arg("--web.listen-address=127.0.31.5:19090")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let addr: SocketAddr = "127.0.31.5:19090".parse().unwrap();
        wait_for(
            "Prometheus to scrape skein over TLS",
            Duration::from_secs(30),
            || {
                get_json(addr, "/api/v1/query?query=up")
                    .map(|v| {
                        let r = v["data"]["result"].as_array().cloned().unwrap_or_default();
                        let up = |job: &str| {
                            r.iter()
                                .find(|s| s["metric"]["job"] == job)
                                .map(|s| s["value"][1].as_str() == Some("1"))
                        };
                        up("skein") == Some(true) && up("skein-no-auth") == Some(false)
                    })
                    .unwrap_or(false)
            },
        )
        .unwrap();
    }
    drop(s);
}

#[test]
fn sidecar_reads_a_prometheus_behind_tls_and_basic_auth() {
    let Some(prometheus) = require_binary("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::new(dir.path(), "prom");
    let leaf = ca.issue("prometheus", &["127.0.31.40"]);
    let password = "prometheus-secret-1";
    // Prometheus' own web configuration: TLS and one user.
    let web = dir.path().join("prom-web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  bob: {}\n",
            leaf.cert.display(),
            leaf.key.display(),
            bcrypt::hash(password, 4).unwrap()
        ),
    )
    .unwrap();
    let target = Process::start(
        "target",
        &[
            "synthetic",
            "--grpc-address",
            "127.0.31.41:0",
            "--http-address",
            "127.0.31.41:0",
            "--cluster.disable",
            "--targets",
            "1",
        ],
    )
    .unwrap();
    let _prom = skein_cluster_tests::start_prometheus_with(
        &prometheus,
        &dir.path().join("prom"),
        "127.0.31.40:19091",
        "a",
        target.http,
        &[&format!("--web.config.file={}", web.display())],
    )
    .unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let client = dir.path().join("client.yml");
    std::fs::write(
        &client,
        format!(
            "basic_auth:\n  username: bob\n  password_file: {}\ntls_config:\n  ca_file: {}\n",
            password_file.display(),
            ca.ca().display()
        ),
    )
    .unwrap();
    let seed = "127.0.31.42:10900";
    let q = start_node(
        "query",
        "query",
        "127.0.31.42",
        None,
        &["--store.health-check-interval", "300ms"],
    )
    .unwrap();
    let _sidecar = start_node(
        "sidecar",
        "sidecar",
        "127.0.31.43",
        Some(seed),
        &[
            "--prometheus.url",
            "https://127.0.31.40:19091",
            "--prometheus.http-client-file",
            client.to_str().unwrap(),
            "--prometheus.refresh-interval",
            "1s",
        ],
    )
    .unwrap();
    // A second sidecar with the password wrong in its URL: never ready,
    // and the password appears nowhere.
    let wrong = "not-the-password-2";
    let _bad = start_node(
        "sidecar-bad",
        "sidecar",
        "127.0.31.44",
        Some(seed),
        &[
            "--prometheus.url",
            &format!("https://bob:{wrong}@127.0.31.40:19091"),
            "--prometheus.http-client",
            &format!("tls_config:\n  ca_file: {}\n", ca.ca().display()),
            "--prometheus.refresh-interval",
            "1s",
        ],
    )
    .unwrap();
    wait_for(
        "the sidecar to serve Prometheus' samples",
        Duration::from_secs(40),
        || {
            get_json(q.http, "/api/v1/query?query=up")
                .map(|v| v.to_string().contains("\"replica\":\"a\""))
                .unwrap_or(false)
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for path in [
        "/api/v1/cluster",
        "/api/v1/stores",
        "/api/v1/query?query=up",
    ] {
        let v = get_json(q.http, path).unwrap().to_string();
        assert!(!v.contains(wrong) && !v.contains(password), "{path}: {v}");
    }
}
