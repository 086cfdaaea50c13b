//! Interop with real clients over loopback: ffmpeg (libavformat), rtmpdump (librtmp),
//! GStreamer (rtmp2src/rtmp2sink), tshark's RTMP dissector, and a recent ffmpeg for
//! Enhanced RTMP (HEVC, AV1). A missing tool is a failure, never a skip: `tools/test.sh`
//! installs them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::procs::{
    assert_same_frames, assert_tail_of, ffmpeg_play, ffmpeg_publish, frame_md5s, h264_source,
    run_ok, signal_pid, Proc, FPS,
};
use common::tools::{modern_ffmpeg, tool, Dir};
use common::{wait_for_log_count, Client, TestServer};
use rtmp_edge::config::Config;
use rtmp_edge::rtmp::session::ClientEvent;

const SECONDS: usize = 4;

fn url(server: &TestServer, name: &str) -> String {
    format!("rtmp://127.0.0.1:{}/live/{name}", server.addr.port())
}

fn wait_players(stream: &str, n: usize) {
    wait_for_log_count(
        &["playing", &format!("stream=live/{stream}")],
        n,
        Duration::from_secs(30),
    );
}

const PUBLISH_LIMIT: Duration = Duration::from_secs(60);
const PLAYER_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn ffmpeg_publishes_and_ffmpeg_rtmpdump_and_gstreamer_play_the_same_frames() {
    let (ffmpeg, rtmpdump, gst) = (tool("ffmpeg"), tool("rtmpdump"), tool("gst-launch-1.0"));
    let dir = Dir::new("play3");
    let source = h264_source(&dir, "src.flv", "testsrc", SECONDS);
    let server = TestServer::with_defaults();
    let url = url(&server, "three");
    let (ff_out, rd_out, gst_out) = (
        dir.path("ffmpeg.flv"),
        dir.path("rtmpdump.flv"),
        dir.path("gst.flv"),
    );
    let mut players = [
        ffmpeg_play(&dir, &ffmpeg, &url, &ff_out, "ffmpeg-player"),
        Proc::spawn(
            "rtmpdump",
            &dir,
            Command::new(&rtmpdump)
                .args(["-q", "--live", "-r", &url, "-o"])
                .arg(&rd_out),
        ),
        Proc::spawn(
            "gst-rtmp2src",
            &dir,
            Command::new(&gst)
                .args(["-q", "rtmp2src"])
                .arg(format!("location={url}"))
                .args(["!", "filesink"])
                .arg(format!("location={}", gst_out.display())),
        ),
    ];
    wait_players("three", 3);
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "ffmpeg-publisher");
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "publisher failed:\n{}",
        publisher.output()
    );
    for p in players.iter_mut() {
        p.stop_after(Duration::from_secs(5), libc::SIGINT);
    }
    server.shutdown();
    let expected = frame_md5s(&ffmpeg, &source);
    assert_eq!(expected.len(), FPS * SECONDS);
    for (who, out) in [
        ("ffmpeg", &ff_out),
        ("rtmpdump", &rd_out),
        ("gstreamer", &gst_out),
    ] {
        assert_same_frames(who, &expected, &frame_md5s(&ffmpeg, out), false);
    }
}

#[test]
fn a_late_ffmpeg_player_starts_on_a_keyframe_mid_stream() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("late");
    let source = h264_source(&dir, "src.flv", "testsrc2", SECONDS);
    let server = TestServer::with_defaults();
    let url = url(&server, "late");
    let mut watcher = Client::play(server.addr, "live", "late");
    let publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "publisher");
    // Join once more than one GOP has gone by.
    let mut video_frames = 0;
    while video_frames < FPS + 10 {
        if let ClientEvent::Media { type_id: 9, .. } =
            watcher.wait_for("media", |e| matches!(e, ClientEvent::Media { .. }))
        {
            video_frames += 1;
        }
    }
    let late = ffmpeg_play(&dir, &ffmpeg, &url, &late_out(&dir), "late-player");
    let (expected, got) = late_player_frames(&ffmpeg, &dir, &source, publisher, late, server);
    assert_same_frames("late ffmpeg", &expected, &got, true);
}

/// Where a late player writes what it got.
fn late_out(dir: &Dir) -> std::path::PathBuf {
    dir.path("late.flv")
}

/// Waits for `publisher` to finish, stops `late` (an ffmpeg player writing
/// [`late_out`]) and the server: the source's frames and the late player's.
fn late_player_frames(
    ffmpeg: &std::path::Path,
    dir: &Dir,
    source: &std::path::Path,
    mut publisher: Proc,
    mut late: Proc,
    server: TestServer,
) -> (Vec<String>, Vec<String>) {
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    late.stop_after(PLAYER_LIMIT, libc::SIGINT);
    server.shutdown();
    (
        frame_md5s(ffmpeg, source),
        frame_md5s(ffmpeg, &late_out(dir)),
    )
}

#[test]
fn gstreamer_rtmp2sink_publishes_and_ffmpeg_plays_the_same_frames() {
    let (ffmpeg, gst) = (tool("ffmpeg"), tool("gst-launch-1.0"));
    let dir = Dir::new("gstpub");
    let source = h264_source(&dir, "src.flv", "smptebars", SECONDS);
    let server = TestServer::with_defaults();
    let url = url(&server, "gst");
    let out = dir.path("out.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &url, &out, "ffmpeg-player");
    wait_players("gst", 1);
    let mut publisher = Proc::spawn(
        "gst-rtmp2sink",
        &dir,
        Command::new(&gst)
            .arg("-q")
            .arg("filesrc")
            .arg(format!("location={}", source.display()))
            .args([
                "!",
                "flvdemux",
                "name=d",
                "flvmux",
                "name=m",
                "streamable=true",
                "!",
            ])
            .arg("rtmp2sink")
            .arg(format!("location={url}"))
            .args([
                "d.video",
                "!",
                "queue",
                "!",
                "h264parse",
                "!",
                "m.",
                "d.audio",
                "!",
                "queue",
                "!",
                "aacparse",
                "!",
                "m.",
            ]),
    );
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    player.stop_after(Duration::from_secs(5), libc::SIGINT);
    server.shutdown();
    assert_same_frames(
        "ffmpeg after gstreamer",
        &frame_md5s(&ffmpeg, &source),
        &frame_md5s(&ffmpeg, &out),
        false,
    );
}

#[test]
fn four_ffmpeg_streams_at_once_do_not_cross_talk() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("four");
    let patterns = ["testsrc", "testsrc2", "smptebars", "rgbtestsrc"];
    let server = TestServer::with_defaults();
    let mut sources = Vec::new();
    let mut players = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        sources.push(h264_source(&dir, &format!("src{i}.flv"), pattern, SECONDS));
        players.push(ffmpeg_play(
            &dir,
            &ffmpeg,
            &url(&server, &format!("s{i}")),
            &dir.path(&format!("out{i}.flv")),
            &format!("player{i}"),
        ));
    }
    for i in 0..4 {
        wait_players(&format!("s{i}"), 1);
    }
    let mut publishers: Vec<Proc> = (0..4)
        .map(|i| {
            ffmpeg_publish(
                &dir,
                &ffmpeg,
                &sources[i],
                &url(&server, &format!("s{i}")),
                &format!("publisher{i}"),
            )
        })
        .collect();
    for p in publishers.iter_mut() {
        assert!(p.wait(PUBLISH_LIMIT).success(), "{}", p.output());
    }
    for p in players.iter_mut() {
        p.stop_after(Duration::from_secs(5), libc::SIGINT);
    }
    server.shutdown();
    for (i, source) in sources.iter().enumerate() {
        let expected = frame_md5s(&ffmpeg, source);
        let got = frame_md5s(&ffmpeg, &dir.path(&format!("out{i}.flv")));
        assert_same_frames(&format!("stream {i}"), &expected, &got, false);
    }
}

#[test]
fn an_ffmpeg_publisher_that_leaves_and_returns_reaches_the_waiting_player() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("return");
    let source = h264_source(&dir, "src.flv", "testsrc", SECONDS);
    let server = TestServer::with_defaults();
    let url = url(&server, "back");
    let mut player = Client::play(server.addr, "live", "back");
    for round in 0..2 {
        let mut publisher =
            ffmpeg_publish(&dir, &ffmpeg, &source, &url, &format!("publisher{round}"));
        assert!(
            publisher.wait(PUBLISH_LIMIT).success(),
            "{}",
            publisher.output()
        );
        let mut frames = 0;
        let mut first_video = None;
        loop {
            match player.wait_for("media or unpublish", |e| {
                matches!(e, ClientEvent::Media { .. })
                    || matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")
            }) {
                ClientEvent::Media { type_id: 9, payload, .. } if payload.len() > 5 && payload[1] == 1 => {
                    first_video.get_or_insert(payload[0]);
                    frames += 1;
                }
                ClientEvent::Status { .. } => break,
                _ => {}
            }
        }
        assert_eq!(frames, FPS * SECONDS, "round {round}: every frame arrives");
        assert_eq!(
            first_video,
            Some(0x17),
            "round {round}: starts on a keyframe"
        );
    }
    server.shutdown();
}

#[test]
fn an_unwatched_ffmpeg_publisher_read_by_the_clock_loses_nothing() {
    // libavformat writes each chunk's header and body in separate writes with Nagle on, so
    // while its stream is unwatched and read by the clock its pieces wait for delayed ACKs and
    // leave in bursts. A player that joins then gets every frame from its keyframe on, and the
    // publisher is read on arrival from then on.
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("pieces");
    let source = h264_source(&dir, "src.flv", "testsrc", SECONDS);
    let server = TestServer::with_defaults();
    let url = url(&server, "pieces");
    let publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "publisher");
    wait_for_log_count(
        &[
            "stream=live/pieces",
            "stream unwatched: publisher read by the clock",
        ],
        1,
        PUBLISH_LIMIT,
    );
    let late = ffmpeg_play(&dir, &ffmpeg, &url, &late_out(&dir), "late-player");
    wait_for_log_count(
        &[
            "stream=live/pieces",
            "stream watched: publisher read on arrival",
        ],
        1,
        PUBLISH_LIMIT,
    );
    let (expected, got) = late_player_frames(&ffmpeg, &dir, &source, publisher, late, server);
    // From a keyframe (the first, when it joined within the first GOP) to the last frame.
    assert_tail_of("player of a polled stream", &expected, &got, FPS);
}

/// Video frames (not sequence headers) `player` gets until the publisher leaves.
fn frames_until_unpublish(player: &mut Client) -> usize {
    let mut frames = 0;
    loop {
        match player.wait_for("media or unpublish", |e| {
            matches!(e, ClientEvent::Media { .. })
                || matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")
        }) {
            ClientEvent::Media { type_id: 9, payload, .. } if payload.len() > 5 && payload[1] == 1 => {
                frames += 1;
            }
            ClientEvent::Status { .. } => return frames,
            _ => {}
        }
    }
}

#[test]
fn ffmpeg_publishing_with_a_token_on_the_app_or_the_key_reaches_players_of_the_plain_name() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("token");
    let source = h264_source(&dir, "src.flv", "testsrc", SECONDS);
    let server = TestServer::with_defaults();
    let port = server.addr.port();
    let mut on_app = Client::play(server.addr, "live", "onapp");
    let mut on_key = Client::play(server.addr, "live", "onkey");
    // libavformat splits the first as app `live?token=..` + playpath `onapp`, the second as
    // app `live` + playpath `onkey?token=..`.
    let mut publishers = [
        ffmpeg_publish(
            &dir,
            &ffmpeg,
            &source,
            &format!("rtmp://127.0.0.1:{port}/live?token=app-s3cret/onapp"),
            "token-on-app",
        ),
        ffmpeg_publish(
            &dir,
            &ffmpeg,
            &source,
            &format!("rtmp://127.0.0.1:{port}/live/onkey?token=key-s3cret"),
            "token-on-key",
        ),
    ];
    for p in publishers.iter_mut() {
        assert!(p.wait(PUBLISH_LIMIT).success(), "{}", p.output());
    }
    assert_eq!(frames_until_unpublish(&mut on_app), FPS * SECONDS);
    assert_eq!(frames_until_unpublish(&mut on_key), FPS * SECONDS);
    server.shutdown();
    let logs = common::log_lines_with(&[""]).join("\n");
    assert!(
        logs.contains("stream=live/onapp") && logs.contains("stream=live/onkey"),
        "streams named without the query:\n{logs}"
    );
    assert!(!logs.contains("s3cret"), "a token in the logs:\n{logs}");
}

#[test]
fn tshark_dissects_a_captured_session_with_no_malformed_packets() {
    let (ffmpeg, tshark) = (tool("ffmpeg"), tool("tshark"));
    let dir = Dir::new("tshark");
    let source = h264_source(&dir, "src.flv", "testsrc", SECONDS);
    let server = TestServer::with_defaults();
    let port = server.addr.port();
    let capture = dir.path("session.pcapng");
    let mut child = Command::new(&tshark)
        .args(["-i", "lo", "-f"])
        .arg(format!("tcp port {port}"))
        .arg("-w")
        .arg(&capture)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("tshark exited before capturing")
            .unwrap();
        if line.contains("Capturing on") {
            break;
        }
    }
    let pid = child.id();
    std::thread::spawn(move || for _ in lines {});
    let url = url(&server, "cap");
    let out = dir.path("out.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &url, &out, "player");
    wait_players("cap", 1);
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "publisher");
    assert!(publisher.wait(PUBLISH_LIMIT).success());
    player.stop_after(Duration::from_secs(5), libc::SIGINT);
    server.shutdown();
    signal_pid(pid, libc::SIGINT);
    let _ = child.wait();
    let decode = format!("tcp.port=={port},rtmpt");
    let count = |filter: &str| -> usize {
        run_ok(
            "tshark read",
            Command::new(&tshark)
                .args(["-r"])
                .arg(&capture)
                .args(["-d", &decode, "-Y", filter]),
        )
        .lines()
        .count()
    };
    assert!(count("rtmpt") > 100, "the capture holds an RTMP session");
    assert!(
        count("amf.string == \"onStatus\"") >= 2,
        "onStatus answers are dissected"
    );
    assert!(
        count("rtmpt.video.type == 1") >= 2,
        "video keyframes are dissected"
    );
    assert_eq!(
        count("_ws.malformed"),
        0,
        "malformed packets in the capture"
    );
}

fn enhanced_rtmp_round_trip(codec_args: &[&str], test: &str) {
    let ffmpeg = modern_ffmpeg();
    let dir = Dir::new(test);
    let source = dir.path("src.flv");
    run_ok(
        "modern ffmpeg encode",
        Command::new(&ffmpeg)
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size=320x240:rate={FPS}"))
            .args(["-t", &SECONDS.to_string()])
            .args(codec_args)
            .args(["-f", "flv"])
            .arg(&source),
    );
    let mut config = Config::default();
    config.workers.count = 1;
    let server = TestServer::start(config);
    let url = url(&server, test);
    let out = dir.path("out.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &url, &out, "player");
    wait_players(test, 1);
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "publisher");
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    player.stop_after(Duration::from_secs(5), libc::SIGINT);
    server.shutdown();
    let expected = frame_md5s(&ffmpeg, &source);
    assert_eq!(expected.len(), FPS * SECONDS);
    assert_same_frames(test, &expected, &frame_md5s(&ffmpeg, &out), false);
}

#[test]
fn enhanced_rtmp_hevc_from_a_recent_ffmpeg_reaches_players_unchanged() {
    enhanced_rtmp_round_trip(
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error",
        ],
        "hevc",
    );
}

#[test]
fn enhanced_rtmp_av1_from_a_recent_ffmpeg_reaches_players_unchanged() {
    enhanced_rtmp_round_trip(
        &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-g",
            "25",
            "-svtav1-params",
            "keyint=25:scd=0",
        ],
        "av1",
    );
}

#[test]
fn ffmpeg_plays_http_flv_with_the_same_frames() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("httpflv");
    let source = h264_source(&dir, "src.flv", "testsrc", SECONDS);
    let server = TestServer::with_defaults();
    let out = dir.path("out.flv");
    let http_url = format!("http://127.0.0.1:{}/live/web.flv", server.http.port());
    let mut viewer = ffmpeg_play(&dir, &ffmpeg, &http_url, &out, "http-flv-viewer");
    wait_for_log_count(
        &["playing", "stream=live/web", "http-flv"],
        1,
        Duration::from_secs(30),
    );
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url(&server, "web"), "publisher");
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    server.shutdown();
    viewer.stop_after(Duration::from_secs(10), libc::SIGINT);
    assert_same_frames(
        "ffmpeg over HTTP-FLV",
        &frame_md5s(&ffmpeg, &source),
        &frame_md5s(&ffmpeg, &out),
        false,
    );
}

/// Our client's `connect` carries the E-RTMP `capsEx` property: a server from before E-RTMP
/// (ffmpeg's own RTMP server, `-listen 1`) must take it like any other connect and accept
/// the publish. (nginx-rtmp is covered by rtmp-load's nginx tests, our server by all others.)
#[test]
fn ffmpeg_as_an_rtmp_server_accepts_our_connect_with_caps_ex() {
    let dir = Dir::new("ffmpeg-listen-caps-ex");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dir.path("received.flv");
    let mut ffmpeg = Proc::spawn(
        "ffmpeg-listen",
        &dir,
        Command::new(tool("ffmpeg"))
            .args(["-v", "error", "-y", "-listen", "1", "-timeout", "20", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/capsex"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&out),
    );
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // ffmpeg serves one connection: watch for its listening socket instead of probing it.
    let listening = format!(":{port:04X} 00000000:0000 0A ");
    let deadline = std::time::Instant::now() + common::WAIT;
    while !std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .contains(&listening)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "ffmpeg never listened:\n{}",
            ffmpeg.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut publisher = Client::publish(addr, "live", "capsex");
    for tag in common::fixture_tags() {
        publisher.send(tag.tag_type, tag.timestamp, &tag.data);
    }
    publisher.session.stop();
    publisher.flush();
    drop(publisher);
    let status = ffmpeg.wait(Duration::from_secs(20));
    assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.output());
    let streams = run_ok(
        "ffprobe",
        Command::new(tool("ffprobe"))
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&out),
    );
    assert!(streams.contains("h264"), "{streams}");
}
