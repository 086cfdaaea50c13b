//! Interop with real clients over loopback: ffmpeg (libavformat), rtmpdump (librtmp),
//! GStreamer (rtmp2src/rtmp2sink), tshark's RTMP dissector, and a recent ffmpeg for
//! Enhanced RTMP (HEVC, AV1). A missing tool is a failure, never a skip: `tools/test.sh`
//! installs them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::tools::{modern_ffmpeg, tool, Dir};
use common::{wait_for_log_count, Client, TestServer};
use rtmp_edge::config::Config;
use rtmp_edge::rtmp::session::ClientEvent;

const FPS: usize = 25;
const SECONDS: usize = 4;

/// A child process we started, killed by PID if still running when dropped.
struct Proc {
    name: String,
    pid: u32,
    done: mpsc::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, dir: &Dir, cmd: &mut Command) -> Self {
        let log = dir.path(&format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut child: Child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = child.id();
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(status);
            }
        });
        Self {
            name: name.to_string(),
            pid,
            done,
            status: None,
            log,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for exit; kills it (by PID) and fails if it takes longer than `timeout`.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        match self.done.recv_timeout(timeout) {
            Ok(status) => {
                self.status = Some(status);
                status
            }
            Err(_) => {
                self.kill();
                panic!(
                    "{} did not finish within {timeout:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
        }
    }

    /// Waits for exit up to `timeout`, then stops it with `signal`; returns once it is gone.
    fn stop_after(&mut self, timeout: Duration, signal: i32) {
        if self.status.is_some() {
            return;
        }
        if let Ok(status) = self.done.recv_timeout(timeout) {
            self.status = Some(status);
            return;
        }
        unsafe_kill(self.pid, signal);
        match self.done.recv_timeout(Duration::from_secs(10)) {
            Ok(status) => self.status = Some(status),
            Err(_) => self.kill(),
        }
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            unsafe_kill(self.pid, libc::SIGKILL);
            self.status = self.done.recv_timeout(Duration::from_secs(10)).ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, signal: i32) {
    // Only processes this test started, by PID.
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    let _ = status;
}

fn run_ok(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A deterministic H.264 + AAC FLV: `pattern` is an ffmpeg lavfi video source.
fn h264_source(dir: &Dir, name: &str, pattern: &str) -> PathBuf {
    let out = dir.path(name);
    run_ok(
        "ffmpeg encode",
        Command::new(tool("ffmpeg"))
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("{pattern}=size=320x240:rate={FPS}"))
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=1000:sample_rate=44100",
                "-t",
            ])
            .arg(SECONDS.to_string())
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-bf",
                "0",
            ])
            .args([
                "-x264-params",
                "keyint=25:min-keyint=25:scenecut=0",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-f",
                "flv",
            ])
            .arg(&out),
    );
    out
}

/// MD5 of every decoded video frame, in order.
fn frame_md5s(ffmpeg: &Path, file: &Path) -> Vec<String> {
    let text = run_ok(
        "framemd5",
        Command::new(ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-map", "0:v:0", "-f", "framemd5", "-"]),
    );
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

/// `got` is a run of `source` that starts on a keyframe (every FPS frames) and, unless
/// `late`, is the whole of it.
fn assert_same_frames(who: &str, source: &[String], got: &[String], late: bool) {
    assert!(!got.is_empty(), "{who}: no frames decoded");
    let start = source
        .iter()
        .position(|m| *m == got[0])
        .unwrap_or_else(|| panic!("{who}: first frame is not from the source"));
    assert_eq!(
        start % FPS,
        0,
        "{who}: starts at frame {start}, not on a keyframe"
    );
    let n = got.len().min(source.len() - start);
    assert_eq!(
        &got[..n],
        &source[start..start + n],
        "{who}: frames differ from the source"
    );
    if late {
        assert!(
            start > 0,
            "{who}: a late joiner should start after the first GOP"
        );
    } else {
        assert_eq!(start, 0, "{who}: missed the first frames");
        assert_eq!(
            got.len(),
            source.len(),
            "{who}: got {} of {} frames",
            got.len(),
            source.len()
        );
    }
}

fn url(server: &TestServer, name: &str) -> String {
    format!("rtmp://127.0.0.1:{}/live/{name}", server.addr.port())
}

fn ffmpeg_publish(dir: &Dir, ffmpeg: &Path, source: &Path, url: &str, name: &str) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(ffmpeg)
            .args(["-v", "warning", "-nostats", "-re", "-i"])
            .arg(source)
            .args(["-c", "copy", "-f", "flv", url]),
    )
}

fn ffmpeg_play(dir: &Dir, ffmpeg: &Path, url: &str, out: &Path, name: &str) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(ffmpeg)
            .args([
                "-v", "warning", "-nostats", "-i", url, "-c", "copy", "-f", "flv", "-y",
            ])
            .arg(out),
    )
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
    let source = h264_source(&dir, "src.flv", "testsrc");
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
    let source = h264_source(&dir, "src.flv", "testsrc2");
    let server = TestServer::with_defaults();
    let url = url(&server, "late");
    let mut watcher = Client::play(server.addr, "live", "late");
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "publisher");
    // Join once more than one GOP has gone by.
    let mut video_frames = 0;
    while video_frames < FPS + 10 {
        if let ClientEvent::Media { type_id: 9, .. } =
            watcher.wait_for("media", |e| matches!(e, ClientEvent::Media { .. }))
        {
            video_frames += 1;
        }
    }
    let out = dir.path("late.flv");
    let mut late = ffmpeg_play(&dir, &ffmpeg, &url, &out, "late-player");
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    late.stop_after(PLAYER_LIMIT, libc::SIGINT);
    server.shutdown();
    assert_same_frames(
        "late ffmpeg",
        &frame_md5s(&ffmpeg, &source),
        &frame_md5s(&ffmpeg, &out),
        true,
    );
}

#[test]
fn gstreamer_rtmp2sink_publishes_and_ffmpeg_plays_the_same_frames() {
    let (ffmpeg, gst) = (tool("ffmpeg"), tool("gst-launch-1.0"));
    let dir = Dir::new("gstpub");
    let source = h264_source(&dir, "src.flv", "smptebars");
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
        sources.push(h264_source(&dir, &format!("src{i}.flv"), pattern));
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
    let source = h264_source(&dir, "src.flv", "testsrc");
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
    let source = h264_source(&dir, "src.flv", "testsrc");
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
    let source = h264_source(&dir, "src.flv", "testsrc");
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
    unsafe_kill(pid, libc::SIGINT);
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
    let source = h264_source(&dir, "src.flv", "testsrc");
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
