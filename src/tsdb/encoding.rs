//! Bounds-checked decoding of the primitive types the block files use:
//! big-endian fixed-width integers, Go-style unsigned varints (LEB128, at most
//! 10 bytes), zig-zag signed varints and length-prefixed strings. Every
//! failure is an error naming the file, the structure and the offset.

use super::error::TsdbError;

/// Reads primitives from `buf`, which starts at offset `base` of `file`.
#[derive(Debug, Clone)]
pub(crate) struct Dec<'a, 'c> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    file: &'c str,
    what: &'c str,
}

impl<'a, 'c> Dec<'a, 'c> {
    pub fn new(buf: &'a [u8], base: u64, file: &'c str, what: &'c str) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            file,
            what,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The absolute offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn truncated(&self, needed: usize) -> TsdbError {
        TsdbError::Truncated {
            file: self.file.to_string(),
            what: self.what.to_string(),
            offset: self.offset(),
            needed: needed as u64,
            available: self.remaining() as u64,
        }
    }

    pub fn malformed(&self, detail: impl Into<String>) -> TsdbError {
        TsdbError::malformed(
            self.file,
            self.what,
            format!("{} (at offset {})", detail.into(), self.offset()),
        )
    }

    /// Reads a file's 4-byte magic number and 1-byte format version and
    /// checks them; `format` names the format in the error.
    pub fn magic_and_version(
        &mut self,
        magic: u32,
        version: u8,
        format: &'static str,
    ) -> Result<(), TsdbError> {
        let found = self.be_u32()?;
        if found != magic {
            return Err(TsdbError::BadMagic {
                file: self.file.to_string(),
                expected: magic,
                found,
            });
        }
        let found = self.u8()?;
        if found != version {
            return Err(TsdbError::UnsupportedVersion {
                file: self.file.to_string(),
                what: format,
                found: u64::from(found),
                supported: u64::from(version),
            });
        }
        Ok(())
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], TsdbError> {
        if self.remaining() < n {
            return Err(self.truncated(n));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), TsdbError> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, TsdbError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn be_u32(&mut self) -> Result<u32, TsdbError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn be_u64(&mut self) -> Result<u64, TsdbError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn uvarint(&mut self) -> Result<u64, TsdbError> {
        match uvarint(&self.buf[self.pos..]) {
            Varint::Ok(v, n) => {
                self.pos += n;
                Ok(v)
            }
            Varint::Short => Err(self.truncated(self.remaining() + 1)),
            Varint::Overflow => Err(self.malformed("varint overflows 64 bits")),
        }
    }

    /// An unsigned varint that must fit in 32 bits.
    pub fn uvarint32(&mut self) -> Result<u32, TsdbError> {
        let at = self.offset();
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| {
            TsdbError::malformed(
                self.file,
                self.what,
                format!("value {v} at offset {at} does not fit in 32 bits"),
            )
        })
    }

    /// A zig-zag encoded signed varint.
    pub fn varint(&mut self) -> Result<i64, TsdbError> {
        let u = self.uvarint()?;
        Ok(unzigzag(u))
    }

    /// An unsigned varint used as a length or count, checked against what is
    /// left so that a corrupt length cannot ask for a huge allocation.
    pub fn uvarint_len(&mut self) -> Result<usize, TsdbError> {
        let at = self.offset();
        let v = self.uvarint()?;
        match usize::try_from(v) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(TsdbError::Truncated {
                file: self.file.to_string(),
                what: self.what.to_string(),
                offset: at,
                needed: v,
                available: self.remaining() as u64,
            }),
        }
    }

    /// A uvarint-length-prefixed UTF-8 string.
    pub fn str_uvarint(&mut self) -> Result<&'a str, TsdbError> {
        let n = self.uvarint_len()?;
        let at = self.offset();
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| {
            TsdbError::malformed(
                self.file,
                self.what,
                format!("string at offset {at} is not UTF-8"),
            )
        })
    }
}

pub(crate) enum Varint {
    Ok(u64, usize),
    /// The buffer ends inside the varint.
    Short,
    /// More than 64 bits.
    Overflow,
}

/// Decodes an unsigned LEB128 varint as Go's `binary.Uvarint` does: at most
/// ten bytes, and the tenth may only hold the top bit.
pub(crate) fn uvarint(buf: &[u8]) -> Varint {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return Varint::Overflow;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Varint::Ok(v, i + 1);
        }
    }
    if buf.len() >= 10 {
        Varint::Overflow
    } else {
        Varint::Short
    }
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_be_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_be_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(buf: &[u8]) -> Dec<'_, 'static> {
        Dec::new(buf, 100, "f", "thing")
    }

    #[test]
    fn uvarint_round_trip() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert!(b.len() <= 10);
            let mut d = dec(&b);
            assert_eq!(d.uvarint().unwrap(), v);
            assert!(d.is_empty());
        }
    }

    #[test]
    fn varint_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            i64::MAX,
            i64::MIN,
            1_700_000_000_000,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(dec(&b).varint().unwrap(), v);
        }
        // Known zig-zag encodings.
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
    }

    #[test]
    fn uvarint_known_bytes() {
        assert_eq!(dec(&[0x80, 0x01]).uvarint().unwrap(), 128);
        assert_eq!(dec(&[0xac, 0x02]).uvarint().unwrap(), 300);
        // Non-minimal encodings are accepted, as Go does.
        assert_eq!(dec(&[0x81, 0x00]).uvarint().unwrap(), 1);
    }

    #[test]
    fn uvarint_errors() {
        // Ends inside the varint.
        let err = dec(&[0x80, 0x80]).uvarint().unwrap_err();
        assert!(
            matches!(err, TsdbError::Truncated { offset: 100, .. }),
            "{err}"
        );
        assert!(matches!(
            dec(&[]).uvarint().unwrap_err(),
            TsdbError::Truncated { .. }
        ));
        // Eleven bytes, or a tenth byte above 1: overflow.
        let long = [0xffu8; 11];
        assert!(matches!(
            dec(&long).uvarint().unwrap_err(),
            TsdbError::Malformed { .. }
        ));
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert!(matches!(
            dec(&ten).uvarint().unwrap_err(),
            TsdbError::Malformed { .. }
        ));
        ten[9] = 0x01;
        assert_eq!(dec(&ten).uvarint().unwrap(), u64::MAX);
    }

    #[test]
    fn uvarint32_rejects_large() {
        let mut b = Vec::new();
        put_uvarint(&mut b, 1 << 32);
        assert!(dec(&b).uvarint32().is_err());
        b.clear();
        put_uvarint(&mut b, u64::from(u32::MAX));
        assert_eq!(dec(&b).uvarint32().unwrap(), u32::MAX);
    }

    #[test]
    fn fixed_width_and_strings() {
        let mut b = Vec::new();
        put_be_u32(&mut b, 0xBAAA_D700);
        put_be_u64(&mut b, 0x0102_0304_0506_0708);
        put_str(&mut b, "héllo");
        put_str(&mut b, "");
        let mut d = dec(&b);
        assert_eq!(d.be_u32().unwrap(), 0xBAAA_D700);
        assert_eq!(d.be_u64().unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(d.str_uvarint().unwrap(), "héllo");
        assert_eq!(d.str_uvarint().unwrap(), "");
        assert!(d.is_empty());
        assert!(matches!(d.u8().unwrap_err(), TsdbError::Truncated { .. }));
    }

    #[test]
    fn string_errors() {
        // Length beyond the buffer.
        let mut d = dec(&[5, b'a', b'b']);
        let err = d.str_uvarint().unwrap_err();
        assert!(
            matches!(err, TsdbError::Truncated { needed: 5, .. }),
            "{err}"
        );
        // A huge length does not allocate, it is an error.
        let mut b = Vec::new();
        put_uvarint(&mut b, u64::MAX);
        assert!(dec(&b).str_uvarint().is_err());
        // Invalid UTF-8.
        let err = dec(&[2, 0xff, 0xfe]).str_uvarint().unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    #[test]
    fn errors_name_file_and_offset() {
        let mut d = dec(&[1, 2]);
        d.skip(1).unwrap();
        let err = d.be_u32().unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("f: truncated thing"), "{text}");
        assert!(text.contains("offset 101"), "{text}");
    }
}
