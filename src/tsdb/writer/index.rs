//! The index file of a block being written (format version 2).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{io_err, BlockWriter, SymbolLabels, WriteError};
use crate::tsdb::encoding::{put_be_u32, put_str, put_uvarint, put_varint};
use crate::tsdb::index::{ChunkMeta, Toc, INDEX_MAGIC, INDEX_VERSION};

impl BlockWriter {
    pub(super) fn write_index(&mut self) -> Result<(), WriteError> {
        // Symbols sorted, with "" as Prometheus has it; ids remapped so that
        // comparing ids compares strings.
        let mut order: Vec<u32> = (0..self.symbols.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.symbols[a as usize].cmp(&self.symbols[b as usize]));
        let mut sorted: Vec<&str> = Vec::with_capacity(order.len() + 1);
        sorted.push("");
        let mut remap = vec![0u32; self.symbols.len()];
        for &old in &order {
            remap[old as usize] = sorted.len() as u32;
            sorted.push(&self.symbols[old as usize]);
        }
        let symbol_count = u32::try_from(sorted.len())
            .map_err(|_| WriteError::TooLarge("too many symbols".to_string()))?;

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
        };
        let mut head = Vec::new();
        put_be_u32(&mut head, INDEX_MAGIC);
        head.push(INDEX_VERSION);
        w.write(&head)?;

        let mut toc = Toc {
            symbols: w.pos,
            ..Toc::default()
        };
        let mut body = Vec::new();
        put_be_u32(&mut body, symbol_count);
        for s in &sorted {
            put_str(&mut body, s);
        }
        w.section(&body)?;

        // Series entries, 16-byte aligned; postings collected on the way.
        toc.series = w.pos;
        let mut postings: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
        let mut all = Vec::with_capacity(series.len());
        for (labels, chunks) in &series {
            w.pad(16)?;
            let r = u32::try_from(w.pos / 16).map_err(|_| {
                WriteError::TooLarge("series section past 64 GiB of index".to_string())
            })?;
            all.push(r);
            body.clear();
            put_uvarint(&mut body, labels.len() as u64);
            for &(n, v) in labels.iter() {
                put_uvarint(&mut body, u64::from(n));
                put_uvarint(&mut body, u64::from(v));
                postings.entry((n, v)).or_default().push(r);
            }
            put_uvarint(&mut body, chunks.len() as u64);
            let mut prev: Option<&ChunkMeta> = None;
            for c in chunks.iter() {
                match prev {
                    None => {
                        put_varint(&mut body, c.min_time);
                        put_uvarint(&mut body, c.max_time.abs_diff(c.min_time));
                        put_uvarint(&mut body, c.chunk_ref);
                    }
                    Some(p) => {
                        put_uvarint(&mut body, c.min_time.abs_diff(p.max_time));
                        put_uvarint(&mut body, c.max_time.abs_diff(c.min_time));
                        put_varint(&mut body, c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
                    }
                }
                prev = Some(c);
            }
            let mut len = Vec::with_capacity(5);
            put_uvarint(&mut len, body.len() as u64);
            w.write(&len)?;
            w.write(&body)?;
            w.write(&crc32c::crc32c(&body).to_be_bytes())?;
        }

        // Label indices: per name, its values, 4-byte aligned.
        toc.label_indices = w.pos;
        let mut label_offsets: Vec<(u32, u64)> = Vec::new();
        let mut keys = postings.keys().peekable();
        while let Some(&(name, value)) = keys.next() {
            let mut values = vec![value];
            while let Some(&&(n, v)) = keys.peek() {
                if n != name {
                    break;
                }
                values.push(v);
                keys.next();
            }
            w.pad(4)?;
            label_offsets.push((name, w.pos));
            body.clear();
            put_be_u32(&mut body, 1);
            put_be_u32(&mut body, count32(values.len())?);
            for v in values {
                put_be_u32(&mut body, v);
            }
            w.section(&body)?;
        }

        // Postings: every series under ("", ""), then each label pair.
        toc.postings = w.pos;
        let mut postings_offsets: Vec<(&str, &str, u64)> = Vec::with_capacity(postings.len() + 1);
        for (key, refs) in std::iter::once((("", ""), &all)).chain(
            postings
                .iter()
                .map(|(&(n, v), refs)| ((sorted[n as usize], sorted[v as usize]), refs)),
        ) {
            w.pad(4)?;
            postings_offsets.push((key.0, key.1, w.pos));
            body.clear();
            put_be_u32(&mut body, count32(refs.len())?);
            for &r in refs {
                put_be_u32(&mut body, r);
            }
            w.section(&body)?;
        }

        toc.label_offset_table = w.pos;
        body.clear();
        put_be_u32(&mut body, count32(label_offsets.len())?);
        for &(name, offset) in &label_offsets {
            body.push(1);
            put_str(&mut body, sorted[name as usize]);
            put_uvarint(&mut body, offset);
        }
        w.section(&body)?;

        toc.postings_offset_table = w.pos;
        body.clear();
        put_be_u32(&mut body, count32(postings_offsets.len())?);
        for &(n, v, offset) in &postings_offsets {
            body.push(2);
            put_str(&mut body, n);
            put_str(&mut body, v);
            put_uvarint(&mut body, offset);
        }
        w.section(&body)?;
        w.write(&toc.encode())?;

        w.w.flush().map_err(io_err(&path))?;
        let file = w.w.into_inner().map_err(|e| WriteError::Io {
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(&path))?;
        Ok(())
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

    /// `len <4b> | body | CRC32C(body) <4b>`.
    fn section(&mut self, body: &[u8]) -> Result<(), WriteError> {
        let len = u32::try_from(body.len())
            .map_err(|_| WriteError::TooLarge("index section past 4 GiB".to_string()))?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c::crc32c(body).to_be_bytes())
    }
}
