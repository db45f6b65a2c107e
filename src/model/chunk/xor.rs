//! Prometheus' XOR chunk encoding (Gorilla-style), byte for byte.
//!
//! Layout: a 2-byte big-endian sample count, then a bit stream:
//! - sample 0: timestamp as a zig-zag varint, value as its 64 raw bits;
//! - sample 1: timestamp delta as an unsigned varint, value XOR-encoded;
//! - sample n: delta-of-delta of the timestamp in one of five buckets
//!   (`0`, `10`+14 bits, `110`+17 bits, `1110`+20 bits, `1111`+64 bits),
//!   value XOR-encoded.
//!
//! A value is encoded against the previous one: `0` when equal; otherwise
//! `1`, then either `0` and the meaningful bits inside the previous window of
//! leading/trailing zeros, or `1`, 5 bits of leading zeros, 6 bits of
//! meaningful-bit count (64 written as 0) and the meaningful bits.

use super::bits::{BitReader, BitWriter};
use super::ChunkError;
use crate::model::series::Sample;

/// Samples per chunk at which writers cut a new chunk, as Prometheus does.
pub const MAX_SAMPLES_PER_CHUNK: usize = 120;

const HEADER_LEN: usize = 2;

/// Encodes samples into one XOR chunk.
#[derive(Debug, Clone)]
pub struct XorEncoder {
    w: BitWriter,
    count: u16,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    /// Leading and trailing zeros of the last written window; `leading` is
    /// 0xff until the first window is written.
    leading: u8,
    trailing: u8,
    min_time: i64,
}

impl Default for XorEncoder {
    fn default() -> Self {
        Self::new()
    }
}

fn fits(dod: i64, bits: u32) -> bool {
    // The range is asymmetric, as in Prometheus: [-(2^(n-1) - 1), 2^(n-1)].
    let half = 1i64 << (bits - 1);
    -(half - 1) <= dod && dod <= half
}

impl XorEncoder {
    pub fn new() -> Self {
        Self {
            w: BitWriter::with_prefix(&[0, 0], 128),
            count: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: 0xff,
            trailing: 0,
            min_time: 0,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.min_time)
    }

    pub fn max_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.t)
    }

    /// Appends a sample. Timestamps are expected to increase; the format can
    /// carry any order, but readers assume increasing time.
    pub fn append(&mut self, t: i64, v: f64) -> Result<(), ChunkError> {
        if self.count == u16::MAX {
            return Err(ChunkError::Full);
        }
        let v_bits = v.to_bits();
        match self.count {
            0 => {
                write_varint(&mut self.w, zigzag(t));
                self.w.write_bits(v_bits, 64);
                self.min_time = t;
            }
            1 => {
                self.t_delta = t.wrapping_sub(self.t) as u64;
                write_varint(&mut self.w, self.t_delta);
                self.write_value(v_bits);
            }
            _ => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bit(false);
                } else if fits(dod, 14) {
                    self.w.write_bits(0b10, 2);
                    self.w.write_bits(dod as u64, 14);
                } else if fits(dod, 17) {
                    self.w.write_bits(0b110, 3);
                    self.w.write_bits(dod as u64, 17);
                } else if fits(dod, 20) {
                    self.w.write_bits(0b1110, 4);
                    self.w.write_bits(dod as u64, 20);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
                self.t_delta = t_delta;
                self.write_value(v_bits);
            }
        }
        self.t = t;
        self.v_bits = v_bits;
        self.count += 1;
        Ok(())
    }

    fn write_value(&mut self, v_bits: u64) {
        let delta = v_bits ^ self.v_bits;
        if delta == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        // Five bits hold the leading-zero count, so it is clamped to 31.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.w.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.w.write_bit(true);
        self.w.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 64 meaningful bits do not fit in six bits and are written as 0.
        self.w.write_bits(u64::from(sig), 6);
        self.w.write_bits(delta >> trailing, sig);
    }

    /// The chunk bytes, header included.
    pub fn finish(self) -> Vec<u8> {
        let count = self.count.to_be_bytes();
        let mut w = self.w;
        w.out_mut()[..HEADER_LEN].copy_from_slice(&count);
        w.finish()
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn write_varint(w: &mut BitWriter, mut v: u64) {
    while v >= 0x80 {
        w.write_bits((v as u8 | 0x80).into(), 8);
        v >>= 7;
    }
    w.write_bits(v, 8);
}

/// Number of samples a chunk declares in its header.
pub fn sample_count(data: &[u8]) -> Result<u16, ChunkError> {
    match data.first_chunk::<HEADER_LEN>() {
        Some(h) => Ok(u16::from_be_bytes(*h)),
        None => Err(ChunkError::Truncated { decoded: 0 }),
    }
}

/// Iterates the samples of one XOR chunk. Bad data ends the iteration with an
/// error, never a panic; the samples before it stay valid.
#[derive(Debug, Clone)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    total_bits: usize,
    total: u16,
    read: u16,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    leading: u32,
    trailing: u32,
    failed: bool,
}

impl<'a> XorIter<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, ChunkError> {
        let total = sample_count(data)?;
        let body = &data[HEADER_LEN..];
        Ok(Self {
            r: BitReader::new(body),
            total_bits: body.len() * 8,
            total,
            read: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: 0,
            trailing: 0,
            failed: false,
        })
    }

    /// Number of samples the chunk holds.
    pub fn len(&self) -> usize {
        usize::from(self.total)
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The next sample, `Ok(None)` at the end of the chunk.
    #[inline]
    pub fn next_sample(&mut self) -> Result<Option<Sample>, ChunkError> {
        if self.read >= self.total || self.failed {
            return Ok(None);
        }
        let decoded = usize::from(self.read);
        match self.read {
            0 => {
                self.t = unzigzag(self.read_varint(decoded)?);
                self.v_bits = self.r.read_long(64);
            }
            1 => {
                self.t_delta = self.read_varint(decoded)?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value(decoded)?;
            }
            _ => {
                self.read_timestamp();
                self.read_value(decoded)?;
            }
        }
        if self.r.bits_consumed() > self.total_bits {
            self.failed = true;
            return Err(ChunkError::Truncated { decoded });
        }
        self.read += 1;
        Ok(Some(Sample {
            t: self.t,
            v: f64::from_bits(self.v_bits),
        }))
    }

    /// Advances to the first sample at or after `t`.
    pub fn seek(&mut self, t: i64) -> Result<Option<Sample>, ChunkError> {
        while let Some(s) = self.next_sample()? {
            if s.t >= t {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    fn read_varint(&mut self, decoded: usize) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.r.read_byte();
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                if shift == 63 && b > 1 {
                    break;
                }
                return Ok(v);
            }
        }
        self.failed = true;
        Err(ChunkError::BadVarint { decoded })
    }

    #[inline(always)]
    fn read_timestamp(&mut self) {
        self.r.refill();
        // Count the prefix's leading ones, at most four.
        let ones = (!self.r.peek_word()).leading_zeros().min(4);
        let dod = match ones {
            0 => {
                self.r.consume(1);
                0
            }
            4 => {
                self.r.consume(4);
                self.r.read_long(64) as i64
            }
            _ => {
                self.r.consume(ones + 1);
                let size = [0, 14, 17, 20][ones as usize];
                let mut bits = self.r.read_bits(size);
                if bits > 1 << (size - 1) {
                    bits = bits.wrapping_sub(1 << size);
                }
                bits as i64
            }
        };
        self.t_delta = self.t_delta.wrapping_add(dod as u64);
        self.t = self.t.wrapping_add(self.t_delta as i64);
    }

    #[inline(always)]
    fn read_value(&mut self, decoded: usize) -> Result<(), ChunkError> {
        self.r.refill();
        let word = self.r.peek_word();
        if word >> 63 == 0 {
            self.r.consume(1);
            return Ok(());
        }
        if (word >> 62) & 1 == 1 {
            let header = (word >> 51) & 0x7ff;
            self.r.consume(13);
            let leading = (header >> 6) as u32;
            let mut sig = (header & 0x3f) as u32;
            if sig == 0 {
                sig = 64;
            }
            if leading + sig > 64 {
                self.failed = true;
                return Err(ChunkError::BadWindow { decoded });
            }
            self.leading = leading;
            self.trailing = 64 - leading - sig;
        } else {
            self.r.consume(2);
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_long(sig);
        self.v_bits ^= bits << self.trailing;
        Ok(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = Result<Sample, ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_sample().transpose()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.total.saturating_sub(self.read));
        (0, Some(left))
    }
}

/// Decodes a whole chunk.
pub fn decode_all(data: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let mut it = XorIter::new(data)?;
    let mut out = Vec::with_capacity(it.len().min(1 << 16));
    while let Some(s) = it.next_sample()? {
        out.push(s);
    }
    Ok(out)
}

/// Encodes samples into one chunk.
pub fn encode_all(samples: &[Sample]) -> Result<Vec<u8>, ChunkError> {
    let mut enc = XorEncoder::new();
    for s in samples {
        enc.append(s.t, s.v)?;
    }
    Ok(enc.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::series::STALE_NAN_BITS;

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    fn same(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits())
    }

    #[test]
    fn round_trip_special_values() {
        let samples = vec![
            s(-5_000, 1.0),
            s(-4_000, f64::NAN),
            s(-3_000, f64::from_bits(STALE_NAN_BITS)),
            s(0, f64::INFINITY),
            s(1, f64::NEG_INFINITY),
            s(1_000_000, -0.0),
            s(i64::MAX / 2, f64::MIN_POSITIVE),
            s(i64::MAX / 2 + 3, f64::MAX),
        ];
        let data = encode_all(&samples).unwrap();
        assert!(same(&decode_all(&data).unwrap(), &samples));
    }

    #[test]
    fn every_timestamp_bucket() {
        let mut t = 1_000;
        let mut samples = vec![s(t, 0.0)];
        for (i, step) in [15, 15, 8207, 20, 70_000, 15, 600_000, 15, 1 << 40, 1, 2]
            .iter()
            .enumerate()
        {
            t += step;
            samples.push(s(t, i as f64));
        }
        let data = encode_all(&samples).unwrap();
        assert!(same(&decode_all(&data).unwrap(), &samples));
    }

    #[test]
    fn empty_and_single() {
        assert!(decode_all(&encode_all(&[]).unwrap()).unwrap().is_empty());
        let one = [s(42, 3.5)];
        assert!(same(&decode_all(&encode_all(&one).unwrap()).unwrap(), &one));
    }

    #[test]
    fn seek_finds_first_at_or_after() {
        let samples: Vec<_> = (0..120).map(|i| s(i * 15_000, i as f64)).collect();
        let data = encode_all(&samples).unwrap();
        let mut it = XorIter::new(&data).unwrap();
        assert_eq!(it.seek(31_000).unwrap().unwrap().t, 45_000);
        assert_eq!(it.next_sample().unwrap().unwrap().t, 60_000);
        assert!(it.seek(10_000_000).unwrap().is_none());
    }

    #[test]
    fn truncated_and_garbage_are_errors() {
        let samples: Vec<_> = (0..50).map(|i| s(i * 1_000, (i * i) as f64)).collect();
        let data = encode_all(&samples).unwrap();
        for cut in 0..data.len() {
            let r = decode_all(&data[..cut]);
            assert!(r.is_err(), "cut at {cut} decoded");
        }
        // A header that promises more samples than the stream holds.
        let mut lying = data.clone();
        lying[0] = 0xff;
        assert!(decode_all(&lying).is_err());
    }
}
