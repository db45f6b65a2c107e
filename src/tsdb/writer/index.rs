//! The index file of a block being written (format version 2).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{io_err, BlockWriter, SymbolLabels, WriteError};
use crate::tsdb::encoding::{put_be_u32, put_str, put_uvarint, put_varint};
use crate::tsdb::index::{ChunkMeta, Toc, INDEX_MAGIC, INDEX_VERSION};

/// Postings of each (name, value) pair of symbol ids, in series order.
type Postings = BTreeMap<(u32, u32), Vec<u32>>;

impl BlockWriter {
    pub(super) fn write_index(&mut self) -> Result<(), WriteError> {
        let (sorted, remap) = sorted_symbols(&self.symbols)?;
        let mut series: Vec<(SymbolLabels, &[ChunkMeta])> = self
            .series
            .iter()
            .map(|s| {
                let labels = s
                    .labels
                    .iter()
                    .map(|&(n, v)| (remap[n as usize], remap[v as usize]))
                    .collect();
                (labels, s.chunks.as_slice())
            })
            .collect();
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        let path = self.tmp.join("index");
        let file = File::create(&path).map_err(io_err(&path))?;
        let mut w = IndexOut {
            w: BufWriter::with_capacity(256 * 1024, file),
            pos: 0,
            path: &path,
            body: Vec::new(),
        };
        let mut head = Vec::new();
        put_be_u32(&mut head, INDEX_MAGIC);
        head.push(INDEX_VERSION);
        w.write(&head)?;

        let mut toc = Toc {
            symbols: w.pos,
            ..Toc::default()
        };
        w.symbols(&sorted)?;
        toc.series = w.pos;
        let (all, postings) = w.series(&series)?;
        toc.label_indices = w.pos;
        let label_offsets = w.label_indices(&postings)?;
        toc.postings = w.pos;
        let postings_offsets = w.postings(&sorted, &all, &postings)?;
        toc.label_offset_table = w.pos;
        w.label_offset_table(&sorted, &label_offsets)?;
        toc.postings_offset_table = w.pos;
        w.postings_offset_table(&postings_offsets)?;
        w.write(&toc.encode())?;
        w.finish()
    }
}

/// The symbols sorted, with "" first as Prometheus has it, and each old id's
/// new one, so that comparing ids compares strings.
fn sorted_symbols(symbols: &[std::sync::Arc<str>]) -> Result<(Vec<&str>, Vec<u32>), WriteError> {
    let mut order: Vec<u32> = (0..symbols.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| symbols[a as usize].cmp(&symbols[b as usize]));
    let mut sorted: Vec<&str> = Vec::with_capacity(order.len() + 1);
    sorted.push("");
    let mut remap = vec![0u32; symbols.len()];
    for &old in &order {
        remap[old as usize] = sorted.len() as u32;
        sorted.push(&symbols[old as usize]);
    }
    count32(sorted.len()).map_err(|_| WriteError::TooLarge("too many symbols".to_string()))?;
    Ok((sorted, remap))
}

/// One series entry's body: its label pairs, then its chunks' times and
/// references, each after the first as a delta from the one before.
fn encode_series(body: &mut Vec<u8>, labels: &[(u32, u32)], chunks: &[ChunkMeta]) {
    body.clear();
    put_uvarint(body, labels.len() as u64);
    for &(n, v) in labels {
        put_uvarint(body, u64::from(n));
        put_uvarint(body, u64::from(v));
    }
    put_uvarint(body, chunks.len() as u64);
    let mut prev: Option<&ChunkMeta> = None;
    for c in chunks {
        match prev {
            None => {
                put_varint(body, c.min_time);
                put_uvarint(body, c.max_time.abs_diff(c.min_time));
                put_uvarint(body, c.chunk_ref);
            }
            Some(p) => {
                put_uvarint(body, c.min_time.abs_diff(p.max_time));
                put_uvarint(body, c.max_time.abs_diff(c.min_time));
                put_varint(body, c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
            }
        }
        prev = Some(c);
    }
}

fn count32(n: usize) -> Result<u32, WriteError> {
    u32::try_from(n).map_err(|_| WriteError::TooLarge(format!("{n} entries in one index section")))
}

/// The index file being written, with its position.
struct IndexOut<'p> {
    w: BufWriter<File>,
    pos: u64,
    path: &'p Path,
    /// Scratch space for the section being encoded.
    body: Vec<u8>,
}

impl IndexOut<'_> {
    fn write(&mut self, b: &[u8]) -> Result<(), WriteError> {
        self.w.write_all(b).map_err(io_err(self.path))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, align: u64) -> Result<(), WriteError> {
        let n = (align - self.pos % align) % align;
        const ZEROS: [u8; 16] = [0; 16];
        self.write(&ZEROS[..n as usize])
    }

    /// Writes the scratch body as a section.
    fn seal(&mut self) -> Result<(), WriteError> {
        let body = std::mem::take(&mut self.body);
        let r = self.section(&body);
        self.body = body;
        r
    }

    /// Writes the scratch body as a series entry:
    /// `len <uvarint> | body | CRC32C(body) <4b>`.
    fn seal_entry(&mut self) -> Result<(), WriteError> {
        let body = std::mem::take(&mut self.body);
        let mut len = Vec::with_capacity(10);
        put_uvarint(&mut len, body.len() as u64);
        let r = self
            .write(&len)
            .and_then(|()| self.write(&body))
            .and_then(|()| self.write(&crc32c::crc32c(&body).to_be_bytes()));
        self.body = body;
        r
    }

    /// `len <4b> | body | CRC32C(body) <4b>`.
    fn section(&mut self, body: &[u8]) -> Result<(), WriteError> {
        let len = u32::try_from(body.len())
            .map_err(|_| WriteError::TooLarge("index section past 4 GiB".to_string()))?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c::crc32c(body).to_be_bytes())
    }

    /// The symbol table: a count, then each string.
    fn symbols(&mut self, sorted: &[&str]) -> Result<(), WriteError> {
        self.body.clear();
        put_be_u32(&mut self.body, count32(sorted.len())?);
        for s in sorted {
            put_str(&mut self.body, s);
        }
        self.seal()
    }

    /// Series entries, 16-byte aligned, each with its length and CRC; gives
    /// every series' reference and the postings of each label pair.
    fn series(
        &mut self,
        series: &[(SymbolLabels, &[ChunkMeta])],
    ) -> Result<(Vec<u32>, Postings), WriteError> {
        let mut postings = Postings::new();
        let mut all = Vec::with_capacity(series.len());
        for (labels, chunks) in series {
            self.pad(16)?;
            let r = u32::try_from(self.pos / 16).map_err(|_| {
                WriteError::TooLarge("series section past 64 GiB of index".to_string())
            })?;
            all.push(r);
            for &pair in labels.iter() {
                postings.entry(pair).or_default().push(r);
            }
            encode_series(&mut self.body, labels, chunks);
            self.seal_entry()?;
        }
        Ok((all, postings))
    }

    /// Label indices: per name, its values, 4-byte aligned; gives where each
    /// name's index starts.
    fn label_indices(&mut self, postings: &Postings) -> Result<Vec<(u32, u64)>, WriteError> {
        let mut label_offsets: Vec<(u32, u64)> = Vec::new();
        let mut keys = postings.keys().peekable();
        while let Some(&(name, value)) = keys.next() {
            self.pad(4)?;
            label_offsets.push((name, self.pos));
            self.body.clear();
            put_be_u32(&mut self.body, 1);
            let count_at = self.body.len();
            put_be_u32(&mut self.body, 0);
            put_be_u32(&mut self.body, value);
            let mut n = 1usize;
            while let Some(&&(next_name, v)) = keys.peek() {
                if next_name != name {
                    break;
                }
                put_be_u32(&mut self.body, v);
                n += 1;
                keys.next();
            }
            self.body[count_at..count_at + 4].copy_from_slice(&count32(n)?.to_be_bytes());
            self.seal()?;
        }
        Ok(label_offsets)
    }

    /// Postings lists, 4-byte aligned: every series under ("", ""), then
    /// each label pair; gives where each list starts.
    fn postings<'s>(
        &mut self,
        sorted: &[&'s str],
        all: &[u32],
        postings: &Postings,
    ) -> Result<Vec<(&'s str, &'s str, u64)>, WriteError> {
        let mut offsets = Vec::with_capacity(postings.len() + 1);
        let lists =
            std::iter::once((("", ""), all)).chain(postings.iter().map(|(&(n, v), refs)| {
                ((sorted[n as usize], sorted[v as usize]), refs.as_slice())
            }));
        for (key, refs) in lists {
            self.pad(4)?;
            offsets.push((key.0, key.1, self.pos));
            self.body.clear();
            put_be_u32(&mut self.body, count32(refs.len())?);
            for &r in refs {
                put_be_u32(&mut self.body, r);
            }
            self.seal()?;
        }
        Ok(offsets)
    }

    /// The label offset table: each name with where its label index starts.
    fn label_offset_table(
        &mut self,
        sorted: &[&str],
        label_offsets: &[(u32, u64)],
    ) -> Result<(), WriteError> {
        self.body.clear();
        put_be_u32(&mut self.body, count32(label_offsets.len())?);
        for &(name, offset) in label_offsets {
            self.body.push(1);
            put_str(&mut self.body, sorted[name as usize]);
            put_uvarint(&mut self.body, offset);
        }
        self.seal()
    }

    /// The postings offset table: each pair with where its list starts.
    fn postings_offset_table(&mut self, offsets: &[(&str, &str, u64)]) -> Result<(), WriteError> {
        self.body.clear();
        put_be_u32(&mut self.body, count32(offsets.len())?);
        for &(n, v, offset) in offsets {
            self.body.push(2);
            put_str(&mut self.body, n);
            put_str(&mut self.body, v);
            put_uvarint(&mut self.body, offset);
        }
        self.seal()
    }

    /// Flushes the file and syncs it to disk.
    fn finish(self) -> Result<(), WriteError> {
        let path = self.path;
        let mut w = self.w;
        w.flush().map_err(io_err(path))?;
        let file = w.into_inner().map_err(|e| WriteError::Io {
            path: path.to_path_buf(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(path))
    }
}
