//! Fan-out cost: one media message encoded once and queued for N local players, and sent to
//! K other workers over the bus. Reports time per message; divide by N for per-player cost.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtmp_edge::fanout::{Mail, OutputQueue, Stream, StreamKey, StreamSettings};
use rtmp_edge::shard::{Bus, BusMsg};

const SETTINGS: StreamSettings = StreamSettings {
    chunk_size: 4096,
    gop_cache: true,
    gop_cache_max_bytes: 64 << 20,
    max_header_bytes: 256 << 10,
};

fn frame(len: usize) -> Bytes {
    let mut v = vec![0x27, 0x01, 0, 0, 0];
    v.resize(len, 0xab);
    Bytes::from(v)
}

fn to_local_players(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_local");
    for players in [1usize, 100, 1000, 10_000] {
        group.throughput(Throughput::Elements(players as u64));
        group.bench_with_input(BenchmarkId::new("players", players), &players, |b, &n| {
            let mut stream = Stream::new(StreamKey::new("live", "bench"), SETTINGS);
            let mut queues: Vec<OutputQueue> =
                (0..n).map(|_| OutputQueue::new(usize::MAX)).collect();
            let payload = frame(10_000);
            let mut ts = 0u32;
            b.iter(|| {
                ts = ts.wrapping_add(40);
                let packet = stream
                    .ingest(9, ts, payload.clone())
                    .unwrap()
                    .expect("video packet");
                for q in queues.iter_mut() {
                    black_box(q.push_media(packet.clone()));
                }
                // Drain as a socket write would, so queues stay small.
                for q in queues.iter_mut() {
                    let n = q.queued_bytes();
                    q.consume(n);
                }
            });
        });
    }
    group.finish();
}

fn to_other_workers(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_workers");
    for workers in [1usize, 3, 7] {
        group.throughput(Throughput::Elements(workers as u64));
        group.bench_with_input(BenchmarkId::new("workers", workers), &workers, |b, &k| {
            let polls: Vec<mio::Poll> = (0..=k).map(|_| mio::Poll::new().unwrap()).collect();
            let wakers = polls
                .iter()
                .map(|p| mio::Waker::new(p.registry(), mio::Token(0)).unwrap())
                .collect();
            let bus = Bus::new(wakers);
            let mut stream = Stream::new(StreamKey::new("live", "bench"), SETTINGS);
            let key = StreamKey::new("live", "bench");
            let payload = frame(10_000);
            let mut drained = std::collections::VecDeque::new();
            let mut ts = 0u32;
            b.iter(|| {
                ts = ts.wrapping_add(40);
                let packet = stream
                    .ingest(9, ts, payload.clone())
                    .unwrap()
                    .expect("video packet");
                for w in 1..=k {
                    bus.send(
                        w,
                        BusMsg::Hub(Mail::Media {
                            key: key.clone(),
                            owner: 0,
                            packet: packet.clone(),
                        }),
                    );
                }
                for w in 1..=k {
                    bus.drain(w, &mut drained);
                    drained.clear();
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, to_local_players, to_other_workers);
criterion_main!(benches);
