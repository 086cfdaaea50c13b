//! Latency stamps for the load generator: an SEI `user_data_unregistered` message (payload
//! type 5) carrying [`LATENCY_UUID`] and the send time in microseconds (u64, big endian).
//!
//! The publisher inserts the NAL unit from [`build_latency_sei`] (length-prefixed) in front of
//! a frame's NAL units; the player finds it again with [`find_latency_sei`]. Decoders ignore
//! unregistered user data, so the stream stays playable.
//!
//! ```
//! use rtmp_edge::media::sei::{build_latency_sei, find_latency_sei};
//! let nal = build_latency_sei(1_700_000_000_000_000);
//! let mut frame = (nal.len() as u32).to_be_bytes().to_vec();
//! frame.extend_from_slice(&nal);
//! assert_eq!(find_latency_sei(&frame, 4), Some(1_700_000_000_000_000));
//! ```

use super::avc::{escape_rbsp, nal_units, unescape_rbsp};

/// UUID identifying rtmp-edge latency stamps (ASCII `rtmp-edge-lat-v1`).
pub const LATENCY_UUID: [u8; 16] = *b"rtmp-edge-lat-v1";

/// SEI payload type `user_data_unregistered`.
const USER_DATA_UNREGISTERED: u32 = 5;
/// UUID + u64 send time.
const STAMP_LEN: usize = 24;
/// H.264 NAL header: forbidden 0, nal_ref_idc 0, type 6 (SEI).
const H264_SEI_HEADER: u8 = 0x06;
/// HEVC NAL header: type 39 (prefix SEI), layer 0, temporal id plus one 1.
const HEVC_PREFIX_SEI_HEADER: [u8; 2] = [39 << 1, 0x01];

fn stamp_rbsp(micros: u64) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(3 + STAMP_LEN);
    rbsp.push(USER_DATA_UNREGISTERED as u8);
    rbsp.push(STAMP_LEN as u8);
    rbsp.extend_from_slice(&LATENCY_UUID);
    rbsp.extend_from_slice(&micros.to_be_bytes());
    rbsp.push(0x80); // rbsp_trailing_bits
    rbsp
}

/// A complete H.264 SEI NAL unit (header byte included, no length prefix) stamping `micros`,
/// with emulation prevention applied.
pub fn build_latency_sei(micros: u64) -> Vec<u8> {
    let mut nal = vec![H264_SEI_HEADER];
    nal.extend_from_slice(&escape_rbsp(&stamp_rbsp(micros)));
    nal
}

/// The HEVC prefix SEI NAL unit (2-byte header) stamping `micros`.
pub fn build_latency_sei_hevc(micros: u64) -> Vec<u8> {
    let mut nal = HEVC_PREFIX_SEI_HEADER.to_vec();
    nal.extend_from_slice(&escape_rbsp(&stamp_rbsp(micros)));
    nal
}

/// Scans an H.264 frame's length-prefixed NAL units for a latency stamp. Stops quietly at the
/// first truncated unit.
pub fn find_latency_sei(frame_data: &[u8], nal_length_size: u8) -> Option<u64> {
    nal_units(frame_data, nal_length_size)
        .map_while(Result::ok)
        .filter(|nal| nal.first().is_some_and(|b| b & 0x1f == H264_SEI_HEADER))
        .find_map(|nal| stamp_in_sei_rbsp(&unescape_rbsp(&nal[1..])))
}

/// Scans an HEVC frame's length-prefixed NAL units for a latency stamp (prefix SEI).
pub fn find_latency_sei_hevc(frame_data: &[u8], nal_length_size: u8) -> Option<u64> {
    nal_units(frame_data, nal_length_size)
        .map_while(Result::ok)
        .filter(|nal| nal.len() >= 2 && (nal[0] >> 1) & 0x3f == HEVC_PREFIX_SEI_HEADER[0] >> 1)
        .find_map(|nal| stamp_in_sei_rbsp(&unescape_rbsp(&nal[2..])))
}

/// Walks the SEI messages of an unescaped SEI RBSP.
fn stamp_in_sei_rbsp(rbsp: &[u8]) -> Option<u64> {
    let mut rest = rbsp;
    // Each message consumes at least two bytes, so this terminates.
    while rest.len() >= 2 && rest != [0x80] {
        let (payload_type, r) = read_ff_coded(rest)?;
        let (payload_size, r) = read_ff_coded(r)?;
        let size = usize::try_from(payload_size).ok()?;
        if r.len() < size {
            return None;
        }
        let (payload, r) = r.split_at(size);
        if payload_type == USER_DATA_UNREGISTERED
            && size >= STAMP_LEN
            && payload[..16] == LATENCY_UUID
        {
            let mut t = [0u8; 8];
            t.copy_from_slice(&payload[16..24]);
            return Some(u64::from_be_bytes(t));
        }
        rest = r;
    }
    None
}

/// SEI payload type/size coding: a run of 0xFF bytes each adding 255, then a final byte.
fn read_ff_coded(buf: &[u8]) -> Option<(u32, &[u8])> {
    let mut v = 0u32;
    for (i, &b) in buf.iter().enumerate() {
        v = v.checked_add(u32::from(b))?;
        if b != 0xff {
            return Some((v, &buf[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixed(nals: &[&[u8]], size: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            let len = (nal.len() as u32).to_be_bytes();
            out.extend_from_slice(&len[4 - usize::from(size)..]);
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn round_trips_a_stamp_among_other_nal_units() {
        let sei = build_latency_sei(123_456_789);
        let frame = prefixed(&[&[0x09, 0xf0], &sei, &[0x65, 0x88, 0x84]], 4);
        assert_eq!(find_latency_sei(&frame, 4), Some(123_456_789));
    }

    #[test]
    fn stamps_with_zero_bytes_get_emulation_prevention_and_still_round_trip() {
        // Time 0 and 1 produce runs of zero bytes inside the RBSP.
        for micros in [0u64, 1, 2, 3, 0x0000_0100_0000_0003, u64::MAX] {
            let sei = build_latency_sei(micros);
            assert!(
                !sei[1..]
                    .windows(3)
                    .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
                "unescaped start code in {sei:02x?}"
            );
            for size in [1u8, 2, 4] {
                let frame = prefixed(&[&sei], size);
                assert_eq!(find_latency_sei(&frame, size), Some(micros));
            }
        }
        let zero = build_latency_sei(0);
        assert!(zero.windows(3).any(|w| w == [0, 0, 3]));
    }

    #[test]
    fn ignores_sei_with_another_uuid_or_payload_type() {
        let mut other = vec![0x06, 5, 24];
        other.extend_from_slice(&[0xaa; 16]);
        other.extend_from_slice(&7u64.to_be_bytes());
        other.push(0x80);
        let mut recovery = vec![0x06, 6, 1, 0x84, 0x80];
        assert_eq!(
            find_latency_sei(&prefixed(&[&other, &recovery], 4), 4),
            None
        );
        // A stamp after another SEI message in the same NAL unit is found.
        recovery.pop();
        recovery.extend_from_slice(&escape_rbsp(&stamp_rbsp(42)));
        assert_eq!(find_latency_sei(&prefixed(&[&recovery], 4), 4), Some(42));
    }

    #[test]
    fn truncated_frames_never_panic_and_find_nothing() {
        let sei = build_latency_sei(99);
        let frame = prefixed(&[&sei], 4);
        for cut in 0..frame.len() {
            assert_eq!(find_latency_sei(&frame[..cut], 4), None, "cut {cut}");
        }
    }

    #[test]
    fn hevc_stamps_round_trip() {
        let sei = build_latency_sei_hevc(555);
        let frame = prefixed(&[&[0x26, 0x01, 0xaf], &sei], 4);
        assert_eq!(find_latency_sei_hevc(&frame, 4), Some(555));
        assert_eq!(find_latency_sei(&frame, 4), None);
    }
}
