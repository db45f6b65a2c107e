//! Bit streams, most significant bit first, as the XOR chunk format lays
//! them out.

/// Writes bits MSB first into a byte vector; the last byte is zero-padded.
#[derive(Debug, Clone)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    /// Pending bits, left-aligned.
    acc: u64,
    /// Number of pending bits in `acc`, always below 32 between calls.
    pending: u32,
    /// Whether the last write was a whole number of bytes. Prometheus writes
    /// those byte by byte, and each byte write leaves a fresh trailing byte
    /// behind; when the stream ends byte-aligned right after one, that empty
    /// byte is part of the chunk, so [`BitWriter::finish`] adds it too.
    byte_tail: bool,
}

impl BitWriter {
    pub(crate) fn with_prefix(prefix: &[u8], capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.max(prefix.len()));
        out.extend_from_slice(prefix);
        Self {
            out,
            acc: 0,
            pending: 0,
            byte_tail: false,
        }
    }

    /// Writes the low `n` bits of `value`, `n` in 1..=32.
    #[inline(always)]
    fn write_short(&mut self, value: u64, n: u32) {
        debug_assert!((1..=32).contains(&n));
        let masked = value & (u64::MAX >> (64 - n));
        self.acc |= masked << (64 - self.pending - n);
        self.pending += n;
        if self.pending >= 32 {
            self.out
                .extend_from_slice(&((self.acc >> 32) as u32).to_be_bytes());
            self.acc <<= 32;
            self.pending -= 32;
        }
    }

    /// Writes the low `n` bits of `value`, `n` in 0..=64.
    #[inline(always)]
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        self.byte_tail = n > 0 && n % 8 == 0;
        if n > 32 {
            self.write_short(value >> 32, n - 32);
            self.write_short(value, 32);
        } else if n > 0 {
            self.write_short(value, n);
        }
    }

    #[inline(always)]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.byte_tail = false;
        self.write_short(u64::from(bit), 1);
    }

    /// Flushes the pending bits, zero-padded to a whole byte, plus the empty
    /// trailing byte Prometheus leaves after a final byte-aligned byte write.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let bytes = self.pending.div_ceil(8) as usize;
        let tail = self.acc.to_be_bytes();
        self.out.extend_from_slice(&tail[..bytes]);
        if self.byte_tail && self.pending % 8 == 0 {
            self.out.push(0);
        }
        self.out
    }

    pub(crate) fn out_mut(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }
}

/// Reads bits MSB first. Past the end of the data it reads zeros; callers
/// compare [`BitReader::bits_consumed`] with the data length to detect a
/// truncated stream.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte to load into `buf`.
    pos: usize,
    /// Left-aligned; the top `avail` bits are the next bits of the stream.
    buf: u64,
    avail: u32,
}

impl<'a> BitReader<'a> {
    #[inline(always)]
    pub(crate) fn new(data: &'a [u8]) -> Self {
        let mut r = Self {
            data,
            pos: 0,
            buf: 0,
            avail: 0,
        };
        r.refill();
        r
    }

    #[inline(always)]
    fn load(&self, pos: usize) -> u64 {
        match self.data.get(pos..).and_then(|s| s.first_chunk::<8>()) {
            Some(word) => u64::from_be_bytes(*word),
            None => load_tail(self.data, pos),
        }
    }

    /// Tops the buffer up to at least 56 valid bits, branch-free: whole
    /// bytes are taken from an unaligned big-endian load. Bits below `avail`
    /// left over from an earlier load are the same stream bits, so OR-ing
    /// them again is harmless.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        let word = self.load(self.pos);
        self.buf |= word >> self.avail;
        self.pos += ((63 - self.avail) >> 3) as usize;
        self.avail |= 56;
    }

    /// Refills when fewer than `n` bits (at most 56) are buffered. Most
    /// samples take a few bits, so this skips the load most of the time.
    #[inline(always)]
    pub(crate) fn ensure(&mut self, n: u32) {
        debug_assert!(n <= 56);
        if self.avail < n {
            self.refill();
        }
    }

    /// The buffered bits; at least `avail` of them are valid.
    #[inline(always)]
    pub(crate) fn peek_word(&self) -> u64 {
        self.buf
    }

    /// Drops `n` bits, `n` in 0..=avail (at most 63).
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.avail);
        self.buf <<= n;
        self.avail -= n;
    }

    /// Reads `n` bits, `n` in 1..=56, refilling when needed.
    #[inline(always)]
    pub(crate) fn read_bits(&mut self, n: u32) -> u64 {
        debug_assert!((1..=56).contains(&n));
        if self.avail < n {
            self.refill();
        }
        let v = self.buf >> (64 - n);
        self.consume(n);
        v
    }

    /// Reads `n` bits, `n` in 1..=64.
    #[inline(always)]
    pub(crate) fn read_long(&mut self, n: u32) -> u64 {
        if n <= 56 {
            self.read_bits(n)
        } else {
            let hi = self.read_bits(n - 32);
            let lo = self.read_bits(32);
            (hi << 32) | lo
        }
    }

    #[inline(always)]
    pub(crate) fn read_byte(&mut self) -> u8 {
        self.read_bits(8) as u8
    }

    /// How many bits were handed out so far.
    #[inline(always)]
    pub(crate) fn bits_consumed(&self) -> usize {
        self.pos * 8 - self.avail as usize
    }
}

/// The last, short word of a stream, zero-padded. A free function taking
/// plain values, so that calling it does not force the reader out of
/// registers.
#[cold]
#[inline(never)]
fn load_tail(data: &[u8], pos: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(rest) = data.get(pos..) {
        word[..rest.len()].copy_from_slice(rest);
    }
    u64::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree() {
        let fields: Vec<(u64, u32)> = (0..500u64)
            .map(|i| {
                let n = (i % 64) as u32 + 1;
                (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), n)
            })
            .collect();
        let mut w = BitWriter::with_prefix(&[], 0);
        for &(v, n) in &fields {
            w.write_bits(v, n);
        }
        let bytes = w.finish();
        let total: u32 = fields.iter().map(|f| f.1).sum();
        // The last field is 52 bits long, so no empty trailing byte.
        assert_eq!(bytes.len(), total.div_ceil(8) as usize);
        let mut r = BitReader::new(&bytes);
        for &(v, n) in &fields {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            assert_eq!(r.read_long(n), v & mask);
        }
        assert_eq!(r.bits_consumed(), total as usize);
    }

    #[test]
    fn msb_first_and_zero_padded() {
        let mut w = BitWriter::with_prefix(&[0xAA], 4);
        w.write_bit(true);
        w.write_bits(0b01, 2);
        assert_eq!(w.finish(), vec![0xAA, 0b1010_0000]);
    }

    #[test]
    fn byte_aligned_byte_write_leaves_an_empty_byte() {
        let mut w = BitWriter::with_prefix(&[], 4);
        w.write_bits(0x12, 8);
        assert_eq!(w.finish(), vec![0x12, 0]);
        let mut w = BitWriter::with_prefix(&[], 4);
        w.write_bits(0x12, 8);
        w.write_bit(true);
        assert_eq!(w.finish(), vec![0x12, 0x80]);
        let mut w = BitWriter::with_prefix(&[], 4);
        w.write_bits(0b1, 4);
        w.write_bits(0xff, 8);
        assert_eq!(w.finish(), vec![0x1f, 0xf0]);
    }
}
