//! The blocks of a bucket as one store. Each block answers for its own
//! series; the gateway puts the block's external labels on them, merges
//! the blocks' sorted answers into one, and joins the chunks of a series
//! that spans several blocks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::StreamExt;

use super::bounds::TimeBound;
use crate::model::chunk::aggr;
use crate::model::time::{now_ms, MIN_TIME};
use crate::model::{Chunk, ChunkEncoding, Labels, Matcher, Sample, Series};
use crate::series::combine;
use crate::series::dedup::DedupFunc;
use crate::series::merge::{concat_chunks, merge, MergedFrame, SeriesGroup};
use crate::store::external::with_external_labels_tracked;
use crate::store::{
    LabelsRequest, LabelsResponse, PeerType, SeriesFrame, SeriesRequest, SeriesStream, Store,
    StoreError, StoreInfo,
};

/// What the gateway knows of a block without reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockInfo {
    pub ulid: String,
    pub min_time: i64,
    /// Inclusive: the block's exclusive end minus one millisecond.
    pub max_time: i64,
    /// External labels of the source that wrote the block.
    pub labels: Labels,
    /// Downsampling resolution in milliseconds (Thanos' 5m, 1h); 0 raw.
    pub resolution: i64,
}

/// One block, as the gateway asks it.
#[async_trait]
pub trait BlockSeries: Send + Sync + 'static {
    fn info(&self) -> &BlockInfo;

    /// The block's series matching `matchers` (none of them on external
    /// labels), sorted by labels, without external labels; only chunks
    /// overlapping `[mint, maxt]`, or none with `skip_chunks`.
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> Result<SeriesStream, StoreError>;

    async fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StoreError>;

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StoreError>;
}

/// Per-request limits of a gateway (0: none).
#[derive(Debug, Clone, Copy)]
pub struct GatewayLimits {
    /// `--store.series-limit`: series one Series request may return.
    pub series: usize,
    /// `--store.series-sample-limit`: samples one Series request may return.
    pub samples: u64,
    /// `--store.series-max-concurrency`: Series requests answered at once;
    /// the others wait.
    pub concurrency: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            series: 0,
            samples: 0,
            concurrency: 20,
        }
    }
}

/// A block of the bucket this gateway should serve but could not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBlock {
    pub ulid: String,
    /// Its time range (meta.json's, max exclusive), when meta.json was
    /// read; None when even that failed, so any time may be affected.
    pub range: Option<(i64, i64)>,
    pub error: String,
}

impl MissingBlock {
    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.range.is_none_or(|(lo, hi)| lo <= maxt && hi > mint)
    }

    fn warning(&self) -> String {
        let range = match self.range {
            Some((lo, hi)) => format!(
                "{} to {}",
                crate::model::time::format_ms(lo),
                crate::model::time::format_ms(hi)
            ),
            None => "time range unknown".into(),
        };
        format!(
            "block {} ({range}) is not served: it failed to load ({}); its data is missing from this answer",
            self.ulid, self.error
        )
    }
}

pub struct GatewayStore {
    limits: GatewayLimits,
    /// Blocks that failed to load at the last sync: requests over their
    /// time get a warning instead of silently lacking their data.
    missing: RwLock<Arc<Vec<MissingBlock>>>,
    concurrency: Arc<tokio::sync::Semaphore>,
    blocks: RwLock<Arc<Vec<Arc<dyn BlockSeries>>>>,
    /// Set by the first sync: until then an empty answer would be a lie.
    synced: AtomicBool,
    /// Whether series of these blocks carry labels named like external
    /// ones ([`with_external_labels_tracked`]).
    label_clashes: Arc<AtomicBool>,
    group_id: String,
    /// `--min-time` / `--max-time`: the part of time this gateway serves.
    min_time: TimeBound,
    max_time: TimeBound,
}

impl GatewayStore {
    pub fn new(group_id: String, min_time: TimeBound, max_time: TimeBound) -> Self {
        let limits = GatewayLimits::default();
        Self {
            limits,
            concurrency: Arc::new(tokio::sync::Semaphore::new(limits.concurrency)),
            missing: RwLock::new(Arc::new(Vec::new())),
            blocks: RwLock::new(Arc::new(Vec::new())),
            synced: AtomicBool::new(false),
            label_clashes: Arc::new(AtomicBool::new(false)),
            group_id,
            min_time,
            max_time,
        }
    }

    pub fn with_limits(mut self, limits: GatewayLimits) -> Self {
        self.concurrency = Arc::new(tokio::sync::Semaphore::new(limits.concurrency.max(1)));
        self.limits = limits;
        self
    }

    /// Replaces the served blocks (kept sorted by time).
    pub fn set_blocks(&self, mut blocks: Vec<Arc<dyn BlockSeries>>) {
        blocks.sort_by(|a, b| {
            let (a, b) = (a.info(), b.info());
            (a.min_time, &a.ulid).cmp(&(b.min_time, &b.ulid))
        });
        let blocks = Arc::new(blocks);
        match self.blocks.write() {
            Ok(mut g) => *g = blocks,
            Err(poisoned) => *poisoned.into_inner() = blocks,
        }
        self.synced.store(true, Ordering::Release);
    }

    /// Replaces the list of blocks that failed to load.
    pub fn set_missing(&self, missing: Vec<MissingBlock>) {
        let missing = Arc::new(missing);
        match self.missing.write() {
            Ok(mut g) => *g = missing,
            Err(poisoned) => *poisoned.into_inner() = missing,
        }
    }

    /// Whether a block failed to load at the last sync.
    pub fn has_missing_blocks(&self) -> bool {
        match self.missing.read() {
            Ok(g) => !g.is_empty(),
            Err(poisoned) => !poisoned.into_inner().is_empty(),
        }
    }

    /// Warnings for the missing blocks a request over `[mint, maxt]` (and
    /// within the bounds) would have read, and, for a series request that
    /// reads nothing coarser than `max_res`, for parts of that range that
    /// the bucket holds only at a coarser resolution, for sources the
    /// matchers allow.
    fn missing_warnings(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_res: Option<i64>,
    ) -> Vec<String> {
        let (lo, hi) = self.bounds();
        let (mint, maxt) = (mint.max(lo), maxt.min(hi));
        if mint > maxt {
            return Vec::new();
        }
        let missing = match self.missing.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut out: Vec<String> = missing
            .iter()
            .filter(|m| m.overlaps(mint, maxt))
            .map(MissingBlock::warning)
            .collect();
        let Some(max_res) = max_res else {
            return out;
        };
        let blocks = self.blocks();
        for d in blocks.iter().map(|b| b.info()) {
            if d.resolution <= max_res {
                continue;
            }
            let (from, to) = (d.min_time.max(mint), d.max_time.min(maxt));
            if from > to || !labels_allow(matchers, &d.labels) {
                continue;
            }
            // The part of [from, to] no block of the same source that the
            // request may read covers.
            let mut covered: Vec<(i64, i64)> = blocks
                .iter()
                .map(|b| b.info())
                .filter(|i| i.resolution <= max_res && i.labels == d.labels)
                .map(|i| (i.min_time, i.max_time))
                .collect();
            covered.sort_unstable();
            if let Some((gap_from, gap_to)) = first_gap(&covered, from, to) {
                let reads = if max_res == 0 {
                    "raw data only".to_string()
                } else {
                    format!(
                        "nothing coarser than {}",
                        crate::model::time::format_duration(max_res)
                    )
                };
                out.push(format!(
                    "data from {} to {} of {} is held only in block {} at resolution {}, and this query reads {reads} (max_source_resolution); it is missing from this answer",
                    crate::model::time::format_ms(gap_from),
                    crate::model::time::format_ms(gap_to),
                    d.labels,
                    d.ulid,
                    crate::model::time::format_duration(d.resolution),
                ));
            }
        }
        out
    }

    /// Fails until the first sync has loaded the bucket's blocks.
    fn check_synced(&self) -> Result<(), StoreError> {
        if self.synced.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(StoreError::Unavailable {
                peer: format!("store gateway of {}", self.group_id),
                message: "blocks are still being loaded (first sync)".into(),
            })
        }
    }

    pub fn blocks(&self) -> Arc<Vec<Arc<dyn BlockSeries>>> {
        match self.blocks.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The served part of time, now.
    fn bounds(&self) -> (i64, i64) {
        let now = now_ms();
        (self.min_time.resolve(now), self.max_time.resolve(now))
    }

    /// Blocks that may hold data for the request, each with the matchers
    /// left for it once its external labels have answered theirs. With
    /// `max_res` (series requests), per source the coarsest blocks of at
    /// most that resolution, and where they leave gaps the next finer ones
    /// (Thanos' choice); otherwise (label requests) every block.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_res: Option<i64>,
    ) -> Vec<(Arc<dyn BlockSeries>, Vec<Matcher>)> {
        let (lo, hi) = self.bounds();
        let (mint, maxt) = (mint.max(lo), maxt.min(hi));
        if mint > maxt {
            return Vec::new();
        }
        let blocks = self.blocks();
        let overlapping = blocks
            .iter()
            .filter(|b| b.info().min_time <= maxt && b.info().max_time >= mint);
        let chosen: Vec<&Arc<dyn BlockSeries>> = match max_res {
            None => overlapping.collect(),
            Some(max_res) => by_resolution(overlapping.collect(), mint, maxt, max_res),
        };
        chosen
            .into_iter()
            .filter_map(|b| {
                let ext = &b.info().labels;
                let mut rest = Vec::with_capacity(matchers.len());
                for m in matchers {
                    match ext.get(m.name()) {
                        Some(v) if !m.matches(v) => return None,
                        Some(_) => {}
                        None => rest.push(m.clone()),
                    }
                }
                Some((b.clone(), rest))
            })
            .collect()
    }
}

#[async_trait]
impl Store for GatewayStore {
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        self.check_synced()?;
        let blocks = self.blocks();
        let mut sets: Vec<Labels> = Vec::new();
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for b in blocks.iter() {
            let i = b.info();
            if !sets.contains(&i.labels) {
                sets.push(i.labels.clone());
            }
            min = min.min(i.min_time);
            max = max.max(i.max_time);
        }
        sets.sort();
        let (lo, hi) = self.bounds();
        let (min, max) = (min.max(lo), max.min(hi));
        let (min_time, max_time) = if min > max {
            (MIN_TIME, MIN_TIME)
        } else {
            (min, max)
        };
        Ok(StoreInfo {
            label_sets: sets,
            min_time,
            max_time,
            peer_type: PeerType::Store,
            store_group_id: self.group_id.clone(),
            component: "store".into(),
            supports_without_replica_labels: true,
        })
    }

    async fn series(&self, req: SeriesRequest) -> Result<SeriesStream, StoreError> {
        let max_res = req.max_resolution_ms.max(0);
        self.check_synced()?;
        crate::store::validate_range(req.min_time, req.max_time)?;
        // Held until the answer's stream is dropped.
        let permit = self
            .concurrency
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Internal("series semaphore closed".into()))?;
        let (mint, maxt) = (req.min_time, req.max_time);
        // Blocks of one source (one external label set) are joined first:
        // they split its series in time, and where they overlap their
        // samples are merged. Sources that only replica labels tell apart
        // are then put side by side with their chunks kept apart, never
        // unioned, so the querier deduplicates them as replicas.
        let mut sources: Vec<(Labels, Vec<SeriesStream>)> = Vec::new();
        for (block, matchers) in self.select(&req.matchers, mint, maxt, Some(max_res)) {
            let ext = &block.info().labels;
            let s = block.series(&matchers, mint, maxt, req.skip_chunks).await?;
            match sources.iter_mut().find(|(l, _)| l == ext) {
                Some((_, streams)) => streams.push(s),
                None => sources.push((ext.clone(), vec![s])),
            }
        }
        let inputs: Vec<SeriesStream> = sources
            .into_iter()
            .map(|(ext, streams)| {
                with_external_labels_tracked(
                    one_source(streams),
                    ext,
                    req.without_replica_labels.clone(),
                    false,
                    self.label_clashes.clone(),
                )
            })
            .collect();
        let limit = if req.limit == 0 {
            usize::MAX
        } else {
            req.limit
        };
        let merged = merge(inputs);
        let (series_limit, sample_limit) = (self.limits.series, self.limits.samples);
        let missing = self.missing_warnings(&req.matchers, mint, maxt, Some(max_res));
        let aggregates = req.aggregates.clone();
        Ok(Box::pin(async_stream::try_stream! {
            let _permit = permit;
            for w in missing {
                yield SeriesFrame::Warning(w);
            }
            let mut merged = std::pin::pin!(merged);
            let mut samples = 0u64;
            let mut sent = 0;
            while let Some(frame) = merged.next().await {
                match frame? {
                    MergedFrame::Warning(w) => yield SeriesFrame::Warning(w),
                    MergedFrame::Series(g) => {
                        if sent == limit {
                            break;
                        }
                        sent += 1;
                        if series_limit != 0 && sent > series_limit {
                            Err(StoreError::LimitExceeded(format!(
                                "the request matches more than {series_limit} series (--store.series-limit); narrow its matchers or time range"
                            )))?;
                        }
                        let SeriesGroup { labels, mut parts } = g;
                        let mut s = match parts.len() {
                            1 => Series { chunks: parts.pop().map(|p| p.chunks).unwrap_or_default(), labels },
                            _ => Series { chunks: concat_chunks(parts), labels },
                        };
                        if !aggregates.is_empty() {
                            // Of a downsampled chunk only what was asked.
                            for c in s.chunks.iter_mut().filter(|c| c.encoding == ChunkEncoding::Aggr) {
                                c.data = aggr::retain(&c.data, &aggregates)
                                    .map_err(|e| StoreError::Internal(format!("{}: {e}", s.labels)))?
                                    .into();
                            }
                        }
                        if sample_limit != 0 {
                            samples += s.chunks.iter().map(Chunk::num_samples).sum::<u64>();
                            if samples > sample_limit {
                                Err(StoreError::LimitExceeded(format!(
                                    "the request reads more than {sample_limit} samples (--store.series-sample-limit); narrow its matchers or time range"
                                )))?;
                            }
                        }
                        yield SeriesFrame::Series(s);
                    }
                }
            }
        }))
    }

    async fn label_names(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.check_synced()?;
        crate::store::validate_range(req.start, req.end)?;
        let mut names = BTreeSet::new();
        for (block, matchers) in self.select(&req.matchers, req.start, req.end, None) {
            let found = block.label_names(&matchers).await?;
            if !found.is_empty() {
                names.extend(block.info().labels.iter().map(|l| l.name.clone()));
            }
            names.extend(found);
        }
        let mut answer = limited(names, req.limit);
        answer.warnings = self.missing_warnings(&req.matchers, req.start, req.end, None);
        Ok(answer)
    }

    async fn label_values(&self, req: LabelsRequest) -> Result<LabelsResponse, StoreError> {
        self.check_synced()?;
        crate::store::validate_range(req.start, req.end)?;
        let mut values = BTreeSet::new();
        for (block, matchers) in self.select(&req.matchers, req.start, req.end, None) {
            match block.info().labels.get(&req.name) {
                // An external label: its value, if the block has any series.
                Some(v) => {
                    if !block.label_names(&matchers).await?.is_empty() {
                        values.insert(v.to_string());
                    }
                }
                None => values.extend(block.label_values(&req.name, &matchers).await?),
            }
        }
        let mut answer = limited(values, req.limit);
        answer.warnings = self.missing_warnings(&req.matchers, req.start, req.end, None);
        Ok(answer)
    }
}

/// Whether matchers on a block's external labels can hold.
fn labels_allow(matchers: &[Matcher], ext: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| ext.get(m.name()).is_none_or(|v| m.matches(v)))
}

/// Of blocks overlapping `[mint, maxt]`, per source (external labels), the
/// ones a request reading nothing coarser than `max_res` reads: the
/// coarsest resolution allowed where it has blocks, the gaps between them
/// filled from the next finer resolution, and so on down to raw.
fn by_resolution(
    blocks: Vec<&Arc<dyn BlockSeries>>,
    mint: i64,
    maxt: i64,
    max_res: i64,
) -> Vec<&Arc<dyn BlockSeries>> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut sources: Vec<&Labels> = Vec::new();
    for b in &blocks {
        if !sources.contains(&&b.info().labels) {
            sources.push(&b.info().labels);
        }
    }
    for source in sources {
        // Resolutions allowed, coarsest first, each with its blocks in
        // time order (the gateway's list is kept sorted by time).
        let mut levels: Vec<(i64, Vec<&Arc<dyn BlockSeries>>)> = Vec::new();
        for b in blocks.iter().filter(|b| &b.info().labels == source) {
            let res = b.info().resolution;
            if res > max_res {
                continue;
            }
            match levels.iter_mut().find(|(r, _)| *r == res) {
                Some((_, l)) => l.push(b),
                None => levels.push((res, vec![b])),
            }
        }
        levels.sort_by_key(|l| std::cmp::Reverse(l.0));
        fill(&levels, mint, maxt, &mut out);
    }
    out
}

fn fill<'a>(
    levels: &[(i64, Vec<&'a Arc<dyn BlockSeries>>)],
    mint: i64,
    maxt: i64,
    out: &mut Vec<&'a Arc<dyn BlockSeries>>,
) {
    let Some(((_, blocks), finer)) = levels.split_first() else {
        return;
    };
    if mint > maxt {
        return;
    }
    let mut start = mint;
    for b in blocks {
        let i = b.info();
        // Blocks of one resolution that overlap are all read.
        if i.max_time < mint {
            continue;
        }
        if i.min_time > maxt {
            break;
        }
        fill(finer, start, i.min_time.saturating_sub(1), out);
        out.push(b);
        start = start.max(i.max_time.saturating_add(1));
    }
    fill(finer, start, maxt, out);
}

/// The first stretch of `[from, to]` (inclusive) that none of `covered`
/// (inclusive ranges, sorted by start) covers.
fn first_gap(covered: &[(i64, i64)], from: i64, to: i64) -> Option<(i64, i64)> {
    let mut at = from;
    for &(lo, hi) in covered {
        if hi < at {
            continue;
        }
        if lo > at {
            return Some((at, (lo - 1).min(to)));
        }
        at = hi.saturating_add(1);
        if at > to {
            return None;
        }
    }
    (at <= to).then_some((at, to))
}

/// The blocks of one source as one sorted stream: a series' chunks from
/// blocks that split it in time are joined, overlapping blocks merged.
fn one_source(streams: Vec<SeriesStream>) -> SeriesStream {
    let merged = merge(streams);
    Box::pin(async_stream::try_stream! {
        let mut merged = std::pin::pin!(merged);
        let (mut buffers, mut out): (Vec<Vec<Sample>>, Vec<Sample>) = (Vec::new(), Vec::new());
        while let Some(frame) = merged.next().await {
            match frame? {
                MergedFrame::Warning(w) => yield SeriesFrame::Warning(w),
                MergedFrame::Series(g) => yield SeriesFrame::Series(
                    combine(g, false, DedupFunc::Penalty, false, &mut buffers, &mut out)?,
                ),
            }
        }
    })
}

fn limited(values: BTreeSet<String>, limit: usize) -> LabelsResponse {
    let take = if limit == 0 { usize::MAX } else { limit };
    LabelsResponse {
        values: values.into_iter().take(take).collect(),
        warnings: Vec::new(),
    }
}
