//! The Store API over TLS and mutual TLS with skein's own server and
//! client: who gets in and who is refused, and certificates renewed on
//! disk taking effect without a restart. (Independent clients, curl among
//! them, are in the cluster tests.)

#[path = "support/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use pki::{Leaf, Pki};
use skein::model::{Chunk, Labels, MatchOp, Matcher, Sample, Series};
use skein::security::tls::{ClientAuth, ClientOptions, FileRef, ServerOptions};
use skein::store::{
    ClientConfig, ClientTls, MemStore, PeerType, RemoteStore, SeriesFrame, SeriesRequest, Store,
    StoreInfo,
};

fn store() -> MemStore {
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample {
            t: i * 1000,
            v: i as f64,
        })
        .collect();
    let series = vec![Series {
        labels: Labels::from_pairs([("__name__", "up"), ("job", "tls")]).unwrap(),
        chunks: Chunk::encode_xor(&samples, 120).unwrap(),
    }];
    let info = StoreInfo {
        label_sets: vec![],
        min_time: 0,
        max_time: 10_000,
        peer_type: PeerType::Store,
        store_group_id: String::new(),
        component: "store".into(),
        supports_without_replica_labels: true,
    };
    MemStore::new(info, series).unwrap()
}

fn server_options(leaf: &Leaf, client_ca: Option<&Pki>) -> ServerOptions {
    let mut o = ServerOptions::new(
        FileRef::new("--grpc-server-tls-cert", &leaf.cert),
        FileRef::new("--grpc-server-tls-key", &leaf.key),
    );
    o.alpn = vec![b"h2".to_vec()];
    if let Some(ca) = client_ca {
        o.client_ca = Some(FileRef::new("--grpc-server-tls-client-ca", ca.ca()));
        o.client_auth = ClientAuth::RequireAndVerify;
    }
    o
}

/// Serves the test store over TLS on a loopback port.
async fn serve(options: ServerOptions, stop: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tls = options.reloading("test-grpc-server").unwrap();
    tokio::spawn(skein::store::serve_secured(
        listener,
        Arc::new(store()),
        Default::default(),
        Some(tls),
        stop.clone(),
    ));
    addr
}

fn client(addr: &str, ca: Option<&Pki>, cert: Option<&Leaf>) -> RemoteStore {
    let mut cfg = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    if ca.is_some() || cert.is_some() {
        let o = ClientOptions {
            ca: ca.map(|c| FileRef::new("--grpc-client-tls-ca", c.ca())),
            cert: cert.map(|l| FileRef::new("--grpc-client-tls-cert", &l.cert)),
            key: cert.map(|l| FileRef::new("--grpc-client-tls-key", &l.key)),
            alpn: vec![b"h2".to_vec()],
            ..Default::default()
        };
        cfg.tls = Some(ClientTls {
            config: o.reloading("test-grpc-client").unwrap(),
            server_name: None,
        });
    }
    RemoteStore::connect_lazy(addr, &cfg).unwrap()
}

/// The series the store answers with, or the error.
async fn ask(c: &RemoteStore) -> Result<Vec<Labels>, String> {
    let req = SeriesRequest::new(
        0,
        10_000,
        vec![Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()],
    );
    let mut stream = c.series(req).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(f) = stream.next().await {
        if let SeriesFrame::Series(s) = f.map_err(|e| e.to_string())? {
            out.push(s.labels);
        }
    }
    Ok(out)
}

async fn eventually_ok(c: &RemoteStore) -> bool {
    for _ in 0..60 {
        if ask(c).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn mutual_tls_lets_in_only_clients_with_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::new(dir.path(), "cluster");
    let other = Pki::new(dir.path(), "other");
    let server = ca.issue("store", &["127.0.0.1"]);
    let querier = ca.issue("querier", &["querier.example"]);
    let stranger = other.issue("stranger", &["stranger.example"]);
    let stop = CancellationToken::new();
    let addr = serve(server_options(&server, Some(&ca)), &stop).await;

    let good = client(&addr, Some(&ca), Some(&querier));
    let got = ask(&good).await.expect("a client with a good certificate");
    assert_eq!(got.len(), 1);
    assert_eq!(good.info().await.unwrap().component, "store");

    let no_cert = client(&addr, Some(&ca), None);
    assert!(
        ask(&no_cert).await.is_err(),
        "a client without a certificate got in"
    );
    let wrong_ca = client(&addr, Some(&ca), Some(&stranger));
    assert!(
        ask(&wrong_ca).await.is_err(),
        "a certificate of another CA got in"
    );
    let plaintext = client(&addr, None, None);
    let err = ask(&plaintext)
        .await
        .expect_err("a plaintext client got in");
    assert!(!err.is_empty());
    // The client refuses a server its CA did not sign.
    let distrustful = client(&addr, Some(&other), Some(&querier));
    assert!(
        ask(&distrustful).await.is_err(),
        "the client trusted a server of another CA"
    );
    // And still works for the good client afterwards.
    assert_eq!(ask(&good).await.unwrap().len(), 1);
    stop.cancel();
}

#[tokio::test]
async fn server_certificate_renewed_on_disk_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = Pki::new(dir.path(), "old");
    let new = Pki::new(dir.path(), "new");
    let server = old.issue("store", &["127.0.0.1"]);
    let stop = CancellationToken::new();
    let addr = serve(server_options(&server, None), &stop).await;

    let trusts_old = client(&addr, Some(&old), None);
    let trusts_new = client(&addr, Some(&new), None);
    assert!(ask(&trusts_old).await.is_ok());
    assert!(ask(&trusts_new).await.is_err());

    // Renew in place, as cert-manager or an operator's script would.
    new.issue("store", &["127.0.0.1"]);
    assert!(
        eventually_ok(&trusts_new).await,
        "the renewed certificate was not picked up"
    );
    stop.cancel();
}

#[tokio::test]
async fn client_certificate_renewed_on_disk_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::new(dir.path(), "cluster");
    let other = Pki::new(dir.path(), "other");
    let server = ca.issue("store", &["127.0.0.1"]);
    let stop = CancellationToken::new();
    let addr = serve(server_options(&server, Some(&ca)), &stop).await;

    // The client's certificate is from the wrong CA at first.
    let querier = other.issue("querier", &["querier.example"]);
    let c = client(&addr, Some(&ca), Some(&querier));
    assert!(ask(&c).await.is_err());
    ca.issue("querier", &["querier.example"]);
    assert!(
        eventually_ok(&c).await,
        "the renewed client certificate was not picked up"
    );
    stop.cancel();
}

#[test]
fn bad_settings_fail_at_start_naming_the_setting_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::new(dir.path(), "cluster");
    let a = ca.issue("a", &["127.0.0.1"]);
    let b = ca.issue("b", &["127.0.0.1"]);
    let missing = dir.path().join("missing.pem");

    let err = |o: ServerOptions| format!("{:#}", o.build().unwrap_err());

    let mut o = server_options(&a, None);
    o.cert = FileRef::new("--grpc-server-tls-cert", &missing);
    let e = err(o);
    assert!(
        e.contains("--grpc-server-tls-cert") && e.contains("missing.pem"),
        "{e}"
    );

    // A key that is not the certificate's.
    let mut o = server_options(&a, None);
    o.key = FileRef::new("--grpc-server-tls-key", &b.key);
    let e = err(o);
    assert!(e.contains("--grpc-server-tls-key"), "{e}");

    // A key file given as the certificate.
    let mut o = server_options(&a, None);
    o.cert = FileRef::new("--grpc-server-tls-cert", &a.key);
    let e = err(o);
    assert!(
        e.contains("--grpc-server-tls-cert") && e.contains("certificate"),
        "{e}"
    );

    // A certificate given as the client CA is fine; garbage is not.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not pem at all").unwrap();
    let mut o = server_options(&a, Some(&ca));
    o.client_ca = Some(FileRef::new("--grpc-server-tls-client-ca", &junk));
    let e = err(o);
    assert!(
        e.contains("--grpc-server-tls-client-ca") && e.contains("junk.pem"),
        "{e}"
    );

    let c = ClientOptions {
        cert: Some(FileRef::new("--grpc-client-tls-cert", &a.cert)),
        ..Default::default()
    };
    let e = format!("{:#}", c.build().unwrap_err());
    assert!(e.contains("--grpc-client-tls-cert"), "{e}");
}
