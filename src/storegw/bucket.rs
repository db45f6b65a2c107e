//! Blocks in an object-storage bucket: listing (`<ULID>/meta.json`
//! present, no `deletion-mark.json`), and files read by range GETs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;

use super::bounds::TimeBound;
use super::store::BlockSeries;
use super::sync::BlockLoader;
use super::tsdb_block::TsdbBlock;
use crate::model::time::now_ms;
use crate::objstore::Bucket;
use crate::tsdb::cache::IndexCache;
use crate::tsdb::error::segment_seq;
use crate::tsdb::{Block, BlockFiles, BlockMeta, ReadAt, TsdbError};

/// One object of a block, read by ranges.
#[derive(Debug)]
struct BucketFile {
    bucket: Arc<Bucket>,
    path: String,
    size: u64,
}

fn io_error(path: &str, e: impl std::fmt::Display) -> TsdbError {
    TsdbError::Io {
        file: path.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

#[async_trait]
impl ReadAt for BucketFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, TsdbError> {
        let end = offset.checked_add(len as u64).filter(|e| *e <= self.size);
        let Some(end) = end else {
            return Err(TsdbError::Truncated {
                file: self.path.clone(),
                what: "object".into(),
                offset,
                needed: len as u64,
                available: self.size.saturating_sub(offset),
            });
        };
        if len == 0 {
            return Ok(Bytes::new());
        }
        let b = self
            .bucket
            .get_range(&self.path, offset..end)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        if b.len() != len {
            return Err(TsdbError::Truncated {
                file: self.path.clone(),
                what: "range read".into(),
                offset,
                needed: len as u64,
                available: b.len() as u64,
            });
        }
        Ok(b)
    }

    fn len(&self) -> u64 {
        self.size
    }

    fn name(&self) -> &str {
        &self.path
    }
}

#[derive(Debug)]
struct BucketBlockFiles {
    bucket: Arc<Bucket>,
    ulid: String,
}

#[async_trait]
impl BlockFiles for BucketBlockFiles {
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn ReadAt>>, TsdbError> {
        let path = format!("{}/{name}", self.ulid);
        match self.bucket.size(&path).await {
            Ok(size) => Ok(Some(Arc::new(BucketFile {
                bucket: self.bucket.clone(),
                path,
                size,
            }))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// One listing of `<ulid>/chunks/`.
    async fn chunk_segments(&self) -> Result<Vec<String>, TsdbError> {
        let dir = format!("{}/chunks", self.ulid);
        let objects: Vec<_> = self
            .bucket
            .iter(&dir)
            .try_collect()
            .await
            .map_err(|e| io_error(&dir, e))?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let name = o.path.rsplit('/').next()?;
                segment_seq(name).map(|_| name.to_string())
            })
            .collect())
    }
}

/// Whether a directory name is a block ULID (26 Crockford base32 chars).
pub fn is_ulid(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(&c)))
}

pub struct BucketLoader {
    bucket: Arc<Bucket>,
    /// The part of time served (`--min-time`, `--max-time`): blocks wholly
    /// outside are not opened, so their index headers take no memory.
    bounds: (TimeBound, TimeBound),
    /// Blocks not served, by ULID, with their time range, so a later sync
    /// decides again without reading meta.json.
    skipped: std::sync::Mutex<HashMap<String, (i64, i64)>>,
    /// `--selector.relabel-config`: blocks it drops are not served.
    selector: Vec<crate::model::relabel::Rule>,
    /// Blocks the selector dropped (it does not change while running).
    unselected: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Time ranges of blocks whose load failed after meta.json was read.
    failed_ranges: std::sync::Mutex<HashMap<String, (i64, i64)>>,
    /// Index headers are kept here, so a restart reads no index again.
    header_dir: PathBuf,
    cache: Option<Arc<IndexCache>>,
    chunk_cache: Option<Arc<IndexCache>>,
}

impl BucketLoader {
    pub fn new(bucket: Arc<Bucket>, header_dir: PathBuf) -> Self {
        Self {
            bucket,
            bounds: (TimeBound::At(i64::MIN), TimeBound::At(i64::MAX)),
            skipped: Default::default(),
            selector: Vec::new(),
            unselected: Default::default(),
            failed_ranges: Default::default(),
            header_dir,
            cache: None,
            chunk_cache: None,
        }
    }

    /// Opens only blocks that overlap `[min, max]`.
    pub fn with_bounds(mut self, min: TimeBound, max: TimeBound) -> Self {
        self.bounds = (min, max);
        self
    }

    /// Whether a block of this range is served now: one overlapping the
    /// bounds, of any resolution (requests choose resolutions). A block's
    /// max time is exclusive in meta.json.
    fn serves(&self, min_time: i64, max_time: i64) -> bool {
        let now = now_ms();
        let (lo, hi) = (self.bounds.0.resolve(now), self.bounds.1.resolve(now));
        min_time <= hi && max_time > lo
    }

    fn skip(&self, ulid: &str, range: (i64, i64)) {
        if let Ok(mut s) = self.skipped.lock() {
            s.insert(ulid.to_string(), range);
        }
    }

    /// Serves only blocks the relabel rules keep (over the block's
    /// external labels and `__block_id`).
    pub fn with_selector(mut self, rules: Vec<crate::model::relabel::Rule>) -> Self {
        self.selector = rules;
        self
    }

    /// Blocks loaded from now on share `cache` for postings and series.
    pub fn with_index_cache(mut self, cache: Arc<IndexCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Blocks loaded from now on share `cache` for chunks.
    pub fn with_chunk_cache(mut self, cache: Arc<IndexCache>) -> Self {
        self.chunk_cache = Some(cache);
        self
    }
}

#[async_trait]
impl BlockLoader for BucketLoader {
    async fn list(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for dir in self.bucket.list_dirs("").await? {
            if !is_ulid(&dir) {
                continue;
            }
            // Blocks being uploaded have no meta.json yet; blocks being
            // deleted carry a mark first.
            let meta = self.bucket.exists(&format!("{dir}/meta.json")).await?;
            let marked = self
                .bucket
                .exists(&format!("{dir}/deletion-mark.json"))
                .await?;
            if meta && !marked {
                out.push(dir);
            }
        }
        Ok(out)
    }

    /// Opens a block and checks what can be checked without reading series
    /// or chunks: meta.json, the index's header, TOC, symbol table and
    /// postings offset table (the index header), and the chunk segment
    /// files. Damage elsewhere is found by the queries that read it.
    async fn load(&self, ulid: &str) -> anyhow::Result<Option<Arc<dyn BlockSeries>>> {
        if self.unselected.lock().is_ok_and(|u| u.contains(ulid)) {
            return Ok(None);
        }
        let known = self.skipped.lock().ok().and_then(|s| s.get(ulid).copied());
        if let Some((min, max)) = known {
            if !self.serves(min, max) {
                return Ok(None);
            }
        }
        let path = format!("{ulid}/meta.json");
        let data = self.bucket.get(&path).await?;
        let meta = BlockMeta::parse(&path, &data)?;
        meta.validate(&path)?;
        let ext = crate::model::Labels::from_pairs(meta.external_labels())
            .map_err(|e| anyhow::anyhow!("{path}: invalid external labels: {e}"))?;
        if !crate::model::relabel::selects_block(&self.selector, &ext, ulid) {
            tracing::debug!(block = %ulid, "block not served here (--selector.relabel-config)");
            if let Ok(mut u) = self.unselected.lock() {
                u.insert(ulid.to_string());
            }
            return Ok(None);
        }
        let range = (meta.min_time, meta.max_time);
        if !self.serves(range.0, range.1) {
            tracing::debug!(block = %ulid, "block not served here (time bounds)");
            self.skip(ulid, range);
            return Ok(None);
        }
        if let Ok(mut s) = self.skipped.lock() {
            s.remove(ulid);
        }
        // Until the load succeeds: what a failure leaves missing.
        if let Ok(mut f) = self.failed_ranges.lock() {
            f.insert(ulid.to_string(), (meta.min_time, meta.max_time));
        }
        // The ULID names the cached index header: a copied meta.json would
        // share another block's.
        if meta.ulid != ulid {
            return Err(TsdbError::InvalidMeta {
                file: path,
                detail: format!("ulid {} is not the block's directory name", meta.ulid),
            }
            .into());
        }
        tokio::fs::create_dir_all(&self.header_dir)
            .await
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", self.header_dir.display()))?;
        let files = Arc::new(BucketBlockFiles {
            bucket: self.bucket.clone(),
            ulid: ulid.to_string(),
        });
        let mut block = Block::open(meta, files, Some(&self.header_dir)).await?;
        block.check_chunk_files().await?;
        if let Some(cache) = &self.cache {
            block = block.with_index_cache(cache.clone());
        }
        if let Some(cache) = &self.chunk_cache {
            block = block.with_chunk_cache(cache.clone());
        }
        let served: Arc<dyn BlockSeries> = Arc::new(TsdbBlock::new(block)?);
        if let Ok(mut f) = self.failed_ranges.lock() {
            f.remove(ulid);
        }
        Ok(Some(served))
    }

    fn known_range(&self, ulid: &str) -> Option<(i64, i64)> {
        self.failed_ranges.lock().ok()?.get(ulid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids() {
        assert!(is_ulid("01M80AZ7FF6VHW816SB2HG88JB"));
        assert!(!is_ulid("01M80AZ7FF6VHW816SB2HG88J"));
        assert!(!is_ulid("debug"));
        assert!(!is_ulid("01M80AZ7FF6VHW816SB2HG88JI"));
    }
}
