//! FLV recordings: the file header, then every packet as one tag, byte for byte as the
//! publisher sent it (metadata as FLV files carry it: `onMetaData` without the
//! `@setDataFrame` that RTMP publishers wrap it in).

use bytes::{Bytes, BytesMut};

use crate::fanout::MediaKind;
use crate::media::flv::{self, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

/// `@setDataFrame` as an AMF0 string (marker, u16 length, bytes).
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// Writes FLV tags (stateless: the header comes first, from [`begin`](Self::begin)).
#[derive(Debug, Default)]
pub struct FlvFile;

impl FlvFile {
    /// The 9-byte header with the track flags, and PreviousTagSize0.
    pub fn begin(&mut self, has_audio: bool, has_video: bool, out: &mut BytesMut) {
        flv::write_header(has_audio, has_video, out);
    }

    /// One tag: header, body, PreviousTagSize.
    pub fn write(&mut self, kind: MediaKind, timestamp: u32, payload: &Bytes, out: &mut BytesMut) {
        let (tag_type, body) = match kind {
            MediaKind::Audio => (TAG_AUDIO, &payload[..]),
            MediaKind::Video => (TAG_VIDEO, &payload[..]),
            MediaKind::Data => (TAG_SCRIPT, file_form(payload)),
        };
        // RTMP message lengths are 24 bits, as FLV tag sizes are: this cannot fail.
        let written = flv::write_tag(tag_type, timestamp, body, out);
        debug_assert!(written.is_ok(), "an RTMP payload fits an FLV tag");
    }
}

/// A data message as an FLV file carries it: `@setDataFrame` stripped.
fn file_form(payload: &[u8]) -> &[u8] {
    payload.strip_prefix(SET_DATA_FRAME).unwrap_or(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_data_frame_is_stripped_and_other_data_kept_whole() {
        let wrapped = b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData\x03\x00\x00\x09";
        assert_eq!(
            file_form(wrapped),
            b"\x02\x00\x0aonMetaData\x03\x00\x00\x09"
        );
        let direct = b"\x02\x00\x0aonMetaData\x03\x00\x00\x09";
        assert_eq!(file_form(direct), direct);
        let cue = b"\x02\x00\x0aonCuePoint\x03\x00\x00\x09";
        assert_eq!(file_form(cue), cue);
    }
}
