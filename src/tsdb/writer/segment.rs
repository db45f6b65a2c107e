//! Chunk segment files of a block being written, and the chunks of a series
//! being built before they go there.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::{io_err, WriteError, MAX_CHUNK_LEN_FIELD};
use crate::model::{ChunkEncoding, XorEncoder};
use crate::tsdb::chunks::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_VERSION};
use crate::tsdb::encoding::{put_be_u32, put_uvarint};
use crate::tsdb::error::segment_file_name;

/// A chunk encoded but not yet written.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) min_time: i64,
    pub(super) max_time: i64,
    pub(super) encoding: u8,
    pub(super) data: Vec<u8>,
}

/// The chunks of one series being built; its samples are checked to
/// increase in time.
#[derive(Debug)]
pub(super) struct SeriesBuf {
    pub(super) chunks: Vec<Pending>,
    pub(super) enc: XorEncoder,
    pub(super) per_chunk: usize,
    pub(super) last: Option<i64>,
    pub(super) samples: u64,
}

impl SeriesBuf {
    pub(super) fn new(per_chunk: usize) -> Self {
        Self {
            chunks: Vec::new(),
            enc: XorEncoder::new(),
            per_chunk,
            last: None,
            samples: 0,
        }
    }

    /// Appends a sample; `Err` describes an out-of-order one.
    pub(super) fn push(&mut self, t: i64, v: f64) -> Result<(), String> {
        if let Some(last) = self.last {
            if t <= last {
                return Err(if t == last {
                    format!("duplicate sample at timestamp {t}")
                } else {
                    format!("sample at {t} is out of order (after {last})")
                });
            }
        }
        if self.enc.len() >= self.per_chunk {
            self.cut();
        }
        // The encoder only refuses a full chunk, which the cut above avoids.
        self.enc.append(t, v).map_err(|e| e.to_string())?;
        self.last = Some(t);
        self.samples += 1;
        Ok(())
    }

    pub(super) fn cut(&mut self) {
        let enc = std::mem::take(&mut self.enc);
        if let (Some(min_time), Some(max_time)) = (enc.min_time(), enc.max_time()) {
            self.chunks.push(Pending {
                min_time,
                max_time,
                encoding: 1,
                data: enc.finish(),
            });
        }
    }

    pub(super) fn finish(mut self) -> (Vec<Pending>, u64) {
        self.cut();
        (self.chunks, self.samples)
    }
}

pub(super) fn encoding_byte(e: ChunkEncoding) -> u8 {
    match e {
        ChunkEncoding::Xor => 1,
        ChunkEncoding::Histogram => 2,
        ChunkEncoding::FloatHistogram => 3,
        ChunkEncoding::Aggr => 0xff,
    }
}

/// Writes chunks into segment files `chunks/000001`, ...
#[derive(Debug)]
pub(super) struct SegmentWriter {
    pub(super) dir: PathBuf,
    pub(super) max_size: u64,
    pub(super) file: Option<(PathBuf, BufWriter<File>)>,
    /// Index of the open segment (0 for `000001`).
    pub(super) seq: u32,
    pub(super) pos: u64,
    /// Names and sizes of the finished segments.
    pub(super) done: Vec<(String, u64)>,
}

impl SegmentWriter {
    pub(super) fn close_current(&mut self) -> Result<(), WriteError> {
        if let Some((path, mut w)) = self.file.take() {
            w.flush().map_err(io_err(&path))?;
            let f = w.into_inner().map_err(|e| WriteError::Io {
                path: path.clone(),
                source: e.into_error(),
            })?;
            f.sync_all().map_err(io_err(&path))?;
            self.done.push((segment_file_name(self.seq), self.pos));
            self.seq += 1;
        }
        Ok(())
    }

    pub(super) fn open_next(&mut self) -> Result<(), WriteError> {
        let path = self.dir.join(segment_file_name(self.seq));
        let f = File::create(&path).map_err(io_err(&path))?;
        let mut w = BufWriter::with_capacity(256 * 1024, f);
        let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN as usize);
        put_be_u32(&mut header, SEGMENT_MAGIC);
        header.extend_from_slice(&[SEGMENT_VERSION, 0, 0, 0]);
        w.write_all(&header).map_err(io_err(&path))?;
        self.pos = SEGMENT_HEADER_LEN;
        self.file = Some((path, w));
        Ok(())
    }

    /// Writes one chunk and returns its reference.
    pub(super) fn write(&mut self, encoding: u8, data: &[u8]) -> Result<u64, WriteError> {
        let need = MAX_CHUNK_LEN_FIELD + 1 + data.len() as u64 + 4;
        if self.file.is_some() && self.pos > SEGMENT_HEADER_LEN && self.pos + need > self.max_size {
            self.close_current()?;
        }
        if self.file.is_none() {
            self.open_next()?;
        }
        let offset = u32::try_from(self.pos)
            .map_err(|_| WriteError::TooLarge("chunk segment past 4 GiB".to_string()))?;
        let mut head = Vec::with_capacity(11);
        put_uvarint(&mut head, data.len() as u64);
        head.push(encoding);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[encoding]), data);
        let Some((path, w)) = self.file.as_mut() else {
            return Err(WriteError::TooLarge("no segment open".to_string()));
        };
        w.write_all(&head).map_err(io_err(path))?;
        w.write_all(data).map_err(io_err(path))?;
        w.write_all(&crc.to_be_bytes()).map_err(io_err(path))?;
        self.pos += head.len() as u64 + data.len() as u64 + 4;
        Ok((u64::from(self.seq) << 32) | u64::from(offset))
    }
}
