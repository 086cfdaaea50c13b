//! Cross-core cost: what a worker pays per message delivered to its players when it owns the
//! stream (publisher here: ingest, encode once, deliver, hand one mail per subscribed worker
//! to the bus) against when it mirrors it (the owner's mail in, deliver). Both go through
//! the real `Hub` with N players on each of two workers; the bus itself is `fanout_workers`
//! in benches/fanout.rs. Divide a figure by N for the cost per delivered message.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtmp_edge::fanout::{
    Action, ConnKey, Directory, Door, Hub, HubSettings, Mail, Notice, OutputQueue, StreamKey,
    StreamSettings,
};

const SETTINGS: HubSettings = HubSettings {
    stream: StreamSettings {
        chunk_size: 4096,
        gop_cache: true,
        gop_cache_max_bytes: 64 << 20,
        max_header_bytes: 256 << 10,
    },
    publish_takeover: false,
    wait_for_publisher: true,
    keep_players_on_unpublish: true,
    pull: false,
};

/// One worker's connections: output queues, drained after every message as a write would.
#[derive(Default)]
struct Conns {
    queues: HashMap<ConnKey, OutputQueue>,
}

impl Door for Conns {
    fn write<R>(&mut self, conn: ConnKey, write: impl FnOnce(&mut OutputQueue) -> R) -> Option<R> {
        self.queues.get_mut(&conn).map(write)
    }
    fn notify(&mut self, _: ConnKey, _: Notice) {}
    fn behind(&mut self, _: ConnKey) {}
}

impl Conns {
    fn drain(&mut self) {
        for q in self.queues.values_mut() {
            let n = q.queued_bytes();
            q.consume(n);
        }
    }
}

/// Two workers' hubs on one directory: a publisher on worker 0, `players` players on each.
struct Pair {
    hubs: [Hub; 2],
    conns: [Conns; 2],
    publisher: ConnKey,
    key: StreamKey,
    next: u32,
}

impl Pair {
    fn new(players: usize) -> Self {
        let directory = Arc::new(Directory::default());
        let mut pair = Self {
            hubs: [
                Hub::new(0, SETTINGS, directory.clone()),
                Hub::new(1, SETTINGS, directory),
            ],
            conns: [Conns::default(), Conns::default()],
            publisher: ConnKey {
                index: 0,
                generation: 0,
            },
            key: StreamKey::new("live", "bench"),
            next: 0,
        };
        pair.publisher = pair.connect(0);
        let key = pair.key.clone();
        pair.hubs[0].publish(pair.publisher, 1, key.clone(), &mut pair.conns[0]);
        for w in [0, 1] {
            for _ in 0..players {
                let conn = pair.connect(w);
                pair.hubs[w].play(conn, 1, key.clone(), &mut pair.conns[w]);
                pair.settle();
            }
        }
        // Headers and a keyframe, so every player is live.
        pair.ingest(8, 0, Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]));
        pair.ingest(9, 0, frame(true, 200));
        pair.settle();
        pair
    }

    fn connect(&mut self, w: usize) -> ConnKey {
        self.next += 1;
        let key = ConnKey {
            index: self.next,
            generation: self.next,
        };
        self.conns[w]
            .queues
            .insert(key, OutputQueue::new(usize::MAX));
        key
    }

    /// The owner ingests one message; returns the mail for worker 1, if any.
    fn ingest(&mut self, type_id: u8, ts: u32, payload: Bytes) -> Option<Mail> {
        let key = self.key.clone();
        let hub = &mut self.hubs[0];
        hub.ingest(
            self.publisher,
            &key,
            type_id,
            ts,
            payload,
            &mut self.conns[0],
        )
        .expect("accepted");
        let mut mail = None;
        while let Some(action) = hub.poll_action() {
            if let Action::Send { to: 1, mail: m } = action {
                mail = Some(m);
            }
        }
        mail
    }

    /// Delivers the setup mail both ways until quiet.
    fn settle(&mut self) {
        loop {
            let mut quiet = true;
            for w in [0, 1] {
                while let Some(action) = self.hubs[w].poll_action() {
                    if let Action::Send { to, mail } = action {
                        quiet = false;
                        self.hubs[to].on_mail(mail, &mut self.conns[to]);
                    }
                }
            }
            if quiet {
                return;
            }
        }
    }
}

fn frame(keyframe: bool, len: usize) -> Bytes {
    let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
    v.resize(len, 0xab);
    Bytes::from(v)
}

fn owner_and_mirror(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_core");
    for players in [100usize, 1000] {
        group.throughput(Throughput::Elements(players as u64));
        group.bench_with_input(BenchmarkId::new("owner", players), &players, |b, &n| {
            let mut pair = Pair::new(n);
            let payload = frame(false, 10_000);
            let mut ts = 0u32;
            b.iter(|| {
                ts = ts.wrapping_add(40);
                black_box(pair.ingest(9, ts, payload.clone()));
                pair.conns[0].drain();
            });
        });
        group.bench_with_input(BenchmarkId::new("mirror", players), &players, |b, &n| {
            let mut pair = Pair::new(n);
            let payload = frame(false, 10_000);
            let mut ts = 0u32;
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    ts = ts.wrapping_add(40);
                    let mail = pair.ingest(9, ts, payload.clone()).expect("a mail");
                    pair.conns[0].drain();
                    let start = Instant::now();
                    pair.hubs[1].on_mail(mail, &mut pair.conns[1]);
                    pair.conns[1].drain();
                    spent += start.elapsed();
                }
                spent
            });
        });
    }
    group.finish();
}

criterion_group!(benches, owner_and_mirror);
criterion_main!(benches);
