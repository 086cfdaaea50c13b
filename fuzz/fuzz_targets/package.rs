//! Feeds the HLS/DASH packagers (src/package: segmenter, MPEG-TS and fMP4 muxers, playlists,
//! MPD) a stream of arbitrary FLV-like tags, as the fan-out hands them a publisher's media.
//!
//! Input layout: byte 0 picks the container (bit 0: fMP4, else TS), LL-HLS parts (bit 1) and
//! the tracks (bits 2-3: all, video only, audio only). Then records of
//! `[kind, timestamp delta: u16 BE, length: u16 BE, payload]`: kind % 5 is audio, video,
//! metadata, a discontinuity (republish) or a flush; the length is cut to what is left.
//! Properties checked, beyond "no panic":
//! - completed segments have consecutive media sequence numbers and their parts tile them
//!   byte for byte;
//! - an MPEG-TS segment is whole 188-byte packets, each starting with the sync byte 0x47;
//! - an fMP4 segment or init segment is a sequence of well-formed boxes (sizes ≥ 8 that add up
//!   to its length);
//! - playlists, blocking-reload answers and the MPD can be rendered at every step.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtmp_edge::package::dash::{mpd, DashTrack};
use rtmp_edge::package::hls::{blocking_reload, media_playlist};
use rtmp_edge::package::{Container, Frame, FrameKind, Segmenter, SegmenterConfig, Tracks};

const WALL: u64 = 1_700_000_000_000;

fn check_boxes(data: &[u8]) {
    let mut at = 0usize;
    while at < data.len() {
        assert!(data.len() - at >= 8, "truncated box header at {at}");
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let size = if size == 1 {
            assert!(data.len() - at >= 16, "truncated large box header");
            u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()) as usize
        } else {
            size
        };
        assert!(size >= 8, "box of size {size} at {at}");
        assert!(
            size <= data.len() - at,
            "box of size {size} at {at} past the end"
        );
        at += size;
    }
}

fn check(seg: &Segmenter, container: Container, last_msn: &mut Option<u64>) {
    for s in seg.segments() {
        let tiled: Vec<u8> = s
            .parts
            .iter()
            .flat_map(|p| p.data.iter().copied())
            .collect();
        assert_eq!(
            tiled,
            s.data.as_ref(),
            "parts do not tile segment {}",
            s.msn
        );
        match container {
            Container::Ts => {
                assert_eq!(
                    s.data.len() % 188,
                    0,
                    "TS segment of {} bytes",
                    s.data.len()
                );
                assert!(
                    s.data.chunks(188).all(|p| p[0] == 0x47),
                    "TS packet without sync"
                );
            }
            Container::Fmp4 => {
                check_boxes(&s.data);
                if let Some(init) = seg.init(s.init_id) {
                    check_boxes(init);
                }
            }
        }
    }
    // Consecutive within the window, and never going back across calls.
    let msns: Vec<u64> = seg.segments().map(|s| s.msn).collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "msns {msns:?}");
    if let Some(&m) = msns.last() {
        assert!(
            last_msn.is_none_or(|prev| m >= prev),
            "msn went back to {m}"
        );
        *last_msn = Some(m);
    }
    let _ = media_playlist(seg, "");
    let next = seg.next_msn();
    let _ = blocking_reload(seg, next, Some(0));
    let _ = blocking_reload(seg, next.saturating_sub(1), None);
    if container == Container::Fmp4 {
        let _ = mpd(
            &[DashTrack {
                segmenter: seg,
                prefix: "v/",
            }],
            WALL,
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, mut rest)) = input.split_first() else {
        return;
    };
    let container = if mode & 1 != 0 {
        Container::Fmp4
    } else {
        Container::Ts
    };
    let tracks = match (mode >> 2) & 3 {
        1 => Tracks::VideoOnly,
        2 => Tracks::AudioOnly,
        _ => Tracks::All,
    };
    let mut seg = Segmenter::new(SegmenterConfig {
        container,
        tracks,
        target_duration_ms: 1000,
        part_target_ms: (mode & 2 != 0).then_some(200),
        window: 4,
        segment_cap_ms: 5000,
        segment_cap_bytes: 256 * 1024,
    });
    let mut ts = 0u32;
    let mut last_msn = None;
    while rest.len() >= 5 {
        let kind = rest[0] % 5;
        ts = ts.wrapping_add(u32::from(u16::from_be_bytes([rest[1], rest[2]])));
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]])).min(rest.len() - 5);
        let payload = Bytes::copy_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        let wall = WALL + u64::from(ts);
        let _ = match kind {
            0 => seg.push(&Frame::new(FrameKind::Audio, ts, payload), wall),
            1 => seg.push(&Frame::new(FrameKind::Video, ts, payload), wall),
            2 => seg.push(&Frame::new(FrameKind::Metadata, ts, payload), wall),
            3 => Ok(seg.discontinuity()),
            _ => Ok(seg.flush()),
        };
        check(&seg, container, &mut last_msn);
    }
    let _ = seg.finish();
    assert!(seg.is_finished());
    check(&seg, container, &mut last_msn);
});
