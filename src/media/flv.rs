//! FLV file container: header, tags, previous-tag-size. Reading (load generator input) and
//! writing (HTTP-FLV, recordings).
//!
//! Layout: `header (9+) | PreviousTagSize0 (0) | tag | PreviousTagSize | tag | ...` where a tag
//! is an 11-byte header (type, UI24 size, UI24 timestamp + UI8 extension, UI24 stream id)
//! followed by the body, which is exactly an RTMP audio/video/data message payload.
//!
//! [`FlvReader`] is a push parser: feed bytes into a `BytesMut`, call
//! [`FlvReader::next_tag`] until it returns `Ok(None)` (need more). Tag bodies are cut out
//! with `split_to().freeze()`, without copying.
//!
//! ```
//! use bytes::BytesMut;
//! use rtmp_edge::media::flv::{write_header, write_tag, FlvReader, TAG_VIDEO};
//! let mut file = BytesMut::new();
//! write_header(false, true, &mut file);
//! write_tag(TAG_VIDEO, 0x0123_4567, &[0x17, 0, 0, 0, 0], &mut file).unwrap();
//! let mut reader = FlvReader::new();
//! let tag = reader.next_tag(&mut file).unwrap().unwrap();
//! assert_eq!((tag.tag_type, tag.timestamp, &tag.data[..]), (TAG_VIDEO, 0x0123_4567, &[0x17, 0, 0, 0, 0][..]));
//! assert!(reader.header().unwrap().has_video);
//! assert_eq!(reader.next_tag(&mut file).unwrap(), None); // only the last PreviousTagSize is left
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Tag type of audio tags (RTMP message type 8).
pub const TAG_AUDIO: u8 = 8;
/// Tag type of video tags (RTMP message type 9).
pub const TAG_VIDEO: u8 = 9;
/// Tag type of script data tags (RTMP AMF0 data message type 18).
pub const TAG_SCRIPT: u8 = 18;
/// Length of the FLV version 1 header.
pub const HEADER_LEN: usize = 9;
/// Length of a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Length of a PreviousTagSize field.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest tag body the UI24 size field can describe.
pub const MAX_TAG_DATA_SIZE: usize = 0x00ff_ffff;
/// Largest header DataOffset accepted (the spec's header is 9 bytes; anything beyond is
/// skipped, but a peer-controlled skip needs a cap).
pub const MAX_HEADER_DATA_OFFSET: u32 = 4096;

const SIGNATURE: &[u8; 3] = b"FLV";
const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;

/// Why an FLV byte stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The file does not start with "FLV" (bytes not yet received are shown as 0).
    #[error("FLV signature is {found:02x?}, not \"FLV\"")]
    BadSignature { found: [u8; 3] },
    /// DataOffset points inside the 9-byte header.
    #[error("FLV header DataOffset {data_offset} is smaller than the 9-byte header")]
    DataOffsetInsideHeader { data_offset: u32 },
    /// DataOffset asks to skip more than [`MAX_HEADER_DATA_OFFSET`] bytes.
    #[error("FLV header DataOffset {data_offset} exceeds the cap of {max}")]
    DataOffsetTooLarge { data_offset: u32, max: u32 },
    /// A tag body larger than the reader's cap (or, when writing, than 24 bits allow).
    #[error("FLV tag body of {size} bytes exceeds the cap of {max}")]
    TagTooLarge { size: usize, max: usize },
}

/// The FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// Version byte (1).
    pub version: u8,
    /// TypeFlagsAudio.
    pub has_audio: bool,
    /// TypeFlagsVideo.
    pub has_video: bool,
    /// Offset of the first PreviousTagSize (9 for version 1).
    pub data_offset: u32,
}

/// One FLV tag; `data` shares the reader's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// [`TAG_AUDIO`], [`TAG_VIDEO`], [`TAG_SCRIPT`] or another value (low 5 bits of the first
    /// byte; the filter bit is dropped).
    pub tag_type: u8,
    /// Milliseconds, the UI24 timestamp extended by its upper byte.
    pub timestamp: u32,
    /// Stream id (always 0 in conforming files).
    pub stream_id: u32,
    /// The tag body, i.e. an RTMP message payload.
    pub data: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectHeader,
    SkipHeaderPadding { remaining: usize },
    ExpectTag { expected_previous_size: u32 },
}

/// Push parser for FLV byte streams. Call [`FlvReader::next_tag`] after each read; it consumes
/// exactly the header and the tags it returns.
#[derive(Debug, Clone)]
pub struct FlvReader {
    state: State,
    header: Option<FlvHeader>,
    max_tag_size: usize,
    previous_size_mismatches: u64,
}

impl Default for FlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvReader {
    /// A reader expecting the FLV header, accepting tag bodies up to [`MAX_TAG_DATA_SIZE`].
    pub fn new() -> Self {
        Self::with_max_tag_size(MAX_TAG_DATA_SIZE)
    }

    /// A reader that rejects tag bodies larger than `max_tag_size` bytes.
    pub fn with_max_tag_size(max_tag_size: usize) -> Self {
        Self {
            state: State::ExpectHeader,
            header: None,
            max_tag_size,
            previous_size_mismatches: 0,
        }
    }

    /// The file header, once parsed.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// PreviousTagSize fields that did not match the previous tag. They are tolerated (some
    /// muxers write 0 or garbage); this counts them for diagnostics.
    pub fn previous_size_mismatches(&self) -> u64 {
        self.previous_size_mismatches
    }

    /// Parses the header if needed, then returns the next tag. `Ok(None)` means more bytes
    /// are needed (at the end of a file, the final PreviousTagSize stays in `buf`).
    pub fn next_tag(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        loop {
            match self.state {
                State::ExpectHeader => {
                    let Some(header) = parse_header(buf)? else {
                        return Ok(None);
                    };
                    buf.advance(HEADER_LEN);
                    self.header = Some(header);
                    self.state = State::SkipHeaderPadding {
                        remaining: header.data_offset as usize - HEADER_LEN,
                    };
                }
                State::SkipHeaderPadding { remaining } => {
                    let n = remaining.min(buf.len());
                    buf.advance(n);
                    if n < remaining {
                        self.state = State::SkipHeaderPadding {
                            remaining: remaining - n,
                        };
                        return Ok(None);
                    }
                    self.state = State::ExpectTag {
                        expected_previous_size: 0,
                    };
                }
                State::ExpectTag {
                    expected_previous_size,
                } => return self.parse_tag(buf, expected_previous_size),
            }
        }
    }

    fn parse_tag(
        &mut self,
        buf: &mut BytesMut,
        expected_previous_size: u32,
    ) -> Result<Option<FlvTag>, FlvError> {
        const PREFIX: usize = PREVIOUS_TAG_SIZE_LEN + TAG_HEADER_LEN;
        if buf.len() < PREFIX {
            return Ok(None);
        }
        let h = &buf[..PREFIX];
        let size = u24(&h[5..8]) as usize;
        if size > self.max_tag_size {
            return Err(FlvError::TagTooLarge {
                size,
                max: self.max_tag_size,
            });
        }
        if buf.len() < PREFIX + size {
            return Ok(None);
        }
        let previous_size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if previous_size != expected_previous_size {
            self.previous_size_mismatches += 1;
        }
        let tag_type = h[4] & 0x1f;
        let timestamp = u24(&h[8..11]) | (u32::from(h[11]) << 24);
        let stream_id = u24(&h[12..15]);
        buf.advance(PREFIX);
        let data = buf.split_to(size).freeze();
        self.state = State::ExpectTag {
            expected_previous_size: (TAG_HEADER_LEN + size) as u32,
        };
        Ok(Some(FlvTag {
            tag_type,
            timestamp,
            stream_id,
            data,
        }))
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Parses the 9-byte header without consuming it; `Ok(None)` when fewer bytes are available.
/// A wrong signature is reported as soon as the bytes present show it.
pub fn parse_header(buf: &[u8]) -> Result<Option<FlvHeader>, FlvError> {
    let seen = buf.len().min(3);
    if buf[..seen] != SIGNATURE[..seen] {
        let mut found = [0u8; 3];
        found[..seen].copy_from_slice(&buf[..seen]);
        return Err(FlvError::BadSignature { found });
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let data_offset = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
    if data_offset < HEADER_LEN as u32 {
        return Err(FlvError::DataOffsetInsideHeader { data_offset });
    }
    if data_offset > MAX_HEADER_DATA_OFFSET {
        return Err(FlvError::DataOffsetTooLarge {
            data_offset,
            max: MAX_HEADER_DATA_OFFSET,
        });
    }
    Ok(Some(FlvHeader {
        version: buf[3],
        has_audio: buf[4] & FLAG_AUDIO != 0,
        has_video: buf[4] & FLAG_VIDEO != 0,
        data_offset,
    }))
}

/// The 9-byte header followed by PreviousTagSize0, ready to send as the start of an
/// HTTP-FLV response.
pub fn header_bytes(has_audio: bool, has_video: bool) -> [u8; HEADER_LEN + PREVIOUS_TAG_SIZE_LEN] {
    let mut flags = 0;
    if has_audio {
        flags |= FLAG_AUDIO;
    }
    if has_video {
        flags |= FLAG_VIDEO;
    }
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// Appends the FLV header and PreviousTagSize0 to `out`.
pub fn write_header(has_audio: bool, has_video: bool, out: &mut BytesMut) {
    out.extend_from_slice(&header_bytes(has_audio, has_video));
}

/// An 11-byte tag header for a body of `data_len` bytes, so HTTP-FLV can write
/// `tag_header | shared payload | previous_tag_size` as three slices without copying.
///
/// `data_len` must be at most [`MAX_TAG_DATA_SIZE`] (always true for RTMP message payloads,
/// whose length field is 24 bits); larger values are truncated to 24 bits.
pub fn tag_header(tag_type: u8, timestamp: u32, data_len: usize) -> [u8; TAG_HEADER_LEN] {
    debug_assert!(data_len <= MAX_TAG_DATA_SIZE, "FLV tag body too large");
    let len = (data_len as u32).to_be_bytes();
    let ts = timestamp.to_be_bytes();
    [
        tag_type & 0x1f,
        len[1],
        len[2],
        len[3],
        ts[1],
        ts[2],
        ts[3],
        ts[0],
        0,
        0,
        0,
    ]
}

/// The PreviousTagSize that follows a tag with a body of `data_len` bytes.
pub fn previous_tag_size(data_len: usize) -> [u8; PREVIOUS_TAG_SIZE_LEN] {
    ((TAG_HEADER_LEN + data_len) as u32).to_be_bytes()
}

/// Appends a whole tag (header, body, PreviousTagSize) to `out`.
pub fn write_tag(
    tag_type: u8,
    timestamp: u32,
    data: &[u8],
    out: &mut BytesMut,
) -> Result<(), FlvError> {
    if data.len() > MAX_TAG_DATA_SIZE {
        return Err(FlvError::TagTooLarge {
            size: data.len(),
            max: MAX_TAG_DATA_SIZE,
        });
    }
    out.reserve(TAG_HEADER_LEN + data.len() + PREVIOUS_TAG_SIZE_LEN);
    out.put_slice(&tag_header(tag_type, timestamp, data.len()));
    out.put_slice(data);
    out.put_slice(&previous_tag_size(data.len()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_file() -> BytesMut {
        let mut f = BytesMut::new();
        write_header(true, true, &mut f);
        write_tag(TAG_SCRIPT, 0, b"\x02\x00\x0aonMetaData", &mut f).unwrap();
        write_tag(TAG_VIDEO, 0, &[0x17, 0, 0, 0, 0, 1], &mut f).unwrap();
        write_tag(TAG_AUDIO, 0x1_00_00_00, &[0xaf, 0, 0x12, 0x10], &mut f).unwrap();
        write_tag(TAG_VIDEO, 40, &[], &mut f).unwrap();
        f
    }

    fn read_all(reader: &mut FlvReader, buf: &mut BytesMut) -> Vec<FlvTag> {
        let mut out = Vec::new();
        while let Some(t) = reader.next_tag(buf).unwrap() {
            out.push(t);
        }
        out
    }

    #[test]
    fn reads_back_what_it_writes_with_extended_timestamps() {
        let mut f = sample_file();
        let mut r = FlvReader::new();
        let tags = read_all(&mut r, &mut f);
        assert_eq!(tags.len(), 4);
        assert_eq!(tags[0].tag_type, TAG_SCRIPT);
        assert_eq!(&tags[1].data[..], &[0x17, 0, 0, 0, 0, 1]);
        assert_eq!(tags[2].timestamp, 0x1_00_00_00);
        assert_eq!((tags[3].timestamp, tags[3].data.len()), (40, 0));
        assert_eq!(r.previous_size_mismatches(), 0);
        assert_eq!(f.len(), PREVIOUS_TAG_SIZE_LEN);
        let h = r.header().unwrap();
        assert!(h.has_audio && h.has_video);
        assert_eq!((h.version, h.data_offset), (1, 9));
    }

    #[test]
    fn split_reads_at_every_offset_yield_the_same_tags() {
        let whole = sample_file();
        let expected = read_all(&mut FlvReader::new(), &mut whole.clone());
        for cut in 0..whole.len() {
            let mut r = FlvReader::new();
            let mut buf = BytesMut::from(&whole[..cut]);
            let mut got = read_all(&mut r, &mut buf);
            buf.extend_from_slice(&whole[cut..]);
            got.extend(read_all(&mut r, &mut buf));
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn byte_at_a_time_feeding_yields_every_tag() {
        let whole = sample_file();
        let mut r = FlvReader::new();
        let mut buf = BytesMut::new();
        let mut n = 0;
        for &b in whole.iter() {
            buf.put_u8(b);
            n += read_all(&mut r, &mut buf).len();
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn rejects_a_bad_signature_from_the_first_byte() {
        let mut buf = BytesMut::from(&b"G"[..]);
        assert!(matches!(
            FlvReader::new().next_tag(&mut buf),
            Err(FlvError::BadSignature { .. })
        ));
        assert_eq!(
            FlvReader::new().next_tag(&mut BytesMut::from(&b"FL"[..])),
            Ok(None)
        );
    }

    #[test]
    fn rejects_data_offsets_inside_the_header_or_beyond_the_cap() {
        let mut h = header_bytes(true, true);
        h[8] = 8;
        assert_eq!(
            parse_header(&h),
            Err(FlvError::DataOffsetInsideHeader { data_offset: 8 })
        );
        h[5..9].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            parse_header(&h),
            Err(FlvError::DataOffsetTooLarge { .. })
        ));
    }

    #[test]
    fn skips_extra_header_bytes_declared_by_data_offset() {
        let mut f = BytesMut::new();
        let mut h = header_bytes(false, true);
        h[8] = 12;
        f.extend_from_slice(&h[..9]);
        f.extend_from_slice(&[0xee; 3]);
        f.extend_from_slice(&[0; 4]);
        write_tag(TAG_VIDEO, 7, &[0x27, 1], &mut f).unwrap();
        let mut r = FlvReader::new();
        let mut first = f.split_to(10);
        assert_eq!(r.next_tag(&mut first), Ok(None));
        first.unsplit(f);
        let tag = r.next_tag(&mut first).unwrap().unwrap();
        assert_eq!((tag.timestamp, &tag.data[..]), (7, &[0x27, 1][..]));
    }

    #[test]
    fn tolerates_but_counts_wrong_previous_tag_sizes() {
        let mut f = sample_file();
        // PreviousTagSize before the second tag: 13 (header+PTS0) + 11 + 13 bytes in.
        let at = 13 + 11 + 13;
        f[at..at + 4].copy_from_slice(&[0, 0, 0, 0]);
        let mut r = FlvReader::new();
        assert_eq!(read_all(&mut r, &mut f).len(), 4);
        assert_eq!(r.previous_size_mismatches(), 1);
    }

    #[test]
    fn rejects_tags_over_the_configured_cap_before_buffering_them() {
        let mut f = sample_file();
        let mut r = FlvReader::with_max_tag_size(8);
        assert_eq!(
            r.next_tag(&mut f),
            Err(FlvError::TagTooLarge { size: 13, max: 8 })
        );
    }

    #[test]
    fn write_tag_refuses_bodies_over_24_bits() {
        let big = vec![0u8; MAX_TAG_DATA_SIZE + 1];
        let mut out = BytesMut::new();
        assert!(write_tag(TAG_VIDEO, 0, &big, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn tag_header_layout_matches_the_spec() {
        assert_eq!(
            tag_header(TAG_VIDEO, 0x0a0b0c0d, 0x010203),
            [9, 1, 2, 3, 0x0b, 0x0c, 0x0d, 0x0a, 0, 0, 0]
        );
        assert_eq!(previous_tag_size(5), [0, 0, 0, 16]);
    }
}
