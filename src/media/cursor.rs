//! Bounds-checked readers over borrowed slices: a byte cursor for tag headers and
//! configuration records, and a bit reader for AudioSpecificConfig and SPS fields.
//! Every read past the end is [`MediaError::Truncated`], never a panic.

use super::MediaError;

/// Big-endian byte cursor over a borrowed slice.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// `what` names the structure in truncation errors.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize, what: &'static str) -> Self {
        Self {
            buf,
            pos: pos.min(buf.len()),
            what,
        }
    }

    fn truncated(&self) -> MediaError {
        MediaError::Truncated { what: self.what }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        if self.remaining() < n {
            return Err(self.truncated());
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, MediaError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u24(&mut self) -> Result<u32, MediaError> {
        let b = self.take(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    /// Signed 24-bit big-endian (FLV composition time offset).
    pub(crate) fn i24(&mut self) -> Result<i32, MediaError> {
        let v = self.u24()?;
        // Sign-extend bit 23.
        Ok(((v << 8) as i32) >> 8)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, MediaError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn fourcc(&mut self) -> Result<[u8; 4], MediaError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }
}

/// MSB-first bit reader with Exp-Golomb support (H.264 SPS, AAC AudioSpecificConfig).
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    bit: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, bit: 0, what }
    }

    /// Reads `n` (≤ 32) bits.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, MediaError> {
        debug_assert!(n <= 32);
        if self.bit + n as usize > self.buf.len() * 8 {
            return Err(MediaError::Truncated { what: self.what });
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            let byte = self.buf[self.bit / 8];
            let b = (byte >> (7 - (self.bit % 8))) & 1;
            v = (v << 1) | u64::from(b);
            self.bit += 1;
        }
        Ok(v as u32)
    }

    pub(crate) fn flag(&mut self) -> Result<bool, MediaError> {
        Ok(self.bits(1)? == 1)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        if self.bit + n > self.buf.len() * 8 {
            return Err(MediaError::Truncated { what: self.what });
        }
        self.bit += n;
        Ok(())
    }

    /// Unsigned Exp-Golomb `ue(v)`; values above `u32::MAX` are reported as truncation of
    /// a malformed field.
    pub(crate) fn ue(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0u32;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(MediaError::Truncated { what: self.what });
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Signed Exp-Golomb `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i32, MediaError> {
        let k = self.ue()?;
        let mag = k.div_ceil(2) as i32;
        Ok(if k % 2 == 1 { mag } else { -mag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i24_sign_extends_negative_offsets() {
        let mut c = Cursor::new(&[0xff, 0xff, 0xfe], "t");
        assert_eq!(c.i24().unwrap(), -2);
        let mut c = Cursor::new(&[0x00, 0x01, 0x00], "t");
        assert_eq!(c.i24().unwrap(), 256);
    }

    #[test]
    fn reading_past_the_end_is_truncation_not_panic() {
        let mut c = Cursor::new(&[1, 2, 3], "thing");
        assert_eq!(c.u32(), Err(MediaError::Truncated { what: "thing" }));
        assert_eq!(c.u24().unwrap(), 0x010203);
        assert!(c.u8().is_err());
    }

    #[test]
    fn exp_golomb_decodes_small_values() {
        // 1 | 010 | 011 | 00100 | 00101 -> 0, 1, 2, 3, 4
        let bits = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&bits, "t");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.ue().unwrap(), 4);
        let mut r = BitReader::new(&[0b0100_1100], "t");
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
    }

    #[test]
    fn exp_golomb_with_no_stop_bit_is_an_error() {
        let mut r = BitReader::new(&[0, 0, 0, 0, 0], "t");
        assert!(r.ue().is_err());
    }
}
