//! The symbol table: every string of the index, by offset.

use super::*;
use crate::tsdb::encoding::Dec;
use crate::tsdb::error::{Section, TsdbError};

/// The symbol table: every label name and value of the index, sorted, and
/// referenced by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    /// All symbols, concatenated.
    data: String,
    /// Where each symbol ends in `data`.
    ends: Vec<u32>,
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
        let mut prev_start = 0usize;
        for i in 0..count {
            let s = d.str_uvarint()?;
            // Prometheus writes them strictly ascending and finds them by
            // binary search; a table out of order is damaged, and would map
            // label strings wrongly.
            if i > 0 && data.get(prev_start..).is_some_and(|prev| prev >= s) {
                return Err(d.malformed(format!("symbol {i} ({s:?}) is out of order")));
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
        Ok(Symbols { data, ends })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
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

    /// The position of `s`.
    pub fn find(&self, s: &str) -> Option<u32> {
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
        crate::tsdb::encoding::put_be_u32(out, self.ends.len() as u32);
        for s in self.iter() {
            crate::tsdb::encoding::put_str(out, s);
        }
    }

    /// Bytes held in memory.
    pub fn memory(&self) -> usize {
        self.data.len() + self.ends.len() * 4
    }
}
