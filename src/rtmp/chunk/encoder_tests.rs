//! Unit tests for [`ChunkEncoder`] header compression and [`EncodedMessage`] slicing.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::rtmp::chunk::ChunkDecoder;
use crate::rtmp::Limits;

fn encode(enc: &mut ChunkEncoder, csid: u32, ts: u32, type_id: u8, sid: u32, p: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    enc.encode(csid, ts, type_id, sid, p, &mut out);
    out.to_vec()
}

#[test]
fn compresses_headers_like_spec_example_one() {
    // Spec 5.3.2.1 in reverse: fmt 0, fmt 2 (delta 20), fmt 3, fmt 3.
    let mut enc = ChunkEncoder::new();
    let p = [0u8; 32];
    let a = encode(&mut enc, 3, 1000, 8, 12345, &p);
    assert_eq!(
        &a[..12],
        &[0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 0x39, 0x30, 0, 0]
    );
    let b = encode(&mut enc, 3, 1020, 8, 12345, &p);
    assert_eq!(&b[..4], &[0x83, 0x00, 0x00, 0x14]);
    let c = encode(&mut enc, 3, 1040, 8, 12345, &p);
    assert_eq!(c.len(), 33);
    assert_eq!(c[0], 0xC3);
}

#[test]
fn uses_fmt1_when_length_or_type_changes() {
    let mut enc = ChunkEncoder::new();
    encode(&mut enc, 3, 0, 8, 1, &[0; 4]);
    let b = encode(&mut enc, 3, 10, 8, 1, &[0; 5]);
    assert_eq!(&b[..8], &[0x43, 0, 0, 10, 0, 0, 5, 8]);
    let c = encode(&mut enc, 3, 10, 9, 1, &[0; 5]);
    assert_eq!(&c[..8], &[0x43, 0, 0, 0, 0, 0, 5, 9]);
}

#[test]
fn uses_fmt0_when_stream_id_changes_or_time_goes_backwards() {
    let mut enc = ChunkEncoder::new();
    encode(&mut enc, 3, 100, 8, 1, &[0; 4]);
    assert_eq!(encode(&mut enc, 3, 110, 8, 2, &[0; 4])[0] >> 6, 0);
    assert_eq!(encode(&mut enc, 3, 50, 8, 2, &[0; 4])[0] >> 6, 0);
}

#[test]
fn never_sends_fmt3_new_message_right_after_fmt0() {
    // Receivers disagree on the delta a fmt 3 repeats after fmt 0; a fmt 2 is unambiguous.
    let mut enc = ChunkEncoder::new();
    encode(&mut enc, 3, 40, 8, 1, &[0; 4]);
    assert_eq!(encode(&mut enc, 3, 80, 8, 1, &[0; 4])[0] >> 6, 2);
    assert_eq!(encode(&mut enc, 3, 120, 8, 1, &[0; 4])[0] >> 6, 3);
}

#[test]
fn repeats_extended_timestamp_on_continuation_chunks() {
    let mut enc = ChunkEncoder::new();
    let out = encode(&mut enc, 3, 0x0100_0000, 9, 1, &[7; 200]);
    // 1 + 11 + 4 header, 128 payload, then fmt 3 + repeated extended timestamp.
    assert_eq!(&out[1..4], &[0xFF, 0xFF, 0xFF]);
    assert_eq!(&out[12..16], &[1, 0, 0, 0]);
    assert_eq!(&out[144..149], &[0xC3, 1, 0, 0, 0]);
    assert_eq!(out.len(), 16 + 128 + 5 + 72);
}

#[test]
fn set_chunk_size_changes_chunking() {
    let mut enc = ChunkEncoder::new();
    enc.set_chunk_size(4096);
    assert_eq!(enc.chunk_size(), 4096);
    let out = encode(&mut enc, 3, 0, 9, 1, &[7; 4096]);
    assert_eq!(out.len(), 12 + 4096);
    enc.set_chunk_size(1);
    let out = encode(&mut enc, 4, 0, 9, 1, &[7; 3]);
    assert_eq!(
        out,
        [0x04, 0, 0, 0, 0, 0, 3, 9, 1, 0, 0, 0, 7, 0xC4, 7, 0xC4, 7]
    );
}

#[test]
fn reset_headers_makes_next_message_fmt0() {
    let mut enc = ChunkEncoder::new();
    encode(&mut enc, 3, 0, 8, 1, &[0; 4]);
    encode(&mut enc, 400, 0, 8, 1, &[0; 4]);
    enc.reset_headers();
    assert_eq!(encode(&mut enc, 3, 10, 8, 1, &[0; 4])[0] >> 6, 0);
    assert_eq!(encode(&mut enc, 400, 10, 8, 1, &[0; 4])[0] >> 6, 0);
}

fn wire_of(m: &EncodedMessage, offset: usize) -> Vec<u8> {
    let mut v = Vec::new();
    m.for_each_slice(offset, |s| {
        assert!(!s.is_empty(), "no empty slices");
        v.extend_from_slice(s);
        true
    });
    v
}

#[test]
fn encoded_message_matches_encoder_fmt0_output() {
    for (ts, len, cs) in [
        (0u32, 0usize, 128u32),
        (5, 300, 128),
        (0x0100_0000, 300, 100),
    ] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let m = EncodedMessage::new(6, ts, 9, 1, Bytes::from(payload.clone()), cs);
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(cs);
        let expected = encode(&mut enc, 6, ts, 9, 1, &payload);
        assert_eq!(wire_of(&m, 0), expected);
        assert_eq!(m.wire_len(), expected.len());
        let mut out = BytesMut::new();
        m.write_to(&mut out);
        assert_eq!(&out[..], &expected[..]);
    }
}

#[test]
fn for_each_slice_resumes_at_every_offset() {
    let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    for ts in [10u32, 0xFFFF_FFFF] {
        let m = EncodedMessage::new(300, ts, 9, 1, Bytes::from(payload.clone()), 128);
        let full = wire_of(&m, 0);
        assert_eq!(full.len(), m.wire_len());
        for off in 0..=full.len() + 3 {
            assert_eq!(
                wire_of(&m, off),
                full[off.min(full.len())..],
                "offset {off}"
            );
        }
    }
}

#[test]
fn for_each_slice_stops_when_asked() {
    let m = EncodedMessage::new(6, 0, 9, 1, Bytes::from(vec![0u8; 1000]), 128);
    let mut n = 0;
    m.for_each_slice(0, |_| {
        n += 1;
        n < 3
    });
    assert_eq!(n, 3);
    let mut all = 0;
    m.for_each_slice(0, |_| {
        all += 1;
        true
    });
    assert_eq!(all, m.slice_count());
}

#[test]
fn encoded_message_decodes_back() {
    let payload = Bytes::from((0..5000u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    let m = EncodedMessage::new(65599, 0xFFFF_FFFE, 9, 7, payload.clone(), 1000);
    let mut wire = BytesMut::new();
    m.write_to(&mut wire);
    let mut d = ChunkDecoder::new(&Limits::default());
    d.set_chunk_size(1000).unwrap();
    let raw = d.decode(&mut wire).unwrap().unwrap();
    assert_eq!(raw, m.to_raw());
    assert_eq!(raw.payload, payload);
    assert!(wire.is_empty());
}

#[test]
fn with_stream_id_rewrites_the_header_and_shares_the_payload() {
    let m = EncodedMessage::new(6, 40, 9, 1, Bytes::from(vec![1u8; 300]), 128);
    let n = m.with_stream_id(0x0102_0304);
    assert_eq!(n.stream_id(), 0x0102_0304);
    assert_eq!(&n.header()[8..12], &[4, 3, 2, 1]);
    assert_eq!(n.payload().as_ptr(), m.payload().as_ptr());
    assert_eq!(n.continuation_header(), m.continuation_header());
    assert_eq!(
        (n.timestamp(), n.type_id(), n.csid(), n.chunk_size()),
        (40, 9, 6, 128)
    );
}

#[test]
fn with_timestamp_rewrites_both_headers_and_shares_the_payload() {
    let m = EncodedMessage::new(6, 0, 9, 1, Bytes::from(vec![1u8; 300]), 128);
    for ts in [2020, 0xFFFF_FFF0] {
        let n = m.with_timestamp(ts);
        assert_eq!(n.payload().as_ptr(), m.payload().as_ptr());
        assert_eq!(
            (n.stream_id(), n.type_id(), n.csid(), n.chunk_size()),
            (1, 9, 6, 128)
        );
        let mut wire = BytesMut::new();
        n.write_to(&mut wire);
        let mut d = ChunkDecoder::new(&Limits::default());
        d.set_chunk_size(128).unwrap();
        let raw = d.decode(&mut wire).unwrap().unwrap();
        assert_eq!(raw.timestamp, ts);
        assert_eq!(raw.payload, m.payload());
        assert!(
            wire.is_empty(),
            "continuations carry the new extended timestamp"
        );
    }
}

#[test]
fn cloning_an_encoded_message_shares_the_payload() {
    let m = EncodedMessage::new(6, 40, 9, 1, Bytes::from(vec![1u8; 300]), 128);
    let c = m.clone();
    assert_eq!(c.payload().as_ptr(), m.payload().as_ptr());
    assert_eq!(
        std::mem::size_of::<EncodedMessage>(),
        std::mem::size_of::<usize>()
    );
    assert_eq!(Arc::strong_count(&m.inner), 2);
    assert_eq!(wire_of(&c, 0), wire_of(&m, 0));
}

#[test]
fn a_message_built_in_a_spare_allocation_is_the_same_as_a_new_one_and_allocates_nothing() {
    let old = EncodedMessage::new(6, 40, 9, 1, Bytes::from(vec![1u8; 300]), 128);
    let payload = Bytes::from(vec![2u8; 5000]);
    let at = std::sync::Arc::as_ptr(&old.inner);
    let spare = old.into_spare().expect("nothing else holds it");
    let reused = EncodedMessage::new_in(Some(spare), 7, 0x0100_0000, 8, 1, payload.clone(), 4096);
    let fresh = EncodedMessage::new(7, 0x0100_0000, 8, 1, payload, 4096);
    assert_eq!(
        std::sync::Arc::as_ptr(&reused.inner),
        at,
        "the same allocation"
    );
    assert_eq!(wire_of(&reused, 0), wire_of(&fresh, 0));
    assert_eq!(reused.wire_len(), fresh.wire_len());
}

#[test]
fn a_message_still_shared_gives_no_spare() {
    let m = EncodedMessage::new(6, 40, 9, 1, Bytes::from(vec![1u8; 300]), 128);
    let queued = m.clone();
    assert!(m.into_spare().is_none());
    assert_eq!(
        queued.payload().len(),
        300,
        "the other holder's copy is untouched"
    );
}
