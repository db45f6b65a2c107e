//! A block as a store gateway uses it: its meta, an index reader backed by
//! an index header (cached on local disk when a directory is given) and a
//! chunk reader.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

use super::chunks::ChunkReader;
use super::error::TsdbError;
use super::header::IndexHeader;
use super::index::{ChunkMeta, IndexReader, SeriesRef};
use super::meta::BlockMeta;
use super::source::{BlockFiles, LocalBlockDir};
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
        let Some(index_src) = files.open("index").await? else {
            return Err(TsdbError::MissingFile {
                file: format!("{}/index", meta.ulid),
            });
        };
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

    /// Opens a block directory on the local disk (reading its meta.json).
    pub async fn open_dir(dir: &Path, header_cache_dir: Option<&Path>) -> Result<Self, TsdbError> {
        let meta = BlockMeta::read_dir(dir).await?;
        Self::open(meta, Arc::new(LocalBlockDir::new(dir)), header_cache_dir).await
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
        let matchers = matchers.to_vec();
        Box::pin(async_stream::try_stream! {
            // The block covers [minTime, maxTime).
            if mint <= maxt && mint < self.meta.max_time && maxt >= self.meta.min_time {
                let refs = self.index.postings_for_matchers(&matchers).await?;
                for batch in refs.chunks(SERIES_BATCH) {
                    for s in self.read_batch(batch, mint, maxt, skip_chunks).await? {
                        yield s;
                    }
                }
            }
        })
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
