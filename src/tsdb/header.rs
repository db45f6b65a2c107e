//! The index header: a compact local summary of a block index, holding what
//! every query needs before it can read anything else: the TOC, the whole
//! symbol table and the whole postings offset table (label name and value
//! to the byte range of its postings list). It is built once from the index
//! with four range reads, saved to a local file, and loaded again on restart
//! without touching the index.
//!
//! File format (integers big-endian, varints as in the index):
//!
//! ```text
//! magic "SKIH" <4b> | version (1) <1b> | index length <8b> | index TOC CRC <4b>
//! TOC: six section offsets <8b each>
//! symbol table body length <4b> | body (count <4b>, length-prefixed strings)
//! #extra strings <uvarint> | strings (values absent from the symbol table)
//! #label names <uvarint>
//!   per name: name <uvarint len + bytes> | #values <uvarint>
//!     per value: string id <uvarint> | postings offset delta <varint>
//! CRC32C of everything before <4b>
//! ```
//!
//! A string id below the symbol count is a symbol; above, an extra string.
//! Postings offsets are deltas from the previous entry's offset.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;

use super::encoding::{put_be_u32, put_be_u64, put_str, put_uvarint, put_varint, Dec};
use super::error::{check_crc, Section, TsdbError};
use super::index::{
    check_index_header, parse_postings_offset_table, Symbols, Toc, INDEX_HEADER_LEN, TOC_LEN,
};
use super::source::ReadAt;

pub const HEADER_MAGIC: u32 = 0x534B_4948;
pub const HEADER_VERSION: u8 = 1;

/// The postings list of one label value: its string id and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ValuePostings {
    value: u32,
    start: u64,
    end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelPostings {
    name: String,
    /// Sorted by value.
    values: Vec<ValuePostings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHeader {
    index_len: u64,
    toc_crc: u32,
    toc: Toc,
    symbols: Symbols,
    /// Label values that are not in the symbol table (the empty value of
    /// the all-postings entry can be one).
    extra: Vec<String>,
    /// Sorted by name.
    labels: Vec<LabelPostings>,
    /// End of the postings section.
    postings_end: u64,
}

/// Collects postings offset table entries, checking their order.
struct Collector<'a> {
    file: &'a str,
    symbols: &'a Symbols,
    extra: Vec<String>,
    extra_ids: HashMap<String, u32>,
    labels: Vec<LabelPostings>,
    postings: (u64, u64),
}

impl Collector<'_> {
    fn string_id(&mut self, s: &str) -> Result<u32, TsdbError> {
        if let Some(id) = self.symbols.find(s) {
            return Ok(id);
        }
        // Every label string is a symbol; only the all-postings entry's
        // empty name and value may be missing from the table. Prometheus
        // refuses a block where any other is.
        if !s.is_empty() {
            return Err(TsdbError::malformed(
                self.file,
                "postings offset table",
                format!("{s:?} is not in the symbol table"),
            ));
        }
        if let Some(&id) = self.extra_ids.get(s) {
            return Ok(id);
        }
        let id = (self.symbols.len() + self.extra.len()) as u32;
        self.extra.push(s.to_string());
        self.extra_ids.insert(s.to_string(), id);
        Ok(id)
    }

    fn add(&mut self, name: &str, value: &str, start: u64) -> Result<(), TsdbError> {
        if start < self.postings.0 || start >= self.postings.1 {
            return Err(TsdbError::OutOfRange {
                file: self.file.to_string(),
                what: "postings list",
                reference: start,
            });
        }
        let unsorted = || {
            TsdbError::malformed(
                self.file,
                "postings offset table",
                format!("entry {name:?}={value:?} is out of order"),
            )
        };
        let new_name = match self.labels.last() {
            Some(last) if last.name.as_str() == name => false,
            Some(last) if last.name.as_str() > name => return Err(unsorted()),
            _ => true,
        };
        if new_name {
            self.labels.push(LabelPostings {
                name: name.to_string(),
                values: Vec::new(),
            });
        } else if let Some(prev) = self.labels.last().and_then(|l| l.values.last()) {
            let prev = string_of(self.symbols, &self.extra, prev.value);
            if prev >= value {
                return Err(unsorted());
            }
        }
        if new_name {
            self.string_id(name)?;
        }
        let value = self.string_id(value)?;
        if let Some(label) = self.labels.last_mut() {
            label.values.push(ValuePostings {
                value,
                start,
                end: 0,
            });
        }
        Ok(())
    }
}

fn string_of<'a>(symbols: &'a Symbols, extra: &'a [String], id: u32) -> &'a str {
    match symbols.get(id) {
        Some(s) => s,
        None => extra
            .get((id as usize).wrapping_sub(symbols.len()))
            .map_or("", String::as_str),
    }
}

/// Sets each postings list's end to the next list's start, or the end of
/// the postings section for the last one.
fn set_ends(labels: &mut [LabelPostings], postings_end: u64) {
    let mut starts: Vec<u64> = labels
        .iter()
        .flat_map(|l| l.values.iter().map(|v| v.start))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    for v in labels.iter_mut().flat_map(|l| l.values.iter_mut()) {
        let i = starts.partition_point(|&s| s <= v.start);
        v.end = starts.get(i).copied().unwrap_or(postings_end);
    }
}

/// An index shorter than its header and TOC together is cut short.
fn check_index_len(file: &str, len: u64) -> Result<(), TsdbError> {
    if len < INDEX_HEADER_LEN + TOC_LEN {
        return Err(TsdbError::Truncated {
            file: file.to_string(),
            what: "index".to_string(),
            offset: 0,
            needed: INDEX_HEADER_LEN + TOC_LEN,
            available: len,
        });
    }
    Ok(())
}

fn postings_bounds(toc: &Toc, index_len: u64) -> (u64, u64) {
    if toc.postings == 0 {
        (0, 0)
    } else {
        (toc.postings, toc.section_end(toc.postings, index_len))
    }
}

impl IndexHeader {
    /// The header of parsed parts; each postings list's end is set here.
    fn from_parts(
        index_len: u64,
        toc_crc: u32,
        toc: Toc,
        symbols: Symbols,
        extra: Vec<String>,
        mut labels: Vec<LabelPostings>,
        postings_end: u64,
    ) -> Self {
        set_ends(&mut labels, postings_end);
        Self {
            index_len,
            toc_crc,
            toc,
            symbols,
            extra,
            labels,
            postings_end,
        }
    }

    /// Builds the header from an index with four range reads: the file
    /// header, the TOC, the symbol table and the postings offset table.
    pub async fn build(src: &dyn ReadAt) -> Result<Self, TsdbError> {
        let file = src.name();
        let len = src.len();
        check_index_len(file, len)?;
        let head = src.read_at(0, INDEX_HEADER_LEN as usize).await?;
        check_index_header(file, &head)?;
        let toc_bytes = src.read_at(len - TOC_LEN, TOC_LEN as usize).await?;
        let toc = Toc::parse(file, &toc_bytes, len)?;
        let region = |start: u64| async move {
            if start == 0 {
                return Ok(Bytes::new());
            }
            let end = toc.section_end(start, len);
            src.read_at(start, (end - start) as usize).await
        };
        let symbols = region(toc.symbols).await?;
        let table = region(toc.postings_offset_table).await?;
        Self::assemble(file, len, &head, &toc_bytes, &symbols, &table)
    }

    /// Builds the header from a whole index in memory.
    pub fn from_bytes(file: &str, index: &[u8]) -> Result<Self, TsdbError> {
        let len = index.len() as u64;
        check_index_len(file, len)?;
        let toc_bytes = &index[(len - TOC_LEN) as usize..];
        let toc = Toc::parse(file, toc_bytes, len)?;
        let region = |start: u64| {
            if start == 0 {
                return &[][..];
            }
            let end = toc.section_end(start, len);
            index.get(start as usize..end as usize).unwrap_or_default()
        };
        Self::assemble(
            file,
            len,
            &index[..INDEX_HEADER_LEN as usize],
            toc_bytes,
            region(toc.symbols),
            region(toc.postings_offset_table),
        )
    }

    fn assemble(
        file: &str,
        index_len: u64,
        head: &[u8],
        toc_bytes: &[u8],
        symbols: &[u8],
        table: &[u8],
    ) -> Result<Self, TsdbError> {
        check_index_header(file, head)?;
        let toc = Toc::parse(file, toc_bytes, index_len)?;
        let toc_crc = toc_bytes
            .get(48..52)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let symbols = if toc.symbols == 0 {
            Symbols::default()
        } else {
            Symbols::parse_section(file, symbols, toc.symbols)?
        };
        let postings = postings_bounds(&toc, index_len);
        let mut c = Collector {
            file,
            symbols: &symbols,
            extra: Vec::new(),
            extra_ids: HashMap::new(),
            labels: Vec::new(),
            postings,
        };
        if toc.postings_offset_table != 0 {
            parse_postings_offset_table(file, table, toc.postings_offset_table, |n, v, o| {
                c.add(n, v, o)
            })?;
        }
        let (extra, labels) = (c.extra, c.labels);
        Ok(Self::from_parts(
            index_len, toc_crc, toc, symbols, extra, labels, postings.1,
        ))
    }

    /// Size of the index the header describes.
    pub fn index_len(&self) -> u64 {
        self.index_len
    }

    pub fn toc(&self) -> &Toc {
        &self.toc
    }

    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    fn string(&self, id: u32) -> &str {
        string_of(&self.symbols, &self.extra, id)
    }

    fn label(&self, name: &str) -> Option<&LabelPostings> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.labels[i])
    }

    /// Label names, sorted (without the empty name of the all-postings list).
    pub fn label_names(&self) -> Vec<String> {
        self.labels
            .iter()
            .filter(|l| !l.name.is_empty())
            .map(|l| l.name.clone())
            .collect()
    }

    /// Values of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        if name.is_empty() {
            return Vec::new();
        }
        self.label(name)
            .map(|l| {
                l.values
                    .iter()
                    .map(|v| self.string(v.value).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each value of label `name` with the byte range of its postings list.
    pub fn label_postings(&self, name: &str) -> impl Iterator<Item = (&str, (u64, u64))> + '_ {
        self.label(name)
            .into_iter()
            .flat_map(|l| l.values.iter())
            .map(|v| (self.string(v.value), (v.start, v.end)))
    }

    /// The byte range of the postings list of `name="value"`.
    pub fn postings_range(&self, name: &str, value: &str) -> Option<(u64, u64)> {
        let label = self.label(name)?;
        let i = label
            .values
            .binary_search_by(|v| self.string(v.value).cmp(value))
            .ok()?;
        let v = &label.values[i];
        Some((v.start, v.end))
    }

    /// The range of the list of every series (the `""=""` entry).
    pub fn all_postings_range(&self) -> Option<(u64, u64)> {
        self.postings_range("", "")
    }

    pub(crate) fn all_postings_ranges(&self) -> Vec<(u64, u64)> {
        self.labels
            .iter()
            .flat_map(|l| l.values.iter().map(|v| (v.start, v.end)))
            .collect()
    }

    /// Number of postings lists.
    pub fn postings_count(&self) -> usize {
        self.labels.iter().map(|l| l.values.len()).sum()
    }

    /// Approximate bytes held in memory.
    pub fn memory(&self) -> usize {
        self.symbols.memory()
            + self.extra.iter().map(|s| s.len() + 24).sum::<usize>()
            + self
                .labels
                .iter()
                .map(|l| l.name.len() + 48 + l.values.len() * std::mem::size_of::<ValuePostings>())
                .sum::<usize>()
    }

    /// The header in its file format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.symbols.memory() + self.postings_count() * 4 + 128);
        put_be_u32(&mut out, HEADER_MAGIC);
        out.push(HEADER_VERSION);
        put_be_u64(&mut out, self.index_len);
        put_be_u32(&mut out, self.toc_crc);
        for r in [
            self.toc.symbols,
            self.toc.series,
            self.toc.label_indices,
            self.toc.label_offset_table,
            self.toc.postings,
            self.toc.postings_offset_table,
        ] {
            put_be_u64(&mut out, r);
        }
        let mut body = Vec::with_capacity(self.symbols.memory());
        self.symbols.encode_body(&mut body);
        put_be_u32(&mut out, body.len() as u32);
        out.extend_from_slice(&body);
        put_uvarint(&mut out, self.extra.len() as u64);
        for s in &self.extra {
            put_str(&mut out, s);
        }
        put_uvarint(&mut out, self.labels.len() as u64);
        let mut prev = 0u64;
        for l in &self.labels {
            put_str(&mut out, &l.name);
            put_uvarint(&mut out, l.values.len() as u64);
            for v in &l.values {
                put_uvarint(&mut out, u64::from(v.value));
                put_varint(&mut out, v.start.wrapping_sub(prev) as i64);
                prev = v.start;
            }
        }
        let crc = crc32c::crc32c(&out);
        put_be_u32(&mut out, crc);
        out
    }

    /// Parses a header file; `file` names it in errors.
    pub fn decode(file: &str, buf: &[u8]) -> Result<Self, TsdbError> {
        let what = "index header";
        let mut d = Dec::new(buf, 0, file, what);
        d.magic_and_version(HEADER_MAGIC, HEADER_VERSION, "index header")?;
        if buf.len() < 9 {
            return Err(d.truncated(4));
        }
        let (content, crc) = buf.split_at(buf.len() - 4);
        let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        check_crc(file, Section::IndexHeader, content, stored)?;

        let mut d = Dec::new(content, 0, file, what);
        d.skip(5)?;
        let index_len = d.be_u64()?;
        let toc_crc = d.be_u32()?;
        let toc = Toc::decode(&mut d)?;
        // The TOC must be what the index holds; re-encoding gives its CRC.
        let encoded = toc.encode();
        if encoded[48..] != toc_crc.to_be_bytes() {
            return Err(d.malformed("TOC does not match its recorded checksum"));
        }
        let body_len = d.be_u32()? as usize;
        let at = d.offset();
        let symbols = Symbols::parse_body(file, d.bytes(body_len)?, at)?;
        let nextra = d.uvarint_len()?;
        let mut extra = Vec::with_capacity(nextra);
        for _ in 0..nextra {
            extra.push(d.str_uvarint()?.to_string());
        }
        let nstrings = symbols.len() as u64 + extra.len() as u64;
        let postings = postings_bounds(&toc, index_len);
        let nlabels = d.uvarint_len()?;
        let mut labels: Vec<LabelPostings> = Vec::with_capacity(nlabels);
        let mut prev = 0u64;
        for _ in 0..nlabels {
            let name = d.str_uvarint()?.to_string();
            if labels.last().is_some_and(|l| l.name >= name) {
                return Err(d.malformed("label names out of order"));
            }
            let nvalues = d.uvarint_len()?;
            let mut values: Vec<ValuePostings> = Vec::with_capacity(nvalues);
            for _ in 0..nvalues {
                let id = d.uvarint()?;
                if id >= nstrings {
                    return Err(d.malformed(format!("string id {id} out of range")));
                }
                let start = prev.wrapping_add(d.varint()? as u64);
                if start < postings.0 || start >= postings.1 {
                    return Err(d.malformed(format!("postings offset {start} out of range")));
                }
                prev = start;
                let value = id as u32;
                if let Some(last) = values.last() {
                    if string_of(&symbols, &extra, last.value) >= string_of(&symbols, &extra, value)
                    {
                        return Err(d.malformed(format!("values of {name:?} out of order")));
                    }
                }
                values.push(ValuePostings {
                    value,
                    start,
                    end: 0,
                });
            }
            labels.push(LabelPostings { name, values });
        }
        if !d.is_empty() {
            return Err(d.malformed(format!("{} bytes after the last entry", d.remaining())));
        }
        Ok(Self::from_parts(
            index_len, toc_crc, toc, symbols, extra, labels, postings.1,
        ))
    }

    /// Writes the header to `path` (through a temporary file and a rename,
    /// so a crash never leaves half a header under the final name).
    pub async fn save(&self, path: &Path) -> Result<(), TsdbError> {
        let data = self.encode();
        let path = path.to_path_buf();
        let name = path.display().to_string();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &data)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| TsdbError::io(&name, std::io::Error::other(e)))?
        .map_err(|e| TsdbError::io(name, e))
    }

    /// Loads a header file; a missing file is `Ok(None)`.
    pub async fn load(path: &Path) -> Result<Option<Self>, TsdbError> {
        let p = path.to_path_buf();
        let name = path.display().to_string();
        let data = tokio::task::spawn_blocking(move || std::fs::read(p))
            .await
            .map_err(|e| TsdbError::io(&name, std::io::Error::other(e)))?;
        match data {
            Ok(data) => Self::decode(&name, &data).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TsdbError::io(name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::source::MemFile;
    use crate::tsdb::testutil::{series, IndexBuilder};

    fn sample_index(with_empty_symbol: bool) -> Bytes {
        IndexBuilder {
            empty_symbol: with_empty_symbol,
        }
        .build(&[
            series(&[("__name__", "up"), ("job", "api")], &[(0, 10, 8)]),
            series(&[("__name__", "up"), ("job", "db")], &[(0, 10, 30)]),
            series(&[("__name__", "x"), ("zone", "")], &[(0, 10, 50)]),
        ])
        .bytes
    }

    #[tokio::test]
    async fn build_matches_in_memory_and_round_trips() {
        for empty in [true, false] {
            let index = sample_index(empty);
            let src = MemFile::new("b/index", index.clone());
            let built = IndexHeader::build(&src).await.unwrap();
            assert_eq!(built, IndexHeader::from_bytes("b/index", &index).unwrap());
            assert_eq!(built.label_names(), ["__name__", "job"]);
            assert_eq!(built.label_values("job"), ["api", "db"]);
            assert_eq!(built.label_values("nope"), Vec::<String>::new());
            assert_eq!(built.label_values(""), Vec::<String>::new());
            assert!(built.all_postings_range().is_some());
            assert_eq!(built.extra.is_empty(), empty);

            let bytes = built.encode();
            let again = IndexHeader::decode("h", &bytes).unwrap();
            assert_eq!(again, built);
            assert_eq!(again.encode(), bytes);
        }
    }

    #[tokio::test]
    async fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/header");
        assert!(IndexHeader::load(&path).await.unwrap().is_none());
        let h = IndexHeader::from_bytes("i", &sample_index(true)).unwrap();
        h.save(&path).await.unwrap();
        assert_eq!(IndexHeader::load(&path).await.unwrap().unwrap(), h);
    }

    #[test]
    fn ranges_end_at_next_list() {
        let index = sample_index(true);
        let h = IndexHeader::from_bytes("i", &index).unwrap();
        let mut ranges = h.all_postings_ranges();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        assert_eq!(ranges.last().unwrap().1, h.toc().label_offset_table);
    }

    #[test]
    fn every_corruption_is_detected() {
        let bytes = IndexHeader::from_bytes("i", &sample_index(false))
            .unwrap()
            .encode();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(IndexHeader::decode("h", &bad).is_err(), "flip at {i}");
            }
        }
        for n in 0..bytes.len() {
            assert!(IndexHeader::decode("h", &bytes[..n]).is_err(), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(IndexHeader::decode("h", &longer).is_err());
    }

    #[test]
    fn decode_reports_cause() {
        let bytes = IndexHeader::from_bytes("i", &sample_index(true))
            .unwrap()
            .encode();
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            IndexHeader::decode("h", &bad).unwrap_err(),
            TsdbError::BadMagic { .. }
        ));
        let mut bad = bytes.clone();
        bad[4] = 9;
        assert!(matches!(
            IndexHeader::decode("h", &bad).unwrap_err(),
            TsdbError::UnsupportedVersion { found: 9, .. }
        ));
        let mut bad = bytes.clone();
        let mid = bytes.len() / 2;
        bad[mid] ^= 4;
        let err = IndexHeader::decode("cache/h", &bad).unwrap_err();
        assert!(
            matches!(
                err,
                TsdbError::ChecksumMismatch {
                    section: Section::IndexHeader,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("cache/h:"), "{err}");
    }
}
