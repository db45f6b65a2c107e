//! Two `skein synthetic` processes with one seed serve identical data: the
//! way tests build a STORE group out of real processes.

use futures::StreamExt;
use skein::model::Series;
use skein::store::{ClientConfig, PeerType, RemoteStore, SeriesFrame, SeriesRequest, Store};
use skein_cluster_tests::Process;

fn synthetic(addr_ip: &str, seed: &str) -> Vec<String> {
    [
        "synthetic",
        "--grpc-address",
        &format!("{addr_ip}:0"),
        "--http-address",
        &format!("{addr_ip}:0"),
        "--cluster.disable",
        "--peer-type",
        "store",
        "--store-group-id",
        "bucket-a",
        "--label",
        "region=eu",
        "--seed",
        seed,
        "--targets",
        "20",
        "--end",
        "1700000000",
        "--window",
        "12h",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn all_series(addr: std::net::SocketAddr) -> Vec<Series> {
    let remote = RemoteStore::connect_lazy(&addr.to_string(), &ClientConfig::default()).unwrap();
    let info = remote.info().await.unwrap();
    assert_eq!(info.peer_type, PeerType::Store);
    assert_eq!(info.store_group_id, "bucket-a");
    remote
        .series(SeriesRequest::new(i64::MIN, i64::MAX, vec![]))
        .await
        .unwrap()
        .map(|f| match f.unwrap() {
            SeriesFrame::Series(s) => s,
            SeriesFrame::Warning(w) => panic!("warning {w}"),
        })
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_data_across_processes() {
    let args_a = synthetic("127.0.0.2", "7");
    let args_b = synthetic("127.0.0.3", "7");
    let args_c = synthetic("127.0.0.4", "8");
    let a = Process::start(
        "store-a",
        &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .unwrap();
    let b = Process::start(
        "store-b",
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .unwrap();
    let c = Process::start(
        "store-c",
        &args_c.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(a.grpc.ip().to_string(), "127.0.0.2");
    let (sa, sb, sc) = (
        all_series(a.grpc).await,
        all_series(b.grpc).await,
        all_series(c.grpc).await,
    );
    assert_eq!(sa.len(), 20 * 11);
    assert!(sa == sb, "equal seeds serve identical series and chunks");
    assert!(sa != sc, "another seed serves other values");
    let labels = |v: &[Series]| v.iter().map(|s| s.labels.clone()).collect::<Vec<_>>();
    assert_eq!(
        labels(&sa),
        labels(&sc),
        "the same series exist whatever the seed"
    );
}

#[test]
fn bad_flags_fail_fast_with_a_message() {
    let out = std::process::Command::new(skein_cluster_tests::skein_bin().unwrap())
        .args(["synthetic", "--scrape-interval", "often"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--scrape-interval"), "{err}");
    let out = std::process::Command::new(skein_cluster_tests::skein_bin().unwrap())
        .args([
            "synthetic",
            "--grpc-address",
            "127.0.0.1:notaport",
            "--http-address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--grpc-address"), "{err}");
}
