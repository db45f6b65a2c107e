//! A small writer of index and chunk segment files, for unit tests. It lays
//! sections out the way Prometheus 2.x does, so its output for the checked-in
//! fixtures is byte-identical to theirs.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::encoding::{put_be_u32, put_str, put_uvarint, put_varint};
use super::index::{ChunkMeta, Toc, INDEX_MAGIC, INDEX_VERSION};
use crate::model::Labels;

#[derive(Debug, Clone)]
pub(crate) struct TestSeries {
    /// Sorted by name; empty values are left out when written.
    pub pairs: Vec<(String, String)>,
    pub chunks: Vec<ChunkMeta>,
}

impl TestSeries {
    pub fn labels(&self) -> Labels {
        Labels::from_pairs(self.pairs.iter().cloned()).unwrap_or_default()
    }

    fn kept(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        out.sort();
        out
    }
}

/// A series from label pairs and `(mint, maxt, ref)` chunk metas.
pub(crate) fn series(pairs: &[(&str, &str)], chunks: &[(i64, i64, u64)]) -> TestSeries {
    TestSeries {
        pairs: pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        chunks: chunks
            .iter()
            .map(|&(min_time, max_time, chunk_ref)| ChunkMeta {
                chunk_ref,
                min_time,
                max_time,
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct BuiltIndex {
    pub bytes: Bytes,
    /// The reference of each input series, in input order.
    pub refs: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexBuilder {
    /// Put "" into the symbol table, as Prometheus does.
    pub empty_symbol: bool,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        Self { empty_symbol: true }
    }
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while out.len() % align != 0 {
        out.push(0);
    }
}

/// `len <4b> | body | CRC32 <4b>`.
fn section(out: &mut Vec<u8>, body: &[u8]) {
    put_be_u32(out, body.len() as u32);
    out.extend_from_slice(body);
    put_be_u32(out, crc32c::crc32c(body));
}

impl IndexBuilder {
    pub fn postings_section(&self, refs: &[u32]) -> Vec<u8> {
        let mut body = Vec::new();
        put_be_u32(&mut body, refs.len() as u32);
        for &r in refs {
            put_be_u32(&mut body, r);
        }
        let mut out = Vec::new();
        section(&mut out, &body);
        out
    }

    pub fn build(&self, input: &[TestSeries]) -> BuiltIndex {
        let mut order: Vec<usize> = (0..input.len()).collect();
        order.sort_by(|&a, &b| input[a].kept().cmp(&input[b].kept()));

        let mut symbols: BTreeSet<&str> = BTreeSet::new();
        if self.empty_symbol {
            symbols.insert("");
        }
        for s in input {
            for (n, v) in s.kept() {
                symbols.insert(n);
                symbols.insert(v);
            }
        }
        let symbol_ids: BTreeMap<&str, u32> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();

        let mut out = Vec::new();
        put_be_u32(&mut out, INDEX_MAGIC);
        out.push(INDEX_VERSION);

        let mut toc = Toc {
            symbols: out.len() as u64,
            ..Toc::default()
        };
        let mut body = Vec::new();
        put_be_u32(&mut body, symbols.len() as u32);
        for s in &symbols {
            put_str(&mut body, s);
        }
        section(&mut out, &body);

        toc.series = out.len() as u64;
        let mut refs = vec![0u32; input.len()];
        let mut postings: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
        for &i in &order {
            pad_to(&mut out, 16);
            let r = (out.len() / 16) as u32;
            refs[i] = r;
            let s = &input[i];
            let mut body = Vec::new();
            let kept = s.kept();
            put_uvarint(&mut body, kept.len() as u64);
            for (n, v) in &kept {
                put_uvarint(&mut body, u64::from(symbol_ids[n]));
                put_uvarint(&mut body, u64::from(symbol_ids[v]));
                postings.entry((n, v)).or_default().push(r);
            }
            put_uvarint(&mut body, s.chunks.len() as u64);
            let mut prev: Option<ChunkMeta> = None;
            for c in &s.chunks {
                match prev {
                    None => {
                        put_varint(&mut body, c.min_time);
                        put_uvarint(&mut body, (c.max_time - c.min_time) as u64);
                        put_uvarint(&mut body, c.chunk_ref);
                    }
                    Some(p) => {
                        put_uvarint(&mut body, (c.min_time - p.max_time) as u64);
                        put_uvarint(&mut body, (c.max_time - c.min_time) as u64);
                        put_varint(&mut body, c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
                    }
                }
                prev = Some(*c);
            }
            put_uvarint(&mut out, body.len() as u64);
            out.extend_from_slice(&body);
            put_be_u32(&mut out, crc32c::crc32c(&body));
        }

        // Label indices: one per name, with its sorted values.
        toc.label_indices = out.len() as u64;
        let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (n, v) in postings.keys() {
            names.entry(n).or_default().push(v);
        }
        let mut label_offsets = Vec::new();
        for (name, values) in &names {
            pad_to(&mut out, 4);
            label_offsets.push((*name, out.len() as u64));
            let mut body = Vec::new();
            put_be_u32(&mut body, 1);
            put_be_u32(&mut body, values.len() as u32);
            for v in values {
                put_be_u32(&mut body, symbol_ids[v]);
            }
            section(&mut out, &body);
        }

        // Postings: every series first, then each label pair.
        toc.postings = out.len() as u64;
        let mut all: Vec<u32> = refs.clone();
        all.sort_unstable();
        let mut postings_offsets = Vec::new();
        pad_to(&mut out, 4);
        postings_offsets.push(("", "", out.len() as u64));
        out.extend_from_slice(&self.postings_section(&all));
        for ((n, v), list) in &postings {
            pad_to(&mut out, 4);
            postings_offsets.push((n, v, out.len() as u64));
            out.extend_from_slice(&self.postings_section(list));
        }

        toc.label_offset_table = out.len() as u64;
        let mut body = Vec::new();
        put_be_u32(&mut body, label_offsets.len() as u32);
        for (name, offset) in &label_offsets {
            body.push(1);
            put_str(&mut body, name);
            put_uvarint(&mut body, *offset);
        }
        section(&mut out, &body);

        toc.postings_offset_table = out.len() as u64;
        let mut body = Vec::new();
        put_be_u32(&mut body, postings_offsets.len() as u32);
        for (n, v, offset) in &postings_offsets {
            body.push(2);
            put_str(&mut body, n);
            put_str(&mut body, v);
            put_uvarint(&mut body, *offset);
        }
        section(&mut out, &body);

        out.extend_from_slice(&toc.encode());
        BuiltIndex {
            bytes: Bytes::from(out),
            refs,
        }
    }
}

/// A chunk segment file holding the given `(encoding, data)` chunks, and
/// the offset of each.
pub(crate) fn write_segment(chunks: &[(u8, &[u8])]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    put_be_u32(&mut out, super::chunks::SEGMENT_MAGIC);
    out.extend_from_slice(&[1, 0, 0, 0]);
    let mut offsets = Vec::new();
    for (encoding, data) in chunks {
        offsets.push(out.len() as u64);
        put_uvarint(&mut out, data.len() as u64);
        let start = out.len();
        out.push(*encoding);
        out.extend_from_slice(data);
        let crc = crc32c::crc32c(&out[start..]);
        put_be_u32(&mut out, crc);
    }
    (out, offsets)
}
