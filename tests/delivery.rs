//! Every delivery format for every stream shape, through the real server: audio-only AAC,
//! video-only H.264, and HEVC + AAC over Enhanced RTMP are published by a real ffmpeg and read
//! back as HTTP-FLV, HLS (MPEG-TS and fMP4), LL-HLS parts and DASH, each decoded by ffmpeg
//! with no errors and compared with the decoded source.
//!
//! One test per shape; each starts two servers (MPEG-TS and fMP4 HLS, both with LL-HLS parts
//! and DASH) and publishes the same 4-second source to both without `-re` (the segmenter cuts
//! on media timestamps, not on the wall clock). A missing tool is a failure, never a skip.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tools::{modern_ffmpeg, tool, Dir};
use common::{fixture_tags, wait_for_log, wait_for_log_count, TestServer, WAIT};
use rtmp_edge::config::Config;

const FPS: usize = 25;
const SECONDS: usize = 4;
/// 1024 samples at 44.1 kHz.
const AAC_FRAME_MS: f64 = 1024.0 * 1000.0 / 44100.0;
const FRAME_MS: f64 = 1000.0 / FPS as f64;

/// The three stream shapes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    AudioOnly,
    VideoOnly,
    HevcAac,
}

impl Shape {
    fn has_audio(self) -> bool {
        self != Shape::VideoOnly
    }
    fn has_video(self) -> bool {
        self != Shape::AudioOnly
    }
    fn media_types(self) -> Vec<&'static str> {
        match self {
            Shape::AudioOnly => vec!["audio"],
            Shape::VideoOnly => vec!["video"],
            Shape::HevcAac => vec!["audio", "video"],
        }
    }
}

/// Runs `cmd` to completion (bounded by `timeout 60`); fails with its stderr unless it exits
/// 0 with nothing on stderr (every ffmpeg here runs at `-v error`). Returns stdout.
fn run_clean(what: &str, program: &Path, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stderr}",
        out.status
    );
    assert!(
        stderr.trim().is_empty(),
        "{what} reported errors:\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 4-second source FLV of `shape`: 320x240 testsrc at 25 fps with a keyframe every second
/// and no B-frames, and/or a 1 kHz sine as 44.1 kHz AAC.
fn make_source(dir: &Dir, shape: Shape) -> PathBuf {
    let out = dir.path("src.flv");
    let t = SECONDS.to_string();
    let video_in = format!("testsrc=size=320x240:rate={FPS}");
    let mut args: Vec<&str> = vec!["-v", "error", "-y"];
    if shape.has_video() {
        args.extend(["-f", "lavfi", "-i", &video_in]);
    }
    if shape.has_audio() {
        args.extend(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100"]);
    }
    args.extend(["-t", &t]);
    match shape {
        Shape::AudioOnly => {}
        Shape::VideoOnly => args.extend([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            "0",
            "-x264-params",
            "keyint=25:min-keyint=25:scenecut=0",
        ]),
        Shape::HevcAac => args.extend([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error",
        ]),
    }
    if shape.has_audio() {
        args.extend(["-c:a", "aac", "-b:a", "64k"]);
    }
    let path = out.display().to_string();
    args.extend(["-f", "flv", &path]);
    run_clean("encode the source", &encoder(shape), &args);
    out
}

/// The ffmpeg that encodes and publishes `shape` (E-RTMP HEVC needs the recent one).
fn encoder(shape: Shape) -> PathBuf {
    match shape {
        Shape::HevcAac => modern_ffmpeg(),
        _ => tool("ffmpeg"),
    }
}

/// One decoded stream in ffmpeg's framemd5 output.
#[derive(Debug, Default)]
struct Decoded {
    media_type: String,
    /// Time base as (num, den).
    tb: (i64, i64),
    /// (pts, duration, md5) of every decoded frame, in order.
    frames: Vec<(i64, i64, String)>,
}

impl Decoded {
    fn md5s(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f.2.as_str()).collect()
    }
    /// From the first frame's start to the last frame's end, milliseconds.
    fn span_ms(&self) -> f64 {
        let (Some(first), Some(last)) = (self.frames.first(), self.frames.last()) else {
            return 0.0;
        };
        (last.0 + last.1 - first.0) as f64 * 1000.0 * self.tb.0 as f64 / self.tb.1 as f64
    }
}

/// Decodes every stream of `input` with `ffmpeg -v error -xerror` (after `pre` input options)
/// and returns the decoded streams by media type. Fails on any decoder or demuxer error.
fn decode(what: &str, ffmpeg: &Path, pre: &[&str], input: &str) -> BTreeMap<String, Decoded> {
    let mut args = vec!["-v", "error", "-xerror"];
    args.extend(pre);
    args.extend(["-i", input, "-map", "0", "-f", "framemd5", "-"]);
    parse_framemd5(&run_clean(what, ffmpeg, &args))
}

fn parse_framemd5(text: &str) -> BTreeMap<String, Decoded> {
    let mut by_index: BTreeMap<usize, Decoded> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            let Some((key, value)) = rest.split_once(':') else {
                continue;
            };
            let mut words = key.split_whitespace();
            let (Some(name), Some(index)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let entry = by_index.entry(index).or_default();
            match name {
                "tb" => {
                    let (n, d) = value.trim().split_once('/').unwrap();
                    entry.tb = (n.parse().unwrap(), d.parse().unwrap());
                }
                "media_type" => entry.media_type = value.trim().to_string(),
                _ => {}
            }
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 6 {
            continue;
        }
        let index: usize = fields[0].parse().unwrap();
        by_index.entry(index).or_default().frames.push((
            fields[2].parse().unwrap(),
            fields[3].parse().unwrap(),
            fields[5].to_string(),
        ));
    }
    by_index
        .into_values()
        .map(|d| (d.media_type.clone(), d))
        .collect()
}

/// The decoded output holds exactly the source's streams, every source video frame
/// bit-exact, and every source audio frame. Audio is compared by frame count with a
/// tolerance of one AAC frame: the end of an audio-only segment is cut at the last frame's
/// millisecond timestamp, and a decoder may drop or add one priming frame at the edge.
fn assert_same_media(
    who: &str,
    source: &BTreeMap<String, Decoded>,
    got: &BTreeMap<String, Decoded>,
) {
    let want: Vec<&String> = source.keys().collect();
    let have: Vec<&String> = got.keys().collect();
    assert_eq!(have, want, "{who}: streams present");
    if let (Some(s), Some(g)) = (source.get("video"), got.get("video")) {
        assert_eq!(g.frames.len(), FPS * SECONDS, "{who}: decoded video frames");
        assert_eq!(
            g.md5s(),
            s.md5s(),
            "{who}: video frames differ from the source"
        );
        let (a, b) = (g.span_ms(), s.span_ms());
        assert!(
            (a - b).abs() <= FRAME_MS,
            "{who}: video lasts {a} ms, the source {b} ms"
        );
    }
    if let (Some(s), Some(g)) = (source.get("audio"), got.get("audio")) {
        let (a, b) = (g.frames.len() as i64, s.frames.len() as i64);
        assert!(
            (a - b).abs() <= 1,
            "{who}: {a} audio frames, the source has {b}"
        );
        let (a, b) = (g.span_ms(), s.span_ms());
        assert!(
            (a - b).abs() <= AAC_FRAME_MS + 1.0,
            "{who}: audio lasts {a} ms, the source {b} ms"
        );
    }
}

/// The server config of this file: 1 s segments, 250 ms parts, a window holding the whole
/// 4 s stream, DASH on, packaging from the publish (not on demand: the test reads the stream
/// after its publisher left), and players closed when the publisher leaves (so HTTP-FLV ends).
fn config(fmp4: bool) -> Config {
    let mut config = Config::default();
    config.http.hls_on_demand = false;
    config.workers.count = 1;
    config.http.hls = true;
    config.http.dash = true;
    config.http.hls_fmp4 = fmp4;
    config.http.hls_segment_ms = 1000;
    config.http.hls_part_ms = 250;
    config.http.hls_window = 10;
    config.streams.keep_players_on_unpublish = false;
    config
}

/// `GET path`, which must answer 200.
fn get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let (head, body) = common::get(addr, path);
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    (head, body)
}

/// Publishes `source` as live/`name` (as fast as ffmpeg reads it) and waits until the server
/// has seen the publisher leave, so every packager has flushed.
fn publish(server: &TestServer, shape: Shape, source: &Path, name: &str) {
    let url = format!("rtmp://127.0.0.1:{}/live/{name}", server.addr.port());
    let src = source.display().to_string();
    run_clean(
        "publish",
        &encoder(shape),
        &["-v", "error", "-i", &src, "-c", "copy", "-f", "flv", &url],
    );
    wait_for_log(&["unpublished", &format!("stream=live/{name}")]);
}

/// A child ffmpeg we started; killed by its PID if it outlives the test.
struct Viewer(Child, PathBuf);

impl Viewer {
    /// Waits (bounded) for it to exit and returns its framemd5 output.
    fn finish(mut self) -> BTreeMap<String, Decoded> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the HTTP-FLV viewer did not end");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            e.read_to_string(&mut stderr).unwrap();
        }
        assert!(status.success(), "HTTP-FLV viewer failed: {stderr}");
        // The body is chunked and ends with the zero chunk when the publisher leaves; ffmpeg
        // 5.1 reads that to a clean end. ffmpeg 9 logs "Last chunk received, closing conn"
        // (at -v debug) and then reports the end of input as one "Error during demuxing:
        // Input/output error": that line alone is tolerated. Anything else fails.
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                !(l.trim().is_empty() || l.ends_with("Error during demuxing: Input/output error"))
            })
            .collect();
        assert!(errors.is_empty(), "HTTP-FLV viewer errors: {stderr}");
        parse_framemd5(&std::fs::read_to_string(&self.1).unwrap())
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an ffmpeg decoding `/live/{name}.flv` and waits until the server counts it as a
/// player.
fn http_flv_viewer(server: &TestServer, ffmpeg: &Path, dir: &Dir, name: &str) -> Viewer {
    let out = dir.path(&format!("{name}.framemd5"));
    let url = format!("http://{}/live/{name}.flv", server.http);
    let child = Command::new(ffmpeg)
        .args([
            "-v", "error", "-i", &url, "-map", "0", "-f", "framemd5", "-y",
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg starts");
    let viewer = Viewer(child, out);
    wait_for_log_count(
        &["playing", &format!("stream=live/{name}"), "http-flv"],
        1,
        Duration::from_secs(30),
    );
    viewer
}

/// EXTINF durations of a media playlist, milliseconds.
fn extinf_ms(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse::<f64>().unwrap() * 1000.0)
        .collect()
}

/// The URI attribute of a playlist tag line.
fn uri_of(line: &str) -> &str {
    line.split("URI=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
}

/// Checks the finished HLS playlist of live/`name` and decodes it whole.
fn check_hls(
    server: &TestServer,
    ffmpeg: &Path,
    shape: Shape,
    fmp4: bool,
    name: &str,
    source: &BTreeMap<String, Decoded>,
) -> String {
    let who = format!("{shape:?} HLS {}", if fmp4 { "fMP4" } else { "TS" });
    let (head, body) = get(server.http, &format!("/live/{name}.m3u8"));
    assert!(head.contains("application/vnd.apple.mpegurl"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    assert!(
        playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{who}: the playlist of a stream whose publisher left ends:\n{playlist}"
    );
    assert_eq!(
        playlist.contains("#EXT-X-MAP:"),
        fmp4,
        "{who}: init segment only for fMP4:\n{playlist}"
    );
    let ext = if fmp4 { ".m4s" } else { ".ts" };
    assert!(
        playlist
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.ends_with(ext)),
        "{who}: segment names:\n{playlist}"
    );
    let segments = extinf_ms(&playlist);
    assert!(segments.len() >= 3, "{who}: segments cut:\n{playlist}");
    // Every frame lands in a segment: the playlist lasts the source's length. Video frames are
    // 40 ms on the millisecond FLV timeline; audio segments end on the last AAC frame's
    // millisecond timestamp plus the previous frame's duration, so both within one frame.
    let total: f64 = segments.iter().sum();
    let (want, slack) = match source.get("video") {
        Some(v) => (v.span_ms(), FRAME_MS),
        None => (source["audio"].span_ms(), AAC_FRAME_MS + 1.0),
    };
    assert!(
        (total - want).abs() <= slack,
        "{who}: playlist lasts {total} ms, the source {want} ms:\n{playlist}"
    );
    let url = format!("http://{}/live/{name}.m3u8", server.http);
    let got = decode(&who, ffmpeg, &[], &url);
    assert_same_media(&who, source, &got);
    playlist
}

/// The LL-HLS parts of the finished playlist: listed, and (init + parts, concatenated)
/// decodable into a tail of the source.
fn check_parts(
    server: &TestServer,
    ffmpeg: &Path,
    dir: &Dir,
    fmp4: bool,
    name: &str,
    playlist: &str,
    source: &BTreeMap<String, Decoded>,
) {
    let who = format!("LL-HLS parts of {name}");
    let parts: Vec<&str> = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .collect();
    assert!(parts.len() >= 4, "{who}: parts listed:\n{playlist}");
    assert!(
        parts[0].contains("INDEPENDENT=YES"),
        "{who}: the first listed part starts a segment:\n{playlist}"
    );
    let mut bytes = Vec::new();
    if fmp4 {
        let map = playlist
            .lines()
            .find(|l| l.starts_with("#EXT-X-MAP:"))
            .expect("an init segment");
        bytes.extend(get(server.http, &format!("/live/{}", uri_of(map))).1);
    }
    let mut listed_ms = 0.0;
    for p in &parts {
        let duration = p
            .split("DURATION=")
            .nth(1)
            .and_then(|d| d.split(',').next())
            .unwrap();
        listed_ms += duration.parse::<f64>().unwrap() * 1000.0;
        bytes.extend(get(server.http, &format!("/live/{}", uri_of(p))).1);
    }
    let file = dir.path(&format!("{name}-parts.{}", if fmp4 { "mp4" } else { "ts" }));
    std::fs::write(&file, bytes).unwrap();
    let got = decode(&who, ffmpeg, &[], &file.display().to_string());
    let want: Vec<&String> = source.keys().collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want,
        "{who}: streams present"
    );
    if let Some(v) = got.get("video") {
        // The listed parts are whole segments up to the end: a bit-exact tail of the source.
        let src = source["video"].md5s();
        let n = v.frames.len();
        assert!(n >= FPS, "{who}: only {n} video frames in the parts");
        assert_eq!(v.md5s(), src[src.len() - n..], "{who}: part frames");
        let expected = listed_ms / FRAME_MS;
        assert!(
            (n as f64 - expected).abs() <= 1.0,
            "{who}: {n} frames in {listed_ms} ms of parts"
        );
    }
    if let Some(a) = got.get("audio") {
        let expected = listed_ms / AAC_FRAME_MS;
        let n = a.frames.len() as f64;
        assert!(
            (n - expected).abs() <= 1.5,
            "{who}: {n} audio frames in {listed_ms} ms of parts"
        );
    }
}

/// The finished DASH manifest lists exactly the stream's adaptation sets, and ffmpeg decodes
/// it whole.
fn check_dash(
    server: &TestServer,
    ffmpeg: &Path,
    shape: Shape,
    name: &str,
    source: &BTreeMap<String, Decoded>,
) {
    let who = format!("{shape:?} DASH");
    let (head, body) = get(server.http, &format!("/live/{name}.mpd"));
    assert!(head.contains("application/dash+xml"), "{head}");
    let mpd = String::from_utf8(body).unwrap();
    let sets: Vec<&str> = mpd
        .lines()
        .filter(|l| l.contains("<AdaptationSet"))
        .map(|l| {
            l.split("contentType=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    let mut sorted = sets.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        shape.media_types(),
        "{who}: adaptation sets:\n{mpd}"
    );
    assert!(
        mpd.contains("type=\"static\""),
        "{who}: the manifest of a stream whose publisher left is static:\n{mpd}"
    );
    if shape == Shape::HevcAac {
        assert!(
            mpd.contains("codecs=\"hvc1.") || mpd.contains("codecs=\"hev1."),
            "{mpd}"
        );
    }
    let url = format!("http://{}/live/{name}.mpd", server.http);
    let got = decode(&who, ffmpeg, &[], &url);
    assert_same_media(&who, source, &got);
}

/// The whole matrix for one shape.
fn deliver(shape: Shape, tag: &str) {
    let ffmpeg = tool("ffmpeg");
    // The distribution's ffmpeg 5 cannot demux HEVC in Enhanced-RTMP FLV (the source and the
    // HTTP-FLV stream); the recent one decodes every format of that shape.
    let decoder = match shape {
        Shape::HevcAac => modern_ffmpeg(),
        _ => ffmpeg.clone(),
    };
    let dir = Dir::new(&format!("delivery-{tag}"));
    let source = make_source(&dir, shape);
    let reference = decode(
        "decode the source",
        &decoder,
        &[],
        &source.display().to_string(),
    );
    assert_eq!(
        reference.keys().map(String::as_str).collect::<Vec<_>>(),
        shape.media_types()
    );
    if let Some(v) = reference.get("video") {
        assert_eq!(v.frames.len(), FPS * SECONDS, "source video frames");
    }
    for fmp4 in [false, true] {
        let server = TestServer::start(config(fmp4));
        let name = format!("{tag}-{}", if fmp4 { "mp4" } else { "ts" });
        let viewer = (!fmp4).then(|| http_flv_viewer(&server, &decoder, &dir, &name));
        publish(&server, shape, &source, &name);
        if let Some(viewer) = viewer {
            assert_same_media(&format!("{shape:?} HTTP-FLV"), &reference, &viewer.finish());
        }
        let playlist = check_hls(&server, &decoder, shape, fmp4, &name, &reference);
        check_parts(&server, &decoder, &dir, fmp4, &name, &playlist, &reference);
        if !fmp4 {
            check_dash(&server, &decoder, shape, &name, &reference);
        }
    }
}

#[test]
fn an_audio_only_aac_stream_is_delivered_in_every_format() {
    deliver(Shape::AudioOnly, "aud");
}

#[test]
fn a_video_only_h264_stream_is_delivered_in_every_format() {
    deliver(Shape::VideoOnly, "vid");
}

#[test]
fn an_enhanced_rtmp_hevc_and_aac_stream_is_delivered_in_every_format() {
    deliver(Shape::HevcAac, "hevc");
}

#[test]
fn a_playlist_ends_when_its_publisher_leaves_and_goes_on_when_one_returns() {
    let server = TestServer::start(config(false));
    let tags = fixture_tags();
    for round in 1..=2 {
        // This config closes players when the publisher leaves: one watcher per round.
        let mut watcher = common::Client::play(server.addr, "live", "ends");
        let mut publisher = common::Client::publish(server.addr, "live", "ends");
        for tag in &tags {
            publisher.send(tag.tag_type, tag.timestamp, &tag.data);
        }
        // The owner packages a message before it fans it out: once the watcher has every
        // message, the playlist holds the whole round.
        watcher.media(tags.len());
        let (_, live) = get(server.http, "/live/ends.m3u8");
        let live = String::from_utf8(live).unwrap();
        assert!(!live.contains("#EXT-X-ENDLIST"), "round {round}:\n{live}");
        assert_eq!(
            live.matches("#EXT-X-DISCONTINUITY\n").count(),
            round - 1,
            "round {round}:\n{live}"
        );
        let (_, mpd) = get(server.http, "/live/ends.mpd");
        let mpd = String::from_utf8(mpd).unwrap();
        assert!(mpd.contains("type=\"dynamic\""), "round {round}:\n{mpd}");
        publisher.session.stop();
        publisher.flush();
        drop(publisher);
        wait_for_log_count(&["unpublished", "stream=live/ends"], round, WAIT);
        let (_, ended) = get(server.http, "/live/ends.m3u8");
        let ended = String::from_utf8(ended).unwrap();
        assert!(
            ended.ends_with("#EXT-X-ENDLIST\n") && !ended.contains("#EXT-X-PRELOAD-HINT"),
            "round {round}:\n{ended}"
        );
        let (_, mpd) = get(server.http, "/live/ends.mpd");
        let mpd = String::from_utf8(mpd).unwrap();
        assert!(mpd.contains("type=\"static\""), "round {round}:\n{mpd}");
    }
}
