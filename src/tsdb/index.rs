//! The block index, format version 2: parsers for each section over byte
//! slices, and `IndexReader`, which answers lookups with range reads guided
//! by an `IndexHeader`.
//!
//! Layout: a 5-byte header (magic `0xBAAAD700`, version byte 2), the symbol
//! table, the series entries (each 16-byte aligned; a series' reference is
//! its offset / 16), label indices, postings lists, the label offset table,
//! the postings offset table and a 52-byte table of contents at the end.
//! Every section has a CRC32C; fixed-width integers are big-endian.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::cache::{CacheKey, IndexCache};
use super::encoding::{uvarint, Dec, Varint};
use super::error::{check_crc, Section, TsdbError};
use super::header::IndexHeader;
use super::postings;
use super::source::{coalesce, Fetched, ReadAt, MAX_READ_GAP};
use crate::model::{Label, Labels, Matcher};

pub const INDEX_MAGIC: u32 = 0xBAAA_D700;
pub const INDEX_VERSION: u8 = 2;
/// Magic and version.
pub const INDEX_HEADER_LEN: u64 = 5;
/// Six 8-byte references and a CRC32.
pub const TOC_LEN: u64 = 6 * 8 + 4;

/// A series reference: the offset of its entry in the index divided by 16.
pub type SeriesRef = u32;

/// Where the sections of an index start. A zero reference means the section
/// is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Toc {
    pub symbols: u64,
    pub series: u64,
    pub label_indices: u64,
    pub label_offset_table: u64,
    pub postings: u64,
    pub postings_offset_table: u64,
}

impl Toc {
    /// Parses the 52 bytes at the end of an index of `index_len` bytes.
    pub fn parse(file: &str, buf: &[u8], index_len: u64) -> Result<Toc, TsdbError> {
        let base = index_len.saturating_sub(TOC_LEN);
        let mut d = Dec::new(buf, base, file, "table of contents");
        let body = d.bytes(48)?;
        let stored = d.be_u32()?;
        check_crc(file, Section::Toc, body, stored)?;
        let mut d = Dec::new(body, base, file, "table of contents");
        let toc = Toc {
            symbols: d.be_u64()?,
            series: d.be_u64()?,
            label_indices: d.be_u64()?,
            label_offset_table: d.be_u64()?,
            postings: d.be_u64()?,
            postings_offset_table: d.be_u64()?,
        };
        for (what, r) in toc.refs() {
            if r != 0 && (r < INDEX_HEADER_LEN || r >= base) {
                return Err(TsdbError::OutOfRange {
                    file: file.to_string(),
                    what,
                    reference: r,
                });
            }
        }
        Ok(toc)
    }

    pub fn encode(&self) -> [u8; TOC_LEN as usize] {
        let mut out = [0u8; TOC_LEN as usize];
        for (i, (_, r)) in self.refs().iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&r.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out[..48]);
        out[48..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn refs(&self) -> [(&'static str, u64); 6] {
        [
            ("symbol table", self.symbols),
            ("series section", self.series),
            ("label indices section", self.label_indices),
            ("label offset table", self.label_offset_table),
            ("postings section", self.postings),
            ("postings offset table", self.postings_offset_table),
        ]
    }

    /// Where the section starting at `start` ends at the latest: the next
    /// section's start, or the TOC.
    pub fn section_end(&self, start: u64, index_len: u64) -> u64 {
        let toc_start = index_len.saturating_sub(TOC_LEN);
        self.refs()
            .iter()
            .map(|&(_, r)| r)
            .filter(|&r| r > start)
            .min()
            .unwrap_or(toc_start)
            .min(toc_start)
    }
}

/// Checks the 5-byte file header.
pub fn check_index_header(file: &str, buf: &[u8]) -> Result<(), TsdbError> {
    Dec::new(buf, 0, file, "index header").magic_and_version(INDEX_MAGIC, INDEX_VERSION, "index")
}

/// Splits a `len <4b> | body | CRC32 <4b>` section at the start of `buf`
/// (which is at `offset` of the file), checks the CRC and returns the body.
fn checked_section<'a>(
    file: &str,
    what: &str,
    section: Section,
    buf: &'a [u8],
    offset: u64,
) -> Result<&'a [u8], TsdbError> {
    let mut d = Dec::new(buf, offset, file, what);
    let len = d.be_u32()? as usize;
    let body = d.bytes(len)?;
    let stored = d.be_u32()?;
    check_crc(file, section, body, stored)?;
    Ok(body)
}

/// The symbol table: every label name and value of the index, sorted, and
/// referenced by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    /// All symbols, concatenated.
    data: String,
    /// Where each symbol ends in `data`.
    ends: Vec<u32>,
    /// Whether the symbols are strictly ascending, as the format requires;
    /// lookups by string are only done when they are.
    sorted: bool,
}

impl Symbols {
    /// Parses the symbol table section (length, body, CRC) at the start of
    /// `buf`, which is at `offset` of the file.
    pub fn parse_section(file: &str, buf: &[u8], offset: u64) -> Result<Symbols, TsdbError> {
        let body = checked_section(file, "symbol table", Section::SymbolTable, buf, offset)?;
        Self::parse_body(file, body, offset + 4)
    }

    /// Parses the symbol table body: a 4-byte count, then the strings.
    pub fn parse_body(file: &str, body: &[u8], offset: u64) -> Result<Symbols, TsdbError> {
        let mut d = Dec::new(body, offset, file, "symbol table");
        let count = d.be_u32()? as usize;
        // Each symbol takes at least one byte.
        if count > d.remaining() {
            return Err(d.malformed(format!("{count} symbols in {} bytes", d.remaining())));
        }
        let mut data = String::with_capacity(d.remaining().saturating_sub(count));
        let mut ends = Vec::with_capacity(count);
        let mut sorted = true;
        let mut prev_start = 0usize;
        for i in 0..count {
            let s = d.str_uvarint()?;
            if i > 0 && data.get(prev_start..).is_some_and(|prev| prev >= s) {
                sorted = false;
            }
            prev_start = data.len();
            data.push_str(s);
            let end = u32::try_from(data.len())
                .map_err(|_| d.malformed("symbol table larger than 4 GiB"))?;
            ends.push(end);
        }
        if !d.is_empty() {
            return Err(d.malformed(format!("{} bytes after the last symbol", d.remaining())));
        }
        Ok(Symbols { data, ends, sorted })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// The symbol at position `i`.
    pub fn get(&self, i: u32) -> Option<&str> {
        let i = i as usize;
        let end = *self.ends.get(i)? as usize;
        let start = match i {
            0 => 0,
            _ => *self.ends.get(i - 1)? as usize,
        };
        self.data.get(start..end)
    }

    /// The position of `s`, when the table is sorted.
    pub fn find(&self, s: &str) -> Option<u32> {
        if !self.sorted {
            return None;
        }
        let (mut lo, mut hi) = (0usize, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let sym = self.get(mid as u32)?;
            match sym.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len() as u32).filter_map(|i| self.get(i))
    }

    /// The body encoding: count, then length-prefixed strings.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        super::encoding::put_be_u32(out, self.ends.len() as u32);
        for s in self.iter() {
            super::encoding::put_str(out, s);
        }
    }

    /// Bytes held in memory.
    pub fn memory(&self) -> usize {
        self.data.len() + self.ends.len() * 4
    }
}

/// Where a chunk is and what time range it covers, as the index says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkMeta {
    /// Segment index (0 for `chunks/000001`) << 32 | offset in the segment.
    pub chunk_ref: u64,
    pub min_time: i64,
    pub max_time: i64,
}

impl ChunkMeta {
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_time <= maxt && mint <= self.max_time
    }

    pub fn segment(&self) -> u32 {
        (self.chunk_ref >> 32) as u32
    }

    pub fn offset(&self) -> u32 {
        self.chunk_ref as u32
    }
}

/// A series entry: its labels and chunk metas, sorted by time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesEntry {
    pub series_ref: SeriesRef,
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
}

/// The number of bytes a series entry at the start of `buf` spans (length
/// varint, body, CRC), or `None` when `buf` ends inside its length varint.
pub(crate) fn series_entry_len(buf: &[u8]) -> Option<Result<u64, ()>> {
    match uvarint(buf) {
        Varint::Ok(len, n) => Some(Ok(len.saturating_add(n as u64 + 4))),
        Varint::Short => None,
        Varint::Overflow => Some(Err(())),
    }
}

/// Parses the series entry at the start of `buf`, resolving label symbols.
pub fn parse_series(
    file: &str,
    symbols: &Symbols,
    series_ref: SeriesRef,
    buf: &[u8],
) -> Result<SeriesEntry, TsdbError> {
    let offset = u64::from(series_ref) * 16;
    let what = "series entry";
    let mut d = Dec::new(buf, offset, file, what);
    let len = d.uvarint_len()?;
    let body_at = d.offset();
    let body = d.bytes(len)?;
    let stored = d.be_u32()?;
    check_crc(
        file,
        Section::Series {
            series_ref: u64::from(series_ref),
        },
        body,
        stored,
    )?;

    let mut d = Dec::new(body, body_at, file, what);
    let nlabels = d.uvarint_len()?;
    let mut labels = Vec::with_capacity(nlabels);
    let symbol = |r: u32| {
        symbols.get(r).ok_or_else(|| TsdbError::OutOfRange {
            file: file.to_string(),
            what: "symbol",
            reference: u64::from(r),
        })
    };
    for _ in 0..nlabels {
        let name = d.uvarint32()?;
        let value = d.uvarint32()?;
        labels.push(Label::new(symbol(name)?, symbol(value)?));
    }
    let labels = Labels::new(labels).map_err(|e| d.malformed(format!("labels: {e}")))?;

    let nchunks = d.uvarint_len()?;
    let mut chunks = Vec::with_capacity(nchunks);
    let mut prev: Option<ChunkMeta> = None;
    for _ in 0..nchunks {
        let meta = match prev {
            None => {
                let min_time = d.varint()?;
                let span = udelta(&mut d)?;
                let max_time = add(&d, min_time, span)?;
                let chunk_ref = d.uvarint()?;
                ChunkMeta {
                    chunk_ref,
                    min_time,
                    max_time,
                }
            }
            Some(p) => {
                let gap = udelta(&mut d)?;
                let min_time = add(&d, p.max_time, gap)?;
                let span = udelta(&mut d)?;
                let max_time = add(&d, min_time, span)?;
                let ref_delta = d.varint()?;
                let chunk_ref = p
                    .chunk_ref
                    .checked_add_signed(ref_delta)
                    .ok_or_else(|| d.malformed("chunk reference overflows"))?;
                ChunkMeta {
                    chunk_ref,
                    min_time,
                    max_time,
                }
            }
        };
        chunks.push(meta);
        prev = Some(meta);
    }
    if !d.is_empty() {
        return Err(d.malformed(format!("{} bytes after the chunk metas", d.remaining())));
    }
    Ok(SeriesEntry {
        series_ref,
        labels,
        chunks,
    })
}

/// An unsigned time delta, which must fit in an i64.
fn udelta(d: &mut Dec<'_, '_>) -> Result<i64, TsdbError> {
    let v = d.uvarint()?;
    i64::try_from(v).map_err(|_| d.malformed(format!("time delta {v} too large")))
}

fn add(d: &Dec<'_, '_>, a: i64, b: i64) -> Result<i64, TsdbError> {
    a.checked_add(b)
        .ok_or_else(|| d.malformed("timestamp overflows"))
}

/// Parses the postings list at the start of `buf` (at `offset` of the file):
/// strictly ascending series references.
pub fn parse_postings(file: &str, buf: &[u8], offset: u64) -> Result<Vec<SeriesRef>, TsdbError> {
    let what = "postings list";
    let body = checked_section(file, what, Section::Postings { offset }, buf, offset)?;
    let mut d = Dec::new(body, offset + 4, file, what);
    let count = d.be_u32()? as usize;
    if d.remaining() != count.saturating_mul(4) {
        return Err(d.malformed(format!(
            "{count} entries but {} bytes of references",
            d.remaining()
        )));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let r = d.be_u32()?;
        if out.last().is_some_and(|&last| last >= r) {
            return Err(d.malformed("references are not ascending"));
        }
        out.push(r);
    }
    Ok(out)
}

/// Parses the postings offset table section at the start of `buf`, calling
/// `f(name, value, offset)` for each entry in order.
pub fn parse_postings_offset_table(
    file: &str,
    buf: &[u8],
    offset: u64,
    mut f: impl FnMut(&str, &str, u64) -> Result<(), TsdbError>,
) -> Result<(), TsdbError> {
    let what = "postings offset table";
    let body = checked_section(file, what, Section::PostingsOffsetTable, buf, offset)?;
    let mut d = Dec::new(body, offset + 4, file, what);
    let count = d.be_u32()?;
    for _ in 0..count {
        let n = d.u8()?;
        if n != 2 {
            return Err(d.malformed(format!("entry with {n} strings, expected 2")));
        }
        let name = d.str_uvarint()?;
        let value = d.str_uvarint()?;
        let at = d.uvarint()?;
        f(name, value, at)?;
    }
    if !d.is_empty() {
        return Err(d.malformed(format!("{} bytes after the last entry", d.remaining())));
    }
    Ok(())
}

/// Parses the label offset table section at the start of `buf`: label names
/// and the offsets of their label indices.
pub fn parse_label_offset_table(
    file: &str,
    buf: &[u8],
    offset: u64,
) -> Result<Vec<(String, u64)>, TsdbError> {
    let what = "label offset table";
    let body = checked_section(file, what, Section::LabelOffsetTable, buf, offset)?;
    let mut d = Dec::new(body, offset + 4, file, what);
    let count = d.be_u32()? as usize;
    let mut out = Vec::with_capacity(count.min(d.remaining()));
    for _ in 0..count {
        let n = d.u8()?;
        if n != 1 {
            return Err(d.malformed(format!("entry with {n} names, expected 1")));
        }
        let name = d.str_uvarint()?;
        out.push((name.to_string(), d.uvarint()?));
    }
    if !d.is_empty() {
        return Err(d.malformed(format!("{} bytes after the last entry", d.remaining())));
    }
    Ok(out)
}

/// A label index: the number of names it covers and its value tuples as
/// symbol references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelIndex {
    pub names: u32,
    pub values: Vec<u32>,
}

/// Parses the label index at the start of `buf`.
pub fn parse_label_index(file: &str, buf: &[u8], offset: u64) -> Result<LabelIndex, TsdbError> {
    let what = "label index";
    let body = checked_section(file, what, Section::LabelIndex { offset }, buf, offset)?;
    let mut d = Dec::new(body, offset + 4, file, what);
    let names = d.be_u32()?;
    let count = d.be_u32()? as usize;
    if names == 0 || d.remaining() != count.saturating_mul(4) || count % names as usize != 0 {
        return Err(d.malformed(format!(
            "{names} names and {count} entries in {} bytes",
            d.remaining()
        )));
    }
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        values.push(d.be_u32()?);
    }
    Ok(LabelIndex { names, values })
}

/// What a full check of an index found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSummary {
    pub symbols: usize,
    pub series: usize,
    pub chunks: usize,
    pub label_indices: usize,
    pub postings_lists: usize,
}

/// Guess for the size of a series entry whose end is not known from its
/// neighbour; longer entries cost one more read.
const SERIES_ESTIMATE: u64 = 4096;

/// Reads an index by ranges, with its header in memory.
#[derive(Debug, Clone)]
pub struct IndexReader {
    src: Arc<dyn ReadAt>,
    header: Arc<IndexHeader>,
    /// Postings lists and series entries kept in memory, with this
    /// block's cache id.
    cache: Option<(Arc<IndexCache>, u128)>,
}

impl IndexReader {
    /// Builds the header from the index (a few range reads) and opens it.
    pub async fn open(src: Arc<dyn ReadAt>) -> Result<Self, TsdbError> {
        let header = IndexHeader::build(src.as_ref()).await?;
        Ok(Self {
            src,
            header: Arc::new(header),
            cache: None,
        })
    }

    /// Keeps postings lists and series entries read from now on in `cache`.
    pub fn with_cache(mut self, cache: Arc<IndexCache>, block: u128) -> Self {
        self.cache = Some((cache, block));
        self
    }

    /// Opens the index with a header built earlier; fails when the header
    /// was built from a file of another size.
    pub fn with_header(src: Arc<dyn ReadAt>, header: Arc<IndexHeader>) -> Result<Self, TsdbError> {
        if header.index_len() != src.len() {
            return Err(TsdbError::malformed(
                src.name(),
                "index header",
                format!(
                    "built for an index of {} bytes, the index has {}",
                    header.index_len(),
                    src.len()
                ),
            ));
        }
        Ok(Self {
            src,
            header,
            cache: None,
        })
    }

    pub fn header(&self) -> &Arc<IndexHeader> {
        &self.header
    }

    pub fn file(&self) -> &str {
        self.src.name()
    }

    /// Label names, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.header.label_names()
    }

    /// Values of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.header.label_values(name)
    }

    /// Reads postings lists given as `(start, end)` ranges from the header,
    /// coalescing close ones; returns them by start offset.
    pub(crate) async fn read_postings(
        &self,
        ranges: &[(u64, u64)],
    ) -> Result<HashMap<u64, Vec<SeriesRef>>, TsdbError> {
        let mut sorted = ranges.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = HashMap::with_capacity(sorted.len());
        // Cached lists first; only the others are read.
        if let Some((cache, block)) = &self.cache {
            let keys: Vec<CacheKey> = sorted
                .iter()
                .map(|&(offset, _)| CacheKey::Postings {
                    block: *block,
                    offset,
                })
                .collect();
            let mut missing = Vec::with_capacity(sorted.len());
            for (&(start, end), hit) in sorted.iter().zip(cache.get_many(&keys)) {
                match hit {
                    Some(buf) => {
                        out.insert(start, parse_postings(self.file(), &buf, start)?);
                    }
                    None => missing.push((start, end)),
                }
            }
            sorted = missing;
        }
        let fetched = Fetched::read(self.src.as_ref(), &coalesce(&sorted, MAX_READ_GAP)).await?;
        let mut fresh = Vec::new();
        for &(start, end) in &sorted {
            let buf = fetched.from(start).ok_or_else(|| TsdbError::OutOfRange {
                file: self.file().to_string(),
                what: "postings",
                reference: start,
            })?;
            let len = usize::try_from(end - start)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            out.insert(start, parse_postings(self.file(), &buf[..len], start)?);
            if let Some((_, block)) = &self.cache {
                let key = CacheKey::Postings {
                    block: *block,
                    offset: start,
                };
                fresh.push((key, buf.slice(..len)));
            }
        }
        if let Some((cache, _)) = &self.cache {
            cache.put_many(fresh);
        }
        Ok(out)
    }

    /// The series with label `name` set to `value`.
    pub async fn postings(&self, name: &str, value: &str) -> Result<Vec<SeriesRef>, TsdbError> {
        let Some(range) = self.header.postings_range(name, value) else {
            return Ok(Vec::new());
        };
        let mut lists = self.read_postings(&[range]).await?;
        Ok(lists.remove(&range.0).unwrap_or_default())
    }

    /// The series that all matchers select, sorted (which is label order).
    /// No matchers select every series.
    pub async fn postings_for_matchers(
        &self,
        matchers: &[Matcher],
    ) -> Result<Vec<SeriesRef>, TsdbError> {
        let Some(plan) = postings::plan(self.file(), &self.header, matchers)? else {
            return Ok(Vec::new());
        };
        let lists = self.read_postings(&plan.ranges()).await?;
        Ok(plan.evaluate(&lists))
    }

    fn series_bounds(&self) -> (u64, u64) {
        let toc = self.header.toc();
        if toc.series == 0 {
            return (0, 0);
        }
        (
            toc.series,
            toc.section_end(toc.series, self.header.index_len()),
        )
    }

    /// Reads the entries of the given series (any order; answers in the same
    /// order), coalescing reads of nearby entries.
    pub async fn series(&self, refs: &[SeriesRef]) -> Result<Vec<SeriesEntry>, TsdbError> {
        let (start, end) = self.series_bounds();
        let mut offsets: Vec<u64> = refs.iter().map(|&r| u64::from(r) * 16).collect();
        for &o in &offsets {
            if o < start || o >= end {
                return Err(TsdbError::OutOfRange {
                    file: self.file().to_string(),
                    what: "series",
                    reference: o / 16,
                });
            }
        }
        offsets.sort_unstable();
        offsets.dedup();
        // Entries in the cache need no read.
        let cached: Vec<Option<Bytes>> = match &self.cache {
            Some((cache, block)) => {
                let keys: Vec<CacheKey> = offsets
                    .iter()
                    .map(|&o| CacheKey::Series {
                        block: *block,
                        series: o / 16,
                    })
                    .collect();
                cache.get_many(&keys)
            }
            None => vec![None; offsets.len()],
        };
        let to_read: Vec<u64> = offsets
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(&o, _)| o)
            .collect();
        let ranges: Vec<(u64, u64)> = to_read
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let next = to_read.get(i + 1).copied().unwrap_or(end);
                (o, (o + SERIES_ESTIMATE).min(next).min(end))
            })
            .collect();
        let fetched = Fetched::read(self.src.as_ref(), &coalesce(&ranges, MAX_READ_GAP)).await?;
        let mut parsed = Vec::with_capacity(offsets.len());
        let mut fresh = Vec::new();
        for (&o, hit) in offsets.iter().zip(cached) {
            let series_ref = (o / 16) as SeriesRef;
            let buf = match hit {
                Some(buf) => buf,
                None => {
                    let have = fetched.from(o).unwrap_or_default();
                    let buf = match series_entry_len(&have) {
                        Some(Ok(n)) if n <= have.len() as u64 => have,
                        // parse_series reports the bad length.
                        Some(Err(())) => have,
                        _ => self.read_series_entry(o, end).await?,
                    };
                    if let (Some((_, block)), Some(Ok(n))) = (&self.cache, series_entry_len(&buf)) {
                        if let Ok(n) = usize::try_from(n) {
                            if n <= buf.len() {
                                let key = CacheKey::Series {
                                    block: *block,
                                    series: o / 16,
                                };
                                fresh.push((key, buf.slice(..n)));
                            }
                        }
                    }
                    buf
                }
            };
            parsed.push(parse_series(
                self.file(),
                self.header.symbols(),
                series_ref,
                &buf,
            )?);
        }
        if let Some((cache, _)) = &self.cache {
            cache.put_many(fresh);
        }
        // `parsed` follows the sorted, deduplicated references: when the
        // request was already like that (postings are), it is the answer.
        if parsed.len() == refs.len() && refs.windows(2).all(|w| w[0] < w[1]) {
            return Ok(parsed);
        }
        refs.iter()
            .map(|r| {
                parsed
                    .binary_search_by_key(r, |e| e.series_ref)
                    .map(|i| parsed[i].clone())
                    .map_err(|_| TsdbError::OutOfRange {
                        file: self.file().to_string(),
                        what: "series",
                        reference: u64::from(*r),
                    })
            })
            .collect()
    }

    /// Reads one series entry at `offset` whose length was not known in
    /// advance; `end` bounds the series section.
    async fn read_series_entry(&self, offset: u64, end: u64) -> Result<Bytes, TsdbError> {
        let avail = end - offset;
        let head = self.src.read_at(offset, avail.min(10) as usize).await?;
        let need = match series_entry_len(&head) {
            Some(Ok(n)) => n,
            _ => return Ok(head),
        };
        if need > avail {
            return Err(TsdbError::Truncated {
                file: self.file().to_string(),
                what: format!("series entry {}", offset / 16),
                offset,
                needed: need,
                available: avail,
            });
        }
        if need <= head.len() as u64 {
            Ok(head)
        } else {
            self.src.read_at(offset, need as usize).await
        }
    }

    /// Reads the whole index and checks every section: the TOC, symbols,
    /// every series entry, label indices, the label offset table, every
    /// postings list and the postings offset table, and that the header
    /// agrees with what the index holds.
    pub async fn verify(&self) -> Result<IndexSummary, TsdbError> {
        let len = usize::try_from(self.src.len()).map_err(|_| {
            TsdbError::malformed(self.file(), "index", "too large to verify in memory")
        })?;
        let all = self.src.read_at(0, len).await?;
        verify_index(self.file(), &all, &self.header)
    }
}

fn align(offset: u64, to: u64) -> u64 {
    offset.div_ceil(to) * to
}

/// Walks every section of an index held in memory.
pub(crate) fn verify_index(
    file: &str,
    all: &Bytes,
    header: &IndexHeader,
) -> Result<IndexSummary, TsdbError> {
    let index_len = all.len() as u64;
    let fresh = IndexHeader::from_bytes(file, all)?;
    if &fresh != header {
        return Err(TsdbError::malformed(
            file,
            "index header",
            "does not match the index it claims to describe",
        ));
    }
    let toc = *header.toc();
    let at = |o: u64| all.get(o as usize..).unwrap_or_default();
    let span = |start: u64, end: u64| all.get(start as usize..end as usize).unwrap_or_default();
    let mut summary = IndexSummary {
        symbols: header.symbols().len(),
        ..IndexSummary::default()
    };

    // Series, in file order; padding between entries is zeros.
    let mut refs = Vec::new();
    if toc.series != 0 {
        let end = toc.section_end(toc.series, index_len);
        let mut pos = align(toc.series, 16);
        while pos < end {
            if at(pos).first() == Some(&0) {
                // Only padding may follow the last entry.
                if span(pos, end).iter().any(|&b| b != 0) {
                    return Err(TsdbError::malformed(
                        file,
                        "series section",
                        format!("empty entry at offset {pos}"),
                    ));
                }
                break;
            }
            let series_ref = SeriesRef::try_from(pos / 16).map_err(|_| TsdbError::OutOfRange {
                file: file.to_string(),
                what: "series",
                reference: pos / 16,
            })?;
            let buf = span(pos, end);
            let entry = parse_series(file, header.symbols(), series_ref, buf)?;
            summary.chunks += entry.chunks.len();
            refs.push(series_ref);
            let n = match series_entry_len(buf) {
                Some(Ok(n)) => n,
                _ => end - pos,
            };
            pos = align(pos + n, 16);
        }
    }
    summary.series = refs.len();

    // Label indices, through the label offset table.
    if toc.label_offset_table != 0 {
        let table =
            parse_label_offset_table(file, at(toc.label_offset_table), toc.label_offset_table)?;
        for (_, offset) in table {
            if offset < INDEX_HEADER_LEN || offset >= index_len {
                return Err(TsdbError::OutOfRange {
                    file: file.to_string(),
                    what: "label index",
                    reference: offset,
                });
            }
            let li = parse_label_index(file, at(offset), offset)?;
            if let Some(&bad) = li
                .values
                .iter()
                .find(|&&v| header.symbols().get(v).is_none())
            {
                return Err(TsdbError::OutOfRange {
                    file: file.to_string(),
                    what: "symbol",
                    reference: u64::from(bad),
                });
            }
            summary.label_indices += 1;
        }
    }

    // Every postings list; each reference must be a series entry.
    let mut ranges = header.all_postings_ranges();
    ranges.sort_unstable();
    for (start, end) in ranges {
        let list = parse_postings(file, span(start, end), start)?;
        if let Some(&bad) = list.iter().find(|r| refs.binary_search(r).is_err()) {
            return Err(TsdbError::OutOfRange {
                file: file.to_string(),
                what: "series in postings",
                reference: u64::from(bad),
            });
        }
        summary.postings_lists += 1;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::testutil::{series, IndexBuilder};

    #[test]
    fn toc_round_trip_and_crc() {
        let toc = Toc {
            symbols: 5,
            series: 64,
            label_indices: 100,
            label_offset_table: 200,
            postings: 150,
            postings_offset_table: 250,
        };
        let bytes = toc.encode();
        assert_eq!(Toc::parse("i", &bytes, 300 + TOC_LEN).unwrap(), toc);
        let mut bad = bytes;
        bad[3] ^= 1;
        let err = Toc::parse("i", &bad, 300 + TOC_LEN).unwrap_err();
        assert!(
            matches!(
                err,
                TsdbError::ChecksumMismatch {
                    section: Section::Toc,
                    ..
                }
            ),
            "{err}"
        );
        // A reference past the TOC itself.
        assert!(matches!(
            Toc::parse("i", &bytes, 200).unwrap_err(),
            TsdbError::OutOfRange { .. }
        ));
        assert!(Toc::parse("i", &bytes[..40], 300).is_err());
    }

    #[test]
    fn section_ends() {
        let toc = Toc {
            symbols: 5,
            series: 64,
            label_indices: 100,
            label_offset_table: 200,
            postings: 150,
            postings_offset_table: 250,
        };
        let len = 300 + TOC_LEN;
        assert_eq!(toc.section_end(5, len), 64);
        assert_eq!(toc.section_end(150, len), 200);
        assert_eq!(toc.section_end(250, len), 300);
    }

    #[test]
    fn header_magic_and_version() {
        check_index_header("i", &[0xba, 0xaa, 0xd7, 0x00, 2]).unwrap();
        assert!(matches!(
            check_index_header("i", &[0xba, 0xaa, 0xd7, 0x01, 2]).unwrap_err(),
            TsdbError::BadMagic { .. }
        ));
        assert!(matches!(
            check_index_header("i", &[0xba, 0xaa, 0xd7, 0x00, 1]).unwrap_err(),
            TsdbError::UnsupportedVersion { found: 1, .. }
        ));
        assert!(matches!(
            check_index_header("i", &[0xba, 0xaa]).unwrap_err(),
            TsdbError::Truncated { .. }
        ));
    }

    fn symbol_section(symbols: &[&str]) -> Vec<u8> {
        let mut body = Vec::new();
        super::super::encoding::put_be_u32(&mut body, symbols.len() as u32);
        for s in symbols {
            super::super::encoding::put_str(&mut body, s);
        }
        let mut out = Vec::new();
        super::super::encoding::put_be_u32(&mut out, body.len() as u32);
        out.extend_from_slice(&body);
        super::super::encoding::put_be_u32(&mut out, crc32c::crc32c(&body));
        out
    }

    #[test]
    fn symbols_parse_and_lookup() {
        let buf = symbol_section(&["", "a", "b", "héllo", "zz"]);
        let s = Symbols::parse_section("i", &buf, 5).unwrap();
        assert_eq!(s.len(), 5);
        assert!(s.is_sorted());
        assert_eq!(s.get(0), Some(""));
        assert_eq!(s.get(3), Some("héllo"));
        assert_eq!(s.get(5), None);
        assert_eq!(s.find("b"), Some(2));
        assert_eq!(s.find(""), Some(0));
        assert_eq!(s.find("c"), None);
        assert_eq!(s.iter().collect::<Vec<_>>(), ["", "a", "b", "héllo", "zz"]);
        let mut again = Vec::new();
        s.encode_body(&mut again);
        assert_eq!(&again[..], &buf[4..buf.len() - 4]);

        let unsorted = symbol_section(&["b", "a"]);
        let s = Symbols::parse_section("i", &unsorted, 5).unwrap();
        assert!(!s.is_sorted());
        assert_eq!(s.find("a"), None);
    }

    #[test]
    fn symbols_errors() {
        let mut buf = symbol_section(&["a", "b"]);
        let last = buf.len() - 6;
        buf[last] ^= 0x20;
        assert!(matches!(
            Symbols::parse_section("i", &buf, 5).unwrap_err(),
            TsdbError::ChecksumMismatch {
                section: Section::SymbolTable,
                ..
            }
        ));
        let buf = symbol_section(&["a", "b"]);
        assert!(matches!(
            Symbols::parse_section("i", &buf[..buf.len() - 1], 5).unwrap_err(),
            TsdbError::Truncated { .. }
        ));
        // A count larger than the strings present.
        let mut body = vec![0, 0, 0, 3, 1, b'a'];
        assert!(Symbols::parse_body("i", &body, 9).is_err());
        body[3] = 200;
        assert!(Symbols::parse_body("i", &body, 9).is_err());
        // Bytes after the last symbol.
        assert!(Symbols::parse_body("i", &[0, 0, 0, 1, 1, b'a', 7], 9).is_err());
    }

    #[test]
    fn postings_parse() {
        let b = IndexBuilder::default();
        let list = b.postings_section(&[1, 5, 9]);
        assert_eq!(parse_postings("i", &list, 0).unwrap(), vec![1, 5, 9]);
        assert!(parse_postings("i", &b.postings_section(&[]), 0)
            .unwrap()
            .is_empty());

        let mut bad = list.clone();
        bad[10] ^= 1;
        assert!(matches!(
            parse_postings("i", &bad, 7).unwrap_err(),
            TsdbError::ChecksumMismatch {
                section: Section::Postings { offset: 7 },
                ..
            }
        ));
        let unsorted = b.postings_section(&[5, 1]);
        assert!(parse_postings("i", &unsorted, 0).is_err());
        let dup = b.postings_section(&[5, 5]);
        assert!(parse_postings("i", &dup, 0).is_err());
        // A count that disagrees with the length.
        let mut body = vec![0, 0, 0, 2, 0, 0, 0, 1];
        let mut sec = Vec::new();
        super::super::encoding::put_be_u32(&mut sec, body.len() as u32);
        sec.append(&mut body.clone());
        super::super::encoding::put_be_u32(&mut sec, crc32c::crc32c(&body));
        assert!(matches!(
            parse_postings("i", &sec, 0).unwrap_err(),
            TsdbError::Malformed { .. }
        ));
        body.clear();
        assert!(parse_postings("i", &list[..list.len() - 2], 0).is_err());
    }

    #[test]
    fn series_entry_parse() {
        let idx = IndexBuilder::default().build(&[series(
            &[("__name__", "up"), ("job", "a")],
            &[(1000, 2000, 8), (2001, 5000, 300), (6000, 6000, 200)],
        )]);
        let header = IndexHeader::from_bytes("i", &idx.bytes).unwrap();
        let r = idx.refs[0];
        let entry = parse_series("i", header.symbols(), r, &idx.bytes[r as usize * 16..]).unwrap();
        assert_eq!(
            entry.labels,
            Labels::from_pairs([("__name__", "up"), ("job", "a")]).unwrap()
        );
        assert_eq!(
            entry.chunks,
            vec![
                ChunkMeta {
                    chunk_ref: 8,
                    min_time: 1000,
                    max_time: 2000
                },
                ChunkMeta {
                    chunk_ref: 300,
                    min_time: 2001,
                    max_time: 5000
                },
                // References may go backwards: the delta is signed.
                ChunkMeta {
                    chunk_ref: 200,
                    min_time: 6000,
                    max_time: 6000
                },
            ]
        );
    }

    #[test]
    fn series_entry_errors() {
        let idx = IndexBuilder::default().build(&[series(&[("a", "b")], &[(-5, 5, 8)])]);
        let header = IndexHeader::from_bytes("i", &idx.bytes).unwrap();
        let r = idx.refs[0];
        let at = r as usize * 16;
        let entry = parse_series("i", header.symbols(), r, &idx.bytes[at..]).unwrap();
        assert_eq!(entry.chunks[0].min_time, -5);

        let mut bad = idx.bytes[at..].to_vec();
        bad[2] ^= 0x40;
        let err = parse_series("i", header.symbols(), r, &bad).unwrap_err();
        assert!(
            matches!(
                err,
                TsdbError::ChecksumMismatch {
                    section: Section::Series { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(parse_series("i", header.symbols(), r, &idx.bytes[at..at + 3]).is_err());
        assert!(parse_series("i", header.symbols(), r, &[]).is_err());

        // A symbol reference past the table, with a valid CRC.
        let body = [1u8, 0, 99, 0];
        let mut entry = vec![body.len() as u8];
        entry.extend_from_slice(&body);
        entry.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        let err = parse_series("i", header.symbols(), r, &entry).unwrap_err();
        assert!(
            matches!(err, TsdbError::OutOfRange { what: "symbol", .. }),
            "{err}"
        );
        // A time delta that overflows.
        let mut body = vec![0u8, 1];
        super::super::encoding::put_varint(&mut body, i64::MAX - 1);
        super::super::encoding::put_uvarint(&mut body, 10);
        super::super::encoding::put_uvarint(&mut body, 8);
        let mut entry = vec![body.len() as u8];
        entry.extend_from_slice(&body);
        entry.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        let err = parse_series("i", header.symbols(), r, &entry).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
    }

    #[tokio::test]
    async fn series_in_any_order() {
        use crate::tsdb::source::MemFile;
        let input: Vec<_> = ["c", "a", "b"]
            .iter()
            .map(|v| series(&[("x", v)], &[(0, 1, 8)]))
            .collect();
        let idx = IndexBuilder::default().build(&input);
        let reader = IndexReader::open(Arc::new(MemFile::new("i", idx.bytes.clone())))
            .await
            .unwrap();
        // Unsorted, with a duplicate.
        let refs = [idx.refs[0], idx.refs[1], idx.refs[0]];
        let got = reader.series(&refs).await.unwrap();
        let values: Vec<_> = got.iter().map(|e| e.labels.get("x").unwrap()).collect();
        assert_eq!(values, ["c", "a", "c"]);
        assert!(reader.series(&[]).await.unwrap().is_empty());
        let err = reader.series(&[0]).await.unwrap_err();
        assert!(matches!(err, TsdbError::OutOfRange { .. }), "{err}");
        let err = reader.series(&[u32::MAX]).await.unwrap_err();
        assert!(matches!(err, TsdbError::OutOfRange { .. }), "{err}");
    }

    #[tokio::test]
    async fn empty_and_sectionless_indexes() {
        use crate::tsdb::source::MemFile;
        // No series at all.
        let idx = IndexBuilder::default().build(&[]);
        let reader = IndexReader::open(Arc::new(MemFile::new("i", idx.bytes.clone())))
            .await
            .unwrap();
        assert!(reader.label_names().is_empty());
        assert!(reader.postings_for_matchers(&[]).await.unwrap().is_empty());
        assert_eq!(reader.verify().await.unwrap().series, 0);

        // Only a file header and a TOC whose sections are all absent.
        let mut bytes = vec![0xba, 0xaa, 0xd7, 0x00, 2];
        bytes.extend_from_slice(&Toc::default().encode());
        let reader = IndexReader::open(Arc::new(MemFile::new("i", bytes)))
            .await
            .unwrap();
        assert!(reader.header().symbols().is_empty());
        assert!(reader.postings_for_matchers(&[]).await.unwrap().is_empty());
        let m = Matcher::new(crate::model::MatchOp::NotEqual, "a", "b").unwrap();
        assert!(reader.postings_for_matchers(&[m]).await.unwrap().is_empty());
        assert!(reader.series(&[1]).await.is_err());
        assert_eq!(reader.verify().await.unwrap(), IndexSummary::default());
    }

    #[test]
    fn label_index_and_offset_table() {
        let idx = IndexBuilder::default().build(&[
            series(&[("a", "1"), ("b", "x")], &[(0, 1, 8)]),
            series(&[("a", "2")], &[(0, 1, 30)]),
        ]);
        let header = IndexHeader::from_bytes("i", &idx.bytes).unwrap();
        let toc = header.toc();
        let table = parse_label_offset_table(
            "i",
            &idx.bytes[toc.label_offset_table as usize..],
            toc.label_offset_table,
        )
        .unwrap();
        assert_eq!(
            table.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let li = parse_label_index("i", &idx.bytes[table[0].1 as usize..], table[0].1).unwrap();
        assert_eq!(li.names, 1);
        let values: Vec<_> = li
            .values
            .iter()
            .map(|&v| header.symbols().get(v).unwrap())
            .collect();
        assert_eq!(values, ["1", "2"]);
        let mut bad = idx.bytes.to_vec();
        bad[table[0].1 as usize + 9] ^= 1;
        assert!(matches!(
            parse_label_index("i", &bad[table[0].1 as usize..], table[0].1).unwrap_err(),
            TsdbError::ChecksumMismatch {
                section: Section::LabelIndex { .. },
                ..
            }
        ));
    }
}
