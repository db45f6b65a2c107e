//! A node started with a TLS, web or gossip key setting it cannot use
//! stops at once, and its message names the setting and the file.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `skein <args>` (ports on loopback, gossip off unless asked) and
/// returns its exit status and stderr; fails when it keeps running.
fn start(args: &[&str]) -> (bool, String) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(args)
        .args([
            "--grpc-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unusable_security_settings_stop_the_node_naming_the_setting_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(path("junk.pem"), "not a certificate").unwrap();
    std::fs::write(path("keys"), "not-a-key\n").unwrap();
    std::fs::write(
        path("web.yml"),
        "tls_server_config:\n  cert_file: junk.pem\n",
    )
    .unwrap();
    std::fs::write(
        path("web-users.yml"),
        "basic_auth_users:\n  alice: hunter2\n",
    )
    .unwrap();

    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec![
                "synthetic".into(),
                "--cluster.disable".into(),
                "--grpc-server-tls-cert".into(),
                path("missing.pem"),
                "--grpc-server-tls-key".into(),
                path("junk.pem"),
            ],
            vec!["--grpc-server-tls-cert".into(), path("missing.pem")],
        ),
        (
            vec![
                "synthetic".into(),
                "--cluster.disable".into(),
                "--grpc-server-tls-cert".into(),
                path("junk.pem"),
            ],
            vec!["--grpc-server-tls-key".into()],
        ),
        (
            vec![
                "query".into(),
                "--cluster.disable".into(),
                "--grpc-client-tls-ca".into(),
                path("junk.pem"),
            ],
            vec!["--grpc-client-tls-secure".into()],
        ),
        (
            vec![
                "query".into(),
                "--cluster.disable".into(),
                "--grpc-client-tls-secure".into(),
                "--grpc-client-tls-ca".into(),
                path("junk.pem"),
            ],
            vec!["--grpc-client-tls-ca".into(), path("junk.pem")],
        ),
        (
            vec![
                "synthetic".into(),
                "--cluster.disable".into(),
                "--http.config".into(),
                path("web.yml"),
            ],
            vec!["--http.config".into(), path("web.yml"), "key_file".into()],
        ),
        (
            vec![
                "synthetic".into(),
                "--cluster.disable".into(),
                "--http.config".into(),
                path("web-users.yml"),
            ],
            vec!["bcrypt".into(), "alice".into()],
        ),
        (
            vec![
                "synthetic".into(),
                "--cluster.listen-address".into(),
                "127.0.0.1:0".into(),
                "--cluster.secret-file".into(),
                path("keys"),
            ],
            vec![
                "--cluster.secret-file".into(),
                path("keys"),
                "line 1".into(),
            ],
        ),
        (
            vec![
                "query".into(),
                "--cluster.disable".into(),
                "--cluster.allowed-endpoints".into(),
                "10.0.0.0/33".into(),
            ],
            vec!["--cluster.allowed-endpoints".into()],
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stderr) = start(&args);
        assert!(!ok, "{args:?} started");
        for w in &want {
            assert!(
                stderr.contains(w.as_str()),
                "{args:?}: {w:?} not in {stderr}"
            );
        }
        // Secrets and file contents are not echoed.
        assert!(
            !stderr.contains("not-a-key") && !stderr.contains("hunter2"),
            "{stderr}"
        );
    }
}
