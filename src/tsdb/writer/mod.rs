//! Writing Prometheus TSDB blocks: `<dir>/<ULID>/` with `chunks/000001...`,
//! `index` (format version 2), `tombstones` and `meta.json`, laid out the way
//! Prometheus 2.x writes them, so that Prometheus, promtool, Thanos and the
//! reader in this module accept them.
//!
//! [`BlockWriter`] takes series in any order, each as a label set and its
//! float samples in increasing time (or as ready XOR chunks). Samples are
//! encoded into XOR chunks of at most 120 samples and written to the chunk
//! segments as each series is added; only labels and chunk metas stay in
//! memory until [`BlockWriter::finish`] sorts the series and writes the
//! index. A series is checked completely before anything of it is written,
//! so a rejected series leaves the writer as it was. The block is assembled
//! in `<dir>/<ULID>.tmp` and renamed into place at the end, as Prometheus
//! does; a writer dropped without `finish` removes its directory.
//!
//! [`write_blocks`] splits series over time-aligned blocks (2 h by default).

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::chunks::SEGMENT_HEADER_LEN;
use super::index::ChunkMeta;
use super::meta::{
    is_ulid, BlockFile, BlockMeta, BlockStats, Compaction, ThanosMeta, META_VERSION,
};
use crate::model::chunk::xor;
use crate::model::{Chunk, ChunkEncoding, Label, Labels, Sample};

/// Prometheus' default size at which a new chunk segment file is started.
pub const DEFAULT_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;
/// Prometheus' default block range: two hours.
pub const DEFAULT_BLOCK_RANGE_MS: i64 = 2 * 60 * 60 * 1000;
/// Samples per chunk, as Prometheus cuts them.
pub const DEFAULT_SAMPLES_PER_CHUNK: usize = crate::model::MAX_SAMPLES_PER_CHUNK;

/// The largest a chunk's length varint can be (Go's `MaxVarintLen32`):
/// Prometheus reserves this much when deciding whether a chunk still fits.
const MAX_CHUNK_LEN_FIELD: u64 = 5;
/// An empty tombstones file: magic `0x0130BA30`, version 1, CRC32C of no
/// entries.
const EMPTY_TOMBSTONES: [u8; 9] = [0x01, 0x30, 0xba, 0x30, 0x01, 0, 0, 0, 0];
/// What the Thanos section names as the writer of blocks from
/// [`write_blocks`].
pub const THANOS_SOURCE: &str = "skein";

/// A series' labels as `(name, value)` symbol ids.
type SymbolLabels = Box<[(u32, u32)]>;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("series {labels}: {detail}")]
    InvalidSeries { labels: String, detail: String },
    #[error("series {labels} was added twice")]
    DuplicateSeries { labels: String },
    #[error("invalid block writer options: {0}")]
    InvalidOptions(String),
    #[error("{0}: the block would hold no samples")]
    Empty(PathBuf),
    #[error("block too large: {0}")]
    TooLarge(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct BlockWriterOptions {
    /// The block's ULID; a new one (current time and random bits) when
    /// `None`.
    pub ulid: Option<String>,
    /// Samples per chunk (1 to 65535); Prometheus cuts at 120.
    pub samples_per_chunk: usize,
    /// A new chunk segment file is started before one would grow past this
    /// (at most 4 GiB, as chunk references hold 32-bit offsets).
    pub segment_size: u64,
    /// When set, `[min, max)`: every sample must fall inside.
    pub time_range: Option<(i64, i64)>,
    /// When set with `time_range`, `meta.json` states that range rather
    /// than the samples' (as compacted and downsampled blocks do, whose
    /// first sample may come after the range's start).
    pub range_in_meta: bool,
    /// The Thanos section of `meta.json` (external labels, source). The
    /// writer fills in `segment_files` and `files` with the sizes written.
    pub thanos: Option<ThanosMeta>,
}

impl Default for BlockWriterOptions {
    fn default() -> Self {
        Self {
            ulid: None,
            samples_per_chunk: DEFAULT_SAMPLES_PER_CHUNK,
            segment_size: DEFAULT_SEGMENT_SIZE,
            time_range: None,
            range_in_meta: false,
            thanos: None,
        }
    }
}

/// A new ULID from the current time and random bits: 26 characters of
/// Crockford base32 for 48 bits of milliseconds and 80 random bits.
pub fn new_ulid() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ulid_from(ms, rand::random::<u128>())
}

/// The ULID of a millisecond timestamp (low 48 bits) and random bits (low
/// 80 bits).
pub fn ulid_from(ms: u64, random: u128) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mask80 = (1u128 << 80) - 1;
    let v = (u128::from(ms & 0xffff_ffff_ffff) << 80) | (random & mask80);
    (0..26)
        .map(|i| char::from(ALPHABET[((v >> (125 - 5 * i)) & 31) as usize]))
        .collect()
}

/// `{a="b", c="d"}` for error messages.
fn show(labels: &[Label]) -> String {
    let mut out = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}={:?}", l.name, l.value);
    }
    out.push('}');
    out
}

/// Checks a label set: names non-empty and strictly ascending (so sorted and
/// unique); labels with an empty value are dropped, as Prometheus treats
/// them as absent. At least one label must remain.
fn check_labels(labels: &[Label]) -> Result<Vec<&Label>, WriteError> {
    let invalid = |detail: String| WriteError::InvalidSeries {
        labels: show(labels),
        detail,
    };
    for pair in labels.windows(2) {
        match pair[0].name.cmp(&pair[1].name) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(invalid(format!("duplicate label name {:?}", pair[0].name)))
            }
            std::cmp::Ordering::Greater => {
                return Err(invalid(format!(
                    "labels not sorted by name: {:?} before {:?}",
                    pair[0].name, pair[1].name
                )))
            }
        }
    }
    if labels.iter().any(|l| l.name.is_empty()) {
        return Err(invalid("empty label name".to_string()));
    }
    let kept: Vec<&Label> = labels.iter().filter(|l| !l.value.is_empty()).collect();
    if kept.is_empty() {
        return Err(invalid("no labels".to_string()));
    }
    Ok(kept)
}

mod index;
mod segment;

use segment::{encoding_byte, Pending, SegmentWriter, SeriesBuf};

/// A series kept until the index is written: labels as symbol ids (in
/// order of first use) and chunk metas.
#[derive(Debug)]
struct SeriesRec {
    labels: SymbolLabels,
    chunks: Vec<ChunkMeta>,
}

/// Writes one block. See the module documentation.
#[derive(Debug)]
pub struct BlockWriter {
    parent: PathBuf,
    tmp: PathBuf,
    ulid: String,
    opts: BlockWriterOptions,
    segments: SegmentWriter,
    /// Symbol ids in order of first use.
    symbol_ids: HashMap<Arc<str>, u32>,
    symbols: Vec<Arc<str>>,
    series: Vec<SeriesRec>,
    seen: HashSet<SymbolLabels>,
    min_time: i64,
    max_time: i64,
    num_samples: u64,
    num_chunks: u64,
    finished: bool,
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

impl BlockWriter {
    /// Starts a block under `dir` (created if missing) with default
    /// options.
    pub fn new(dir: &Path) -> Result<Self, WriteError> {
        Self::with_options(dir, BlockWriterOptions::default())
    }

    pub fn with_options(dir: &Path, opts: BlockWriterOptions) -> Result<Self, WriteError> {
        if !(1..=usize::from(u16::MAX)).contains(&opts.samples_per_chunk) {
            return Err(WriteError::InvalidOptions(format!(
                "samples_per_chunk {} is not in 1..=65535",
                opts.samples_per_chunk
            )));
        }
        if opts.segment_size <= SEGMENT_HEADER_LEN || opts.segment_size > u64::from(u32::MAX) {
            return Err(WriteError::InvalidOptions(format!(
                "segment_size {} is not in 9..=4294967295",
                opts.segment_size
            )));
        }
        if let Some((min, max)) = opts.time_range {
            if min >= max {
                return Err(WriteError::InvalidOptions(format!(
                    "time range [{min}, {max}) is empty"
                )));
            }
        }
        let ulid = match &opts.ulid {
            Some(u) if is_ulid(u) => u.clone(),
            Some(u) => return Err(WriteError::InvalidOptions(format!("{u:?} is not a ULID"))),
            None => new_ulid(),
        };
        if dir.join(&ulid).exists() {
            return Err(WriteError::Exists(dir.join(&ulid)));
        }
        let tmp = dir.join(format!("{ulid}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        let chunks_dir = tmp.join("chunks");
        std::fs::create_dir_all(&chunks_dir).map_err(io_err(&chunks_dir))?;
        Ok(Self {
            parent: dir.to_path_buf(),
            tmp,
            ulid,
            segments: SegmentWriter {
                dir: chunks_dir,
                max_size: opts.segment_size,
                file: None,
                seq: 0,
                pos: 0,
                done: Vec::new(),
            },
            opts,
            symbol_ids: HashMap::new(),
            symbols: Vec::new(),
            series: Vec::new(),
            seen: HashSet::new(),
            min_time: i64::MAX,
            max_time: i64::MIN,
            num_samples: 0,
            num_chunks: 0,
            finished: false,
        })
    }

    pub fn ulid(&self) -> &str {
        &self.ulid
    }

    /// Where the block will be once finished.
    pub fn block_dir(&self) -> PathBuf {
        self.parent.join(&self.ulid)
    }

    /// Series added so far.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Adds a series: its labels, sorted by name with unique names (as
    /// `Labels::as_slice` gives them; labels with empty values are left
    /// out), and its float samples in strictly increasing time. A series
    /// without samples is not written. On error nothing of the series is
    /// written and the writer can go on.
    pub fn add_series<I>(&mut self, labels: &[Label], samples: I) -> Result<(), WriteError>
    where
        I: IntoIterator,
        I::Item: Borrow<Sample>,
    {
        let kept = check_labels(labels)?;
        let mut buf = SeriesBuf::new(self.opts.samples_per_chunk);
        for s in samples {
            let s = s.borrow();
            buf.push(s.t, s.v)
                .map_err(|detail| WriteError::InvalidSeries {
                    labels: show(labels),
                    detail,
                })?;
        }
        let (chunks, samples) = buf.finish();
        self.commit(labels, &kept, chunks, samples)
    }

    /// Adds a series from encoded chunks, in time order and not overlapping.
    /// XOR chunks are decoded to check that their samples increase and lie
    /// within the chunk's `[min_time, max_time]`, which must be their
    /// first and last timestamps; other encodings are written as given.
    pub fn add_series_chunks(
        &mut self,
        labels: &[Label],
        chunks: &[Chunk],
    ) -> Result<(), WriteError> {
        let kept = check_labels(labels)?;
        let invalid = |detail: String| WriteError::InvalidSeries {
            labels: show(labels),
            detail,
        };
        let mut pending = Vec::with_capacity(chunks.len());
        let mut samples = 0u64;
        let mut prev_max: Option<i64> = None;
        for (i, c) in chunks.iter().enumerate() {
            if c.min_time > c.max_time {
                return Err(invalid(format!(
                    "chunk {i}: min time {} after max time {}",
                    c.min_time, c.max_time
                )));
            }
            if let Some(p) = prev_max {
                if c.min_time <= p {
                    return Err(invalid(format!(
                        "chunk {i} starts at {}, not after the previous chunk's end {p}",
                        c.min_time
                    )));
                }
            }
            prev_max = Some(c.max_time);
            if c.encoding == ChunkEncoding::Xor {
                let decoded =
                    xor::decode_all(&c.data).map_err(|e| invalid(format!("chunk {i}: {e}")))?;
                let (Some(first), Some(last)) = (decoded.first(), decoded.last()) else {
                    return Err(invalid(format!("chunk {i} holds no samples")));
                };
                if first.t != c.min_time || last.t != c.max_time {
                    return Err(invalid(format!(
                        "chunk {i} claims [{}, {}] but holds samples from {} to {}",
                        c.min_time, c.max_time, first.t, last.t
                    )));
                }
                if decoded.windows(2).any(|w| w[0].t >= w[1].t) {
                    return Err(invalid(format!("chunk {i}: samples out of order")));
                }
                samples += decoded.len() as u64;
            } else if c.encoding == ChunkEncoding::Aggr {
                // Counted as Thanos does: the windows of the count aggregate.
                let parts = crate::model::chunk::aggr::parts(&c.data)
                    .map_err(|e| invalid(format!("chunk {i}: {e}")))?;
                let n = parts[0]
                    .and_then(|d| d.get(..2))
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                samples += u64::from(n);
            } else {
                let n = c
                    .data
                    .get(..2)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                samples += u64::from(n);
            }
            pending.push(Pending {
                min_time: c.min_time,
                max_time: c.max_time,
                encoding: encoding_byte(c.encoding),
                data: c.data.to_vec(),
            });
        }
        self.commit(labels, &kept, pending, samples)
    }

    fn commit(
        &mut self,
        labels: &[Label],
        kept: &[&Label],
        chunks: Vec<Pending>,
        samples: u64,
    ) -> Result<(), WriteError> {
        let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
            return Ok(());
        };
        let (mint, maxt) = (first.min_time, last.max_time);
        if maxt == i64::MAX {
            return Err(WriteError::InvalidSeries {
                labels: show(labels),
                detail: "timestamp i64::MAX leaves no exclusive block end".to_string(),
            });
        }
        if let Some((lo, hi)) = self.opts.time_range {
            if mint < lo || maxt >= hi {
                return Err(WriteError::InvalidSeries {
                    labels: show(labels),
                    detail: format!(
                        "samples from {mint} to {maxt} fall outside the block's range [{lo}, {hi})"
                    ),
                });
            }
        }
        // A duplicate can only use symbols already known.
        let known: Option<Vec<(u32, u32)>> = kept
            .iter()
            .map(|l| {
                Some((
                    *self.symbol_ids.get(l.name.as_str())?,
                    *self.symbol_ids.get(l.value.as_str())?,
                ))
            })
            .collect();
        if let Some(key) = known {
            if self.seen.contains(key.as_slice()) {
                return Err(WriteError::DuplicateSeries {
                    labels: show(labels),
                });
            }
        }
        let mut metas = Vec::with_capacity(chunks.len());
        for c in &chunks {
            let chunk_ref = self.segments.write(c.encoding, &c.data)?;
            metas.push(ChunkMeta {
                chunk_ref,
                min_time: c.min_time,
                max_time: c.max_time,
            });
        }
        let key: SymbolLabels = kept
            .iter()
            .map(|l| (self.intern(&l.name), self.intern(&l.value)))
            .collect();
        self.seen.insert(key.clone());
        self.series.push(SeriesRec {
            labels: key,
            chunks: metas,
        });
        self.min_time = self.min_time.min(mint);
        self.max_time = self.max_time.max(maxt);
        self.num_samples += samples;
        self.num_chunks += chunks.len() as u64;
        Ok(())
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.symbol_ids.get(s) {
            return id;
        }
        let id = self.symbols.len() as u32;
        let s: Arc<str> = Arc::from(s);
        self.symbols.push(Arc::clone(&s));
        self.symbol_ids.insert(s, id);
        id
    }

    /// Writes the index, `tombstones` and `meta.json`, and moves the block
    /// to `<dir>/<ULID>`. Fails for a block without samples.
    pub fn finish(mut self) -> Result<BlockMeta, WriteError> {
        if self.series.is_empty() {
            return Err(WriteError::Empty(self.block_dir()));
        }
        self.segments.close_current()?;
        self.write_index()?;

        let tombstones = self.tmp.join("tombstones");
        write_synced(&tombstones, &EMPTY_TOMBSTONES)?;

        let index_len = std::fs::metadata(self.tmp.join("index"))
            .map_err(io_err(&self.tmp.join("index")))?
            .len();
        let thanos = self.opts.thanos.clone().map(|mut t| {
            t.segment_files = self.segments.done.iter().map(|(n, _)| n.clone()).collect();
            t.files = self
                .segments
                .done
                .iter()
                .map(|(n, size)| BlockFile {
                    rel_path: format!("chunks/{n}"),
                    size_bytes: i64::try_from(*size).ok(),
                    hash: None,
                })
                .chain([
                    BlockFile {
                        rel_path: "index".to_string(),
                        size_bytes: i64::try_from(index_len).ok(),
                        hash: None,
                    },
                    BlockFile {
                        rel_path: "meta.json".to_string(),
                        size_bytes: None,
                        hash: None,
                    },
                ])
                .collect();
            t
        });
        let (min_time, max_time) = match self.opts.time_range {
            Some(range) if self.opts.range_in_meta => range,
            _ => (self.min_time, self.max_time + 1),
        };
        let meta = BlockMeta {
            ulid: self.ulid.clone(),
            min_time,
            max_time,
            stats: BlockStats {
                num_samples: self.num_samples,
                num_series: self.series.len() as u64,
                num_chunks: self.num_chunks,
                ..BlockStats::default()
            },
            compaction: Compaction {
                level: 1,
                sources: vec![self.ulid.clone()],
                ..Compaction::default()
            },
            version: META_VERSION,
            thanos,
        };
        let meta_path = self.tmp.join("meta.json");
        write_synced(&meta_path, &meta_json(&meta))?;
        sync_dir(&self.tmp.join("chunks"))?;
        sync_dir(&self.tmp)?;

        let target = self.block_dir();
        if target.exists() {
            return Err(WriteError::Exists(target));
        }
        std::fs::rename(&self.tmp, &target).map_err(io_err(&target))?;
        self.finished = true;
        sync_dir(&self.parent)?;
        Ok(meta)
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), WriteError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    // Directories cannot be opened for syncing everywhere; where they can,
    // a failure is an error.
    match File::open(dir) {
        Ok(f) => f.sync_all().or_else(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::PermissionDenied => Ok(()),
            _ => Err(WriteError::Io {
                path: dir.to_path_buf(),
                source: e,
            }),
        }),
        Err(_) => Ok(()),
    }
}

/// `meta.json` as Prometheus writes it (tab-indented), with `"version": 1`
/// in the Thanos section as Thanos writes it.
fn meta_json(meta: &BlockMeta) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        ulid: &'a str,
        min_time: i64,
        max_time: i64,
        stats: &'a BlockStats,
        compaction: &'a Compaction,
        version: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        thanos: Option<ThanosOut<'a>>,
    }
    #[derive(Serialize)]
    struct ThanosOut<'a> {
        version: u32,
        #[serde(flatten)]
        inner: &'a ThanosMeta,
    }
    let out = Out {
        ulid: &meta.ulid,
        min_time: meta.min_time,
        max_time: meta.max_time,
        stats: &meta.stats,
        compaction: &meta.compaction,
        version: meta.version,
        thanos: meta
            .thanos
            .as_ref()
            .map(|inner| ThanosOut { version: 1, inner }),
    };
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Plain structs of strings and numbers always serialize; fall back to
    // the reader's own encoding all the same.
    match out.serialize(&mut ser) {
        Ok(()) => buf,
        Err(_) => meta.to_json().into_bytes(),
    }
}

/// The writer of the block starting at `start`, opened when first needed.
fn writer_for<'w>(
    writers: &'w mut BTreeMap<i64, BlockWriter>,
    dir: &Path,
    start: i64,
    range: i64,
    thanos: &Option<ThanosMeta>,
) -> Result<&'w mut BlockWriter, WriteError> {
    match writers.entry(start) {
        std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::btree_map::Entry::Vacant(e) => {
            let opts = BlockWriterOptions {
                time_range: Some((start, start.saturating_add(range))),
                thanos: thanos.clone(),
                ..BlockWriterOptions::default()
            };
            Ok(e.insert(BlockWriter::with_options(dir, opts)?))
        }
    }
}

/// Writes series into blocks under `dir` aligned to `block_range_ms`
/// (`[k * range, (k + 1) * range)`, as Prometheus' head cuts them): each
/// series' samples (strictly increasing in time) go to the blocks their
/// timestamps fall in. With non-empty `ext_labels`, each `meta.json` gets a
/// Thanos section with them (source [`THANOS_SOURCE`]). Returns the metas
/// of the blocks written, by time; blocks without samples are not written.
///
/// All blocks are open until the input ends (one open segment file each),
/// holding labels and chunk metas of their series. On an error no block is
/// written, except when finishing a later block fails after earlier ones
/// were moved into place.
pub fn write_blocks<I, S>(
    dir: &Path,
    series: I,
    block_range_ms: i64,
    ext_labels: &Labels,
) -> Result<Vec<BlockMeta>, WriteError>
where
    I: IntoIterator<Item = (Labels, S)>,
    S: IntoIterator,
    S::Item: Borrow<Sample>,
{
    if block_range_ms <= 0 {
        return Err(WriteError::InvalidOptions(format!(
            "block range {block_range_ms} ms is not positive"
        )));
    }
    let thanos = (!ext_labels.is_empty()).then(|| ThanosMeta {
        labels: ext_labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect(),
        source: THANOS_SOURCE.to_string(),
        ..ThanosMeta::default()
    });
    let mut writers: BTreeMap<i64, BlockWriter> = BTreeMap::new();
    for (labels, samples) in series {
        let kept = check_labels(labels.as_slice())?;
        let mut current: Option<(i64, SeriesBuf)> = None;
        let mut last: Option<i64> = None;
        for s in samples {
            let s = s.borrow();
            if let Some(l) = last {
                if s.t <= l {
                    return Err(WriteError::InvalidSeries {
                        labels: show(labels.as_slice()),
                        detail: format!("sample at {} is out of order (after {l})", s.t),
                    });
                }
            }
            last = Some(s.t);
            let start = s.t.div_euclid(block_range_ms) * block_range_ms;
            if current.as_ref().map(|(cur, _)| *cur) != Some(start) {
                if let Some((cur, buf)) = current.take() {
                    let w = writer_for(&mut writers, dir, cur, block_range_ms, &thanos)?;
                    commit_buf(w, labels.as_slice(), &kept, buf)?;
                }
                current = Some((start, SeriesBuf::new(DEFAULT_SAMPLES_PER_CHUNK)));
            }
            if let Some((_, buf)) = current.as_mut() {
                buf.push(s.t, s.v)
                    .map_err(|detail| WriteError::InvalidSeries {
                        labels: show(labels.as_slice()),
                        detail,
                    })?;
            }
        }
        if let Some((cur, buf)) = current.take() {
            let w = writer_for(&mut writers, dir, cur, block_range_ms, &thanos)?;
            commit_buf(w, labels.as_slice(), &kept, buf)?;
        }
    }
    writers.into_values().map(BlockWriter::finish).collect()
}

/// Commits the part of a series that falls into one block.
fn commit_buf(
    w: &mut BlockWriter,
    labels: &[Label],
    kept: &[&Label],
    buf: SeriesBuf,
) -> Result<(), WriteError> {
    let (chunks, n) = buf.finish();
    w.commit(labels, kept, chunks, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_valid() {
        for _ in 0..100 {
            let u = new_ulid();
            assert!(is_ulid(&u), "{u}");
        }
        assert_eq!(ulid_from(0, 0), "00000000000000000000000000");
        assert_eq!(ulid_from(u64::MAX, u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        // The time part of the ULID spec's example: 1469918176385 ms.
        assert!(ulid_from(1_469_918_176_385, 0).starts_with("01ARYZ6S41"));
    }

    #[test]
    fn label_checks() {
        let l = |pairs: &[(&str, &str)]| -> Vec<Label> {
            pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
        };
        assert!(check_labels(&l(&[("a", "1"), ("b", "2")])).is_ok());
        assert_eq!(check_labels(&l(&[("a", ""), ("b", "2")])).unwrap().len(), 1);
        for bad in [
            l(&[("b", "1"), ("a", "2")]),
            l(&[("a", "1"), ("a", "2")]),
            l(&[("", "1")]),
            l(&[]),
            l(&[("a", "")]),
        ] {
            assert!(check_labels(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn series_buf_cuts_and_checks_order() {
        let mut b = SeriesBuf::new(3);
        for t in 0..7 {
            b.push(t * 10, t as f64).unwrap();
        }
        assert!(b.push(60, 0.0).unwrap_err().contains("duplicate"));
        assert!(b.push(5, 0.0).unwrap_err().contains("out of order"));
        let (chunks, n) = b.finish();
        assert_eq!(n, 7);
        let spans: Vec<_> = chunks.iter().map(|c| (c.min_time, c.max_time)).collect();
        assert_eq!(spans, [(0, 20), (30, 50), (60, 60)]);
    }
}
