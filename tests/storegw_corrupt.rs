//! A FILESYSTEM bucket in which some of the promtool 2.42 blocks are
//! damaged, served by the store gateway's loader, syncer and store.
//!
//! Damage found when a block is loaded (cut index, bad magic, missing or
//! bad chunk segment, sizes that differ from meta.json, unreadable or
//! foreign meta.json) skips the block with an error naming it and the
//! cause; the other blocks are served as if the damaged ones were not
//! there. Damage inside series entries and postings lists is found by the
//! queries that read them: those fail with an error naming the block, and
//! every other query is answered. A repaired block is served at the next
//! sync.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skein::model::{MatchOp, Matcher};
use skein::objstore::{Bucket, BucketConfig};
use skein::store::{SeriesFrame, SeriesRequest, Store, StoreError};
use skein::storegw::bucket::BucketLoader;
use skein::storegw::tsdb_block::TsdbBlock;
use skein::storegw::{BlockSeries, GatewayStore, SyncReport, Syncer, TimeBound};
use skein::tsdb::Block;
use tokio_util::sync::CancellationToken;

/// Served untouched.
const CLEAN: [&str; 2] = ["01M80AZ7FF6VHW816SB2HG88JB", "01M80AZ7HX8RR7RQDH3G25MS17"];
/// Damaged in place.
const CUT_INDEX: &str = "01M80AZ7G2HJRDERX4S00CF6HY";
const BAD_MAGIC: &str = "01M80AZ7GJPGNRJVRQSFG42X9R";
const NO_CHUNKS: &str = "01M80AZ7H523RFJ3WJQSEBQB8Y";
/// Copies of fixture blocks under new ULIDs, then damaged.
const GARBAGE_META: &str = "01M80AZ7J00000000000000001";
const BAD_SEGMENT: &str = "01M80AZ7J00000000000000002";
const WRONG_SIZE: &str = "01M80AZ7J00000000000000003";
const FOREIGN_META: &str = "01M80AZ7J00000000000000004";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promtool-2.42-blocks")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// A fixture block copied to `<root>/<ulid>`, its meta.json naming `ulid`
/// and, with `sizes`, listing the sizes of its index and segment (as
/// blocks shipped by skein or Thanos do).
fn copy_block(root: &Path, from: &str, ulid: &str, sizes: bool) {
    let dir = root.join(ulid);
    copy_dir(&fixtures().join(from), &dir);
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    meta["ulid"] = ulid.into();
    if sizes {
        let size = |f: &str| std::fs::metadata(dir.join(f)).unwrap().len();
        meta["thanos"] = serde_json::json!({
            "labels": {},
            "downsample": {"resolution": 0},
            "source": "sidecar",
            "segment_files": ["000001"],
            "files": [
                {"rel_path": "chunks/000001", "size_bytes": size("chunks/000001")},
                {"rel_path": "index", "size_bytes": size("index")},
                {"rel_path": "meta.json"}
            ]
        });
    }
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut data = std::fs::read(path).unwrap();
    f(&mut data);
    std::fs::write(path, data).unwrap();
}

/// Offset of a byte inside the first series entry's body, and one inside
/// the postings list of `__name__="skein_codec_test"`, of a fixture index:
/// both covered by a CRC, neither read when the block is loaded.
async fn series_and_postings_offsets(ulid: &str) -> (usize, usize) {
    let block = Block::open_dir(&fixtures().join(ulid), None).await.unwrap();
    let refs = block.postings(&[]).await.unwrap();
    let (postings, _) = block
        .index()
        .header()
        .postings_range("__name__", "skein_codec_test")
        .unwrap();
    // Entry: length varint, label count, ...; list: length, count, refs.
    (refs[0] as usize * 16 + 3, postings as usize + 9)
}

/// Writes the damaged bucket: the clean blocks, and one block per kind of
/// damage found at load.
fn damaged_bucket(bucket: &Path) {
    for ulid in CLEAN {
        copy_dir(&fixtures().join(ulid), &bucket.join(ulid));
    }
    for ulid in [CUT_INDEX, BAD_MAGIC, NO_CHUNKS] {
        copy_dir(&fixtures().join(ulid), &bucket.join(ulid));
    }
    edit(&bucket.join(CUT_INDEX).join("index"), |d| {
        d.truncate(d.len() / 2)
    });
    edit(&bucket.join(BAD_MAGIC).join("index"), |d| {
        d[..4].copy_from_slice(b"\x00\x00\x00\x00")
    });
    std::fs::remove_file(bucket.join(NO_CHUNKS).join("chunks/000001")).unwrap();

    copy_block(bucket, CUT_INDEX, GARBAGE_META, false);
    std::fs::write(bucket.join(GARBAGE_META).join("meta.json"), "{\"ulid\": ").unwrap();
    copy_block(bucket, BAD_MAGIC, BAD_SEGMENT, false);
    edit(&bucket.join(BAD_SEGMENT).join("chunks/000001"), |d| {
        d[1] ^= 0x40
    });
    copy_block(bucket, NO_CHUNKS, WRONG_SIZE, true);
    edit(&bucket.join(WRONG_SIZE).join("chunks/000001"), |d| {
        d.truncate(d.len() - 10)
    });
    // A block copied with its meta.json unchanged: it says it is CLEAN[1].
    copy_dir(&fixtures().join(CLEAN[1]), &bucket.join(FOREIGN_META));
}

/// Moves every file under `from` to the same place under `to`, each with
/// one rename: a sync sees either the old file or the new one.
fn move_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            move_files(&p, &dst);
        } else {
            std::fs::rename(&p, &dst).unwrap();
        }
    }
}

/// Undoes `damaged_bucket`'s damage, file by file, while a gateway may be
/// syncing: every block is then a good one.
fn repair(bucket: &Path, staging: &Path) {
    for ulid in [CUT_INDEX, BAD_MAGIC, NO_CHUNKS] {
        copy_dir(&fixtures().join(ulid), &staging.join(ulid));
    }
    copy_block(staging, CUT_INDEX, GARBAGE_META, false);
    copy_block(staging, BAD_MAGIC, BAD_SEGMENT, false);
    copy_block(staging, NO_CHUNKS, WRONG_SIZE, true);
    copy_block(staging, CLEAN[1], FOREIGN_META, false);
    move_files(staging, bucket);
}

struct Gateway {
    syncer: Syncer,
    store: Arc<GatewayStore>,
    _headers: tempfile::TempDir,
}

fn gateway(bucket: &Path) -> Gateway {
    let config = BucketConfig::parse(&format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    ))
    .unwrap();
    let headers = tempfile::tempdir().unwrap();
    let loader = Arc::new(BucketLoader::new(
        Arc::new(Bucket::open(&config).unwrap()),
        headers.path().to_path_buf(),
    ));
    let store = Arc::new(GatewayStore::new(
        "file:///bucket".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    ));
    Gateway {
        syncer: Syncer::new(loader, store.clone()),
        store,
        _headers: headers,
    }
}

/// The blocks in `dirs`, read from the local disk, as one store.
async fn local_store(dirs: &[PathBuf]) -> GatewayStore {
    let mut blocks: Vec<Arc<dyn BlockSeries>> = Vec::new();
    for dir in dirs {
        let block = Block::open_dir(dir, None).await.unwrap();
        blocks.push(Arc::new(TsdbBlock::new(block).unwrap()));
    }
    let store = GatewayStore::new(
        "local".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    );
    store.set_blocks(blocks);
    store
}

/// Every series in `[mint, maxt]` as (labels, samples) text in order, or
/// the first error; a warning fails the test.
async fn dump(store: &dyn Store, mint: i64, maxt: i64) -> Result<Vec<String>, StoreError> {
    let (out, warnings) = dump_warned(store, mint, maxt).await?;
    assert!(warnings.is_empty(), "warnings: {warnings:?}");
    Ok(out)
}

/// [`dump`], with the warnings.
async fn dump_warned(
    store: &dyn Store,
    mint: i64,
    maxt: i64,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let any = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let mut s = store
        .series(SeriesRequest::new(mint, maxt, vec![any]))
        .await?;
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    while let Some(f) = s.next().await {
        match f? {
            SeriesFrame::Series(s) => {
                let mut line = s.labels.to_string();
                for c in &s.chunks {
                    for smp in c.samples().unwrap() {
                        line.push_str(&format!(" {}@{}", smp.v, smp.t));
                    }
                }
                out.push(line);
            }
            SeriesFrame::Warning(w) => warnings.push(w),
        }
    }
    Ok((out, warnings))
}

fn expect_failure(failures: &BTreeMap<String, String>, ulid: &str, words: &[&str]) {
    let error = failures
        .get(ulid)
        .unwrap_or_else(|| panic!("{ulid} did not fail: {failures:#?}"));
    assert!(error.contains(ulid), "{ulid}: block not named: {error}");
    for w in words {
        assert!(error.contains(w), "{ulid}: no {w:?} in: {error}");
    }
}

#[tokio::test]
async fn damaged_blocks_are_skipped_at_load_and_the_rest_served() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    damaged_bucket(&bucket);
    let mut gw = gateway(&bucket);

    let report = gw.syncer.sync().await.unwrap();
    let failures = gw.syncer.failures().clone();
    for (ulid, error) in &failures {
        eprintln!("{ulid}: {error}");
    }
    assert_eq!((report.loaded, report.served), (2, 2), "{report:?}");
    let mut failed = report.failed.clone();
    failed.sort();
    let mut want_failed = vec![
        CUT_INDEX,
        BAD_MAGIC,
        NO_CHUNKS,
        GARBAGE_META,
        BAD_SEGMENT,
        WRONG_SIZE,
        FOREIGN_META,
    ];
    want_failed.sort();
    assert_eq!(failed, want_failed);
    assert_eq!(
        failures.keys().collect::<Vec<_>>(),
        want_failed.iter().collect::<Vec<_>>()
    );

    expect_failure(
        &failures,
        CUT_INDEX,
        &[
            "/index",
            "checksum mismatch",
            "table of contents",
            "truncated",
        ],
    );
    expect_failure(
        &failures,
        BAD_MAGIC,
        &[
            "/index",
            "bad magic number 0x00000000",
            "expected 0xbaaad700",
        ],
    );
    expect_failure(
        &failures,
        NO_CHUNKS,
        &["chunk segment chunks/000001 is missing"],
    );
    expect_failure(
        &failures,
        GARBAGE_META,
        &["/meta.json", "invalid block meta"],
    );
    expect_failure(
        &failures,
        BAD_SEGMENT,
        &["/chunks/000001", "bad magic number", "expected 0x85bd40dd"],
    );
    expect_failure(
        &failures,
        WRONG_SIZE,
        &["/chunks/000001", "truncated", "meta.json"],
    );
    expect_failure(
        &failures,
        FOREIGN_META,
        &["/meta.json", "not the block's directory name"],
    );

    // Exactly the clean blocks' series and samples, no error.
    let served: Vec<String> = gw
        .store
        .blocks()
        .iter()
        .map(|b| b.info().ulid.clone())
        .collect();
    assert_eq!(served, CLEAN);
    let clean: Vec<PathBuf> = CLEAN.iter().map(|u| fixtures().join(u)).collect();
    let want = dump(&local_store(&clean).await, i64::MIN, i64::MAX)
        .await
        .unwrap();
    assert!(want.len() >= 6, "{want:?}");
    // Everything the clean blocks hold, and a warning for each block that
    // failed after its meta.json was read (a garbage meta.json says
    // nothing of its time).
    let (got, warnings) = dump_warned(gw.store.as_ref(), i64::MIN, i64::MAX)
        .await
        .unwrap();
    assert_eq!(got, want);
    assert!(!warnings.is_empty());
    for w in &warnings {
        assert!(
            w.contains("failed to load") && failures.keys().any(|u| w.contains(u.as_str())),
            "{w}"
        );
    }
    let info = gw.store.info().await.unwrap();
    assert_eq!(info.min_time, 1_700_000_014_978);
    assert_eq!(info.max_time, 1_700_028_840_000);

    // The next sync tries the damaged blocks again, with the same result.
    let again = gw.syncer.sync().await.unwrap();
    assert_eq!((again.loaded, again.served, again.failed.len()), (0, 2, 7));
    assert_eq!(gw.syncer.failures(), &failures);
}

#[tokio::test]
async fn damage_found_by_a_query_fails_only_queries_that_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let clean = CLEAN[0];
    // A flipped byte in a series entry of one block and in a postings list
    // of another.
    let (bad_series, bad_postings) = (BAD_MAGIC, NO_CHUNKS);
    for ulid in [clean, bad_series, bad_postings] {
        copy_dir(&fixtures().join(ulid), &bucket.join(ulid));
    }
    let (at, _) = series_and_postings_offsets(bad_series).await;
    edit(&bucket.join(bad_series).join("index"), |d| d[at] ^= 0x10);
    let (_, at) = series_and_postings_offsets(bad_postings).await;
    edit(&bucket.join(bad_postings).join("index"), |d| d[at] ^= 0x10);

    // Neither is read when the block is loaded.
    let mut gw = gateway(&bucket);
    let report = gw.syncer.sync().await.unwrap();
    assert_eq!((report.served, report.failed.len()), (3, 0), "{report:?}");

    let range = |ulid: &str| {
        let b = gw.store.blocks();
        let b = b.iter().find(|b| b.info().ulid == ulid).unwrap();
        (b.info().min_time, b.info().max_time)
    };
    let cases = [
        (bad_series, "series entry"),
        (bad_postings, "postings list"),
    ];
    for (ulid, section) in cases {
        let (mint, maxt) = range(ulid);
        let err = dump(gw.store.as_ref(), mint, maxt).await.unwrap_err();
        eprintln!("query over {ulid}: {err}");
        assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("block {ulid}")), "{text}");
        assert!(text.contains("checksum mismatch"), "{text}");
        assert!(text.contains(section), "{text}");
    }
    // A query over everything reads them too: an error, not less data.
    let err = dump(gw.store.as_ref(), i64::MIN, i64::MAX)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    // Everything else is answered, before and after those errors.
    let (mint, maxt) = range(clean);
    let want = dump(&local_store(&[fixtures().join(clean)]).await, mint, maxt)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(dump(gw.store.as_ref(), mint, maxt).await.unwrap(), want);
    }
    // Names and values come from the index header, which is intact.
    let labels = skein::store::LabelsRequest {
        name: "series".into(),
        start: i64::MIN,
        end: i64::MAX,
        matchers: Vec::new(),
        partial_response: skein::store::PartialResponse::Abort,
        limit: 0,
        hops: 0,
        deadline: None,
        without_replica_labels: Vec::new(),
    };
    assert!(!gw
        .store
        .label_values(labels)
        .await
        .unwrap()
        .values
        .is_empty());
    // The blocks stay served: every query reading the damage says so.
    let report = gw.syncer.sync().await.unwrap();
    assert_eq!((report.served, report.failed.len()), (3, 0));
}

/// Waits for a sync report that `done` accepts.
async fn wait_for_report(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<SyncReport>,
    what: &str,
    done: impl Fn(&SyncReport) -> bool,
) -> SyncReport {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(r)) if done(&r) => return r,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the sync loop stopped before: {what}"),
            Err(_) => panic!("timed out waiting for: {what}"),
        }
    }
}

#[tokio::test]
async fn the_sync_loop_serves_a_block_once_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    damaged_bucket(&bucket);
    let gw = gateway(&bucket);
    let store = gw.store.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        gw.syncer
            .run(Duration::from_millis(50), stop.clone(), move |r| {
                let _ = tx.send(r.clone());
            }),
    );
    let first = wait_for_report(&mut rx, "the first sync", |_| true).await;
    assert_eq!((first.served, first.failed.len()), (2, 7), "{first:?}");
    // Retried at every pass while damaged.
    let later = wait_for_report(&mut rx, "a later sync", |_| true).await;
    assert_eq!((later.loaded, later.failed.len()), (0, 7), "{later:?}");

    repair(&bucket, &dir.path().join("staging"));
    let fixed = wait_for_report(&mut rx, "the repaired blocks loaded", |r| {
        r.failed.is_empty()
    })
    .await;
    assert_eq!(fixed.served, 9, "{fixed:?}");
    let every: Vec<PathBuf> = std::fs::read_dir(&bucket)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let want = dump(&local_store(&every).await, i64::MIN, i64::MAX)
        .await
        .unwrap();
    let got = dump(store.as_ref(), i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(got, want);
    stop.cancel();
    task.await.unwrap();
}
