//! `skein store` on a FILESYSTEM bucket holding damaged blocks next to a
//! clean one, behind a `skein query` that knows it by `--endpoint`. The
//! blocks damaged in a way loading finds (cut index, bad magic, deleted
//! chunk file, garbage meta.json) are skipped and counted in /metrics, and
//! queries over their time are warned that their data is missing; a
//! block with a flipped byte in a series entry is served, and a query
//! reading it gets the error (as a warning, or as the error without
//! partial response) naming the block. The gateway keeps running and
//! answers from the clean block throughout. Loopback range 127.0.14.x.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use skein_cluster_tests::{get_json, http_get, start_node, wait_for};

const CLEAN: &str = "01M80AZ7FF6VHW816SB2HG88JB";
const CUT_INDEX: &str = "01M80AZ7G2HJRDERX4S00CF6HY";
const BAD_MAGIC: &str = "01M80AZ7GJPGNRJVRQSFG42X9R";
const NO_CHUNKS: &str = "01M80AZ7H523RFJ3WJQSEBQB8Y";
/// Damaged in a series entry, which only a query reads.
const BAD_SERIES: &str = "01M80AZ7HX8RR7RQDH3G25MS17";
/// A copy of CLEAN's files under a new ULID, with a garbage meta.json.
const GARBAGE_META: &str = "01M80AZ7J00000000000000001";

use skein_cluster_tests::promql_setup::copy_dir;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/promtool-2.42-blocks")
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut data = std::fs::read(path).unwrap();
    f(&mut data);
    std::fs::write(path, data).unwrap();
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Offset of a byte inside the body of the first series entry of a
/// fixture block's index.
fn series_entry_byte(ulid: &str) -> usize {
    block_on(async {
        let block = skein::tsdb::Block::open_dir(&fixtures().join(ulid), None)
            .await
            .unwrap();
        let refs = block.postings(&[]).await.unwrap();
        refs[0] as usize * 16 + 3
    })
}

/// Series of a fixture block with a sample in the 5 minutes up to `t`
/// (seconds): what `count(...)` at `t` gives.
fn series_at(ulid: &str, t: i64) -> usize {
    use futures::StreamExt;
    block_on(async {
        let block = skein::tsdb::Block::open_dir(&fixtures().join(ulid), None)
            .await
            .unwrap();
        let (mint, maxt) = (t * 1000 - 300_000 + 1, t * 1000);
        let mut s = block.series(&[], mint, maxt, false);
        let mut n = 0;
        while let Some(series) = s.next().await {
            let series = series.unwrap();
            let samples = series.chunks.iter().flat_map(|c| c.samples().unwrap());
            if samples.into_iter().any(|x| mint <= x.t && x.t <= maxt) {
                n += 1;
            }
        }
        n
    })
}

fn damaged_bucket(bucket: &Path) {
    for ulid in [CLEAN, CUT_INDEX, BAD_MAGIC, NO_CHUNKS, BAD_SERIES] {
        copy_dir(&fixtures().join(ulid), &bucket.join(ulid)).unwrap();
    }
    edit(&bucket.join(CUT_INDEX).join("index"), |d| {
        d.truncate(d.len() / 2)
    });
    edit(&bucket.join(BAD_MAGIC).join("index"), |d| d[0] = 0);
    std::fs::remove_file(bucket.join(NO_CHUNKS).join("chunks/000001")).unwrap();
    let at = series_entry_byte(BAD_SERIES);
    edit(&bucket.join(BAD_SERIES).join("index"), |d| d[at] ^= 0x10);
    copy_dir(&fixtures().join(CLEAN), &bucket.join(GARBAGE_META)).unwrap();
    std::fs::write(bucket.join(GARBAGE_META).join("meta.json"), "not json").unwrap();
}

/// A sample's value in a Prometheus metrics text, by series.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn count_at(querier: SocketAddr, time: &str, partial: bool) -> serde_json::Value {
    get_json(
        querier,
        &format!(
            "/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)&time={time}&partial_response={partial}"
        ),
    )
    .unwrap()
}

#[test]
fn a_gateway_serves_the_clean_blocks_of_a_damaged_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    damaged_bucket(&bucket);
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let mut store = start_node(
        "store",
        "store",
        "127.0.14.1",
        None,
        &[
            "--objstore.config",
            &objstore,
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--sync-block-duration",
            "1s",
        ],
    )
    .unwrap();
    let querier = start_node(
        "query",
        "query",
        "127.0.14.2",
        None,
        &[
            "--endpoint",
            &store.grpc.to_string(),
            "--store.health-check-interval",
            "500ms",
        ],
    )
    .unwrap();

    // The clean block's series, at a time only it covers.
    let clean_time = "1700003000";
    let want = series_at(CLEAN, 1_700_003_000).to_string();
    assert_ne!(want, "0");
    wait_for(
        "the querier answers from the clean block",
        Duration::from_secs(60),
        || {
            let v = count_at(querier.http, clean_time, false);
            v["status"] == "success" && v["data"]["result"][0]["value"][1] == want.as_str()
        },
    )
    .unwrap();
    let v = count_at(querier.http, clean_time, false);
    assert!(v["warnings"].is_null(), "{v}");

    // Four blocks failed to load and are counted; two are served.
    let (status, text) = http_get(store.http, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(&text, "skein_store_blocks_failed"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "skein_store_blocks_loaded"),
        Some(2.0),
        "{text}"
    );
    let failed_loads = metric(&text, "skein_store_block_loads_total{result=\"failed\"}");
    assert!(failed_loads.is_some_and(|n| n >= 4.0), "{text}");

    // A query over the time of a block that failed to load (a cut index):
    // the gateway says its data is missing instead of answering as if the
    // block held nothing. A block whose meta.json cannot be parsed says
    // nothing about its time and is only counted.
    let v = count_at(querier.http, "1700010000", true);
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(CUT_INDEX) && warnings.contains("failed to load"),
        "{v}"
    );
    assert!(!warnings.contains(GARBAGE_META), "{v}");
    let (_, labels) = http_get(
        querier.http,
        "/api/v1/labels?start=1700007000&end=1700011000",
    )
    .unwrap();
    assert!(labels.contains(CUT_INDEX), "{labels}");

    // A query reading the damaged series entry: a warning with partial
    // response, the error without; the block is named either way.
    let damaged_time = "1700028800";
    let v = count_at(querier.http, damaged_time, true);
    let warnings = v["warnings"].to_string();
    eprintln!("partial response: {v}");
    assert!(
        warnings.contains(BAD_SERIES) && warnings.contains("checksum mismatch"),
        "{v}"
    );
    let (status, body) = http_get(
        querier.http,
        &format!(
            "/api/v1/query?query=count(%7B__name__%3D~%22.%2B%22%7D)&time={damaged_time}&partial_response=false"
        ),
    )
    .unwrap();
    eprintln!("no partial response: {status} {body}");
    assert_ne!(status, 200, "{body}");
    assert!(
        body.contains(BAD_SERIES) && body.contains("checksum mismatch"),
        "{body}"
    );

    // The gateway is still up, answers from the clean block, and has
    // counted the damage it read.
    assert!(store.is_running());
    let v = count_at(querier.http, clean_time, false);
    assert_eq!(v["data"]["result"][0]["value"][1], want.as_str(), "{v}");
    let (_, text) = http_get(store.http, "/metrics").unwrap();
    let corrupt = metric(&text, "skein_store_block_corruption_errors_total");
    assert!(corrupt.is_some_and(|n| n >= 1.0), "{text}");
    // Later syncs (every second) still skip the four.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, text) = http_get(store.http, "/metrics").unwrap();
    assert_eq!(
        metric(&text, "skein_store_blocks_failed"),
        Some(4.0),
        "{text}"
    );
    assert!(store.is_running());
}
