//! `IndexReader`: lookups by range reads guided by an index header, and
//! the full verification of an index.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::model::Matcher;
use crate::tsdb::cache::{CacheKey, IndexCache};
use crate::tsdb::error::TsdbError;
use crate::tsdb::header::IndexHeader;
use crate::tsdb::postings;
use crate::tsdb::source::{coalesce, read_sized, Fetched, ReadAt, MAX_READ_GAP};

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
        let fetched =
            Fetched::read_records(self.src.as_ref(), &to_read, SERIES_ESTIMATE, end).await?;
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
        read_sized(
            self.src.as_ref(),
            offset,
            end - offset,
            series_entry_len,
            || format!("series entry {}", offset / 16),
        )
        .await
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
