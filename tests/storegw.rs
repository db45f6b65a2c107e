//! The store gateway's view of many blocks as one store, over in-memory
//! blocks.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use skein::model::chunk::aggr::{parts, Aggr};
use skein::model::ChunkEncoding;
use skein::model::{Chunk, Labels, MatchOp, Matcher, Sample, Series};
use skein::store::{
    LabelsRequest, MemStore, PartialResponse, PeerType, SeriesFrame, SeriesRequest, SeriesStream,
    Store, StoreError, StoreInfo,
};
use skein::storegw::{BlockInfo, BlockSeries, GatewayStore, TimeBound};
use skein::tsdb::downsample::downsample_raw;

const H: i64 = 3_600_000;

struct MemBlock {
    info: BlockInfo,
    store: MemStore,
}

impl MemBlock {
    /// A block of `ext`'s data for `[from, to)`: each series a sample a
    /// minute valued by its timestamp.
    fn block(
        ulid: &str,
        ext: &[(&str, &str)],
        from: i64,
        to: i64,
        series: &[&[(&str, &str)]],
    ) -> Arc<dyn BlockSeries> {
        Self::downsampled(ulid, ext, from, to, series, 0)
    }

    /// The same data at a resolution (0: raw chunks).
    fn downsampled(
        ulid: &str,
        ext: &[(&str, &str)],
        from: i64,
        to: i64,
        series: &[&[(&str, &str)]],
        resolution: i64,
    ) -> Arc<dyn BlockSeries> {
        let data: Vec<Series> = series
            .iter()
            .map(|l| {
                let samples: Vec<Sample> = (from..to)
                    .step_by(60_000)
                    .map(|t| Sample { t, v: t as f64 })
                    .collect();
                Series {
                    labels: Labels::from_pairs(l.iter().copied()).unwrap(),
                    chunks: if resolution == 0 {
                        Chunk::encode_xor(&samples, 120).unwrap()
                    } else {
                        downsample_raw(&samples, resolution).unwrap()
                    },
                }
            })
            .collect();
        let info = StoreInfo {
            label_sets: vec![],
            min_time: from,
            max_time: to - 1,
            peer_type: PeerType::Store,
            store_group_id: String::new(),
            component: "store".into(),
            supports_without_replica_labels: false,
        };
        Arc::new(MemBlock {
            info: BlockInfo {
                ulid: ulid.into(),
                min_time: from,
                max_time: to - 1,
                labels: Labels::from_pairs(ext.iter().copied()).unwrap(),
                resolution,
            },
            store: MemStore::new(info, data).unwrap(),
        })
    }
}

#[async_trait]
impl BlockSeries for MemBlock {
    fn info(&self) -> &BlockInfo {
        &self.info
    }

    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> Result<SeriesStream, StoreError> {
        let mut req = SeriesRequest::new(mint, maxt, matchers.to_vec());
        req.skip_chunks = skip_chunks;
        self.store.series(req).await
    }

    async fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .label_names(labels_req("", matchers))
            .await?
            .values)
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .label_values(labels_req(name, matchers))
            .await?
            .values)
    }
}

fn labels_req(name: &str, matchers: &[Matcher]) -> LabelsRequest {
    LabelsRequest {
        name: name.into(),
        start: i64::MIN,
        end: i64::MAX,
        matchers: matchers.to_vec(),
        partial_response: PartialResponse::Abort,
        limit: 0,
        hops: 0,
        deadline: None,
        without_replica_labels: Vec::new(),
    }
}

async fn collect(s: SeriesStream) -> Vec<(String, Vec<Sample>)> {
    let frames: Vec<_> = s.collect().await;
    frames
        .into_iter()
        .map(|f| match f.unwrap() {
            SeriesFrame::Series(s) => {
                let mut samples = Vec::new();
                for c in &s.chunks {
                    samples.extend(c.samples().unwrap());
                }
                (s.labels.to_string(), samples)
            }
            SeriesFrame::Warning(w) => panic!("warning {w}"),
        })
        .collect()
}

fn gateway() -> GatewayStore {
    let up_a: &[(&str, &str)] = &[("__name__", "up"), ("job", "a")];
    let up_b: &[(&str, &str)] = &[("__name__", "up"), ("job", "b")];
    let g = GatewayStore::new(
        "file:///bucket".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    );
    g.set_blocks(vec![
        // Two hours of cluster x in two blocks, one of cluster y.
        MemBlock::block(
            "B2",
            &[("cluster", "x"), ("replica", "1")],
            H,
            2 * H,
            &[up_a, up_b],
        ),
        MemBlock::block("B1", &[("cluster", "x"), ("replica", "1")], 0, H, &[up_a]),
        MemBlock::block("B3", &[("cluster", "y"), ("replica", "1")], 0, H, &[up_a]),
    ]);
    g
}

#[tokio::test]
async fn blocks_merge_into_one_sorted_answer() {
    let g = gateway();
    let up = Matcher::equal("__name__", "up");
    let out = collect(
        g.series(SeriesRequest::new(0, 2 * H, vec![up.clone()]))
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> = out.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        names,
        [
            r#"{__name__="up", cluster="x", job="a", replica="1"}"#,
            r#"{__name__="up", cluster="x", job="b", replica="1"}"#,
            r#"{__name__="up", cluster="y", job="a", replica="1"}"#,
        ]
    );
    // The series of cluster x spanning both blocks is whole and in order.
    let samples = &out[0].1;
    assert_eq!(samples.len(), 120);
    assert!(samples.windows(2).all(|w| w[0].t < w[1].t));

    // A matcher on an external label prunes whole blocks.
    let y = Matcher::new(MatchOp::Equal, "cluster", "y").unwrap();
    let out = collect(
        g.series(SeriesRequest::new(0, 2 * H, vec![up.clone(), y]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.len(), 1);

    // Replica labels are left out when asked, and the answer stays sorted.
    let mut req = SeriesRequest::new(0, 2 * H, vec![up.clone()]);
    req.without_replica_labels = vec!["replica".into()];
    let out = collect(g.series(req).await.unwrap()).await;
    assert_eq!(out[0].0, r#"{__name__="up", cluster="x", job="a"}"#);

    // Only the second hour: B2 alone.
    let out = collect(
        g.series(SeriesRequest::new(H + 1, 2 * H, vec![up.clone()]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.len(), 2);

    let mut req = SeriesRequest::new(0, 2 * H, vec![up]);
    req.limit = 2;
    assert_eq!(collect(g.series(req).await.unwrap()).await.len(), 2);
}

#[tokio::test]
async fn info_and_labels_include_external_labels() {
    let g = gateway();
    let info = g.info().await.unwrap();
    assert_eq!(info.peer_type, PeerType::Store);
    assert_eq!(info.store_group_id, "file:///bucket");
    assert_eq!((info.min_time, info.max_time), (0, 2 * H - 1));
    assert_eq!(info.label_sets.len(), 2);

    let names = g.label_names(labels_req("", &[])).await.unwrap().values;
    assert_eq!(names, ["__name__", "cluster", "job", "replica"]);
    let clusters = g
        .label_values(labels_req("cluster", &[]))
        .await
        .unwrap()
        .values;
    assert_eq!(clusters, ["x", "y"]);
    let b = Matcher::equal("job", "b");
    let clusters = g
        .label_values(labels_req("cluster", &[b]))
        .await
        .unwrap()
        .values;
    assert_eq!(clusters, ["x"]);
}

#[tokio::test]
async fn a_time_partition_hides_other_blocks() {
    let g = GatewayStore::new(
        "file:///bucket".into(),
        TimeBound::At(H),
        TimeBound::At(i64::MAX),
    );
    let up_a: &[(&str, &str)] = &[("__name__", "up"), ("job", "a")];
    g.set_blocks(vec![
        MemBlock::block("B1", &[("cluster", "x")], 0, H, &[up_a]),
        MemBlock::block("B2", &[("cluster", "x")], H, 2 * H, &[up_a]),
    ]);
    let info = g.info().await.unwrap();
    assert_eq!(info.min_time, H);
    let up = Matcher::equal("__name__", "up");
    let out = collect(
        g.series(SeriesRequest::new(0, H - 1, vec![up]))
            .await
            .unwrap(),
    )
    .await;
    assert!(out.is_empty());
}

/// A bucket in memory: blocks can be added and removed, and some fail to
/// load.
#[derive(Default)]
struct FakeBucket {
    blocks: std::sync::Mutex<Vec<(String, bool)>>,
}

#[async_trait]
impl skein::storegw::BlockLoader for FakeBucket {
    async fn list(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .blocks
            .lock()
            .unwrap()
            .iter()
            .map(|(u, _)| u.clone())
            .collect())
    }

    async fn load(&self, ulid: &str) -> anyhow::Result<Option<Arc<dyn BlockSeries>>> {
        let good = self
            .blocks
            .lock()
            .unwrap()
            .iter()
            .any(|(u, ok)| u == ulid && *ok);
        anyhow::ensure!(good, "index of {ulid}: bad magic");
        let up: &[(&str, &str)] = &[("__name__", "up")];
        Ok(Some(MemBlock::block(
            ulid,
            &[("cluster", "x")],
            0,
            H,
            &[up],
        )))
    }
}

#[tokio::test]
async fn sync_follows_the_bucket_and_skips_bad_blocks() {
    use skein::storegw::Syncer;
    let bucket = Arc::new(FakeBucket::default());
    let store = Arc::new(GatewayStore::new(
        "mem".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    ));
    let mut syncer = Syncer::new(bucket.clone(), store.clone());

    bucket
        .blocks
        .lock()
        .unwrap()
        .extend([("A".to_string(), true), ("B".to_string(), false)]);
    let r = syncer.sync().await.unwrap();
    assert_eq!((r.loaded, r.dropped, r.served), (1, 0, 1));
    assert_eq!(r.failed, ["B"]);
    assert_eq!(store.blocks().len(), 1);

    // B is tried again, C arrives, A goes away.
    {
        let mut b = bucket.blocks.lock().unwrap();
        b.retain(|(u, _)| u != "A");
        b.push(("C".to_string(), true));
    }
    let r = syncer.sync().await.unwrap();
    assert_eq!((r.loaded, r.dropped, r.served), (1, 1, 1));
    assert_eq!(r.failed, ["B"]);
    let served: Vec<String> = store
        .blocks()
        .iter()
        .map(|b| b.info().ulid.clone())
        .collect();
    assert_eq!(served, ["C"]);
}

/// Blocks written by promtool 2.42, read through the TSDB reader: the
/// gateway serves every sample the blocks hold.
#[tokio::test]
async fn promtool_blocks_through_the_gateway() {
    use skein::storegw::tsdb_block::TsdbBlock;
    use skein::tsdb::Block;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/promtool-2.42-blocks");
    let mut blocks: Vec<Arc<dyn BlockSeries>> = Vec::new();
    let mut want_samples = 0u64;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("meta.json").is_file() {
            continue;
        }
        let block = Block::open_dir(&path, None).await.unwrap();
        want_samples += block.meta().stats.num_samples;
        blocks.push(Arc::new(TsdbBlock::new(block).unwrap()));
    }
    assert!(blocks.len() >= 5);
    let g = GatewayStore::new(
        "file:///fixtures".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    );
    g.set_blocks(blocks);
    let any = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let out = collect(
        g.series(SeriesRequest::new(i64::MIN, i64::MAX, vec![any]))
            .await
            .unwrap(),
    )
    .await;
    let got: usize = out.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(got as u64, want_samples);
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "sorted and unique");
    let names = g.label_names(labels_req("", &[])).await.unwrap().values;
    assert!(names.contains(&"__name__".to_string()));
}

#[tokio::test]
async fn unavailable_until_the_first_sync() {
    let g = GatewayStore::new(
        "mem".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    );
    let up = Matcher::equal("__name__", "up");
    assert!(g.info().await.is_err());
    assert!(g
        .series(SeriesRequest::new(0, H, vec![up.clone()]))
        .await
        .is_err());
    // An empty bucket, once synced, is a valid empty answer.
    g.set_blocks(Vec::new());
    assert!(g.info().await.is_ok());
    assert!(
        collect(g.series(SeriesRequest::new(0, H, vec![up])).await.unwrap())
            .await
            .is_empty()
    );
}

/// With the index cache, asking again reads postings and series entries
/// from memory: only chunks are read the second time, and the answer is
/// the same.
#[tokio::test]
async fn the_index_cache_saves_index_reads() {
    use skein::tsdb::cache::IndexCache;
    use skein::tsdb::{Block, BlockMeta, MemBlockFiles, ReadStats};
    let dir = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/promtool-2.42-blocks"),
    )
    .unwrap()
    .map(|e| e.unwrap().path())
    .find(|p| p.join("meta.json").is_file())
    .unwrap();
    let meta = BlockMeta::read_dir(&dir).await.unwrap();
    let stats = Arc::new(ReadStats::default());
    let files = Arc::new(
        MemBlockFiles::load_dir(&dir)
            .unwrap()
            .counted(stats.clone()),
    );
    let cache = Arc::new(IndexCache::new(1 << 20));
    let block = Arc::new(
        Block::open(meta, files, None)
            .await
            .unwrap()
            .with_index_cache(cache.clone()),
    );
    let any = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let read = |skip| {
        let block = block.clone();
        let any = any.clone();
        async move {
            let mut s = block.series_owned(&[any], i64::MIN, i64::MAX, skip);
            let mut n = Vec::new();
            while let Some(x) = s.next().await {
                let x = x.unwrap();
                n.push((x.labels, x.chunks.len()));
            }
            n
        }
    };
    let before = stats.reads();
    let first = read(true).await;
    let cold = stats.reads() - before;
    assert!(cold > 0 && !first.is_empty());
    assert!(cache.used_bytes() > 0);
    let before = stats.reads();
    let second = read(true).await;
    assert_eq!(
        stats.reads() - before,
        0,
        "postings and series came from the cache"
    );
    assert_eq!(first, second);
}

/// Per-request limits: a request over the series or sample limit fails
/// with an error naming the flag; requests beyond the concurrency limit
/// wait for a running one to finish.
#[tokio::test]
async fn limits_fail_clearly_and_concurrency_queues() {
    use skein::storegw::tsdb_block::TsdbBlock;
    use skein::storegw::GatewayLimits;
    use skein::tsdb::Block;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/promtool-2.42-blocks");
    let mut blocks: Vec<Arc<dyn BlockSeries>> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.join("meta.json").is_file() {
            let block = Block::open_dir(&path, None).await.unwrap();
            blocks.push(Arc::new(TsdbBlock::new(block).unwrap()));
        }
    }
    let gateway = |limits: GatewayLimits| {
        let g = GatewayStore::new(
            "file:///fixtures".into(),
            TimeBound::At(i64::MIN),
            TimeBound::At(i64::MAX),
        )
        .with_limits(limits);
        g.set_blocks(blocks.clone());
        g
    };
    let all = || {
        SeriesRequest::new(
            i64::MIN,
            i64::MAX,
            vec![Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()],
        )
    };
    let first_error = |frames: Vec<Result<SeriesFrame, StoreError>>| {
        frames
            .into_iter()
            .find_map(|f| f.err())
            .map(|e| (e.code(), e.to_string()))
    };

    let unlimited = gateway(GatewayLimits::default());
    let frames: Vec<_> = unlimited.series(all()).await.unwrap().collect().await;
    assert!(first_error(frames).is_none());

    let g = gateway(GatewayLimits {
        series: 3,
        ..Default::default()
    });
    let frames: Vec<_> = g.series(all()).await.unwrap().collect().await;
    let (code, e) = first_error(frames).expect("series limit");
    assert_eq!(code, skein::error::ErrorCode::Execution);
    assert!(e.contains("--store.series-limit"), "{e}");

    let g = gateway(GatewayLimits {
        samples: 1000,
        ..Default::default()
    });
    let frames: Vec<_> = g.series(all()).await.unwrap().collect().await;
    let ok = frames.iter().filter(|f| f.is_ok()).count();
    let (_, e) = first_error(frames).expect("sample limit");
    assert!(e.contains("--store.series-sample-limit"), "{e}");
    assert!(ok < 100, "stopped early: {ok} series sent");

    // One at a time: the second request starts once the first is dropped.
    let g = Arc::new(gateway(GatewayLimits {
        concurrency: 1,
        ..Default::default()
    }));
    let first = g.series(all()).await.unwrap();
    let g2 = g.clone();
    let second = tokio::spawn(async move { g2.series(all()).await.map(|_| ()) });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!second.is_finished(), "the second request should wait");
    drop(first);
    tokio::time::timeout(std::time::Duration::from_secs(5), second)
        .await
        .expect("the second request runs once the first is done")
        .unwrap()
        .unwrap();
}

/// The frames of an answer: series names and warnings.
async fn frames(s: SeriesStream) -> (Vec<String>, Vec<String>) {
    let (mut series, mut warnings) = (Vec::new(), Vec::new());
    for f in s.collect::<Vec<_>>().await {
        match f.unwrap() {
            SeriesFrame::Series(s) => series.push(s.labels.to_string()),
            SeriesFrame::Warning(w) => warnings.push(w),
        }
    }
    (series, warnings)
}

#[tokio::test]
async fn data_held_only_downsampled_is_read_when_allowed_and_reported_when_not() {
    let g = gateway();
    let up_a: &[(&str, &str)] = &[("__name__", "up"), ("job", "a")];
    let up_b: &[(&str, &str)] = &[("__name__", "up"), ("job", "b")];
    // Retention deleted source x's raw blocks after 2h; a 5m block of
    // [0, 4h) remains. Source y has no raw block after 1h and no
    // downsampled block at all.
    let mut blocks = g.blocks().to_vec();
    blocks.push(MemBlock::downsampled(
        "D1",
        &[("cluster", "x"), ("replica", "1")],
        0,
        4 * H,
        &[up_a, up_b],
        300_000,
    ));
    g.set_blocks(blocks);
    let any = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let ask = |mint, maxt, m: Vec<Matcher>| {
        let g = &g;
        async move { frames(g.series(SeriesRequest::new(mint, maxt, m)).await.unwrap()).await }
    };
    // Raw, within the raw blocks: nothing to say.
    let (series, warnings) = ask(0, 2 * H - 1, vec![any.clone()]).await;
    assert_eq!(series.len(), 3);
    assert!(warnings.is_empty(), "{warnings:?}");
    // Raw, past them: the part only D1 holds is named.
    let (_, warnings) = ask(H, 3 * H, vec![any.clone()]).await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("D1")
            && warnings[0].contains("1970-01-01T02:00:00.000Z")
            && warnings[0].contains("5m"),
        "{warnings:?}"
    );
    // A matcher that rules the source out rules the warning out.
    let y = Matcher::new(MatchOp::Equal, "cluster", "y").unwrap();
    let (_, warnings) = ask(H, 3 * H, vec![any.clone(), y]).await;
    assert!(warnings.is_empty(), "{warnings:?}");

    // Up to 5m: source x is read from D1 alone (the coarsest allowed
    // covers it, raw B1/B2 are not read), only the aggregates asked for;
    // y from its raw block.
    let mut req = SeriesRequest::new(0, 3 * H, vec![any.clone()]);
    req.max_resolution_ms = 300_000;
    req.aggregates = vec![Aggr::Count, Aggr::Sum];
    let mut got = Vec::new();
    for f in g.series(req).await.unwrap().collect::<Vec<_>>().await {
        match f.unwrap() {
            SeriesFrame::Series(s) => got.push(s),
            SeriesFrame::Warning(w) => panic!("warning {w}"),
        }
    }
    assert_eq!(got.len(), 3);
    for s in &got {
        let x = s.labels.get("cluster") == Some("x");
        for c in &s.chunks {
            assert_eq!(c.encoding == ChunkEncoding::Aggr, x, "{}", s.labels);
            if x {
                let p = parts(&c.data).unwrap();
                assert!(p[Aggr::Count as usize].is_some() && p[Aggr::Sum as usize].is_some());
                assert!(p[Aggr::Counter as usize].is_none() && p[Aggr::Min as usize].is_none());
            }
        }
        // D1's chunks reach 3h: the windows past the raw blocks are there.
        if x {
            assert!(
                s.chunks.iter().any(|c| c.max_time >= 3 * H - 300_000),
                "{s:?}"
            );
        }
    }
    // Labels come from every block, D1's included.
    let names = g
        .label_values(LabelsRequest {
            name: "job".into(),
            start: 3 * H,
            end: 4 * H,
            matchers: vec![],
            partial_response: PartialResponse::Abort,
            limit: 0,
            hops: 0,
            deadline: None,
            without_replica_labels: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(names.values, ["a", "b"]);
    assert!(names.warnings.is_empty());
}

#[tokio::test]
async fn coarsest_allowed_resolution_first_gaps_from_finer() {
    let g = GatewayStore::new(
        "file:///bucket".into(),
        TimeBound::At(i64::MIN),
        TimeBound::At(i64::MAX),
    );
    let up: &[(&str, &str)] = &[("__name__", "up")];
    let ext: &[(&str, &str)] = &[("cluster", "x")];
    g.set_blocks(vec![
        MemBlock::downsampled("H1", ext, 0, 2 * H, &[up], H),
        MemBlock::downsampled("M5", ext, 2 * H, 4 * H, &[up], 300_000),
        MemBlock::block("R0", ext, 2 * H, 3 * H, &[up]),
    ]);
    // The first chunk start of each block read, by what it holds.
    let read = |max_res: i64| {
        let g = &g;
        async move {
            let mut req = SeriesRequest::new(0, 4 * H, vec![Matcher::equal("__name__", "up")]);
            req.max_resolution_ms = max_res;
            let (mut starts, mut warnings) = (Vec::new(), Vec::new());
            for f in g.series(req).await.unwrap().collect::<Vec<_>>().await {
                match f.unwrap() {
                    SeriesFrame::Series(s) => {
                        starts.extend(s.chunks.iter().map(|c| (c.encoding, c.min_time)))
                    }
                    SeriesFrame::Warning(w) => warnings.push(w),
                }
            }
            (starts, warnings)
        }
    };
    let first = |starts: &[(ChunkEncoding, i64)], lo: i64, hi: i64| {
        starts
            .iter()
            .filter(|(_, t)| (lo..hi).contains(t))
            .map(|(e, t)| (*e, *t))
            .next()
    };
    // Up to 1h: H1 for [0, 2h), the rest from M5; the raw block is not read.
    let (s, w) = read(H).await;
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(first(&s, 0, 2 * H), Some((ChunkEncoding::Aggr, H - 1)));
    assert_eq!(
        first(&s, 2 * H, 4 * H),
        Some((ChunkEncoding::Aggr, 2 * H + 299_999))
    );
    // Up to 5m: M5 for [2h, 4h); [0, 2h) only H1 holds: reported.
    let (s, w) = read(300_000).await;
    assert_eq!(first(&s, 0, 2 * H), None);
    assert_eq!(
        first(&s, 2 * H, 4 * H),
        Some((ChunkEncoding::Aggr, 2 * H + 299_999))
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("H1") && w[0].contains("1h"), "{w:?}");
    // Raw: R0 alone; H1's and M5's remaining time reported.
    let (s, w) = read(0).await;
    assert!(s.iter().all(|(e, _)| *e == ChunkEncoding::Xor), "{s:?}");
    assert_eq!(first(&s, 0, 4 * H), Some((ChunkEncoding::Xor, 2 * H)));
    assert_eq!(w.len(), 2, "{w:?}");
}
