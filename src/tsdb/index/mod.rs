//! The block index, format version 2: parsers for each section over byte
//! slices, and `IndexReader`, which answers lookups with range reads guided
//! by an `IndexHeader`.
//!
//! Layout: a 5-byte header (magic `0xBAAAD700`, version byte 2), the symbol
//! table, the series entries (each 16-byte aligned; a series' reference is
//! its offset / 16), label indices, postings lists, the label offset table,
//! the postings offset table and a 52-byte table of contents at the end.
//! Every section has a CRC32C; fixed-width integers are big-endian.

use super::encoding::Dec;
use super::error::{check_crc, Section, TsdbError};

mod reader;
mod series;
mod symbols;
mod tables;

pub use reader::*;
pub use series::*;
pub use symbols::*;
pub use tables::*;

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
        let toc = Toc::decode(&mut d)?;
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

    /// The six section references, big-endian, in the order they are
    /// stored; neither checksum nor ranges are checked here.
    pub(crate) fn decode(d: &mut Dec) -> Result<Toc, TsdbError> {
        Ok(Toc {
            symbols: d.be_u64()?,
            series: d.be_u64()?,
            label_indices: d.be_u64()?,
            label_offset_table: d.be_u64()?,
            postings: d.be_u64()?,
            postings_offset_table: d.be_u64()?,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, Matcher};
    use crate::tsdb::header::IndexHeader;
    use crate::tsdb::testutil::{series, IndexBuilder};
    use std::sync::Arc;

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
        crate::tsdb::encoding::put_be_u32(&mut body, symbols.len() as u32);
        for s in symbols {
            crate::tsdb::encoding::put_str(&mut body, s);
        }
        let mut out = Vec::new();
        crate::tsdb::encoding::put_be_u32(&mut out, body.len() as u32);
        out.extend_from_slice(&body);
        crate::tsdb::encoding::put_be_u32(&mut out, crc32c::crc32c(&body));
        out
    }

    #[test]
    fn symbols_parse_and_lookup() {
        let buf = symbol_section(&["", "a", "b", "héllo", "zz"]);
        let s = Symbols::parse_section("i", &buf, 5).unwrap();
        assert_eq!(s.len(), 5);
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

        // Out of order or repeated: damaged.
        for bad in [&["b", "a"][..], &["a", "a"]] {
            let err = Symbols::parse_section("i", &symbol_section(bad), 5).unwrap_err();
            assert!(
                err.is_corruption() && err.to_string().contains("out of order"),
                "{err}"
            );
        }
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
        crate::tsdb::encoding::put_be_u32(&mut sec, body.len() as u32);
        sec.append(&mut body.clone());
        crate::tsdb::encoding::put_be_u32(&mut sec, crc32c::crc32c(&body));
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
        crate::tsdb::encoding::put_varint(&mut body, i64::MAX - 1);
        crate::tsdb::encoding::put_uvarint(&mut body, 10);
        crate::tsdb::encoding::put_uvarint(&mut body, 8);
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
