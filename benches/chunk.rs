//! Chunk stream micro-benches: decode and encode throughput at chunk sizes 128, 4096 and 65536
//! for video-sized messages (10–60 KB, with audio interleaved), and the per-player cost of
//! encode-once fan-out (one `EncodedMessage` cloned into 1000 player queues).
//!
//! Run: `cargo bench --bench chunk -- --warm-up-time 1 --measurement-time 3`

use std::collections::VecDeque;
use std::hint::black_box;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rtmp_edge::rtmp::chunk::{ChunkDecoder, ChunkEncoder, EncodedMessage, RawMessage};
use rtmp_edge::rtmp::Limits;

const CHUNK_SIZES: [u32; 3] = [128, 4096, 65536];

/// ~2 s of a 5 Mbit/s stream at 30 fps: video frames 10–60 KB on csid 6 (a 60 KB "keyframe"
/// every 30 frames), AAC frames of ~370 bytes on csid 4 between them.
fn stream() -> Vec<RawMessage> {
    let mut msgs = Vec::new();
    let mut state = 0x1234_5678u32;
    for frame in 0..60u32 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let len = if frame % 30 == 0 {
            60_000
        } else {
            10_000 + (state >> 8) as usize % 30_000
        };
        let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ state) as u8).collect();
        msgs.push(RawMessage {
            csid: 6,
            timestamp: frame * 33,
            type_id: 9,
            stream_id: 1,
            payload: Bytes::from(payload),
        });
        for a in 0..2u32 {
            msgs.push(RawMessage {
                csid: 4,
                timestamp: frame * 33 + a * 16,
                type_id: 8,
                stream_id: 1,
                payload: Bytes::from(vec![0xAFu8; 370]),
            });
        }
    }
    msgs
}

fn encode_all(msgs: &[RawMessage], chunk_size: u32) -> BytesMut {
    let mut enc = ChunkEncoder::new();
    enc.set_chunk_size(chunk_size);
    let mut out = BytesMut::new();
    for m in msgs {
        enc.encode(
            m.csid,
            m.timestamp,
            m.type_id,
            m.stream_id,
            &m.payload,
            &mut out,
        );
    }
    out
}

fn decode(c: &mut Criterion) {
    let msgs = stream();
    let mut g = c.benchmark_group("chunk_decode");
    for cs in CHUNK_SIZES {
        let wire = encode_all(&msgs, cs);
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function(format!("chunk_size_{cs}"), |b| {
            b.iter_batched(
                || {
                    let mut d = ChunkDecoder::new(&Limits::default());
                    d.set_chunk_size(cs).unwrap();
                    (d, BytesMut::from(&wire[..]))
                },
                |(mut d, mut buf)| {
                    let mut n = 0;
                    while let Some(m) = d.decode(&mut buf).unwrap() {
                        black_box(&m);
                        n += 1;
                    }
                    assert_eq!(n, msgs.len());
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let msgs = stream();
    let mut g = c.benchmark_group("chunk_encode");
    for cs in CHUNK_SIZES {
        let wire_len = encode_all(&msgs, cs).len();
        g.throughput(Throughput::Bytes(wire_len as u64));
        let mut out = BytesMut::with_capacity(wire_len);
        g.bench_function(format!("encoder_chunk_size_{cs}"), |b| {
            b.iter(|| {
                out.clear();
                let mut enc = ChunkEncoder::new();
                enc.set_chunk_size(cs);
                for m in &msgs {
                    enc.encode(
                        m.csid,
                        m.timestamp,
                        m.type_id,
                        m.stream_id,
                        &m.payload,
                        &mut out,
                    );
                }
                black_box(out.len())
            })
        });
        // Encode-once form: building it costs no copy, so bytes/s here is "wire bytes made
        // ready per second"; gathering the writev slices is included.
        g.bench_function(format!("encoded_message_chunk_size_{cs}"), |b| {
            b.iter(|| {
                let mut total = 0;
                for m in &msgs {
                    let e = EncodedMessage::new(
                        m.csid,
                        m.timestamp,
                        m.type_id,
                        m.stream_id,
                        m.payload.clone(),
                        cs,
                    );
                    e.for_each_slice(0, |s| {
                        total += s.len();
                        true
                    });
                    black_box(&e);
                }
                black_box(total)
            })
        });
    }
    g.finish();
}

fn fanout(c: &mut Criterion) {
    const PLAYERS: usize = 1000;
    let payload = Bytes::from(vec![7u8; 30_000]);
    let msg = EncodedMessage::new(6, 1000, 9, 1, payload, 4096);
    let mut g = c.benchmark_group("fanout");
    // Elements = players: criterion's elem/s inverts to the per-player cost.
    g.throughput(Throughput::Elements(PLAYERS as u64));
    let mut queues: Vec<VecDeque<EncodedMessage>> =
        (0..PLAYERS).map(|_| VecDeque::with_capacity(64)).collect();
    // Keep some history in every queue so pushes land behind live entries, as in a server.
    for q in &mut queues {
        for _ in 0..16 {
            q.push_back(msg.clone());
        }
    }
    g.bench_function("clone_into_1000_queues", |b| {
        b.iter(|| {
            for q in &mut queues {
                q.push_back(msg.clone());
            }
            // Each player later writes and drops its oldest entry.
            for q in &mut queues {
                black_box(q.pop_front());
            }
        })
    });
    g.bench_function("clone_into_1000_queues_and_gather_iovecs", |b| {
        b.iter(|| {
            for q in &mut queues {
                q.push_back(msg.clone());
            }
            for q in &mut queues {
                if let Some(m) = q.front() {
                    // What a writev of the whole message would be given (up to 64 iovecs).
                    let mut iov = [IoSlice::new(&[]); 64];
                    let mut n = 0;
                    m.for_each_slice(0, |s| {
                        iov[n] = IoSlice::new(s);
                        n += 1;
                        n < iov.len()
                    });
                    black_box(&iov[..n]);
                }
                black_box(q.pop_front());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode, fanout);
criterion_main!(benches);
