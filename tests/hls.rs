//! HLS and LL-HLS served from the workers: playlists, shared segments, blocking reloads, and a
//! real ffmpeg decoding the live playlist.

mod common;

use rtmp_edge::shard::CloseReason;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use common::{
    fixture_tags, get, read_response, send_get, wait_for_log, wait_for_log_count, Client,
    TestServer, WAIT,
};
use rtmp_edge::media::flv::FlvTag;

/// The default config, but every stream is packaged from its publish rather than on demand,
/// so everything a test publishes is in the window.
fn eager() -> rtmp_edge::config::Config {
    let mut config = rtmp_edge::config::Config::default();
    config.http.hls_on_demand = false;
    config
}

/// Publishes the fixture `loops` times back to back with continuous timestamps, starting
/// after `offset_ms`; returns the timestamp the next loop would start at.
fn publish_loops(p: &mut Client, tags: &[FlvTag], loops: u32, offset_ms: u32) -> u32 {
    let span = tags.iter().map(|t| t.timestamp).max().unwrap() + 40;
    for l in 0..loops {
        for (i, tag) in tags.iter().enumerate() {
            let is_header = i < 3;
            if is_header && (l > 0 || offset_ms > 0) {
                continue;
            }
            p.send(
                tag.tag_type,
                offset_ms + l * span + tag.timestamp,
                &tag.data,
            );
        }
    }
    offset_ms + loops * span
}

#[test]
fn a_published_stream_is_served_as_hls_with_shared_ts_segments() {
    let (server, _publisher) = serve_fixture(rtmp_edge::config::Config::default(), "h", 5);
    let (head, body) = get(server.http, "/live/h.m3u8");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("application/vnd.apple.mpegurl"));
    let playlist = String::from_utf8(body).unwrap();
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-PART-INF:PART-TARGET="),
        "LL-HLS parts are on by default"
    );
    assert!(playlist.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES"));
    let first_segment = playlist
        .lines()
        .find(|l| l.starts_with("h/seg-"))
        .expect("a segment URI")
        .to_string();
    let (head, ts) = get(server.http, &format!("/live/{first_segment}"));
    assert!(head.contains("Content-Type: video/mp2t"), "{head}");
    assert!(
        !ts.is_empty() && ts.len() % 188 == 0 && ts[0] == 0x47,
        "MPEG-TS packets"
    );
    let part = playlist
        .lines()
        .find_map(|l| {
            l.strip_prefix("#EXT-X-PART:")
                .and_then(|a| a.split("URI=\"").nth(1))
                .and_then(|u| u.split('"').next())
                .map(str::to_string)
        })
        .expect("a part URI");
    let (head, part_bytes) = get(server.http, &format!("/live/{part}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(part_bytes[0], 0x47);
    let (head, _) = get(server.http, "/live/h/seg-999999.ts");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = get(server.http, "/live/nobody.m3u8");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[test]
fn a_blocking_playlist_reload_is_held_until_its_part_exists() {
    let server = TestServer::start(eager());
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "b");
    let mut watcher = Client::play(server.addr, "live", "b");
    let next = publish_loops(&mut publisher, &tags, 3, 0);
    watcher.media(tags.len() + 2 * (tags.len() - 3));
    let (_, body) = get(server.http, "/live/b.m3u8");
    let playlist = String::from_utf8(body).unwrap();
    let media_sequence: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let segments = playlist.lines().filter(|l| l.starts_with("b/seg-")).count() as u64;
    let want = media_sequence + segments + 1;
    // Ask for part 0 of a segment that does not exist yet: the answer waits for it.
    let mut held = TcpStream::connect(server.http).unwrap();
    held.write_all(format!("GET /live/b.m3u8?_HLS_msn={want}&_HLS_part=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    held.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut probe = [0u8; 1];
    assert!(
        held.read(&mut probe).is_err(),
        "the server answered before the part existed"
    );
    publish_loops(&mut publisher, &tags, 3, next);
    held.set_read_timeout(Some(WAIT)).unwrap();
    let mut all = Vec::new();
    held.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains(&format!("part-{want}.0.ts")),
        "the answer holds the awaited part:\n{text}"
    );
}

/// Publishes `loops` of the fixture as live/`name` and returns once a player has seen every
/// message, so the owner has packaged all of it. The publisher is returned so the stream stays
/// live (dropping it unpublishes, which ends the playlist). Packaging starts with the publish
/// (not on demand) so the whole fixture is in the window.
fn serve_fixture(
    mut config: rtmp_edge::config::Config,
    name: &str,
    loops: u32,
) -> (TestServer, Client) {
    config.http.hls_on_demand = false;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", name);
    let mut watcher = Client::play(server.addr, "live", name);
    publish_loops(&mut publisher, &tags, loops, 0);
    watcher.media(tags.len() + (loops as usize - 1) * (tags.len() - 3));
    (server, publisher)
}

/// Decodes `seconds` of video from `url` with ffmpeg (`input_args` go before `-i`); returns
/// the number of decoded video frames and ffmpeg's stderr. Fails if ffmpeg is missing or fails.
fn ffmpeg_video_frames(input_args: &[&str], url: &str, seconds: &str) -> (usize, String) {
    let have = Command::new("sh")
        .arg("-c")
        .arg("command -v ffmpeg")
        .output()
        .unwrap();
    assert!(
        have.status.success(),
        "missing tool `ffmpeg`: run tools/test.sh as root"
    );
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-v", "error"])
        .args(input_args)
        .args([
            "-i", url, "-map", "0:v:0", "-t", seconds, "-f", "framemd5", "-",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("0,"))
        .count();
    (frames, stderr)
}

#[test]
fn ffmpeg_decodes_the_live_hls_playlist() {
    let (server, _publisher) = serve_fixture(rtmp_edge::config::Config::default(), "ff", 5);
    let url = format!("http://{}/live/ff.m3u8", server.http);
    let (frames, stderr) = ffmpeg_video_frames(&["-live_start_index", "0"], &url, "3");
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors: {stderr}");
    assert!(frames >= 50, "decoded only {frames} video frames");
}

#[test]
fn ffmpeg_decodes_the_live_fmp4_hls_playlist() {
    let mut config = rtmp_edge::config::Config::default();
    config.http.hls_fmp4 = true;
    let (server, _publisher) = serve_fixture(config, "mp4", 5);
    let (_, body) = get(server.http, "/live/mp4.m3u8");
    let playlist = String::from_utf8(body).unwrap();
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"mp4/init-"),
        "{playlist}"
    );
    let url = format!("http://{}/live/mp4.m3u8", server.http);
    let (frames, stderr) = ffmpeg_video_frames(&["-live_start_index", "0"], &url, "3");
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors: {stderr}");
    assert!(frames >= 50, "decoded only {frames} video frames");
}

#[test]
fn ffmpeg_reads_the_live_dash_manifest_and_its_segments() {
    let (server, _publisher) = serve_fixture(rtmp_edge::config::Config::default(), "d", 5);
    let (head, body) = get(server.http, "/live/d.mpd");
    assert!(head.contains("application/dash+xml"), "{head}");
    let mpd = String::from_utf8(body).unwrap();
    assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
    assert!(
        mpd.contains("d/video/") && mpd.contains("d/audio/"),
        "{mpd}"
    );
    assert!(
        mpd.contains("avc1.") && mpd.contains("mp4a.40"),
        "codec strings: {mpd}"
    );
    let (head, init) = get(server.http, "/live/d/video/init-0.mp4");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(&init[4..8], b"ftyp");
    let url = format!("http://{}/live/d.mpd", server.http);
    let (frames, stderr) = ffmpeg_video_frames(&[], &url, "2");
    assert!(
        frames >= 25,
        "decoded only {frames} video frames ({stderr})"
    );
}

#[test]
fn a_republished_stream_continues_its_playlist_after_a_discontinuity() {
    let server = TestServer::start(eager());
    let tags = fixture_tags();
    let mut watcher = Client::play(server.addr, "live", "re");
    let mut publisher = Client::publish(server.addr, "live", "re");
    publish_loops(&mut publisher, &tags, 3, 0);
    watcher.media(tags.len() + 2 * (tags.len() - 3));
    publisher.session.stop();
    publisher.flush();
    watcher.wait_for("UnpublishNotify", |e| {
        matches!(e, rtmp_edge::rtmp::session::ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")
    });
    let (_, before) = get(server.http, "/live/re.m3u8");
    let before = String::from_utf8(before).unwrap();
    assert!(!before.contains("#EXT-X-DISCONTINUITY\n"), "{before}");
    let mut again = Client::publish(server.addr, "live", "re");
    publish_loops(&mut again, &tags, 3, 0);
    watcher.media(tags.len() + 2 * (tags.len() - 3));
    let (_, after) = get(server.http, "/live/re.m3u8");
    let after = String::from_utf8(after).unwrap();
    assert_eq!(
        after.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{after}"
    );
    let segs: Vec<u64> = after
        .lines()
        .filter_map(|l| {
            l.strip_prefix("re/seg-")
                .and_then(|r| r.strip_suffix(".ts"))
        })
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        segs.windows(2).all(|w| w[1] == w[0] + 1),
        "media sequence keeps counting: {segs:?}"
    );
}

#[test]
fn hls_dir_gets_the_window_of_segments_and_a_playlist_without_parts() {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-hls-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = rtmp_edge::config::Config::default();
    config.http.hls_dir = dir.display().to_string();
    config.http.hls_dir_keep = true;
    config.http.hls_window = 2;
    let (server, publisher) = serve_fixture(config, "disk", 6);
    drop(publisher);
    wait_for_log(&["unpublished", "stream=live/disk"]);
    // Shutdown joins the disk writer after the workers, so every queued file is written.
    server.shutdown();
    let playlist =
        std::fs::read_to_string(dir.join("live/disk/index.m3u8")).expect("playlist on disk");
    assert!(!playlist.contains("#EXT-X-PART"), "{playlist}");
    assert!(
        playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "the ended stream's playlist on disk is final:\n{playlist}"
    );
    let segments: Vec<&str> = playlist.lines().filter(|l| l.starts_with("seg-")).collect();
    assert!(!segments.is_empty(), "{playlist}");
    for s in &segments {
        let bytes = std::fs::read(dir.join("live/disk").join(s)).expect("segment on disk");
        assert_eq!(bytes[0], 0x47, "{s} is MPEG-TS");
    }
    let on_disk = std::fs::read_dir(dir.join("live/disk")).unwrap().count();
    assert!(
        on_disk <= segments.len() + 1,
        "segments that left the window are removed: {on_disk} files with the playlist"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The URI the playlist's EXT-X-PRELOAD-HINT names.
fn preload_hint(playlist: &str) -> String {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|u| u.split('"').next())
        .unwrap_or_else(|| panic!("a preload hint in:\n{playlist}"))
        .to_string()
}

/// Asserts nothing arrives on `c` for 300 ms (the request is being held).
fn assert_held(c: &mut TcpStream, what: &str) {
    c.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut probe = [0u8; 1];
    assert!(c.read(&mut probe).is_err(), "{what} was answered at once");
    c.set_read_timeout(Some(WAIT)).unwrap();
}

#[test]
fn a_request_for_the_hinted_part_is_held_until_the_part_is_made() {
    let server = TestServer::start(eager());
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "hint");
    let mut watcher = Client::play(server.addr, "live", "hint");
    let next = publish_loops(&mut publisher, &tags, 2, 0);
    watcher.media(tags.len() + (tags.len() - 3));
    let (_, body) = get(server.http, "/live/hint.m3u8");
    let hint = preload_hint(&String::from_utf8(body).unwrap());
    let mut held = send_get(server.http, &format!("/live/{hint}"));
    assert_held(&mut held, "the hinted part");
    publish_loops(&mut publisher, &tags, 2, next);
    let (head, part) = read_response(&mut held);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Type: video/mp2t"), "{head}");
    assert!(
        !part.is_empty() && part.len() % 188 == 0 && part[0] == 0x47,
        "the held answer is the part's MPEG-TS packets"
    );
    let (_, again) = get(server.http, &format!("/live/{hint}"));
    assert_eq!(
        again, part,
        "the held answer is the part the playlist lists"
    );
    // A part after the hint is not held: it is not made yet and may never be.
    let (_, body) = get(server.http, "/live/hint.m3u8");
    let hint = preload_hint(&String::from_utf8(body).unwrap());
    let (msn, index) = hint
        .trim_start_matches("hint/part-")
        .trim_end_matches(".ts")
        .split_once('.')
        .unwrap();
    let beyond = format!(
        "/live/hint/part-{msn}.{}.ts",
        index.parse::<u32>().unwrap() + 1
    );
    let (head, _) = get(server.http, &beyond);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[test]
fn held_requests_whose_part_never_comes_are_answered_503_at_their_deadline() {
    let mut config = eager();
    config.http.hls_segment_ms = 1000;
    config.http.hls_part_ms = 250;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "stalled");
    let mut watcher = Client::play(server.addr, "live", "stalled");
    publish_loops(&mut publisher, &tags, 1, 0);
    watcher.media(tags.len());
    // The publisher stays connected but sends nothing more: the next part never completes.
    let (_, body) = get(server.http, "/live/stalled.m3u8");
    let playlist = String::from_utf8(body).unwrap();
    let hint = preload_hint(&playlist);
    let (msn, index) = hint
        .trim_start_matches("stalled/part-")
        .trim_end_matches(".ts")
        .split_once('.')
        .unwrap();
    let started = std::time::Instant::now();
    let mut reload = send_get(
        server.http,
        &format!("/live/stalled.m3u8?_HLS_msn={msn}&_HLS_part={index}"),
    );
    let mut part = send_get(server.http, &format!("/live/{hint}"));
    // A HEAD of the hinted part on a kept connection, then a GET of the playlist behind it.
    let mut head_then_get = TcpStream::connect(server.http).unwrap();
    head_then_get.set_read_timeout(Some(WAIT)).unwrap();
    head_then_get
        .write_all(
            format!(
                "HEAD /live/{hint} HTTP/1.1\r\nHost: x\r\n\r\n\
                 GET /live/stalled.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    assert_held(&mut reload, "the blocking reload");
    for c in [&mut reload, &mut part] {
        let (head, body) = read_response(c);
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("did not arrive in time"));
    }
    // Held for three target durations (3 s here), not answered early.
    assert!(started.elapsed() >= std::time::Duration::from_millis(2900));
    // The HEAD got the 503 head alone: the next bytes are the playlist's answer.
    let mut all = Vec::new();
    head_then_get.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let first_end = text.find("\r\n\r\n").expect("a head") + 4;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text[first_end..].starts_with("HTTP/1.1 200 OK"),
        "no body after the HEAD answer:\n{text}"
    );
    // The stream itself is unharmed: the playlist is still served.
    let (head, _) = get(server.http, "/live/stalled.m3u8");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    drop(publisher);
}

#[test]
fn head_requests_get_the_segment_head_without_its_body_on_a_kept_connection() {
    let (server, _publisher) = serve_fixture(rtmp_edge::config::Config::default(), "headreq", 3);
    let (_, body) = get(server.http, "/live/headreq.m3u8");
    let playlist = String::from_utf8(body).unwrap();
    let segment = playlist
        .lines()
        .find(|l| l.starts_with("headreq/seg-"))
        .expect("a segment URI")
        .to_string();
    let mut c = TcpStream::connect(server.http).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(
        format!(
            "HEAD /live/{segment} HTTP/1.1\r\nHost: x\r\n\r\n\
             HEAD /live/headreq.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /live/{segment} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let heads: Vec<usize> = text
        .match_indices("HTTP/1.1 200 OK")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(heads.len(), 3, "three answers on one connection:\n{text}");
    let length = |head: &str| -> usize {
        head.lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a Content-Length")
    };
    let first_end = text[heads[0]..].find("\r\n\r\n").unwrap() + heads[0] + 4;
    assert_eq!(first_end, heads[1], "no body after the HEAD answer");
    let announced = length(&text[heads[0]..first_end]);
    let second_end = text[heads[1]..].find("\r\n\r\n").unwrap() + heads[1] + 4;
    assert_eq!(
        second_end, heads[2],
        "no playlist body after the HEAD answer"
    );
    let third_end = text[heads[2]..].find("\r\n\r\n").unwrap() + heads[2] + 4;
    assert_eq!(length(&text[heads[2]..third_end]), announced);
    assert_eq!(all.len() - third_end, announced, "the GET carries the body");
}

/// Unix milliseconds of an EXT-X-PROGRAM-DATE-TIME value (`YYYY-MM-DDThh:mm:ss.sssZ`).
fn pdt_ms(value: &str) -> u64 {
    let n = |range: std::ops::Range<usize>| -> i64 { value[range].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant), as the server formats it.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)) as u64
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn on_demand_packaging_starts_at_the_first_request_from_the_cached_gop() {
    let server = TestServer::with_defaults();
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "lazy");
    let mut watcher = Client::play(server.addr, "live", "lazy");
    let next = publish_loops(&mut publisher, &tags, 2, 0);
    watcher.media(tags.len() + (tags.len() - 3));
    assert!(
        common::log_lines_with(&["stream=live/lazy", "packaging started"]).is_empty(),
        "nobody asked yet: the stream is not packaged"
    );
    let asked = unix_ms();
    let mut first = send_get(server.http, "/live/lazy.m3u8");
    // The first request starts packaging and is answered once a segment is complete.
    assert_held(
        &mut first,
        "the first playlist request (no complete segment yet)",
    );
    let started = wait_for_log(&["stream=live/lazy", "packaging started"]);
    assert!(
        !started.contains("seeded=0"),
        "seeded from the GOP cache: {started}"
    );
    publish_loops(&mut publisher, &tags, 2, next);
    let (head, body) = read_response(&mut first);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    assert!(playlist.contains("lazy/seg-0.ts"), "{playlist}");
    // The first segment starts at the cached keyframe, published before the request.
    let pdt = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .map(pdt_ms)
        .expect("a program date time");
    assert!(pdt < asked, "first segment at {pdt}, asked at {asked}");
    assert_eq!(
        common::log_lines_with(&["stream=live/lazy", "packaging started"]).len(),
        1
    );
}

#[test]
fn on_demand_packaging_stops_when_nobody_asks_and_restarts_on_the_next_request() {
    let mut config = rtmp_edge::config::Config::default();
    config.http.hls_segment_ms = 500;
    config.http.hls_part_ms = 100;
    config.http.hls_idle_ms = 1500;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "idle");
    let mut watcher = Client::play(server.addr, "live", "idle");
    let mut next = publish_loops(&mut publisher, &tags, 1, 0);
    watcher.media(tags.len());
    for round in 1..=2 {
        let mut c = send_get(server.http, "/live/idle.m3u8");
        wait_for_log_count(&["stream=live/idle", "packaging started"], round, WAIT);
        next = publish_loops(&mut publisher, &tags, 2, next);
        let (head, body) = read_response(&mut c);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let playlist = String::from_utf8(body).unwrap();
        assert!(
            playlist.contains("#EXT-X-MEDIA-SEQUENCE:0"),
            "each start is a fresh window:\n{playlist}"
        );
        // Nobody asks again: the owner stops packaging and frees the window.
        wait_for_log_count(
            &["stream=live/idle", "packaging stopped: no HTTP request"],
            round,
            WAIT,
        );
        // The stream itself plays on over RTMP meanwhile.
        publish_loops(&mut publisher, &tags, 1, next);
        next += tags.iter().map(|t| t.timestamp).max().unwrap() + 40;
        watcher.media(2 * (tags.len() - 3));
    }
}

#[test]
fn first_requests_on_every_worker_start_the_owners_packaging_once() {
    let mut config = rtmp_edge::config::Config::default();
    config.workers.count = 2;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "multi");
    let mut watcher = Client::play(server.addr, "live", "multi");
    let next = publish_loops(&mut publisher, &tags, 2, 0);
    watcher.media(tags.len() + (tags.len() - 3));
    // Connections spread over both workers (SO_REUSEPORT hashes each source port), so most
    // runs have requests on the worker that does not own the stream: those ask the owner
    // over the bus.
    let mut waiting: Vec<TcpStream> = (0..12)
        .map(|_| send_get(server.http, "/live/multi.m3u8"))
        .collect();
    wait_for_log(&["stream=live/multi", "packaging started"]);
    publish_loops(&mut publisher, &tags, 2, next);
    for c in waiting.iter_mut() {
        let (head, body) = read_response(c);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("multi/seg-0.ts"));
    }
    let worker_of = |line: &String| {
        line.split("worker=")
            .nth(1)?
            .split(' ')
            .next()
            .map(str::to_string)
    };
    let owner = worker_of(&wait_for_log(&["publishing", "stream=live/multi"])).unwrap();
    let journal = server.journal();
    let served: Vec<String> = waiting
        .iter()
        .map(|c| journal.closed(c.local_addr().unwrap().port()))
        .inspect(|closed| {
            assert!(
                // Held until the first segment, then answered.
                matches!(
                    closed.reason,
                    CloseReason::HttpAnswered { .. } | CloseReason::HttpResponseSent
                ),
                "{closed:?}"
            )
        })
        .map(|closed| closed.worker.to_string())
        .collect();
    // 12 connections all hashed to the owner: 1 run in 4096.
    assert!(
        served.iter().any(|w| *w != owner),
        "some request was served by the worker that does not own the stream: {served:?} vs {owner}"
    );
    assert_eq!(
        common::log_lines_with(&["stream=live/multi", "packaging started"]).len(),
        1,
        "one start however many workers asked"
    );
}

#[test]
fn a_takeover_from_another_worker_keeps_the_new_publishers_playlist_alive() {
    let mut config = eager();
    config.workers.count = 2;
    config.streams.publish_takeover = true;
    config.http.hls_segment_ms = 500;
    config.http.hls_part_ms = 100;
    config.http.hls_idle_ms = 1500;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let worker_of = |line: &str| {
        line.split("worker=")
            .nth(1)?
            .split(' ')
            .next()
            .map(str::to_string)
    };
    let mut publisher = Client::publish(server.addr, "live", "tk");
    let publishing = |n| wait_for_log_count(&["publishing", "stream=live/tk"], n, WAIT);
    let mut owner = worker_of(&publishing(1)[0]).unwrap();
    let mut next = publish_loops(&mut publisher, &tags, 1, 0);
    // New publishers take the name over until one lands on the other worker (SO_REUSEPORT
    // hashes each connection; 1 in 2 per try).
    let mut tries = 1;
    let moved = loop {
        assert!(tries < 40, "every takeover landed on worker {owner}");
        let newcomer = Client::publish(server.addr, "live", "tk");
        tries += 1;
        let worker = worker_of(&publishing(tries)[tries - 1]).unwrap();
        let crossed = worker != owner;
        publisher = newcomer;
        owner = worker;
        if crossed {
            break owner.clone();
        }
    };
    // The old owner was told to drop its publisher; the new owner feeds the playlist now.
    // Publish on past the idle time, so a packager the old owner wrongly marked as unfed
    // would be freed under the new owner's feet.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    while std::time::Instant::now() < deadline {
        next = publish_loops(&mut publisher, &tags, 1, next);
        std::thread::sleep(std::time::Duration::from_millis(200)); // pace the publisher
    }
    let (head, body) = get(server.http, "/live/tk.m3u8");
    assert!(
        head.starts_with("HTTP/1.1 200 OK"),
        "worker {moved}: {head}"
    );
    let playlist = String::from_utf8(body).unwrap();
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");
}

/// This process's resident set size, bytes (the server runs in-process).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn a_stream_without_keyframes_keeps_bounded_segments_and_a_bystander_plays_on() {
    use common::media;
    let mut config = eager();
    config.http.hls_max_segment_bytes = rtmp_edge::config::MIN_SEGMENT_CAP_BYTES;
    config.streams.gop_cache_max_bytes = 1024 * 1024;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut watcher = Client::play(server.addr, "live", "bystander");
    let mut bystander = Client::publish(server.addr, "live", "bystander");
    let next = publish_loops(&mut bystander, &tags, 1, 0);
    watcher.media(tags.len());
    let rss_before = rss_bytes();

    // One keyframe, then 192 MB of inter frames (30 s at 25 fps), then a keyframe again.
    let mut hostile = Client::publish(server.addr, "live", "nokey");
    hostile.send(9, 0, &media::avc_header());
    hostile.send(9, 0, &media::avc_frame(true, 0, 1000));
    let frame = 256 * 1024;
    for i in 1..=768u32 {
        hostile.send(9, i * 40, &media::avc_frame(false, i, frame));
    }
    for i in 769..=780u32 {
        hostile.send(9, i * 40, &media::avc_frame(i == 769, i, 1000));
    }
    hostile.session.stop();
    hostile.flush();
    wait_for_log(&["unpublished", "stream=live/nokey"]);
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(
        grown < 64 << 20,
        "192 MB without keyframes grew the process by {} MB",
        grown >> 20
    );

    let warnings = common::log_lines_with(&[
        "segment reached its cap",
        "stream=live/nokey ",
        "rendition=\"hls\"",
    ]);
    assert_eq!(warnings.len(), 1, "one warning for the run: {warnings:?}");
    assert!(warnings[0].contains("limit=\"http.hls_max_segment_bytes\""));
    let (head, body) = get(server.http, "/live/nokey.m3u8");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    let after_run = playlist
        .split("#EXT-X-DISCONTINUITY\n")
        .nth(1)
        .unwrap_or_else(|| {
            panic!("the keyframe after the run starts a discontinuity:\n{playlist}")
        });
    assert!(after_run.contains("nokey/seg-1.ts"), "{playlist}");
    assert!(playlist.contains("nokey/seg-0.ts") && playlist.ends_with("#EXT-X-ENDLIST\n"));

    // The bystander was packaged all along and still is.
    publish_loops(&mut bystander, &tags, 2, next);
    watcher.media(2 * (tags.len() - 3));
    let (head, body) = get(server.http, "/live/bystander.m3u8");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    assert!(playlist.contains("bystander/seg-1.ts"), "{playlist}");
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
}

/// A stream name with `%`, a space, non-ASCII and `:` (which would read as a URI scheme).
const ODD_NAME: &str = "café 100% a:b";
const ODD_NAME_ENCODED: &str = "caf%C3%A9%20100%25%20a%3Ab";

#[test]
fn a_stream_name_needing_percent_encoding_is_served_and_its_playlists_link_back_to_it() {
    let (server, _publisher) = serve_fixture(rtmp_edge::config::Config::default(), ODD_NAME, 3);
    let (head, body) = get(server.http, &format!("/live/{ODD_NAME_ENCODED}.m3u8"));
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    let segment = playlist
        .lines()
        .find(|l| l.contains("seg-") && !l.starts_with('#'))
        .expect("a segment URI")
        .to_string();
    assert!(
        segment.starts_with(&format!("{ODD_NAME_ENCODED}/seg-")),
        "segment URIs are percent-encoded: {playlist}"
    );
    let (head, ts) = get(server.http, &format!("/live/{segment}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(ts[0], 0x47, "MPEG-TS");
    let part = preload_hint(&playlist);
    assert!(part.starts_with(ODD_NAME_ENCODED), "{playlist}");
    let (head, body) = get(server.http, &format!("/live/{ODD_NAME_ENCODED}.mpd"));
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let mpd = String::from_utf8(body).unwrap();
    assert!(
        mpd.contains(&format!("\"{ODD_NAME_ENCODED}/video/init-")),
        "{mpd}"
    );
    let (head, init) = get(
        server.http,
        &format!("/live/{ODD_NAME_ENCODED}/video/init-0.mp4"),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(&init[4..8], b"ftyp");
}

/// Every file under `dir`, recursively, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// Publishes `loops` of the fixture as `app`/`name`, returning once a player has seen it all.
fn publish_fixture(server: &TestServer, app: &str, name: &str, loops: u32) -> Client {
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, app, name);
    let mut watcher = Client::play(server.addr, app, name);
    publish_loops(&mut publisher, &tags, loops, 0);
    watcher.media(tags.len() + (loops as usize - 1) * (tags.len() - 3));
    publisher
}

#[test]
fn hls_dir_gives_every_stream_its_own_directory_whatever_its_name() {
    let base = std::env::temp_dir().join(format!("rtmp-edge-hls-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dir = base.join("hls");
    let mut config = eager();
    config.http.hls_dir = dir.display().to_string();
    config.http.hls_dir_keep = true;
    // (app, stream) and the directory its index.m3u8 and segments go to: names that shared a
    // playlist (`with_extension`), a directory that shadowed a playlist, a `.tmp` that
    // blocked another stream's write, names that were not written at all, and names that
    // would leave the directory.
    let streams = [
        ("live", "cam", "live/cam"),
        ("live", "cam.hd", "live/cam.hd"),
        ("live", "cam.sd", "live/cam.sd"),
        ("live", "cam.tmp", "live/cam.tmp"),
        ("live", "plain", "live/plain"),
        ("live", "plain.m3u8", "live/plain.m3u8"),
        ("live", "a b%", "live/a%20b%25"),
        ("live", "a b%25", "live/a%20b%2525"),
        ("live", "café", "live/caf%C3%A9"),
        ("live", "..", "live/%2E."),
        // The key `live/../../etc/x` splits at its last `/`: app `live/../../etc`, stream
        // `x`; unescaped, `hls/live/../../etc/x` would be `etc/x` beside `hls`.
        ("live", "../../etc/x", "live%2F..%2F..%2Fetc/x"),
        ("live", ".hidden", "live/%2Ehidden"),
        ("../up", "x", "%2E.%2Fup/x"),
        ("live/sub", "cam", "live%2Fsub/cam"),
    ];
    let server = TestServer::start(config);
    let publishers: Vec<Client> = streams
        .iter()
        .map(|(app, name, _)| publish_fixture(&server, app, name, 2))
        .collect();
    // Shutdown ends the streams (their final playlists go to disk) and joins the disk writer
    // after the workers, so every queued file is written.
    server.shutdown();
    drop(publishers);
    let top: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, ["hls"], "nothing is written outside hls_dir");
    let files = files_under(&dir);
    for (app, name, rel) in streams {
        let playlist = std::fs::read_to_string(dir.join(rel).join("index.m3u8"))
            .unwrap_or_else(|e| panic!("{app}/{name}: {rel}/index.m3u8: {e}; files: {files:?}"));
        assert!(
            playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
            "{playlist}"
        );
        let segments: Vec<&str> = playlist.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!segments.is_empty(), "{playlist}");
        for s in segments {
            assert!(s.starts_with("seg-"), "URIs relative to the playlist: {s}");
            let bytes = std::fs::read(dir.join(rel).join(s)).expect("segment on disk");
            assert_eq!(bytes[0], 0x47, "{rel}/{s} is MPEG-TS");
        }
    }
    assert!(
        !files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "tmp")),
        "no temporary file is left: {files:?}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// Waits until the disk writer has written `stream`'s playlist in the test directory `tag`
/// once more than `before` times; the writer works in order, so every file queued before
/// is done too.
fn wait_for_disk_playlist(tag: &str, stream: &str, before: usize) {
    let file = format!("{stream}/index.m3u8");
    wait_for_log_count(&["HLS file written", tag, &file], before + 1, WAIT);
}

#[test]
fn hls_dir_files_of_a_stream_go_when_its_publisher_leaves_and_come_back_on_republish() {
    let tag = format!("rtmp-edge-hls-gone-{}", std::process::id());
    let dir = std::env::temp_dir().join(&tag);
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = eager();
    config.http.hls_dir = dir.display().to_string();
    let server = TestServer::start(config);
    let publisher = publish_fixture(&server, "live", "gone", 2);
    let stream_dir = dir.join("live/gone");
    // A second stream published after it: once its playlist is on disk, so is everything
    // queued for the first.
    let _first = publish_fixture(&server, "live", "sentinel-1", 2);
    wait_for_disk_playlist(&tag, "sentinel-1", 0);
    assert!(stream_dir.join("index.m3u8").exists(), "written while live");
    drop(publisher);
    wait_for_log(&["unpublished", "stream=live/gone"]);
    let _second = publish_fixture(&server, "live", "sentinel-2", 2);
    wait_for_disk_playlist(&tag, "sentinel-2", 0);
    assert!(
        !stream_dir.exists(),
        "the stream's files went with its publisher: {:?}",
        std::fs::read_dir(&stream_dir).map(|d| d.count())
    );
    // Republished: the playlist continues (a discontinuity), and every segment it lists is
    // on disk again, the ones from before the discontinuity too.
    let _again = publish_fixture(&server, "live", "gone", 2);
    let _third = publish_fixture(&server, "live", "sentinel-3", 2);
    wait_for_disk_playlist(&tag, "sentinel-3", 0);
    let playlist = std::fs::read_to_string(stream_dir.join("index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");
    for s in playlist.lines().filter(|l| l.starts_with("seg-")) {
        assert!(stream_dir.join(s).exists(), "{s} listed but not on disk");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bytes_streamed_behind_a_held_request_close_the_connection_at_max_request_bytes() {
    let mut config = eager();
    config.http.hls_segment_ms = 1000;
    config.http.hls_part_ms = 250;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "held");
    let mut watcher = Client::play(server.addr, "live", "held");
    publish_loops(&mut publisher, &tags, 1, 0);
    watcher.media(tags.len());
    let (_, body) = get(server.http, "/live/held.m3u8");
    let hint = preload_hint(&String::from_utf8(body).unwrap());
    let (msn, index) = hint
        .trim_start_matches("held/part-")
        .trim_end_matches(".ts")
        .split_once('.')
        .unwrap();
    let mut flood = send_get(
        server.http,
        &format!("/live/held.m3u8?_HLS_msn={msn}&_HLS_part={index}"),
    );
    assert_held(&mut flood, "the blocking reload");
    let port = flood.local_addr().unwrap().port();
    // Then bytes that never make a request head, as fast as the server takes them.
    let junk = vec![b'x'; 64 * 1024];
    let started = std::time::Instant::now();
    while flood.write_all(&junk).is_ok() {
        assert!(started.elapsed() < WAIT, "still open after {WAIT:?}");
    }
    let closed = server.closed(port);
    assert!(
        matches!(
            closed.reason,
            CloseReason::BadHttpRequest(rtmp_edge::http::HttpError::HeadTooLarge { limit: 8192 })
        ),
        "{:?}",
        closed.reason
    );
    // The stream and its playlist are unharmed.
    let (head, _) = get(server.http, "/live/held.m3u8");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    drop(publisher);
}
