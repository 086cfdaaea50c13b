//! Fuzzes `ChunkDecoder` with arbitrary bytes, applying Set Chunk Size and Abort as the session
//! does. Properties checked, beyond "no panic":
//! * the decoder never consumes more than it was given, and `bytes_received` equals what it
//!   consumed;
//! * no message exceeds `max_message_size`;
//! * feeding the same bytes one at a time gives the same messages and the same error as
//!   feeding them at once (split reads change nothing);
//! * every decoded message, re-encoded as an `EncodedMessage`, decodes back to itself.
#![no_main]

use bytes::BytesMut;
use rtmp_edge::rtmp::chunk::{ChunkDecoder, ChunkError, EncodedMessage, RawMessage};
use rtmp_edge::rtmp::Limits;

fn limits() -> Limits {
    Limits {
        max_message_size: 64 * 1024,
        max_chunk_size: 0x7FFF_FFFF,
        max_chunk_streams: 8,
        max_amf_depth: 32,
    }
}

/// Feeds `data` in pieces of `step` bytes; returns the messages, the first error, and the
/// number of bytes consumed.
fn run(data: &[u8], step: usize) -> (Vec<RawMessage>, Option<ChunkError>, u64) {
    let limits = limits();
    let mut d = ChunkDecoder::new(&limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0usize;
    for piece in data.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(Some(m)) => {
                    assert!(buf.len() < before, "a message consumes input");
                    assert!(m.payload.len() <= limits.max_message_size as usize);
                    if m.type_id == 1 && m.payload.len() >= 4 {
                        let size = u32::from_be_bytes([
                            m.payload[0],
                            m.payload[1],
                            m.payload[2],
                            m.payload[3],
                        ]);
                        if let Err(e) = d.set_chunk_size(size) {
                            out.push(m);
                            return (out, Some(e), d.bytes_received());
                        }
                    }
                    if m.type_id == 2 && m.payload.len() >= 4 {
                        let csid = u32::from_be_bytes([
                            m.payload[0],
                            m.payload[1],
                            m.payload[2],
                            m.payload[3],
                        ]);
                        d.abort(csid);
                    }
                    out.push(m);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e), d.bytes_received()),
            }
            assert_eq!(d.bytes_received(), (fed - buf.len()) as u64);
        }
        assert_eq!(d.bytes_received(), (fed - buf.len()) as u64);
    }
    (out, None, d.bytes_received())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (msgs, err, consumed) = run(data, data.len());
    assert!(consumed <= data.len() as u64);

    let (msgs1, err1, consumed1) = run(data, 1);
    assert_eq!(msgs, msgs1, "byte-at-a-time feeding changed the messages");
    assert_eq!(err, err1, "byte-at-a-time feeding changed the error");
    assert_eq!(consumed, consumed1);

    for m in &msgs {
        if m.payload.len() > 0xFF_FFFF {
            continue;
        }
        let e = EncodedMessage::new(
            m.csid,
            m.timestamp,
            m.type_id,
            m.stream_id,
            m.payload.clone(),
            4096,
        );
        let mut wire = BytesMut::new();
        e.write_to(&mut wire);
        let mut d = ChunkDecoder::new(&limits());
        d.set_chunk_size(4096).unwrap();
        let back = d.decode(&mut wire).unwrap();
        assert_eq!(back.as_ref(), Some(m));
        assert!(wire.is_empty());
    }
});
