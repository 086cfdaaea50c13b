//! End-to-end latency stamps carried inside H.264 video frames.
//!
//! A publisher inserts one SEI NAL unit (type 6) holding a `user_data_unregistered` message
//! (payload type 5) with a fixed 16-byte UUID followed by the send time as a big-endian u64 of
//! microseconds since the load generator's shared `Instant` base. The NAL goes into the AVCC
//! frame data (length-prefixed, like every other NAL of the frame), so any server forwards it
//! untouched and players read it back without decoding video.
//!
//! The RBSP is written with emulation prevention (a 0x03 after two zero bytes when the next byte
//! is 0..=3), which is needed because the timestamp bytes can contain zero runs.

/// Identifies our stamp among other user data SEIs (x264 writes its version string in one).
pub const LATENCY_UUID: [u8; 16] = *b"rtmp-load-lat-v1";

/// NAL unit type of an SEI.
const NAL_SEI: u8 = 6;
/// SEI payload type `user_data_unregistered`.
const SEI_USER_DATA_UNREGISTERED: u8 = 5;
/// UUID + u64 microseconds.
const STAMP_PAYLOAD_LEN: usize = 16 + 8;

/// The SEI NAL unit (header byte included, no length prefix) stamping `micros`.
pub fn build_latency_sei(micros: u64) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(2 + STAMP_PAYLOAD_LEN + 1);
    rbsp.push(SEI_USER_DATA_UNREGISTERED);
    rbsp.push(STAMP_PAYLOAD_LEN as u8);
    rbsp.extend_from_slice(&LATENCY_UUID);
    rbsp.extend_from_slice(&micros.to_be_bytes());
    rbsp.push(0x80); // rbsp_stop_one_bit + alignment
    let mut nal = Vec::with_capacity(rbsp.len() + 8);
    nal.push(NAL_SEI);
    escape_into(&rbsp, &mut nal);
    nal
}

/// Appends `rbsp` to `out` with emulation prevention bytes inserted.
fn escape_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Removes emulation prevention bytes.
fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// Reads our stamp from one SEI NAL unit (header byte included). `None` if it holds none.
pub fn stamp_in_sei_nal(nal: &[u8]) -> Option<u64> {
    if nal.first().map(|h| h & 0x1f) != Some(NAL_SEI) {
        return None;
    }
    let rbsp = unescape(&nal[1..]);
    let mut p = &rbsp[..];
    // sei_message()* until the trailing bits.
    while p.len() > 1 {
        let (ptype, rest) = read_sei_varint(p)?;
        let (psize, rest) = read_sei_varint(rest)?;
        if rest.len() < psize {
            return None;
        }
        let (payload, rest) = rest.split_at(psize);
        if ptype == usize::from(SEI_USER_DATA_UNREGISTERED)
            && payload.len() >= STAMP_PAYLOAD_LEN
            && payload[..16] == LATENCY_UUID
        {
            let mut t = [0u8; 8];
            t.copy_from_slice(&payload[16..24]);
            return Some(u64::from_be_bytes(t));
        }
        p = rest;
    }
    None
}

/// SEI payload type/size coding: a run of 0xFF bytes (255 each) plus a final byte.
fn read_sei_varint(mut p: &[u8]) -> Option<(usize, &[u8])> {
    let mut v = 0usize;
    loop {
        let (&b, rest) = p.split_first()?;
        p = rest;
        v += usize::from(b);
        if b != 0xff {
            return Some((v, p));
        }
    }
}

/// Inserts a stamp into a legacy-FLV AVC video tag body (`[frame type|codec 7][AVCPacketType 1]
/// [composition time ×3][NALs...]`) right after the 5-byte header. Returns `None` for anything
/// that is not an AVC NALU packet (sequence headers, other codecs): those are sent unstamped.
pub fn stamp_avc_frame(tag_body: &[u8], nal_length_size: usize, micros: u64) -> Option<Vec<u8>> {
    if tag_body.len() < 5 || tag_body[0] & 0x0f != 7 || tag_body[1] != 1 {
        return None;
    }
    if !(1..=4).contains(&nal_length_size) {
        return None;
    }
    let sei = build_latency_sei(micros);
    let mut out = Vec::with_capacity(tag_body.len() + sei.len() + nal_length_size);
    out.extend_from_slice(&tag_body[..5]);
    let len = (sei.len() as u32).to_be_bytes();
    out.extend_from_slice(&len[4 - nal_length_size..]);
    out.extend_from_slice(&sei);
    out.extend_from_slice(&tag_body[5..]);
    Some(out)
}

/// Finds our stamp in an AVC video tag body: walks the length-prefixed NAL units of an AVC NALU
/// packet and looks inside each SEI. `None` when there is no stamp or the body is not one.
pub fn find_stamp_in_avc_frame(tag_body: &[u8], nal_length_size: usize) -> Option<u64> {
    if tag_body.len() < 5 || tag_body[0] & 0x0f != 7 || tag_body[1] != 1 {
        return None;
    }
    let mut p = &tag_body[5..];
    while p.len() > nal_length_size {
        let mut len = 0usize;
        for &b in &p[..nal_length_size] {
            len = (len << 8) | usize::from(b);
        }
        p = &p[nal_length_size..];
        if len > p.len() {
            return None;
        }
        let (nal, rest) = p.split_at(len);
        if let Some(stamp) = stamp_in_sei_nal(nal) {
            return Some(stamp);
        }
        p = rest;
    }
    None
}

/// The NAL length size (1, 2 or 4) announced by an AVC sequence header tag body
/// (`lengthSizeMinusOne` of the AVCDecoderConfigurationRecord). `None` if it is not one.
pub fn nal_length_size_of_avc_sequence_header(tag_body: &[u8]) -> Option<usize> {
    if tag_body.len() < 10 || tag_body[0] & 0x0f != 7 || tag_body[1] != 0 {
        return None;
    }
    Some(usize::from(tag_body[5 + 4] & 0x03) + 1)
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
        assert!(stamped.ends_with(&[0x41, 0xaa, 0xbb]));
    }

    #[test]
    fn zero_runs_in_the_timestamp_are_escaped_and_read_back() {
        // 0x0000_0000_0000_0001 has long zero runs followed by a byte <= 3.
        let nal = build_latency_sei(1);
        let body = &nal[1..];
        assert!(
            !body.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
            "no start-code-like sequence may remain: {body:02x?}"
        );
        assert_eq!(stamp_in_sei_nal(&nal), Some(1));
        for micros in [0, 0x0300, 0x0000_0003_0000_0000, u64::MAX] {
            assert_eq!(stamp_in_sei_nal(&build_latency_sei(micros)), Some(micros));
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
    }

    #[test]
    fn truncated_frames_yield_no_stamp_and_no_panic() {
        let stamped = stamp_avc_frame(&avc_frame(&[&[0x41]]), 4, 9).unwrap();
        for cut in 0..stamped.len() - 2 {
            let _ = find_stamp_in_avc_frame(&stamped[..cut], 4);
        }
        assert_eq!(find_stamp_in_avc_frame(&stamped[..20], 4), None);
    }

    #[test]
    fn two_byte_nal_lengths_are_supported() {
        let mut frame = vec![0x27, 1, 0, 0, 0, 0, 2, 0x41, 0x00];
        frame.truncate(9);
        let stamped = stamp_avc_frame(&frame, 2, 42).unwrap();
        assert_eq!(find_stamp_in_avc_frame(&stamped, 2), Some(42));
    }

    #[test]
    fn nal_length_size_is_read_from_the_sequence_header() {
        let hdr = [0x17, 0, 0, 0, 0, 1, 0x4d, 0x40, 0x0d, 0xff, 0xe1];
        assert_eq!(nal_length_size_of_avc_sequence_header(&hdr), Some(4));
        assert_eq!(nal_length_size_of_avc_sequence_header(&hdr[..5]), None);
    }
}
