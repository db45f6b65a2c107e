//! A block as a store gateway uses it: its meta, an index reader backed by
//! an index header (cached on local disk when a directory is given) and a
//! chunk reader.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

use super::chunks::ChunkReader;
use super::error::{segment_file_name, segment_seq, TsdbError};
use super::header::IndexHeader;
use super::index::{ChunkMeta, IndexReader, SeriesRef};
use super::meta::BlockMeta;
use super::source::{BlockFiles, LocalBlockDir, ReadAt};
use crate::model::{Chunk, Labels, Matcher, Series};

/// Series read per batch: their entries are fetched together, then their
/// chunks together.
const SERIES_BATCH: usize = 256;

/// One series of a block with its chunks in the queried time range.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSeries {
    pub labels: Labels,
    /// Metas of the chunks overlapping the queried range, by time.
    pub metas: Vec<ChunkMeta>,
    /// The chunks of `metas`, in the same order; empty when chunks were
    /// skipped.
    pub chunks: Vec<Chunk>,
}

impl BlockSeries {
    pub fn into_series(self) -> Series {
        Series {
            labels: self.labels,
            chunks: self.chunks,
        }
    }
}

pub type SeriesStream<'a> = Pin<Box<dyn Stream<Item = Result<BlockSeries, TsdbError>> + Send + 'a>>;

#[derive(Debug)]
pub struct Block {
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
}

/// Where the header of block `ulid` is cached.
pub fn header_path(cache_dir: &Path, ulid: &str) -> PathBuf {
    cache_dir.join(format!("{ulid}.index-header"))
}

impl Block {
    /// Opens a block. With `header_cache_dir`, the index header is loaded
    /// from there when a valid one for this index exists, and otherwise
    /// built from the index and saved there; a corrupt or stale header file
    /// is rebuilt.
    pub async fn open(
        meta: BlockMeta,
        files: Arc<dyn BlockFiles>,
        header_cache_dir: Option<&Path>,
    ) -> Result<Self, TsdbError> {
        // The ULID names the cached header file: it must be one.
        meta.validate(&format!("{}/meta.json", meta.ulid))?;
        let Some(index_src) = files.open("index").await? else {
            return Err(TsdbError::MissingFile {
                file: format!("{}/index", meta.ulid),
            });
        };
        check_size(&meta, "index", index_src.as_ref())?;
        let index = match header_cache_dir {
            None => IndexReader::open(index_src).await?,
            Some(dir) => {
                let path = header_path(dir, &meta.ulid);
                let cached = match IndexHeader::load(&path).await {
                    Ok(Some(h)) => IndexReader::with_header(Arc::clone(&index_src), Arc::new(h))
                        .map_err(|e| {
                            tracing::warn!(block = %meta.ulid, error = %e, "stale index header, rebuilding");
                        })
                        .ok(),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(block = %meta.ulid, error = %e, "unreadable index header, rebuilding");
                        None
                    }
                };
                match cached {
                    Some(reader) => reader,
                    None => {
                        let reader = IndexReader::open(index_src).await?;
                        if let Err(e) = reader.header().save(&path).await {
                            tracing::warn!(block = %meta.ulid, error = %e, "cannot save index header");
                        }
                        reader
                    }
                }
            }
        };
        let chunks = ChunkReader::new(meta.ulid.clone(), files);
        Ok(Self {
            meta,
            index,
            chunks,
        })
    }

    /// Checks the chunk segment files without reading any chunk: those
    /// meta.json lists (or else those in `chunks/`) are numbered from
    /// `000001` without a gap, exist, start with a valid header and have the
    /// size meta.json gives, if any; a block with series has at least one.
    /// One listing and one 8-byte read per segment; the segments stay open
    /// for queries.
    pub async fn check_chunk_files(&self) -> Result<(), TsdbError> {
        let names = match self.meta.segment_files() {
            Some(listed) => listed.to_vec(),
            None => self.chunks.list_segments().await?,
        };
        let mut seqs = Vec::with_capacity(names.len());
        for n in &names {
            seqs.push(segment_seq(n).ok_or_else(|| TsdbError::InvalidMeta {
                file: format!("{}/meta.json", self.meta.ulid),
                detail: format!("{n:?} is not a chunk segment file name"),
            })?);
        }
        seqs.sort_unstable();
        let has_series = self.meta.stats.num_chunks > 0 || !self.index.label_names().is_empty();
        let wanted = if seqs.is_empty() && has_series {
            1
        } else {
            seqs.len()
        };
        for i in 0..wanted {
            let seq = u32::try_from(i).map_err(|_| {
                TsdbError::malformed(&self.meta.ulid, "chunk segments", "too many segments")
            })?;
            if seqs.get(i) != Some(&seq) {
                return Err(TsdbError::MissingSegment {
                    block: self.meta.ulid.clone(),
                    segment: format!("chunks/{}", segment_file_name(seq)),
                });
            }
            let src = self.chunks.segment(seq).await?;
            check_size(
                &self.meta,
                &format!("chunks/{}", segment_file_name(seq)),
                src.as_ref(),
            )?;
        }
        Ok(())
    }

    /// Opens a block directory on the local disk (reading its meta.json).
    pub async fn open_dir(dir: &Path, header_cache_dir: Option<&Path>) -> Result<Self, TsdbError> {
        let meta = BlockMeta::read_dir(dir).await?;
        Self::open(meta, Arc::new(LocalBlockDir::new(dir)), header_cache_dir).await
    }

    /// Keeps this block's postings lists and series entries in `cache`.
    pub fn with_index_cache(mut self, cache: Arc<super::cache::IndexCache>) -> Self {
        let id = super::cache::block_id(&self.meta.ulid);
        self.index = self.index.with_cache(cache, id);
        self
    }

    /// Keeps the chunks read from this block in `cache`.
    pub fn with_chunk_cache(mut self, cache: Arc<super::cache::IndexCache>) -> Self {
        let id = super::cache::block_id(&self.meta.ulid);
        self.chunks = self.chunks.with_cache(cache, id);
        self
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    pub fn chunk_reader(&self) -> &ChunkReader {
        &self.chunks
    }

    /// Label names of the block, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.index.label_names()
    }

    /// Values of label `name` in the block, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.index.label_values(name)
    }

    /// References of the series the matchers select, ascending.
    pub async fn postings(&self, matchers: &[Matcher]) -> Result<Vec<SeriesRef>, TsdbError> {
        self.index.postings_for_matchers(matchers).await
    }

    /// The series the matchers select that have chunks overlapping
    /// `[mint, maxt]` (inclusive, milliseconds), sorted by labels, with those
    /// chunks' metas and, unless `skip_chunks`, the chunks themselves.
    pub fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> SeriesStream<'_> {
        stream(self, matchers.to_vec(), mint, maxt, skip_chunks)
    }

    /// `series` on a shared block, for streams that outlive the borrow.
    pub fn series_owned(
        self: &Arc<Self>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> SeriesStream<'static> {
        stream(Arc::clone(self), matchers.to_vec(), mint, maxt, skip_chunks)
    }

    async fn read_batch(
        &self,
        refs: &[SeriesRef],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> Result<Vec<BlockSeries>, TsdbError> {
        let entries = self.index.series(refs).await?;
        let mut out: Vec<BlockSeries> = entries
            .into_iter()
            .filter_map(|e| {
                let metas: Vec<ChunkMeta> = e
                    .chunks
                    .into_iter()
                    .filter(|c| c.overlaps(mint, maxt))
                    .collect();
                (!metas.is_empty()).then_some(BlockSeries {
                    labels: e.labels,
                    metas,
                    chunks: Vec::new(),
                })
            })
            .collect();
        if skip_chunks || out.is_empty() {
            return Ok(out);
        }
        let metas: Vec<ChunkMeta> = out.iter().flat_map(|s| s.metas.iter().copied()).collect();
        let mut chunks = self.chunks.chunks(&metas).await?.into_iter();
        for s in &mut out {
            s.chunks = chunks.by_ref().take(s.metas.len()).collect();
        }
        Ok(out)
    }
}

/// Checks a file's size against the one meta.json lists, if any.
fn check_size(meta: &BlockMeta, rel_path: &str, src: &dyn ReadAt) -> Result<(), TsdbError> {
    let Some(want) = meta.file_size(rel_path) else {
        return Ok(());
    };
    let have = src.len();
    if have < want {
        return Err(TsdbError::Truncated {
            file: src.name().to_string(),
            what: "file (size from meta.json)".to_string(),
            offset: 0,
            needed: want,
            available: have,
        });
    }
    if have > want {
        return Err(TsdbError::malformed(
            src.name(),
            "file",
            format!("{have} bytes, meta.json lists {want}"),
        ));
    }
    Ok(())
}

fn stream<'a, B>(
    block: B,
    matchers: Vec<Matcher>,
    mint: i64,
    maxt: i64,
    skip_chunks: bool,
) -> SeriesStream<'a>
where
    B: std::ops::Deref<Target = Block> + Send + Sync + 'a,
{
    Box::pin(async_stream::try_stream! {
        let meta = block.meta();
        // The block covers [minTime, maxTime).
        if mint <= maxt && mint < meta.max_time && maxt >= meta.min_time {
            let refs = block.index.postings_for_matchers(&matchers).await?;
            for batch in refs.chunks(SERIES_BATCH) {
                for s in block.read_batch(batch, mint, maxt, skip_chunks).await? {
                    yield s;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MatchOp, Sample};
    use crate::tsdb::source::{MemBlockFiles, MemFile, ReadStats};
    use crate::tsdb::testutil::{write_segment, IndexBuilder, TestSeries};
    use futures::TryStreamExt;

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promtool-2.42-blocks")
    }

    /// The test writer lays out an index exactly as Prometheus does: parsing
    /// a fixture index and writing its series again gives the same bytes.
    #[tokio::test]
    async fn test_writer_reproduces_prometheus_indexes() {
        let mut checked = 0;
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let path = entry.unwrap().path().join("index");
            if !path.exists() {
                continue;
            }
            let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
            let reader = IndexReader::open(Arc::new(MemFile::new("index", bytes.clone())))
                .await
                .unwrap();
            let refs = reader.postings_for_matchers(&[]).await.unwrap();
            let series: Vec<TestSeries> = reader
                .series(&refs)
                .await
                .unwrap()
                .into_iter()
                .map(|e| TestSeries {
                    pairs: e
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    chunks: e.chunks,
                })
                .collect();
            let again = IndexBuilder::default().build(&series);
            assert_eq!(again.refs, refs);
            assert!(again.bytes == bytes, "{} differs", path.display());
            checked += 1;
        }
        assert_eq!(checked, 5);
    }

    fn xor(samples: &[(i64, f64)]) -> Vec<u8> {
        let samples: Vec<Sample> = samples.iter().map(|&(t, v)| Sample { t, v }).collect();
        crate::model::chunk::xor::encode_all(&samples).unwrap()
    }

    /// A block of three series with two chunks each (times 0..=9 and
    /// 10..=19, value = series number), in memory.
    fn small_block(stats: Option<Arc<ReadStats>>) -> (BlockMeta, MemBlockFiles) {
        let names = ["a", "b", "c"];
        let mut chunks = Vec::new();
        for (i, _) in names.iter().enumerate() {
            for part in 0..2 {
                let s: Vec<(i64, f64)> =
                    (part * 10..part * 10 + 10).map(|t| (t, i as f64)).collect();
                chunks.push(xor(&s));
            }
        }
        let data: Vec<(u8, &[u8])> = chunks.iter().map(|c| (1u8, c.as_slice())).collect();
        let (segment, offsets) = write_segment(&data);
        let series: Vec<TestSeries> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                crate::tsdb::testutil::series(
                    &[
                        ("__name__", "m"),
                        ("s", n),
                        ("odd", if i % 2 == 1 { "yes" } else { "" }),
                    ],
                    &[(0, 9, offsets[2 * i]), (10, 19, offsets[2 * i + 1])],
                )
            })
            .collect();
        let index = IndexBuilder::default().build(&series);
        let meta = BlockMeta::parse(
            "meta.json",
            br#"{"ulid":"01HXXXXXXXXXXXXXXXXXXXXXXX","minTime":0,"maxTime":20,"version":1}"#,
        )
        .unwrap();
        let mut files = MemBlockFiles::new("01HXXXXXXXXXXXXXXXXXXXXXXX")
            .with_file("index", index.bytes)
            .with_file("chunks/000001", segment);
        if let Some(stats) = stats {
            files = files.counted(stats);
        }
        (meta, files)
    }

    async fn collect(
        block: &Block,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip: bool,
    ) -> Vec<BlockSeries> {
        block
            .series(matchers, mint, maxt, skip)
            .try_collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn series_with_time_ranges() {
        let stats = Arc::new(ReadStats::default());
        let (meta, files) = small_block(Some(Arc::clone(&stats)));
        let block = Block::open(meta, Arc::new(files), None).await.unwrap();
        assert_eq!(block.label_names(), ["__name__", "odd", "s"]);
        assert_eq!(block.label_values("s"), ["a", "b", "c"]);

        let before = stats.reads();
        let all = collect(&block, &[], 0, 100, false).await;
        // Postings, series entries, segment header, chunks.
        assert_eq!(stats.reads() - before, 4);
        // Label-set order: {odd="yes", s="b"} sorts before {s="a"}.
        let names: Vec<&str> = all.iter().map(|s| s.labels.get("s").unwrap()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        for (s, i) in all.iter().zip([1.0, 0.0, 2.0]) {
            assert_eq!(s.chunks.len(), 2);
            let samples: Vec<Sample> = s.chunks.iter().flat_map(|c| c.samples().unwrap()).collect();
            assert_eq!(samples.len(), 20);
            assert!(samples.iter().all(|x| x.v == i));
        }
        assert_eq!(all[0].labels.get("odd"), Some("yes"));

        // Only the second chunk overlaps [15, 30].
        let late = collect(&block, &[], 15, 30, false).await;
        assert!(late
            .iter()
            .all(|s| s.metas.len() == 1 && s.chunks[0].min_time == 10));
        // Inclusive bounds.
        assert_eq!(collect(&block, &[], 19, 19, false).await.len(), 3);
        assert_eq!(collect(&block, &[], 9, 10, false).await[0].chunks.len(), 2);
        // Outside the block, or an empty range: nothing, and nothing read.
        let before = stats.reads();
        assert!(collect(&block, &[], 20, 30, false).await.is_empty());
        assert!(collect(&block, &[], -10, -1, false).await.is_empty());
        assert!(collect(&block, &[], 5, 4, false).await.is_empty());
        assert_eq!(stats.reads(), before);

        // Skipping chunks reads no chunk file.
        let before = stats.reads();
        let metas = collect(&block, &[Matcher::equal("odd", "yes")], 0, 100, true).await;
        assert_eq!(metas.len(), 1);
        assert_eq!(metas[0].metas.len(), 2);
        assert!(metas[0].chunks.is_empty());
        assert_eq!(stats.reads() - before, 2);

        let shared = Arc::new(block);
        let owned: Vec<BlockSeries> = shared
            .series_owned(&[Matcher::equal("s", "c")], 0, 100, false)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(owned.len(), 1);
        let block = &*shared;

        let not_odd = collect(
            block,
            &[Matcher::new(MatchOp::NotEqual, "odd", "yes").unwrap()],
            0,
            100,
            false,
        )
        .await;
        assert_eq!(not_odd.len(), 2);
        let series = not_odd[0].clone().into_series();
        assert_eq!(series.chunks.len(), 2);
    }

    #[tokio::test]
    async fn header_cache_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, files) = small_block(None);
        let files = Arc::new(files);
        let first = Block::open(meta.clone(), files.clone(), Some(dir.path()))
            .await
            .unwrap();
        let path = header_path(dir.path(), &meta.ulid);
        assert!(path.exists());

        // A second open uses the saved header without building one.
        let stats = Arc::new(ReadStats::default());
        let counted = Arc::new((*files).clone().counted(Arc::clone(&stats)));
        let second = Block::open(meta.clone(), counted.clone(), Some(dir.path()))
            .await
            .unwrap();
        assert_eq!(stats.reads(), 0);
        assert_eq!(second.index().header(), first.index().header());
        assert_eq!(
            collect(&second, &[], 0, 100, false).await,
            collect(&first, &[], 0, 100, false).await
        );

        // A corrupt header is rebuilt (with reads) and saved again.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(IndexHeader::load(&path).await.is_err());
        let before = stats.reads();
        let third = Block::open(meta.clone(), counted, Some(dir.path()))
            .await
            .unwrap();
        assert_eq!(stats.reads() - before, 4);
        assert_eq!(third.index().header(), first.index().header());
        assert!(IndexHeader::load(&path).await.unwrap().is_some());

        // A header of another index (different size) is not used.
        let other = IndexBuilder::default()
            .build(&[crate::tsdb::testutil::series(&[("x", "y")], &[(0, 1, 8)])]);
        IndexHeader::from_bytes("other", &other.bytes)
            .unwrap()
            .save(&path)
            .await
            .unwrap();
        let fourth = Block::open(meta, files, Some(dir.path())).await.unwrap();
        assert_eq!(fourth.index().header(), first.index().header());
    }

    #[tokio::test]
    async fn missing_files() {
        let (meta, mut files) = small_block(None);
        files.remove("chunks/000001");
        let block = Block::open(meta.clone(), Arc::new(files.clone()), None)
            .await
            .unwrap();
        // Metas need no chunk file; chunks do.
        assert_eq!(collect(&block, &[], 0, 100, true).await.len(), 3);
        let err = block
            .series(&[], 0, 100, false)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(matches!(err, TsdbError::MissingSegment { .. }), "{err}");
        assert!(
            err.to_string().contains("01HXXXXXXXXXXXXXXXXXXXXXXX"),
            "{err}"
        );

        files.remove("index");
        let err = Block::open(meta, Arc::new(files), None).await.unwrap_err();
        assert!(matches!(err, TsdbError::MissingFile { .. }), "{err}");
    }

    async fn check(meta: &BlockMeta, files: &MemBlockFiles) -> Result<(), TsdbError> {
        Block::open(meta.clone(), Arc::new(files.clone()), None)
            .await?
            .check_chunk_files()
            .await
    }

    #[tokio::test]
    async fn chunk_files_checked_on_request() {
        let (meta, files) = small_block(None);
        check(&meta, &files).await.unwrap();
        let seg = files.get("chunks/000001").unwrap().clone();

        let mut none = files.clone();
        none.remove("chunks/000001");
        let err = check(&meta, &none).await.unwrap_err();
        assert!(
            matches!(&err, TsdbError::MissingSegment { segment, .. } if segment == "chunks/000001"),
            "{err}"
        );
        // A gap in the numbering.
        let gap = none
            .clone()
            .with_file("chunks/000002", seg.clone())
            .with_file("chunks/000002.tmp", seg.clone());
        let err = check(&meta, &gap).await.unwrap_err();
        assert!(
            matches!(&err, TsdbError::MissingSegment { segment, .. } if segment == "chunks/000001"),
            "{err}"
        );
        let mut bad = seg.to_vec();
        bad[0] ^= 1;
        let err = check(&meta, &files.clone().with_file("chunks/000001", bad))
            .await
            .unwrap_err();
        assert!(matches!(err, TsdbError::BadMagic { .. }), "{err}");
        let err = check(
            &meta,
            &files.clone().with_file("chunks/000001", seg.slice(..3)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, TsdbError::Truncated { .. }), "{err}");

        // Sizes and segments listed in meta.json.
        let index_len = files.get("index").unwrap().len() as i64;
        let listed = |index: i64, segment: i64, names: &[&str]| {
            let mut m = meta.clone();
            let file = |rel: &str, size| crate::tsdb::meta::BlockFile {
                rel_path: rel.into(),
                size_bytes: Some(size),
                hash: None,
            };
            m.thanos = Some(crate::tsdb::meta::ThanosMeta {
                segment_files: names.iter().map(|s| s.to_string()).collect(),
                files: vec![file("index", index), file("chunks/000001", segment)],
                ..Default::default()
            });
            m
        };
        let seg_len = seg.len() as i64;
        check(&listed(index_len, seg_len, &["000001"]), &files)
            .await
            .unwrap();
        let err = check(&listed(index_len + 1, seg_len, &[]), &files)
            .await
            .unwrap_err();
        assert!(matches!(err, TsdbError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("meta.json"), "{err}");
        let err = check(&listed(index_len, seg_len - 1, &[]), &files)
            .await
            .unwrap_err();
        assert!(matches!(err, TsdbError::Malformed { .. }), "{err}");
        let err = check(&listed(index_len, seg_len, &["000001", "000002"]), &files)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TsdbError::MissingSegment { segment, .. } if segment == "chunks/000002"),
            "{err}"
        );
        let err = check(&listed(index_len, seg_len, &["x"]), &files)
            .await
            .unwrap_err();
        assert!(matches!(err, TsdbError::InvalidMeta { .. }), "{err}");

        // A block without series needs no segment.
        let empty = MemBlockFiles::new("01HXXXXXXXXXXXXXXXXXXXXXXX")
            .with_file("index", IndexBuilder::default().build(&[]).bytes);
        check(&meta, &empty).await.unwrap();
    }
}
