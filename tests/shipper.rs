//! The sidecar's shipper on real promtool 2.42 blocks in a fake tsdb
//! directory and a filesystem bucket: level-1 blocks go up once, with the
//! Thanos meta section; compacted blocks, temporary directories and broken
//! blocks are left alone (broken ones retried); the record of shipped
//! blocks survives restarts and, when lost, the bucket is asked instead.

use std::path::Path;
use std::sync::Arc;

use skein::model::Labels;
use skein::objstore::{Bucket, BucketConfig};
use skein::sidecar::shipper::{Shipper, SHIPPER_FILE};

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

fn fixture_ulids() -> (std::path::PathBuf, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promtool-2.42-blocks");
    let mut ulids: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ulids.sort();
    (dir, ulids)
}

fn bucket_metas(bucket: &Path) -> Vec<serde_json::Value> {
    let mut v: Vec<serde_json::Value> = std::fs::read_dir(bucket)
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("meta.json")).ok())
        .map(|d| serde_json::from_slice(&d).unwrap())
        .collect();
    v.sort_by_key(|m| m["ulid"].as_str().unwrap().to_string());
    v
}

#[tokio::test]
async fn ships_each_completed_block_once() {
    let dir = tempfile::tempdir().unwrap();
    let (fixtures, ulids) = fixture_ulids();
    let tsdb = dir.path().join("tsdb");
    for u in &ulids {
        copy_dir(&fixtures.join(u), &tsdb.join(u));
    }
    // Prometheus' own compaction output, a block being written and WAL.
    let compacted = &ulids[1];
    let meta_path = tsdb.join(compacted).join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["compaction"]["level"] = 2.into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    copy_dir(
        &fixtures.join(&ulids[0]),
        &tsdb.join(format!("{}.tmp-for-creation", ulids[0])),
    );
    std::fs::create_dir_all(tsdb.join("wal")).unwrap();
    // A block missing its index: fails, others go on.
    let broken = &ulids[2];
    let index = tsdb.join(broken).join("index");
    let saved = dir.path().join("index.saved");
    std::fs::rename(&index, &saved).unwrap();

    let bucket_dir = dir.path().join("bucket");
    let config = BucketConfig::parse(&format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.display()
    ))
    .unwrap();
    let bucket = Arc::new(Bucket::open(&config).unwrap());
    let labels = Labels::from_pairs([("replica", "a"), ("region", "eu")]).unwrap();
    let shipper = Shipper::new(bucket.clone(), &tsdb, false);

    let r = shipper.sync(&labels).await.unwrap();
    assert_eq!(r.skipped_compacted, 1, "{r:?}");
    assert_eq!(r.failed, 1, "{r:?}");
    let want: Vec<String> = ulids
        .iter()
        .filter(|u| *u != compacted && *u != broken)
        .cloned()
        .collect();
    assert_eq!(r.uploaded, want);
    let metas = bucket_metas(&bucket_dir);
    assert_eq!(metas.len(), want.len());
    for m in &metas {
        let u = m["ulid"].as_str().unwrap();
        assert_eq!(m["thanos"]["labels"]["replica"], "a");
        assert_eq!(m["thanos"]["labels"]["region"], "eu");
        assert_eq!(m["thanos"]["source"], "sidecar");
        assert_eq!(m["thanos"]["segment_files"][0], "000001");
        // Prometheus' own fields are kept.
        let local: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tsdb.join(u).join("meta.json")).unwrap())
                .unwrap();
        for k in ["minTime", "maxTime", "stats", "compaction", "version"] {
            assert_eq!(m[k], local[k], "{u}: {k}");
        }
        for f in ["index", "chunks/000001"] {
            let sent = std::fs::read(bucket_dir.join(u).join(f)).unwrap();
            assert_eq!(
                sent,
                std::fs::read(tsdb.join(u).join(f)).unwrap(),
                "{u}/{f}"
            );
            let listed = m["thanos"]["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["rel_path"] == f)
                .unwrap();
            assert_eq!(listed["size_bytes"], sent.len(), "{u}/{f}");
        }
    }
    // Nothing half-sent of the broken block; staging is cleaned up.
    assert!(!bucket_dir.join(broken).join("meta.json").exists());
    assert_eq!(
        std::fs::read_dir(tsdb.join("skein-upload"))
            .unwrap()
            .count(),
        0
    );

    // Nothing new: nothing sent. The broken block is retried once fixed.
    let r = shipper.sync(&labels).await.unwrap();
    assert!(r.uploaded.is_empty() && r.failed == 1, "{r:?}");
    std::fs::rename(&saved, &index).unwrap();
    let r = shipper.sync(&labels).await.unwrap();
    assert_eq!(r.uploaded, vec![broken.clone()]);

    // The record lost: the bucket is asked, nothing is sent twice.
    std::fs::remove_file(tsdb.join(SHIPPER_FILE)).unwrap();
    let r = shipper.sync(&labels).await.unwrap();
    assert!(r.uploaded.is_empty(), "{r:?}");
    assert_eq!(r.already_there.len(), ulids.len() - 1);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tsdb.join(SHIPPER_FILE)).unwrap()).unwrap();
    assert_eq!(record["version"], 1);
    assert_eq!(
        record["uploaded"].as_array().unwrap().len(),
        ulids.len() - 1
    );

    // A corrupt record is an error that names the file, not a re-upload.
    std::fs::write(tsdb.join(SHIPPER_FILE), b"{not json").unwrap();
    let e = shipper.sync(&labels).await.unwrap_err().to_string();
    assert!(e.contains(SHIPPER_FILE), "{e}");
    std::fs::remove_file(tsdb.join(SHIPPER_FILE)).unwrap();

    // Opting in to compacted blocks ships the last one.
    let r = Shipper::new(bucket, &tsdb, true)
        .sync(&labels)
        .await
        .unwrap();
    assert_eq!(r.uploaded, vec![compacted.clone()]);
    assert_eq!(bucket_metas(&bucket_dir).len(), ulids.len());
}
