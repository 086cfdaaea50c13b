//! Unit tests for [`ChunkDecoder`]: every header form, extended timestamps, assembly, errors.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::rtmp::chunk::blocks::MAX_POOLED;
use crate::rtmp::chunk::header::{write_chunk_header, MAX_HEADER_LEN};

fn decoder() -> ChunkDecoder {
    ChunkDecoder::new(&Limits::default())
}

fn hdr(out: &mut BytesMut, fmt: u8, csid: u32, ts: u32, len: u32, type_id: u8, sid: u32) {
    let mut h = [0u8; MAX_HEADER_LEN];
    let n = write_chunk_header(&mut h, fmt, csid, ts, len, type_id, sid);
    out.put_slice(&h[..n]);
}

fn decode_all(d: &mut ChunkDecoder, buf: &mut BytesMut) -> Vec<RawMessage> {
    let mut v = Vec::new();
    while let Some(m) = d.decode(buf).expect("valid stream") {
        v.push(m);
    }
    v
}

#[test]
fn decodes_spec_example_one_with_fmt2_and_fmt3_deltas() {
    // RTMP spec 5.3.2.1: four audio messages on csid 3, stream 12345, 32 bytes each,
    // timestamps 1000, 1020, 1040, 1060: fmt 0, fmt 2 (delta 20), fmt 3, fmt 3.
    let mut wire = BytesMut::new();
    wire.put_slice(&[
        0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 0x39, 0x30, 0, 0,
    ]);
    wire.put_slice(&[0xAA; 32]);
    wire.put_slice(&[0x83, 0x00, 0x00, 0x14]);
    wire.put_slice(&[0xBB; 32]);
    wire.put_slice(&[0xC3]);
    wire.put_slice(&[0xCC; 32]);
    wire.put_slice(&[0xC3]);
    wire.put_slice(&[0xDD; 32]);
    let total = wire.len() as u64;
    let mut d = decoder();
    let msgs = decode_all(&mut d, &mut wire);
    let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, [1000, 1020, 1040, 1060]);
    assert!(msgs
        .iter()
        .all(|m| m.csid == 3 && m.type_id == 8 && m.stream_id == 12345));
    assert_eq!(&msgs[3].payload[..], &[0xDD; 32]);
    assert_eq!(d.bytes_received(), total);
}

#[test]
fn decodes_spec_example_two_message_split_into_three_chunks() {
    // RTMP spec 5.3.2.2: a 307-byte video message on csid 4 at chunk size 128.
    let mut wire = BytesMut::new();
    wire.put_slice(&[
        0x04, 0x00, 0x03, 0xE8, 0x00, 0x01, 0x33, 0x09, 0x39, 0x30, 0, 0,
    ]);
    let payload: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
    wire.put_slice(&payload[..128]);
    wire.put_u8(0xC4);
    wire.put_slice(&payload[128..256]);
    wire.put_u8(0xC4);
    wire.put_slice(&payload[256..]);
    let mut d = decoder();
    let m = d.decode(&mut wire).unwrap().unwrap();
    assert_eq!((m.timestamp, m.type_id, m.stream_id), (1000, 9, 12345));
    assert_eq!(&m.payload[..], &payload[..]);
    assert!(wire.is_empty());
    assert_eq!(d.decode(&mut wire), Ok(None));
}

#[test]
fn decodes_two_and_three_byte_basic_headers() {
    for csid in [64u32, 319, 320, 65599] {
        let mut wire = BytesMut::new();
        hdr(&mut wire, 0, csid, 5, 3, 20, 1);
        wire.put_slice(b"abc");
        let m = decoder().decode(&mut wire).unwrap().unwrap();
        assert_eq!(m.csid, csid);
        assert_eq!(&m.payload[..], b"abc");
    }
}

#[test]
fn accepts_three_byte_form_for_a_small_csid() {
    // csid 100 written in the (legal, longer) 3-byte form: 100 - 64 = 36, little-endian.
    let mut wire = BytesMut::from(&[0x01, 36, 0, 0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0x5A][..]);
    let m = decoder().decode(&mut wire).unwrap().unwrap();
    assert_eq!(m.csid, 100);
    assert_eq!(&m.payload[..], &[0x5A]);
}

#[test]
fn fmt0_extended_timestamp_is_absolute() {
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0x1234_5678, 1, 8, 1);
    wire.put_u8(1);
    let m = decoder().decode(&mut wire).unwrap().unwrap();
    assert_eq!(m.timestamp, 0x1234_5678);
}

#[test]
fn fmt1_and_fmt2_extended_deltas_accumulate_with_wraparound() {
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0xFFFF_FFF0, 1, 8, 1);
    wire.put_u8(0);
    hdr(&mut wire, 1, 3, 0x20, 2, 9, 0);
    wire.put_slice(&[0, 0]);
    hdr(&mut wire, 2, 3, 0x0100_0000, 0, 0, 0);
    wire.put_slice(&[0, 0]);
    let msgs = decode_all(&mut decoder(), &mut wire);
    let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, [0xFFFF_FFF0, 0x10, 0x0100_0010]);
    assert_eq!(msgs[1].type_id, 9);
    assert_eq!(msgs[2].stream_id, 1);
}

#[test]
fn fmt3_new_message_after_fmt0_adds_the_fmt0_timestamp_as_delta() {
    // As ffmpeg reads it: the delta a fmt 3 repeats is the preceding header's timestamp field.
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 40, 1, 8, 1);
    wire.put_u8(0);
    wire.put_slice(&[0xC3, 1]);
    let msgs = decode_all(&mut decoder(), &mut wire);
    assert_eq!(msgs[1].timestamp, 80);
}

#[test]
fn fmt3_continuation_accepts_repeated_extended_timestamp() {
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0x0100_0000, 200, 9, 1);
    wire.put_slice(&[1; 128]);
    wire.put_slice(&[0xC3, 0x01, 0x00, 0x00, 0x00]);
    wire.put_slice(&[2; 72]);
    let m = decoder().decode(&mut wire).unwrap().unwrap();
    assert_eq!(m.timestamp, 0x0100_0000);
    assert_eq!(&m.payload[128..], &[2; 72]);
    assert!(wire.is_empty());
}

#[test]
fn fmt3_continuation_accepts_missing_extended_timestamp() {
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0x0100_0000, 200, 9, 1);
    wire.put_slice(&[1; 128]);
    wire.put_u8(0xC3);
    wire.put_slice(&[2; 72]);
    let m = decoder().decode(&mut wire).unwrap().unwrap();
    assert_eq!(&m.payload[128..], &[2; 72]);
    assert!(wire.is_empty());
}

#[test]
fn fmt3_new_message_repeats_extended_delta() {
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, 1, 8, 1);
    wire.put_u8(0);
    hdr(&mut wire, 2, 3, 0x0100_0000, 0, 0, 0);
    wire.put_u8(0);
    wire.put_slice(&[0xC3, 0x01, 0x00, 0x00, 0x00, 7]);
    wire.put_slice(&[0xC3, 8]); // and once without the repeat,
    hdr(&mut wire, 0, 4, 9, 1, 8, 1); // followed by something (the peek needs 4 bytes)
    wire.put_u8(0);
    let msgs = decode_all(&mut decoder(), &mut wire);
    let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, [0, 0x0100_0000, 0x0200_0000, 0x0300_0000, 9]);
    assert_eq!(&msgs[2].payload[..], &[7]);
    assert_eq!(&msgs[3].payload[..], &[8]);
}

#[test]
fn waits_for_four_bytes_before_deciding_on_a_repeated_extended_timestamp() {
    let mut d = decoder();
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0x0100_0000, 130, 9, 1);
    wire.put_slice(&[1; 128]);
    assert_eq!(d.decode(&mut wire), Ok(None));
    assert!(wire.is_empty(), "the complete first chunk is consumed");
    // The continuation carries 2 payload bytes and no repeat: 3 bytes available < 1 + 4.
    wire.put_slice(&[0xC3, 5, 6]);
    assert_eq!(d.decode(&mut wire), Ok(None));
    assert_eq!(wire.len(), 3, "nothing is consumed while undecided");
    wire.put_slice(&[0x03, 0, 0]); // the start of the next chunk arrives
    let m = d.decode(&mut wire).unwrap().unwrap();
    assert_eq!(&m.payload[128..], &[5, 6]);
    assert_eq!(wire.len(), 3);
}

#[test]
fn interleaved_messages_on_two_csids_reassemble_separately() {
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 4, 100, 200, 9, 1);
    wire.put_slice(&[9; 128]);
    hdr(&mut wire, 0, 6, 90, 150, 8, 1);
    wire.put_slice(&[8; 128]);
    wire.put_u8(0xC4);
    wire.put_slice(&[9; 72]);
    wire.put_u8(0xC6);
    wire.put_slice(&[8; 22]);
    let msgs = decode_all(&mut decoder(), &mut wire);
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].csid, msgs[0].payload.len()), (4, 200));
    assert_eq!((msgs[1].csid, msgs[1].payload.len()), (6, 150));
    assert!(msgs[0].payload.iter().all(|&b| b == 9));
    assert!(msgs[1].payload.iter().all(|&b| b == 8));
}

#[test]
fn oldest_partial_names_the_oldest_unfinished_message_until_it_completes() {
    let mut d = decoder();
    assert_eq!(d.oldest_partial(), None);
    // Message 0 (csid 4, 200 bytes) starts; message 1 (csid 6, 150 bytes) starts after it.
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 4, 100, 200, 9, 1);
    wire.put_slice(&[9; 128]);
    assert_eq!(d.decode(&mut wire), Ok(None));
    assert_eq!((d.oldest_partial(), d.messages_started()), (Some(0), 1));
    hdr(&mut wire, 0, 6, 90, 150, 8, 1);
    wire.put_slice(&[8; 128]);
    assert_eq!(d.decode(&mut wire), Ok(None));
    // Progress on csid 6 does not make csid 4's message any younger.
    assert_eq!((d.oldest_partial(), d.messages_started()), (Some(0), 2));
    // A whole message on a third csid in between changes nothing either.
    hdr(&mut wire, 0, 3, 0, 4, 20, 0);
    wire.put_slice(&[1; 4]);
    assert!(d.decode(&mut wire).unwrap().is_some());
    assert_eq!((d.oldest_partial(), d.messages_started()), (Some(0), 3));
    wire.put_u8(0xC4);
    wire.put_slice(&[9; 72]);
    assert_eq!(d.decode(&mut wire).unwrap().unwrap().csid, 4);
    assert_eq!(d.oldest_partial(), Some(1));
    d.abort(6);
    assert_eq!(d.oldest_partial(), None);
}

#[test]
fn a_single_chunk_message_above_the_pooled_size_is_cut_out_without_a_copy() {
    let len = MAX_POOLED + 100;
    let mut wire = BytesMut::with_capacity(len + 64);
    hdr(&mut wire, 0, 3, 0, len as u32, 9, 1);
    wire.put_slice(&vec![3; len]);
    let range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
    let mut d = decoder();
    d.set_chunk_size(1 << 20).unwrap();
    let m = d.decode(&mut wire).unwrap().unwrap();
    assert_eq!(m.payload.len(), len);
    assert!(range.contains(&(m.payload.as_ptr() as usize)));
    assert_eq!(d.pooled_bytes(), 0);
}

#[test]
fn a_small_single_chunk_message_is_copied_so_it_does_not_pin_the_read_buffer() {
    let mut wire = BytesMut::with_capacity(1024);
    hdr(&mut wire, 0, 3, 0, 100, 9, 1);
    wire.put_slice(&[3; 100]);
    let range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.capacity();
    let m = decoder().decode(&mut wire).unwrap().unwrap();
    assert_eq!(m.payload.as_ref(), &[3; 100][..]);
    assert!(!range.contains(&(m.payload.as_ptr() as usize)));
    assert!(wire.is_empty());
}

#[test]
fn media_payloads_share_a_pooled_block_and_leave_the_read_buffer_unshared() {
    let mut d = decoder();
    d.set_chunk_size(4096).unwrap();
    let mut wire = BytesMut::with_capacity(64 * 1024);
    let capacity = wire.capacity();
    // Audio in one chunk, video in three, audio in one chunk again.
    hdr(&mut wire, 0, 4, 0, 300, 8, 1);
    wire.put_slice(&[1; 300]);
    hdr(&mut wire, 0, 6, 0, 10_000, 9, 1);
    let video: Vec<u8> = (0..10_000).map(|i| (i % 253) as u8).collect();
    for (i, c) in video.chunks(4096).enumerate() {
        if i > 0 {
            wire.put_u8(0xC6);
        }
        wire.put_slice(c);
    }
    hdr(&mut wire, 0, 4, 23, 300, 8, 1);
    wire.put_slice(&[2; 300]);
    let msgs = decode_all(&mut d, &mut wire);
    assert_eq!(msgs.len(), 3);
    assert_eq!(&msgs[1].payload[..], &video[..]);
    let at = |i: usize| msgs[i].payload.as_ptr() as usize;
    assert_eq!(
        at(1),
        at(0) + 300,
        "carved one after another from one block"
    );
    assert_eq!(at(2), at(1) + 10_000);
    assert!(wire.is_empty());
    assert!(
        wire.try_reclaim(capacity),
        "no payload refers to the read buffer: it can be reused in place"
    );
}

#[test]
fn commands_and_control_messages_never_take_room_in_a_block() {
    let mut d = decoder();
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, 300, 20, 0);
    wire.put_slice(&[5; 128]);
    wire.put_u8(0xC3);
    wire.put_slice(&[5; 128]);
    wire.put_u8(0xC3);
    wire.put_slice(&[5; 44]);
    hdr(&mut wire, 0, 2, 0, 4, 5, 0);
    wire.put_slice(&[0, 0, 0x10, 0]);
    hdr(&mut wire, 0, 5, 0, 40, 18, 1);
    wire.put_slice(&[7; 40]);
    assert_eq!(decode_all(&mut d, &mut wire).len(), 3);
    assert_eq!(d.pooled_bytes(), 0);
}

#[test]
fn short_input_is_left_unconsumed_and_never_an_error() {
    let mut full = BytesMut::new();
    hdr(&mut full, 0, 3, 0x0100_0000, 100, 9, 1);
    full.put_slice(&[3; 100]);
    for cut in 0..full.len() {
        let mut d = decoder();
        let mut part = BytesMut::from(&full[..cut]);
        assert_eq!(d.decode(&mut part), Ok(None), "cut at {cut}");
        assert_eq!(part.len(), cut, "cut at {cut}");
        assert_eq!(d.bytes_received(), 0);
    }
}

#[test]
fn zero_length_message_decodes() {
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 7, 0, 18, 1);
    let m = decoder().decode(&mut wire).unwrap().unwrap();
    assert!(m.payload.is_empty());
    assert_eq!(m.timestamp, 7);
}

#[test]
fn abort_drops_the_partial_message() {
    let mut d = decoder();
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, 200, 9, 1);
    wire.put_slice(&[1; 128]);
    assert_eq!(d.decode(&mut wire), Ok(None));
    assert!(d.buffered_bytes() >= 128);
    d.abort(3);
    assert_eq!(d.buffered_bytes(), 0);
    // The next fmt 3 chunk starts a new 200-byte message (timestamp + delta 0).
    wire.put_u8(0xC3);
    wire.put_slice(&[2; 128]);
    wire.put_u8(0xC3);
    wire.put_slice(&[2; 72]);
    let m = d.decode(&mut wire).unwrap().unwrap();
    assert!(m.payload.iter().all(|&b| b == 2));
    d.abort(999); // unknown csid: nothing to do
}

#[test]
fn new_header_mid_message_drops_the_unfinished_message() {
    let mut d = decoder();
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, 200, 9, 1);
    wire.put_slice(&[1; 128]);
    hdr(&mut wire, 1, 3, 10, 4, 8, 0);
    wire.put_slice(&[4; 4]);
    let m = d.decode(&mut wire).unwrap().unwrap();
    assert_eq!((m.timestamp, m.type_id, m.payload.len()), (10, 8, 4));
    assert_eq!(d.buffered_bytes(), 0);
}

#[test]
fn larger_chunk_size_applies_to_following_chunks() {
    let mut d = decoder();
    d.set_chunk_size(4096).unwrap();
    assert_eq!(d.chunk_size(), 4096);
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, 4000, 9, 1);
    wire.put_slice(&[6; 4000]);
    let m = d.decode(&mut wire).unwrap().unwrap();
    assert_eq!(m.payload.len(), 4000);
}

#[test]
fn message_above_prealloc_grows_with_the_data() {
    let len = ASSEMBLY_PREALLOC * 3 + 5;
    let mut d = decoder();
    d.set_chunk_size(1000).unwrap();
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, len as u32, 9, 1);
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut chunks = payload.chunks(1000);
    wire.put_slice(chunks.next().unwrap());
    assert_eq!(d.decode(&mut wire), Ok(None));
    assert_eq!(d.buffered_bytes(), ASSEMBLY_PREALLOC);
    for c in chunks {
        wire.put_u8(0xC3);
        wire.put_slice(c);
    }
    let m = d.decode(&mut wire).unwrap().unwrap();
    assert_eq!(&m.payload[..], &payload[..]);
}

#[test]
fn rejects_chunk_size_of_zero() {
    let mut d = decoder();
    let max = 0x7FFF_FFFF;
    assert_eq!(
        d.set_chunk_size(0),
        Err(ChunkError::InvalidChunkSize { size: 0, max })
    );
    assert_eq!(d.chunk_size(), 128);
}

#[test]
fn rejects_chunk_size_with_top_bit_set() {
    let max = 0x7FFF_FFFF;
    assert_eq!(
        decoder().set_chunk_size(0x8000_0000),
        Err(ChunkError::InvalidChunkSize {
            size: 0x8000_0000,
            max
        })
    );
}

#[test]
fn rejects_chunk_size_above_configured_limit_and_accepts_the_extremes() {
    let limits = Limits {
        max_chunk_size: 65536,
        ..Limits::default()
    };
    let mut d = ChunkDecoder::new(&limits);
    assert_eq!(
        d.set_chunk_size(65537),
        Err(ChunkError::InvalidChunkSize {
            size: 65537,
            max: 65536
        })
    );
    assert_eq!(d.set_chunk_size(1), Ok(()));
    assert_eq!(decoder().set_chunk_size(0x7FFF_FFFF), Ok(()));
}

#[test]
fn rejects_message_above_the_cap_as_soon_as_the_header_is_read() {
    let limits = Limits {
        max_message_size: 1000,
        ..Limits::default()
    };
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, 1001, 9, 1);
    assert_eq!(
        ChunkDecoder::new(&limits).decode(&mut wire),
        Err(ChunkError::MessageTooLarge {
            size: 1001,
            limit: 1000
        })
    );
    // The same through a fmt 1 header.
    let mut d = ChunkDecoder::new(&limits);
    let mut wire = BytesMut::new();
    hdr(&mut wire, 0, 3, 0, 1, 9, 1);
    wire.put_u8(0);
    hdr(&mut wire, 1, 3, 0, 5000, 9, 1);
    assert!(d.decode(&mut wire).unwrap().is_some());
    assert_eq!(
        d.decode(&mut wire),
        Err(ChunkError::MessageTooLarge {
            size: 5000,
            limit: 1000
        })
    );
}

#[test]
fn rejects_more_chunk_streams_than_the_limit() {
    let limits = Limits {
        max_chunk_streams: 3,
        ..Limits::default()
    };
    let mut d = ChunkDecoder::new(&limits);
    let mut wire = BytesMut::new();
    for csid in [3, 500, 4, 3] {
        hdr(&mut wire, 0, csid, 0, 1, 8, 1);
        wire.put_u8(0);
    }
    hdr(&mut wire, 0, 65535, 0, 1, 8, 1); // a fourth distinct csid
    assert_eq!(decode_all_until_err(&mut d, &mut wire).len(), 4);
    assert_eq!(
        d.decode(&mut wire),
        Err(ChunkError::TooManyChunkStreams { limit: 3 })
    );
    assert_eq!(d.chunk_streams(), 3);
}

fn decode_all_until_err(d: &mut ChunkDecoder, buf: &mut BytesMut) -> Vec<RawMessage> {
    let mut v = Vec::new();
    while let Ok(Some(m)) = d.decode(buf) {
        v.push(m);
    }
    v
}

#[test]
fn rejects_fmt1_fmt2_fmt3_on_a_stream_without_previous_header() {
    for (fmt, bytes) in [
        (1u8, vec![0x45, 0, 0, 0, 0, 0, 1, 8]),
        (2, vec![0x85, 0, 0, 0]),
        (3, vec![0xC5]),
    ] {
        let mut wire = BytesMut::from(&bytes[..]);
        assert_eq!(
            decoder().decode(&mut wire),
            Err(ChunkError::NoPreviousChunkOnStream { csid: 5, fmt })
        );
    }
}

#[test]
fn large_csids_keep_separate_state() {
    let mut d = decoder();
    let mut wire = BytesMut::new();
    for csid in [65599u32, 64, 320] {
        hdr(&mut wire, 0, csid, csid, 1, 8, 1);
        wire.put_u8(0);
    }
    for csid in [320u32, 65599, 64] {
        hdr(&mut wire, 2, csid, 1, 0, 0, 0);
        wire.put_u8(0);
    }
    let msgs = decode_all(&mut d, &mut wire);
    let got: Vec<(u32, u32)> = msgs[3..].iter().map(|m| (m.csid, m.timestamp)).collect();
    assert_eq!(got, [(320, 321), (65599, 65600), (64, 65)]);
}
