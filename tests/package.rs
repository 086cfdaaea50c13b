//! Packaging end to end: the fixture FLVs run through the segmenter, segments and playlists
//! are written to a temp dir, and a real ffmpeg must decode them completely with the source's
//! frame counts and timestamps. Playlists are also checked against RFC 8216 / 8216bis rules.
//!
//! ffmpeg is the recent static build of the `imageio-ffmpeg` Python package (as used by
//! tools/fixtures/make_media_fixtures.sh: it reads Enhanced FLV); ffprobe is Debian's.
//! Either missing fails the tests with a message saying how to install it.

#[path = "common/tools.rs"]
#[allow(dead_code)]
mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::{Bytes, BytesMut};
use rtmp_edge::media::flv::FlvReader;
use rtmp_edge::package::dash::{self, DashTrack};
use rtmp_edge::package::hls::{self, Availability, BlockingAnswer, Resource};
use rtmp_edge::package::{
    Container, Frame, FrameKind, PackageError, Progress, Segmenter, SegmenterConfig, Tracks,
};

const WALL_CLOCK_START: u64 = 1_700_000_000_000;

fn frames(name: &str) -> Vec<Frame> {
    let path = format!("{}/tests/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut reader = FlvReader::new();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut out = Vec::new();
    while let Some(tag) = reader.next_tag(&mut buf).expect("fixture parses") {
        out.push(Frame::from_flv_tag(&tag));
    }
    out
}

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The recent ffmpeg (imageio-ffmpeg), looked up once per test binary; fails if missing.
fn ffmpeg() -> &'static Path {
    static FFMPEG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FFMPEG.get_or_init(tools::modern_ffmpeg)
}

fn ffprobe() -> PathBuf {
    tools::tool("ffprobe")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-package-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(seg: &mut Segmenter, frames: &[Frame]) -> Vec<PackageError> {
    let mut errors = Vec::new();
    for f in frames {
        if let Err(e) = seg.push(f, WALL_CLOCK_START + u64::from(f.timestamp)) {
            errors.push(e);
        }
    }
    errors
}

fn config(container: Container, tracks: Tracks, target: u32, part: Option<u32>) -> SegmenterConfig {
    SegmenterConfig {
        container,
        tracks,
        target_duration_ms: target,
        part_target_ms: part,
        window: 100,
        ..SegmenterConfig::default()
    }
}

/// Writes the window's segments, parts, init segments and the playlist to `dir`.
fn write_hls(seg: &Segmenter, dir: &Path, prefix: &str) -> PathBuf {
    let sub = dir.join(prefix);
    std::fs::create_dir_all(&sub).unwrap();
    for s in seg.segments() {
        let c = seg.config().container;
        std::fs::write(sub.join(Resource::Segment(s.msn).uri(c)), &s.data).unwrap();
        for (i, p) in s.parts.iter().enumerate() {
            std::fs::write(sub.join(Resource::Part(s.msn, i).uri(c)), &p.data).unwrap();
        }
        if let Some(init) = seg.init(s.init_id) {
            std::fs::write(sub.join(Resource::Init(s.init_id).uri(c)), init).unwrap();
        }
    }
    let playlist = sub.join("index.m3u8");
    std::fs::write(&playlist, hls::media_playlist(seg, "")).unwrap();
    playlist
}

/// Decoded frames: per stream, (count, first pts s, last pts s); fails on any ffmpeg warning.
#[derive(Debug)]
struct Decoded {
    streams: BTreeMap<String, (usize, f64, f64)>,
}

fn decode(input: &str) -> Decoded {
    let out = Command::new(ffmpeg())
        .args(["-v", "warning", "-allowed_extensions", "ALL", "-i", input])
        .args([
            "-map",
            "0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framecrc",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    // The HLS demuxer option is unknown to other demuxers: rerun without it for them.
    let out = if String::from_utf8_lossy(&out.stderr).contains("allowed_extensions") {
        Command::new(ffmpeg())
            .args(["-v", "warning", "-i", input])
            .args([
                "-map",
                "0",
                "-fps_mode",
                "passthrough",
                "-f",
                "framecrc",
                "-",
            ])
            .output()
            .expect("ffmpeg runs")
    } else {
        out
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg errors decoding {input}:\n{stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut tb: BTreeMap<String, f64> = BTreeMap::new();
    let mut kind: BTreeMap<String, String> = BTreeMap::new();
    let mut streams = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#tb ") {
            let (idx, v) = rest.split_once(": ").unwrap();
            let (n, d) = v.split_once('/').unwrap();
            tb.insert(
                idx.to_string(),
                n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap(),
            );
        } else if let Some(rest) = line.strip_prefix("#media_type ") {
            let (idx, v) = rest.split_once(": ").unwrap();
            kind.insert(idx.to_string(), v.to_string());
        } else if !line.starts_with('#') {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let pts = cols[2].parse::<f64>().unwrap() * tb[cols[0]];
            let e = streams
                .entry(kind[cols[0]].clone())
                .or_insert((0, f64::MAX, f64::MIN));
            e.0 += 1;
            e.1 = e.1.min(pts);
            e.2 = e.2.max(pts);
        }
    }
    Decoded { streams }
}

fn assert_same_media(source: &Decoded, output: &Decoded, what: &str) {
    assert_eq!(
        source.streams.keys().collect::<Vec<_>>(),
        output.streams.keys().collect::<Vec<_>>(),
        "{what}: stream kinds"
    );
    for (kind, (n, first, last)) in &source.streams {
        let (on, ofirst, olast) = output.streams[kind];
        assert_eq!(on, *n, "{what}: decoded {kind} frame count");
        assert!(
            (ofirst - first).abs() <= 0.040,
            "{what}: {kind} start {ofirst} vs {first}"
        );
        assert!(
            (olast - last).abs() <= 0.040,
            "{what}: {kind} last pts {olast} vs {last}"
        );
    }
}

/// RFC 8216 rules every playlist must keep, plus LL-HLS rules when parts are present.
fn check_playlist_rules(text: &str) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"));
    let attr = |tag: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(tag).map(str::to_string))
    };
    let target: f64 = attr("#EXT-X-TARGETDURATION:")
        .expect("TARGETDURATION")
        .parse()
        .unwrap();
    assert!(attr("#EXT-X-MEDIA-SEQUENCE:").is_some());
    for l in text.lines() {
        if let Some(d) = l.strip_prefix("#EXTINF:") {
            let d: f64 = d.trim_end_matches(',').parse().unwrap();
            assert!(
                d.round() <= target,
                "EXTINF {d} rounds above TARGETDURATION {target}"
            );
        }
    }
    if let Some(inf) = attr("#EXT-X-PART-INF:PART-TARGET=") {
        let part_target: f64 = inf.parse().unwrap();
        let control = attr("#EXT-X-SERVER-CONTROL:").expect("SERVER-CONTROL with parts");
        assert!(control.contains("CAN-BLOCK-RELOAD=YES"));
        let hold: f64 = control
            .split(',')
            .find_map(|kv| kv.strip_prefix("PART-HOLD-BACK="))
            .expect("PART-HOLD-BACK")
            .parse()
            .unwrap();
        assert!(
            hold >= 3.0 * part_target - 1e-9,
            "PART-HOLD-BACK {hold} < 3 x {part_target}"
        );
        for l in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
            let d: f64 = l["#EXT-X-PART:DURATION=".len()..]
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                d <= part_target + 1e-9,
                "part {d} > PART-TARGET {part_target}: {l}"
            );
        }
    }
}

fn hls_round_trip(fixture: &str, container: Container, target: u32, part: Option<u32>) {
    let name = format!("{fixture}-{container:?}-{part:?}");
    let dir = temp_dir(&name);
    let mut seg = Segmenter::new(config(container, Tracks::All, target, part));
    assert!(run(&mut seg, &frames(fixture)).is_empty());
    let _ = seg.finish();
    assert!(seg.segments().len() >= 2, "{name}: several segments");
    let playlist = write_hls(&seg, &dir, "hls");
    let text = std::fs::read_to_string(&playlist).unwrap();
    check_playlist_rules(&text);
    for s in seg.segments() {
        match container {
            Container::Ts => {
                assert_eq!(s.data.len() % 188, 0);
                assert_eq!(&s.data[..1], &[0x47], "segments start with a TS packet");
                assert_eq!(s.data[1] & 0x1f, 0, "first packet is the PAT");
            }
            Container::Fmp4 => assert_eq!(&s.data[4..8], b"moof"),
        }
    }
    let source = decode(&fixture_path(fixture));
    let output = decode(playlist.to_str().unwrap());
    assert_same_media(&source, &output, &name);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn h264_aac_ts_hls_decodes_every_frame_at_source_timestamps() {
    hls_round_trip("h264_aac.flv", Container::Ts, 1000, None);
}

#[test]
fn hevc_aac_ts_hls_decodes_every_frame_at_source_timestamps() {
    hls_round_trip("hevc_aac.flv", Container::Ts, 400, None);
}

#[test]
fn h264_aac_fmp4_hls_decodes_every_frame_at_source_timestamps() {
    hls_round_trip("h264_aac.flv", Container::Fmp4, 1000, None);
}

#[test]
fn hevc_aac_fmp4_hls_decodes_every_frame_at_source_timestamps() {
    hls_round_trip("hevc_aac.flv", Container::Fmp4, 400, None);
}

#[test]
fn ll_hls_ts_parts_keep_rfc_rules_and_decode() {
    hls_round_trip("h264_aac.flv", Container::Ts, 1000, Some(300));
}

#[test]
fn ll_hls_fmp4_parts_keep_rfc_rules_and_decode() {
    hls_round_trip("hevc_aac.flv", Container::Fmp4, 400, Some(200));
}

fn dash_round_trip(fixture: &str, target: u32) {
    let dir = temp_dir(&format!("dash-{fixture}"));
    let src = frames(fixture);
    let mut video = Segmenter::new(config(Container::Fmp4, Tracks::VideoOnly, target, None));
    let mut audio = Segmenter::new(config(Container::Fmp4, Tracks::AudioOnly, target, None));
    assert!(run(&mut video, &src).is_empty());
    assert!(run(&mut audio, &src).is_empty());
    let now = WALL_CLOCK_START + 3000;
    // Live: a dynamic MPD ffprobe understands, codecs from the configuration records.
    let tracks = [
        DashTrack {
            segmenter: &video,
            prefix: "video/",
        },
        DashTrack {
            segmenter: &audio,
            prefix: "audio/",
        },
    ];
    let live = dash::mpd(&tracks, now);
    for attr in [
        "type=\"dynamic\"",
        "availabilityStartTime=\"2023-11-14T22:13:20.000Z\"",
        "publishTime=",
        "minimumUpdatePeriod=",
        "timeShiftBufferDepth=",
        "suggestedPresentationDelay=",
        "<SegmentTimeline>",
        "startNumber=\"0\"",
    ] {
        assert!(live.contains(attr), "dynamic MPD lacks {attr}:\n{live}");
    }
    let vcodec = video.video_config().unwrap().codec_string.clone();
    assert!(vcodec.starts_with("avc1.") || vcodec.starts_with("hvc1."));
    assert!(
        live.contains(&format!("codecs=\"{vcodec}\"")) && live.contains("codecs=\"mp4a.40.2\"")
    );
    let _ = video.finish();
    let _ = audio.finish();
    write_hls(&video, &dir, "video");
    write_hls(&audio, &dir, "audio");
    let tracks = [
        DashTrack {
            segmenter: &video,
            prefix: "video/",
        },
        DashTrack {
            segmenter: &audio,
            prefix: "audio/",
        },
    ];
    std::fs::write(dir.join("live.mpd"), &live).unwrap();
    let probe = Command::new(ffprobe())
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(dir.join("live.mpd"))
        .output()
        .unwrap();
    let kinds = String::from_utf8_lossy(&probe.stdout);
    assert!(
        kinds.contains("video") && kinds.contains("audio"),
        "ffprobe on dynamic MPD: {kinds} {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    // Ended: the same segments as a static MPD decode completely.
    let mpd = dir.join("manifest.mpd");
    std::fs::write(&mpd, dash::mpd(&tracks, now)).unwrap();
    let output = decode(mpd.to_str().unwrap());
    let source = decode(&fixture_path(fixture));
    assert_same_media(&source, &output, &format!("DASH {fixture}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn h264_aac_dash_mpd_is_dynamic_and_its_segments_decode_completely() {
    dash_round_trip("h264_aac.flv", 1000);
}

#[test]
fn hevc_aac_dash_mpd_is_dynamic_and_its_segments_decode_completely() {
    dash_round_trip("hevc_aac.flv", 400);
}

#[test]
fn av1_opus_is_refused_with_a_typed_error() {
    let mut seg = Segmenter::new(config(Container::Ts, Tracks::All, 1000, None));
    let errors = run(&mut seg, &frames("av1_opus.flv"));
    assert!(errors.contains(&PackageError::UnsupportedCodec {
        codec: "AV1",
        container: "HLS/DASH"
    }));
    assert!(errors.contains(&PackageError::UnsupportedCodec {
        codec: "Opus",
        container: "HLS/DASH"
    }));
    let _ = seg.finish();
    assert_eq!(seg.segments().len(), 0);
}

/// The fixture repeated `times` times on one continuous timeline.
fn looped(fixture: &str, times: u32) -> Vec<Frame> {
    let src = frames(fixture);
    let period = (src.iter().map(|f| f.timestamp).max().unwrap() / 40 + 2) * 40;
    let mut out = Vec::new();
    for k in 0..times {
        for f in &src {
            let coded = !matches!(f.kind, FrameKind::Metadata);
            if k == 0 || coded {
                out.push(Frame::new(
                    f.kind,
                    f.timestamp + k * period,
                    f.payload.clone(),
                ));
            }
        }
    }
    out
}

fn media_sequence(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn playlist_slides_and_old_segments_leave_the_window() {
    let mut seg = Segmenter::new(SegmenterConfig {
        window: 3,
        ..config(Container::Ts, Tracks::All, 1000, None)
    });
    let src = looped("h264_aac.flv", 5);
    let half = src.len() / 2;
    run(&mut seg, &src[..half]);
    let early = hls::media_playlist(&seg, "");
    run(&mut seg, &src[half..]);
    let late = hls::media_playlist(&seg, "");
    check_playlist_rules(&late);
    assert!(media_sequence(&late) > media_sequence(&early));
    assert_eq!(seg.segments().len(), 3);
    let first = seg.segments().next().unwrap().msn;
    assert!(seg.segment(first - 1).is_none(), "slid-out segment is gone");
    assert!(!late.contains(&format!("seg-{}.ts", first - 1)));
    assert_eq!(late.matches("#EXTINF:").count(), 3);
    assert!(!late.contains("#EXT-X-ENDLIST"));
    // Program date time follows the media timeline from the wall clock given with frames.
    let s = seg.segments().next().unwrap();
    assert_eq!(s.program_date_time_ms, WALL_CLOCK_START + s.start_ms);
    assert!(late.contains(&format!(
        "#EXT-X-PROGRAM-DATE-TIME:{}",
        hls::iso8601(s.program_date_time_ms)
    )));
}

#[test]
fn republish_produces_a_discontinuity_and_a_continuous_decodable_timeline() {
    let dir = temp_dir("discontinuity");
    let mut seg = Segmenter::new(config(Container::Ts, Tracks::All, 1000, None));
    let src = frames("h264_aac.flv");
    run(&mut seg, &src);
    let _ = seg.discontinuity();
    run(&mut seg, &src); // timestamps restart at 0
    let _ = seg.finish();
    let playlist = write_hls(&seg, &dir, "hls");
    let text = std::fs::read_to_string(&playlist).unwrap();
    check_playlist_rules(&text);
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    let flagged: Vec<_> = seg.segments().filter(|s| s.discontinuity).collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].discontinuity_sequence, 1);
    let starts: Vec<u64> = seg.segments().map(|s| s.start_ms).collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "output timeline never goes back: {starts:?}"
    );
    let source = decode(&fixture_path("h264_aac.flv"));
    let output = decode(playlist.to_str().unwrap());
    for (kind, (n, _, _)) in &source.streams {
        assert_eq!(
            output.streams[kind].0,
            2 * n,
            "{kind}: both publishes decode"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audio_only_and_video_only_streams_are_segmented() {
    let src = frames("h264_aac.flv");
    for (kind, target) in [(FrameKind::Audio, 500u32), (FrameKind::Video, 1000)] {
        let dir = temp_dir(&format!("only-{kind:?}"));
        let only: Vec<Frame> = src.iter().filter(|f| f.kind == kind).cloned().collect();
        let mut seg = Segmenter::new(config(Container::Ts, Tracks::All, target, None));
        assert!(run(&mut seg, &only).is_empty());
        let _ = seg.finish();
        assert!(seg.segments().len() >= 2, "{kind:?}: cut into segments");
        for s in seg.segments() {
            assert!(
                s.duration_ms as u64 <= u64::from(target) + 100,
                "{kind:?}: {} ms",
                s.duration_ms
            );
        }
        let playlist = write_hls(&seg, &dir, "hls");
        check_playlist_rules(&std::fs::read_to_string(&playlist).unwrap());
        let output = decode(playlist.to_str().unwrap());
        let source = decode(&fixture_path("h264_aac.flv"));
        let key = if kind == FrameKind::Audio {
            "audio"
        } else {
            "video"
        };
        assert_eq!(output.streams.len(), 1);
        assert_eq!(output.streams[key].0, source.streams[key].0);
    }
}

/// An LL-HLS fMP4 segmenter (1 s segments, 200 ms parts) fed with the looped fixture until a
/// segment is complete and the open one has a part; the input and how much of it was fed.
fn live_ll_hls_segmenter() -> (Segmenter, Vec<Frame>, usize) {
    let mut seg = Segmenter::new(config(Container::Fmp4, Tracks::All, 1000, Some(200)));
    let src = looped("h264_aac.flv", 2);
    let mut i = 0;
    while seg.segments().len() == 0 || seg.open_segment().map_or(true, |(_, p)| p.is_empty()) {
        let f = &src[i];
        let _: Progress = seg
            .push(f, WALL_CLOCK_START + u64::from(f.timestamp))
            .unwrap();
        i += 1;
    }
    (seg, src, i)
}

#[test]
fn blocking_reload_answers_exactly_when_the_requested_part_exists() {
    let (mut seg, src, mut i) = live_ll_hls_segmenter();
    let (msn, parts) = seg
        .open_segment()
        .map(|(m, p)| (m, p.len() as u64))
        .unwrap();
    let text = hls::media_playlist(&seg, "");
    check_playlist_rules(&text);
    assert!(text.contains(&format!(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-{msn}.{parts}.m4s\""
    )));
    assert!(text.contains("INDEPENDENT=YES"));
    assert_eq!(
        hls::blocking_reload(&seg, msn, Some(parts - 1)),
        BlockingAnswer::Ready
    );
    assert_eq!(
        hls::blocking_reload(&seg, msn, Some(parts)),
        BlockingAnswer::Wait
    );
    assert_eq!(
        hls::blocking_reload(&seg, msn - 1, None),
        BlockingAnswer::Ready
    );
    assert_eq!(hls::blocking_reload(&seg, msn, None), BlockingAnswer::Wait);
    assert_eq!(
        hls::blocking_reload(&seg, msn + 2, Some(0)),
        BlockingAnswer::BadRequest
    );
    assert_eq!(
        hls::blocking_reload(&seg, msn, Some(u64::MAX)),
        BlockingAnswer::BadRequest,
        "an absurd part index is too far ahead, not an overflow"
    );
    // A part index past the last part of a completed segment means part 0 of the next one.
    let done = seg.segments().last().unwrap();
    let past = done.parts.len() as u64;
    assert_eq!(
        hls::blocking_reload(&seg, done.msn, Some(past)),
        BlockingAnswer::Ready
    );
    // Feed frames until a part completes: the held request becomes answerable.
    loop {
        let f = &src[i];
        i += 1;
        let progress = seg
            .push(f, WALL_CLOCK_START + u64::from(f.timestamp))
            .unwrap();
        if progress.parts > 0 {
            break;
        }
        assert_eq!(
            hls::blocking_reload(&seg, msn, Some(parts)),
            BlockingAnswer::Wait
        );
    }
    assert_eq!(
        hls::blocking_reload(&seg, msn, Some(parts)),
        BlockingAnswer::Ready
    );
    assert_eq!(
        seg.part(msn, parts as usize).map(|p| p.data.is_empty()),
        Some(false)
    );
}

#[test]
fn only_the_hinted_part_is_worth_waiting_for() {
    let (mut seg, src, mut i) = live_ll_hls_segmenter();
    let (msn, parts) = seg.open_segment().map(|(m, p)| (m, p.len())).unwrap();
    let hint = Resource::Part(msn, parts);
    assert_eq!(hls::availability(&seg, hint), Availability::Pending);
    assert_eq!(
        hls::availability(&seg, Resource::Part(msn, parts - 1)),
        Availability::Ready
    );
    assert_eq!(
        hls::availability(&seg, Resource::Part(msn, parts + 1)),
        Availability::Gone
    );
    assert_eq!(
        hls::availability(&seg, Resource::Part(msn + 1, 0)),
        Availability::Gone
    );
    assert_eq!(
        hls::availability(&seg, Resource::Segment(msn)),
        Availability::Gone
    );
    assert_eq!(
        hls::availability(&seg, Resource::Segment(msn - 1)),
        Availability::Ready
    );
    // The hinted part becomes ready with the progress that completes it.
    loop {
        let f = &src[i];
        i += 1;
        let progress = seg
            .push(f, WALL_CLOCK_START + u64::from(f.timestamp))
            .unwrap();
        if progress.parts > 0 {
            break;
        }
        assert_eq!(hls::availability(&seg, hint), Availability::Pending);
    }
    assert_eq!(hls::availability(&seg, hint), Availability::Ready);
    // Once the stream ended, the next hint is never made.
    let (msn, parts) = seg.open_segment().map(|(m, p)| (m, p.len())).unwrap();
    let _ = seg.finish();
    assert_eq!(
        hls::availability(&seg, Resource::Segment(msn)),
        Availability::Ready
    );
    let next = Resource::Part(msn, parts + 1);
    assert_eq!(hls::availability(&seg, next), Availability::Gone);
}

#[test]
fn parts_are_slices_of_their_segment_not_copies() {
    let mut seg = Segmenter::new(config(Container::Ts, Tracks::All, 1000, Some(300)));
    run(&mut seg, &frames("h264_aac.flv"));
    let _ = seg.finish();
    for s in seg.segments() {
        let mut at = s.data.as_ptr() as usize;
        for p in &s.parts {
            assert_eq!(
                p.data.as_ptr() as usize,
                at,
                "part shares the segment buffer"
            );
            at += p.data.len();
        }
        assert_eq!(at, s.data.as_ptr() as usize + s.data.len());
        let b: Bytes = s.data.clone();
        assert_eq!(b.as_ptr(), s.data.as_ptr());
    }
}
