//! `skein store` on an S3 bucket (a local moto server): blocks written by
//! promtool 2.42 are uploaded, a gateway serves them over the Store API
//! with range GETs, and every series and sample equals what the same
//! blocks give when read from the local disk. A second start reuses the
//! index headers it cached.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skein::model::{MatchOp, Matcher};
use skein::objstore::{Bucket, BucketConfig};
use skein::store::{ClientConfig, PeerType, RemoteStore, SeriesFrame, SeriesRequest, Store};
use skein::storegw::bucket::BucketLoader;
use skein::storegw::role::GatewayConfig;
use skein::storegw::tsdb_block::TsdbBlock;
use skein::storegw::{BlockLoader, BlockSeries, GatewayStore, StoreConfig, TimeBound};
use skein::tsdb::Block;
use tokio_util::sync::CancellationToken;

const MOTO_HOST: &str = "127.0.7.2";

#[path = "support/moto.rs"]
mod moto;
use moto::Moto;

fn s3_config(moto: &Moto, bucket: &str) -> BucketConfig {
    BucketConfig::parse(&format!(
        "type: S3\nconfig:\n  bucket: {bucket}\n  endpoint: {}\n  region: us-east-1\n  access_key: test\n  secret_key: test\n  insecure: true\n",
        moto.endpoint()
    ))
    .unwrap()
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promtool-2.42-blocks")
}

/// Every series of `store` as (labels, samples) text, in order.
async fn dump(store: &dyn Store) -> Vec<String> {
    let any = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let mut s = store
        .series(SeriesRequest::new(i64::MIN, i64::MAX, vec![any]))
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(f) = s.next().await {
        match f.unwrap() {
            SeriesFrame::Series(s) => {
                let mut line = s.labels.to_string();
                for c in &s.chunks {
                    for smp in c.samples().unwrap() {
                        line.push_str(&format!(" {}@{}", smp.v, smp.t));
                    }
                }
                out.push(line);
            }
            SeriesFrame::Warning(w) => panic!("warning: {w}"),
        }
    }
    out
}

async fn serve(cfg: StoreConfig, stop: CancellationToken) -> (String, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        skein::storegw::run(cfg, stop, move |b| {
            let _ = tx.send(b.grpc);
        })
        .await
        .unwrap();
    });
    let addr = rx.await.unwrap().to_string();
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_promtool_blocks_from_s3() {
    let Some(moto) = Moto::start(MOTO_HOST) else {
        return;
    };
    moto.create_bucket("blocks").await;
    let config = s3_config(&moto, "blocks");
    let bucket = Bucket::open(&config).unwrap();

    // Upload the blocks and read them locally for the expected answer.
    let mut local: Vec<Arc<dyn BlockSeries>> = Vec::new();
    let mut uploaded = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("meta.json").is_file() {
            continue;
        }
        let ulid = dir.file_name().unwrap().to_string_lossy().to_string();
        for file in ["meta.json", "index", "chunks/000001"] {
            bucket
                .upload_file(&format!("{ulid}/{file}"), &dir.join(file))
                .await
                .unwrap();
        }
        local.push(Arc::new(
            TsdbBlock::new(Block::open_dir(&dir, None).await.unwrap()).unwrap(),
        ));
        uploaded += 1;
    }
    assert!(uploaded >= 5);
    // A block still being uploaded (no meta.json) and one marked for
    // deletion are not listed for serving.
    let uploading = "01JJJJ0000000000000000000A";
    let deleted = "01JJJJ0000000000000000000B";
    bucket
        .upload(&format!("{uploading}/index"), "x".into())
        .await
        .unwrap();
    for f in ["meta.json", "deletion-mark.json"] {
        bucket
            .upload(&format!("{deleted}/{f}"), "{}".into())
            .await
            .unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    let loader = BucketLoader::new(
        Arc::new(Bucket::open(&config).unwrap()),
        scratch.path().to_path_buf(),
    );
    let listed = loader.list().await.unwrap();
    assert_eq!(listed.len(), uploaded);
    assert!(!listed.iter().any(|u| u == uploading || u == deleted));
    let local_store = GatewayStore::new(
        "local".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    );
    local_store.set_blocks(local);
    let want = dump(&local_store).await;
    assert!(!want.is_empty());

    let data = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        gateway: GatewayConfig {
            grpc_address: "127.0.0.1:0".into(),
            grpc_limits: Default::default(),
            security: Default::default(),
            http_address: "127.0.0.1:0".into(),
            cluster: None,
            sync_interval: Duration::from_secs(60),
            min_time: TimeBound::At(i64::MIN),
            max_time: TimeBound::At(i64::MAX),
            limits: Default::default(),
        },
        bucket: config.clone(),
        data_dir: data.path().to_path_buf(),
        index_cache_bytes: 1 << 20,
        chunk_cache_bytes: 1 << 20,
        store_group_id: None,
        selector: Default::default(),
    };
    for round in ["first start", "restart with cached index headers"] {
        let stop = CancellationToken::new();
        let (addr, task) = serve(cfg.clone(), stop.clone()).await;
        let client = RemoteStore::connect_lazy(&addr, &ClientConfig::default()).unwrap();
        // Unavailable, not empty, until the first sync has loaded the blocks.
        let started = Instant::now();
        let info = loop {
            match client.info().await {
                Ok(i) => break i,
                Err(e) => {
                    assert!(started.elapsed() < Duration::from_secs(30), "{round}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert_eq!(info.peer_type, PeerType::Store, "{round}");
        assert_eq!(info.store_group_id, bucket.id(), "{round}");
        let got = dump(&client).await;
        assert_eq!(got, want, "{round}: answers differ from the local blocks");
        stop.cancel();
        task.await.unwrap();
    }
    let headers = std::fs::read_dir(data.path().join("index-headers"))
        .unwrap()
        .count();
    assert_eq!(headers, uploaded);
}
