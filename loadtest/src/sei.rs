//! End-to-end latency stamps in FLV/RTMP AVC video tags.
//!
//! The stamp itself (an H.264 SEI NAL, `user_data_unregistered` with a fixed UUID and the send
//! time as u64 microseconds since the load generator's shared `Instant` base) is built and
//! found by [`rtmp_edge::media::sei`]. This module places it in a tag body: right after the
//! 5-byte AVC video tag header, length-prefixed like every other NAL of the frame, so any
//! server forwards it untouched and players read it back without decoding video.

use rtmp_edge::media::avc::AvcConfig;
use rtmp_edge::media::sei::{build_latency_sei, find_latency_sei};

/// Bytes before the NAL units of a legacy AVC video tag: frame type/codec, AVCPacketType,
/// composition time (3 bytes).
const AVC_TAG_HEADER: usize = 5;

/// True for a legacy AVC (codec 7) tag body of packet type `packet_type`.
fn is_avc(tag_body: &[u8], packet_type: u8) -> bool {
    tag_body.len() >= AVC_TAG_HEADER && tag_body[0] & 0x0f == 7 && tag_body[1] == packet_type
}

/// Inserts a stamp into an AVC NALU packet (`[frame type|7][1][cts ×3][NALs...]`). Returns
/// `None` for anything else (sequence headers, other codecs): those are sent unstamped.
pub fn stamp_avc_frame(tag_body: &[u8], nal_length_size: usize, micros: u64) -> Option<Vec<u8>> {
    if !is_avc(tag_body, 1) || !matches!(nal_length_size, 1 | 2 | 4) {
        return None;
    }
    let sei = build_latency_sei(micros);
    let mut out = Vec::with_capacity(tag_body.len() + sei.len() + nal_length_size);
    out.extend_from_slice(&tag_body[..AVC_TAG_HEADER]);
    let len = (sei.len() as u32).to_be_bytes();
    out.extend_from_slice(&len[4 - nal_length_size..]);
    out.extend_from_slice(&sei);
    out.extend_from_slice(&tag_body[AVC_TAG_HEADER..]);
    Some(out)
}

/// The stamp of an AVC NALU packet, if it carries one.
pub fn find_stamp_in_avc_frame(tag_body: &[u8], nal_length_size: usize) -> Option<u64> {
    if !is_avc(tag_body, 1) {
        return None;
    }
    let size = u8::try_from(nal_length_size).ok()?;
    find_latency_sei(&tag_body[AVC_TAG_HEADER..], size)
}

/// The NAL length size announced by an AVC sequence header tag body. `None` if it is not one.
pub fn nal_length_size_of_avc_sequence_header(tag_body: &[u8]) -> Option<usize> {
    if !is_avc(tag_body, 0) {
        return None;
    }
    AvcConfig::parse(&tag_body[AVC_TAG_HEADER..])
        .ok()
        .map(|c| usize::from(c.nal_length_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avc_frame(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0x27, 1, 0, 0, 0];
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn stamp_round_trips_through_an_avc_frame() {
        let frame = avc_frame(&[&[0x41, 0xaa, 0xbb]]);
        let stamped = stamp_avc_frame(&frame, 4, 123_456_789).unwrap();
        assert_eq!(find_stamp_in_avc_frame(&stamped, 4), Some(123_456_789));
        assert!(stamped.ends_with(&[0, 0, 0, 3, 0x41, 0xaa, 0xbb]));
        assert_eq!(&stamped[..5], &frame[..5]);
    }

    #[test]
    fn stamps_with_zero_runs_round_trip() {
        let frame = avc_frame(&[&[0x41, 0]]);
        for micros in [0, 1, 0x0300, 0x0000_0003_0000_0000, u64::MAX] {
            let stamped = stamp_avc_frame(&frame, 4, micros).unwrap();
            assert_eq!(find_stamp_in_avc_frame(&stamped, 4), Some(micros));
        }
    }

    #[test]
    fn other_user_data_seis_are_ignored() {
        // x264 writes a user_data_unregistered SEI with its own UUID and a version string.
        let mut foreign = vec![6, 5, 20];
        foreign.extend_from_slice(&[0xdc; 16]);
        foreign.extend_from_slice(b"x264");
        foreign.push(0x80);
        let frame = avc_frame(&[&foreign, &[0x65, 1, 2]]);
        assert_eq!(find_stamp_in_avc_frame(&frame, 4), None);
        let stamped = stamp_avc_frame(&frame, 4, 77).unwrap();
        assert_eq!(find_stamp_in_avc_frame(&stamped, 4), Some(77));
    }

    #[test]
    fn sequence_headers_and_other_codecs_are_not_stamped() {
        assert_eq!(stamp_avc_frame(&[0x17, 0, 0, 0, 0, 1], 4, 5), None);
        assert_eq!(stamp_avc_frame(&[0x22, 1, 0, 0, 0, 1], 4, 5), None);
        assert_eq!(stamp_avc_frame(&[0x27, 1, 0, 0, 0, 1], 3, 5), None);
    }

    #[test]
    fn truncated_frames_yield_no_stamp_and_no_panic() {
        let stamped = stamp_avc_frame(&avc_frame(&[&[0x41]]), 4, 9).unwrap();
        for cut in 0..stamped.len() - 5 {
            assert_eq!(
                find_stamp_in_avc_frame(&stamped[..cut], 4),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn two_byte_nal_lengths_are_supported() {
        let frame = [0x27, 1, 0, 0, 0, 0, 2, 0x41, 0x00];
        let stamped = stamp_avc_frame(&frame, 2, 42).unwrap();
        assert_eq!(find_stamp_in_avc_frame(&stamped, 2), Some(42));
    }

    #[test]
    fn nal_length_size_is_read_from_the_sequence_header() {
        let hdr = crate::source::AVC_SEQUENCE_HEADER;
        assert_eq!(nal_length_size_of_avc_sequence_header(hdr), Some(4));
        assert_eq!(nal_length_size_of_avc_sequence_header(&hdr[..5]), None);
        assert_eq!(
            nal_length_size_of_avc_sequence_header(&[0x27, 1, 0, 0, 0]),
            None
        );
    }
}
