//! Chunks: the unit samples travel in, on the wire and in blocks.

pub mod aggr;
mod bits;
pub mod xor;

use bytes::Bytes;

pub use xor::{XorEncoder, XorIter, MAX_SAMPLES_PER_CHUNK};

use super::series::Sample;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkEncoding {
    Xor,
    Histogram,
    FloatHistogram,
    /// Thanos' downsampled chunk: aggregates per window (see [`aggr`]).
    Aggr,
}

impl ChunkEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkEncoding::Xor => "XOR",
            ChunkEncoding::Histogram => "histogram",
            ChunkEncoding::FloatHistogram => "float histogram",
            ChunkEncoding::Aggr => "aggregate (downsampled)",
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ChunkError {
    #[error("chunk truncated after {decoded} samples")]
    Truncated { decoded: usize },
    #[error("bad varint after {decoded} samples")]
    BadVarint { decoded: usize },
    #[error("bad XOR window after {decoded} samples")]
    BadWindow { decoded: usize },
    #[error("chunk holds the maximum number of samples")]
    Full,
    #[error("{} chunks are not supported", .0.as_str())]
    Unsupported(ChunkEncoding),
    #[error("bad aggregate chunk: {0}")]
    BadAggregate(String),
}

/// A chunk of samples covering `[min_time, max_time]`, still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub min_time: i64,
    pub max_time: i64,
    pub encoding: ChunkEncoding,
    pub data: Bytes,
}

impl Chunk {
    /// An iterator over the samples of an XOR chunk.
    pub fn iter(&self) -> Result<XorIter<'_>, ChunkError> {
        match self.encoding {
            ChunkEncoding::Xor => XorIter::new(&self.data),
            other => Err(ChunkError::Unsupported(other)),
        }
    }

    pub fn samples(&self) -> Result<Vec<Sample>, ChunkError> {
        match self.encoding {
            ChunkEncoding::Xor => xor::decode_all(&self.data),
            other => Err(ChunkError::Unsupported(other)),
        }
    }

    /// Encodes samples (sorted by time) into XOR chunks of at most
    /// `per_chunk` samples each.
    pub fn encode_xor(samples: &[Sample], per_chunk: usize) -> Result<Vec<Chunk>, ChunkError> {
        let per_chunk = per_chunk.clamp(1, usize::from(u16::MAX));
        samples
            .chunks(per_chunk)
            .map(|part| {
                Ok(Chunk {
                    min_time: part.first().map_or(0, |s| s.t),
                    max_time: part.last().map_or(0, |s| s.t),
                    encoding: ChunkEncoding::Xor,
                    data: Bytes::from(xor::encode_all(part)?),
                })
            })
            .collect()
    }

    /// Samples the chunk holds by its header (for an aggregate chunk, its
    /// windows), 0 when that cannot be read.
    pub fn num_samples(&self) -> u64 {
        let header = match self.encoding {
            ChunkEncoding::Aggr => aggr::parts(&self.data)
                .ok()
                .and_then(|p| p.into_iter().flatten().next()),
            _ => Some(&self.data[..]),
        };
        match header {
            Some([a, b, ..]) => u64::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        }
    }

    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_time <= maxt && mint <= self.max_time
    }
}
