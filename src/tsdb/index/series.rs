//! Series entries: labels as symbol references and chunk metadata.

use super::*;
use crate::model::{Label, Labels};
use crate::tsdb::encoding::{uvarint, Dec, Varint};
use crate::tsdb::error::{check_crc, Section, TsdbError};

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
