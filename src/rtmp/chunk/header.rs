//! Basic header (fmt + csid, 1–3 bytes) and message header (fmt 0/1/2/3) codec.
//!
//! Wire layout (RTMP spec 5.3.1):
//! ```text
//! basic header   1 byte : fmt(2) | csid(6)                      csid 2..=63
//!                2 bytes: fmt(2) | 0      , csid - 64            csid 64..=319
//!                3 bytes: fmt(2) | 1      , (csid - 64) as u16 LE csid 64..=65599
//! message header fmt 0: timestamp(3 BE) length(3 BE) type(1) stream id(4 LE)  11 bytes
//!                fmt 1: delta(3 BE)     length(3 BE) type(1)                   7 bytes
//!                fmt 2: delta(3 BE)                                            3 bytes
//!                fmt 3: —                                                      0 bytes
//! extended ts    4 bytes BE, present when the 3-byte field is 0xFFFFFF
//! ```
//! These are small, allocation-free helpers over byte slices; the decoder and encoder build
//! their fast paths on them.

/// Lowest chunk stream id a message can use (0 and 1 select the longer basic header forms).
pub const MIN_CSID: u32 = 2;
/// Highest chunk stream id the 3-byte basic header can express.
pub const MAX_CSID: u32 = 65599;
/// The 3-byte timestamp value meaning "the real value follows as a 4-byte extended timestamp".
pub const EXTENDED_TIMESTAMP_MARKER: u32 = 0xFF_FFFF;
/// Longest basic header (3 bytes) + fmt 0 message header (11) + extended timestamp (4).
pub const MAX_HEADER_LEN: usize = 3 + 11 + 4;
/// Longest fmt 3 header: basic header (3) + repeated extended timestamp (4).
pub const MAX_FMT3_HEADER_LEN: usize = 3 + 4;

/// Message header length for each fmt (0..=3), not counting the basic header.
pub const MESSAGE_HEADER_LEN: [usize; 4] = [11, 7, 3, 0];

/// A parsed basic header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BasicHeader {
    /// Chunk type, 0..=3: which message header follows.
    pub fmt: u8,
    /// Chunk stream id, 2..=65599.
    pub csid: u32,
    /// Bytes the basic header took on the wire (1, 2 or 3).
    pub len: usize,
}

/// Parses a basic header from the front of `buf`; `None` when `buf` is too short.
#[inline]
pub fn parse_basic_header(buf: &[u8]) -> Option<BasicHeader> {
    let first = *buf.first()?;
    let fmt = first >> 6;
    match first & 0x3F {
        0 => {
            let b1 = *buf.get(1)?;
            Some(BasicHeader {
                fmt,
                csid: 64 + u32::from(b1),
                len: 2,
            })
        }
        1 => {
            let b1 = *buf.get(1)?;
            let b2 = *buf.get(2)?;
            Some(BasicHeader {
                fmt,
                csid: 64 + u32::from(b1) + (u32::from(b2) << 8),
                len: 3,
            })
        }
        id => Some(BasicHeader {
            fmt,
            csid: u32::from(id),
            len: 1,
        }),
    }
}

/// Bytes the shortest basic header for `csid` takes.
#[inline]
pub fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

/// Writes the shortest basic header for `fmt`/`csid` at the front of `out` and returns its
/// length. `csid` must be in 2..=65599 (debug-asserted; out-of-range ids are clamped in release
/// builds). `out` must hold at least 3 bytes.
#[inline]
pub fn write_basic_header(fmt: u8, csid: u32, out: &mut [u8]) -> usize {
    debug_assert!(fmt <= 3, "fmt {fmt} out of range");
    debug_assert!(
        (MIN_CSID..=MAX_CSID).contains(&csid),
        "csid {csid} out of range"
    );
    let csid = csid.clamp(MIN_CSID, MAX_CSID);
    let top = (fmt & 3) << 6;
    match csid {
        2..=63 => {
            out[0] = top | csid as u8;
            1
        }
        64..=319 => {
            out[0] = top;
            out[1] = (csid - 64) as u8;
            2
        }
        _ => {
            let v = csid - 64;
            out[0] = top | 1;
            out[1] = v as u8;
            out[2] = (v >> 8) as u8;
            3
        }
    }
}

/// Reads a 3-byte big-endian value. `b` must hold at least 3 bytes.
#[inline]
pub fn read_u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

/// Reads a 4-byte big-endian value. `b` must hold at least 4 bytes.
#[inline]
pub fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Writes the low 24 bits of `v` big-endian into `out[..3]`.
#[inline]
pub fn write_u24(v: u32, out: &mut [u8]) {
    out[0] = (v >> 16) as u8;
    out[1] = (v >> 8) as u8;
    out[2] = v as u8;
}

/// Writes a complete chunk header (basic header, message header for `fmt`, extended timestamp
/// when `ts_field` needs one) into `out` and returns its length. `ts_field` is the absolute
/// timestamp for fmt 0 and the delta for fmt 1/2; for fmt 3 it is the value to repeat as the
/// extended timestamp (only written when it is ≥ 0xFFFFFF). `out` must hold
/// [`MAX_HEADER_LEN`] bytes.
#[inline]
pub fn write_chunk_header(
    out: &mut [u8],
    fmt: u8,
    csid: u32,
    ts_field: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
) -> usize {
    let mut n = write_basic_header(fmt, csid, out);
    let extended = ts_field >= EXTENDED_TIMESTAMP_MARKER;
    if fmt <= 2 {
        write_u24(ts_field.min(EXTENDED_TIMESTAMP_MARKER), &mut out[n..]);
        n += 3;
        if fmt <= 1 {
            debug_assert!(
                length <= 0xFF_FFFF,
                "message length {length} exceeds 24 bits"
            );
            write_u24(length, &mut out[n..]);
            out[n + 3] = type_id;
            n += 4;
            if fmt == 0 {
                out[n..n + 4].copy_from_slice(&stream_id.to_le_bytes());
                n += 4;
            }
        }
    }
    if extended {
        out[n..n + 4].copy_from_slice(&ts_field.to_be_bytes());
        n += 4;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_byte_basic_header() {
        assert_eq!(
            parse_basic_header(&[0x03]),
            Some(BasicHeader {
                fmt: 0,
                csid: 3,
                len: 1
            })
        );
        assert_eq!(
            parse_basic_header(&[0xC0 | 63]),
            Some(BasicHeader {
                fmt: 3,
                csid: 63,
                len: 1
            })
        );
    }

    #[test]
    fn parses_two_byte_basic_header_as_csid_minus_64() {
        assert_eq!(
            parse_basic_header(&[0x40, 0]),
            Some(BasicHeader {
                fmt: 1,
                csid: 64,
                len: 2
            })
        );
        assert_eq!(parse_basic_header(&[0x80, 255]).map(|h| h.csid), Some(319));
    }

    #[test]
    fn parses_three_byte_basic_header_little_endian() {
        // csid 65599 = 64 + 0xFFFF; csid 320 = 64 + 0x0100 → bytes 0x00, 0x01.
        assert_eq!(
            parse_basic_header(&[0x01, 0xFF, 0xFF]).map(|h| (h.csid, h.len)),
            Some((65599, 3))
        );
        assert_eq!(
            parse_basic_header(&[0xC1, 0x00, 0x01]).map(|h| (h.fmt, h.csid)),
            Some((3, 320))
        );
    }

    #[test]
    fn short_basic_header_is_partial_not_error() {
        assert_eq!(parse_basic_header(&[]), None);
        assert_eq!(parse_basic_header(&[0x00]), None);
        assert_eq!(parse_basic_header(&[0x01, 0x00]), None);
    }

    #[test]
    fn writes_shortest_basic_header_form_and_reads_it_back() {
        for csid in [2u32, 3, 63, 64, 65, 319, 320, 321, 1000, 65598, 65599] {
            for fmt in 0..=3u8 {
                let mut out = [0u8; 3];
                let n = write_basic_header(fmt, csid, &mut out);
                assert_eq!(n, basic_header_len(csid));
                assert_eq!(
                    parse_basic_header(&out[..n]),
                    Some(BasicHeader { fmt, csid, len: n })
                );
            }
        }
    }

    #[test]
    fn writes_spec_fmt0_header_with_little_endian_stream_id() {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = write_chunk_header(&mut out, 0, 3, 0x010203, 0x000456, 20, 0x0A0B0C0D);
        assert_eq!(
            &out[..n],
            &[0x03, 0x01, 0x02, 0x03, 0x00, 0x04, 0x56, 20, 0x0D, 0x0C, 0x0B, 0x0A]
        );
    }

    #[test]
    fn writes_extended_timestamp_after_marker() {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = write_chunk_header(&mut out, 2, 4, 0x0100_0000, 0, 0, 0);
        assert_eq!(&out[..n], &[0x84, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00]);
        let n = write_chunk_header(&mut out, 3, 4, 0xFF_FFFF, 0, 0, 0);
        assert_eq!(&out[..n], &[0xC4, 0x00, 0xFF, 0xFF, 0xFF]);
        let n = write_chunk_header(&mut out, 3, 4, 0xFF_FFFE, 0, 0, 0);
        assert_eq!(&out[..n], &[0xC4]);
    }

    #[test]
    fn writes_fmt1_header_without_stream_id() {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = write_chunk_header(&mut out, 1, 64, 40, 300, 9, 1);
        assert_eq!(&out[..n], &[0x40, 0x00, 0, 0, 40, 0, 0x01, 0x2C, 9]);
    }
}
