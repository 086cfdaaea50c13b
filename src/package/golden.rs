//! Golden output check: every configuration the server (and `benches/package.rs`) runs, fed
//! the fixtures, must produce byte-identical segments, parts, init segments and playlists to
//! the reference recorded before the packaging hot paths were optimised. A change here is a
//! change of wire output and must be justified, not just re-recorded.

use bytes::{BufMut, BytesMut};
use sha2::{Digest, Sha256};

use super::hls;
use super::{Container, Frame, FrameKind, Segmenter, SegmenterConfig, Tracks};
use crate::media::flv::FlvReader;

/// Video bytes per frame at 2.5 Mbit/s and 25 fps (as in the bench).
const VIDEO_FRAME: usize = 2_500_000 / 8 / 25;

/// A fixture's frames looped `times` times on one timeline; with `pad`, coded video frames
/// are padded with a filler NAL unit to [`VIDEO_FRAME`] bytes (multi-packet PES, big mdat).
fn looped(name: &str, times: u32, pad: bool) -> Vec<Frame> {
    let path = format!("{}/tests/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&path).expect("fixture");
    let mut buf = BytesMut::from(&data[..]);
    let mut reader = FlvReader::new();
    let mut src = Vec::new();
    while let Some(tag) = reader.next_tag(&mut buf).expect("fixture parses") {
        src.push(tag);
    }
    let period = src.iter().map(|t| t.timestamp).max().unwrap_or(0) / 40 * 40 + 80;
    let mut out = Vec::new();
    for k in 0..times {
        for tag in &src {
            let kind = Frame::from_flv_tag(tag).kind;
            let config = tag.data.len() > 1 && tag.data[1] == 0;
            if k > 0 && (kind == FrameKind::Metadata || config) {
                continue;
            }
            let mut payload = tag.data.clone();
            // Legacy AVC only (the HEVC fixture is Enhanced RTMP with a different header).
            let avc = tag.data.first().is_some_and(|b| b & 0x0f == 7);
            if pad && avc && kind == FrameKind::Video && !config && payload.len() < VIDEO_FRAME {
                let filler = VIDEO_FRAME - payload.len() - 5;
                let mut padded = BytesMut::with_capacity(VIDEO_FRAME);
                padded.extend_from_slice(&payload);
                padded.put_u32(filler as u32 + 1);
                padded.put_u8(12);
                padded.put_bytes(0xff, filler);
                payload = padded.freeze();
            }
            out.push(Frame::new(kind, tag.timestamp + k * period, payload));
        }
    }
    out
}

fn configs() -> Vec<(&'static str, SegmenterConfig)> {
    let c = |container, tracks, part| SegmenterConfig {
        container,
        tracks,
        target_duration_ms: 2000,
        part_target_ms: part,
        window: 1000,
        ..SegmenterConfig::default()
    };
    vec![
        ("hls_ts", c(Container::Ts, Tracks::All, None)),
        ("ll_hls_ts", c(Container::Ts, Tracks::All, Some(500))),
        ("ll_hls_fmp4", c(Container::Fmp4, Tracks::All, Some(500))),
        ("dash_video", c(Container::Fmp4, Tracks::VideoOnly, None)),
        ("dash_audio", c(Container::Fmp4, Tracks::AudioOnly, None)),
        (
            "ts_audio_only",
            c(Container::Ts, Tracks::AudioOnly, Some(300)),
        ),
    ]
}

/// Hashes everything a reader can observe, as it becomes observable: each part when it
/// completes (from the open segment), each segment with its parts and init when it completes,
/// and the playlist at the end.
fn digest(config: SegmenterConfig, inputs: &[Vec<Frame>]) -> String {
    let mut h = Sha256::new();
    let mut seg = Segmenter::new(config);
    let mut wall = 1_700_000_000_000u64;
    for (n, frames) in inputs.iter().enumerate() {
        if n > 0 {
            let _ = seg.discontinuity();
        }
        for f in frames {
            wall += 7;
            let before = seg.open_segment().map(|(m, p)| (m, p.len()));
            let Ok(progress) = seg.push(f, wall) else {
                h.update(b"error");
                continue;
            };
            if progress.parts > 0 {
                if let Some((msn, parts)) = seg.open_segment() {
                    let from = match before {
                        Some((m, n)) if m == msn => n,
                        _ => 0,
                    };
                    for p in &parts[from..] {
                        h.update(b"part");
                        h.update(msn.to_be_bytes());
                        h.update(p.duration_ms.to_be_bytes());
                        h.update([u8::from(p.independent)]);
                        h.update(&p.data);
                    }
                }
            }
            if progress.segments > 0 {
                hash_segment(&mut h, &seg);
            }
        }
    }
    if seg.finish().segments > 0 {
        hash_segment(&mut h, &seg);
    }
    h.update(hls::media_playlist(&seg, ""));
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

fn hash_segment(h: &mut Sha256, seg: &Segmenter) {
    let Some(s) = seg.segments().last() else {
        return;
    };
    h.update(b"segment");
    h.update(s.msn.to_be_bytes());
    h.update(s.start_ms.to_be_bytes());
    h.update(s.duration_ms.to_be_bytes());
    h.update([u8::from(s.discontinuity)]);
    h.update(s.discontinuity_sequence.to_be_bytes());
    h.update(s.program_date_time_ms.to_be_bytes());
    h.update(s.init_id.to_be_bytes());
    h.update(&s.data);
    for p in &s.parts {
        h.update(p.duration_ms.to_be_bytes());
        h.update([u8::from(p.independent)]);
        h.update(&p.data);
    }
    if let Some(init) = seg.init(s.init_id) {
        h.update(b"init");
        h.update(init);
    }
}

/// Recorded from the packaging code before the hot-path optimisations (commit 43dd031), then
/// once more when EXT-X-TARGETDURATION changed from the ceiling to the nearest second of the
/// longest segment (playlists only).
const EXPECTED: [(&str, &str); 6] = [
    (
        "hls_ts",
        "afa20d969f05673def57bfe3079cee80b0c3df43d882ba1b6a16f9a31f9cbd1b",
    ),
    (
        "ll_hls_ts",
        "5e854e4ca23da3b31307f895db3ad77205dbdbaf3277703de616b118e91d8057",
    ),
    (
        "ll_hls_fmp4",
        "a46dbc92d228bbf9e7aa7f741701c5a21a697bcc98d5637c0257e2c25d3946cb",
    ),
    (
        "dash_video",
        "024e7ae3f102bb4318b57af76df617999acee39c1cd277a9769bbbd3b863e043",
    ),
    (
        "dash_audio",
        "7eef0807f593413c3f133d3ad46cb88c3265080304375bd1e8fd12b382cc8d28",
    ),
    (
        "ts_audio_only",
        "af7dea5f63e4a5cd0534a8db0c13cb1b0b6ed7d9adf6fdbad57f0848ae7c857b",
    ),
];

#[test]
fn every_server_configuration_packages_the_fixtures_byte_identically() {
    // Padded H.264 at bench rates, then a republish with the plain fixture, then HEVC.
    let inputs = [
        looped("h264_aac.flv", 2, true),
        looped("h264_aac.flv", 1, false),
        looped("hevc_aac.flv", 2, false),
    ];
    let got: Vec<(&str, String)> = configs()
        .into_iter()
        .map(|(name, c)| (name, digest(c, &inputs)))
        .collect();
    for (name, hash) in &got {
        eprintln!("(\"{name}\", \"{hash}\"),");
    }
    for ((name, hash), (want_name, want)) in got.iter().zip(EXPECTED) {
        assert_eq!(*name, want_name);
        assert_eq!(hash, want, "{name}: packaged output changed");
    }
}
