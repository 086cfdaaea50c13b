//! Chunk stream round trips: `decode(encode(msgs)) == msgs` for arbitrary chunk sizes, csids
//! (1-, 2- and 3-byte basic headers), payload sizes and timestamps (across the extended
//! timestamp boundary and the 32-bit wraparound), with chunks of different chunk streams
//! interleaved on the wire; and split reads: the same wire fed cut at every byte offset and one
//! byte at a time decodes identically.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rtmp_edge::rtmp::chunk::{ChunkDecoder, ChunkEncoder, EncodedMessage, RawMessage};
use rtmp_edge::rtmp::Limits;

/// One message's wire form cut into its chunks (header + payload slice each).
struct Chunked {
    msg: RawMessage,
    pieces: Vec<Vec<u8>>,
}

/// Encodes `msgs` in order (header compression per csid) and cuts each into chunks.
/// `strip_extended` drops the extended timestamp repeated on fmt 3 chunks, as some encoders do.
fn chunk_all(msgs: &[RawMessage], chunk_size: u32, strip_extended: bool) -> Vec<Chunked> {
    let mut real = ChunkEncoder::new();
    real.set_chunk_size(chunk_size);
    // A twin at the largest chunk size tells the first header's length (same compression).
    let mut whole = ChunkEncoder::new();
    whole.set_chunk_size(0x7FFF_FFFF);
    let cs = chunk_size as usize;
    msgs.iter()
        .map(|m| {
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            real.encode(
                m.csid,
                m.timestamp,
                m.type_id,
                m.stream_id,
                &m.payload,
                &mut a,
            );
            whole.encode(
                m.csid,
                m.timestamp,
                m.type_id,
                m.stream_id,
                &m.payload,
                &mut b,
            );
            let len = m.payload.len();
            let hdr0 = b.len() - len;
            let extra = if len == 0 { 0 } else { (len - 1) / cs };
            let hdr3 = if extra == 0 {
                0
            } else {
                (a.len() - b.len()) / extra
            };
            let basic = match m.csid {
                0..=63 => 1,
                64..=319 => 2,
                _ => 3,
            };
            let first = len.min(cs);
            let mut head = a[..hdr0].to_vec();
            if strip_extended && head[0] >> 6 == 3 && hdr0 == basic + 4 {
                head.truncate(basic); // a fmt 3 new message without its repeated field
            }
            head.extend_from_slice(&a[hdr0..hdr0 + first]);
            let mut pieces = vec![head];
            let (mut at, mut done) = (hdr0 + first, first);
            while done < len {
                let n = (len - done).min(cs);
                let h = if strip_extended { basic } else { hdr3 };
                let mut piece = a[at..at + h].to_vec();
                piece.extend_from_slice(&a[at + hdr3..at + hdr3 + n]);
                pieces.push(piece);
                at += hdr3 + n;
                done += n;
            }
            assert_eq!(at, a.len());
            Chunked {
                msg: m.clone(),
                pieces,
            }
        })
        .collect()
}

/// Interleaves the chunks of different csids (keeping each csid's order), driven by `picks`.
/// Returns the wire and the messages in the order they complete on it.
fn interleave(chunked: &[Chunked], picks: &[usize]) -> (Vec<u8>, Vec<RawMessage>) {
    use std::collections::VecDeque;
    // Per csid: a queue of (message index, piece index).
    let mut queues: Vec<(u32, VecDeque<(usize, usize)>)> = Vec::new();
    for (i, c) in chunked.iter().enumerate() {
        let q = match queues.iter().position(|(csid, _)| *csid == c.msg.csid) {
            Some(q) => q,
            None => {
                queues.push((c.msg.csid, VecDeque::new()));
                queues.len() - 1
            }
        };
        queues[q].1.extend((0..c.pieces.len()).map(|p| (i, p)));
    }
    let mut wire = Vec::new();
    let mut order = Vec::new();
    let mut k = 0;
    loop {
        let live: Vec<usize> = (0..queues.len())
            .filter(|&q| !queues[q].1.is_empty())
            .collect();
        if live.is_empty() {
            break;
        }
        let pick = picks.get(k).copied().unwrap_or(0);
        k += 1;
        let q = live[pick % live.len()];
        let (i, p) = queues[q].1.pop_front().unwrap();
        wire.extend_from_slice(&chunked[i].pieces[p]);
        if p + 1 == chunked[i].pieces.len() {
            order.push(chunked[i].msg.clone());
        }
    }
    (wire, order)
}

/// A message on a csid no test message uses, so a trailing fmt 3 peek has bytes to look at.
fn sentinel() -> RawMessage {
    RawMessage {
        csid: 2,
        timestamp: 1,
        type_id: 1,
        stream_id: 0,
        payload: Bytes::from_static(&[0, 0, 0x10, 0]),
    }
}

/// Interleaves `msgs`, then appends [`sentinel`] so that a trailing fmt 3 chunk whose
/// extended timestamp was stripped has 4 bytes after it to be told apart by.
fn wire_for(
    msgs: &[RawMessage],
    chunk_size: u32,
    strip: bool,
    picks: &[usize],
) -> (Vec<u8>, Vec<RawMessage>) {
    let (mut wire, mut order) = interleave(&chunk_all(msgs, chunk_size, strip), picks);
    let mut tail = BytesMut::new();
    let s = sentinel();
    EncodedMessage::new(
        s.csid,
        s.timestamp,
        s.type_id,
        s.stream_id,
        s.payload.clone(),
        chunk_size,
    )
    .write_to(&mut tail);
    wire.extend_from_slice(&tail);
    order.push(s);
    (wire, order)
}

/// Messages of each csid come out in the order they were sent on it.
fn assert_same_per_csid(sent: &[RawMessage], got: &[RawMessage]) {
    for csid in sent.iter().map(|m| m.csid) {
        let a: Vec<_> = sent.iter().filter(|m| m.csid == csid).collect();
        let b: Vec<_> = got.iter().filter(|m| m.csid == csid).collect();
        assert_eq!(a, b, "csid {csid}");
    }
}

/// Feeds `wire` to a fresh decoder in pieces ending at `cuts` (then the rest).
fn feed(wire: &[u8], chunk_size: u32, cuts: impl IntoIterator<Item = usize>) -> Vec<RawMessage> {
    let mut d = ChunkDecoder::new(&Limits::default());
    d.set_chunk_size(chunk_size).unwrap();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts.into_iter().chain([wire.len()]) {
        let cut = cut.clamp(at, wire.len());
        buf.extend_from_slice(&wire[at..cut]);
        at = cut;
        while let Some(m) = d.decode(&mut buf).expect("valid stream") {
            out.push(m);
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    assert_eq!(d.bytes_received(), wire.len() as u64);
    out
}

fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, len: usize) -> RawMessage {
    let payload: Vec<u8> = (0..len).map(|i| (i * 31 + csid as usize) as u8).collect();
    RawMessage {
        csid,
        timestamp,
        type_id,
        stream_id,
        payload: Bytes::from(payload),
    }
}

/// A fixed sequence touching every header form, csid form and timestamp case.
fn fixed_sequence() -> Vec<RawMessage> {
    vec![
        msg(3, 0, 20, 0, 150),
        msg(4, 1000, 9, 1, 300),
        msg(4, 1033, 9, 1, 300), // fmt 2
        msg(4, 1066, 9, 1, 300), // fmt 3 (same delta)
        msg(4, 1100, 9, 1, 17),  // fmt 1
        msg(100, 0xFF_FFFE, 8, 1, 5),
        msg(100, 0xFF_FFFF, 8, 1, 5), // fmt 2, delta 1, absolute crosses marker
        msg(65535, 0x0100_0000, 8, 1, 200), // csid 65535, fmt 0 extended
        msg(65535, 0x0200_0000, 8, 1, 200), // fmt 2 extended delta
        msg(65535, 0x0300_0000, 8, 1, 200), // fmt 3 repeating an extended delta
        msg(5, 0xFFFF_FFF0, 9, 1, 130),
        msg(5, 0x0000_0010, 9, 1, 130), // wraps: goes "backwards" → fmt 0
        msg(3, 5, 20, 0, 0),
        msg(64, 7, 18, 1, 129),
    ]
}

#[test]
fn fixed_sequence_decodes_identically_cut_at_every_offset() {
    let msgs = fixed_sequence();
    for strip in [false, true] {
        let picks: Vec<usize> = (0..1000).map(|i| i * 7 + i / 3).collect();
        let (wire, order) = wire_for(&msgs, 128, strip, &picks);
        assert_eq!(feed(&wire, 128, []), order, "strip {strip}: whole");
        for cut in 0..wire.len() {
            assert_eq!(
                feed(&wire, 128, [cut]),
                order,
                "strip {strip}: cut at {cut}"
            );
        }
        assert_eq!(feed(&wire, 128, 0..wire.len()), order, "byte at a time");
        assert_same_per_csid(&msgs, &order);
        assert_ne!(
            order[..msgs.len()],
            msgs[..],
            "chunks really are interleaved"
        );
    }
}

#[test]
fn fixed_sequence_with_chunk_size_one_decodes_byte_at_a_time() {
    let msgs = fixed_sequence();
    let (wire, order) = wire_for(&msgs, 1, false, &[1, 2, 3, 5, 8, 13, 21]);
    assert_eq!(feed(&wire, 1, 0..wire.len()), order);
    assert_same_per_csid(&msgs, &order);
}

fn arb_csid() -> impl Strategy<Value = u32> {
    prop_oneof![3u32..=8, 9u32..=63, 64u32..=319, 320u32..=65599]
}

fn arb_delta() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(33),
        0u32..1000,
        0xFF_FFF0u32..0x100_0010,
        any::<u32>(),
    ]
}

fn arb_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..300,
        2 => Just(100usize),
        2 => 0usize..5000,
        1 => 0usize..100_000,
    ]
}

fn arb_chunk_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        1u32..=16,
        17u32..=512,
        513u32..=70000,
        Just(128),
        Just(4096)
    ]
}

/// (csid slot, timestamp delta, type, stream id, length, first timestamp, repeat) per message;
/// timestamps are computed per csid from deltas (wrapping). `repeat` reuses the previous
/// message's delta, type, stream and length on that csid, so fmt 2 and fmt 3 headers (with
/// and without extended deltas) come up often.
fn arb_messages() -> impl Strategy<Value = Vec<RawMessage>> {
    (
        prop::collection::vec(arb_csid(), 1..5),
        prop::collection::vec(
            (
                0usize..5,
                arb_delta(),
                prop_oneof![Just(8u8), Just(9u8), 1u8..=22],
                prop_oneof![Just(1u32), any::<u32>()],
                arb_len(),
                any::<u32>(),
                prop::bool::weighted(0.4),
            ),
            1..16,
        ),
    )
        .prop_map(|(csids, specs)| {
            // csid → (timestamp, delta, type, stream, length) of its last message
            let mut last = std::collections::HashMap::new();
            specs
                .into_iter()
                .map(|(slot, delta, type_id, stream_id, len, start, repeat)| {
                    let csid = csids[slot % csids.len()];
                    let (ts, d, t, sid, n) = match last.get(&csid) {
                        Some(&(ts, d, t, sid, n)) if repeat => {
                            (u32::wrapping_add(ts, d), d, t, sid, n)
                        }
                        Some(&(ts, ..)) => {
                            (u32::wrapping_add(ts, delta), delta, type_id, stream_id, len)
                        }
                        None => (start, delta, type_id, stream_id, len),
                    };
                    last.insert(csid, (ts, d, t, sid, n));
                    msg(csid, ts, t, sid, n)
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn interleaved_messages_round_trip(
        msgs in arb_messages(),
        chunk_size in arb_chunk_size(),
        picks in prop::collection::vec(any::<usize>(), 0..200),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        strip in any::<bool>(),
    ) {
        let (wire, order) = wire_for(&msgs, chunk_size, strip, &picks);
        let decoded = feed(&wire, chunk_size, []);
        prop_assert_eq!(&decoded, &order);
        assert_same_per_csid(&msgs, &decoded);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(feed(&wire, chunk_size, cuts), order);
    }

    #[test]
    fn sequential_encoder_output_round_trips(
        msgs in arb_messages(),
        chunk_size in arb_chunk_size(),
    ) {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(chunk_size);
        let mut wire = BytesMut::new();
        for m in &msgs {
            enc.encode(m.csid, m.timestamp, m.type_id, m.stream_id, &m.payload, &mut wire);
        }
        enc.encode(2, 0, 1, 0, &[0, 0, 0, 1], &mut wire);
        let mut decoded = feed(&wire, chunk_size, []);
        prop_assert_eq!(decoded.pop().map(|m| m.csid), Some(2));
        prop_assert_eq!(decoded, msgs);
    }

    #[test]
    fn encoded_message_round_trips(
        msgs in arb_messages(),
        chunk_size in arb_chunk_size(),
        offset in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        let encoded: Vec<EncodedMessage> = msgs
            .iter()
            .map(|m| {
                EncodedMessage::new(
                    m.csid, m.timestamp, m.type_id, m.stream_id, m.payload.clone(), chunk_size,
                )
            })
            .collect();
        for e in &encoded {
            let before = wire.len();
            e.write_to(&mut wire);
            prop_assert_eq!(wire.len() - before, e.wire_len());
        }
        prop_assert_eq!(feed(&wire, chunk_size, []), msgs);
        // Resuming at an offset yields exactly the tail of the wire form.
        let e = &encoded[0];
        let mut full = BytesMut::new();
        e.write_to(&mut full);
        let off = offset.index(e.wire_len() + 1);
        let mut tail = Vec::new();
        e.for_each_slice(off, |s| { tail.extend_from_slice(s); true });
        prop_assert_eq!(&tail[..], &full[off..]);
    }
}
