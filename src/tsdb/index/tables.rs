//! Postings lists, the postings and label offset tables, label indices.

use super::*;
use crate::tsdb::encoding::Dec;
use crate::tsdb::error::{Section, TsdbError};

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
