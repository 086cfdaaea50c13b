//! Packaging cost per stream: the owner feeds every media message of a published stream to
//! its segmenters (HLS, and DASH video + audio). Frames are the H.264 + AAC fixture with each
//! video frame padded by a filler NAL unit to 2.5 Mbit/s at 25 fps; throughput is in input
//! bytes, so the figure compares directly with the ingest CPU-seconds per GB.
//!
//! Each configuration runs twice: cold (new segmenters every iteration, so the window's
//! memory is touched for the first time each run, as at a stream's start) and `_steady`
//! (the same segmenters throughout, the input replayed on a continuing timeline, as for a
//! long-running stream, whose segment buffers are recycled).

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtmp_edge::media::flv::FlvReader;
use rtmp_edge::package::{Container, Frame, FrameKind, Segmenter, SegmenterConfig, Tracks};

/// Video bytes per frame at 2.5 Mbit/s and 25 fps.
const VIDEO_FRAME: usize = 2_500_000 / 8 / 25;

/// The fixture's frames, looped to `seconds`, video frames padded to [`VIDEO_FRAME`] bytes.
fn frames(seconds: u32) -> Vec<Frame> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/media/h264_aac.flv"
    );
    let data = std::fs::read(path).expect("fixture");
    let mut buf = BytesMut::from(&data[..]);
    let mut reader = FlvReader::new();
    let mut src = Vec::new();
    while let Some(tag) = reader.next_tag(&mut buf).expect("fixture parses") {
        src.push(tag);
    }
    let period = src.iter().map(|t| t.timestamp).max().unwrap_or(0) / 40 * 40 + 80;
    let mut out = Vec::new();
    for k in 0..(seconds * 1000).div_ceil(period) {
        for tag in &src {
            let kind = Frame::from_flv_tag(tag).kind;
            // Codec configs and metadata once; coded frames every loop.
            let config = tag.data.len() > 1 && tag.data[1] == 0;
            if k > 0 && (kind == FrameKind::Metadata || config) {
                continue;
            }
            let mut payload = tag.data.clone();
            if kind == FrameKind::Video && !config && payload.len() < VIDEO_FRAME {
                let filler = VIDEO_FRAME - payload.len() - 5;
                let mut padded = BytesMut::with_capacity(VIDEO_FRAME);
                padded.extend_from_slice(&payload);
                padded.put_u32(filler as u32 + 1);
                padded.put_u8(12); // filler data NAL unit
                padded.put_bytes(0xff, filler);
                payload = padded.freeze();
            }
            out.push(Frame::new(kind, tag.timestamp + k * period, payload));
        }
    }
    out
}

fn segmenter(container: Container, tracks: Tracks, part: Option<u32>) -> Segmenter {
    Segmenter::new(SegmenterConfig {
        container,
        tracks,
        target_duration_ms: 2000,
        part_target_ms: part,
        window: 6,
        ..SegmenterConfig::default()
    })
}

fn packaging(c: &mut Criterion) {
    let input = frames(20);
    let bytes: usize = input.iter().map(|f| f.payload.len()).sum();
    let mut group = c.benchmark_group("package_20s_2500k");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    let span = input.last().map_or(0, |f| f.timestamp) + 40;
    let mut run = |name: &str, make: &dyn Fn() -> Vec<Segmenter>| {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut segs = make();
                for (i, f) in input.iter().enumerate() {
                    let wall = 1_700_000_000_000 + i as u64;
                    for s in segs.iter_mut() {
                        let _ = black_box(s.push(f, wall));
                    }
                }
                black_box(segs)
            });
        });
        group.bench_function(format!("{name}_steady"), |b| {
            let mut segs = make();
            let mut offset = 0u32;
            b.iter(|| {
                for (i, f) in input.iter().enumerate() {
                    let wall = 1_700_000_000_000 + u64::from(offset) + i as u64;
                    let f = Frame::new(f.kind, f.timestamp.wrapping_add(offset), f.payload.clone());
                    for s in segs.iter_mut() {
                        let _ = black_box(s.push(&f, wall));
                    }
                }
                offset = offset.wrapping_add(span);
            });
            black_box(segs);
        });
    };
    run("hls_ts", &|| {
        vec![segmenter(Container::Ts, Tracks::All, None)]
    });
    run("ll_hls_ts", &|| {
        vec![segmenter(Container::Ts, Tracks::All, Some(500))]
    });
    run("ll_hls_fmp4", &|| {
        vec![segmenter(Container::Fmp4, Tracks::All, Some(500))]
    });
    // What the server runs per stream by default: LL-HLS TS + DASH video + DASH audio.
    run("server_default", &|| {
        vec![
            segmenter(Container::Ts, Tracks::All, Some(500)),
            segmenter(Container::Fmp4, Tracks::VideoOnly, None),
            segmenter(Container::Fmp4, Tracks::AudioOnly, None),
        ]
    });
    group.finish();
}

criterion_group!(benches, packaging);
criterion_main!(benches);
